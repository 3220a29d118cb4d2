"""Model edge: parameter counts (closed forms), shapes, features @ head, BatchNorm modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from assljax import models
from assljax.models import count_params


def _abstract_count(name, num_classes=10, input_shape=(32, 32, 3), **options):
  model = models.build(name, num_classes=num_classes, input_shape=input_shape, **options)
  return count_params(nnx.to_pure_dict(model.params_template))


def _wrn_count(k, num_classes, in_channels=3, blocks_per_stage=4):
  total, c_in = 9 * in_channels * 16, 16
  for width in (16 * k, 32 * k, 64 * k):
    for _ in range(blocks_per_stage):
      total += 2 * c_in + 9 * c_in * width + 2 * width + 9 * width * width
      total += c_in * width if c_in != width else 0
      c_in = width
  return total + 2 * c_in + c_in * num_classes + num_classes


def _vgg11_count(num_classes, in_channels=3):
  total, c_in = 0, in_channels
  for width in (64, 128, 256, 256, 512, 512, 512, 512):
    total += 9 * c_in * width + width + 2 * width
    c_in = width
  return total + 512 * num_classes + num_classes


def _resnet18_count(num_classes, in_channels=3):
  total, c_in = 9 * in_channels * 64 + 2 * 64, 64
  for stage, width in enumerate((64, 128, 256, 512)):
    for i in range(2):
      total += 9 * c_in * width + 2 * width + 9 * width * width + 2 * width
      if c_in != width or (stage > 0 and i == 0):
        total += c_in * width + 2 * width
      c_in = width
  return total + 512 * num_classes + num_classes


def test_parameter_counts_match_closed_forms_and_references():
  assert _wrn_count(2, 10) == 1_467_610  # FixMatch's reported WRN-28-2 size
  assert _abstract_count("wrn-28-2") == 1_467_610
  n_28_8 = _abstract_count("wrn-28-8")
  assert n_28_8 == _wrn_count(8, 10)
  assert abs(n_28_8 - 23.4e6) / 23.4e6 < 0.005  # ~23.4 M
  assert _abstract_count("wrn-28-2", num_classes=100) == _wrn_count(2, 100)
  assert _abstract_count("vgg11") == _vgg11_count(10) == 9_231_114
  assert _abstract_count("resnet18") == _resnet18_count(10) == 11_173_962
  assert _abstract_count("vgg11", input_shape=(32, 32, 1)) == _vgg11_count(10, in_channels=1)
  # dynamicAL App. C.1: the PyTorch CIFAR-10 tutorial net and torchvision's vgg11
  conv = lambda c_in, c_out, k: k * k * c_in * c_out + c_out
  assert _abstract_count("tutorial_cnn") == (conv(3, 6, 5) + conv(6, 16, 5) + 400 * 120 + 120
                                             + 120 * 84 + 84 + 84 * 10 + 10) == 62_006
  assert _abstract_count("vgg11_torchvision") == 128_807_306  # torchvision, num_classes=10


def test_adaptive_average_pool_matches_pytorch_bins():
  from assljax.models.vgg import _adaptive_avg_pool
  x = np.random.default_rng(0).normal(size=(2, 10, 3, 4))
  out = np.asarray(_adaptive_avg_pool(jnp.asarray(x), (7, 7)))
  ref = np.zeros((2, 7, 7, 4))
  for i in range(7):
    for j in range(7):
      r0, r1 = (i * 10) // 7, -(-((i + 1) * 10) // 7)
      c0, c1 = (j * 3) // 7, -(-((j + 1) * 3) // 7)
      ref[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("height, width", [(6, 4), (5, 7)])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_max_pool_equals_flax_values_and_gradients(height, width, padding):
  from assljax.models._pooling import max_pool
  x = jnp.asarray(np.random.default_rng(height).normal(size=(2, height, width, 3)),
                  jnp.float32)  # continuous: no ties, so the gradient is unique
  upstream = jnp.asarray(np.random.default_rng(1).normal(
      size=nnx.max_pool(x, (2, 2), (2, 2), padding).shape), jnp.float32)
  ours, ours_vjp = jax.vjp(lambda v: max_pool(v, padding=padding), x)
  ref, ref_vjp = jax.vjp(lambda v: nnx.max_pool(v, (2, 2), (2, 2), padding), x)
  assert ours.shape == ref.shape
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
  np.testing.assert_array_equal(np.asarray(ours_vjp(upstream)[0]),
                                np.asarray(ref_vjp(upstream)[0]))


def test_max_pool_splits_the_gradient_of_a_tie_and_refuses_other_padding():
  from assljax.models._pooling import max_pool
  x = jnp.asarray([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
  assert float(max_pool(x)[0, 0, 0, 0]) == 3.0
  grad = jax.grad(lambda v: max_pool(v).sum())(x).reshape(2, 2)
  np.testing.assert_array_equal(np.asarray(grad), [[0.0, 0.5], [0.5, 0.0]])
  with pytest.raises(ValueError, match="padding must be 'VALID' or 'SAME'"):
    max_pool(x, padding="FULL")


def _check_edge(model, variables, x):
  """Runs every pure function of the edge in one jit; checks shapes and the head."""

  @jax.jit
  def run(variables, x):
    apply_fn, _ = model.bind(variables.batch_stats)
    return (model.apply(*variables, x), model.embed(*variables, x),
            apply_fn(variables.params, x), model.apply_train(*variables, x),
            model.apply(*variables, x[:2]))

  logits, feats, bound, (train_logits, stats), first_two = run(variables, x)
  n = x.shape[0]
  assert logits.shape == (n, model.num_classes) and feats.shape == (n, model.feature_dim)
  head = variables.params["head"]
  np.testing.assert_allclose(feats @ head["kernel"] + head["bias"][None, :], logits,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(bound, logits)
  assert train_logits.shape == (n, model.num_classes)
  assert jax.tree_util.tree_structure(stats) == jax.tree_util.tree_structure(
      variables.batch_stats)
  # Eval mode treats examples independently (no batch statistics).
  np.testing.assert_allclose(first_two, logits[:2], rtol=1e-5, atol=1e-5)
  return logits, train_logits, stats


@pytest.mark.parametrize("name,input_shape,options", [
    ("mlp", (8, 8, 1), {"width": 16}),
    ("cnn", (8, 8, 1), {"channels": (4, 8, 8), "hidden": 16}),
    ("vgg11", (8, 8, 3), {}),
    ("tutorial_cnn", (16, 16, 3), {}),
])
def test_shapes_and_features_times_head_is_logits(name, input_shape, options):
  model = models.build(name, num_classes=7, input_shape=input_shape, **options)
  x = jax.random.uniform(jax.random.key(1), (3,) + input_shape)
  _check_edge(model, model.init(jax.random.key(0)), x)


def _first_bn_batch_moments(model, params, x):
  xs = (np.asarray(x) - np.asarray(model.input_mean)) / np.asarray(model.input_std)
  h = jax.lax.conv_general_dilated(xs, params["kernel"], (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  h = np.asarray(h, np.float64)
  return h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))


@pytest.fixture(scope="module")
def small_wrn():
  model = models.build("wrn", num_classes=5, input_shape=(8, 8, 3), depth=10, widen_factor=1,
                       input_mean=(0.4, 0.5, 0.6), input_std=(0.25, 0.2, 0.3))
  return model, model.init(jax.random.key(0))


def test_wrn_edge_and_batchnorm_train_vs_eval(small_wrn):
  model, variables = small_wrn
  x = jax.random.uniform(jax.random.key(1), (6, 8, 8, 3))
  logits, train_logits, stats = _check_edge(model, variables, x)
  # Train mode normalizes with the batch's statistics, eval mode with the running ones
  # (fresh: mean 0, var 1), so they differ on the same batch.
  assert np.abs(np.asarray(logits) - np.asarray(train_logits)).max() > 1e-3
  # Running statistics move by 1 - 0.999 towards the batch moments (TF convention).
  mean, var = _first_bn_batch_moments(model, variables.params["stem"], x)
  bn = stats["blocks"][0]["bn1"]
  np.testing.assert_allclose(bn["mean"], 0.001 * mean, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(bn["var"], 0.999 + 0.001 * var, rtol=1e-5, atol=1e-7)


def test_resnet18_edge_and_pytorch_batchnorm_momentum():
  model = models.build("resnet18", num_classes=3, input_shape=(8, 8, 3))
  variables = model.init(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(2), (4, 8, 8, 3))
  logits, train_logits, stats = _check_edge(model, variables, x)
  assert np.abs(np.asarray(logits) - np.asarray(train_logits)).max() > 1e-3
  mean, var = _first_bn_batch_moments(model, variables.params["stem"], x)
  np.testing.assert_allclose(stats["stem_bn"]["mean"], 0.1 * mean, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["stem_bn"]["var"], 0.9 + 0.1 * var, rtol=1e-4, atol=1e-6)


def test_bfloat16_compute_keeps_weights_and_statistics_in_float32(small_wrn):
  model, variables = small_wrn
  half = model.with_compute_dtype(jnp.bfloat16)
  assert (jax.tree_util.tree_structure(half.params_template)
          == jax.tree_util.tree_structure(model.params_template))
  x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 3))
  ref, ref_stats = jax.jit(model.apply_train)(*variables, x)
  out, stats = jax.jit(half.apply_train)(*variables, x)
  assert ref.dtype == jnp.float32 and out.dtype == jnp.bfloat16
  leaves, ref_leaves = jax.tree_util.tree_leaves(stats), jax.tree_util.tree_leaves(ref_stats)
  assert all(leaf.dtype == jnp.float32 for leaf in leaves)
  scale = float(np.abs(np.asarray(ref)).max())
  err = float(np.abs(np.asarray(out, np.float32) - np.asarray(ref)).max())
  assert 0 < err < 0.1 * scale  # bfloat16 really ran, and stayed close
  for a, b in zip(leaves, ref_leaves):
    np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-3)
  # Gradients reach the float32 weights in float32.
  grads = jax.jit(jax.grad(lambda p: half.apply_train(p, variables.batch_stats, x)[0]
                           .astype(jnp.float32).sum()))(variables.params)
  assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))
