"""Core-set: greedy k-center on penultimate features (Sener & Savarese, ICLR 2018).

    strategy = assljax.acquisition.get("coreset", chunk_size=256)
    idx = strategy(key, ctx, budget)

Labeled points are the initial centers. Each step adds the unlabeled point farthest
(Euclidean) from its nearest center and lowers every point's nearest-center distance
with the new center, so the state is one ``(n,)`` vector of minimum distances: memory
O(n d) for the features plus O(n), never an ``n x n`` matrix. The initial distances to
the labeled set are computed ``chunk_size`` rows at a time against all labeled
features (``chunk_size x l`` floats).

With an empty labeled set the first center is drawn uniformly from the unlabeled pool
with ``key`` (as in the reference implementation); otherwise the strategy is
deterministic. Ties go to the lower index.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from assljax import parallel
from assljax._chunking import chunked_map
from assljax._validation import check_chunk_size
from assljax.acquisition.base import Context, StatelessStrategy, register
from assljax.acquisition.uncertainty import pool_features


def sq_distances_to_point(features: jax.Array, center: jax.Array) -> jax.Array:
  """``||features_i - center||^2`` for ``features`` ``(n, d)`` and ``center`` ``(d,)``."""
  return jnp.sum(jnp.square(features - center[None, :]), axis=-1)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def min_sq_distances(features: jax.Array, centers: jax.Array, *,
                     chunk_size: int | None) -> jax.Array:
  """``min_c ||features_i - centers_c||^2`` ``(n,)``, streamed over rows of ``features``.

  Args:
    features: ``(n, d)``.
    centers: ``(l, d)``, ``l >= 1``.
    chunk_size: rows of ``features`` per step (``chunk_size x l`` floats live at once).
  """
  sq_c = jnp.sum(centers * centers, axis=-1)

  def rows(f):
    sq_f = jnp.sum(f * f, axis=-1)
    d = sq_f[:, None] + sq_c[None, :] - 2.0 * (f @ centers.T)
    return jnp.maximum(jnp.min(d, axis=-1), 0.0)

  return chunked_map(rows, features, chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("k",))
def k_center_greedy(features: jax.Array, min_d: jax.Array, k: int) -> jax.Array:
  """Greedy k-center from initial nearest-center distances.

  Args:
    features: ``(n, d)`` candidate features.
    min_d: ``(n,)`` squared distance of each candidate to its nearest existing center
      (``+inf`` where there is none yet).
    k: number of picks, ``k <= n``.

  Returns:
    ``(k,)`` int32 distinct rows of ``features``, in the order picked.
  """
  n = features.shape[0]
  # under a data mesh the rows stay sharded; indexing one row of a sharded array would
  # make XLA gather the whole array on every device
  sharded = parallel.current_data_axis() is not None
  if sharded:
    features, min_d = parallel.constrain_rows((features, min_d))

  def body(t, carry):
    picks, chosen, min_d = carry
    c = jnp.argmax(jnp.where(chosen, -jnp.inf, min_d)).astype(jnp.int32)
    if sharded:  # a masked sum (one all-reduce of d floats), not a gather of the rows
      center = jnp.sum(jnp.where((jnp.arange(n) == c)[:, None], features, 0.0), axis=0)
    else:
      center = features[c]
    min_d = jnp.minimum(min_d, sq_distances_to_point(features, center))
    return picks.at[t].set(c), chosen.at[c].set(True), min_d

  init = (jnp.zeros((k,), jnp.int32), jnp.zeros((n,), jnp.bool_), min_d)
  return jax.lax.fori_loop(0, k, body, init)[0]


def initial_min_distances(key: jax.Array, ctx: Context, features_u: jax.Array, *,
                          chunk_size: int | None, name: str) -> jax.Array:
  """Squared distances ``(n_u,)`` from unlabeled features to the nearest labeled one.

  With no labeled point, one uniformly drawn unlabeled row (from ``key``) gets ``+inf``
  and every other row the largest finite float, so the drawn row is the first center.
  """
  lab = ctx.labeled_indices()
  n_u = features_u.shape[0]
  if lab.size == 0:
    first = jax.random.randint(key, (), 0, n_u)
    return jnp.full((n_u,), jnp.finfo(features_u.dtype).max, features_u.dtype).at[first].set(
        jnp.inf)
  features_l = pool_features(ctx, lab, chunk_size=chunk_size, name=name)
  return min_sq_distances(features_u, features_l, chunk_size=chunk_size)


class Coreset(StatelessStrategy):
  """Greedy k-center on ``ctx.embed_fn`` features with labeled points as centers.

  Args:
    chunk_size: pool rows per forward pass / distance block (memory bound).
  """

  def __init__(self, *, chunk_size: int | None = 256):
    self.chunk_size = check_chunk_size(chunk_size)

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    idx = ctx.unlabeled_indices()
    features_u = pool_features(ctx, idx, chunk_size=self.chunk_size, name="coreset")
    min_d = initial_min_distances(key, ctx, features_u, chunk_size=self.chunk_size,
                                  name="coreset")
    return idx[np.asarray(k_center_greedy(features_u, min_d, budget))]


@register("coreset")
def _coreset(*, chunk_size: int | None = 256) -> Coreset:
  return Coreset(chunk_size=chunk_size)
