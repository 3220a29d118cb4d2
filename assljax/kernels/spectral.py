"""Smallest (positive) eigenvalues of many Gram matrices that share a labeled block.

NPC and CRC score a candidate batch ``G`` by the smallest eigenvalue of the Gram matrix
over ``labeled ∪ G``::

    M = [[K_LL, K_LG],        K_LL (l, l) is the same for every candidate,
         [K_GL, K_GG]]        K_LG (l, g) and K_GG (g, g) change per candidate.

One dense eigendecomposition per candidate costs O((l + g)^3). The solvers here do the
O(l^3) work once and then O(l g^2) per iteration per candidate (DESIGN §4):

* :func:`bordered_min_eigenvalues` eigendecomposes ``K_LL = Q diag(Λ) Qᵀ`` once; with
  ``Z = Qᵀ K_LG`` the Haynsworth inertia formula counts the eigenvalues of ``M`` below
  ``x`` as ``#{Λ_i < x} + #{eig S(x) < 0}`` with the g x g Schur complement
  ``S(x) = K_GG - x I - Zᵀ diag(1 / (Λ - x)) Z``. Every evaluated ``x`` tightens a
  bracket by that count; the next ``x`` is a safeguarded Newton step on the eigenvalue of
  ``S`` that decides the count, with the nearest pole ``Λ_p`` modelled exactly (as in
  LAPACK's secular-equation solver), else bisection: typically 4-6 steps of
  O(l g^2 + g^3). A singular ``K_LL`` is fine: the count is exact whatever ``Λ`` is.
  Next to a pole ``S(x)`` is too ill-conditioned to count with in float32 (an interior
  eigenvalue just below a pole was once returned as the pole), so a count whose sign
  may be rounding is redone with the nearest poles kept unreduced (``_deflated_count``).
* :func:`feature_min_eigenvalues` handles Grams ``M = Φ Φᵀ`` given by features
  ``Φ = [Φ_L; Φ_G]`` of dimension ``d``: the non-zero spectrum of ``Φ Φᵀ`` is that of
  the ``d x d`` matrix ``Φ_Lᵀ Φ_L + Φ_Gᵀ Φ_G``, a rank-g update of a fixed matrix, whose
  inertia is counted the same way (with ``S(x) = -I - Yᵀ diag(1 / (Λ - x)) Y``,
  ``Y = Qᵀ Φ_Gᵀ``). With ``d < l + g`` (last-layer NTK) it costs O(d g^2) per step.
* :func:`min_eigenvalues` is the dense reference for independent matrices
  (``eigvalsh``, chunked), and the fallback for small ``l``.
* :func:`batch_min_eigenvalues` takes either Gram blocks or features (optionally as
  index sets into a pool) and picks the cheapest of the three exact methods.

Positive-only tolerance. With ``positive_only=True`` the solvers return the smallest
eigenvalue **strictly greater than** ``rtol * ||M||_F``, where ``||M||_F`` is the
Frobenius norm of the assembled matrix ``M`` (for a PSD ``M``,
``λ_max(M) <= ||M||_F <= sqrt(rank M) * λ_max(M)``), and exactly ``0`` when no
eigenvalue exceeds it. ``rtol=None`` uses :func:`default_rtol` of the dtype. Every
solver uses this same definition, so their answers agree.

Accuracy: like ``eigvalsh``, each returned eigenvalue is within a few ``eps * λ_max(M)``
of the exact eigenvalue of the (rounded) input (measured below ``5e-7 λ_max`` in
float32); the iteration stops once its bracket is ``4 eps`` times the largest diagonal
entry or eigenvalue of the blocks wide. Inputs are scaled by a power of two internally,
so badly scaled Grams neither overflow nor lose precision.

Class blocks: every solver accepts full class-block Grams, where each entry is a
``C x C`` block (the NTK with ``trace_axes=()``): ``K_LL (l, l, C, C)``,
``K_LG (m, l, g, C, C)``, ``K_GG (m, g, g, C, C)`` (and ``class_blocks=True`` for
:func:`min_eigenvalues`); they are assembled into ``(l + g) C``-square matrices whose row
``i * C + a`` belongs to sample ``i``, class ``a``. Features may likewise carry a class
axis, ``(l, C, d)`` and ``(m, g, C, d)``.

Candidates are streamed through :func:`assljax._chunking.chunked_map` (``lax.map``),
``chunk_size`` at a time, so memory is ``O(chunk_size * l * g)`` beyond the inputs.
Results for a candidate do not depend on the chunking (per-candidate iterations stop
independently). Everything is jitted; inputs keep their floating dtype (float32 by
default, float64 under ``jax_enable_x64``); integer inputs become float32.

Non-finite entries raise ``ValueError`` before any scoring when the inputs are concrete
arrays; when a solver is itself traced inside an outer ``jax.jit`` (so it cannot raise),
candidates with non-finite entries score NaN.

JAX's batched ``eigh`` is a loop on CPU (and slow above n = 32 on GPU), which is why
the hot paths only ever call it on the tiny ``g x g`` Schur complements.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax import parallel
from assljax._chunking import chunked_map

DEFAULT_CHUNK_SIZE = 256

_METHODS = ("auto", "dense", "bordered", "features")


def default_rtol(dtype: Any) -> float:
  """The default positive-only tolerance, relative to ``||M||_F``, for ``dtype``.

  ``1e-5`` for float32 and ``1e-10`` for float64: well above the rounding noise of a
  computed zero eigenvalue (a few ulps of ``λ_max``, ``~1e-7`` and ``~1e-16``), well
  below any eigenvalue one would call "positive".
  """
  return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-10


# --------------------------------------------------------------------------------------
# input handling


def _is_traced(*xs: Any) -> bool:
  return any(isinstance(x, jax.core.Tracer) for x in xs)


def _as_float(x: Any, name: str) -> jax.Array:
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise ValueError(f"{name} must be real, got dtype {x.dtype}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


def _common_dtype(*xs: jax.Array) -> Any:
  return jnp.result_type(*[x.dtype for x in xs])


@jax.jit
def _abs_max(x: jax.Array) -> jax.Array:
  """max |x| (NaN if x has a NaN, inf if it has an infinity); 0 for empty x."""
  if x.size == 0:
    return jnp.zeros((), x.dtype)
  return jnp.max(jnp.abs(x))


def _pow2_scale(amax: jax.Array, dtype: Any, *, square: bool) -> jax.Array:
  """A power of two near ``amax`` (1 for zero/non-finite), for exact rescaling; squared
  (the scale of a Gram of features) when ``square``. Kept inside the normal range."""
  amax = amax.astype(dtype)
  ok = jnp.isfinite(amax) & (amax > 0)
  e = jnp.round(jnp.log2(jnp.where(ok, amax, 1.0)))
  limit = (jnp.finfo(dtype).maxexp - 4) // (2 if square else 1)
  s = jnp.where(ok, jnp.exp2(jnp.clip(e, -limit, limit)), 1.0).astype(dtype)
  return s * s if square else s


def _scale_and_check(named: dict[str, jax.Array], dtype: Any, *, square: bool = False):
  """One power-of-two scale for all arrays; ValueError on non-finite concrete input.

  Returns the scale of the Gram: that of the arrays' largest entry, squared when the
  arrays are features (``square=True``).
  """
  amaxes = {k: _abs_max(v) for k, v in named.items()}
  if not _is_traced(*named.values()):
    for k, a in amaxes.items():
      if not bool(jnp.isfinite(a)):
        raise ValueError(f"{k} contains NaN or infinity; refusing to score.")
  amax = functools.reduce(jnp.maximum, list(amaxes.values()))
  if square and not _is_traced(*named.values()):
    big = math.sqrt(float(jnp.finfo(dtype).max)) / 2.0 ** 8
    if float(amax) > big:
      raise ValueError(f"features as large as {float(amax):.3g} have a Gram that overflows "
                       f"{jnp.dtype(dtype).name}; rescale them (the eigenvalues scale with "
                       "the square).")
  return _pow2_scale(amax, dtype, square=square)


def _assemble_blocks(K: jax.Array) -> jax.Array:
  """``(..., n1, n2, C, C)`` class blocks -> ``(..., n1 C, n2 C)``, row ``i C + a``."""
  *batch, n1, n2, c1, c2 = K.shape
  nb = len(batch)
  perm = tuple(range(nb)) + (nb, nb + 2, nb + 1, nb + 3)
  return jnp.transpose(K, perm).reshape(tuple(batch) + (n1 * c1, n2 * c2))


def _sym(M: jax.Array) -> jax.Array:
  return 0.5 * (M + jnp.swapaxes(M, -1, -2))


# --------------------------------------------------------------------------------------
# the inertia count and the safeguarded Newton / bisection root finder


_MAX_MODEL_RUN = 16
_NEAR_POLES = 2      # poles kept out of the Schur complement by _deflated_count
_COUNT_NOISE = 2.0   # multiple of eps in the rounding bound of S(x)'s eigenvalues
_RECOUNT_BATCH = 8   # unsure counts redone per pass (_recount_unsure)
_RQI_STEPS = 1


def _per_matrix(fn: Callable, *batches: jax.Array) -> Any:
  """``fn(*batches)`` for a LAPACK-backed ``fn`` on ``(c, ...)`` batches of matrices.

  jaxlib's batch-splitting CPU LAPACK kernels can deadlock XLA's thread pool
  (:func:`assljax.parallel.one_matrix_per_lapack_call`), so on CPU the batch is mapped
  one matrix per call; on GPU/TPU it is one batched call.
  """
  if batches[0].shape[0] <= 1 or not parallel.one_matrix_per_lapack_call():
    return fn(*batches)
  return jax.lax.map(lambda one: fn(*one), batches)


def _max_iter(dtype: Any) -> int:
  # enough bisections to shrink any bracket (|bounds| <= 2^24 * max entry after
  # scaling) to one ulp, with a model run between any two of them
  return (_MAX_MODEL_RUN + 1) * (jnp.finfo(dtype).nmant + 1 + 26)


def _schur(lam, Z, D, x, *, sigma: float):
  """``S(x) = D - sigma x I - Zᵀ diag(1 / (Λ - x)) Z`` ``(c, g, g)``, ``1 / (Λ - x)``
  ``(c, l)`` (poles closer than ``eps^2`` moved to that distance), ``#{Λ < x}``."""
  dtype = Z.dtype
  g = Z.shape[2]
  eps = jnp.finfo(dtype).eps
  tiny = eps * eps
  raw = lam[None, :] - x[:, None]                                     # (c, l)
  diff = jnp.where(jnp.abs(raw) < tiny, jnp.where(raw < 0, -tiny, tiny), raw)
  w = 1.0 / diff
  below = jnp.sum((lam[None, :] < x[:, None]).astype(jnp.int32), axis=1)  # (c,)
  eye = jnp.eye(g, dtype=dtype)
  S = D - sigma * x[:, None, None] * eye[None] - jnp.matmul(
      jnp.swapaxes(Z, 1, 2), Z * w[:, :, None])
  return _sym(S), raw, diff, w, below


