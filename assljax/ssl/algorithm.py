"""What every semi-supervised algorithm is: a pure loss on one sampled batch.

An :class:`Algorithm` bundles a loss with the few things the shared engine
(:mod:`assljax.ssl.train`) needs to know about it::

    loss, (new_batch_stats, metrics, new_algo_state) = algorithm.loss(
        forward, params, batch_stats, batch, key, step, ctx)

``forward(params, batch_stats, x) -> (logits (n, C) float32, new_batch_stats)`` is the
model in train mode (BatchNorm on batch statistics), already wrapped for the chosen
compute dtype. ``batch`` is a :class:`Batch` of raw (un-augmented) inputs: each loss
augments its views itself from ``key``, so the whole step is one jitted function of
explicit keys. ``ctx`` (:class:`LossContext`) carries the EMA weights (Mean Teacher's
teacher) and the algorithm's own state (DARP's pseudo-label matrices). ``metrics`` is a
dict of scalars with a fixed set of keys. The loss is differentiated with respect to
``params`` only; everything else is treated as constant.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from assljax._validation import check_number
from assljax.ssl import optim

PyTree = Any
Forward = Callable[[PyTree, PyTree, jax.Array], tuple[jax.Array, PyTree]]
Augment = Callable[[jax.Array, jax.Array], jax.Array]


class Batch(NamedTuple):
  """One training step's raw inputs, sampled on device.

  Attributes:
    x_labeled: ``(B, *input_shape)`` labeled inputs.
    y_labeled: ``(B,)`` int32 labels.
    x_unlabeled: ``(U, *input_shape)`` unlabeled inputs (``U = mu * B``; ``U = 0`` for
      purely supervised training).
    unlabeled_rows: ``(U,)`` int32 row of each unlabeled input in the unlabeled set
      (the index into per-sample algorithm state such as DARP's matrices).
    y_unlabeled: ``(U,)`` int32 true labels of the unlabeled inputs (``-1`` where
      unknown), or None. For metrics only (pseudo-label accuracy, when a simulated
      oracle knows the truth); a loss never reads it.
  """
  x_labeled: jax.Array
  y_labeled: jax.Array
  x_unlabeled: jax.Array
  unlabeled_rows: jax.Array
  y_unlabeled: jax.Array | None = None


class LossContext(NamedTuple):
  """Read-only inputs of a loss besides ``params`` and the batch.

  Attributes:
    ema_params, ema_batch_stats: the exponential moving average of the weights (the
      teacher of Mean Teacher; the evaluation weights of every algorithm).
    algo_state: the algorithm's own state pytree (``()`` when it keeps none).
    num_unlabeled: ``()`` int32, how many rows of the unlabeled set are valid.
  """
  ema_params: PyTree
  ema_batch_stats: PyTree
  algo_state: PyTree
  num_unlabeled: jax.Array


def _no_state(num_rows: int, num_classes: int) -> PyTree:
  del num_rows, num_classes
  return ()


@dataclasses.dataclass(frozen=True)
class Algorithm:
  """A semi-supervised algorithm as the engine sees it.

  Attributes:
    name: e.g. ``"fixmatch"``.
    loss: the pure loss (module docstring).
    mu: unlabeled inputs per labeled input in a batch (``U = mu * B``); 0 = none.
    init_state: ``(num_unlabeled_rows, num_classes) -> state pytree`` of arrays.
    ema_decay: ``step -> decay`` overriding the trainer's constant EMA decay (Mean
      Teacher's 0.99 -> 0.999 schedule), or None.
    optimizer: the reference optimizer family, ``"sgd"`` (Nesterov SGD with the
      FixMatch cosine) or ``"adam"`` (MixMatch: Adam with decoupled weight decay).
    lr, weight_decay: the reference values for that optimizer.
  """
  name: str
  loss: Callable[..., tuple[jax.Array, tuple[PyTree, dict, PyTree]]]
  mu: int
  init_state: Callable[[int, int], PyTree] = _no_state
  ema_decay: Callable[[jax.Array], jax.Array] | None = None
  optimizer: str = "sgd"
  lr: float = optim.RECIPES["sgd"].lr
  weight_decay: float = optim.RECIPES["sgd"].weight_decay


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example cross-entropy ``(n,)`` of ``logits`` (n, C) against int ``labels`` (n,)."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-example cross-entropy ``(n,)`` of ``logits`` (n, C) against distributions (n, C)."""
  return -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), axis=-1)


def pseudo_label_metrics(predicted: jax.Array, truth: jax.Array | None, *,
                         weights: jax.Array | None = None, name: str = "pseudo_label_accuracy"
                         ) -> dict:
  """``{name: accuracy}`` of pseudo-labels against the truth, or ``{}`` without truth.

  Args:
    predicted: ``(U,)`` int pseudo-labels.
    truth: ``(U,)`` int true labels, ``-1`` where unknown (``Batch.y_unlabeled``), or None.
    weights: ``(U,)`` which rows count (FixMatch: the confident ones); None = all.

  Returns:
    The weighted accuracy over rows with a known label (0 when no row counts).
  """
  if truth is None:
    return {}
  known = (truth >= 0).astype(jnp.float32)
  w = known if weights is None else known * weights
  hits = jnp.sum(w * (predicted == truth).astype(jnp.float32))
  return {name: hits / jnp.maximum(jnp.sum(w), 1.0)}


def linear_rampup(step: jax.Array, length: float) -> jax.Array:
  """``clip(step / length, 0, 1)`` (1 when ``length <= 0``), MixMatch's ramp-up."""
  if length <= 0:
    return jnp.ones((), jnp.float32)
  return jnp.clip(jnp.asarray(step, jnp.float32) / float(length), 0.0, 1.0)


def sigmoid_rampup(step: jax.Array, length: float) -> jax.Array:
  """``exp(-5 (1 - t)^2)`` with ``t = clip(step / length, 0, 1)``, Mean Teacher's ramp-up."""
  if length <= 0:
    return jnp.ones((), jnp.float32)
  t = 1.0 - jnp.clip(jnp.asarray(step, jnp.float32) / float(length), 0.0, 1.0)
  return jnp.exp(-5.0 * t * t)


def no_augment(key: jax.Array, x: jax.Array) -> jax.Array:
  """The identity augmentation (for non-image inputs, or to test losses by hand)."""
  del key
  return x


def default_weak() -> Augment:
  """``assljax.ssl.augment.weak_augment`` with its defaults (flip + 4-px reflect crop)."""
  from assljax.ssl import augment
  return augment.weak_augment


def default_strong() -> Augment:
  """``assljax.ssl.augment.strong_augment`` with its defaults (RandAugment + Cutout)."""
  from assljax.ssl import augment
  return augment.strong_augment


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
  """A finite number ``> 0`` (``>= 0`` with ``allow_zero``), else one-sentence ValueError."""
  check_number(name, value, low=0.0, include_low=allow_zero)
