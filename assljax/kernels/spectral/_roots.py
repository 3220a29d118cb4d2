"""Root finding on the inertia count: safeguarded rational Newton, else bisection.

:func:`kth_eigenvalue` finds the ``k``-th smallest eigenvalue of every candidate's
matrix from a bracket ``count(lo) < k <= count(hi)``; each evaluated point moves one end
of the bracket by the exact count (``_inertia.py``) and proposes the next point by a
Newton step on the eigenvalue of ``S(x)`` that decides the count, with the nearest pole
modelled exactly (:func:`_model_step`, as in LAPACK's secular-equation solver). For the
smallest eigenvalue (:func:`_evaluate_smallest`) the per-step ``eigh`` becomes one
Cholesky or LU per candidate with a step of inverse or Rayleigh-quotient iteration, run
one candidate at a time on CPU so that finished candidates cost nothing; with
``compact`` the general loop also gathers its slowest rows (:func:`_compacted`)."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from assljax import parallel
from assljax.kernels.spectral._inertia import (checked_count, noise_from_norms, per_matrix,
                                               per_row, poles, sym, update_rows)

_MAX_MODEL_RUN = 16   # model steps in a row before a forced bisection
_COMPACT_FACTOR = 4   # _compacted: the last quarter of a chunk runs on a quarter of it
_MIN_COMPACT = 8      # ... when that is at least this many rows
EXACT_STEPS = 2 ** 30  # a bound_steps that means "to convergence" (above any iteration cap)


def _max_iter(dtype: Any) -> int:
  # enough bisections to shrink any bracket (|bounds| <= 2^24 * max entry after
  # scaling) to one ulp, with a model run between any two of them
  return (_MAX_MODEL_RUN + 1) * (jnp.finfo(dtype).nmant + 1 + 26)


def _model_step(Z, raw, diff, x, f, v, *, sigma: float):
  """Root of the one-pole rational model of ``φ(y) = vᵀ S(y) v`` around ``x``.

  The model is ``r0 + r1 (y - x) - c / (Λ_p - y)``: ``Λ_p`` is the pole nearest to ``x``,
  ``c = (z_pᵀ v)^2`` its exact weight and ``r0, r1`` match ``φ(x) = f`` and ``φ'(x)``
  (Newton with the nearest pole modelled exactly, as in LAPACK's secular-equation
  solver). Iterating this model on ``φ`` for the same ``v`` (solving ``φ(y) = 0``
  exactly) measured no faster: ~8% fewer solver steps, each dearer (two more model
  steps per chunk step cost more than the row steps they save). Returns the model's
  root on ``x``'s side of the pole ``(c,)``, NaN if none.

  Args:
    Z: ``(c, l, g)`` border; raw, diff: ``(c, l)`` ``Λ - x`` (``diff`` moved off the
      poles, :func:`schur`); x: ``(c,)``; f: ``(c,)`` ``φ(x)``; v: ``(c, g)`` unit vectors.
  """
  return _model_root(jnp.matmul(Z, v[:, :, None])[:, :, 0], raw, diff, x, f, sigma=sigma)


def _model_root(zv, raw, diff, x, f, *, sigma: float):
  """:func:`_model_step` given ``zv = Z v`` ``(c, l)``."""
  dtype = zv.dtype
  zv2 = zv * zv
  safe = lambda num, den: num / jnp.where(den == 0, 1.0, den)
  # the nearest pole (equidistant repeated eigenvalues act as one pole of summed weight)
  dist = jnp.abs(raw)
  at_p = (dist == jnp.min(dist, axis=1, keepdims=True)).astype(dtype)  # (c, l)
  cw = jnp.sum(at_p * zv2, axis=1)                                     # its weight c
  delta = jnp.sum(at_p * diff, axis=1) / jnp.sum(at_p, axis=1)         # Λ_p - x
  r1 = -sigma - jnp.sum((1.0 - at_p) * zv2 / (diff * diff), axis=1)    # background slope
  r0 = f + cw / delta                                                  # background value
  # r0 + r1 t - cw / (delta - t) = 0  <=>  r1 t^2 + (r0 - r1 delta) t + (cw - r0 delta) = 0
  qa, qb, qc = r1, r0 - r1 * delta, cw - r0 * delta
  disc = jnp.sqrt(jnp.maximum(qb * qb - 4.0 * qa * qc, 0.0))
  q = -0.5 * (qb + jnp.where(qb >= 0, disc, -disc))
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
    atol: ``(c,)`` the root finder's tolerance (see :func:`checked_count`).
    sigma: 1 (bordered: ``S = D - x I - ...``) or 0 (features: ``S = D - ...``).
    offset: added to the count (``-g`` in feature mode).

  Returns:
    ``above (c,)`` = ``count(x) >= k`` with ``count`` the number of eigenvalues below
    ``x`` (:func:`checked_count`), and ``proposal (c,)``: :func:`_model_step` for the Schur
    eigenpair ``(μ_j, v_j)`` that decides the count, ``j = k - offset - #{Λ < x}``
    (NaN where no ``j`` decides it).
  """
  dtype = Z.dtype
  g = Z.shape[2]
  count, (S, raw, diff, w, below, mu, V) = checked_count(lam, Z, D, x, atol, sigma=sigma,
                                                        offset=offset)
  j = k - offset - below                                               # 1-based
  valid = (j >= 1) & (j <= g)
  pick = (jnp.arange(1, g + 1)[None, :] == j[:, None]).astype(dtype)   # one-hot (c, g)
  f = jnp.sum(mu * pick, axis=1)
  v = jnp.sum(V * pick[:, None, :], axis=2)                            # (c, g)
  proposal = _model_step(Z, raw, diff, x, f, v, sigma=sigma)
  return count >= k, jnp.where(valid, proposal, jnp.nan)