def _deflated_count(lam, Z, D, x, raw, w, *, sigma: float, offset: int):
  """``(c,)`` number of eigenvalues of ``M`` below ``x``, robust next to a pole.

  Next to a pole ``Λ_p`` the entries of ``S(x)`` grow like ``1 / |Λ_p - x|`` and their
  rounding can flip the sign of the eigenvalue that decides the count (seen in float32
  for an interior eigenvalue 3e-4 below a pole: the solver then converged onto the
  pole). Here the ``_NEAR_POLES`` poles nearest to ``x`` stay unreduced::

      T(x) = [[diag(Λ_N - x), Z_N], [Z_Nᵀ, D - σ x I - Z_Fᵀ diag(1 / (Λ_F - x)) Z_F]]

  and ``#{eig M < x} = #{Λ_F < x} + #{eig T(x) < 0}`` (Haynsworth on the far poles
  only), with ``T``'s entries bounded by the distance to the next pole instead.
  ``raw = Λ - x`` ``(c, l)`` and ``w`` are :func:`_schur`'s.
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
  T = _sym(T)
  diag = jnp.abs(jnp.diagonal(T, axis1=1, axis2=2))
  floor = jnp.finfo(dtype).eps ** 2 * jnp.max(diag, axis=1, keepdims=True)
  d = jax.lax.rsqrt(jnp.maximum(diag, jnp.maximum(floor, jnp.finfo(dtype).tiny)))
  mu = _per_matrix(jnp.linalg.eigvalsh, T * d[:, :, None] * d[:, None, :])
  return below_far + jnp.sum((mu < 0).astype(jnp.int32), axis=1) + offset


def _recount_unsure(lam, Z, D, x, raw, w, count, unsure, *, sigma: float, offset: int):
  """``count`` with the ``unsure`` candidates recounted by :func:`_deflated_count`.

  They are few (a few percent of the candidates per step), so they are gathered
  ``_RECOUNT_BATCH`` at a time rather than recounting the whole chunk.
  """
  batch = min(_RECOUNT_BATCH, x.shape[0])

  def body(state):
    count, todo = state
    pick = jax.lax.top_k(todo.astype(jnp.int32), batch)[1]           # todo ones first
    take = lambda a: jnp.take(a, pick, axis=0)
    fixed = _deflated_count(lam, take(Z), take(D), take(x), take(raw), take(w),
                            sigma=sigma, offset=offset)
    count = count.at[pick].set(jnp.where(take(todo), fixed, take(count)))
    return count, todo.at[pick].set(False)

  return jax.lax.while_loop(lambda state: jnp.any(state[1]), body, (count, unsure))[0]


def _checked_count(lam, Z, D, x, atol, *, sigma: float, offset: int):
  """``(c,)`` number of eigenvalues below ``x``, and ``S(x)``'s pieces ``(S, raw, diff,
  w, below, mu, V)`` (``mu, V``: ascending eigenpairs of ``S``).

  The count is Haynsworth's ``#{Λ < x} + #{eig S(x) < 0}``. ``S``'s computed
  eigenvalues are within about ``err = eps (||D|| + Σ_i ||z_i||² / |Λ_i - x|)`` of the
  exact ones, so an eigenvalue ``μ_m`` closer to 0 than that may have the wrong sign,
  and the count with it. That matters only when the eigenvalue of ``M`` it stands for,
  about ``μ_m / slope_m`` away (``slope_m = -dμ_m/dx = σ + Σ_i (z_iᵀ v_m)² / (Λ_i -
  x)²``), may lie farther than ``atol`` from ``x``, i.e. next to a pole. The slope is
  taken for the eigenvalue nearest 0 (two within ``err`` of 0 count as unsure). Unsure
  counts are redone on the pole-deflated matrix (:func:`_recount_unsure`).
  """
  dtype = Z.dtype
  S, raw, diff, w, below = _schur(lam, Z, D, x, sigma=sigma)
  mu, V = _per_matrix(jnp.linalg.eigh, S)                              # ascending
  count = below + jnp.sum((mu < 0).astype(jnp.int32), axis=1) + offset
  eps = jnp.finfo(dtype).eps
  err = _COUNT_NOISE * eps * (jnp.sqrt(jnp.sum(D * D, axis=(1, 2))) + jnp.abs(sigma * x)
                              + jnp.sum(jnp.sum(Z * Z, axis=2) * jnp.abs(w), axis=1))
  small = jnp.abs(mu) <= err[:, None]                                   # (c, g)
  # the slope of the eigenvalue nearest 0 only (O(l g), not O(l g²)); two small ones: unsure
  nearest = jnp.argmin(jnp.abs(mu), axis=1)
  v = jnp.take_along_axis(V, nearest[:, None, None], axis=2)[:, :, 0]   # (c, g)
  zv = jnp.matmul(Z, v[:, :, None])[:, :, 0]                            # (c, l)
  slope = sigma + jnp.sum(zv * zv * w * w, axis=1)                      # (c,)
  n_small = jnp.sum(small.astype(jnp.int32), axis=1)
  unsure = (n_small >= 2) | ((n_small == 1) & (err > atol * slope))
  count = _recount_unsure(lam, Z, D, x, raw, w, count, unsure, sigma=sigma, offset=offset)
  return count, (S, raw, diff, w, below, mu, V)


def _count(lam, Z, D, x, atol, *, sigma: float, offset: int):
  """``(c,)`` number of eigenvalues below ``x`` (see :func:`_checked_count`)."""
  return _checked_count(lam, Z, D, x, atol, sigma=sigma, offset=offset)[0]


def _model_step(Z, raw, diff, w, x, f, v, *, sigma: float):
  """Root of the one-pole rational model of ``φ(y) = vᵀ S(y) v`` around ``x``.

  The model is ``r0 + r1 (y - x) - c / (Λ_p - y)``: ``Λ_p`` is the pole nearest to ``x``,
  ``c = (z_pᵀ v)^2`` its exact weight and ``r0, r1`` match ``φ(x) = f`` and ``φ'(x)``
  (Newton with the nearest pole modelled exactly, as in LAPACK's secular-equation
  solver). Returns the model's root on ``x``'s side of the pole ``(c,)``, NaN if none.
  """
  dtype = Z.dtype
  zv = jnp.matmul(Z, v[:, :, None])[:, :, 0]                           # (c, l)
  # the nearest pole (equidistant repeated eigenvalues act as one pole of summed weight)
  dist = jnp.abs(raw)
  at_p = (dist == jnp.min(dist, axis=1, keepdims=True)).astype(dtype)  # (c, l)
  cw = jnp.sum(at_p * zv * zv, axis=1)                                 # its weight c
  delta = jnp.sum(at_p * diff, axis=1) / jnp.sum(at_p, axis=1)         # Λ_p - x
  r1 = -sigma - jnp.sum((1.0 - at_p) * (w * zv) ** 2, axis=1)          # background slope
  r0 = f + cw / delta                                                  # background value
  # r0 + r1 t - cw / (delta - t) = 0  <=>  r1 t^2 + (r0 - r1 delta) t + (cw - r0 delta) = 0
  qa, qb, qc = r1, r0 - r1 * delta, cw - r0 * delta
  disc = jnp.sqrt(jnp.maximum(qb * qb - 4.0 * qa * qc, 0.0))
  q = -0.5 * (qb + jnp.where(qb >= 0, disc, -disc))
  safe = lambda num, den: num / jnp.where(den == 0, 1.0, den)
  t1 = jnp.where(qa == 0, jnp.nan, safe(q, qa))
  t2 = jnp.where(q == 0, jnp.nan, safe(qc, q))
  t1 = jnp.where(qa == 0, t2, t1)
  lo_side = jnp.where(jnp.isnan(t1), t2, jnp.where(jnp.isnan(t2), t1, jnp.minimum(t1, t2)))
  hi_side = jnp.where(jnp.isnan(t1), t2, jnp.where(jnp.isnan(t2), t1, jnp.maximum(t1, t2)))
  t = jnp.where(delta > 0, lo_side, hi_side)
  t = jnp.where((delta > 0) & (t >= delta) | (delta < 0) & (t <= delta), jnp.nan, t)
  return x + t


def _evaluate(lam, Z, D, x, k, atol, *, sigma: float, offset: int):
  """Whether ``count(x) >= k`` and the next iterate a rational model proposes.

  Args:
    lam: ``(l,)`` eigenvalues of the fixed block.
    Z: ``(c, l, g)`` border in the fixed block's eigenbasis.
    D: ``(c, g, g)`` per-candidate block (``-I`` in feature mode).
    x: ``(c,)`` evaluation points.
    k: ``(c,)`` target count.
    atol: ``(c,)`` the root finder's tolerance (see :func:`_checked_count`).
    sigma: 1 (bordered: ``S = D - x I - ...``) or 0 (features: ``S = D - ...``).
    offset: added to the count (``-g`` in feature mode).

  Returns:
    ``above (c,)`` = ``count(x) >= k`` with ``count`` the number of eigenvalues below
    ``x`` (:func:`_checked_count`), and ``proposal (c,)``: :func:`_model_step` for the Schur
    eigenpair ``(μ_j, v_j)`` that decides the count, ``j = k - offset - #{Λ < x}``
    (NaN where no ``j`` decides it).
  """
  dtype = Z.dtype
  g = Z.shape[2]
  count, (S, raw, diff, w, below, mu, V) = _checked_count(lam, Z, D, x, atol, sigma=sigma,
                                                         offset=offset)
  j = k - offset - below                                               # 1-based
  valid = (j >= 1) & (j <= g)
  pick = (jnp.arange(1, g + 1)[None, :] == j[:, None]).astype(dtype)   # one-hot (c, g)
  f = jnp.sum(mu * pick, axis=1)
  v = jnp.sum(V * pick[:, None, :], axis=2)                            # (c, g)
  proposal = _model_step(Z, raw, diff, w, x, f, v, sigma=sigma)
  return count >= k, jnp.where(valid, proposal, jnp.nan)


def _evaluate_smallest(lam, Z, D, x, v, *, sigma: float):
  """:func:`_evaluate` for the smallest eigenvalue (``k = 1``, no offset), without ``eigh``.

  ``count(x) >= 1`` iff some ``Λ_i < x`` or ``S(x)`` is not positive definite (one
  Cholesky). The deciding eigenvector ``v_1`` of ``S`` is tracked across iterations by
  one Rayleigh-quotient-iteration step from the previous one (a g x g solve), and the
  model uses the Rayleigh quotient ``vᵀ S v``. For ``x < Λ_1`` that model lies above
  ``μ_1`` for *any* unit ``v`` (concavity), so its root never falls below the wanted
  eigenvalue, however rough ``v`` is.

  Returns ``(above (c,), proposal (c,), v (c, g))``.
  """
  dtype = Z.dtype
  g = Z.shape[2]
  S, raw, diff, w, below = _schur(lam, Z, D, x, sigma=sigma)
  chol = _per_matrix(jnp.linalg.cholesky, S)
  definite = jnp.all(jnp.isfinite(chol), axis=(1, 2))
  above = (below >= 1) | ~definite
  eye = jnp.eye(g, dtype=dtype)
  for _ in range(_RQI_STEPS):
    rho = jnp.einsum("cg,cgh,ch->c", v, S, v)
    y = _per_matrix(jnp.linalg.solve, S - rho[:, None, None] * eye[None],
                    v[:, :, None])[:, :, 0]
    norm = jnp.sqrt(jnp.sum(y * y, axis=1, keepdims=True))
    ok = jnp.all(jnp.isfinite(y), axis=1, keepdims=True) & (norm > 0)
    v = jnp.where(ok, y / jnp.where(ok, norm, 1.0), v)
  f = jnp.einsum("cg,cgh,ch->c", v, S, v)
  # S is indefinite but vᵀ S v >= 0: the tracked vector lost v_1 (after a long jump of x);
  # take the exact eigenpair for this chunk then (rare, so the eigh is skipped otherwise)
  lost = (below == 0) & above & (f >= 0)

  def exact(v, f):
    mu, V = _per_matrix(jnp.linalg.eigh, S)
    return (jnp.where(lost[:, None], V[:, :, 0], v), jnp.where(lost, mu[:, 0], f))

  v, f = jax.lax.cond(jnp.any(lost), exact, lambda v, f: (v, f), v, f)
  proposal = _model_step(Z, raw, diff, w, x, f, v, sigma=sigma)
  return above, jnp.where(below == 0, proposal, jnp.nan), v


def _kth_eigenvalue(lam, Z, D, k, lo, hi, atol, x0=None, *, sigma: float, offset: int,
                    smallest: bool = False, with_iters: bool = False):
  """Smallest ``x`` with ``count(x) >= k``, given ``count(lo) < k <= count(hi)``.

  Every evaluated point moves one end of the bracket ``[lo, hi]`` (by the exact inertia
  count). The next point is the rational-Newton proposal of :func:`_evaluate` when it
  lies inside the bracket, nudged by ``atol / 4`` towards the side not yet known (so a
  converged iterate closes the bracket); otherwise, and after every ``_MAX_MODEL_RUN``
  proposals in a row, the midpoint. The bracket therefore at least halves every
  ``_MAX_MODEL_RUN + 1`` steps whatever the model does. For ``k = 1`` (the smallest
  eigenvalue) every proposal lies at or above the root and the iterates descend
  monotonically (the deciding eigenvalue is concave below the first pole), typically in
  4-6 steps; ``smallest=True`` (only for ``k = 1``, ``offset = 0``) then replaces the
  per-step ``eigh`` by a Cholesky and one Rayleigh-quotient step
  (:func:`_evaluate_smallest`). Stops per candidate once ``hi - lo <= atol``; returns
  the midpoint. ``x0`` is the first point evaluated (default: just below ``hi``).
  """
  dtype = Z.dtype
  c, g = Z.shape[0], Z.shape[2]
  max_iter = _max_iter(dtype)
  if x0 is None:
    x0 = jnp.maximum(0.5 * (lo + hi), hi - atol)

  if smallest:
    S0 = _schur(lam, Z, D, x0, sigma=sigma)[0]
    v0 = _per_matrix(jnp.linalg.eigh, S0)[1][:, :, 0]
    evaluate = lambda x, v: _evaluate_smallest(lam, Z, D, x, v, sigma=sigma)
  else:
    v0 = jnp.zeros((c, g), dtype)
    evaluate = lambda x, v: (*_evaluate(lam, Z, D, x, k, atol, sigma=sigma, offset=offset),
                            v)

  def cond(state):
    it, _, _, _, _, _, done = state
    return (it < max_iter) & ~jnp.all(done)

  def body(state):
    it, lo, hi, x, v, run, done = state
    above, proposal, v_n = evaluate(x, v)
    lo_n = jnp.where(above, lo, x)
    hi_n = jnp.where(above, x, hi)
    inside = lambda y: jnp.isfinite(y) & (y > lo_n) & (y < hi_n)
    nudged = proposal + jnp.where(above, -0.25, 0.25) * atol
    xn = jnp.where(inside(nudged), nudged, proposal)
    model = inside(xn) & (run < _MAX_MODEL_RUN)
    x_n = jnp.where(model, xn, 0.5 * (lo_n + hi_n))
    done_n = done | (hi_n - lo_n <= atol)
    keep = lambda old, new: jnp.where(done, old, new)
    return (it + 1, keep(lo, lo_n), keep(hi, hi_n), keep(x, x_n),
            jnp.where(done[:, None], v, v_n), keep(run, jnp.where(model, run + 1, 0)),
            done_n)

  done0 = (hi - lo) <= atol
  state = (jnp.zeros((), jnp.int32), lo, hi, x0, v0, jnp.zeros((c,), jnp.int32), done0)
  it, lo, hi, *_ = jax.lax.while_loop(cond, body, state)
  root = 0.5 * (lo + hi)
  return (root, it) if with_iters else root


# --------------------------------------------------------------------------------------
# per-chunk solvers (all inputs already scaled so that max |entry| is about 1)


def _dense_chunk(M: jax.Array, *, positive_only: bool, rtol: jax.Array) -> jax.Array:
  """``M (c, n, n)`` -> smallest (positive) eigenvalue ``(c,)`` via ``eigvalsh``."""
  M = _sym(M)
  ev = _per_matrix(jnp.linalg.eigvalsh, M)
  if not positive_only:
    return ev[:, 0]
  fro = jnp.sqrt(jnp.sum(M * M, axis=(1, 2)))
  tol = rtol * fro
  pos = jnp.where(ev > tol[:, None], ev, jnp.inf)
  best = jnp.min(pos, axis=1)
  return jnp.where(jnp.isfinite(best), best, 0.0).astype(M.dtype)


def _bordered_chunk(lam, Z, D, fro2_fixed, *, positive_only: bool, rtol: jax.Array,
                    with_iters: bool = False):
  """Bordered solve for one chunk.

  Args:
    lam: ``(l,)`` eigenvalues of ``K_LL``; ``Z``: ``(c, l, g)`` = ``Qᵀ K_LG``;
    D: ``(c, g, g)`` = ``K_GG``; fro2_fixed: ``||K_LL||_F^2``.
  """
  dtype = Z.dtype
  l, g = Z.shape[1], Z.shape[2]
  n = l + g
  c = Z.shape[0]
  eps = jnp.finfo(dtype).eps
  D = _sym(D)
  zf2 = jnp.sum(Z * Z, axis=(1, 2))                      # ||K_LG||_F^2 (Q orthogonal)
  fro = jnp.sqrt(fro2_fixed + 2.0 * zf2 + jnp.sum(D * D, axis=(1, 2)))
  zf = jnp.sqrt(zf2)
  diagD = jnp.diagonal(D, axis1=1, axis2=2)               # (c, g)
  radius = jnp.sum(jnp.abs(D), axis=2) - jnp.abs(diagD)
  gersh_lo = jnp.min(diagD - radius, axis=1)
  gersh_hi = jnp.max(diagD + radius, axis=1)
  lam_abs = jnp.max(jnp.abs(lam))
  lhat = jnp.maximum(jnp.maximum(lam_abs, jnp.max(jnp.abs(diagD), axis=1)), fro / n)
  atol = 4.0 * eps * jnp.maximum(lhat, jnp.finfo(dtype).tiny)
  count = functools.partial(_count, sigma=1.0, offset=0)
  solve = functools.partial(_kth_eigenvalue, sigma=1.0, offset=0, with_iters=with_iters)
  if not positive_only:
    solve = functools.partial(solve, smallest=True)
    k = jnp.ones((c,), jnp.int32)
    # Weyl: λ_min(M) >= min(λ_min(A), λ_min(D)) - ||B||_2; interlacing: λ_min(M) <= Λ_1,
    # and <= every diagonal entry of D.
    lo = jnp.minimum(lam[0], gersh_lo) - zf - atol
    hi = jnp.minimum(lam[0], jnp.min(diagD, axis=1))
    # start just below 0: for a PSD M (a Gram) that is a tight lower bound, and the model
    # step from there overshoots to just above the root, whence it descends monotonically
    x0 = jnp.clip(-1e-4 * lhat, lo, hi)
    return solve(lam, Z, D, k, lo, hi, atol, x0)
  tol = rtol * fro
  k = count(lam, Z, D, tol, atol) + 1
  # Weyl upper bound on λ_max(M); interlacing λ_{k-g}(A) <= λ_k(M) <= λ_k(A).
  upper = jnp.maximum(lam[-1], gersh_hi) + zf + atol
  hi = jnp.where(k <= l, jnp.minimum(upper, lam[jnp.clip(k - 1, 0, l - 1)]), upper)
  lo = jnp.where(k > g, jnp.maximum(tol, lam[jnp.clip(k - g - 1, 0, l - 1)]), tol)
  none = k > n
  hi = jnp.where(none, lo, hi)
  out = solve(lam, Z, D, jnp.minimum(k, n), lo, hi, atol)
  if with_iters:
    root, it = out
    return jnp.where(none, 0.0, root).astype(dtype), it
  return jnp.where(none, 0.0, out).astype(dtype)


def _features_chunk(lam, Y, fro2_fixed, n, *, positive_only: bool, rtol: jax.Array,
                    with_iters: bool = False):
  """Feature-space solve for one chunk.

  Args:
    lam: ``(d,)`` eigenvalues of ``Φ_Lᵀ Φ_L``; ``Y``: ``(c, d, g)`` = ``Qᵀ Φ_Gᵀ``;
    fro2_fixed: ``||Φ_Lᵀ Φ_L||_F^2``; n: rows of the Gram, ``l + g``.
  """
  dtype = Y.dtype
  d, g = Y.shape[1], Y.shape[2]
  c = Y.shape[0]
  eps = jnp.finfo(dtype).eps
  yy = jnp.matmul(jnp.swapaxes(Y, 1, 2), Y)               # Φ_G Φ_Gᵀ (c, g, g)
  cross = jnp.sum(lam[None, :] * jnp.sum(Y * Y, axis=2), axis=1)  # tr(Φ_G A Φ_Gᵀ)
  fro = jnp.sqrt(jnp.maximum(fro2_fixed + 2.0 * cross + jnp.sum(yy * yy, axis=(1, 2)), 0.0))
  uf2 = jnp.trace(yy, axis1=1, axis2=2)                   # ||Φ_G||_F^2
  lhat = jnp.maximum(jnp.maximum(jnp.max(jnp.abs(lam)), jnp.max(uf2)), fro / n)
  atol = 4.0 * eps * jnp.maximum(lhat, jnp.finfo(dtype).tiny)
  D = jnp.broadcast_to(-jnp.eye(g, dtype=dtype)[None], (c, g, g))
  count = functools.partial(_count, sigma=0.0, offset=-g)
  solve = functools.partial(_kth_eigenvalue, sigma=0.0, offset=-g, with_iters=with_iters)
  upper = lam[-1] + uf2 + atol
  if not positive_only:
    if n > d:  # rank(Φ Φᵀ) <= d < n: exactly singular
      z = jnp.zeros((c,), dtype)
      return (z, jnp.zeros((), jnp.int32)) if with_iters else z
    k = jnp.full((c,), d - n + 1, jnp.int32)
    tol = jnp.full((c,), -jnp.inf, dtype)
  else:
    tol = rtol * fro
    k = count(lam, Y, D, tol, atol) + 1
  # interlacing for a PSD rank-g update: Λ_k <= λ_k(A + UUᵀ) <= Λ_{k+g}
  kk = jnp.clip(k - 1, 0, d - 1)
  lo = jnp.maximum(tol, lam[kk])
  hi = jnp.where(k + g <= d, jnp.minimum(upper, lam[jnp.clip(k + g - 1, 0, d - 1)]), upper)
  none = k > d
  hi = jnp.where(none, lo, hi)
  out = solve(lam, Y, D, jnp.minimum(k, d), lo, hi, atol)
  if with_iters:
    root, it = out
    return jnp.where(none, 0.0, root).astype(dtype), it
  return jnp.where(none, 0.0, out).astype(dtype)


# --------------------------------------------------------------------------------------
# the shared driver: blocks or features, explicit candidates or index sets


def _driver(labeled, pool, kgg, index, scale, *, source: str, method: str,
            positive_only: bool, rtol: jax.Array, chunk_size: int | None,
            with_iters: bool = False):
  """Scores every candidate; see :func:`batch_min_eigenvalues` for the argument forms.

  ``labeled``: ``K_LL (l, l)`` or ``Φ_L (l, d)``. ``pool``: ``K_LG (m, l, g)``,
  ``K_LU (l, N)`` (with ``index``), ``Φ_G (m, g, d)`` or ``Φ_U (N, d)`` (with
  ``index``). ``kgg``: ``K_GG (m, g, g)`` for blocks, None for features. ``index``:
  ``(m, g)`` int or None. ``scale``: power of two dividing the Gram.
  """
  dtype = labeled.dtype
  feat_scale = jnp.sqrt(scale) if source == "features" else None
  if source == "features":
    phi_L = labeled / feat_scale
    l = phi_L.shape[0]
  else:
    A = _sym(labeled / scale)
    l = A.shape[0]

  if index is not None:
    g = index.shape[1]
  elif source == "features":
    g = pool.shape[1]
  else:
    g = pool.shape[2]
  n = l + g

  m = index.shape[0] if index is not None else pool.shape[0]

  def rows(a, ids):
    """Rows ``ids`` of a per-candidate array (all of it for the single-chunk call)."""
    return a if ids is None else jnp.take(a, ids, axis=0)

  def features_of(ids):
    """Per-chunk candidate features ``U (c, g, d)`` in scaled units."""
    U = rows(pool, ids) if index is None else jnp.take(pool, rows(index, ids), axis=0)
    return U / feat_scale

  def gram_blocks(ids):
    """Per-chunk ``(B (c, l, g), D (c, g, g))`` in scaled units."""
    if source == "features":
      U = features_of(ids)
      return jnp.matmul(phi_L[None], jnp.swapaxes(U, 1, 2)), jnp.matmul(U, jnp.swapaxes(U, 1, 2))
    if index is None:
      B = rows(pool, ids)
    else:
      B = jnp.moveaxis(jnp.take(pool, rows(index, ids), axis=1), 0, 1)  # (c, l, g)
    return B / scale, rows(kgg, ids) / scale

  if method == "dense":
    A_dense = (jnp.matmul(phi_L, phi_L.T) if source == "features" else A)

    def fn(ids):
      B, D = gram_blocks(ids)
      c = B.shape[0]
      ok = _rows_finite(B, D)
      top = jnp.concatenate([jnp.broadcast_to(A_dense[None], (c, l, l)), B], axis=2)
      bottom = jnp.concatenate([jnp.swapaxes(B, 1, 2), D], axis=2)
      out = parallel.per_device(
          lambda M, rtol: _dense_chunk(M, positive_only=positive_only, rtol=rtol),
          jnp.concatenate([top, bottom], axis=1), rtol, rows=(True, False))
      out = jnp.where(ok, out, jnp.nan)
      return (out, jnp.zeros((c,), jnp.int32)) if with_iters else out

  elif method == "bordered":
    A_b = (_sym(jnp.matmul(phi_L, phi_L.T)) if source == "features" else A)
    lam, Q = jnp.linalg.eigh(A_b)
    fro2 = jnp.sum(A_b * A_b)
    P = jnp.matmul(Q.T, phi_L) if source == "features" else None  # (l, d)

    def fn(ids):
      if source == "features":
        U = features_of(ids)
        ok = _rows_finite(U)
        Z = jnp.matmul(P[None], jnp.swapaxes(U, 1, 2))                # (c, l, g)
        D = jnp.matmul(U, jnp.swapaxes(U, 1, 2))
      else:
        B, D = gram_blocks(ids)
        ok = _rows_finite(B, D)
        Z = jnp.matmul(Q.T[None], B)                                  # Qᵀ B (c, l, g)
      if with_iters:
        out = _bordered_chunk(lam, Z, D, fro2, positive_only=positive_only, rtol=rtol,
                              with_iters=True)
      else:  # under a data mesh each device iterates on its own candidates
        out = parallel.per_device(
            lambda lam, Z, D, fro2, rtol: _bordered_chunk(
                lam, Z, D, fro2, positive_only=positive_only, rtol=rtol),
            lam, Z, D, fro2, rtol, rows=(False, True, True, False, False))
      return _per_candidate(out, ok, with_iters)

  elif method == "features":
    Af = _sym(jnp.matmul(phi_L.T, phi_L))
    lam, Q = jnp.linalg.eigh(Af)
    fro2 = jnp.sum(Af * Af)

    def fn(ids):
      U = features_of(ids)
      ok = _rows_finite(U)
      Y = jnp.matmul(Q.T[None], jnp.swapaxes(U, 1, 2))                # (c, d, g)
      if with_iters:
        out = _features_chunk(lam, Y, fro2, n, positive_only=positive_only, rtol=rtol,
                              with_iters=True)
      else:  # under a data mesh each device iterates on its own candidates
        out = parallel.per_device(
            lambda lam, Y, fro2, rtol: _features_chunk(
                lam, Y, fro2, n, positive_only=positive_only, rtol=rtol),
            lam, Y, fro2, rtol, rows=(False, True, False, False))
      return _per_candidate(out, ok, with_iters)

  else:
    raise ValueError(f"unknown method {method!r}")

  if chunk_size is None or chunk_size >= m:
    out = fn(None)
  else:  # stream candidate ids; rows are gathered per chunk, inputs are never copied
    out = chunked_map(fn, jnp.arange(m, dtype=jnp.int32), chunk_size=chunk_size)
  labeled_ok = jnp.all(jnp.isfinite(labeled))
  if with_iters:
    vals, iters = out
    return jnp.where(labeled_ok, vals * scale, jnp.nan), iters
  return jnp.where(labeled_ok, out * scale, jnp.nan)


def _rows_finite(*arrays: jax.Array) -> jax.Array:
  """``(c,)``: whether every entry of each candidate's arrays is finite."""
  ok = None
  for a in arrays:
    r = jnp.all(jnp.isfinite(a.reshape(a.shape[0], -1)), axis=1)
    ok = r if ok is None else ok & r
  return ok


