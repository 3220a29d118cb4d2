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
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from assljax import parallel
from assljax._chunking import chunked_map
from assljax.kernels.spectral._inertia import sym
from assljax.kernels.spectral._inputs import Blocks, Features
from assljax.kernels.spectral._roots import EXACT_STEPS
from assljax.kernels.spectral._solvers import SOLVERS, Method, Plan, dense_chunk


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


def _project_pool(index: jax.Array | None, pool_rows: int) -> bool:
  """Whether to project a pool of index-set candidates once rather than per candidate:
  when it has no more rows than the candidates gather (NPC and CRC pass exactly the
  rows their candidates use)."""
  return index is not None and pool_rows <= index.size


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

  def border(self, Q, transposed=False):
    if _project_pool(self._index, self._pool.shape[1]):
      # every pool column serves many candidates: project the pool once, not per
      # candidate, and keep a sample's projection contiguous (a row) for the gathers
      projected = jnp.matmul(self._pool.T / self._scale, Q)           # (N, l) = (Qᵀ K_LU)ᵀ
      pool_ok = _rows_finite(self._pool.T)

      def chunk(ids):
        rows = _rows(self._index, ids)
        Zt = jnp.take(projected, rows, axis=0)                        # (c, g, l)
        D = _rows(self._kgg, ids) / self._scale
        return (Zt if transposed else jnp.swapaxes(Zt, 1, 2), D,
                jnp.all(pool_ok[rows], axis=1) & _rows_finite(D))
      return chunk

    def chunk(ids):
      B, D, ok = self.blocks(ids)
      if transposed:
        return jnp.einsum("clg,lk->cgk", B, Q), D, ok                 # (Qᵀ B)ᵀ (c, g, l)
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

  def border(self, Q, transposed=False):
    P = jnp.matmul(Q.T, self.labeled_features)                          # Qᵀ Φ_L (l, d)
    if _project_pool(self._index, self._pool.shape[0]):
      # as for _BlockSource.border: the pool's projection once, a row per sample
      projected = jnp.matmul(self._pool / self._feat_scale, P.T)        # (N, l)
      pool_ok = _rows_finite(self._pool)

      def chunk(ids):
        rows = _rows(self._index, ids)
        U = jnp.take(self._pool, rows, axis=0) / self._feat_scale       # (c, g, d)
        Zt = jnp.take(projected, rows, axis=0)                          # (c, g, l)
        return (Zt if transposed else jnp.swapaxes(Zt, 1, 2),
                jnp.matmul(U, jnp.swapaxes(U, 1, 2)), jnp.all(pool_ok[rows], axis=1))
      return chunk

    def chunk(ids):
      U, ok = self.features(ids)
      Zt = jnp.matmul(U, P.T[None])                                     # (c, g, l)
      return (Zt if transposed else jnp.swapaxes(Zt, 1, 2), jnp.matmul(U, jnp.swapaxes(U, 1, 2)),
              ok)
    return chunk

  def projected(self, Q):
    if _project_pool(self._index, self._pool.shape[0]):
      projected = jnp.matmul(self._pool / self._feat_scale, Q)         # (N, d), once
      pool_ok = _rows_finite(self._pool)

      def chunk(ids):
        rows = _rows(self._index, ids)
        Y = jnp.swapaxes(jnp.take(projected, rows, axis=0), 1, 2)      # (c, d, g)
        return Y, jnp.all(pool_ok[rows], axis=1)
      return chunk

    def chunk(ids):
      U, ok = self.features(ids)
      return jnp.matmul(Q.T[None], jnp.swapaxes(U, 1, 2)), ok          # (c, d, g)
    return chunk


COMPACT_MIN_CANDIDATES = 16384   # exact solves of at least this many candidates compact


def _source(inputs: Blocks | Features, scale: jax.Array) -> _BlockSource | _FeatureSource:
  return (_FeatureSource if isinstance(inputs, Features) else _BlockSource)(inputs, scale)