def _normalized(y, fallback):
  """``(ok (c,), y / |y|)`` for ``y (c, g)``; ``fallback``'s row where ``y`` is not finite or 0."""
  norm = jnp.sqrt(jnp.sum(y * y, axis=1, keepdims=True))
  ok = jnp.all(jnp.isfinite(y), axis=1, keepdims=True) & (norm > 0)
  return ok[:, 0], jnp.where(ok, y / jnp.where(ok, norm, 1.0), fallback)


class _Fixed(NamedTuple):
  """What :func:`_evaluate_smallest` needs of a chunk at every step, computed once."""
  packed: jax.Array   # (c, g l + g g): each row's Zᵀ and D, flat (one slice per row step)
  zz: jax.Array       # (c, l) squared norms of Z's rows
  dnorm: jax.Array    # (c,) ||D||_F


def _fixed(Zt, D) -> _Fixed:
  c = Zt.shape[0]
  return _Fixed(jnp.concatenate([Zt.reshape(c, -1), D.reshape(c, -1)], axis=1),
                jnp.sum(Zt * Zt, axis=1), jnp.sqrt(jnp.sum(D * D, axis=(1, 2))))


def _unpack(packed, l: int, g: int):
  """``(Zᵀ (..., g, l), D (..., g, g))`` from rows of :attr:`_Fixed.packed`."""
  lead = packed.shape[:-1]
  return (packed[..., :l * g].reshape(*lead, g, l),
          packed[..., l * g:].reshape(*lead, g, g))


def _row_schur(Zt, D, w, x, *, sigma: float):
  """``S(x)`` of candidates ``Zᵀ (..., g, l)``, ``D (..., g, g)``, ``w = 1 / (Λ - x)``
  ``(..., l)``, ``x (...)`` (as :func:`schur`). ``Zᵀ`` contracts over its minor axis (on
  CPU about twice as fast for one candidate as ``Z`` over its major axis)."""
  g, n = Zt.shape[-2], Zt.ndim
  batch = tuple(range(n - 2))
  ztwz = jax.lax.dot_general(Zt * w[..., None, :], Zt, (((n - 1,), (n - 1,)), (batch, batch)))
  eye = jnp.broadcast_to(jnp.eye(g, dtype=Zt.dtype), D.shape)
  return sym(D - sigma * x[..., None, None] * eye - ztwz)