def _per_candidate(out, ok, with_iters):
  """Marks candidates with non-finite inputs NaN (only reachable when traced)."""
  if not with_iters:
    return jnp.where(ok, out, jnp.nan)
  vals, it = out
  return jnp.where(ok, vals, jnp.nan), jnp.broadcast_to(it, ok.shape)


_driver_jit = jax.jit(_driver, static_argnames=("source", "method", "positive_only",
                                                "chunk_size", "with_iters"))


# --------------------------------------------------------------------------------------
# public API


def _resolve_rtol(rtol: float | None, dtype: Any) -> float:
  if rtol is None:
    return default_rtol(dtype)
  rtol = float(rtol)
  if not (math.isfinite(rtol) and rtol >= 0):
    raise ValueError(f"rtol must be a finite non-negative number, got {rtol!r}.")
  return rtol


def _check_chunk_size(chunk_size: int | None) -> None:
  if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer))
                                 or isinstance(chunk_size, bool) or chunk_size < 1):
    raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}.")


def min_eigenvalues(K: jax.Array, *, positive_only: bool = True, rtol: float | None = None,
                    class_blocks: bool = False,
                    chunk_size: int | None = DEFAULT_CHUNK_SIZE) -> jax.Array:
  """Smallest (positive) eigenvalue of each symmetric matrix in a batch (dense).

  Args:
    K: ``(..., n, n)`` symmetric matrices (the symmetric part ``(K + Kᵀ)/2`` is used),
      or ``(..., n, n, C, C)`` class-block Grams with ``class_blocks=True``.
    positive_only: return the smallest eigenvalue above ``rtol * ||K||_F`` (0 if none)
      instead of the smallest eigenvalue.
    rtol: positive-only tolerance relative to the Frobenius norm; None for
      :func:`default_rtol`.
    class_blocks: the last four axes are ``(n, n, C, C)`` blocks.
    chunk_size: matrices decomposed per ``lax.map`` step (None: all at once).

  Returns:
    ``(...,)`` eigenvalues, in the input's floating dtype.
  """
  K = _as_float(K, "K")
  _check_chunk_size(chunk_size)
  if class_blocks:
    if K.ndim < 4 or K.shape[-4] != K.shape[-3] or K.shape[-2] != K.shape[-1]:
      raise ValueError(
          f"with class_blocks=True, K must be (..., n, n, C, C), got {tuple(K.shape)}.")
    K = _assemble_blocks(K)
  if K.ndim < 2 or K.shape[-1] != K.shape[-2] or K.shape[-1] == 0:
    raise ValueError(f"K must be a batch of non-empty square matrices (..., n, n), "
                     f"got shape {tuple(K.shape)}.")
  rtol = _resolve_rtol(rtol, K.dtype)
  batch = K.shape[:-2]
  if math.prod(batch) == 0:
    return jnp.zeros(batch, K.dtype)
  scale = _scale_and_check({"K": K}, K.dtype)
  return _min_eig_jit(K, scale, positive_only=bool(positive_only),
                      rtol=jnp.asarray(rtol, K.dtype), chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("positive_only", "chunk_size"))
