"""DARP's refinement against a float64 solution of the same convex problem (scipy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from assljax import ssl
from assljax.ssl.algorithm import Batch, LossContext, no_augment
from assljax.ssl.darp import darp_objective, row_entropy


def _scipy_reference(a, c):
  """min sum_i w_i sum_k m log(m / a) s.t. rows sum to 1, columns to c (SLSQP, float64)."""
  n, k = a.shape
  w = 1.0 / np.maximum(-(a * np.log(a)).sum(axis=1), 1e-6)
  objective = lambda m: np.sum(w[:, None] * m.reshape(n, k) * np.log(m.reshape(n, k) / a))
  gradient = lambda m: (w[:, None] * (np.log(m.reshape(n, k) / a) + 1.0)).ravel()
  # Rows, and all columns but one (the last column constraint is implied).
  eq = np.vstack([np.kron(np.eye(n), np.ones((1, k))), np.kron(np.ones((1, n)), np.eye(k))[:-1]])
  rhs = np.concatenate([np.ones(n), c[:-1]])
  result = minimize(objective, np.tile(c / n, (n, 1)).ravel(), jac=gradient, method="SLSQP",
                    bounds=[(1e-12, 1.0)] * (n * k),
                    constraints=[{"type": "eq", "fun": lambda m: eq @ m - rhs,
                                  "jac": lambda m: eq}],
                    options={"ftol": 1e-16, "maxiter": 2000})
  assert result.success, result.message
  return result.x.reshape(n, k), result.fun


@pytest.mark.parametrize("seed,counts", [(0, [3.0, 2.5, 1.5]), (1, [1.0, 1.0, 5.0])])
def test_refinement_matches_float64_optimum(seed, counts):
  rng = np.random.default_rng(seed)
  a = rng.dirichlet(np.full(3, 0.7), size=7)
  c = np.asarray(counts)
  m_ref, f_ref = _scipy_reference(a, c)
  with jax.enable_x64(True):
    m = np.asarray(ssl.refine_pseudo_labels(jnp.asarray(a), jnp.asarray(c), num_iters=100,
                                            num_newton=20))
    f = float(darp_objective(jnp.asarray(m), jnp.asarray(a)))
  np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
  np.testing.assert_allclose(m.sum(axis=0), c, atol=1e-10)
  assert f <= f_ref + 1e-9  # as good as the general-purpose solver, feasible
  np.testing.assert_allclose(m, m_ref, atol=2e-5)
  # First-order optimality: the objective's gradient lies in span{row, column
  # indicators}, i.e. it has no component along feasible directions.
  w = 1.0 / np.maximum(-(a * np.log(a)).sum(axis=1), 1e-6)
  grad = w[:, None] * (np.log(m / a) + 1.0)
  eq = np.vstack([np.kron(np.eye(7), np.ones((1, 3))), np.kron(np.ones((1, 7)), np.eye(3))])
  residual = grad.ravel() - eq.T @ np.linalg.lstsq(eq.T, grad.ravel(), rcond=None)[0]
  assert np.abs(residual).max() < 1e-9
  with jax.enable_x64(True):
    np.testing.assert_allclose(row_entropy(jnp.asarray(a)), 1.0 / w, rtol=1e-12)


def test_default_float32_refinement_is_converged():
  rng = np.random.default_rng(2)
  p = rng.dirichlet(np.full(10, 0.3), size=2000)
  p[:, 0] += 1.0  # predictions skewed towards class 0
  p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
  counts = np.full(10, 200.0, np.float32)
  m32 = np.asarray(ssl.refine_pseudo_labels(jnp.asarray(p), jnp.asarray(counts)))
  assert m32.dtype == np.float32
  np.testing.assert_allclose(m32.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(m32.sum(axis=0), counts, rtol=1e-4)
  with jax.enable_x64(True):
    p64 = jnp.asarray(p, jnp.float64)
    m64 = ssl.refine_pseudo_labels(p64, jnp.asarray(counts, jnp.float64), num_iters=300,
                                   num_newton=30)
    f64 = float(darp_objective(m64, p64))
    f32 = float(darp_objective(jnp.asarray(m32, jnp.float64), p64))
  assert abs(f32 - f64) <= 1e-5 * abs(f64)
  np.testing.assert_allclose(m32, np.asarray(m64), atol=1e-5)
  # The refinement moved mass away from the over-predicted class.
  assert p.sum(axis=0)[0] > 1.5 * counts[0]


def test_masked_rows_take_no_part():
  rng = np.random.default_rng(3)
  p = rng.dirichlet(np.ones(4), size=12).astype(np.float32)
  mask = np.arange(12) < 8
  counts = jnp.full((4,), 2.0)
  m = np.asarray(ssl.refine_pseudo_labels(jnp.asarray(p), counts, mask=jnp.asarray(mask)))
  alone = np.asarray(ssl.refine_pseudo_labels(jnp.asarray(p[:8]), counts))
  assert np.all(m[8:] == 0.0)
  np.testing.assert_allclose(m[:8], alone, rtol=1e-5, atol=1e-7)


def test_prescale_by_hand():
  p = jnp.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
  counts = jnp.array([1.0, 1.0])
  # alpha = 1: class 0 keeps row 0 (0.7), class 1 keeps row 2 (0.8); rows 1 and 3 are
  # selected by no class and become uniform.
  out = np.asarray(ssl.darp_prescale(p, counts, alpha=1.0))
  w0, w1 = (1 + 1e-6) / (0.7 + 1e-6), (1 + 1e-6) / (0.8 + 1e-6)
  row0 = np.array([0.7 * w0 + 1e-6, 1e-6]); row2 = np.array([1e-6, 0.8 * w1 + 1e-6])
  np.testing.assert_allclose(out[0], row0 / row0.sum(), rtol=1e-5)
  np.testing.assert_allclose(out[2], row2 / row2.sum(), rtol=1e-5)
  np.testing.assert_allclose(out[1], [0.5, 0.5], rtol=1e-6)
  np.testing.assert_allclose(out[3], [0.5, 0.5], rtol=1e-6)


def test_fixmatch_darp_refines_stored_predictions():
  forward = lambda params, stats, x: (x @ params["w"], stats)
  alg = ssl.fixmatch_darp(threshold=0.0, mu=2, weak=no_augment, strong=no_augment,
                          warmup_steps=4, refine_every=3, alpha=None)
  num_rows, classes = 6, 3
  state = alg.init_state(num_rows, classes)
  np.testing.assert_allclose(state.original, 1.0 / 3)
  rng = np.random.default_rng(4)
  logits_u = jnp.asarray(rng.normal(size=(4, 3)).astype(np.float32))
  batch = Batch(jnp.eye(3)[:2], jnp.array([0, 1]), logits_u, jnp.array([0, 2, 3, 5]))
  ctx = lambda s: LossContext(None, None, s, jnp.asarray(num_rows, jnp.int32))
  params = {"w": jnp.eye(3)}
  probs = np.asarray(jax.nn.softmax(logits_u))
  # Before the warm-up: plain FixMatch, but predictions are stored.
  _, (_, _, state) = alg.loss(forward, params, {}, batch, jax.random.key(0), 1, ctx(state))
  np.testing.assert_allclose(state.original[np.array([0, 2, 3, 5])], probs, rtol=1e-6)
  np.testing.assert_allclose(state.refined, 1.0 / 3)  # not refined yet
  # Step 4 = warm-up end: refine towards uniform counts (6 rows / 3 classes = 2 each).
  _, (_, metrics, state) = alg.loss(forward, params, {}, batch, jax.random.key(0), 4,
                                    ctx(state))
  expected = ssl.refine_pseudo_labels(state.original, jnp.full((3,), 2.0))
  np.testing.assert_allclose(state.refined, expected, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(state.refined).sum(axis=0), 2.0, rtol=1e-4)
  # The unlabeled loss now uses the refined rows' argmax as pseudo-labels.
  pseudo = np.asarray(expected)[np.array([0, 2, 3, 5])].argmax(axis=1)
  logp = np.log(probs)
  loss_u = -np.mean(logp[np.arange(4), pseudo])
  np.testing.assert_allclose(metrics["loss_u"], loss_u, rtol=1e-5)
  # Step 5: not a refinement step; the refined matrix is kept.
  before = np.asarray(state.refined)
  _, (_, _, state) = alg.loss(forward, params, {}, batch, jax.random.key(0), 5, ctx(state))
  np.testing.assert_array_equal(state.refined, before)
