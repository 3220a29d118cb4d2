"""The three exact solvers behind one table: ``SOLVERS[Method.X](source, ...) -> Plan``.

* ``Method.DENSE``: ``eigvalsh`` of each assembled ``(l + g)``-matrix.
* ``Method.BORDERED``: ``K_LL = Q diag(Λ) Qᵀ`` once, then per candidate the inertia
  count of the ``g x g`` Schur complement in ``Q``'s basis (``_inertia.py``) and the
  root finder (``_roots.py``): O(l^2 g) + O(l g^2) per step.
* ``Method.FEATURES``: the non-zero spectrum of ``Φ Φᵀ`` is that of the ``d x d`` matrix
  ``Φ_Lᵀ Φ_L + Φ_Gᵀ Φ_G``, a rank-g update of a fixed matrix: O(d^2 g) + O(d g^2) per step.

A solver sees its candidates only through a :class:`CandidateSource` (the driver's
``_BlockSource`` or ``_FeatureSource``, all in scaled units) and returns a :class:`Plan`:
what to gather per chunk, and the per-chunk solve that the driver runs on each device.
"""

from __future__ import annotations

import enum
import functools
from typing import Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from assljax.kernels.spectral._inertia import count_below, per_matrix, sym
from assljax.kernels.spectral._roots import kth_eigenvalue


class Method(enum.StrEnum):
  """An exact solver of :func:`assljax.kernels.spectral.batch_min_eigenvalues`.

  A ``str`` enum: ``Method.BORDERED == "bordered"``, so either spelling is accepted.
  """
  DENSE = "dense"
  BORDERED = "bordered"
  FEATURES = "features"


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
    return Method.FEATURES.value
  return (Method.DENSE if l < 2 * g else Method.BORDERED).value


