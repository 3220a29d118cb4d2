"""The public solvers: validate, pick a method, hand over to the jitted driver."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from assljax._validation import UserInputError, check_chunk_size, check_positive_int
from assljax.kernels.spectral import _driver, _inputs
from assljax.kernels.spectral._solvers import Method, choose_method

DEFAULT_CHUNK_SIZE = 256

_METHODS = ("auto", *Method)


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
  K = _inputs.as_float(K, "K")
  check_chunk_size(chunk_size)
  if class_blocks:
    if K.ndim < 4 or K.shape[-4] != K.shape[-3] or K.shape[-2] != K.shape[-1]:
      raise UserInputError(
          f"with class_blocks=True, K must be (..., n, n, C, C), got {tuple(K.shape)}.")
    K = _inputs.assemble_blocks(K)
  if K.ndim < 2 or K.shape[-1] != K.shape[-2] or K.shape[-1] == 0:
    raise UserInputError(f"K must be a batch of non-empty square matrices (..., n, n), "
                         f"got shape {tuple(K.shape)}.")
  rtol = _inputs.resolve_rtol(rtol, K.dtype)
  batch = K.shape[:-2]
  if math.prod(batch) == 0:
    return jnp.zeros(batch, K.dtype)
  scale = _inputs.scale_and_check({"K": K}, K.dtype)
  return _driver.independent(K, scale, jnp.asarray(rtol, K.dtype),
                             positive_only=bool(positive_only), chunk_size=chunk_size)


def bordered_min_eigenvalues(K_LL: jax.Array, K_LG: jax.Array, K_GG: jax.Array, *,
                             positive_only: bool = True, rtol: float | None = None,
                             chunk_size: int | None = DEFAULT_CHUNK_SIZE) -> jax.Array:
  """Smallest (positive) eigenvalue of ``[[K_LL, K_LG_i], [K_LG_iᵀ, K_GG_i]]`` per candidate.

  ``K_LL`` is eigendecomposed once (O(l^3)); each candidate then costs
  O(l^2 g) (the basis change ``Qᵀ K_LG``) plus O(l g^2) per Newton/bisection step on the
  g x g Schur complement (see the package docstring). Exact for singular ``K_LL``. With
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
                               chunk_size=chunk_size, method=Method.BORDERED)


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
                               rtol=rtol, chunk_size=chunk_size, method=Method.FEATURES)