def _min_eig_jit(K, scale, *, positive_only, rtol, chunk_size):
  batch, n = K.shape[:-2], K.shape[-1]
  flat = K.reshape((-1, n, n))
  b = flat.shape[0]
  fn = lambda M: parallel.per_device(
      lambda M, scale, rtol: _dense_chunk(M / scale, positive_only=positive_only, rtol=rtol),
      M, scale, rtol, rows=(True, False, False))
  if chunk_size is None or chunk_size >= b:
    out = fn(flat) * scale
  else:  # stream matrix ids; matrices are gathered per chunk, the input is never copied
    out = chunked_map(lambda ids: fn(jnp.take(flat, ids, axis=0)),
                      jnp.arange(b, dtype=jnp.int32), chunk_size=chunk_size) * scale
  finite = jnp.all(jnp.isfinite(flat), axis=(1, 2))
  return jnp.where(finite, out, jnp.nan).reshape(batch)


def _normalize_blocks(K_LL, K_LG, K_GG, *, index=None):
  """Validates Gram blocks (scalar or class-block form) and assembles class blocks.

  Returns ``(K_LL (l, l), pool, K_GG (m, g, g), index, C)``; ``pool`` is ``K_LG (m, l, g)``
  or, with ``index``, ``K_LU (l, N)`` (class blocks expand ``index`` to ``g C`` rows).
  """
  K_LL = _as_float(K_LL, "K_LL")
  K_LG = _as_float(K_LG, "K_LG")
  K_GG = _as_float(K_GG, "K_GG")
  dtype = _common_dtype(K_LL, K_LG, K_GG)
  K_LL, K_LG, K_GG = (a.astype(dtype) for a in (K_LL, K_LG, K_GG))
  blocks = K_LL.ndim == 4
  C = K_LL.shape[-1] if blocks else 1
  cc = (C, C) if blocks else ()
  if K_LL.ndim not in (2, 4) or K_LL.shape[0] != K_LL.shape[1] or (
      blocks and K_LL.shape[2] != K_LL.shape[3]):
    raise ValueError(f"K_LL must be (l, l) or (l, l, C, C), got {tuple(K_LL.shape)}.")
  l = K_LL.shape[0]
  if K_GG.ndim != 3 + len(cc) or K_GG.shape[1] != K_GG.shape[2] or K_GG.shape[3:] != cc:
    raise ValueError(f"K_GG must be (m, g, g){' + (C, C)' if blocks else ''} to match "
                     f"K_LL {tuple(K_LL.shape)}, got {tuple(K_GG.shape)}.")
  m, g = K_GG.shape[0], K_GG.shape[1]
  if g == 0:
    raise ValueError("candidate groups must have at least one member (g >= 1).")
  if index is None:
    if K_LG.shape != (m, l, g) + cc:
      raise ValueError(f"K_LG must be {(m, l, g) + cc} to match K_LL and K_GG, "
                       f"got {tuple(K_LG.shape)}.")
  else:
    if index.shape != (m, g):
      raise ValueError(f"index must be (m, g) = {(m, g)}, got {tuple(index.shape)}.")
    if K_LG.ndim != 2 + len(cc) or K_LG.shape[0] != l or K_LG.shape[2:] != cc:
      raise ValueError(f"with index, K_LG must be (l, N){' + (C, C)' if blocks else ''}"
                       f" with l = {l}, got {tuple(K_LG.shape)}.")
  if blocks:
    K_LL = _assemble_blocks(K_LL)
    K_GG = _assemble_blocks(K_GG)
    if index is None:
      K_LG = _assemble_blocks(K_LG)
    else:
      K_LG = _assemble_blocks(K_LG[None])[0]                    # (l C, N C)
      index = (index[:, :, None] * C + jnp.arange(C)[None, None, :]).reshape(m, g * C)
  return K_LL, K_LG, K_GG, index, C