def _row_step(fixed, moving, *, l: int, g: int, sigma: float, exact_lost: bool):
  """One candidate's step of :func:`_evaluate_smallest`: its Schur complement, count and
  new vector.

  Arguments and result are flat, so that on CPU a row costs one slice per input and
  one update for the output: ``fixed = [Zᵀ (g l), D (g g)]``; ``moving = [w (l), v (g), x,
  noise, repair, open_above, open_below]`` (``w = 1 / (Λ - x)`` with ``x`` below every
  pole; the flags of :func:`_evaluate_smallest` as 0 or 1).
  Returns ``[v (g), Z v (l), f, above]``: the new unit vector, its border product,
  ``f = vᵀ S v`` and whether ``S(x)`` has a negative eigenvalue (1) or is positive
  definite (0).
  """
  dtype = fixed.dtype
  eye = jnp.eye(g, dtype=dtype)
  w, v = moving[:l], moving[l:l + g]
  x, noise = moving[l + g], moving[l + g + 1]
  repair, open_above, open_below = (moving[l + g + i] > 0 for i in (2, 3, 4))
  Zt, D = _unpack(fixed, l, g)

  def unit(y):
    norm2 = jnp.sum(y * y)
    ok = jnp.all(jnp.isfinite(y)) & (norm2 > 0)
    return ok, y / jnp.where(ok, jnp.sqrt(norm2), 1.0)

  S = _row_schur(Zt, D, w, x, sigma=sigma)
  rho = jnp.dot(v, jnp.dot(S, v))
  negative = rho < -noise

  def rayleigh_step():
    ok, y = unit(jnp.linalg.solve(S - rho * eye, v))
    return jnp.where(ok, y, v)

  def inverse_step(L):
    y = jax.lax.linalg.triangular_solve(L, v[:, None], left_side=True, lower=True)
    y = jax.lax.linalg.triangular_solve(L, y, left_side=True, lower=True, transpose_a=True)
    stepped, y = unit(y[:, 0])
    return jnp.where(stepped, y, v)

  def count_step():
    L = jax.lax.linalg.cholesky(S)
    definite = jnp.all(jnp.isfinite(L))
    v_n = jax.lax.cond(definite & open_below, inverse_step, lambda L: v, L)
    # S is indefinite although vᵀ S v is not negative: v is far from v_1
    v_n = jax.lax.cond(~definite & repair & open_above, rayleigh_step, lambda: v_n)
    return definite, v_n

  definite, v_n = jax.lax.cond(
      negative, lambda: (jnp.zeros((), bool), jax.lax.cond(open_above, rayleigh_step, lambda: v)),
      count_step)
  above = negative | ~definite
  f = jnp.dot(v_n, jnp.dot(S, v_n))
  if exact_lost:
    def exact():
      mu, V = jnp.linalg.eigh(S)
      return V[:, 0], mu[0]

    v_n, f = jax.lax.cond(_lost(above, f, noise, repair, open_above), exact, lambda: (v_n, f))
  zv = jnp.sum(Zt * v_n[:, None], axis=0)
  return jnp.concatenate([v_n, zv, jnp.stack([f, above.astype(dtype)])])


def _lost(above, f, noise, repair, open_above):
  """Whether the vector lost ``v_1``: ``S`` is indefinite but ``vᵀ S v`` is positive beyond
  rounding (a quotient within ``S``'s rounding of 0 is not lost: its proposal lands next
  to ``x``, which the bracket's nudge handles), and the row goes on."""
  return above & (f > noise) & repair & open_above


