"""Bilevel coreset: implicit gradients vs finite differences, CG vs a dense solve."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from assljax import acquisition
from assljax.acquisition import bilevel

REG = 0.05


def _logistic_problem(seed=0, m=3, num_classes=3):
  rng = np.random.default_rng(seed)
  soft = lambda n: jax.nn.softmax(jnp.asarray(2.0 * rng.normal(size=(n, num_classes))), axis=-1)
  z_train = jnp.asarray(rng.normal(size=(8, m)))
  t_train = jax.nn.one_hot(rng.integers(0, num_classes, 8), num_classes, dtype=jnp.float64)
  z_cand, t_cand = jnp.asarray(rng.normal(size=(5, m))), soft(5)
  z_out, t_out = jnp.asarray(rng.normal(size=(12, m))), soft(12)
  theta0 = {"kernel": jnp.zeros((m, num_classes)), "bias": jnp.zeros((num_classes,))}
  return z_train, t_train, z_cand, t_cand, z_out, t_out, theta0


@functools.partial(jax.jit, static_argnames=("reg",))
def _newton(theta0, z, t, w, normalizer, reg=REG):
  """The inner minimizer by 30 dense Newton steps (float64 reference)."""
  flat0, unravel = ravel_pytree(theta0)
  f = lambda v: bilevel.inner_objective(unravel(v), z, t, w, reg=reg, normalizer=normalizer)
  step = lambda _, v: v - jnp.linalg.solve(jax.hessian(f)(v), jax.grad(f)(v))
  return unravel(jax.lax.fori_loop(0, 30, step, flat0))


def test_implicit_gradient_equals_finite_difference_of_the_outer_loss():
  with jax.enable_x64(True):
    z_tr, t_tr, z_c, t_c, z_out, t_out, theta0 = _logistic_problem()
    w_tr = jnp.ones((8,))
    normalizer = 8.0
    theta = _newton(theta0, z_tr, t_tr, w_tr, normalizer)
    got = bilevel.implicit_weight_gradients(theta, z_tr, t_tr, w_tr, z_c, t_c, z_out, t_out,
                                            reg=REG, normalizer=normalizer, cg_steps=200,
                                            tol=1e-14)
    eps = 1e-4
    want = []
    for j in range(5):
      outer = []
      for w in (eps, -eps):
        z = jnp.concatenate([z_tr, z_c[j:j + 1]])
        t = jnp.concatenate([t_tr, t_c[j:j + 1]])
        weights = jnp.concatenate([w_tr, jnp.asarray([w])])
        outer.append(bilevel.outer_objective(_newton(theta, z, t, weights, normalizer),
                                             z_out, t_out))
      want.append((outer[0] - outer[1]) / (2 * eps))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(want)).max() > 1e-3          # a non-trivial derivative


def test_cg_inverse_hvp_equals_dense_solve():
  with jax.enable_x64(True):
    z_tr, t_tr, _, _, z_out, t_out, theta0 = _logistic_problem(seed=1)
    w_tr = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, 8))
    theta = _newton(theta0, z_tr, t_tr, w_tr, 8.0)
    v = jax.grad(bilevel.outer_objective)(theta, z_out, t_out)
    got = bilevel.inverse_hvp(theta, z_tr, t_tr, w_tr, v, reg=REG, normalizer=8.0,
                              cg_steps=200, tol=1e-14)
    flat, unravel = ravel_pytree(theta)
    hess = jax.hessian(lambda u: bilevel.inner_objective(unravel(u), z_tr, t_tr, w_tr, reg=REG,
                                                         normalizer=8.0))(flat)
    want = np.linalg.solve(np.asarray(hess), np.asarray(ravel_pytree(v)[0]))
    np.testing.assert_allclose(np.asarray(ravel_pytree(got)[0]), want, rtol=1e-9, atol=1e-12)


def test_lbfgs_inner_solver_reaches_the_newton_solution():
  with jax.enable_x64(True):
    z_tr, t_tr, _, _, _, _, theta0 = _logistic_problem(seed=2)
    w_tr = jnp.ones((8,))
    got = jax.jit(lambda t: bilevel.solve_inner(t, z_tr, t_tr, w_tr, reg=REG, normalizer=8.0,
                                                max_steps=500, tol=1e-10))(theta0)
    want = _newton(theta0, z_tr, t_tr, w_tr, 8.0)
    np.testing.assert_allclose(np.asarray(ravel_pytree(got)[0]),
                               np.asarray(ravel_pytree(want)[0]), rtol=1e-6, atol=1e-8)


def _linear_kernel(a, b):
  return a @ b.T + 1.0


def test_first_greedy_pick_maximizes_the_dense_implicit_score():
  rng = np.random.default_rng(3)
  n, num_classes = 40, 3
  x = jnp.asarray(rng.normal(size=(n, 4)), jnp.float32)
  w_true = rng.normal(size=(4, num_classes))
  labels = np.argmax(np.asarray(x) @ w_true, axis=1).astype(np.int32)
  mask = np.zeros(n, bool)
  mask[:6] = True
  ctx = acquisition.Context(apply_fn=lambda p, xb: xb @ p, params=jnp.asarray(w_true, jnp.float32),
                            x=x, labeled_mask=jnp.asarray(mask),
                            labels=jnp.asarray(np.where(mask, labels, 0)), num_classes=num_classes)
  strategy = acquisition.get("bilevel", kernel=_linear_kernel, landmarks=8, random_fraction=0.0,
                             reg=0.01, inner_steps=500, inner_tol=1e-7, cg_steps=200)
  key = jax.random.key(0)
  pick = int(strategy(key, ctx, 1)[0])

  phi = strategy.feature_map(jax.random.fold_in(key, 1), ctx)
  unlabeled = ctx.unlabeled_indices()
  with jax.enable_x64(True):
    z_out = jnp.asarray(phi(x[unlabeled]), jnp.float64)
    t_out = jax.nn.softmax(jnp.asarray(ctx.apply_fn(ctx.params, x[unlabeled]), jnp.float64))
    z_tr = jnp.asarray(phi(x[:6]), jnp.float64)
    t_tr = jax.nn.one_hot(labels[:6], num_classes, dtype=jnp.float64)
    w_tr = jnp.ones((6,))
    theta0 = {"kernel": jnp.zeros((z_out.shape[1], num_classes)),
              "bias": jnp.zeros((num_classes,))}
    theta = _newton(theta0, z_tr, t_tr, w_tr, 6.0, reg=0.01)
    u, unravel = ravel_pytree(theta)
    f = lambda u: bilevel.inner_objective(unravel(u), z_tr, t_tr, w_tr, reg=0.01, normalizer=6.0)
    g = ravel_pytree(jax.grad(bilevel.outer_objective)(theta, z_out, t_out))[0]
    v = unravel(jnp.linalg.solve(jax.hessian(f)(u), g))
    scores = np.asarray(bilevel.candidate_scores(theta, v, z_out, t_out))
  best = scores.max()
  assert pick in unlabeled
  assert scores[np.searchsorted(unlabeled, pick)] >= best - 1e-3 * (best - scores.min())


def _flat_linear_kernel(a, b):
  return a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T + 1.0


def test_images_enter_the_inner_problem_as_augmented_copies():
  rng = np.random.default_rng(4)
  n, num_classes = 24, 3
  x = jnp.asarray(rng.uniform(size=(n, 8, 8, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(8 * 8 * 3, num_classes)), jnp.float32)
  mask = np.zeros(n, bool)
  mask[:4] = True
  ctx = acquisition.Context(apply_fn=lambda p, xb: xb.reshape(xb.shape[0], -1) @ p, params=w,
                            x=x, labeled_mask=jnp.asarray(mask),
                            labels=jnp.asarray(np.arange(n) % num_classes, jnp.int32),
                            num_classes=num_classes)
  strategy = acquisition.get("bilevel", kernel=_flat_linear_kernel, landmarks=10,
                             augmentations=3, inner_steps=50, cg_steps=30)
  assert strategy.copies(ctx) == 3
  phi = strategy.feature_map(jax.random.key(0), ctx)
  z = np.asarray(strategy._train_features(jax.random.key(1), phi, ctx, np.array([5])))
  assert z.shape == (3, 10)
  # three different weak augmentations of one image, none equal to the image itself
  plain = np.asarray(phi(x[5:6]))
  assert not np.allclose(z[0], z[1]) or not np.allclose(z[1], z[2])
  assert not all(np.allclose(row, plain[0]) for row in z)
  idx = np.asarray(strategy(jax.random.key(2), ctx, 5))
  np.testing.assert_array_equal(idx, np.asarray(strategy(jax.random.key(2), ctx, 5)))
  assert len(set(idx.tolist())) == 5 and not mask[idx].any()


def test_default_kernel_is_the_infinite_width_twin():
  from assljax.kernels import Kernel
  rng = np.random.default_rng(5)
  n = 16
  x = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
  mask = np.zeros(n, bool)
  mask[:3] = True
  ctx = acquisition.Context(apply_fn=lambda p, xb: xb @ p, params=jnp.eye(3), x=x,
                            labeled_mask=jnp.asarray(mask),
                            labels=jnp.asarray(np.arange(n) % 3, jnp.int32), num_classes=3)
  strategy = acquisition.get("bilevel", landmarks=6, kernel_options={"width": 8},
                             inner_steps=30, cg_steps=20)
  kernel = strategy._kernel_for(ctx)
  assert kernel.kind == "infinite" and "mlp" in repr(kernel)
  want = np.asarray(Kernel.infinite("mlp", width=8)(x[:4], x[4:9]))
  np.testing.assert_allclose(np.asarray(kernel(x[:4], x[4:9])), want, rtol=1e-6)
  # ctx.kernel overrides the default, the hyperparameter overrides both
  linear = Kernel.from_features(lambda v: v)
  assert acquisition.get("bilevel")._kernel_for(
      acquisition.Context(**{**ctx.__dict__, "kernel": linear})) is linear
  idx = np.asarray(strategy(jax.random.key(0), ctx, 4))
  assert len(set(idx.tolist())) == 4 and not mask[idx].any()
