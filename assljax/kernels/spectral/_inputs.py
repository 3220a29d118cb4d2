"""Input handling of the spectral solvers: validation, class blocks, index sets, scaling.

Everything here runs on the host before any solver is traced: it checks shapes and
dtypes (one-sentence ``ValueError``), assembles class blocks into plain matrices, and
returns the inputs as a :class:`Blocks` or :class:`Features` record, which the driver
(``_driver.py``) scores. :func:`scale_and_check` picks the power of two that the driver
divides the Gram by, and refuses non-finite concrete inputs.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import UserInputError, is_traced


def default_rtol(dtype: Any) -> float:
  """The default positive-only tolerance, relative to ``||M||_F``, for ``dtype``.

  ``1e-5`` for float32 and ``1e-10`` for float64: well above the rounding noise of a
  computed zero eigenvalue (a few ulps of ``λ_max``, ``~1e-7`` and ``~1e-16``), well
  below any eigenvalue one would call "positive".
  """
  return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-10


def resolve_rtol(rtol: float | None, dtype: Any) -> float:
  """``rtol`` as a float (:func:`default_rtol` for None); ValueError if not finite >= 0."""
  if rtol is None:
    return default_rtol(dtype)
  rtol = float(rtol)
  if not (math.isfinite(rtol) and rtol >= 0):
    raise UserInputError(f"rtol must be a finite non-negative number, got {rtol!r}.")
  return rtol


def as_float(x: Any, name: str) -> jax.Array:
  """``x`` as a real floating array (integers become float32); ValueError if complex."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise UserInputError(f"{name} must be real, got dtype {x.dtype}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


def _common_dtype(*xs: jax.Array) -> Any:
  return jnp.result_type(*[x.dtype for x in xs])


def assemble_blocks(K: jax.Array) -> jax.Array:
  """``(..., n1, n2, C, C)`` class blocks -> ``(..., n1 C, n2 C)``, row ``i C + a``."""
  *batch, n1, n2, c1, c2 = K.shape
  nb = len(batch)
  perm = tuple(range(nb)) + (nb, nb + 2, nb + 1, nb + 3)
  return jnp.transpose(K, perm).reshape(tuple(batch) + (n1 * c1, n2 * c2))


def _expand_index(index: jax.Array, num_classes: int) -> jax.Array:
  """``(m, g)`` sample index -> ``(m, g C)`` row index of the class-expanded pool."""
  return (index[:, :, None] * num_classes + jnp.arange(num_classes)[None, None, :]).reshape(
      index.shape[0], -1)


# --------------------------------------------------------------------------------------
# scaling


@jax.jit
def _abs_max(x: jax.Array) -> jax.Array:
  """max |x| (NaN if x has a NaN, inf if it has an infinity); 0 for empty x."""
  if x.size == 0:
    return jnp.zeros((), x.dtype)
  return jnp.max(jnp.abs(x))


@functools.partial(jax.jit, static_argnames=("dtype", "square"))
def _pow2_scale(amaxes: tuple[jax.Array, ...], dtype: Any, *, square: bool) -> jax.Array:
  """A power of two near ``max(amaxes)`` (1 for zero/non-finite), for exact rescaling;
  squared (the scale of a Gram of features) when ``square``. Kept inside the normal
  range. One compiled program (eagerly, its dozen operations would compile one by one)."""
  amax = functools.reduce(jnp.maximum, amaxes).astype(dtype)
  ok = jnp.isfinite(amax) & (amax > 0)
  e = jnp.round(jnp.log2(jnp.where(ok, amax, 1.0)))
  limit = (jnp.finfo(dtype).maxexp - 4) // (2 if square else 1)
  s = jnp.where(ok, jnp.exp2(jnp.clip(e, -limit, limit)), 1.0).astype(dtype)
  return s * s if square else s


def scale_and_check(named: dict[str, jax.Array], dtype: Any, *,
                    square: bool = False) -> jax.Array:
  """One power-of-two scale for all arrays; ValueError on non-finite concrete input.

  Returns the scale of the Gram: that of the arrays' largest entry, squared when the
  arrays are features (``square=True``).
  """
  amaxes = {k: _abs_max(v) for k, v in named.items()}
  if not is_traced(*named.values()):
    for k, a in amaxes.items():
      if not math.isfinite(float(a)):
        raise UserInputError(f"{k} contains NaN or infinity; refusing to score.")
    amax = max(float(a) for a in amaxes.values())
    big = math.sqrt(float(jnp.finfo(dtype).max)) / 2.0 ** 8
    if square and amax > big:
      raise UserInputError(f"features as large as {amax:.3g} have a Gram that overflows "
                           f"{jnp.dtype(dtype).name}; rescale them (the eigenvalues scale with "
                           "the square).")
  return _pow2_scale(tuple(amaxes.values()), jnp.dtype(dtype), square=square)