def _evaluate_smallest(lam, fixed: _Fixed, x, v, repair=True, active=True, open_above=True,
                       open_below=True, *, sigma: float):
  """:func:`_evaluate` for the smallest eigenvalue (``k = 1``, no offset), without ``eigh``.

  ``count(x) >= 1`` iff some ``Λ_i < x`` or ``S(x)`` is not positive definite. The
  deciding eigenvector ``v_1`` of ``S`` is tracked across iterations by one step from the
  previous vector ``v``, per candidate (:func:`_row_step`):

  * ``ρ = vᵀ S v < 0`` (beyond rounding) proves a negative eigenvalue, so the count is
    at least 1 without a Cholesky, and ``v`` takes a Rayleigh-quotient step (an LU of
    ``S - ρ I``; ``ρ`` lies between ``μ_1 < 0`` and ``μ_2``, so the step converges to
    ``v_1`` where ``v`` is already its nearest, cubically). This measured 13% faster than
    a step of inverse iteration through a Cholesky of ``S - 2ρ I``, which failed (``v``
    too far from ``v_1`` for that shift) on a third of the steps and then needed the LU
    as well;
  * otherwise the Cholesky of ``S`` itself decides the count; when it exists one step of
    inverse iteration with ``S`` refines ``v``, and when it does not (``S`` indefinite
    although ``ρ >= 0``) ``v`` takes a Rayleigh-quotient step.

  Rows whose quotient still is not negative although ``S`` is indefinite (``v`` lost
  ``v_1``, :func:`_lost`) take the exact eigenpair: in their own step on CPU, gathered
  after a batched step (:func:`_inertia.update_rows`) elsewhere, never the whole chunk's
  ``eigh``. The model then uses ``f = vᵀ S v``: for ``x < Λ_1`` it lies
  above ``μ_1`` for *any* unit ``v`` (concavity), so its root never falls below the
  wanted eigenvalue, however rough ``v`` is.

  Flags, ``(c,)`` bools (or scalars): ``repair`` False skips both repairs (the loop's
  last step, whose vector and proposal only a bound's Rayleigh quotient uses);
  ``active`` False (rows already done, whose results the loop drops) skips the row's
  work altogether; ``open_above`` (``open_below``) False says that a count of at least
  1 (of 0) closes the row's bracket, so that the row then needs no new vector (the
  last step of every candidate: 12% of the time measured at l = 100, g = 20).

  Each candidate's Schur complement, factorizations and products run in
  :func:`_row_step`, one candidate at a time on CPU (:func:`_inertia.per_row`): a row
  costs only the work it needs, and rows that have converged cost nothing while the
  slowest finish; what runs on the whole chunk is O(l) per candidate.

  Args:
    lam: ``(l,)``; fixed: :func:`_fixed` of the chunk's ``Z (c, l, g)`` and
      ``D (c, g, g)``; x: ``(c,)``; v: ``(c, g)`` unit vectors.

  Returns ``(above (c,), proposal (c,), v (c, g))``.
  """
  dtype = x.dtype
  c, l, g = x.shape[0], lam.shape[0], v.shape[1]
  raw, diff, w, below = poles(lam, x)
  noise = noise_from_norms(fixed.dnorm, fixed.zz, x, w, sigma=sigma)
  repair = jnp.broadcast_to(jnp.asarray(repair, bool), (c,))
  # rows done, or with x above a pole (the count needs no factorization), keep their
  # vector, with above = 1
  work = jnp.asarray(active, bool) & (below == 0)
  flag = lambda b: jnp.broadcast_to(jnp.asarray(b, dtype), (c,))
  moving = jnp.concatenate(
      [w, v, jnp.stack([x, noise, flag(repair), flag(open_above), flag(open_below)], axis=1)],
      axis=1)
  fill = jnp.concatenate([v, jnp.zeros((c, l + 1), dtype), jnp.ones((c, 1), dtype)], axis=1)
  # one candidate at a time (CPU), a row that lost v_1 takes the exact eigenpair in its
  # step; batched, the few such rows are gathered afterwards
  in_row = parallel.one_matrix_per_lapack_call()
  out = per_row(functools.partial(_row_step, l=l, g=g, sigma=sigma, exact_lost=in_row), work,
                (fixed.packed, moving), fill)
  v, zv, f, above = out[:, :g], out[:, g:g + l], out[:, g + l], out[:, g + l + 1] > 0
  if not in_row:
    def exact(packed, w, x):
      Zt, D = _unpack(packed, l, g)
      S = _row_schur(Zt, D, w, x, sigma=sigma)
      mu, V = per_matrix(jnp.linalg.eigh, S)
      return V[:, :, 0], jnp.sum(Zt * V[:, :, :1], axis=1), mu[:, 0]

    lost = (below == 0) & _lost(above, f, noise, repair, open_above)
    v, zv, f = update_rows(lost, exact, (fixed.packed, w, x), (v, zv, f))
  proposal = _model_root(zv, raw, diff, x, f, sigma=sigma)
  return (below >= 1) | above, jnp.where(below == 0, proposal, jnp.nan), v