def batch_min_eigenvalues(K_LL: jax.Array | None = None, K_LG: jax.Array | None = None,
                          K_GG: jax.Array | None = None, *, phi_L: jax.Array | None = None,
                          phi_G: jax.Array | None = None, index: jax.Array | None = None,
                          positive_only: bool = True, rtol: float | None = None,
                          chunk_size: int | None = DEFAULT_CHUNK_SIZE,
                          method: str = "auto", bound_steps: int | None = None) -> jax.Array:
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
  (features only); a :class:`Method` works too. All methods return the same values up
  to rounding.

  Args:
    positive_only: smallest eigenvalue above ``rtol * ||M||_F`` (0 if none) instead of
      the smallest eigenvalue.
    rtol: positive-only tolerance; None for :func:`default_rtol`.
    chunk_size: candidates per ``lax.map`` step (None: all at once).
    bound_steps: instead of the eigenvalues, return upper bounds certified by an inertia
      count after at most this many root-finder steps of the bordered or feature-space
      solver (the dense method returns the eigenvalues themselves); the bordered
      solver's plain bound also takes the Rayleigh quotient of the vector its last step
      proposes when lower. A candidate's bound is never below the value the full solve
      returns for it, so candidates whose bound is below some candidate's
      value can be dropped from a search for the largest value: NPC's argmax.

  Returns:
    ``(m,)`` eigenvalues (or upper bounds) in the inputs' floating dtype.
  """
  bound_steps = check_positive_int("bound_steps", bound_steps, allow_none=True)
  inputs, scale, rtol, method = _prepare(K_LL, K_LG, K_GG, phi_L, phi_G, index, rtol=rtol,
                                         chunk_size=chunk_size, method=method)
  if inputs.m == 0:
    return jnp.zeros((0,), inputs.labeled.dtype)
  return _driver.score(inputs, scale, rtol, method=method, positive_only=bool(positive_only),
                       chunk_size=chunk_size, bound_steps=bound_steps)


def argmax_min_eigenvalue(K_LL: jax.Array | None = None, K_LG: jax.Array | None = None,
                          K_GG: jax.Array | None = None, *, phi_L: jax.Array | None = None,
                          phi_G: jax.Array | None = None, index: jax.Array | None = None,
                          positive_only: bool = True, rtol: float | None = None,
                          chunk_size: int | None = DEFAULT_CHUNK_SIZE,
                          method: str = "auto", bound_steps: int = 2,
                          refine_steps: int | None = 6) -> _driver.Argmax:
  """The candidate whose Gram has the largest smallest (positive) eigenvalue (NPC's pick).

  Takes the inputs of :func:`batch_min_eigenvalues` and returns the ``np.argmax`` of its
  values (the first among equals) without solving every candidate exactly: every
  candidate is bounded from above after ``bound_steps`` root-finder steps (certified by
  the inertia count), the block of highest bounds is solved exactly, the candidates
  whose bound can still reach its best value are bounded again with ``refine_steps``
  steps, and then solved exactly in blocks of ``chunk_size``, highest bounds first,
  until no bound left can win or tie (with a smaller candidate number) the best value
  found. Bounds and exact solves share one compiled solver loop, so a search compiles
  one program. The dense method (also chosen by ``"auto"``
  for ``l < 2 g`` blocks, see :func:`choose_method`) has no bounds and solves every
  candidate.

  Args:
    K_LL, K_LG, K_GG, phi_L, phi_G, index, positive_only, rtol, method: as for
      :func:`batch_min_eigenvalues`.
    chunk_size: candidates per exact block and per ``lax.map`` step (per device of a
      data mesh); None: all at once.
    bound_steps: root-finder steps per first bound (more: tighter bounds, fewer exact
      solves, dearer bounds).
    refine_steps: root-finder steps per second bound of the remaining contenders (None:
      none; they are solved exactly).

  Returns:
    ``Argmax(index, value, num_solved)``: ``()`` arrays, the winning candidate, its
    value (NaN if some candidate's inputs were non-finite, only reachable when traced)
    and how many candidates were solved exactly.
  """
  bound_steps = check_positive_int("bound_steps", bound_steps)
  refine_steps = check_positive_int("refine_steps", refine_steps, allow_none=True)
  inputs, scale, rtol, method = _prepare(K_LL, K_LG, K_GG, phi_L, phi_G, index, rtol=rtol,
                                         chunk_size=chunk_size, method=method)
  if inputs.m == 0:
    raise UserInputError("argmax_min_eigenvalue needs at least one candidate (m >= 1).")
  if method == Method.DENSE:
    values = _driver.score(inputs, scale, rtol, method=method,
                           positive_only=bool(positive_only), chunk_size=chunk_size)
    best = jnp.argmax(values).astype(jnp.int32)
    value = jnp.where(jnp.any(jnp.isnan(values)), jnp.nan, values[best])
    return _driver.Argmax(best, value, jnp.asarray(inputs.m, jnp.int32))
  return _driver.argmax(inputs, scale, rtol, method=method, positive_only=bool(positive_only),
                        chunk_size=chunk_size, bound_steps=bound_steps,
                        refine_steps=refine_steps)


def _prepare(K_LL, K_LG, K_GG, phi_L, phi_G, index, *, rtol: float | None,
             chunk_size: int | None, method: str):
  """Validated inputs, their power-of-two scale, ``rtol`` (an array) and the method."""
  if method not in _METHODS:
    raise UserInputError(f"method must be one of {', '.join(_METHODS)}, got {method!r}.")
  check_chunk_size(chunk_size)
  have_blocks = any(a is not None for a in (K_LL, K_LG, K_GG))
  have_features = phi_L is not None or phi_G is not None
  if have_blocks == have_features:
    raise UserInputError("give either Gram blocks (K_LL, K_LG, K_GG) or features "
                         "(phi_L, phi_G), not both or neither.")
  if have_blocks and any(a is None for a in (K_LL, K_LG, K_GG)):
    raise UserInputError("Gram blocks need all three of K_LL, K_LG and K_GG.")
  if have_features and (phi_L is None or phi_G is None):
    raise UserInputError("features need both phi_L and phi_G.")
  if index is not None and jnp.ndim(index) != 2:
    raise UserInputError(f"index must be (m, g), got shape {tuple(jnp.shape(index))}.")

  if have_blocks:
    inputs = _inputs.blocks(K_LL, K_LG, K_GG, index=index)
  else:
    inputs = _inputs.features(phi_L, phi_G, index=index)
  dtype = inputs.labeled.dtype
  scale = inputs.scale()
  rtol = _inputs.resolve_rtol(rtol, dtype)
  method = Method(choose_method(l=inputs.l, g=inputs.g, d=inputs.d) if method == "auto"
                  else method)
  if method == Method.FEATURES and not have_features:
    raise UserInputError("method='features' needs features (phi_L, phi_G), not Gram blocks.")
  if method == Method.BORDERED and inputs.l == 0:
    method = Method.DENSE  # nothing shared: the bordered solve is λ_min of K_GG
  return inputs, scale, jnp.asarray(rtol, dtype), method