def _solve_chunk(plan: Plan, ids: jax.Array | None, steps: jax.Array) -> jax.Array:
  """``(c,)`` the plan's values (or bounds, see ``Plan.solve``) for candidates ``ids``;
  NaN where a candidate's inputs are not finite."""
  args, ok = plan.gather(ids)
  # under a data mesh each device iterates on its own candidates
  out = parallel.per_device(plan.solve, *args, steps, rows=(*plan.rows, False))
  return jnp.where(ok, out, jnp.nan)


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
  source = _source(inputs, scale)
  # compacting the slowest rows saves ~25% of the iteration but compiles a second copy of
  # the loop (~1.5 s on CPU), so only large exact solves use it (the general loop: the
  # plain bordered solve skips finished rows itself, _roots.kth_eigenvalue)
  compact = bound_steps is None and inputs.m >= COMPACT_MIN_CANDIDATES
  plan = SOLVERS[method](source, positive_only=positive_only, rtol=rtol, compact=compact)
  steps = jnp.asarray(EXACT_STEPS if bound_steps is None else bound_steps, jnp.int32)
  out = _chunked(lambda ids: _solve_chunk(plan, ids, steps), inputs.m, chunk_size)
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


class Argmax(NamedTuple):
  """The result of :func:`assljax.kernels.spectral.argmax_min_eigenvalue`.

  Attributes:
    index: ``()`` int32, the candidate with the largest value, the first among equals.
    value: ``()`` its value (NaN if some candidate scored NaN).
    num_solved: ``()`` int32, candidates solved exactly (the rest were dropped by their
      bound).
  """
  index: jax.Array
  value: jax.Array
  num_solved: jax.Array


# the phases of :func:`argmax`'s loop
_BOUND, _FIRST, _REFINE, _EXACT = range(4)


class _Search(NamedTuple):
  """:func:`argmax`'s loop state: a queue of candidates walked a block at a time."""
  phase: jax.Array        # () int32, one of _BOUND, _FIRST, _REFINE, _EXACT
  bounds: jax.Array       # (padded + 1,) upper bounds (the last entry: a sink for padding)
  queue: jax.Array        # (padded,) int32 candidates, in the order the phase walks them
  start: jax.Array        # () int32, the phase's next position in the queue
  length: jax.Array       # () int32, the queue's entries that the phase walks
  best_value: jax.Array   # () the best exact value so far
  best_index: jax.Array   # () int32, its candidate
  solved: jax.Array       # () int32, candidates solved exactly
  nan_seen: jax.Array     # () bool, some exact value was NaN


@functools.partial(jax.jit, static_argnames=("method", "positive_only", "chunk_size",
                                             "bound_steps", "refine_steps"))
