"""The driver: candidate sources, chunking and per-device dispatch.

:func:`score` turns validated inputs (``_inputs.Blocks`` or ``_inputs.Features``) into a
candidate source in scaled units (:class:`_BlockSource`, :class:`_FeatureSource`: they
hide whether candidates are explicit arrays or index sets into a pool), asks the solver
table for a plan (``_solvers.SOLVERS``), streams candidate ids through
:func:`assljax._chunking.chunked_map` and runs each chunk's iterative solve through
:func:`assljax.parallel.per_device`, so that under a data mesh every device iterates on
its own candidates. :func:`independent` does the same for a batch of unrelated matrices
(:func:`assljax.kernels.spectral.min_eigenvalues`).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from assljax import parallel
from assljax._chunking import chunked_map
from assljax.kernels.spectral._inertia import sym
from assljax.kernels.spectral._inputs import Blocks, Features
from assljax.kernels.spectral._solvers import SOLVERS, Method, dense_chunk


def _rows(a: jax.Array, ids: jax.Array | None) -> jax.Array:
  """Rows ``ids`` of a per-candidate array (all of it for the single-chunk call)."""
  return a if ids is None else jnp.take(a, ids, axis=0)


def _rows_finite(*arrays: jax.Array) -> jax.Array:
  """``(c,)``: whether every entry of each candidate's arrays is finite."""
  ok = None
  for a in arrays:
    r = jnp.all(jnp.isfinite(a.reshape(a.shape[0], -1)), axis=1)
    ok = r if ok is None else ok & r
  return ok


def _chunked(fn: Callable[[jax.Array | None], jax.Array], m: int,
             chunk_size: int | None) -> jax.Array:
  """``fn(None)`` in one go, or ``fn`` over chunks of the candidate ids ``arange(m)``.

  Rows are gathered per chunk inside ``fn``; the inputs are never copied.
  """
  if chunk_size is None or chunk_size >= m:
    return fn(None)
  return chunked_map(fn, jnp.arange(m, dtype=jnp.int32), chunk_size=chunk_size)


# --------------------------------------------------------------------------------------
# candidate sources (see _solvers.CandidateSource)


class _BlockSource:
  """Gram blocks ``K_LL``, ``K_LG`` (or ``K_LU`` with an index), ``K_GG`` over ``scale``."""

  def __init__(self, inputs: Blocks, scale: jax.Array):
    self._A = sym(inputs.K_LL / scale)
    self._pool, self._kgg, self._index, self._scale = (inputs.K_LG, inputs.K_GG, inputs.index,
                                                       scale)
    self.l, self.g = inputs.l, inputs.g

  def labeled_gram(self) -> jax.Array:
    return self._A

  def blocks(self, ids):
    if self._index is None:
      B = _rows(self._pool, ids)
    else:
      B = jnp.moveaxis(jnp.take(self._pool, _rows(self._index, ids), axis=1), 0, 1)
    B, D = B / self._scale, _rows(self._kgg, ids) / self._scale
    return B, D, _rows_finite(B, D)

  def border(self, Q):
    def chunk(ids):
      B, D, ok = self.blocks(ids)
      return jnp.matmul(Q.T[None], B), D, ok                          # Qᵀ B (c, l, g)
    return chunk


class _FeatureSource:
  """Features ``Φ_L`` and ``Φ_G`` (or ``Φ_U`` with an index) over ``sqrt(scale)``."""

  def __init__(self, inputs: Features, scale: jax.Array):
    self._feat_scale = jnp.sqrt(scale)
    self.labeled_features = inputs.phi_L / self._feat_scale
    self._pool, self._index = inputs.phi_G, inputs.index
    self.l, self.g = inputs.l, inputs.g

  def labeled_gram(self) -> jax.Array:
    phi_L = self.labeled_features
    return sym(jnp.matmul(phi_L, phi_L.T))

  def _gather(self, ids):
    if self._index is None:
      U = _rows(self._pool, ids)
    else:
      U = jnp.take(self._pool, _rows(self._index, ids), axis=0)
    return U / self._feat_scale                                        # (c, g, d)

  def features(self, ids):
    U = self._gather(ids)
    return U, _rows_finite(U)

  def blocks(self, ids):
    U = self._gather(ids)
    B = jnp.matmul(self.labeled_features[None], jnp.swapaxes(U, 1, 2))
    D = jnp.matmul(U, jnp.swapaxes(U, 1, 2))
    return B, D, _rows_finite(B, D)

  def border(self, Q):
    P = jnp.matmul(Q.T, self.labeled_features)                          # Qᵀ Φ_L (l, d)

    def chunk(ids):
      U, ok = self.features(ids)
      return jnp.matmul(P[None], jnp.swapaxes(U, 1, 2)), jnp.matmul(U, jnp.swapaxes(U, 1, 2)), ok
    return chunk


