"""Nyström features: a finite feature map for any kernel from ``m`` landmarks.

    phi = nystrom_features(kernel, landmarks)      # landmarks U: (m, ...)
    z = phi(x)                                     # (n, m)
    z1 @ z2.T  ~=  k(x1, x2)                       # exact on span{k(., u)}

``phi(x) = k(x, U) (K_UU)^{+1/2}`` with ``(K_UU)^{+1/2} = V diag(lambda^{-1/2}) V^T`` over
the eigenpairs with ``lambda > rcond * lambda_max`` (smaller ones are dropped: a
pseudo-inverse square root with an eigenvalue floor), so
``phi(x1) phi(x2)^T = k(x1, U) K_UU^+ k(U, x2)``. This is the Bilevel-coreset embedding
``z_x = K_UU^{+1/2} k(U, x)``.

Precision: ``K_UU`` is symmetrized and eigendecomposed once in float64 on the host
(NumPy), then ``(K_UU)^{+1/2}`` is cast to the kernel's output dtype; ``phi`` itself is one
matrix product on the device.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import UserInputError, check_number
from assljax.kernels.empirical import _check_inputs

_HIGHEST = jax.lax.Precision.HIGHEST


def nystrom_features(kernel: Callable[[jax.Array, jax.Array], jax.Array], landmarks: jax.Array,
                     *, rcond: float = 1e-6) -> Callable[[jax.Array], jax.Array]:
  """Returns ``phi(x) -> (n, m)`` with ``phi(x1) @ phi(x2).T ~= kernel(x1, x2)``.

  Args:
    kernel: a :class:`~assljax.kernels.Kernel` or any callable
      ``k(x1, x2) -> (n1, n2)`` that is positive semi-definite.
    landmarks: ``U`` ``(m, ...)``, inputs shaped like those of ``kernel``.
    rcond: eigenvalues of ``K_UU`` at or below ``rcond * lambda_max`` are dropped.

  Returns:
    ``phi(x)`` for ``x: (n, ...)``, returning ``(n, m)`` in the kernel's dtype.
    ``phi.rank`` is the number of eigenvalues kept.

  Raises:
    ValueError: bad ``rcond``, empty or non-finite landmarks, a non-square or non-finite
      ``K_UU``, or a kernel that is zero on the landmarks.
  """
  if not callable(kernel):
    raise UserInputError(f"kernel must be callable, got {type(kernel).__name__}.")
  check_number("rcond", rcond, low=0.0, high=1.0, include_high=False)
  landmarks, _ = _check_inputs(landmarks)
  m = landmarks.shape[0]
  k_uu = kernel(landmarks, landmarks)
  if not hasattr(k_uu, "shape") or tuple(k_uu.shape) != (m, m):
    raise UserInputError(f"kernel(landmarks, landmarks) must have shape ({m}, {m}), got "
                         f"{getattr(k_uu, 'shape', type(k_uu).__name__)}.")
  dtype = jnp.result_type(k_uu)
  k64 = np.asarray(k_uu, dtype=np.float64)
  if not np.isfinite(k64).all():
    raise UserInputError("kernel(landmarks, landmarks) contains NaN or infinity.")
  k64 = 0.5 * (k64 + k64.T)
  lam, vec = np.linalg.eigh(k64)
  lam_max = float(lam[-1])
  if lam_max <= 0:
    raise UserInputError("kernel(landmarks, landmarks) has no positive eigenvalue; the "
                         "landmarks carry no signal for this kernel.")
  keep = lam > rcond * lam_max
  v = vec[:, keep]
  inv_sqrt = (v * lam[keep] ** -0.5) @ v.T  # (m, m)
  inv_sqrt = jnp.asarray(inv_sqrt, dtype=dtype)

  def phi(x: jax.Array) -> jax.Array:
    """Nyström features ``(n, m)`` of ``x: (n, ...)``."""
    k_xu = kernel(x, landmarks)
    return jnp.dot(k_xu, inv_sqrt, precision=_HIGHEST)

  phi.rank = int(keep.sum())
  phi.landmarks = landmarks
  return phi
