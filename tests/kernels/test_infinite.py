"""Infinite-width NTK: arc-cosine closed form, Monte-Carlo convergence, stax twins."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import models
from assljax.kernels import empirical_ntk_fn, infinite_ntk_fn, stax_twin


def _arccos_ntk(x1, x2, w1, b1, w2, b2):
  """NTK of Dense(W_std=w1, b_std=b1) -> ReLU -> Dense(W_std=w2, b_std=b2), NTK param."""
  d = x1.shape[1]
  s12 = w1**2 * (x1 @ x2.T) / d + b1**2
  s11 = w1**2 * np.sum(x1 * x1, axis=1) / d + b1**2
  s22 = w1**2 * np.sum(x2 * x2, axis=1) / d + b1**2
  norm = np.sqrt(s11[:, None] * s22[None, :])
  theta = np.arccos(np.clip(s12 / norm, -1.0, 1.0))
  relu_cov = norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
  step_cov = (np.pi - theta) / (2 * np.pi)
  nngp = w2**2 * relu_cov + b2**2
  return nngp + w2**2 * step_cov * s12


def test_one_hidden_layer_relu_equals_arccos_closed_form():
  from assljax.kernels import stax
  w1, b1, w2, b2 = 1.4, 0.3, 0.9, 0.2
  triple = stax.serial(stax.Dense(64, W_std=w1, b_std=b1), stax.Relu(),
                       stax.Dense(1, W_std=w2, b_std=b2))
  rng = np.random.default_rng(0)
  x1, x2 = rng.normal(size=(6, 5)), rng.normal(size=(4, 5))
  x2[0] = x1[0]  # include theta = 0
  ref = _arccos_ntk(x1, x2, w1, b1, w2, b2)
  with jax.enable_x64(True):
    k = np.asarray(infinite_ntk_fn(triple)(jnp.asarray(x1), jnp.asarray(x2)))
    k3 = np.asarray(infinite_ntk_fn(triple, num_classes=3)(jnp.asarray(x1), jnp.asarray(x2)))
  assert k.dtype == np.float64
  np.testing.assert_allclose(k, ref, rtol=1e-10)
  np.testing.assert_allclose(k3, 3 * ref, rtol=1e-10)  # traced: C i.i.d. output channels


def test_monte_carlo_empirical_ntk_approaches_kernel_fn():
  x = jax.random.normal(jax.random.key(0), (5, 4))
  target = np.asarray(infinite_ntk_fn("mlp", depth=2)(x), np.float64)
  errors = []
  for width in (32, 256, 2048):
    init_fn, apply_fn, _ = stax_twin("mlp", num_classes=1, width=width, depth=2)
    ntk = empirical_ntk_fn(apply_fn)
    errs = []
    for seed in range(3):
      _, params = init_fn(jax.random.key(seed), x.shape)
      k = np.asarray(ntk(params, x), np.float64)
      errs.append(np.linalg.norm(k - target) / np.linalg.norm(target))
    errors.append(np.mean(errs))
  assert errors[0] > errors[1] > errors[2], errors
  assert errors[2] < 0.1, errors


def _weight_shapes(tree):
  """Shapes of dense/conv kernels (stax stores biases as (1, ..., 1, C): left out)."""
  return sorted(tuple(l.shape) for l in jax.tree_util.tree_leaves(tree)
                if l.ndim >= 2 and l.size != l.shape[-1])


@pytest.mark.parametrize("name, options, input_shape, same_head", [
    ("mlp", dict(width=8, depth=2), (4, 4, 1), True),
    ("cnn", dict(channels=(4, 6, 6), hidden=8), (8, 8, 1), True),
    ("wrn", dict(depth=10, widen_factor=2), (8, 8, 1), False),
])
def test_twins_mirror_the_models(name, options, input_shape, same_head):
  # shapes only (jax.eval_shape): nothing is computed
  init_fn, apply_fn, _ = stax_twin(name, num_classes=3, **options)
  params = jax.eval_shape(lambda k: init_fn(k, (-1,) + input_shape)[1], jax.random.key(0))
  x = jax.ShapeDtypeStruct((2,) + input_shape, jnp.float32)
  assert jax.eval_shape(apply_fn, params, x).shape == (2, 3)
  model = models.build(name, num_classes=3, input_shape=input_shape, **options)
  model_params = jax.eval_shape(model.init, jax.random.key(0)).params
  ours, theirs = _weight_shapes(params), _weight_shapes(model_params)
  if not same_head:  # WRN twin: Flatten -> Dense head instead of global average pooling
    assert (2 * 2 * 64 * 2, 3) in ours and (64 * 2, 3) in theirs
    ours, theirs = [s for s in ours if s[-1] != 3], [s for s in theirs if s[-1] != 3]
  assert ours == theirs


@pytest.mark.parametrize("name, options", [
    ("mlp", {}), ("cnn", dict(channels=(4, 4))), ("wrn", dict(depth=10, widen_factor=2))])
def test_named_kernels_are_psd_chunkable_and_standardize(name, options):
  x = jax.random.uniform(jax.random.key(0), (5, 8, 8, 1))
  y = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1))
  kfn = infinite_ntk_fn(name, num_classes=2, **options)
  chunked = infinite_ntk_fn(name, num_classes=2, chunk_size=2, **options)
  scaled = infinite_ntk_fn(name, num_classes=2, input_mean=0.5, input_std=0.25, **options)
  # every kernel_fn is jittable: one compiled program for all five kernels
  k, k_xy, k_chunked, k_scaled, k_manual = map(np.asarray, jax.jit(lambda a, b: (
      kfn(a), kfn(a, b), chunked(a, b), scaled(a, b),
      kfn((a - 0.5) / 0.25, (b - 0.5) / 0.25)))(x, y))
  k = k.astype(np.float64)
  assert k.shape == (5, 5) and k_xy.shape == (5, 3)
  np.testing.assert_allclose(k, k.T, rtol=1e-6)
  assert np.linalg.eigvalsh(k).min() > -1e-5 * k.max()
  np.testing.assert_allclose(k_chunked, k_xy, rtol=1e-5)
  np.testing.assert_allclose(k_scaled, k_manual, rtol=1e-5)


def test_bad_arguments():
  with pytest.raises(ValueError, match="unknown architecture"):
    infinite_ntk_fn("resnet50")
  with pytest.raises(ValueError, match="unknown options"):
    infinite_ntk_fn("mlp", kernel_size=3)
  with pytest.raises(ValueError, match="widen_factor >= 2"):
    stax_twin("wrn", num_classes=2, depth=10, widen_factor=1)
  with pytest.raises(ValueError, match="6n \\+ 4"):
    stax_twin("wrn", num_classes=2, depth=12)
  with pytest.raises(ValueError, match="num_classes"):
    infinite_ntk_fn("mlp", num_classes=0)
  from assljax.kernels import stax
  with pytest.raises(ValueError, match="only apply to named"):
    infinite_ntk_fn(stax.serial(stax.Dense(2)), depth=3)
  kfn = infinite_ntk_fn("mlp")
  with pytest.raises(ValueError, match="per-sample shape"):
    kfn(jnp.ones((2, 4)), jnp.ones((2, 5)))
  with pytest.raises(ValueError, match="NaN"):
    kfn(jnp.full((2, 4), jnp.nan))
  assert math.isfinite(float(kfn(jnp.ones((1, 4)))[0, 0]))
