"""Haynsworth inertia counts for the bordered and feature-space solvers (DESIGN §4).

For ``M = [[A, B], [Bᵀ, D]]`` with ``A = Q diag(Λ) Qᵀ`` and ``Z = Qᵀ B``, the number of
eigenvalues of ``M`` below ``x`` is ``#{Λ_i < x} + #{eig S(x) < 0}`` with the ``g x g``
Schur complement ``S(x) = D - σ x I - Zᵀ diag(1 / (Λ - x)) Z`` (``σ = 1``; the
feature-space solver counts ``A + U Uᵀ`` with ``σ = 0``, ``D = -I`` and an offset of
``-g``). Every function takes a chunk of ``c`` candidates at once: ``lam (l,)``,
``Z (c, l, g)``, ``D (c, g, g)``, ``x (c,)``.

Next to a pole ``S(x)`` is too ill-conditioned to count with in float32 (an interior
eigenvalue just below a pole was once returned as the pole), so :func:`checked_count`
redoes a count whose sign may be rounding with the nearest poles kept unreduced
(:func:`_deflated_count`).

JAX's batched ``eigh`` is a loop on CPU (and slow above n = 32 on GPU): only the tiny
``g x g`` (or ``(r + g) x (r + g)``) matrices here are ever decomposed, one per
candidate, through :func:`per_matrix`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from assljax import parallel

_NEAR_POLES = 2      # poles kept out of the Schur complement by _deflated_count
_COUNT_NOISE = 2.0   # multiple of eps in the rounding bound of S(x)'s eigenvalues
_RECOUNT_BATCH = 8   # rows redone per pass (update_rows)


def sym(M: jax.Array) -> jax.Array:
  """The symmetric part ``(M + Mᵀ) / 2`` of ``(..., n, n)`` matrices."""
  return 0.5 * (M + jnp.swapaxes(M, -1, -2))


def per_matrix(fn: Callable, *batches: jax.Array) -> Any:
  """``fn(*batches)`` for a LAPACK-backed ``fn`` on ``(c, ...)`` batches of matrices.

  jaxlib's batch-splitting CPU LAPACK kernels can deadlock XLA's thread pool
  (:func:`assljax.parallel.one_matrix_per_lapack_call`), so on CPU the batch is mapped
  one matrix per call; on GPU/TPU it is one batched call.
  """
  if batches[0].shape[0] <= 1 or not parallel.one_matrix_per_lapack_call():
    return fn(*batches)
  return jax.lax.map(lambda one: fn(*one), batches)


def per_row(fn: Callable, rows: jax.Array, batches: tuple[jax.Array, ...],
            fill: jax.Array) -> jax.Array:
  """``fn`` of one candidate's rows where ``rows``, ``fill``'s row elsewhere.

  Args:
    fn: ``(*one row of each batch) -> (k,)``.
    rows: ``(c,)`` bool, the rows to compute.
    batches: ``(c, ...)`` arrays.
    fill: ``(c, k)``, the result of the other rows.

  On CPU a loop visits only the rows to compute, one at a time (so a row costs only its
  own work, and LAPACK calls inside ``fn`` take one matrix each, see
  :func:`per_matrix`); on GPU and TPU ``jax.vmap`` computes every row (batched calls).
  """
  if not parallel.one_matrix_per_lapack_call():
    return jnp.where(rows[:, None], jax.vmap(fn)(*batches), fill)
  c = rows.shape[0]
  order = jnp.nonzero(rows, size=c, fill_value=0)[0]                  # wanted rows first

  def body(i, out):
    r = order[i]
    one = [jax.lax.dynamic_index_in_dim(b, r, keepdims=False) for b in batches]
    return jax.lax.dynamic_update_index_in_dim(out, fn(*one), r, 0)

  return jax.lax.fori_loop(0, jnp.sum(rows.astype(jnp.int32)), body, fill)


def poles(lam, x):
  """``Λ - x`` ``(c, l)`` as ``raw`` and moved off the poles (closer than ``eps^2`` to that
  distance) as ``diff``, ``w = 1 / diff`` and ``#{Λ < x}`` ``(c,)``."""
  eps = jnp.finfo(x.dtype).eps
  tiny = eps * eps
  raw = lam[None, :] - x[:, None]                                     # (c, l)
  diff = jnp.where(jnp.abs(raw) < tiny, jnp.where(raw < 0, -tiny, tiny), raw)
  below = jnp.sum((lam[None, :] < x[:, None]).astype(jnp.int32), axis=1)  # (c,)
  return raw, diff, 1.0 / diff, below


