"""Consistency-based selection (Gao et al., "Consistency-based semi-supervised active
learning: towards minimizing labeling cost", ECCV 2020), registry name ``"consistency"``.

    strategy = assljax.acquisition.get("consistency", augmentations=5)
    idx = strategy(key, ctx, budget)    # the ``budget`` least consistent unlabeled samples

Each unlabeled sample ``x`` is scored by how much the model's softmax disagrees across
``K = augmentations`` weakly augmented views ``aug_1(x), ..., aug_K(x)``: the variance
across the views, summed over the classes,

    E(x) = sum_c Var_k[ p_c(aug_k(x)) ] = sum_c (1/K) sum_k (p_c(aug_k(x)) - pbar_c(x))^2,

``pbar = (1/K) sum_k p(aug_k(x))`` (population variance, ``ddof = 0``; the ``1/K`` versus
``1/(K - 1)`` choice only rescales every score and does not change the ranking). The
``budget`` samples with the largest ``E`` are taken (top-k, no diversity term, as in the
paper). With ``include_original=True`` the unaugmented input counts as one more view
(``K + 1`` in all). The Bilevel paper (Borsos et al. 2021, Tab. 1) runs this baseline
with 5 augmentations: ``get("consistency", augmentations=5)`` (the default), plus
``augment_flip=False`` / ``augment_pad`` as the dataset's weak augmentation needs.

Views come from :func:`assljax.ssl.augment.weak_augment` (random horizontal flip if
``augment_flip``, reflect-pad random crop by ``augment_pad`` pixels), with one key per
sample folded from ``key`` and its pool index, so the same key gives the same views (and
indices) whatever ``chunk_size``. The pool is streamed ``chunk_size`` samples at a time
(``chunk_size * K`` views per forward pass).

As in the bilevel strategy, inputs that are not ``(N, H, W, C)`` images (``C`` in 1, 3)
are not augmented: every view is the input itself, every score is exactly 0, and the
selection degenerates to uniform random sampling among the unlabeled samples. Ties (there
and anywhere else) are broken by a random order drawn from ``key``, not by pool index.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax.acquisition.base import Context, StatelessStrategy, check_finite, register
from assljax.acquisition.uncertainty import (RowFn, augmented_probs, check_augment_options,
                                             check_chunk_size, is_image_batch, map_rows_keyed,
                                             top_k_rows)

PyTree = Any


def consistency_scores(probs: jax.Array) -> jax.Array:
  """Gao et al.'s inconsistency of ``K`` views: ``sum_c Var_k p[:, k, c]``.

  Args:
    probs: ``(n, K, C)`` softmax outputs of ``K`` views of each of ``n`` samples.

  Returns:
    ``(n,)``, the population variance across the views summed over the classes
    (NaN where a row holds a non-finite probability).
  """
  mean = jnp.mean(probs, axis=1, keepdims=True)
  return jnp.sum(jnp.mean(jnp.square(probs - mean), axis=1), axis=-1)


def _consistency_rows(apply_fn: Callable, views: int, flip: bool, pad: int, original: bool,
                      params: PyTree, x: jax.Array, keys: jax.Array) -> jax.Array:
  probs = augmented_probs(apply_fn, params, x, keys, views=views, flip=flip, pad=pad)
  if original:
    logits = apply_fn(params, x)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    plain = jnp.where(jnp.all(jnp.isfinite(logits), axis=-1, keepdims=True),
                      jax.nn.softmax(logits, axis=-1), jnp.nan)
    probs = jnp.concatenate([plain[:, None, :].astype(probs.dtype), probs], axis=1)
  return consistency_scores(probs)


class Consistency(StatelessStrategy):
  """Top-``budget`` unlabeled samples by prediction variance across augmentations.

  Args:
    augmentations: ``K >= 2`` weakly augmented views per sample (Bilevel Tab. 1: 5).
    augment_flip, augment_pad: options of ``weak_augment`` (no flip for digits/SVHN).
    include_original: also count the unaugmented input as a view.
    chunk_size: pool samples per forward pass (``K`` views each; memory bound).
  """

  def __init__(self, *, augmentations: int = 5, augment_flip: bool = True, augment_pad: int = 4,
               include_original: bool = False, chunk_size: int | None = 256):
    self.augmentations, self.augment_flip, self.augment_pad = check_augment_options(
        "consistency", augmentations, augment_flip, augment_pad, minimum=2)
    self.include_original = bool(include_original)
    self.chunk_size = check_chunk_size(chunk_size)

  def scores(self, key: jax.Array, ctx: Context, idx: np.ndarray) -> jax.Array:
    """Scores ``(n,)`` of pool rows ``idx`` (ValueError on NaN/inf model outputs).

    View ``k`` of pool row ``i`` is ``weak_augment(split(fold_in(key, i), K)[k],
    x[i:i+1])`` (:func:`assljax.acquisition.uncertainty.augmented_probs`); the strategy
    calls this with ``fold_in(key, 0)`` and breaks ties with ``fold_in(key, 1)``.
    """
    image = is_image_batch(ctx.x)
    # not images: one (unaugmented) view, so every score is exactly 0 (module docstring)
    views = self.augmentations if image else 1
    row_fn = RowFn(_consistency_rows, (ctx.apply_fn, views, self.augment_flip,
                                       self.augment_pad, self.include_original and image))
    scores = map_rows_keyed(row_fn, ctx.params, ctx.x, jnp.asarray(idx, jnp.int32), key,
                            chunk_size=self.chunk_size)
    check_finite(scores, "model outputs (logits)")
    return scores

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    unlabeled = ctx.unlabeled_indices()
    # a random order from the key breaks ties (all of them on non-image pools)
    order = unlabeled[np.asarray(jax.random.permutation(jax.random.fold_in(key, 1),
                                                        unlabeled.size))]
    return top_k_rows(self.scores(jax.random.fold_in(key, 0), ctx, order), order, budget)


@register("consistency")
def _consistency(*, augmentations: int = 5, augment_flip: bool = True, augment_pad: int = 4,
                 include_original: bool = False, chunk_size: int | None = 256) -> Consistency:
  return Consistency(augmentations=augmentations, augment_flip=augment_flip,
                     augment_pad=augment_pad, include_original=include_original,
                     chunk_size=chunk_size)
