"""dynamicAL against the explicit NTK form (8) of training dynamics (Wang et al., 2022).

G(S) = sum_{i, j in S} dl_i/df^T Theta(x_i, x_j) dl_j/df with Theta the class-block
empirical NTK (brute force: jax.jacrev over all parameters) and dl/df = softmax(f) - e_y.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import assljax
from assljax import acquisition
from assljax.acquisition import dynamic


def _model(width=8, depth=1, num_classes=3, d_in=4, seed=0):
  model = assljax.models.build("mlp", num_classes=num_classes, input_shape=(d_in,),
                               width=width, depth=depth)
  variables = model.init(jax.random.key(seed))
  params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables.params)
  apply_fn, _ = model.bind(variables.batch_stats)
  return apply_fn, params


def _ntk_training_dynamics(apply_fn, params, x, y):
  """G(S) for every prefix-free subset query: returns a function of an index set."""
  flat, unravel = ravel_pytree(params)
  jac = jax.jacrev(lambda t: apply_fn(unravel(t), x))(flat)           # (n, C, P)
  theta = jnp.einsum("icp,jdp->ijcd", jac, jac)                          # class-block NTK
  resid = jax.nn.softmax(apply_fn(params, x), axis=-1) - jax.nn.one_hot(y, jac.shape[1])
  theta, resid = np.asarray(theta), np.asarray(resid)

  def g(rows):
    rows = np.asarray(rows, int)
    if rows.size == 0:
      return 0.0
    return float(np.einsum("ic,ijcd,jd->", resid[rows], theta[np.ix_(rows, rows)],
                           resid[rows]))

  return g


def _context(apply_fn, params, x, labeled, labels, num_classes=3):
  mask = np.zeros(x.shape[0], bool)
  mask[labeled] = True
  return acquisition.Context(apply_fn=apply_fn, params=params, x=x,
                             labeled_mask=jnp.asarray(mask),
                             labels=jnp.asarray(np.where(mask, labels, 0), jnp.int32),
                             num_classes=num_classes)


@pytest.mark.parametrize("n_labeled", [6, 0])
def test_delta_is_the_ntk_increment_of_training_dynamics(n_labeled):
  with jax.enable_x64(True):
    apply_fn, params = _model()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(16, 4)))
    labels = rng.integers(0, 3, 16)
    labeled = np.arange(n_labeled)
    ctx = _context(apply_fn, params, x, labeled, labels)
    pool = ctx.unlabeled_indices()
    got = np.asarray(dynamic.training_dynamics_scores(ctx, pool, gamma=2.0, chunk_size=3))
    # labels for G: true labels on S, pseudo-labels argmax f on the pool
    yhat = np.asarray(jnp.argmax(apply_fn(params, x), axis=-1))
    y = np.where(np.isin(np.arange(16), labeled), labels, yhat)
    g = _ntk_training_dynamics(apply_fn, params, x, jnp.asarray(y))
    want = np.array([g(np.append(labeled, i)) - g(labeled) for i in pool])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    idx = acquisition.get("dynamicAL", chunk_size=4)(jax.random.key(0), ctx, 4)
    np.testing.assert_array_equal(np.asarray(idx), pool[np.argsort(-want, kind="stable")[:4]])


def test_gamma_weights_the_cross_term():
  with jax.enable_x64(True):
    apply_fn, params = _model()
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(12, 4)))
    ctx = _context(apply_fn, params, x, np.arange(5), rng.integers(0, 3, 12))
    pool = ctx.unlabeled_indices()
    s0 = np.asarray(dynamic.training_dynamics_scores(ctx, pool, gamma=0.0))
    s2 = np.asarray(dynamic.training_dynamics_scores(ctx, pool, gamma=2.0))
    s5 = np.asarray(dynamic.training_dynamics_scores(ctx, pool, gamma=5.0))
    np.testing.assert_allclose(s5 - s0, 2.5 * (s2 - s0), rtol=1e-9, atol=1e-14)
    assert np.all(s0 >= 0)


def test_approximation_ratio_matches_ntk_and_is_near_one_when_converged():
  with jax.enable_x64(True):
    apply_fn, params = _model(width=64, depth=2, d_in=2)
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = rng.integers(0, 3, 120)
    x = jnp.asarray(centers[y] + 0.5 * rng.normal(size=(120, 2)))
    labeled = np.arange(30)
    opt = optax.adam(1e-2)

    def step(_, carry):
      p, state, _ = carry
      loss = lambda p: dynamic.cross_entropy(apply_fn(p, x[:30]), jnp.asarray(y[:30])).mean()
      value, grad = jax.value_and_grad(loss)(p)
      updates, state = opt.update(grad, state)
      return optax.apply_updates(p, updates), state, value

    params, _, loss = jax.jit(lambda p: jax.lax.fori_loop(
        0, 1500, step, (p, opt.init(p), jnp.asarray(0.0, jnp.float64))))(params)
    assert loss < 1e-4                                       # converged on S

    ctx = _context(apply_fn, params, x, labeled, y)
    pool = ctx.unlabeled_indices()
    scores = np.asarray(dynamic.training_dynamics_scores(ctx, pool))
    order = pool[np.argsort(-scores, kind="stable")]
    ratio = lambda q: float(dynamic.approximation_ratio(apply_fn, params, x[labeled],
                                                        jnp.asarray(y[labeled]), x[q]))
    # brute-force NTK form of (14) for one query set
    q = order[:4]
    yhat = np.asarray(jnp.argmax(apply_fn(params, x), axis=-1))
    rows = np.concatenate([labeled, q])
    g = _ntk_training_dynamics(apply_fn, params, x[rows],
                               jnp.asarray(np.concatenate([y[labeled], yhat[q]])))
    s_rows = np.arange(30)
    want = sum(g(np.append(s_rows, 30 + j)) - g(s_rows) for j in range(4)) / (
        g(np.arange(34)) - g(s_rows))
    got = ratio(q)
    assert got == pytest.approx(want, rel=1e-7)
    assert 0.85 < got < 1.15
