"""Root finding on the inertia count: safeguarded rational Newton, else bisection.

:func:`kth_eigenvalue` finds the ``k``-th smallest eigenvalue of every candidate's
matrix from a bracket ``count(lo) < k <= count(hi)``; each evaluated point moves one end
of the bracket by the exact count (``_inertia.py``) and proposes the next point by a
Newton step on the eigenvalue of ``S(x)`` that decides the count, with the nearest pole
modelled exactly (:func:`_model_step`, as in LAPACK's secular-equation solver). For the
smallest eigenvalue (:func:`_evaluate_smallest`) the per-step ``eigh`` becomes one
Cholesky with a step of shifted inverse iteration. Rows whose iteration has finished
leave the loop's chunk (:func:`_compacted`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from assljax.kernels.spectral._inertia import (checked_count, per_matrix, schur, schur_noise,
                                               update_rows)

_MAX_MODEL_RUN = 16   # model steps in a row before a forced bisection
_SHIFT = 2.0          # inverse-iteration shift, as a multiple of a negative quotient
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
  exactly) measured no faster: ~10% fewer solver steps, each dearer. Returns the
  model's root on ``x``'s side of the pole ``(c,)``, NaN if none.

  Args:
    Z: ``(c, l, g)`` border; raw, diff: ``(c, l)`` ``Λ - x`` (``diff`` moved off the
      poles, :func:`schur`); x: ``(c,)``; f: ``(c,)`` ``φ(x)``; v: ``(c, g)`` unit vectors.
  """
  dtype = Z.dtype
  zv = jnp.matmul(Z, v[:, :, None])[:, :, 0]                           # (c, l)
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


def _definite_solve(S, v):
  """Cholesky of ``S (c, g, g)`` and ``S⁻¹ v`` for ``v (c, g)``: ``(definite (c,), y (c, g))``
  (``y`` is NaN where ``S`` is not positive definite). One LAPACK pass per matrix."""
  def one(S, v):
    L = jax.lax.linalg.cholesky(S)
    y = jax.lax.linalg.triangular_solve(L, v[..., None], left_side=True, lower=True)
    y = jax.lax.linalg.triangular_solve(L, y, left_side=True, lower=True, transpose_a=True)
    return jnp.all(jnp.isfinite(L), axis=(-2, -1)), y[..., 0]

  return per_matrix(one, S, v)


def _normalized(y, fallback):
  """``(ok (c,), y / |y|)`` for ``y (c, g)``; ``fallback``'s row where ``y`` is not finite or 0."""
  norm = jnp.sqrt(jnp.sum(y * y, axis=1, keepdims=True))
  ok = jnp.all(jnp.isfinite(y), axis=1, keepdims=True) & (norm > 0)
  return ok[:, 0], jnp.where(ok, y / jnp.where(ok, norm, 1.0), fallback)


def _evaluate_smallest(lam, Z, D, x, v, repair=True, *, sigma: float):
  """:func:`_evaluate` for the smallest eigenvalue (``k = 1``, no offset), without ``eigh``.

  ``count(x) >= 1`` iff some ``Λ_i < x`` or ``S(x)`` is not positive definite. The
  deciding eigenvector ``v_1`` of ``S`` is tracked across iterations by one step of
  shifted inverse iteration from the previous one, through a single Cholesky:

  * ``ρ = vᵀ S v < 0`` (beyond rounding) proves a negative eigenvalue, so the count is
    at least 1 without a factorization; ``S - 2ρ I`` is then positive definite whenever
    ``μ_1 >= 2ρ`` (``v`` already close to ``v_1``), and its inverse maps ``v`` towards
    ``v_1`` at the rate ``(μ_1 - 2ρ) / (μ_2 - 2ρ)`` (small once ``x`` nears the root,
    where ``μ_1 -> 0``);
  * otherwise the Cholesky of ``S`` itself decides the count, and when it exists one
    step of inverse iteration with ``S`` refines ``v``.

  Rows left without a step (``S - 2ρ I`` indefinite: ``v`` far from ``v_1``, typically
  right after the first long jump of ``x``; or ``S`` indefinite while ``ρ >= 0``) take a
  Rayleigh-quotient step instead (an LU per matrix, run only when some row of the chunk
  needs it), and rows whose quotient still is not negative although ``S`` is indefinite
  (``v`` lost ``v_1``) the exact eigenpair, gathered, not the whole chunk's ``eigh``.
  The model then uses ``f = vᵀ S v``: for ``x < Λ_1`` it lies above ``μ_1`` for *any*
  unit ``v`` (concavity), so its root never falls below the wanted eigenvalue, however
  rough ``v`` is. ``repair`` (a ``(c,)`` bool) False skips both repairs for that row:
  rows already done (the loop keeps evaluating them with the chunk, but keeps nothing of
  it), and every row on the loop's last step, whose vector and proposal nobody uses (the
  last step of a bound).

  Returns ``(above (c,), proposal (c,), v (c, g))``.
  """
  dtype = Z.dtype
  g = Z.shape[2]
  S, raw, diff, w, below = schur(lam, Z, D, x, sigma=sigma)
  noise = schur_noise(Z, D, x, w, sigma=sigma)
  rho = jnp.einsum("cg,cgh,ch->c", v, S, v)
  negative = rho < -noise
  shift = jnp.where(negative, _SHIFT * rho, 0.0)
  definite, y = _definite_solve(S - shift[:, None, None] * jnp.eye(g, dtype=dtype)[None], v)
  above = (below >= 1) | negative | ~definite
  stepped, v_n = _normalized(y, v)
  stepped = stepped & definite
  v_n = jnp.where(stepped[:, None], v_n, v)
  retry = (below == 0) & above & ~stepped & repair

  def rayleigh_step(v_n):
    y = per_matrix(jnp.linalg.solve, S - rho[:, None, None] * jnp.eye(g, dtype=dtype)[None],
                   v[:, :, None])[:, :, 0]
    ok, v_r = _normalized(y, v)
    return jnp.where((retry & ok)[:, None], v_r, v_n)

  v = jax.lax.cond(jnp.any(retry), rayleigh_step, lambda v_n: v_n, v_n)
  f = jnp.einsum("cg,cgh,ch->c", v, S, v)
  # S is indefinite but vᵀ S v >= 0: the vector lost v_1. A quotient within S's rounding
  # of 0 is not lost: its proposal lands next to x, which the bracket's nudge handles.
  lost = (below == 0) & above & (f > noise) & repair

  def exact(S):
    mu, V = per_matrix(jnp.linalg.eigh, S)
    return V[:, :, 0], mu[:, 0]

  v, f = update_rows(lost, exact, (S,), (v, f))
  proposal = _model_step(Z, raw, diff, x, f, v, sigma=sigma)
  return above, jnp.where(below == 0, proposal, jnp.nan), v