def schur(lam, Z, D, x, *, sigma: float):
  """``S(x) = D - sigma x I - Zᵀ diag(1 / (Λ - x)) Z`` ``(c, g, g)`` and :func:`poles`'s
  ``raw, diff, w, below``."""
  g = Z.shape[2]
  raw, diff, w, below = poles(lam, x)
  eye = jnp.eye(g, dtype=Z.dtype)
  S = D - sigma * x[:, None, None] * eye[None] - jnp.matmul(
      jnp.swapaxes(Z, 1, 2), Z * w[:, :, None])
  return sym(S), raw, diff, w, below


def noise_from_norms(dnorm, zz, x, w, *, sigma: float):
  """:func:`schur_noise` from ``dnorm = ||D||_F`` ``(c,)`` and ``zz = ||z_i||²`` ``(c, l)``."""
  eps = jnp.finfo(x.dtype).eps
  return _COUNT_NOISE * eps * (dnorm + jnp.abs(sigma * x) + jnp.sum(zz * jnp.abs(w), axis=1))


def schur_noise(Z, D, x, w, *, sigma: float):
  """``(c,)`` rounding bound of ``S(x)``'s computed eigenvalues (and Rayleigh quotients):
  ``_COUNT_NOISE eps (||D|| + |σ x| + Σ_i ||z_i||² / |Λ_i - x|)``."""
  return noise_from_norms(jnp.sqrt(jnp.sum(D * D, axis=(1, 2))), jnp.sum(Z * Z, axis=2), x, w,
                          sigma=sigma)


def _deflated_count(lam, Z, D, x, raw, w, *, sigma: float, offset: int):
  """``(c,)`` number of eigenvalues of ``M`` below ``x``, robust next to a pole.

  Next to a pole ``Λ_p`` the entries of ``S(x)`` grow like ``1 / |Λ_p - x|`` and their
  rounding can flip the sign of the eigenvalue that decides the count (seen in float32
  for an interior eigenvalue 3e-4 below a pole: the solver then converged onto the
  pole). Here the ``_NEAR_POLES`` poles nearest to ``x`` stay unreduced::

      T(x) = [[diag(Λ_N - x), Z_N], [Z_Nᵀ, D - σ x I - Z_Fᵀ diag(1 / (Λ_F - x)) Z_F]]

  and ``#{eig M < x} = #{Λ_F < x} + #{eig T(x) < 0}`` (Haynsworth on the far poles
  only), with ``T``'s entries bounded by the distance to the next pole instead.
  ``raw = Λ - x`` ``(c, l)`` and ``w`` are :func:`schur`'s.
  """
  dtype = Z.dtype
  l, g = Z.shape[1], Z.shape[2]
  r = min(_NEAR_POLES, l)
  eye = jnp.eye(g, dtype=dtype)
  if r == 0:
    T, below_far = D - sigma * x[:, None, None] * eye[None], jnp.zeros(x.shape, jnp.int32)
  else:
    near = jax.lax.top_k(-jnp.abs(raw), r)[1]                        # (c, r)
    is_near = jnp.any(jnp.arange(l)[None, None, :] == near[:, :, None], axis=1)  # (c, l)
    S_far = D - sigma * x[:, None, None] * eye[None] - jnp.matmul(
        jnp.swapaxes(Z, 1, 2), Z * jnp.where(is_near, 0.0, w)[:, :, None])
    Z_near = jnp.take_along_axis(Z, near[:, :, None], axis=1)        # (c, r, g)
    raw_near = jnp.take_along_axis(raw, near, axis=1)                # (c, r)
    top = jnp.concatenate([raw_near[:, :, None] * jnp.eye(r, dtype=dtype)[None], Z_near],
                          axis=2)
    bottom = jnp.concatenate([jnp.swapaxes(Z_near, 1, 2), S_far], axis=2)
    T = jnp.concatenate([top, bottom], axis=1)                       # (c, r + g, r + g)
    below_far = jnp.sum(((raw < 0) & ~is_near).astype(jnp.int32), axis=1)
  # a diagonal congruence keeps the inertia (Sylvester) and evens out T's scales (next to
  # a cluster of poles its diagonal mixes |Λ_N - x| ~ 0 with 1 / |Λ_F - x| >> 1)
  T = sym(T)
  diag = jnp.abs(jnp.diagonal(T, axis1=1, axis2=2))
  floor = jnp.finfo(dtype).eps ** 2 * jnp.max(diag, axis=1, keepdims=True)
  d = jax.lax.rsqrt(jnp.maximum(diag, jnp.maximum(floor, jnp.finfo(dtype).tiny)))
  mu = per_matrix(jnp.linalg.eigvalsh, T * d[:, :, None] * d[:, None, :])
  return below_far + jnp.sum((mu < 0).astype(jnp.int32), axis=1) + offset