class CandidateSource(Protocol):
  """The candidates of one scoring call, in scaled units (implemented in ``_driver.py``).

  ``ids`` is a ``(c,)`` int32 chunk of candidate numbers, or None for all ``m`` at once.
  """
  l: int   # labeled rows
  g: int   # rows per candidate

  def labeled_gram(self) -> jax.Array:
    """``A = K_LL`` ``(l, l)``, symmetric."""

  def blocks(self, ids: jax.Array | None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(B (c, l, g), D (c, g, g), ok (c,))``: ``K_LG``, ``K_GG``, inputs finite."""

  def border(self, Q: jax.Array, transposed: bool = False) -> Callable[[jax.Array | None], tuple]:
    """``ids -> (Qᵀ B (c, l, g), D (c, g, g), ok (c,))`` for an orthogonal ``Q (l, l)``;
    with ``transposed``, ``(Qᵀ B)ᵀ (c, g, l)`` instead (the layout of the sources' own
    products, without a transposing copy)."""


class FeatureSource(CandidateSource, Protocol):
  """A :class:`CandidateSource` whose Gram is ``Φ Φᵀ``."""
  labeled_features: jax.Array   # Φ_L (l, d)

  def features(self, ids: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """``(U (c, g, d), ok (c,))``: the candidates' features, inputs finite."""

  def projected(self, Q: jax.Array) -> Callable[[jax.Array | None], tuple]:
    """``ids -> (Qᵀ Uᵀ (c, d, g), ok (c,))`` for an orthogonal ``Q (d, d)``."""


class Plan(NamedTuple):
  """How a solver scores a chunk of candidates.

  Attributes:
    gather: ``ids -> (args, ok)``: the arguments of ``solve`` for that chunk and ``(c,)``
      whether each candidate's inputs are finite.
    solve: ``(*args, steps) -> (c,)`` eigenvalues (scaled units), or with an int32
      scalar ``steps`` below ``_roots.EXACT_STEPS`` upper bounds certified after that
      many root-finder steps (:func:`kth_eigenvalue`; the dense solver is always exact);
      row-wise in the arguments flagged by ``rows``, so that each device can run it on
      its own candidates.
    rows: per argument of ``solve`` (``steps`` excluded), whether its leading axis runs
      over candidates.
  """
  gather: Callable[[jax.Array | None], tuple[tuple[jax.Array, ...], jax.Array]]
  solve: Callable[..., jax.Array]
  rows: tuple[bool, ...]


# --------------------------------------------------------------------------------------
# per-chunk solvers (all inputs already scaled so that max |entry| is about 1)


def dense_chunk(M: jax.Array, *, positive_only: bool, rtol: jax.Array) -> jax.Array:
  """``M (c, n, n)`` -> smallest (positive) eigenvalue ``(c,)`` via ``eigvalsh``."""
  M = sym(M)
  ev = per_matrix(jnp.linalg.eigvalsh, M)
  if not positive_only:
    return ev[:, 0]
  fro = jnp.sqrt(jnp.sum(M * M, axis=(1, 2)))
  tol = rtol * fro
  pos = jnp.where(ev > tol[:, None], ev, jnp.inf)
  best = jnp.min(pos, axis=1)
  return jnp.where(jnp.isfinite(best), best, 0.0).astype(M.dtype)


def _bordered_chunk(lam, Z, D, fro2_fixed, steps, *, positive_only: bool, rtol: jax.Array,
                    compact: bool = False) -> jax.Array:
  """Bordered solve for one chunk: ``(c,)`` smallest (positive) eigenvalues.

  Args:
    lam: ``(l,)`` eigenvalues of ``K_LL``; ``Z``: ``(c, l, g)`` = ``Qᵀ K_LG``, transposed
      ``(c, g, l)`` for the plain value (``positive_only`` False, see
      :func:`kth_eigenvalue`); D: ``(c, g, g)`` = ``K_GG``; fro2_fixed: ``||K_LL||_F^2``.
    steps: int32 scalar: stop after this many root-finder steps and return certified
      upper bounds (:func:`kth_eigenvalue`); ``_roots.EXACT_STEPS`` for the eigenvalues.
    compact: iterate the chunk's slowest quarter on fewer rows (:func:`kth_eigenvalue`).
  """
  dtype = Z.dtype
  l, g = lam.shape[0], D.shape[1]
  n = l + g
  c = Z.shape[0]
  eps = jnp.finfo(dtype).eps
  D = sym(D)
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
  count = functools.partial(count_below, sigma=1.0, offset=0)
  solve = functools.partial(kth_eigenvalue, sigma=1.0, offset=0, bound_steps=steps,
                            compact=compact)
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
  return jnp.where(none, 0.0, out).astype(dtype)


def _features_chunk(lam, Y, fro2_fixed, n, steps, *, positive_only: bool, rtol: jax.Array,
                    compact: bool = False) -> jax.Array:
  """Feature-space solve for one chunk: ``(c,)`` smallest (positive) eigenvalues of ``Φ Φᵀ``.

  Args:
    lam: ``(d,)`` eigenvalues of ``Φ_Lᵀ Φ_L``; ``Y``: ``(c, d, g)`` = ``Qᵀ Φ_Gᵀ``;
    fro2_fixed: ``||Φ_Lᵀ Φ_L||_F^2``; n: rows of the Gram, ``l + g``.
    steps, compact: as for :func:`_bordered_chunk`.
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
  count = functools.partial(count_below, sigma=0.0, offset=-g)
  solve = functools.partial(kth_eigenvalue, sigma=0.0, offset=-g, bound_steps=steps,
                            compact=compact)
  upper = lam[-1] + uf2 + atol
  if not positive_only:
    if n > d:  # rank(Φ Φᵀ) <= d < n: exactly singular
      return jnp.zeros((c,), dtype)
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
  return jnp.where(none, 0.0, out).astype(dtype)


# --------------------------------------------------------------------------------------
# plans: what each solver gathers per chunk, once the fixed block is decomposed


def _dense(source: CandidateSource, *, positive_only: bool, rtol: jax.Array,
           compact: bool = False) -> Plan:
  """One ``eigvalsh`` per assembled matrix ``[[A, B], [Bᵀ, D]]`` (exact: no bound mode)."""
  del compact
  A = source.labeled_gram()
  l = source.l

  def gather(ids):
    B, D, ok = source.blocks(ids)
    c = B.shape[0]
    top = jnp.concatenate([jnp.broadcast_to(A[None], (c, l, l)), B], axis=2)
    bottom = jnp.concatenate([jnp.swapaxes(B, 1, 2), D], axis=2)
    return (jnp.concatenate([top, bottom], axis=1), rtol), ok

  solve = lambda M, rtol, steps: dense_chunk(M, positive_only=positive_only, rtol=rtol)
  return Plan(gather, solve, rows=(True, False))


def _bordered(source: CandidateSource, *, positive_only: bool, rtol: jax.Array,
              compact: bool = False) -> Plan:
  """``A = Q diag(Λ) Qᵀ`` once; per candidate the border ``Qᵀ B`` and ``D``."""
  A = source.labeled_gram()
  lam, Q = jnp.linalg.eigh(A)
  fro2 = jnp.sum(A * A)
  # the plain solve's per-candidate steps contract Zᵀ (c, g, l) (_roots.kth_eigenvalue)
  border = source.border(Q, transposed=not positive_only)

  def gather(ids):
    Z, D, ok = border(ids)
    return (lam, Z, D, fro2, rtol), ok

  solve = lambda lam, Z, D, fro2, rtol, steps: _bordered_chunk(
      lam, Z, D, fro2, steps, positive_only=positive_only, rtol=rtol, compact=compact)
  return Plan(gather, solve, rows=(False, True, True, False, False))


def _features(source: FeatureSource, *, positive_only: bool, rtol: jax.Array,
              compact: bool = False) -> Plan:
  """``Φ_Lᵀ Φ_L = Q diag(Λ) Qᵀ`` once; per candidate ``Y = Qᵀ Φ_Gᵀ``."""
  phi_L = source.labeled_features
  A = sym(jnp.matmul(phi_L.T, phi_L))
  lam, Q = jnp.linalg.eigh(A)
  fro2 = jnp.sum(A * A)
  n = source.l + source.g
  projected = source.projected(Q)

  def gather(ids):
    Y, ok = projected(ids)                                            # (c, d, g)
    return (lam, Y, fro2, rtol), ok

  solve = lambda lam, Y, fro2, rtol, steps: _features_chunk(
      lam, Y, fro2, n, steps, positive_only=positive_only, rtol=rtol, compact=compact)
  return Plan(gather, solve, rows=(False, True, False, False))


SOLVERS: dict[Method, Callable[..., Plan]] = {
    Method.DENSE: _dense,
    Method.BORDERED: _bordered,
    Method.FEATURES: _features,
}
