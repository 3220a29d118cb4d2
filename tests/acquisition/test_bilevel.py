"""Bilevel coreset: implicit gradients vs finite differences (labeled + pool outer loss), CG
vs a dense solve, L-BFGS vs Newton, Adam vs L-BFGS, and the strategy end to end."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


@jax.jit
def _lbfgs(theta0, z, t, w, normalizer):
  """The inner minimizer by L-BFGS to a gradient norm of 1e-12 (float64)."""
  return bilevel.solve_inner(theta0, z, t, w, reg=REG, normalizer=normalizer, max_steps=1000,
                             tol=1e-12)


_implicit = jax.jit(bilevel.implicit_weight_gradients, static_argnames=("cg_steps",))


def _with_row(z, t, w, z_x, t_x, w_x):
  """The 8 training rows plus row x (9 rows in every float64 test: one compile)."""
  return (jnp.concatenate([z, z_x[None]]), jnp.concatenate([t, t_x[None]]),
          jnp.concatenate([w, jnp.asarray([w_x], w.dtype)]))


def test_outer_weights_give_every_labeled_and_pool_sample_the_same_weight():
  w = bilevel.outer_weights(2, 3, 6)       # 2 labeled, 3 of 6 unlabeled drawn
  np.testing.assert_allclose(w, [1 / 8, 1 / 8, 2 / 8, 2 / 8, 2 / 8])
  np.testing.assert_allclose(bilevel.outer_weights(2, 6, 6), np.full(8, 1 / 8))
  np.testing.assert_allclose(bilevel.outer_weights(0, 4, 4), np.full(4, 1 / 4))
  with pytest.raises(ValueError, match="n_outer <= n_unlabeled"):
    bilevel.outer_weights(1, 5, 4)


def test_implicit_gradient_equals_finite_difference_of_the_outer_loss():
  """dG/dw_x with G = labeled term + (subsampled) pool term, against a central finite
  difference of G(theta*(w)), theta* solved to a gradient norm of 1e-12 by L-BFGS, in
  float64."""
  with jax.enable_x64(True):
    z_lab, t_lab, z_c, t_c, z_pool, t_pool, theta0 = _logistic_problem()
    # the labeled rows are in both problems; the outer pool term is a draw of 12 of 30
    z_out, t_out = jnp.concatenate([z_lab, z_pool]), jnp.concatenate([t_lab, t_pool])
    w_out = jnp.asarray(bilevel.outer_weights(8, 12, 30))
    w_lab, normalizer = jnp.ones((8,)), 8.0
    theta = _lbfgs(theta0, *_with_row(z_lab, t_lab, w_lab, z_c[0], t_c[0], 0.0), normalizer)
    got = _implicit(theta, z_lab, t_lab, w_lab, z_c, t_c, z_out, t_out, reg=REG,
                    normalizer=normalizer, outer_weights=w_out, cg_steps=200, tol=1e-14)
    eps = 1e-4
    g = {(j, w_x): bilevel.outer_objective(
        _lbfgs(theta0, *_with_row(z_lab, t_lab, w_lab, z_c[j], t_c[j], w_x), normalizer),
        z_out, t_out, w_out) for j in range(5) for w_x in (eps, -eps)}
    want = np.asarray([(g[j, eps] - g[j, -eps]) / (2 * eps) for j in range(5)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-8)
    assert np.abs(want).max() > 1e-3          # a non-trivial derivative
    # the labeled term counts (at theta* its gradient is the ridge's, so it is small): the
    # pool term alone, same weights, gives other derivatives
    pool_only = _implicit(theta, z_lab, t_lab, w_lab, z_c, t_c, z_out, t_out, reg=REG,
                          normalizer=normalizer, outer_weights=w_out.at[:8].set(0.0),
                          cg_steps=200, tol=1e-14)
    assert np.abs(np.asarray(pool_only) - want).max() > 1e-2 * np.abs(want).max()


def test_cg_inverse_hvp_equals_dense_solve():
  with jax.enable_x64(True):
    z_tr, t_tr, z_c, t_c, z_out, t_out, theta0 = _logistic_problem(seed=1)
    w_tr = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, 8))
    z, t, w = _with_row(z_tr, t_tr, w_tr, z_c[0], t_c[0], 0.0)
    theta = _lbfgs(theta0, z, t, w, 8.0)

    @jax.jit
    def solves(theta):
      v = jax.grad(bilevel.outer_objective)(theta, z_out, t_out)
      got = bilevel.inverse_hvp(theta, z, t, w, v, reg=REG, normalizer=8.0, cg_steps=200,
                                tol=1e-14)
      flat, unravel = ravel_pytree(theta)
      hess = jax.hessian(lambda u: bilevel.inner_objective(unravel(u), z, t, w, reg=REG,
                                                           normalizer=8.0))(flat)
      return ravel_pytree(got)[0], jnp.linalg.solve(hess, ravel_pytree(v)[0])

    got, want = solves(theta)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-12)


def test_lbfgs_and_adam_inner_solvers_reach_the_newton_solution():
  with jax.enable_x64(True):
    z_tr, t_tr, _, _, _, _, theta0 = _logistic_problem(seed=2)
    # row 8 is unused capacity (weight 0): no solver may look at it
    z, t, w = _with_row(z_tr, t_tr, jnp.ones((8,)), 50.0 * jnp.ones((3,)), jnp.ones((3,)) / 3,
                        0.0)
    want = ravel_pytree(_newton(theta0, z, t, w, 8.0))[0]
    np.testing.assert_allclose(ravel_pytree(_lbfgs(theta0, z, t, w, 8.0))[0], want, rtol=1e-6,
                               atol=1e-8)

    @functools.partial(jax.jit, static_argnames=("batch_size",))
    def adam(key, batch_size, lr):
      return bilevel.solve_inner_adam(theta0, bilevel.adam_init(theta0), key, z, t, w, reg=REG,
                                      steps=3000, batch_size=batch_size, lr=lr)

    key = jax.random.key(0)
    full, state = adam(key, 64, 0.02)                          # whole set every step
    np.testing.assert_allclose(ravel_pytree(full)[0], want, atol=2e-4)
    assert int(state.count) == 3000
    # minibatches of 4 of the 8 samples: noisy steps end near the optimum
    half = ravel_pytree(adam(key, 4, 0.003)[0])[0]
    assert np.abs(np.asarray(half - want)).max() < 0.1 * np.abs(np.asarray(want)).max()
    np.testing.assert_array_equal(ravel_pytree(adam(key, 4, 0.003)[0])[0], half)   # same key


def test_minibatch_rows_take_positive_weights_first_without_replacement():
  w = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
  rows = [np.asarray(bilevel.minibatch_rows(jax.random.key(s), w, 3)) for s in range(40)]
  for r in rows:
    assert len(set(r.tolist())) == 3 and (np.asarray(w)[r] > 0).all()
  assert len({tuple(sorted(r.tolist())) for r in rows}) > 3      # random subsets
  np.testing.assert_array_equal(bilevel.minibatch_rows(jax.random.key(7), w, 3), rows[7])
  # fewer active rows than the batch: all of them, padded with inactive rows
  r = np.asarray(bilevel.minibatch_rows(jax.random.key(0), w, 6))
  assert sorted(r[:5].tolist()) == [0, 2, 3, 5, 6] and np.asarray(w)[r[5]] == 0
  assert bilevel.minibatch_rows(jax.random.key(0), w, 64).shape == (8,)


# The strategy tests share one shape set (8 landmarks, 3 classes, 16 training rows, 256
# outer rows), so that each greedy step program compiles once for the whole file.
SMALL = dict(landmarks=8, inner_steps=300, cg_steps=100)


def _linear_kernel(a, b):
  return a @ b.T + 1.0


def _flat_context(seed, n, labeled, num_classes=3, d=4):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
  w_true = rng.normal(size=(d, num_classes))
  labels = np.argmax(np.asarray(x) @ w_true, axis=1).astype(np.int32)
  mask = np.zeros(n, bool)
  mask[:labeled] = True
  return acquisition.Context(apply_fn=lambda p, xb: xb @ p,
                             params=jnp.asarray(w_true, jnp.float32), x=x,
                             labeled_mask=jnp.asarray(mask),
                             labels=jnp.asarray(np.where(mask, labels, 0)),
                             num_classes=num_classes), labels


@jax.jit
def _dense_scores(z_lab, t_lab, z_pool, t_pool, labeled_term):
  """Eq. (2) scores of the pool with a dense Hessian, F on the labeled rows (reg 0.5) and
  G = (labeled_term * sum of labeled CE + sum of pool CE) / (l + n_U): eq. (3) for 1."""
  theta0 = {"kernel": jnp.zeros((z_lab.shape[1], t_lab.shape[1])),
            "bias": jnp.zeros((t_lab.shape[1],))}
  w, n = jnp.ones((z_lab.shape[0],)), float(z_lab.shape[0])
  theta = _newton(theta0, z_lab, t_lab, w, n, reg=0.5)
  u, unravel = ravel_pytree(theta)
  f = lambda u: bilevel.inner_objective(unravel(u), z_lab, t_lab, w, reg=0.5, normalizer=n)
  outer = lambda th: ((labeled_term * jnp.sum(bilevel.soft_cross_entropy(th, z_lab, t_lab))
                       + jnp.sum(bilevel.soft_cross_entropy(th, z_pool, t_pool)))
                      / (z_lab.shape[0] + z_pool.shape[0]))
  v = jnp.linalg.solve(jax.hessian(f)(u), ravel_pytree(jax.grad(outer)(theta))[0])
  return bilevel.candidate_scores(theta, unravel(v), z_pool, t_pool)


def test_first_greedy_pick_maximizes_the_dense_implicit_score():
  ctx, labels = _flat_context(1, 40, 12)
  strategy = acquisition.get("bilevel", kernel=_linear_kernel, random_fraction=0.0, reg=0.5,
                             inner_tol=1e-7, **SMALL)
  key = jax.random.key(0)
  pick = int(strategy(key, ctx, 1)[0])

  phi = strategy.feature_map(jax.random.fold_in(key, 1), ctx)
  unlabeled = ctx.unlabeled_indices()
  x = ctx.x
  with jax.enable_x64(True):
    args = (jnp.asarray(phi(x[:12]), jnp.float64),
            jax.nn.one_hot(labels[:12], 3, dtype=jnp.float64),
            jnp.asarray(phi(x[unlabeled]), jnp.float64),
            jax.nn.softmax(jnp.asarray(ctx.apply_fn(ctx.params, x[unlabeled]), jnp.float64)))
    scores = np.asarray(_dense_scores(*args, 1.0))
    pool_only = np.asarray(_dense_scores(*args, 0.0))
  best = scores.max()
  assert pick in unlabeled
  assert scores[np.searchsorted(unlabeled, pick)] >= best - 1e-3 * (best - scores.min())
  # here the labeled term of G changes the choice (strong ridge: its gradient is large)
  assert unlabeled[np.argmax(pool_only)] != pick


def test_empty_labeled_set_and_the_random_tenth():
  ctx, _ = _flat_context(6, 40, 0)
  key = jax.random.key(1)
  for solver in ("lbfgs", "adam"):
    strategy = acquisition.get("bilevel", kernel=_linear_kernel, inner_solver=solver, **SMALL)
    idx = np.asarray(strategy(key, ctx, 10))            # 9 greedy + 1 uniformly at random
    assert idx.dtype == np.int32 and len(set(idx.tolist())) == 10
    greedy = np.asarray(acquisition.get("bilevel", kernel=_linear_kernel, inner_solver=solver,
                                        random_fraction=0.0, **SMALL)(key, ctx, 9))
    np.testing.assert_array_equal(idx[:9], greedy)
  # all at random
  idx = np.asarray(acquisition.get("bilevel", kernel=_linear_kernel, random_fraction=1.0,
                                   **SMALL)(key, ctx, 4))
  assert len(set(idx.tolist())) == 4


def _flat_linear_kernel(a, b):
  return a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T + 1.0


def _image_context(seed, n=24, labeled=3, num_classes=3):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.uniform(size=(n, 8, 8, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(8 * 8 * 3, num_classes)), jnp.float32)
  mask = np.zeros(n, bool)
  mask[:labeled] = True
  return acquisition.Context(apply_fn=lambda p, xb: xb.reshape(xb.shape[0], -1) @ p, params=w,
                             x=x, labeled_mask=jnp.asarray(mask),
                             labels=jnp.asarray(np.arange(n) % num_classes, jnp.int32),
                             num_classes=num_classes), mask


def test_images_enter_the_inner_problem_as_augmented_copies():
  ctx, mask = _image_context(4)
  x = ctx.x
  strategy = acquisition.get("bilevel", kernel=_flat_linear_kernel, augmentations=2, **SMALL)
  assert strategy.copies(ctx) == 2
  phi = strategy.feature_map(jax.random.key(0), ctx)
  z = np.asarray(strategy._train_features(jax.random.key(1), phi, ctx, np.array([5, 6])))
  assert z.shape == (4, 8)
  # different weak augmentations of one image, not all equal to the image itself
  plain = np.asarray(phi(x[5:6]))
  assert not np.allclose(z[0], z[1])
  assert not all(np.allclose(row, plain[0]) for row in z[:2])
  compiled = bilevel._lbfgs_step._cache_size()
  idx = np.asarray(strategy(jax.random.key(2), ctx, 5))          # 5 greedy picks
  np.testing.assert_array_equal(idx, np.asarray(strategy(jax.random.key(2), ctx, 5)))
  assert len(set(idx.tolist())) == 5 and not mask[idx].any()
  assert bilevel._lbfgs_step._cache_size() - compiled <= 1       # not one program per pick


def test_kernel_rows_come_in_few_row_counts():
  # The kernel compiles once per row count: K_UU and multi-chunk feature calls share the
  # chunk_size program, a call within one chunk pads to the next power of two.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(37, 5)).astype(np.float32))
  landmarks = x[:11]
  rows_seen = []

  def kernel(a, b):
    rows_seen.append(a.shape[0])
    return a @ b.T

  phi = bilevel._nystrom_map(kernel, landmarks, rcond=1e-6, chunk_size=8)
  assert rows_seen == [8, 8]                      # 11 landmarks: two blocks of 8
  rows_seen.clear()
  z = np.asarray(bilevel._feature_rows(phi, x, np.arange(37), 8))
  assert rows_seen == [8] * 5                     # 37 rows: the last block padded to 8
  rows_seen.clear()
  np.testing.assert_array_equal(np.asarray(bilevel._feature_rows(phi, x, np.arange(3), 8)),
                                z[:3])
  assert rows_seen == [4]
  # the blocks are the one-call values: features equal phi(x), and the Nystrom map is
  # exact on its landmarks (phi(U) phi(U)^T = K_UU)
  np.testing.assert_allclose(z, np.asarray(phi(x)), rtol=1e-5, atol=1e-5)
  f = np.asarray(phi(landmarks), np.float64)
  k_uu = np.asarray(landmarks, np.float64) @ np.asarray(landmarks, np.float64).T
  np.testing.assert_allclose(f @ f.T, k_uu, atol=1e-4 * np.abs(k_uu).max())


def test_adam_draws_fresh_augmentations_every_step_and_compiles_once():
  ctx, mask = _image_context(7)
  strategy = acquisition.get("bilevel", kernel=_flat_linear_kernel, augmentations=2,
                             inner_solver="adam", inner_batch_size=4, inner_lr=1e-2, **SMALL)
  assert strategy.inner_steps == 300 and strategy.augments(ctx)
  assert acquisition.get("bilevel", inner_solver="adam").inner_steps == 1000   # the paper's
  assert acquisition.get("bilevel").inner_steps == 200
  phi = strategy.feature_map(jax.random.key(0), ctx)
  views = bilevel._FreshViews(phi.kernel, augment=True, flip=True, pad=4)
  assert views == bilevel._FreshViews(phi.kernel, augment=True, flip=True, pad=4)
  assert hash(views) == hash(bilevel._FreshViews(phi.kernel, augment=True, flip=True, pad=4))
  nystrom = (phi.landmarks, phi.inv_sqrt)
  a, b = (np.asarray(views(nystrom, jax.random.key(s), ctx.x[:4])) for s in (0, 1))
  assert a.shape == (4, 8) and not np.allclose(a, b)                  # new views per key
  np.testing.assert_array_equal(a, np.asarray(views(nystrom, jax.random.key(0), ctx.x[:4])))
  plain = bilevel._FreshViews(phi.kernel, augment=False, flip=True, pad=4)
  np.testing.assert_allclose(np.asarray(plain(nystrom, jax.random.key(0), ctx.x[:4])),
                             np.asarray(phi(ctx.x[:4])), rtol=1e-5, atol=1e-5)

  compiled = bilevel._adam_step._cache_size()
  idx = np.asarray(strategy(jax.random.key(2), ctx, 5))               # 5 greedy picks
  np.testing.assert_array_equal(idx, np.asarray(strategy(jax.random.key(2), ctx, 5)))
  assert len(set(idx.tolist())) == 5 and not mask[idx].any()
  assert bilevel._adam_step._cache_size() - compiled <= 1
  # minibatches of the presampled copies instead of fresh views: still valid picks
  idx = np.asarray(acquisition.get("bilevel", kernel=_flat_linear_kernel, augmentations=2,
                                   inner_solver="adam", fresh_augmentations=False, **SMALL)(
                                       jax.random.key(2), ctx, 5))
  assert len(set(idx.tolist())) == 5 and not mask[idx].any()


@pytest.mark.parametrize("options, match", [
    (dict(inner_solver="sgd"), "inner_solver"),
    (dict(inner_batch_size=0), "inner_batch_size"),
    (dict(inner_lr=-1.0), "inner_lr"),
    (dict(inner_steps=0), "inner_steps"),
    (dict(reg=0.0), "reg"),
])
def test_bad_hyperparameters_are_refused(options, match):
  with pytest.raises(ValueError, match=match):
    acquisition.get("bilevel", **options)


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
  strategy = acquisition.get("bilevel", kernel_options={"width": 8}, **SMALL)
  kernel = strategy._kernel_for(ctx)
  assert kernel.kind == "infinite" and "mlp" in repr(kernel)
  want = np.asarray(Kernel.infinite("mlp", width=8)(x[:8]))
  np.testing.assert_allclose(np.asarray(kernel(x[:8])), want, rtol=1e-6)
  # ctx.kernel overrides the default, the hyperparameter overrides both
  linear = Kernel.from_features(lambda v: v)
  assert acquisition.get("bilevel")._kernel_for(
      acquisition.Context(**{**ctx.__dict__, "kernel": linear})) is linear
  idx = np.asarray(strategy(jax.random.key(0), ctx, 7))          # 6 greedy, 1 at random
  assert len(set(idx.tolist())) == 7 and not mask[idx].any()