def argmax(inputs: Blocks | Features, scale: jax.Array, rtol: jax.Array, *, method: Method,
           positive_only: bool, chunk_size: int | None, bound_steps: int,
           refine_steps: int | None) -> Argmax:
  """The candidate with the largest :func:`score`, solving few of them exactly.

  Phases, in blocks of ``chunk_size`` candidates per device of the data mesh (all of
  them for None):

  1. every candidate is bounded from above (``bound_steps`` root-finder steps, certified
     by the inertia count);
  2. the block of highest bounds is solved exactly, giving a best value;
  3. with ``refine_steps``, when more than a block of candidates can still reach that
     value, those are bounded again with ``refine_steps`` steps (tighter bounds, fewer
     exact solves) and re-sorted;
  4. blocks, highest bounds first, are solved exactly until no bound left can reach the
     best value (an equal bound can only tie, and win only from a smaller candidate
     number; equal bounds are walked in candidate order).

  A candidate left out has a bound, hence a value, below the best value (or could only
  tie it from behind), so the result is ``argmax(score(...))``, the first among equals.
  Every phase runs through one ``while_loop`` around one per-block solve (the step count
  is an argument of it), so the solver's loop is compiled once. The bordered and
  feature-space methods only (the dense solver has no bounds).
  """
  m = inputs.m
  plan = SOLVERS[method](_source(inputs, scale), positive_only=positive_only, rtol=rtol)
  found = parallel.current_data_axis()
  block = m if chunk_size is None else min(m, chunk_size * (found[1] if found else 1))
  padded = -(-m // block) * block
  arange = jnp.arange(block, dtype=jnp.int32)
  slots = jnp.arange(padded, dtype=jnp.int32)
  dtype = inputs.labeled.dtype

  def reaches(bound, index, best_value, best_index):
    return (bound > best_value) | ((bound == best_value) & (index < best_index))

  def sorted_queue(bounds, queue, length):
    """The first ``length`` entries of ``queue`` by decreasing bound (stable), then the rest."""
    key = jnp.where(slots < length, -bounds[queue], jnp.inf)
    return jnp.take(queue, jnp.argsort(key, stable=True))

  def body(state: _Search) -> _Search:
    pos = state.start + arange
    valid = pos < state.length
    ids = jnp.minimum(jnp.take(state.queue, jnp.minimum(pos, padded - 1)), m - 1)
    steps = jnp.select([state.phase == _BOUND, state.phase == _REFINE],
                       [bound_steps, refine_steps or 1], EXACT_STEPS).astype(jnp.int32)
    values = chunked_map(lambda ids: _solve_chunk(plan, ids, steps), ids,
                         chunk_size=chunk_size)
    nan = jnp.isnan(values)
    last = state.start + block >= state.length

    def record_bounds(state):
      # a NaN bound (non-finite inputs, only when traced) sorts first and gets solved;
      # a second bound replaces the first only where tighter
      target = jnp.where(valid, ids, padded)
      bounds = state.bounds.at[target].set(
          jnp.minimum(jnp.where(nan, jnp.inf, values),
                      jnp.where(state.phase == _BOUND, jnp.inf, state.bounds[target])))
      following = jnp.where(state.phase == _BOUND, _FIRST, _EXACT)
      queue = jax.lax.cond(last, lambda: sorted_queue(bounds, state.queue, state.length),
                           lambda: state.queue)
      return state._replace(phase=jnp.where(last, following, state.phase), bounds=bounds,
                            queue=queue, start=jnp.where(last, 0, state.start + block))

    def record_values(state):
      exact = jnp.where(valid & ~nan, values, -jnp.inf)
      top = jnp.max(exact)
      top_index = jnp.min(jnp.where(exact == top, ids, m))
      better = reaches(top, top_index, state.best_value, state.best_index)
      best_value = jnp.where(better, top, state.best_value)
      best_index = jnp.where(better, top_index, state.best_index)
      start = state.start + block
      # after the first block: refine when more than a block can still reach the best
      contender = (slots >= start) & (slots < state.length) & reaches(
          state.bounds[state.queue], state.queue, best_value, best_index)
      count = jnp.sum(contender.astype(jnp.int32))
      refine = (refine_steps is not None) & (state.phase == _FIRST) & (count > block)
      queue = jax.lax.cond(refine,   # the contenders first, in their order
                           lambda: jnp.take(state.queue, jnp.argsort(~contender, stable=True)),
                           lambda: state.queue)
      return state._replace(
          phase=jnp.where(refine, _REFINE, _EXACT), queue=queue,
          start=jnp.where(refine, 0, start), length=jnp.where(refine, count, state.length),
          best_value=best_value, best_index=best_index,
          solved=state.solved + jnp.sum(valid.astype(jnp.int32)),
          nan_seen=state.nan_seen | jnp.any(valid & nan))

    # _BOUND and _REFINE record bounds, _FIRST and _EXACT values: one copy of each
    return jax.lax.cond(state.phase % 2 == _BOUND % 2, record_bounds, record_values, state)

  def cond(state: _Search) -> jax.Array:
    nxt = state.queue[jnp.minimum(state.start, padded - 1)]
    more = (state.start < state.length) & reaches(state.bounds[nxt], nxt, state.best_value,
                                                  state.best_index)
    return (state.phase != _EXACT) | more

  state = _Search(phase=jnp.asarray(_BOUND, jnp.int32),
                  bounds=jnp.full((padded + 1,), -jnp.inf, dtype), queue=slots,
                  start=jnp.zeros((), jnp.int32), length=jnp.asarray(m, jnp.int32),
                  best_value=jnp.full((), -jnp.inf, dtype), best_index=jnp.zeros((), jnp.int32),
                  solved=jnp.zeros((), jnp.int32), nan_seen=jnp.zeros((), bool))
  state = jax.lax.while_loop(cond, body, state)
  labeled_ok = jnp.all(jnp.isfinite(inputs.labeled))
  value = jnp.where(labeled_ok & ~state.nan_seen, state.best_value * scale, jnp.nan)
  return Argmax(state.best_index, value, state.solved)