def _normalize_features(phi_L, phi_G, *, index=None):
  """Validates features (optionally with a class axis); returns 2-D/3-D forms."""
  phi_L = _as_float(phi_L, "phi_L")
  phi_G = _as_float(phi_G, "phi_G")
  dtype = _common_dtype(phi_L, phi_G)
  phi_L, phi_G = phi_L.astype(dtype), phi_G.astype(dtype)
  if phi_L.ndim not in (2, 3):
    raise ValueError(f"phi_L must be (l, d) or (l, C, d), got {tuple(phi_L.shape)}.")
  blocks = phi_L.ndim == 3
  tail = phi_L.shape[1:]
  d = tail[-1]
  if d == 0:
    raise ValueError("features must have at least one dimension (d >= 1).")
  if index is None:
    if phi_G.ndim != 2 + len(tail) or phi_G.shape[2:] != tail or phi_G.shape[1] == 0:
      raise ValueError(f"phi_G must be (m, g, {', '.join(map(str, tail))}) with g >= 1 to "
                       f"match phi_L {tuple(phi_L.shape)}, got {tuple(phi_G.shape)}.")
    m = phi_G.shape[0]
    if blocks:
      phi_G = phi_G.reshape(m, -1, d)
  else:
    if phi_G.ndim != 1 + len(tail) or phi_G.shape[1:] != tail:
      raise ValueError(f"with index, phi_G must be (N, {', '.join(map(str, tail))}), "
                       f"got {tuple(phi_G.shape)}.")
    if index.ndim != 2 or index.shape[1] == 0:
      raise ValueError(f"index must be (m, g) with g >= 1, got {tuple(index.shape)}.")
    if blocks:
      C = tail[0]
      phi_G = phi_G.reshape(-1, d)
      index = (index[:, :, None] * C + jnp.arange(C)[None, None, :]).reshape(
          index.shape[0], -1)
  if blocks:
    phi_L = phi_L.reshape(-1, d)
  return phi_L, phi_G, index


