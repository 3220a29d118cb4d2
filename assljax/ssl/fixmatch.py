"""FixMatch (Sohn et al., 2020): confident weak-view pseudo-labels supervise strong views.

For a batch of ``B`` labeled and ``mu * B`` unlabeled inputs::

    logits = model(concat[weak(x_l), weak(u), strong(u)])     # one train-mode pass
    p = softmax(stop_gradient(logits of weak(u)))
    mask = max(p) >= threshold
    loss = CE(logits of weak(x_l), y) + lambda_u * mean(mask * CE(logits of strong(u), argmax p))

One forward pass over the concatenation makes BatchNorm see labeled and unlabeled
inputs together, as the reference's interleaving does. The pseudo-label distribution can
be replaced before thresholding (DARP, :mod:`assljax.ssl.darp`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from assljax._validation import UserInputError, check_number
from assljax.ssl.algorithm import (
    Algorithm, Augment, check_positive, cross_entropy, default_strong, default_weak,
    pseudo_label_metrics)

PyTree = Any
# (probs_weak (U, C), batch, step, algo_state, num_unlabeled) -> (targets (U, C), new_state)
PseudoLabelFn = Callable[..., tuple[jax.Array, PyTree]]


def _identity_pseudo(probs, batch, step, state, num_unlabeled):
  del batch, step, num_unlabeled
  return probs, state


def fixmatch_loss(*, threshold: float, lambda_u: float, weak: Augment, strong: Augment,
                  pseudo_fn: PseudoLabelFn = _identity_pseudo):
  """The FixMatch loss closure (module docstring), with a pluggable pseudo-label step."""

  def loss(forward, params, batch_stats, batch, key, step, ctx):
    k_l, k_w, k_s = jax.random.split(key, 3)
    b, u = batch.x_labeled.shape[0], batch.x_unlabeled.shape[0]
    x = jnp.concatenate([weak(k_l, batch.x_labeled), weak(k_w, batch.x_unlabeled),
                         strong(k_s, batch.x_unlabeled)], axis=0)
    logits, new_stats = forward(params, batch_stats, x)
    logits_x, logits_w, logits_s = logits[:b], logits[b:b + u], logits[b + u:]
    loss_x = cross_entropy(logits_x, batch.y_labeled).mean()
    probs = jax.nn.softmax(jax.lax.stop_gradient(logits_w), axis=-1)
    targets, new_state = pseudo_fn(probs, batch, step, ctx.algo_state, ctx.num_unlabeled)
    targets = jax.lax.stop_gradient(targets)
    confidence, pseudo = targets.max(axis=-1), targets.argmax(axis=-1)
    mask = (confidence >= threshold).astype(jnp.float32)
    loss_u = (cross_entropy(logits_s, pseudo) * mask).mean()
    value = loss_x + lambda_u * loss_u
    metrics = {"loss": value, "loss_x": loss_x, "loss_u": loss_u, "mask_rate": mask.mean(),
               "confidence": confidence.mean(),
               "accuracy_x": (logits_x.argmax(-1) == batch.y_labeled).mean(),
               # how far the pseudo-label step (DARP) moved the weak-view distributions:
               # mean total variation, 0 for plain FixMatch
               "pseudo_label_shift": 0.5 * jnp.abs(targets - probs).sum(-1).mean(),
               **pseudo_label_metrics(pseudo, batch.y_unlabeled, weights=mask),
               **pseudo_label_metrics(pseudo, batch.y_unlabeled,
                                      name="pseudo_label_accuracy_all")}
    return value, (new_stats, metrics, new_state)

  return loss


def fixmatch(*, threshold: float = 0.95, lambda_u: float = 1.0, mu: int = 7,
             weak: Augment | None = None, strong: Augment | None = None) -> Algorithm:
  """FixMatch with the reference settings (DESIGN §5) as defaults.

  Args:
    threshold: confidence ``tau`` above which a weak-view prediction becomes a label.
    lambda_u: weight of the unlabeled loss.
    mu: unlabeled inputs per labeled input in a batch (7 in the reference).
    weak, strong: ``(key, x) -> x`` augmentations; None for
      ``assljax.ssl.augment.weak_augment`` / ``strong_augment`` with their defaults.

  Returns:
    An :class:`~assljax.ssl.algorithm.Algorithm` (Nesterov SGD, lr 0.03, wd 5e-4).
  """
  check_number("threshold", threshold, low=0.0, high=1.0)
  check_positive("lambda_u", lambda_u, allow_zero=True)
  if int(mu) < 1:
    raise UserInputError(f"mu must be a positive integer for FixMatch, got {mu!r}.")
  loss = fixmatch_loss(threshold=threshold, lambda_u=lambda_u, weak=weak or default_weak(),
                       strong=strong or default_strong())
  return Algorithm(name="fixmatch", loss=loss, mu=int(mu))
