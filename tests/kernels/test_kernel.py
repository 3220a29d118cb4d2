"""The Kernel interface: empirical / infinite / explicit features behind one call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import models
from assljax.kernels import (Kernel, empirical_ntk_fn, infinite_ntk_fn, last_layer_features)

C = 3


@pytest.fixture(scope="module")
def mlp():
  model = models.build("mlp", num_classes=C, input_shape=(4, 4, 1), width=8, depth=2)
  variables = model.init(jax.random.key(0))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  x1 = jax.random.uniform(jax.random.key(1), (6, 4, 4, 1))
  x2 = jax.random.uniform(jax.random.key(2), (4, 4, 4, 1))
  return apply_fn, embed_fn, variables.params, x1, x2


def test_empirical_all_parameters(mlp):
  apply_fn, _, params, x1, x2 = mlp
  kernel = Kernel.empirical(apply_fn, params, chunk_size=4)
  k = kernel(x1, x2)
  assert k.shape == (6, 4) and k.dtype == jnp.float32 and kernel.kind == "empirical"
  np.testing.assert_allclose(k, empirical_ntk_fn(apply_fn)(params, x1, x2), rtol=1e-5)
  np.testing.assert_allclose(kernel.diag(x1), jnp.diag(kernel(x1)), rtol=1e-5)
  assert not kernel.has_features
  with pytest.raises(ValueError, match="no finite feature map"):
    kernel.features(x1)


def test_last_layer_with_and_without_embed_fn_agree(mlp):
  apply_fn, embed_fn, params, x1, x2 = mlp
  via_embed = Kernel.empirical(apply_fn, params, param_filter="last_layer", embed_fn=embed_fn)
  via_autodiff = Kernel.empirical(apply_fn, params, param_filter="last_layer", chunk_size=4)
  autodiff_head = empirical_ntk_fn(apply_fn, param_filter=lambda path, leaf: path[0] == "head")
  expected_features = last_layer_features(embed_fn(params, x1), C)
  for kernel in (via_embed, via_autodiff):
    assert kernel.has_features
    phi1, phi2 = kernel.features(x1), kernel.features(x2)
    assert phi1.shape == (6, 9) and phi1.dtype == jnp.float32
    np.testing.assert_allclose(phi1, expected_features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(phi1 @ phi2.T, kernel(x1, x2), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kernel(x1, x2), autodiff_head(params, x1, x2), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(kernel.diag(x2), jnp.sum(phi2 * phi2, axis=1), rtol=1e-5)


def test_last_layer_features_refused_when_logits_are_not_affine(mlp):
  apply_fn, _, params, x1, _ = mlp
  log_probs = lambda p, x: jax.nn.log_softmax(apply_fn(p, x))  # noqa: E731
  kernel = Kernel.empirical(log_probs, params, param_filter="last_layer")
  assert kernel.has_features  # shaped like a head; the affine check runs on the data
  with pytest.raises(ValueError, match="not affine"):
    kernel.features(x1)
  np.testing.assert_allclose(
      kernel(x1), empirical_ntk_fn(log_probs, param_filter="last_layer")(params, x1), rtol=1e-5)


def test_infinite_kernel_shares_the_call(mlp):
  _, _, _, x1, x2 = mlp
  kernel = Kernel.infinite("mlp", num_classes=C)
  k = kernel(x1, x2)
  assert k.shape == (6, 4) and k.dtype == jnp.float32 and kernel.kind == "infinite"
  np.testing.assert_allclose(k, infinite_ntk_fn("mlp", num_classes=C)(x1, x2), rtol=1e-6)
  np.testing.assert_allclose(kernel.diag(x1), jnp.diag(kernel(x1)), rtol=1e-3)
  assert not kernel.has_features
  with pytest.raises(ValueError, match="nystrom_features"):
    kernel.features(x1)


def test_from_features():
  w = jax.random.normal(jax.random.key(0), (5, 7))
  feature_fn = lambda x: jnp.tanh(x @ w)  # noqa: E731
  kernel = Kernel.from_features(feature_fn, chunk_size=3)
  x1 = jax.random.normal(jax.random.key(1), (8, 5))
  x2 = jax.random.normal(jax.random.key(2), (2, 5))
  np.testing.assert_allclose(kernel(x1, x2), feature_fn(x1) @ feature_fn(x2).T, rtol=1e-5,
                             atol=1e-6)  # entries near 0 are sums of O(1) terms that cancel
  np.testing.assert_allclose(kernel.features(x1), feature_fn(x1), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(kernel.diag(x1), jnp.sum(feature_fn(x1) ** 2, axis=1), rtol=1e-5)
  assert kernel.has_features and kernel.kind == "features"
  with pytest.raises(ValueError, match="\\(n, d\\) features"):
    Kernel.from_features(lambda x: x.sum(axis=1))(x1)


def test_bad_inputs(mlp):
  apply_fn, embed_fn, params, x1, x2 = mlp
  kernel = Kernel.empirical(apply_fn, params, param_filter="last_layer", embed_fn=embed_fn)
  with pytest.raises(ValueError, match="per-sample shape"):
    kernel(x1, jnp.ones((2, 4, 4, 2)))
  with pytest.raises(ValueError, match="NaN or infinity"):
    kernel(x1.at[0].set(jnp.inf), x2)
  with pytest.raises(ValueError, match="NaN or infinity"):
    kernel.features(x1.at[1].set(jnp.nan))
  with pytest.raises(ValueError, match="selected no parameters"):
    Kernel.empirical(apply_fn, params, param_filter=lambda path, leaf: False)
  with pytest.raises(ValueError, match="num_classes=5"):
    Kernel.empirical(apply_fn, params, num_classes=5)(x1, x2)
  with pytest.raises(ValueError, match="callable"):
    Kernel.from_features(np.ones(3))
  with pytest.raises(ValueError, match="chunk_size"):
    Kernel.empirical(apply_fn, params, chunk_size=-1)