def _normalize_index(index: Any, size: int) -> jax.Array:
  index = jnp.asarray(index)
  if not jnp.issubdtype(index.dtype, jnp.integer):
    raise ValueError(f"index must be an integer array, got dtype {index.dtype}.")
  if not _is_traced(index) and index.size and (int(index.min()) < 0
                                               or int(index.max()) >= size):
    raise ValueError(f"index entries must lie in [0, {size}), found "
                     f"[{int(index.min())}, {int(index.max())}].")
  return index.astype(jnp.int32)


def bordered_min_eigenvalues(K_LL: jax.Array, K_LG: jax.Array, K_GG: jax.Array, *,
                             positive_only: bool = True, rtol: float | None = None,
                             chunk_size: int | None = DEFAULT_CHUNK_SIZE) -> jax.Array:
  """Smallest (positive) eigenvalue of ``[[K_LL, K_LG_i], [K_LG_iᵀ, K_GG_i]]`` per candidate.

  ``K_LL`` is eigendecomposed once (O(l^3)); each candidate then costs
  O(l^2 g) (the basis change ``Qᵀ K_LG``) plus O(l g^2) per Newton/bisection step on the
  g x g Schur complement (see the module docstring). Exact for singular ``K_LL``. With
  ``l = 0`` this is :func:`min_eigenvalues` of ``K_GG``.

  Args:
    K_LL: ``(l, l)`` labeled block, or ``(l, l, C, C)`` class blocks.
    K_LG: ``(m, l, g)`` (or ``(m, l, g, C, C)``) labeled-candidate blocks.
    K_GG: ``(m, g, g)`` (or ``(m, g, g, C, C)``) candidate blocks.
    positive_only: return the smallest eigenvalue above ``rtol * ||M||_F`` (0 if none).
    rtol: positive-only tolerance; None for :func:`default_rtol`.
    chunk_size: candidates per ``lax.map`` step (None: all at once).

  Returns:
    ``(m,)`` eigenvalues, in the inputs' floating dtype.
  """
  return batch_min_eigenvalues(K_LL, K_LG, K_GG, positive_only=positive_only, rtol=rtol,
                               chunk_size=chunk_size, method="bordered")