def _rayleigh_bound(lam, Z, D, y, v):
  """``(c,)`` upper bounds on ``λ_min(M)`` from the Rayleigh quotient of one vector each.

  In ``A``'s eigenbasis ``M = [[diag(Λ), Z], [Zᵀ, D]]``; the vector ``u = [a; v]`` with
  ``a = -diag(1 / (Λ - y)) Z v`` has ``uᵀ (M - y I) u = vᵀ S(y) v`` (the Schur complement
  eliminates ``a``), so for a ``y`` where ``vᵀ S(y) v <= 0`` (the root of a step's model,
  see :func:`_model_step`) its quotient ``uᵀ M u / uᵀ u`` lies at or below ``y``, and it
  bounds ``λ_min(M)`` from above for any ``y`` and ``v``. The bound adds the quotient's
  worst-case rounding, ``2 n eps`` times the sum of its terms' magnitudes (``n = l + g``
  products per entry), so it holds for the computed quotient too.

  Args:
    lam: ``(l,)``; Z: ``(c, l, g)``; D: ``(c, g, g)`` symmetric; y: ``(c,)``; v: ``(c, g)``.
  """
  dtype = Z.dtype
  n = Z.shape[1] + Z.shape[2]
  zv = jnp.matmul(Z, v[:, :, None])[:, :, 0]                            # (c, l)
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
  per-step ``eigh`` by a Cholesky and a step of inverse iteration
  (:func:`_evaluate_smallest`), started from the direction of the first pole's border
  row. Stops per candidate once ``hi - lo <= atol``; returns the midpoint ``(c,)``.
  ``x0`` is the first point evaluated (default: just below ``hi``).

  A candidate's iterates do not depend on the others', so with ``compact`` the iteration
  runs on the whole chunk only while more than a quarter of it is unfinished, then on
  the unfinished rows gathered into a quarter-size chunk (:func:`_compacted`): the
  slowest few candidates no longer cost whole-chunk steps, at the price of compiling
  the loop twice.

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
  c, g = Z.shape[0], Z.shape[2]
  cap = _max_iter(dtype)
  max_iter = cap if bound_steps is None else jnp.minimum(cap, bound_steps)
  if x0 is None:
    x0 = jnp.maximum(0.5 * (lo + hi), hi - atol)

  if smallest:
    # S(x)'s lowest eigenvector turns towards the first pole's border row ζ_1 as x nears
    # Λ_1, below which the root lies; the iteration needs no more than a rough start (the
    # exact eigenvector of S(x0), one eigh per candidate, measured no fewer steps)
    v0 = _normalized(Z[:, 0, :], jnp.broadcast_to(jnp.eye(1, g, dtype=dtype), (c, g)))[1]
    evaluate = lambda rows, x, v, repair: _evaluate_smallest(lam, *rows[:2], x, v, repair,
                                                           sigma=sigma)
  else:
    v0 = jnp.zeros((c, g), dtype)
    evaluate = lambda rows, x, v, repair: (
        *_evaluate(lam, *rows[:2], x, rows[2], rows[3], sigma=sigma, offset=offset), v)

  def body(rows, state):
    it, lo, hi, x, v, run, done = state
    atol = rows[3]
    above, proposal, v_n = evaluate(rows, x, v, ~done & (it + 1 < max_iter))
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
  _, lo, hi, x, v, *_ = _compacted(body, (Z, D, k, atol), state, max_iter=max_iter,
                                   compact=compact)
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