COMPACT_MIN_CANDIDATES = 16384   # exact solves of at least this many candidates compact


# --------------------------------------------------------------------------------------
# entry points (jitted)


@functools.partial(jax.jit,
                   static_argnames=("method", "positive_only", "chunk_size", "bound_steps"))
def score(inputs: Blocks | Features, scale: jax.Array, rtol: jax.Array, *, method: Method,
          positive_only: bool, chunk_size: int | None,
          bound_steps: int | None = None) -> jax.Array:
  """``(m,)`` smallest (positive) eigenvalue of the Gram over labeled ∪ each candidate.

  Args:
    inputs: validated blocks or features (``_inputs.blocks`` / ``_inputs.features``).
    scale: power of two dividing the Gram (``inputs.scale()``).
    rtol: positive-only tolerance, a scalar of the inputs' dtype.
    method: the solver; ``Method.FEATURES`` needs :class:`Features`.
    positive_only: smallest eigenvalue above ``rtol * ||M||_F`` (0 if none).
    chunk_size: candidates per ``lax.map`` step (None: all at once).
    bound_steps: return certified upper bounds after this many root-finder steps
      (``_roots.kth_eigenvalue``); None for the eigenvalues.

  Returns:
    ``(m,)`` eigenvalues (or upper bounds); NaN for candidates with non-finite inputs
    (reachable only when traced: concrete non-finite inputs are refused before).
  """
  source = (_FeatureSource if isinstance(inputs, Features) else _BlockSource)(inputs, scale)
  # compacting the slowest rows saves ~25% of the iteration but compiles a second copy of
  # the loop (~1.5 s on CPU), so only large exact solves use it
  compact = bound_steps is None and inputs.m >= COMPACT_MIN_CANDIDATES
  plan = SOLVERS[method](source, positive_only=positive_only, rtol=rtol,
                         bound_steps=bound_steps, compact=compact)

  def chunk(ids):
    args, ok = plan.gather(ids)
    # under a data mesh each device iterates on its own candidates
    out = parallel.per_device(plan.solve, *args, rows=plan.rows)
    return jnp.where(ok, out, jnp.nan)

  out = _chunked(chunk, inputs.m, chunk_size)
  labeled_ok = jnp.all(jnp.isfinite(inputs.labeled))
  return jnp.where(labeled_ok, out * scale, jnp.nan)


@functools.partial(jax.jit, static_argnames=("positive_only", "chunk_size"))
def independent(K: jax.Array, scale: jax.Array, rtol: jax.Array, *, positive_only: bool,
                chunk_size: int | None) -> jax.Array:
  """Dense smallest (positive) eigenvalue of each of ``K (..., n, n)`` -> ``(...,)``."""
  batch, n = K.shape[:-2], K.shape[-1]
  flat = K.reshape((-1, n, n))

  def chunk(ids):
    return parallel.per_device(
        lambda M, scale, rtol: dense_chunk(M / scale, positive_only=positive_only, rtol=rtol),
        _rows(flat, ids), scale, rtol, rows=(True, False, False))

  out = _chunked(chunk, flat.shape[0], chunk_size) * scale
  finite = jnp.all(jnp.isfinite(flat), axis=(1, 2))
  return jnp.where(finite, out, jnp.nan).reshape(batch)
