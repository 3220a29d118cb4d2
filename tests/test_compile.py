"""assljax._compile.jit: Eigen convolutions on CPU, same numbers as XLA's defaults."""

import copy
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import _compile, models, ssl

_OURS = {"xla_cpu_experimental_ynn_fusion_type":
         "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def _conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _ynn_convolutions(compiled_text: str) -> int:
  """Convolutions inside the computations that YNNPACK fusions call."""
  called = set(re.findall(r"%ynn_fusion[\w.]* = .*kind=kCustom, calls=(%[\w.\-]+)",
                          compiled_text))
  count, computation = 0, None
  for line in compiled_text.splitlines():
    if line.startswith(("%", "ENTRY")):
      computation = line.removeprefix("ENTRY ").split(" ")[0]
    elif " convolution(" in line and computation in called:
      count += 1
  return count


@pytest.fixture
def fresh_options(monkeypatch):
  _compile.compiler_options.cache_clear()
  yield monkeypatch
  _compile.compiler_options.cache_clear()


def test_cpu_programs_keep_ynnpack_for_dots_only(fresh_options):
  fresh_options.delenv("XLA_FLAGS", raising=False)
  assert _compile.compiler_options() == _OURS
  # 32 channels: enough for XLA's defaults to hand the convolution and both of its
  # gradients to YNNPACK; ours compiles none of them there.
  x = jnp.ones((2, 4, 4, 32), jnp.float32)
  w = jnp.ones((3, 3, 32, 32), jnp.float32)
  grads = jax.grad(lambda x, w: jnp.sum(_conv(x, w) ** 2), argnums=(0, 1))
  default = jax.jit(grads).lower(x, w).compile().as_text()
  ours = _compile.jit(grads).lower(x, w).compile().as_text()
  assert _ynn_convolutions(default) == 3   # forward, input and weight gradients
  assert _ynn_convolutions(ours) == 0
  assert ours.count(" convolution(") == 3


def test_callers_xla_flags_choice_wins(fresh_options):
  fresh_options.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=-individual_dot")
  assert _compile.compiler_options() is None


def test_jit_forwards_the_jitted_functions_attributes():
  @functools.partial(_compile.jit, static_argnames=("power",))
  def f(x, *, power):
    """doc of f"""
    return x ** power

  assert f.__doc__ == "doc of f" and f.__name__ == "f"
  assert float(f(jnp.float32(3.0), power=2)) == 9.0
  assert f._cache_size() == 1
  assert float(copy.copy(f)(jnp.float32(2.0), power=3)) == 8.0
  assert "power" not in str(f.lower(jnp.float32(1.0), power=3).as_text().split("{")[0])
  with pytest.raises(TypeError, match="compiler_options"):
    _compile.jit(f, compiler_options={})


@pytest.mark.compute_bound
def test_wide_resnet_outputs_and_gradients_match_xla_defaults():
  """The same logits, running statistics and gradients as ``jax.jit`` within float32."""
  model = models.build("wrn", num_classes=10, input_shape=(8, 8, 3), depth=10,
                       widen_factor=2)
  params, stats = model.init(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 3))
  y = jnp.arange(4) % 10

  def loss(params, stats, x):
    logits, new_stats = model.apply_train(params, stats, x)
    return ssl.algorithm.cross_entropy(logits, y).mean(), (logits, new_stats)

  step = jax.value_and_grad(loss, has_aux=True)
  ours = _compile.jit(step).lower(params, stats, x).compile()
  default = jax.jit(step).lower(params, stats, x).compile()
  assert _ynn_convolutions(ours.as_text()) == 0 < _ynn_convolutions(default.as_text())
  (value, (logits, new_stats)), grads = ours(params, stats, x)
  (value_d, (logits_d, new_stats_d)), grads_d = default(params, stats, x)
  np.testing.assert_allclose(logits, logits_d, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(value, value_d, rtol=1e-5)
  for leaf, leaf_d in zip(jax.tree_util.tree_leaves((new_stats, grads)),
                          jax.tree_util.tree_leaves((new_stats_d, grads_d))):
    scale = float(jnp.max(jnp.abs(leaf_d))) + 1e-12
    assert float(jnp.max(jnp.abs(leaf - leaf_d))) <= 1e-5 * scale
  # and the two differ from a float64 evaluation of the same network by float32 rounding
  with jax.enable_x64(True):
    params64, stats64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                               (params, stats))
    logits64 = jax.jit(lambda p, s, x: model.apply_train(p, s, x)[0])(
        params64, stats64, np.asarray(x, np.float64))
  np.testing.assert_allclose(logits, logits64, rtol=1e-4, atol=1e-4)


def test_training_step_and_empirical_kernel_compile_without_ynn_convolutions():
  from assljax.kernels.empirical import _EmpiricalNTK
  model = models.build("cnn", num_classes=3, input_shape=(8, 8, 1), channels=(32, 32, 32),
                       hidden=8)
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(16, 8, 8, 1)).astype(np.float32)
  y = (np.arange(16) % 3).astype(np.int32)
  data = ssl.make_data(x, y, np.arange(16) < 8)
  trainer = ssl.make_trainer(model, ssl.supervised(weak=lambda key, x: x), batch_size=4,
                             total_steps=4)
  state = trainer.init(jax.random.key(0), data)
  total = {k: jnp.zeros(v.shape, v.dtype)
           for k, v in jax.eval_shape(trainer.train_step, state, data)[1].items()}
  step_text = trainer.step_fn.lower(state, data, total).compile().as_text()
  variables = trainer.variables(state)
  apply_fn, _ = model.bind(variables.batch_stats)
  ntk = _EmpiricalNTK(apply_fn, traced=True, param_filter=None, chunk_size=None)
  kernel_text = ntk._kernel_autodiff.lower(variables.params, x[:2], x[2:4],
                                           symmetric=False).compile().as_text()
  for text in (step_text, kernel_text):
    assert text.count(" convolution(") >= 3
    assert _ynn_convolutions(text) == 0


def test_jit_inside_another_jit_or_transformation(fresh_options):
  """JAX refuses compiler options below the top level: there it is a plain jit."""
  fresh_options.delenv("XLA_FLAGS", raising=False)
  w = jnp.linspace(-1.0, 1.0, 3 * 3 * 32 * 32).reshape(3, 3, 32, 32)
  inner = _compile.jit(lambda x: _conv(x, w))
  x = jnp.linspace(0.0, 1.0, 2 * 4 * 4 * 32).reshape(2, 4, 4, 32)
  expected = np.asarray(inner(x))
  np.testing.assert_array_equal(inner(x), expected)
  assert inner._cache_size() == 1
  np.testing.assert_allclose(jax.jit(lambda x: inner(x) + 0.0)(x), expected, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda: inner(x))(), expected, rtol=1e-5)  # no tracer
  np.testing.assert_allclose(jax.vmap(inner)(x[:, None]), expected[:, None], rtol=1e-5)
  grad = jax.grad(lambda x: jnp.sum(inner(x)))(x)
  np.testing.assert_allclose(grad, jax.grad(lambda x: jnp.sum(_conv(x, w)))(x), rtol=1e-5)


def test_without_options_one_program_serves_every_call(fresh_options):
  fresh_options.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=+reduce")
  f = _compile.jit(lambda x: x * 2.0)
  f(jnp.ones(3))
  jax.jit(lambda x: f(x))(jnp.ones(3))
  assert f._cache_size() == 1