def feature_min_eigenvalues(phi_L: jax.Array, phi_G: jax.Array, *, positive_only: bool = True,
                            rtol: float | None = None,
                            chunk_size: int | None = DEFAULT_CHUNK_SIZE) -> jax.Array:
  """Smallest (positive) eigenvalue of the Gram ``Φ Φᵀ``, ``Φ = [Φ_L; Φ_G_i]``, per candidate.

  Works in the d-dimensional feature space: ``Φ_Lᵀ Φ_L`` is eigendecomposed once and
  each candidate is a rank-g update of it, O(d^2 g + d g^2 per step). The Gram has
  ``n = l + g`` rows; when ``n > d`` it is singular, so its smallest eigenvalue is
  exactly 0 (``positive_only=False``) and the positive-only value is the smallest
  eigenvalue of ``Φᵀ Φ`` above the tolerance. Cheapest when ``d < l + g``.

  Args:
    phi_L: ``(l, d)`` labeled features, or ``(l, C, d)`` with a class axis (Gram entries
      are then ``C x C`` blocks).
    phi_G: ``(m, g, d)`` (or ``(m, g, C, d)``) candidate features.
    positive_only: return the smallest eigenvalue above ``rtol * ||Φ Φᵀ||_F`` (0 if none).
    rtol: positive-only tolerance; None for :func:`default_rtol`.
    chunk_size: candidates per ``lax.map`` step (None: all at once).

  Returns:
    ``(m,)`` eigenvalues of ``Φ Φᵀ``.
  """
  return batch_min_eigenvalues(phi_L=phi_L, phi_G=phi_G, positive_only=positive_only,
                               rtol=rtol, chunk_size=chunk_size, method="features")