def _rayleigh_bound(lam, Zt, D, y, v):
  """``(c,)`` upper bounds on ``λ_min(M)`` from the Rayleigh quotient of one vector each.

  In ``A``'s eigenbasis ``M = [[diag(Λ), Z], [Zᵀ, D]]``; the vector ``u = [a; v]`` with
  ``a = -diag(1 / (Λ - y)) Z v`` has ``uᵀ (M - y I) u = vᵀ S(y) v`` (the Schur complement
  eliminates ``a``), so for a ``y`` where ``vᵀ S(y) v <= 0`` (the root of a step's model,
  see :func:`_model_step`) its quotient ``uᵀ M u / uᵀ u`` lies at or below ``y``, and it
  bounds ``λ_min(M)`` from above for any ``y`` and ``v``. The bound adds the quotient's
  worst-case rounding, ``2 n eps`` times the sum of its terms' magnitudes (``n = l + g``
  products per entry), so it holds for the computed quotient too.

  Args:
    lam: ``(l,)``; Zt: ``Zᵀ (c, g, l)``; D: ``(c, g, g)`` symmetric; y: ``(c,)``;
    v: ``(c, g)``.
  """
  dtype = Zt.dtype
  n = Zt.shape[1] + Zt.shape[2]
  zv = jnp.sum(Zt * v[:, :, None], axis=1)                              # (c, l)
  a = -zv / (lam[None, :] - y[:, None])
  a = jnp.where(jnp.isfinite(a), a, 0.0)
  dv = jnp.matmul(D, v[:, :, None])[:, :, 0]                            # (c, g)
  num = (jnp.sum(lam[None, :] * a * a, axis=1) + 2.0 * jnp.sum(a * zv, axis=1)
         + jnp.sum(v * dv, axis=1))
  size = (jnp.sum(jnp.abs(lam)[None, :] * a * a, axis=1) + 2.0 * jnp.sum(jnp.abs(a * zv), axis=1)
          + jnp.einsum("cg,cgh,ch->c", jnp.abs(v), jnp.abs(D), jnp.abs(v)))
  den = jnp.sum(a * a, axis=1) + jnp.sum(v * v, axis=1)
  return (num + 2.0 * n * jnp.finfo(dtype).eps * size) / den


