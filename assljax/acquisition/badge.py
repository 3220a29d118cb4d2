"""BADGE: k-means++ seeding on last-layer gradient embeddings (Ash et al., ICLR 2020).

    strategy = assljax.acquisition.get("badge", chunk_size=256)
    idx = strategy(key, ctx, budget)

With ``logits = h(x) @ W + b``, ``p = softmax(logits)`` and the pseudo-label
``yhat = argmax p``, the gradient of the cross-entropy at ``yhat`` with respect to the
head kernel ``W`` is ``g(x) = h(x) (p - e_yhat)^T`` (a ``d x C`` matrix). BADGE picks
``budget`` pool points by k-means++ seeding on these embeddings: the first is the point
with the largest ``||g||``, each next one is drawn with probability proportional to its
squared distance to the nearest point already chosen.

The ``n x (C d)`` embedding matrix is never built: with ``a = p - e_yhat``,

    <g_i, g_j> = <a_i, a_j> <h_i, h_j>,   ||g_i - g_j||^2 = |g_i|^2 + |g_j|^2 - 2 <g_i, g_j>

so one k-means++ step costs O(n (C + d)) and memory stays O(n (C + d)) (features and
residuals of the unlabeled pool) plus O(n) for the running minimum distances. Only
unlabeled points take part (labeled points are not centers, as in the reference code).
If every remaining point is at distance 0 from the chosen ones (duplicates), the next
pick is uniform among the points not yet chosen, so the result always has ``budget``
distinct indices.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import check_chunk_size
from assljax.acquisition.base import Context, StatelessStrategy, check_finite, register
from assljax.acquisition.uncertainty import (RowFn, head_params, map_rows,
                                             require_embed_fn)

PyTree = Any


def gradient_factors(features: jax.Array, kernel: jax.Array,
                     bias: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The factors of BADGE's embedding ``g = h (p - e_yhat)^T``.

  Args:
    features: ``(n, d)`` penultimate features ``h``.
    kernel, bias: the head, ``(d, C)`` and ``(C,)``.

  Returns:
    ``(a, h)``: ``a = p - onehot(argmax p)`` ``(n, C)`` and ``h`` ``(n, d)``; the
    embedding of row ``i`` is ``outer(h_i, a_i)`` flattened (``d * C`` entries).
  """
  logits = features @ kernel + bias[None, :]
  p = jax.nn.softmax(logits, axis=-1)
  a = p - jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=p.dtype)
  a = jnp.where(jnp.all(jnp.isfinite(logits), axis=-1, keepdims=True), a, jnp.nan)
  return a, features


def factorized_sq_distances(a: jax.Array, h: jax.Array, a_c: jax.Array,
                            h_c: jax.Array) -> jax.Array:
  """Squared distances between embeddings ``outer(h_i, a_i)`` and ``outer(h_c, a_c)``.

  Args:
    a, h: ``(n, C)``, ``(n, d)`` factors of ``n`` embeddings.
    a_c, h_c: ``(C,)``, ``(d,)`` factors of one embedding.

  Returns:
    ``(n,)`` squared Euclidean distances (clipped at 0), without forming any embedding.
  """
  sq = jnp.sum(a * a, axis=-1) * jnp.sum(h * h, axis=-1)
  sq_c = jnp.sum(a_c * a_c) * jnp.sum(h_c * h_c)
  inner = (a @ a_c) * (h @ h_c)
  return jnp.maximum(sq + sq_c - 2.0 * inner, 0.0)


@functools.partial(jax.jit, static_argnames=("k",))
def kmeans_pp_factorized(key: jax.Array, a: jax.Array, h: jax.Array, k: int) -> jax.Array:
  """k-means++ seeding on the embeddings ``outer(h_i, a_i)``.

  Args:
    key: PRNG key; the same key gives the same picks.
    a, h: ``(n, C)`` and ``(n, d)`` factors.
    k: number of centers, ``k <= n``.

  Returns:
    ``(k,)`` int32 distinct row indices: first the largest-norm row, then D^2 sampling.
  """
  n = a.shape[0]
  sq_norms = jnp.sum(a * a, axis=-1) * jnp.sum(h * h, axis=-1)
  first = jnp.argmax(sq_norms).astype(jnp.int32)
  chosen = jnp.zeros((n,), jnp.bool_).at[first].set(True)
  min_d = factorized_sq_distances(a, h, a[first], h[first])
  picks = jnp.zeros((k,), jnp.int32).at[0].set(first)

  def body(t, carry):
    picks, chosen, min_d = carry
    weights = jnp.where(chosen, 0.0, min_d)
    total = jnp.sum(weights)
    # D^2 sampling; uniform over the rest when every remaining distance is zero
    logits = jnp.where(total > 0,
                       jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)),
                                 -jnp.inf),
                       jnp.where(chosen, -jnp.inf, 0.0))
    c = jax.random.categorical(jax.random.fold_in(key, t), logits).astype(jnp.int32)
    min_d = jnp.minimum(min_d, factorized_sq_distances(a, h, a[c], h[c]))
    return picks.at[t].set(c), chosen.at[c].set(True), min_d

  picks, _, _ = jax.lax.fori_loop(1, k, body, (picks, chosen, min_d))
  return picks


def _factor_rows(embed_fn, params, x):
  return gradient_factors(embed_fn(params, x), params["head"]["kernel"], params["head"]["bias"])


class Badge(StatelessStrategy):
  """k-means++ on last-layer gradient embeddings of the unlabeled pool.

  Args:
    chunk_size: pool rows per forward pass when computing features (memory bound).
  """

  def __init__(self, *, chunk_size: int | None = 256):
    self.chunk_size = check_chunk_size(chunk_size)

  def factors(self, ctx: Context, idx: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """``(a (n, C), h (n, d))`` for pool rows ``idx`` (ValueError on NaN/inf outputs)."""
    head_params(ctx, "badge")
    a, h = map_rows(RowFn(_factor_rows, (require_embed_fn(ctx, "badge"),)), ctx.params, ctx.x,
                    jnp.asarray(idx, jnp.int32), chunk_size=self.chunk_size)
    check_finite(a, "model outputs (logits)")
    check_finite(h, "model outputs (penultimate features)")
    return a, h

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    idx = ctx.unlabeled_indices()
    a, h = self.factors(ctx, idx)
    return idx[np.asarray(kmeans_pp_factorized(key, a, h, budget))]


@register("badge")
def _badge(*, chunk_size: int | None = 256) -> Badge:
  return Badge(chunk_size=chunk_size)
