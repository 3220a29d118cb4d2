"""Closed-form last-layer NTK = autodiff restricted to the final dense layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import models
from assljax.kernels import empirical_ntk_fn, last_layer_features, last_layer_ntk
from assljax.kernels.empirical import _EmpiricalNTK

C = 4


def _f64(tree):
  return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _head_brute(apply_fn, params, x1, x2, n_classes=C):
  """(n1, n2, C, C) NTK of params['head'] by full jax.jacrev."""

  def jac(x):
    j = jax.jacrev(lambda h: apply_fn({**params, "head": h}, x))(params["head"])
    return jnp.concatenate([l.reshape(x.shape[0], n_classes, -1)
                            for l in jax.tree_util.tree_leaves(j)], axis=-1)

  return jnp.einsum("icp,jdp->ijcd", jac(x1), jac(x2))


def _model(name):
  if name == "mlp":
    return models.build("mlp", num_classes=C, input_shape=(3, 3, 1), width=6, depth=1)
  return models.build("wrn", num_classes=C, input_shape=(8, 8, 1), depth=10, widen_factor=1)


def test_features_and_ntk_formulas():
  h1 = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
  h2 = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
  phi = last_layer_features(h1, C)
  assert phi.shape == (5, 4)
  np.testing.assert_allclose(phi[:, -1], np.full(5, np.sqrt(C)), rtol=1e-6)
  np.testing.assert_allclose(phi @ phi.T, C * (h1 @ h1.T + 1), rtol=1e-5)
  np.testing.assert_allclose(last_layer_ntk(h1, h2, C), C * (h1 @ h2.T + 1), rtol=1e-5)
  np.testing.assert_allclose(last_layer_ntk(h1, None, C), C * (h1 @ h1.T + 1), rtol=1e-5)
  full = np.asarray(last_layer_ntk(h1, h2, C, trace=False))
  assert full.shape == (5, 2, C, C)
  np.testing.assert_allclose(full, (h1 @ h2.T + 1)[:, :, None, None] * np.eye(C), rtol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "wrn"])
def test_closed_form_equals_autodiff_float64(name):
  model = _model(name)
  variables = model.init(jax.random.key(0))
  key1, key2 = jax.random.split(jax.random.key(1))
  with jax.enable_x64(True):
    params = _f64(variables.params)
    apply_fn, embed_fn = model.bind(_f64(variables.batch_stats))
    x1 = jax.random.uniform(key1, (4,) + model.input_shape, jnp.float64)
    x2 = jax.random.uniform(key2, (4,) + model.input_shape, jnp.float64)
    ref, h1, h2 = map(np.asarray, jax.jit(lambda p, a, b: (
        _head_brute(apply_fn, p, a, b), embed_fn(p, a), embed_fn(p, b)))(params, x1, x2))
    closed_full = np.asarray(last_layer_ntk(h1, h2, C, trace=False))
    closed_traced = np.asarray(last_layer_ntk(h1, h2, C))
    traced = _EmpiricalNTK(apply_fn, traced=True, param_filter="last_layer", chunk_size=None)
    full = _EmpiricalNTK(apply_fn, traced=False, param_filter="last_layer", chunk_size=None)
    auto_traced = np.asarray(traced.kernel(params, x1, x2))  # what empirical_ntk_fn calls
    auto_full = np.asarray(full.kernel(params, x1, x2))
    # the automatic path really is the closed form (the affine-head check passes)
    assert traced.structure(params, x1)[1] is not None
    g, ok = traced._head_parts(params, x1)
    assert bool(ok.all())
    np.testing.assert_allclose(g, np.concatenate([h1, np.ones((4, 1))], axis=1), atol=1e-12)
  scale = np.abs(ref).max()
  for ours in (closed_full, auto_full):
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * scale)
  for ours in (closed_traced, auto_traced):
    np.testing.assert_allclose(ours, np.einsum("ijcc->ij", ref), rtol=0, atol=1e-12 * scale)


def test_closed_form_handles_stax_ntk_scaling():
  # stax' Dense readout is (W_std / sqrt(d)) h W + b_std b: the automatic closed form reads
  # the scaled h and s off a linearization, so it still equals autodiff.
  from assljax.kernels._compat import import_neural_tangents
  stax = import_neural_tangents().stax
  init_fn, apply_fn, _ = stax.serial(stax.Dense(7, W_std=1.3, b_std=0.2), stax.Relu(),
                                     stax.Dense(C, W_std=1.7, b_std=0.4))
  _, params = init_fn(jax.random.key(0), (-1, 5))
  x1 = jax.random.normal(jax.random.key(1), (4, 5))
  x2 = jax.random.normal(jax.random.key(2), (4, 5))
  impl = _EmpiricalNTK(apply_fn, traced=False, param_filter="last_layer", chunk_size=None)
  assert bool(impl._head_parts(params, x1)[1].all())

  def jac(p, x):
    j = jax.jacrev(lambda last: apply_fn([p[0], p[1], last], x))(p[2])
    return jnp.concatenate([l.reshape(x.shape[0], C, -1)
                            for l in jax.tree_util.tree_leaves(j)], axis=-1)

  ref = jax.jit(lambda p, a, b: jnp.einsum("icp,jdp->ijcd", jac(p, a), jac(p, b)))(
      params, x1, x2)
  np.testing.assert_allclose(impl.kernel(params, x1, x2), ref, rtol=1e-4, atol=1e-5)


def test_non_affine_head_falls_back_to_autodiff():
  # log-probabilities are not affine in (W, b): the check must reject the closed form, and
  # the kernel (eager or under jit, where lax.cond picks the branch) still equals autodiff.
  model = _model("mlp")
  variables = model.init(jax.random.key(0))
  with jax.enable_x64(True):
    params = _f64(variables.params)
    logits_fn, _ = model.bind(_f64(variables.batch_stats))
    apply_fn = lambda p, x: jax.nn.log_softmax(logits_fn(p, x))  # noqa: E731
    x1 = jax.random.uniform(jax.random.key(1), (4,) + model.input_shape, jnp.float64)
    x2 = jax.random.uniform(jax.random.key(2), (4,) + model.input_shape, jnp.float64)
    impl = _EmpiricalNTK(apply_fn, traced=True, param_filter="last_layer", chunk_size=None)
    assert not bool(impl._head_parts(params, x1)[1].all())
    eager = np.asarray(impl.kernel(params, x1, x2))  # what empirical_ntk_fn calls
    ntk = empirical_ntk_fn(apply_fn, param_filter="last_layer")
    _, embed_fn = model.bind(_f64(variables.batch_stats))
    ref, jitted, h1, h2 = map(np.asarray, jax.jit(lambda p, a, b: (
        jnp.einsum("ijcc->ij", _head_brute(apply_fn, p, a, b)), ntk(p, a, b),
        embed_fn(p, a), embed_fn(p, b)))(params, x1, x2))
    naive = np.asarray(last_layer_ntk(h1, h2, C))
  np.testing.assert_allclose(eager, ref, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(jitted, ref, rtol=1e-10, atol=1e-12)
  assert np.abs(naive - ref).max() > 1e-3  # the closed form would have been wrong


def test_predicate_selecting_the_head_uses_closed_form_and_chunks():
  model = _model("mlp")
  variables = model.init(jax.random.key(0))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  x = jax.random.uniform(jax.random.key(3), (7,) + model.input_shape)
  head = lambda path, leaf: path[0] == "head"  # noqa: E731
  ref = last_layer_ntk(embed_fn(variables.params, x), None, C)
  for chunk in (None, 3):
    k = empirical_ntk_fn(apply_fn, param_filter=head, chunk_size=chunk)(variables.params, x)
    np.testing.assert_allclose(k, ref, rtol=1e-5, atol=1e-5)


def test_bad_inputs():
  with pytest.raises(ValueError, match="num_classes"):
    last_layer_features(jnp.ones((2, 3)), 0)
  with pytest.raises(ValueError, match="\\(n, d\\)"):
    last_layer_features(jnp.ones((2, 3, 1)), 2)
  with pytest.raises(ValueError, match="same width"):
    last_layer_ntk(jnp.ones((2, 3)), jnp.ones((2, 4)), 2)
