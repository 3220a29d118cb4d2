"""Nyström features: exact with all points as landmarks, monotone in landmarks, rcond floor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax.kernels import Kernel, infinite_ntk_fn, nystrom_features


def _rbf(x1, x2):
  d2 = (jnp.sum(x1 * x1, axis=1)[:, None] + jnp.sum(x2 * x2, axis=1)[None, :]
        - 2 * x1 @ x2.T)
  return jnp.exp(-0.5 * d2 / x1.shape[1])


def test_all_points_as_landmarks_reproduce_the_kernel():
  with jax.enable_x64(True):
    x = jax.random.uniform(jax.random.key(0), (24, 4, 4, 1), jnp.float64)
    kfn = infinite_ntk_fn("mlp")
    phi = nystrom_features(kfn, x)
    z = np.asarray(phi(x))
    k = np.asarray(kfn(x))
  assert z.shape == (24, 24) and z.dtype == np.float64 and phi.rank == 24
  assert np.linalg.norm(z @ z.T - k) <= 1e-5 * np.linalg.norm(k)


def test_float32_kernel_object_all_landmarks():
  x = jax.random.normal(jax.random.key(1), (16, 6))
  kernel = Kernel.from_features(lambda a: jnp.concatenate([a, jnp.sin(a), a**2], axis=1))
  phi = nystrom_features(kernel, x)  # rank 18 > 16 points: K_UU is full rank
  z = np.asarray(phi(x), np.float64)
  k = np.asarray(kernel(x), np.float64)
  assert phi(x).dtype == jnp.float32
  assert np.linalg.norm(z @ z.T - k) <= 1e-4 * np.linalg.norm(k)


def test_error_falls_as_landmarks_grow():
  with jax.enable_x64(True):
    pool = jax.random.normal(jax.random.key(2), (60, 8), jnp.float64)
    k = np.asarray(_rbf(pool, pool))
    errors = []
    for m in (2, 4, 8, 16, 32, 60):
      z = np.asarray(nystrom_features(_rbf, pool[:m])(pool))  # nested landmark sets
      residual = k - z @ z.T
      # Nyström residual is PSD and shrinks in the PSD order as landmarks are added
      assert np.linalg.eigvalsh(residual).min() > -1e-8
      errors.append(np.trace(residual))
  assert all(a > b for a, b in zip(errors, errors[1:])), errors
  assert errors[-1] < 1e-6 * np.trace(k)


def test_rcond_floor_drops_duplicate_directions():
  with jax.enable_x64(True):
    u = jax.random.normal(jax.random.key(3), (5, 3), jnp.float64)
    landmarks = jnp.concatenate([u, u[:2]], axis=0)  # K_UU singular (rank 5 of 7)
    phi = nystrom_features(_rbf, landmarks, rcond=1e-9)
    z = np.asarray(phi(landmarks))
    k = np.asarray(_rbf(landmarks, landmarks))
  assert phi.rank == 5
  assert np.isfinite(z).all()
  np.testing.assert_allclose(z @ z.T, k, atol=1e-8)


def test_bad_arguments():
  x = jnp.ones((3, 2))
  with pytest.raises(ValueError, match="rcond"):
    nystrom_features(_rbf, x, rcond=1.5)
  with pytest.raises(ValueError, match="no positive eigenvalue"):
    nystrom_features(lambda a, b: jnp.zeros((a.shape[0], b.shape[0])), x)
  with pytest.raises(ValueError, match="shape \\(3, 3\\)"):
    nystrom_features(lambda a, b: jnp.zeros((a.shape[0],)), x)
  with pytest.raises(ValueError, match="NaN"):
    nystrom_features(_rbf, x.at[0, 0].set(jnp.nan))
  with pytest.raises(ValueError, match="callable"):
    nystrom_features("rbf", x)