def choose_method(*, l: int, g: int, d: int | None = None) -> str:
  """The method :func:`batch_min_eigenvalues` uses for ``l`` labeled rows, groups of ``g``.

  Rows are counted after class-block expansion; ``d`` is the feature dimension when
  features are given. The rule (calibrated on CPU, where a batched ``eigvalsh`` is a
  loop over LAPACK calls; on GPU the dense method is slower still above n = 32):

  * features with ``d < l + g`` (the Gram is a rank-``d`` product): ``"features"``
    (O(d^2 g) per candidate, and exactly 0 for the plain smallest eigenvalue);
  * ``l < 2 g`` (little is shared between candidates, including ``l = 0``): ``"dense"``,
    one ``eigvalsh`` of each ``(l + g)``-matrix;
  * otherwise ``"bordered"``: O(l^2 g) per candidate plus ~5 steps of O(l g^2 + g^3).
  """
  if d is not None and d < l + g:
    return "features"
  return "dense" if l < 2 * g else "bordered"


def batch_min_eigenvalues(K_LL: jax.Array | None = None, K_LG: jax.Array | None = None,
                          K_GG: jax.Array | None = None, *, phi_L: jax.Array | None = None,
                          phi_G: jax.Array | None = None, index: jax.Array | None = None,
                          positive_only: bool = True, rtol: float | None = None,
                          chunk_size: int | None = DEFAULT_CHUNK_SIZE,
                          method: str = "auto") -> jax.Array:
  """Smallest (positive) eigenvalue of the Gram over ``labeled ∪ G_i`` for many ``G_i``.

  Give either Gram blocks or features:

  * blocks: ``K_LL (l, l)``, ``K_LG (m, l, g)``, ``K_GG (m, g, g)`` (class blocks with two
    trailing ``(C, C)`` axes are accepted too);
  * features: ``phi_L (l, d)``, ``phi_G (m, g, d)`` (or with a class axis before ``d``),
    the Gram being ``Φ Φᵀ``.

  With ``index (m, g)`` (ints), candidates are index sets into a pool instead: blocks take
  ``K_LG (l, N)`` (labeled x pool; rows gathered per chunk) with ``K_GG (m, g, g)``, and
  features take ``phi_G (N, d)``. Nothing of size ``m x l x g`` is then materialized.

  ``method="auto"`` picks the cheapest exact method with :func:`choose_method`; or force
  ``"dense"`` (``eigvalsh`` of each assembled matrix), ``"bordered"`` or ``"features"``
  (features only). All methods return the same values up to rounding.

  Args:
    positive_only: smallest eigenvalue above ``rtol * ||M||_F`` (0 if none) instead of
      the smallest eigenvalue.
    rtol: positive-only tolerance; None for :func:`default_rtol`.
    chunk_size: candidates per ``lax.map`` step (None: all at once).

  Returns:
    ``(m,)`` eigenvalues in the inputs' floating dtype.
  """
  if method not in _METHODS:
    raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {method!r}.")
  _check_chunk_size(chunk_size)
  have_blocks = any(a is not None for a in (K_LL, K_LG, K_GG))
  have_features = phi_L is not None or phi_G is not None
  if have_blocks == have_features:
    raise ValueError("give either Gram blocks (K_LL, K_LG, K_GG) or features "
                     "(phi_L, phi_G), not both or neither.")
  if have_blocks and any(a is None for a in (K_LL, K_LG, K_GG)):
    raise ValueError("Gram blocks need all three of K_LL, K_LG and K_GG.")
  if have_features and (phi_L is None or phi_G is None):
    raise ValueError("features need both phi_L and phi_G.")
  if index is not None:
    index = jnp.asarray(index)
    if index.ndim != 2:
      raise ValueError(f"index must be (m, g), got shape {tuple(index.shape)}.")

  if have_blocks:
    if index is not None:
      index = _normalize_index(index, jnp.shape(K_LG)[1] if jnp.ndim(K_LG) >= 2 else 0)
    K_LL, pool, K_GG, index, _ = _normalize_blocks(K_LL, K_LG, K_GG, index=index)
    labeled, kgg, source = K_LL, K_GG, "blocks"
    l, g, d = K_LL.shape[0], K_GG.shape[1], None
    m = K_GG.shape[0]
    dtype = labeled.dtype
    scale = _scale_and_check({"K_LL": K_LL, "K_LG": pool, "K_GG": K_GG}, dtype)
  else:
    if index is not None:
      index = _normalize_index(index, jnp.shape(phi_G)[0] if jnp.ndim(phi_G) >= 1 else 0)
    phi_L, pool, index = _normalize_features(phi_L, phi_G, index=index)
    labeled, kgg, source = phi_L, None, "features"
    l, d = phi_L.shape
    g = index.shape[1] if index is not None else pool.shape[1]
    m = index.shape[0] if index is not None else pool.shape[0]
    dtype = labeled.dtype
    scale = _scale_and_check({"phi_L": phi_L, "phi_G": pool}, dtype, square=True)
  rtol = _resolve_rtol(rtol, dtype)
  if method == "auto":
    method = choose_method(l=l, g=g, d=d)
  if method == "features" and source != "features":
    raise ValueError("method='features' needs features (phi_L, phi_G), not Gram blocks.")
  if method == "bordered" and l == 0:
    method = "dense"  # nothing shared: the bordered solve is λ_min of K_GG
  if m == 0:
    return jnp.zeros((0,), dtype)
  out = _driver_jit(labeled, pool, kgg, index, scale, source=source, method=method,
                    positive_only=bool(positive_only), rtol=jnp.asarray(rtol, dtype),
                    chunk_size=chunk_size)
  return out
