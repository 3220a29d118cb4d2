"""MixMatch (Berthelot et al., 2019): sharpened guesses, mixup, an L2 unlabeled loss.

For ``B`` labeled and ``B`` unlabeled inputs (``mu = 1``) and ``K`` weak views of each
unlabeled input::

    q = sharpen(mean_k softmax(model(weak_k(u))), T)           # guessed labels, no gradient
    W = concat[weak(x_l), weak_1(u), ..., weak_K(u)],  targets = concat[onehot(y), q, ..., q]
    lam ~ Beta(alpha, alpha);  lam = max(lam, 1 - lam);  pi = random permutation
    X' = lam W + (1 - lam) W[pi];  T' = lam targets + (1 - lam) targets[pi]
    loss = mean_b CE(model(X'_b), T'_b)
           + lambda_u * ramp(step) * mean((softmax(model(X'_u)) - T'_u)^2)

with ``ramp`` linear over ``rampup_steps`` (16k steps in the reference). The guessing
pass runs in train mode and its BatchNorm updates are discarded; the mixed batch goes
through the model in one pass, so BatchNorm sees all of it (what the reference's
interleaving emulates).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from assljax._validation import UserInputError
from assljax.ssl import optim
from assljax.ssl.algorithm import (
    Algorithm, Augment, check_positive, default_weak, linear_rampup, pseudo_label_metrics,
    soft_cross_entropy)


def sharpen(probs: jax.Array, temperature: float) -> jax.Array:
  """``p^(1/T) / sum_k p_k^(1/T)`` per row, ``(n, C) -> (n, C)``."""
  logp = jnp.log(jnp.maximum(probs, jnp.finfo(probs.dtype).tiny)) / temperature
  return jax.nn.softmax(logp, axis=-1)


def mixup(key: jax.Array, x: jax.Array, targets: jax.Array, *, alpha: float):
  """MixMatch's mixup of a batch with a random permutation of itself.

  Args:
    key: PRNG key. x: ``(n, ...)`` inputs. targets: ``(n, C)`` distributions.
    alpha: Beta(alpha, alpha) concentration.

  Returns:
    ``(x_mixed, targets_mixed, lam, perm)`` with ``lam = max(l, 1 - l)``, ``l ~ Beta``,
    ``x_mixed = lam x + (1 - lam) x[perm]`` (same for targets).
  """
  k_lam, k_perm = jax.random.split(key)
  lam = jax.random.beta(k_lam, alpha, alpha)
  lam = jnp.maximum(lam, 1.0 - lam)
  perm = jax.random.permutation(k_perm, x.shape[0])
  x_mixed = lam * x + (1.0 - lam) * x[perm]
  t_mixed = lam * targets + (1.0 - lam) * targets[perm]
  return x_mixed, t_mixed, lam, perm


def mixmatch(*, num_views: int = 2, temperature: float = 0.5, alpha: float = 0.75,
             lambda_u: float = 75.0, rampup_steps: int = 16384, mu: int = 1,
             weak: Augment | None = None) -> Algorithm:
  """MixMatch with the reference CIFAR-10 settings (DESIGN §5) as defaults.

  Args:
    num_views: ``K``, weak views per unlabeled input for label guessing.
    temperature: ``T`` of the sharpening.
    alpha: mixup Beta concentration.
    lambda_u: final weight of the L2 unlabeled loss (75 for CIFAR-10).
    rampup_steps: steps of the linear ramp-up of ``lambda_u``.
    mu: unlabeled inputs per labeled input (1 in the reference).
    weak: ``(key, x) -> x``; None for ``assljax.ssl.augment.weak_augment``.

  Returns:
    An :class:`~assljax.ssl.algorithm.Algorithm` whose reference optimizer is Adam
    (lr 2e-3, decoupled weight decay 0.02 on kernels).
  """
  if int(num_views) < 1:
    raise UserInputError(f"num_views must be a positive integer, got {num_views!r}.")
  check_positive("temperature", temperature)
  check_positive("alpha", alpha)
  check_positive("lambda_u", lambda_u, allow_zero=True)
  if int(mu) < 1:
    raise UserInputError(f"mu must be a positive integer for MixMatch, got {mu!r}.")
  weak = weak or default_weak()
  num_views = int(num_views)

  def loss(forward, params, batch_stats, batch, key, step, ctx):
    keys = jax.random.split(key, num_views + 2)
    b = batch.x_labeled.shape[0]
    x_l = weak(keys[0], batch.x_labeled)
    views = [weak(k, batch.x_unlabeled) for k in keys[1:num_views + 1]]
    u = batch.x_unlabeled.shape[0]
    guess_logits, _ = forward(params, batch_stats, jnp.concatenate(views, axis=0))
    guess_logits = jax.lax.stop_gradient(guess_logits)
    probs = jax.nn.softmax(guess_logits, axis=-1).reshape((num_views, u, -1)).mean(axis=0)
    guess = sharpen(probs, temperature)
    num_classes = guess.shape[-1]
    inputs = jnp.concatenate([x_l] + views, axis=0)
    targets = jnp.concatenate(
        [jax.nn.one_hot(batch.y_labeled, num_classes, dtype=jnp.float32)] + [guess] * num_views,
        axis=0)
    mixed_x, mixed_t, lam, _ = mixup(keys[-1], inputs, targets, alpha=alpha)
    logits, new_stats = forward(params, batch_stats, mixed_x)
    loss_x = soft_cross_entropy(logits[:b], mixed_t[:b]).mean()
    loss_u = jnp.mean((jax.nn.softmax(logits[b:], axis=-1) - mixed_t[b:]) ** 2)
    weight = lambda_u * linear_rampup(step, rampup_steps)
    value = loss_x + weight * loss_u
    metrics = {"loss": value, "loss_x": loss_x, "loss_u": loss_u, "weight_u": weight,
               "mixup_lambda": lam, "confidence": guess.max(-1).mean(),
               **pseudo_label_metrics(guess.argmax(-1), batch.y_unlabeled)}
    return value, (new_stats, metrics, ctx.algo_state)

  return Algorithm(name="mixmatch", loss=loss, mu=int(mu), optimizer="adam",
                   **optim.RECIPES["adam"]._asdict())