# --------------------------------------------------------------------------------------
# the two input forms


class Blocks(NamedTuple):
  """Validated Gram blocks (class blocks already assembled), in the inputs' dtype.

  Attributes:
    K_LL: ``(l, l)`` labeled block.
    K_LG: ``(m, l, g)`` labeled-candidate blocks, or ``K_LU (l, N)`` with ``index``.
    K_GG: ``(m, g, g)`` candidate blocks.
    index: ``(m, g)`` int32 columns of ``K_LU`` per candidate, or None.
  """
  K_LL: jax.Array
  K_LG: jax.Array
  K_GG: jax.Array
  index: jax.Array | None

  @property
  def labeled(self) -> jax.Array:
    return self.K_LL

  @property
  def l(self) -> int:
    return self.K_LL.shape[0]

  @property
  def g(self) -> int:
    return self.K_GG.shape[1]

  @property
  def m(self) -> int:
    return self.K_GG.shape[0]

  @property
  def d(self) -> None:
    """No feature dimension (:func:`assljax.kernels.spectral.choose_method`)."""
    return None

  def scale(self) -> jax.Array:
    """Power of two dividing the Gram (:func:`scale_and_check`)."""
    return scale_and_check({"K_LL": self.K_LL, "K_LG": self.K_LG, "K_GG": self.K_GG},
                           self.K_LL.dtype)


class Features(NamedTuple):
  """Validated features (class axes folded into rows), in the inputs' dtype.

  Attributes:
    phi_L: ``(l, d)`` labeled features.
    phi_G: ``(m, g, d)`` candidate features, or ``Φ_U (N, d)`` with ``index``.
    index: ``(m, g)`` int32 rows of ``Φ_U`` per candidate, or None.
  """
  phi_L: jax.Array
  phi_G: jax.Array
  index: jax.Array | None

  @property
  def labeled(self) -> jax.Array:
    return self.phi_L

  @property
  def l(self) -> int:
    return self.phi_L.shape[0]

  @property
  def g(self) -> int:
    return self.index.shape[1] if self.index is not None else self.phi_G.shape[1]

  @property
  def m(self) -> int:
    return self.index.shape[0] if self.index is not None else self.phi_G.shape[0]

  @property
  def d(self) -> int:
    return self.phi_L.shape[1]

  def scale(self) -> jax.Array:
    """Power of two dividing the Gram ``Φ Φᵀ`` (:func:`scale_and_check`, squared)."""
    return scale_and_check({"phi_L": self.phi_L, "phi_G": self.phi_G}, self.phi_L.dtype,
                           square=True)


@jax.jit
def _range(index: jax.Array) -> tuple[jax.Array, jax.Array]:
  return jnp.min(index), jnp.max(index)


def _index(index: Any, size: int) -> jax.Array:
  """``index`` as int32 with entries in ``[0, size)`` (checked when concrete)."""
  # a host array is checked on the host (no device round trip, nothing to compile)
  index = np.asarray(index) if isinstance(index, (np.ndarray, list, tuple)) else index
  if not jnp.issubdtype(index.dtype, jnp.integer):
    raise UserInputError(f"index must be an integer array, got dtype {index.dtype}.")
  if not is_traced(index) and index.size:
    low, high = ((index.min(), index.max()) if isinstance(index, np.ndarray)
                 else _range(index))
    if int(low) < 0 or int(high) >= size:
      raise UserInputError(f"index entries must lie in [0, {size}), found "
                           f"[{int(low)}, {int(high)}].")
  return jnp.asarray(index, jnp.int32)


