"""Root finding on the inertia count: safeguarded rational Newton, else bisection.

:func:`kth_eigenvalue` finds the ``k``-th smallest eigenvalue of every candidate's
matrix from a bracket ``count(lo) < k <= count(hi)``; each evaluated point moves one end
of the bracket by the exact count (``_inertia.py``) and proposes the next point by a
Newton step on the eigenvalue of ``S(x)`` that decides the count, with the nearest pole
modelled exactly (:func:`_model_step`, as in LAPACK's secular-equation solver). For the
smallest eigenvalue (:func:`_evaluate_smallest`) the per-step ``eigh`` becomes a
Cholesky and one Rayleigh-quotient step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from assljax.kernels.spectral._inertia import (checked_count, per_matrix, schur, schur_noise,
                                               update_rows)

_MAX_MODEL_RUN = 16   # model steps in a row before a forced bisection
_RQI_STEPS = 1        # Rayleigh-quotient steps per evaluation for the smallest eigenvalue


def _max_iter(dtype: Any) -> int:
  # enough bisections to shrink any bracket (|bounds| <= 2^24 * max entry after
  # scaling) to one ulp, with a model run between any two of them
  return (_MAX_MODEL_RUN + 1) * (jnp.finfo(dtype).nmant + 1 + 26)


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
  S, raw, diff, w, below = schur(lam, Z, D, x, sigma=sigma)
  chol = per_matrix(jnp.linalg.cholesky, S)
  definite = jnp.all(jnp.isfinite(chol), axis=(1, 2))
  above = (below >= 1) | ~definite
  eye = jnp.eye(g, dtype=dtype)
  for _ in range(_RQI_STEPS):
    rho = jnp.einsum("cg,cgh,ch->c", v, S, v)
    y = per_matrix(jnp.linalg.solve, S - rho[:, None, None] * eye[None],
                    v[:, :, None])[:, :, 0]
    norm = jnp.sqrt(jnp.sum(y * y, axis=1, keepdims=True))
    ok = jnp.all(jnp.isfinite(y), axis=1, keepdims=True) & (norm > 0)
    v = jnp.where(ok, y / jnp.where(ok, norm, 1.0), v)
  f = jnp.einsum("cg,cgh,ch->c", v, S, v)
  # S is indefinite but vᵀ S v >= 0: the tracked vector lost v_1 (after a long jump of x);
  # take the exact eigenpair of those candidates only (tens per chunk in the first steps,
  # gathered, not the whole chunk's eigh). A quotient within S's rounding of 0 is not
  # lost: its proposal lands next to x, which the bracket's nudge handles.
  lost = (below == 0) & above & (f > schur_noise(Z, D, x, w, sigma=sigma))

  def exact(S):
    mu, V = per_matrix(jnp.linalg.eigh, S)
    return V[:, :, 0], mu[:, 0]

  v, f = update_rows(lost, exact, (S,), (v, f))
  proposal = _model_step(Z, raw, diff, w, x, f, v, sigma=sigma)
  return above, jnp.where(below == 0, proposal, jnp.nan), v


def kth_eigenvalue(lam, Z, D, k, lo, hi, atol, x0=None, *, sigma: float, offset: int,
                   smallest: bool = False, bound_steps: int | None = None):
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
  the midpoint ``(c,)``. ``x0`` is the first point evaluated (default: just below ``hi``).

  With ``bound_steps = s`` it stops after at most ``s`` steps and returns ``hi`` instead: an
  upper bound on the eigenvalue certified by the inertia count, and, since a candidate's
  iterates do not depend on the others, never below what the full iteration returns.
  """
  dtype = Z.dtype
  c, g = Z.shape[0], Z.shape[2]
  max_iter = _max_iter(dtype) if bound_steps is None else min(_max_iter(dtype), bound_steps)
  if x0 is None:
    x0 = jnp.maximum(0.5 * (lo + hi), hi - atol)

  if smallest:
    S0 = schur(lam, Z, D, x0, sigma=sigma)[0]
    v0 = per_matrix(jnp.linalg.eigh, S0)[1][:, :, 0]
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
  _, lo, hi, *_ = jax.lax.while_loop(cond, body, state)
  return hi if bound_steps is not None else 0.5 * (lo + hi)