def kth_eigenvalue(lam, Z, D, k, lo, hi, atol, x0=None, *, sigma: float, offset: int,
                   smallest: bool = False, bound_steps: jax.Array | int | None = None,
                   compact: bool = False):
  """Smallest ``x`` with ``count(x) >= k``, given ``count(lo) < k <= count(hi)``.

  Every evaluated point moves one end of the bracket ``[lo, hi]`` (by the exact inertia
  count). The next point is the rational-Newton proposal of :func:`_evaluate` when it
  lies inside the bracket, nudged by ``atol / 4`` towards the side not yet known (so a
  converged iterate closes the bracket); otherwise, and after every ``_MAX_MODEL_RUN``
  proposals in a row, the midpoint. The bracket therefore at least halves every
  ``_MAX_MODEL_RUN + 1`` steps whatever the model does. For ``k = 1`` (the smallest
  eigenvalue) every proposal lies at or above the root and the iterates descend
  monotonically (the deciding eigenvalue is concave below the first pole), typically in
  5-8 steps; ``smallest=True`` (only for ``k = 1``, ``offset = 0``) then replaces the
  per-step ``eigh`` by one Cholesky or LU per candidate with a step of inverse or
  Rayleigh-quotient iteration (:func:`_evaluate_smallest`), started from the direction
  of the first pole's border row; ``Z`` is then given transposed, ``Zᵀ (c, g, l)``, the
  layout in which the per-candidate Schur product contracts fastest and which the
  candidate sources produce without a copy. Stops per candidate once ``hi - lo <= atol``; returns
  the midpoint ``(c,)``. ``x0`` is the first point evaluated (default: just below
  ``hi``).

  A candidate's iterates do not depend on the others', so with ``compact`` the iteration
  runs on the whole chunk only while more than a quarter of it is unfinished, then on
  the unfinished rows gathered into a quarter-size chunk (:func:`_compacted`): the
  slowest few candidates no longer cost whole-chunk steps, at the price of compiling
  the loop twice. ``smallest`` ignores it: its steps skip finished candidates anyway
  (measured at m = 16,384, l = 100, g = 20: no faster compacted, and 2.4 s more to
  compile).

  With ``bound_steps = s`` (an int32 scalar, possibly traced) it stops after at most ``s``
  steps and returns ``hi`` instead: an upper bound on the eigenvalue certified by the
  inertia count, and, since a candidate's iterates do not depend on the others, never
  below what the full iteration returns. With ``smallest`` the bound is the lower of
  ``hi`` and ``atol`` above the Rayleigh quotient that the next point and vector give
  (:func:`_rayleigh_bound`): the step that would evaluate that point costs a Schur
  complement and a Cholesky, the quotient O(l g). Still never below the full
  iteration's value: that is the midpoint of a bracket of width ``atol`` whose lower
  end is certified below the eigenvalue. An ``s`` of at least the iteration cap
  (:data:`EXACT_STEPS`) returns the midpoint, as without ``bound_steps``: one compiled
  loop then serves bounds and eigenvalues (the driver's argmax search).
  """
  dtype = Z.dtype
  c, g = Z.shape[0], D.shape[1]
  cap = _max_iter(dtype)
  max_iter = cap if bound_steps is None else jnp.minimum(cap, bound_steps)
  if x0 is None:
    x0 = jnp.maximum(0.5 * (lo + hi), hi - atol)

  if smallest:
    # S(x)'s lowest eigenvector turns towards the first pole's border row ζ_1 as x nears
    # Λ_1, below which the root lies; the iteration needs no more than a rough start (the
    # exact eigenvector of S(x0), one eigh per candidate, measured no fewer steps)
    v0 = _normalized(Z[:, :, 0], jnp.broadcast_to(jnp.eye(1, g, dtype=dtype), (c, g)))[1]
    evaluate = lambda rows, x, v, repair, active, *opened: _evaluate_smallest(
        lam, _Fixed(*rows[4:]), x, v, repair, active, *opened, sigma=sigma)
  else:
    v0 = jnp.zeros((c, g), dtype)
    evaluate = lambda rows, x, v, repair, active, *opened: (
        *_evaluate(lam, *rows[:2], x, rows[2], rows[3], sigma=sigma, offset=offset), v)

  def body(rows, state):
    it, lo, hi, x, v, run, done = state
    atol = rows[3]
    # a count that closes the bracket needs no new vector or proposal
    above, proposal, v_n = evaluate(rows, x, v, ~done & (it + 1 < max_iter), ~done,
                                    x - lo > atol, hi - x > atol)
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
  rows = (Z, D, k, atol, *(_fixed(Z, D) if smallest else ()))
  _, lo, hi, x, v, *_ = _compacted(body, rows, state, max_iter=max_iter,
                                   compact=compact and not smallest)
  if bound_steps is None:
    return 0.5 * (lo + hi)
  if smallest:
    hi = jnp.minimum(hi, _rayleigh_bound(lam, Z, D, x, v) + atol)
  return jnp.where(bound_steps < cap, hi, 0.5 * (lo + hi))


def _compacted(body, rows, state, *, max_iter: int | jax.Array, compact: bool):
  """``while_loop(body)`` until every row is done, the last quarter on a quarter of the rows.

  ``rows`` (per-candidate inputs) and ``state = (it, *per-candidate arrays, done)`` have
  ``c`` rows; ``body(rows, state) -> state`` must treat rows independently and leave done
  rows unchanged. With ``compact`` (and ``c / 4 >= _MIN_COMPACT``) the loop runs on all
  ``c`` rows until at most ``c / 4`` are unfinished, then on those (padded with done
  rows to ``c / 4``), gathered, and scatters the results back. Every row follows the
  iterations it would follow in one loop over the whole chunk (up to the rounding of
  batched products of another size). One level only: each level is another copy of the
  body to compile (measured at l = 100, g = 20: a second level saved nothing measurable
  and added another ~1.5 s of compile).
  """
  c = state[-1].shape[0]
  size = c // _COMPACT_FACTOR
  until = size if compact and size >= _MIN_COMPACT else 0

  def loop(rows, state, until):
    def cond(state):
      unfinished = jnp.sum((~state[-1]).astype(jnp.int32))
      return (state[0] < max_iter) & (unfinished > until)

    return jax.lax.while_loop(cond, lambda state: body(rows, state), state)

  state = loop(rows, state, until)
  if not until:
    return state
  pick = jax.lax.top_k((~state[-1]).astype(jnp.int32), size)[1]        # unfinished first
  take = lambda a: jnp.take(a, pick, axis=0)
  inner = loop(tuple(map(take, rows)), (state[0], *map(take, state[1:])), 0)
  return (inner[0], *(a.at[pick].set(b) for a, b in zip(state[1:], inner[1:])))