def blocks(K_LL: Any, K_LG: Any, K_GG: Any, *, index: Any = None) -> Blocks:
  """Validates Gram blocks (scalar or class-block form) and assembles class blocks.

  Args:
    K_LL: ``(l, l)`` or ``(l, l, C, C)``.
    K_LG: ``(m, l, g)`` (+ ``(C, C)``), or ``K_LU (l, N)`` (+ ``(C, C)``) with ``index``.
    K_GG: ``(m, g, g)`` (+ ``(C, C)``).
    index: ``(m, g)`` ints into the ``N`` columns of ``K_LU``, or None.

  Returns:
    :class:`Blocks` with ``(l C, l C)``-style assembled matrices; class blocks expand
    ``index`` to ``g C`` columns per candidate.
  """
  if index is not None:
    index = _index(index, jnp.shape(K_LG)[1] if jnp.ndim(K_LG) >= 2 else 0)
  K_LL = as_float(K_LL, "K_LL")
  K_LG = as_float(K_LG, "K_LG")
  K_GG = as_float(K_GG, "K_GG")
  dtype = _common_dtype(K_LL, K_LG, K_GG)
  K_LL, K_LG, K_GG = (a.astype(dtype) for a in (K_LL, K_LG, K_GG))
  class_blocks = K_LL.ndim == 4
  C = K_LL.shape[-1] if class_blocks else 1
  cc = (C, C) if class_blocks else ()
  if K_LL.ndim not in (2, 4) or K_LL.shape[0] != K_LL.shape[1] or (
      class_blocks and K_LL.shape[2] != K_LL.shape[3]):
    raise UserInputError(f"K_LL must be (l, l) or (l, l, C, C), got {tuple(K_LL.shape)}.")
  l = K_LL.shape[0]
  if K_GG.ndim != 3 + len(cc) or K_GG.shape[1] != K_GG.shape[2] or K_GG.shape[3:] != cc:
    raise UserInputError(f"K_GG must be (m, g, g){' + (C, C)' if class_blocks else ''} to match "
                         f"K_LL {tuple(K_LL.shape)}, got {tuple(K_GG.shape)}.")
  m, g = K_GG.shape[0], K_GG.shape[1]
  if g == 0:
    raise UserInputError("candidate groups must have at least one member (g >= 1).")
  if index is None:
    if K_LG.shape != (m, l, g) + cc:
      raise UserInputError(f"K_LG must be {(m, l, g) + cc} to match K_LL and K_GG, "
                           f"got {tuple(K_LG.shape)}.")
  else:
    if index.shape != (m, g):
      raise UserInputError(f"index must be (m, g) = {(m, g)}, got {tuple(index.shape)}.")
    if K_LG.ndim != 2 + len(cc) or K_LG.shape[0] != l or K_LG.shape[2:] != cc:
      raise UserInputError(f"with index, K_LG must be (l, N){' + (C, C)' if class_blocks else ''}"
                           f" with l = {l}, got {tuple(K_LG.shape)}.")
  if class_blocks:
    K_LL = assemble_blocks(K_LL)
    K_GG = assemble_blocks(K_GG)
    if index is None:
      K_LG = assemble_blocks(K_LG)
    else:
      K_LG = assemble_blocks(K_LG[None])[0]                    # (l C, N C)
      index = _expand_index(index, C)
  return Blocks(K_LL, K_LG, K_GG, index)


def features(phi_L: Any, phi_G: Any, *, index: Any = None) -> Features:
  """Validates features (optionally with a class axis) and folds the class axis into rows.

  Args:
    phi_L: ``(l, d)`` or ``(l, C, d)``.
    phi_G: ``(m, g, d)`` (or ``(m, g, C, d)``), or ``Φ_U (N, d)`` (or ``(N, C, d)``) with
      ``index``.
    index: ``(m, g)`` ints into the ``N`` rows of ``Φ_U``, or None.

  Returns:
    :class:`Features` with 2-D ``phi_L`` and ``phi_G`` of shape ``(m, g C, d)`` or
    ``(N C, d)``; class axes expand ``index`` to ``g C`` rows per candidate.
  """
  if index is not None:
    index = _index(index, jnp.shape(phi_G)[0] if jnp.ndim(phi_G) >= 1 else 0)
  phi_L = as_float(phi_L, "phi_L")
  phi_G = as_float(phi_G, "phi_G")
  dtype = _common_dtype(phi_L, phi_G)
  phi_L, phi_G = phi_L.astype(dtype), phi_G.astype(dtype)
  if phi_L.ndim not in (2, 3):
    raise UserInputError(f"phi_L must be (l, d) or (l, C, d), got {tuple(phi_L.shape)}.")
  class_axis = phi_L.ndim == 3
  tail = phi_L.shape[1:]
  d = tail[-1]
  if d == 0:
    raise UserInputError("features must have at least one dimension (d >= 1).")
  if index is None:
    if phi_G.ndim != 2 + len(tail) or phi_G.shape[2:] != tail or phi_G.shape[1] == 0:
      raise UserInputError(f"phi_G must be (m, g, {', '.join(map(str, tail))}) with g >= 1 to "
                           f"match phi_L {tuple(phi_L.shape)}, got {tuple(phi_G.shape)}.")
    m = phi_G.shape[0]
    if class_axis:
      phi_G = phi_G.reshape(m, -1, d)
  else:
    if phi_G.ndim != 1 + len(tail) or phi_G.shape[1:] != tail:
      raise UserInputError(f"with index, phi_G must be (N, {', '.join(map(str, tail))}), "
                           f"got {tuple(phi_G.shape)}.")
    if index.ndim != 2 or index.shape[1] == 0:
      raise UserInputError(f"index must be (m, g) with g >= 1, got {tuple(index.shape)}.")
    if class_axis:
      phi_G = phi_G.reshape(-1, d)
      index = _expand_index(index, tail[0])
  if class_axis:
    phi_L = phi_L.reshape(-1, d)
  return Features(phi_L, phi_G, index)
