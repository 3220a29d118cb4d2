"""Random sampling and the softmax-uncertainty baselines: entropy, margin, least confidence.

    strategy = assljax.acquisition.get("entropy", chunk_size=256)
    idx = strategy(key, ctx, budget)        # the ``budget`` most uncertain unlabeled samples

Scores are computed from ``ctx.apply_fn`` over the unlabeled rows only, streamed through
:func:`assljax._chunking.chunked_map`, so memory is set by ``chunk_size``, not the pool.
Higher score = more uncertain:

* ``entropy``:    ``-sum_c p_c log p_c``
* ``margin``:     ``p_(2) - p_(1)`` (minus the gap between the two largest probabilities)
* ``confidence``: ``1 - max_c p_c`` (least confidence)

Ties go to the lower pool index. ``random`` draws ``budget`` distinct unlabeled indices
uniformly with ``key`` and never looks at the model.

Averaging over augmentations (``augmentations=K > 0``, e.g. the max-entropy baseline of
the Bilevel paper, "predictions averaged over 2 data augmentations": ``get("entropy",
augmentations=2)``): the score is computed from the mean softmax over ``K`` weakly
augmented views of each sample, ``pbar = (1/K) sum_k softmax(f(aug_k(x)))`` (entropy
``-sum_c pbar_c log pbar_c``; margin and confidence likewise from ``pbar``). The views come
from :func:`assljax.ssl.augment.weak_augment` (random flip if ``augment_flip``, reflect-pad
crop by ``augment_pad`` pixels), the augmented copies only (not the unaugmented input),
with keys folded from ``key`` and the pool index, so the same key gives the same views
whatever the chunking. As in the bilevel strategy, inputs that are not ``(N, H, W, C)``
images (``C`` in 1, 3) are used as they are, so there the option changes nothing.
``augmentations=0`` (the default) is the plain score of the unaugmented input and
ignores ``key``.

This module also holds the pool-streaming helpers shared by the other baseline
strategies (:class:`RowFn`, :func:`map_rows`, :func:`pool_features`, ...).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax import parallel
from assljax._chunking import chunked_map
from assljax._compile import jit
from assljax._validation import UserInputError, check_chunk_size, check_int
from assljax.acquisition.base import (Context, StatelessStrategy, check_finite, register)

PyTree = Any

UNCERTAINTY_KINDS = ("entropy", "margin", "confidence")


# ----------------------------------------------------------------------------------------
# Pool-streaming helpers shared by the baseline strategies.


@dataclasses.dataclass(frozen=True)
class RowFn:
  """A hashable ``(params, x_rows) -> pytree`` closure ``fn(*args, params, x_rows)``.

  Equal ``fn`` and ``args`` compare equal, so :func:`map_rows` (jitted with the row
  function static) reuses its compiled program across calls with the same model.
  ``args`` must be hashable (functions, strings, numbers).
  """
  fn: Callable[..., PyTree]
  args: tuple = ()

  def __call__(self, params: PyTree, x: jax.Array, *extra: PyTree) -> PyTree:
    return self.fn(*self.args, params, x, *extra)


@functools.partial(jit, static_argnums=(0,), static_argnames=("chunk_size",))
def map_rows(row_fn: RowFn, params: PyTree, x: jax.Array, idx: jax.Array, *,
             chunk_size: int | None) -> PyTree:
  """``row_fn(params, x[idx])`` computed ``chunk_size`` rows at a time.

  Args:
    row_fn: maps ``(params, (c, ...))`` to a pytree of arrays with leading dimension ``c``.
    params: model parameters (traced).
    x: the pool ``(N, ...)``; rows are gathered chunk by chunk, never copied whole.
    idx: ``(n,)`` int row indices into ``x``.
    chunk_size: rows per chunk (``None``: all at once).

  Returns:
    The concatenated outputs, leading dimension ``n``.
  """
  return chunked_map(lambda i: row_fn(params, jnp.take(x, i, axis=0)), idx,
                     chunk_size=chunk_size)


@functools.partial(jit, static_argnums=(0,), static_argnames=("chunk_size",))
def map_rows_keyed(row_fn: RowFn, params: PyTree, x: jax.Array, idx: jax.Array, key: jax.Array,
                   *, chunk_size: int | None) -> PyTree:
  """``row_fn(params, x[idx], keys)`` with ``keys[i] = fold_in(key, idx[i])``, chunked.

  Like :func:`map_rows`, but every row also gets its own PRNG key derived from ``key``
  and its *pool index*, so a row's randomness does not depend on the chunking or on
  which other rows are scored.

  Args:
    row_fn: maps ``(params, (c, ...), keys (c,))`` to a pytree with leading dimension ``c``.
    params, x, idx, chunk_size: as in :func:`map_rows`.
    key: a PRNG key (typed or raw).
  """
  def rows(i):
    keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(i)
    return row_fn(params, jnp.take(x, i, axis=0), keys)

  return chunked_map(rows, idx, chunk_size=chunk_size)


@functools.partial(jit, static_argnums=(0,))
def _rows_once(row_fn: RowFn, params: PyTree, x: jax.Array, idx: jax.Array,
               *extra: PyTree) -> PyTree:
  # under a data mesh the call's rows are split over the devices (no-op otherwise)
  rows = parallel.constrain_rows(jnp.take(x, parallel.constrain_rows(idx), axis=0))
  return parallel.constrain_rows(row_fn(params, rows, *extra))


def host_map_rows(row_fn: RowFn, params: PyTree, x: jax.Array, idx: np.ndarray, *extra: PyTree,
                  chunk_size: int | None) -> PyTree:
  """Like :func:`map_rows`, but the loop over chunks runs on the host.

  One jitted call per chunk of ``chunk_size`` rows (the last one padded, so a single
  program is compiled); memory is bounded by one chunk. Used for per-sample
  *gradients*: XLA:CPU runs convolution backward passes inside ``lax.map``/``scan``
  loops 15-20x slower than the same passes outside a loop (measured on WRN-28-2,
  jax 0.10.2), while forward passes are unaffected.

  Args:
    row_fn: maps ``(params, (c, ...), *extra)`` to a pytree with leading dimension ``c``.
    params, x, idx: as in :func:`map_rows` (``idx`` a host int array).
    *extra: further arguments passed to every call (e.g. a gradient direction).
    chunk_size: rows per call (``None``: all at once); under a data mesh of ``D``
      devices (:mod:`assljax.parallel`), rows per device: each call takes
      ``D * chunk_size`` rows split over the devices.
  """
  idx = np.asarray(idx, np.int32)
  size = parallel.data_parallelism()
  if size > 1:
    per_device = -(-idx.size // size) if chunk_size is None else chunk_size
    chunk_size = min(per_device, -(-idx.size // size)) * size
  if chunk_size is None or (idx.size <= chunk_size and size == 1):
    return _rows_once(row_fn, params, x, jnp.asarray(idx), *extra)
  outs = []
  for start in range(0, idx.size, chunk_size):
    part = idx[start:start + chunk_size]
    padded = np.concatenate([part, np.full(chunk_size - part.size, part[0], np.int32)])
    out = _rows_once(row_fn, params, x, jnp.asarray(padded), *extra)
    outs.append(jax.tree_util.tree_map(lambda a, k=part.size: a[:k], out))
  return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs)


def check_augment_options(name: str, augmentations: Any, augment_flip: Any, augment_pad: Any,
                          *, minimum: int = 0) -> tuple[int, bool, int]:
  """Validates the ``augmentations`` / ``augment_flip`` / ``augment_pad`` hyperparameters."""
  for what, value, low in (("augmentations", augmentations, minimum),
                           ("augment_pad", augment_pad, 0)):
    check_int(f"{name} {what}", value, low=low)
  return int(augmentations), bool(augment_flip), int(augment_pad)


def is_image_batch(x: jax.Array) -> bool:
  """Whether ``x`` is a batch of images ``(n, H, W, C)`` with ``C`` in 1, 3 (augmentable)."""
  return x.ndim == 4 and x.shape[-1] in (1, 3)


def augmented_probs(apply_fn: Callable, params: PyTree, x: jax.Array, keys: jax.Array, *,
                    views: int, flip: bool, pad: int) -> jax.Array:
  """Softmax over ``views`` weakly augmented copies of each row; returns ``(c, views, C)``.

  Args:
    apply_fn: ``(params, x) -> logits (n, C)``.
    x: ``(c, H, W, C_in)`` images in ``[0, 1]``, or any ``(c, ...)`` input; inputs that
      are not images (:func:`is_image_batch`) are not augmented (every view is the input).
    keys: ``(c,)`` PRNG keys, one per row; view ``k`` of row ``i`` is
      ``weak_augment(split(keys[i], views)[k], x[i:i+1])``.
    views: number of views ``K >= 1``.
    flip, pad: options of :func:`assljax.ssl.augment.weak_augment`.

  Returns:
    ``(c, views, C)`` probabilities in at least float32; one forward pass over the
    ``c * views`` views.
  """
  c = x.shape[0]
  if is_image_batch(x):
    from assljax.ssl.augment import weak_augment

    view_keys = jax.vmap(lambda k: jax.random.split(k, views))(keys)
    # typed keys (c, views) or raw uint32 keys (c, views, 2): one key per view either way
    view_keys = view_keys.reshape((c * views,) + view_keys.shape[2:])
    copies = jnp.repeat(x, views, axis=0)
    x = jax.vmap(lambda k, im: weak_augment(k, im[None], flip=flip, pad=pad)[0])(view_keys,
                                                                                  copies)
  else:
    x = jnp.repeat(x, views, axis=0)
  logits = apply_fn(params, x)
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  probs = jax.nn.softmax(logits, axis=-1)
  finite = jnp.all(jnp.isfinite(logits), axis=-1, keepdims=True)
  probs = jnp.where(finite, probs, jnp.nan)   # NaN rows stay NaN (check_finite catches them)
  return probs.reshape(c, views, probs.shape[-1])


def _logits_rows(apply_fn: Callable, params: PyTree, x: jax.Array) -> jax.Array:
  return apply_fn(params, x)


def _features_rows(embed_fn: Callable, params: PyTree, x: jax.Array) -> jax.Array:
  return embed_fn(params, x)


def pool_logits(ctx: Context, idx: np.ndarray, *, chunk_size: int | None) -> jax.Array:
  """Logits ``(n, C)`` of the pool rows ``idx``, checked finite (ValueError otherwise)."""
  logits = map_rows(RowFn(_logits_rows, (ctx.apply_fn,)), ctx.params, ctx.x,
                    jnp.asarray(idx, jnp.int32), chunk_size=chunk_size)
  check_finite(logits, "model outputs (logits)")
  return logits


def require_embed_fn(ctx: Context, name: str) -> Callable:
  """``ctx.embed_fn``, or a ValueError saying that strategy ``name`` needs it."""
  if ctx.embed_fn is None:
    raise UserInputError(f"strategy {name!r} needs penultimate features: pass "
                         "Context(embed_fn=...)")
  return ctx.embed_fn


def head_params(ctx: Context, name: str) -> tuple[jax.Array, jax.Array]:
  """The last layer ``(W (d, C), b (C,))`` from ``ctx.params["head"]``, or a ValueError."""
  try:
    kernel, bias = ctx.params["head"]["kernel"], ctx.params["head"]["bias"]
  except (KeyError, TypeError, IndexError):
    raise UserInputError(f"strategy {name!r} needs the last layer at params['head']['kernel'] and "
                         "params['head']['bias']") from None
  return jnp.asarray(kernel), jnp.asarray(bias)


def pool_features(ctx: Context, idx: np.ndarray, *, chunk_size: int | None,
                  name: str) -> jax.Array:
  """Penultimate features ``(n, d)`` of the pool rows ``idx``, checked finite."""
  embed_fn = require_embed_fn(ctx, name)
  feats = map_rows(RowFn(_features_rows, (embed_fn,)), ctx.params, ctx.x,
                   jnp.asarray(idx, jnp.int32), chunk_size=chunk_size)
  check_finite(feats, "model outputs (penultimate features)")
  return feats


# ----------------------------------------------------------------------------------------
# Scores.


def uncertainty_scores(logits: jax.Array, kind: str) -> jax.Array:
  """Uncertainty of each row of ``logits`` ``(n, C)``; returns ``(n,)``, higher = less sure.

  Rows with a non-finite logit score NaN (so :func:`check_finite` catches them).
  """
  if kind not in UNCERTAINTY_KINDS:
    raise UserInputError(f"unknown uncertainty kind {kind!r}; expected one of {UNCERTAINTY_KINDS}")
  logp = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)
  score = _uncertainty(jnp.exp(logp), logp, kind)
  return jnp.where(jnp.all(jnp.isfinite(logits), axis=-1), score, jnp.nan)


def probability_uncertainty_scores(probs: jax.Array, kind: str) -> jax.Array:
  """Like :func:`uncertainty_scores`, from probabilities ``(n, C)`` (e.g. a mean softmax).

  Rows with a non-finite probability score NaN.
  """
  if kind not in UNCERTAINTY_KINDS:
    raise UserInputError(f"unknown uncertainty kind {kind!r}; expected one of {UNCERTAINTY_KINDS}")
  safe = jnp.where(probs > 0, probs, 1.0)
  score = _uncertainty(probs, jnp.log(safe), kind)
  return jnp.where(jnp.all(jnp.isfinite(probs), axis=-1), score, jnp.nan)


def _uncertainty(p: jax.Array, logp: jax.Array, kind: str) -> jax.Array:
  if kind == "entropy":
    return -jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)
  if kind == "margin":
    top2 = jax.lax.top_k(p, 2)[0]
    return top2[:, 1] - top2[:, 0]
  return 1.0 - jnp.max(p, axis=-1)


def _score_rows(apply_fn: Callable, kind: str, params: PyTree, x: jax.Array) -> jax.Array:
  return uncertainty_scores(apply_fn(params, x), kind)


def _augmented_score_rows(apply_fn: Callable, kind: str, views: int, flip: bool, pad: int,
                          params: PyTree, x: jax.Array, keys: jax.Array) -> jax.Array:
  probs = augmented_probs(apply_fn, params, x, keys, views=views, flip=flip, pad=pad)
  return probability_uncertainty_scores(jnp.mean(probs, axis=1), kind)


def top_k_rows(scores: jax.Array, idx: np.ndarray, k: int) -> np.ndarray:
  """The ``k`` entries of ``idx`` with the largest ``scores`` (ties: lower index first)."""
  _, pos = jax.lax.top_k(jnp.asarray(scores), k)
  return np.asarray(idx)[np.asarray(pos)]


class RandomStrategy(StatelessStrategy):
  """Uniform sampling without replacement among unlabeled samples."""

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    idx = ctx.unlabeled_indices()
    pos = jax.random.choice(key, idx.shape[0], (budget,), replace=False)
    return idx[np.asarray(pos)]


class UncertaintyStrategy(StatelessStrategy):
  """Top-``budget`` unlabeled samples by a softmax uncertainty score.

  Args:
    kind: "entropy", "margin" or "confidence" (least confidence).
    augmentations: ``K``; 0 (default) scores the input as it is; ``K > 0`` scores the
      mean softmax over ``K`` weakly augmented views (module docstring; images only).
    augment_flip, augment_pad: options of ``weak_augment`` (no flip for digits/SVHN).
    chunk_size: pool rows per forward pass (memory bound; ``K`` views per row).
  """

  def __init__(self, kind: str, *, augmentations: int = 0, augment_flip: bool = True,
               augment_pad: int = 4, chunk_size: int | None = 256):
    if kind not in UNCERTAINTY_KINDS:
      raise UserInputError(f"unknown uncertainty kind {kind!r}; expected one of "
                           f"{UNCERTAINTY_KINDS}")
    self.kind = kind
    self.augmentations, self.augment_flip, self.augment_pad = check_augment_options(
        kind, augmentations, augment_flip, augment_pad)
    self.chunk_size = check_chunk_size(chunk_size)

  def scores(self, ctx: Context, idx: np.ndarray, key: jax.Array | None = None) -> jax.Array:
    """Scores ``(n,)`` of pool rows ``idx`` (ValueError on NaN/inf model outputs).

    ``key`` draws the augmentations (required when ``augmentations > 0`` on images).
    """
    rows = jnp.asarray(idx, jnp.int32)
    if self.augmentations > 0 and is_image_batch(ctx.x):
      if key is None:
        raise UserInputError(f"{self.kind} with augmentations needs a PRNG key to draw them")
      row_fn = RowFn(_augmented_score_rows, (ctx.apply_fn, self.kind, self.augmentations,
                                             self.augment_flip, self.augment_pad))
      scores = map_rows_keyed(row_fn, ctx.params, ctx.x, rows, key, chunk_size=self.chunk_size)
    else:
      scores = map_rows(RowFn(_score_rows, (ctx.apply_fn, self.kind)), ctx.params, ctx.x,
                        rows, chunk_size=self.chunk_size)
    check_finite(scores, "model outputs (logits)")
    return scores

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    idx = ctx.unlabeled_indices()
    return top_k_rows(self.scores(ctx, idx, key), idx, budget)


@register("random")
def _random() -> RandomStrategy:
  return RandomStrategy()


@register("entropy")
def _entropy(*, augmentations: int = 0, augment_flip: bool = True, augment_pad: int = 4,
             chunk_size: int | None = 256) -> UncertaintyStrategy:
  return UncertaintyStrategy("entropy", augmentations=augmentations, augment_flip=augment_flip,
                             augment_pad=augment_pad, chunk_size=chunk_size)


@register("margin")
def _margin(*, augmentations: int = 0, augment_flip: bool = True, augment_pad: int = 4,
            chunk_size: int | None = 256) -> UncertaintyStrategy:
  return UncertaintyStrategy("margin", augmentations=augmentations, augment_flip=augment_flip,
                             augment_pad=augment_pad, chunk_size=chunk_size)


@register("confidence")
def _confidence(*, augmentations: int = 0, augment_flip: bool = True, augment_pad: int = 4,
                chunk_size: int | None = 256) -> UncertaintyStrategy:
  return UncertaintyStrategy("confidence", augmentations=augmentations,
                             augment_flip=augment_flip, augment_pad=augment_pad,
                             chunk_size=chunk_size)