def update_rows(todo, fn, inputs, outputs):
  """``outputs`` with the rows where ``todo`` replaced by ``fn(*inputs[rows])``.

  The rows to redo are few (a few percent of a chunk per step), so they are gathered
  ``_RECOUNT_BATCH`` at a time rather than redoing the whole chunk.

  Args:
    todo: ``(c,)`` bool, the rows to redo.
    fn: ``(*inputs rows) -> tuple`` shaped like ``outputs`` with ``b`` rows.
    inputs: tuple of ``(c, ...)`` arrays, gathered per pass.
    outputs: tuple of ``(c, ...)`` arrays.

  Returns:
    ``outputs`` updated, as a tuple.
  """
  batch = min(_RECOUNT_BATCH, todo.shape[0])

  def body(state):
    outs, todo = state
    pick = jax.lax.top_k(todo.astype(jnp.int32), batch)[1]           # todo ones first
    take = lambda a: jnp.take(a, pick, axis=0)
    redo = take(todo)
    fixed = fn(*map(take, inputs))
    outs = tuple(
        o.at[pick].set(jnp.where(redo.reshape((-1,) + (1,) * (o.ndim - 1)), new, take(o)))
        for o, new in zip(outs, fixed))
    return outs, todo.at[pick].set(False)

  return jax.lax.while_loop(lambda state: jnp.any(state[1]), body, (tuple(outputs), todo))[0]


def checked_count(lam, Z, D, x, atol, *, sigma: float, offset: int):
  """``(c,)`` number of eigenvalues below ``x``, and ``S(x)``'s pieces ``(S, raw, diff,
  w, below, mu, V)`` (``mu, V``: ascending eigenpairs of ``S``).

  The count is Haynsworth's ``#{Λ < x} + #{eig S(x) < 0}``. ``S``'s computed
  eigenvalues are within about ``err = eps (||D|| + Σ_i ||z_i||² / |Λ_i - x|)`` of the
  exact ones, so an eigenvalue ``μ_m`` closer to 0 than that may have the wrong sign,
  and the count with it. That matters only when the eigenvalue of ``M`` it stands for,
  about ``μ_m / slope_m`` away (``slope_m = -dμ_m/dx = σ + Σ_i (z_iᵀ v_m)² / (Λ_i -
  x)²``), may lie farther than ``atol`` from ``x``, i.e. next to a pole. The slope is
  taken for the eigenvalue nearest 0 (two within ``err`` of 0 count as unsure). Unsure
  counts are redone on the pole-deflated matrix (through :func:`update_rows`).
  """
  S, raw, diff, w, below = schur(lam, Z, D, x, sigma=sigma)
  mu, V = per_matrix(jnp.linalg.eigh, S)                              # ascending
  count = below + jnp.sum((mu < 0).astype(jnp.int32), axis=1) + offset
  err = schur_noise(Z, D, x, w, sigma=sigma)
  small = jnp.abs(mu) <= err[:, None]                                   # (c, g)
  # the slope of the eigenvalue nearest 0 only (O(l g), not O(l g²)); two small ones: unsure
  nearest = jnp.argmin(jnp.abs(mu), axis=1)
  v = jnp.take_along_axis(V, nearest[:, None, None], axis=2)[:, :, 0]   # (c, g)
  zv = jnp.matmul(Z, v[:, :, None])[:, :, 0]                            # (c, l)
  slope = sigma + jnp.sum(zv * zv * w * w, axis=1)                      # (c,)
  n_small = jnp.sum(small.astype(jnp.int32), axis=1)
  unsure = (n_small >= 2) | ((n_small == 1) & (err > atol * slope))
  recount = lambda *rows: (_deflated_count(lam, *rows, sigma=sigma, offset=offset),)
  count, = update_rows(unsure, recount, (Z, D, x, raw, w), (count,))
  return count, (S, raw, diff, w, below, mu, V)


def count_below(lam, Z, D, x, atol, *, sigma: float, offset: int):
  """``(c,)`` number of eigenvalues below ``x`` (see :func:`checked_count`)."""
  return checked_count(lam, Z, D, x, atol, sigma=sigma, offset=offset)[0]
