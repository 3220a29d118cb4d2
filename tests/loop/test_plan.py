"""Per-strategy plans: the kernel a strategy is handed is the one its config names."""

import ml_collections
import numpy as np
import pytest

from assljax import kernels, models
from assljax.data import digits
from assljax.app import experiment


@pytest.fixture(scope="module")
def digits_data():
  return digits.load_digits(max_train=40, max_test=10, seed=0)


def _config(kernel: str, options: dict) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.model = ml_collections.ConfigDict(dict(name="mlp", options=options))
  config.al = ml_collections.ConfigDict(dict(initial_per_class=1, query_size=5, budget=20,
                                             mode="sequential"))
  config.strategy_options = ml_collections.ConfigDict(
      {"npc": ml_collections.ConfigDict(dict(kernel=kernel))})
  return config


def test_infinite_kernel_follows_model_options_and_input_standardization(digits_data):
  options = dict(width=32, depth=1)
  model = models.build("mlp", num_classes=digits_data.num_classes,
                       input_shape=digits_data.input_shape, input_mean=digits_data.mean,
                       input_std=digits_data.std, **options)
  plan = experiment.make_plan(_config("infinite", options), "npc", model, digits_data)
  kernel = plan.kernel_factory(None, None, None)
  x = digits_data.train.x[:6]
  # Reference: neural-tangents on inputs standardized by hand, one hidden ReLU layer.
  stax = kernels.stax
  relu_std = np.sqrt(2.0)
  _, _, kernel_fn = stax.serial(stax.Flatten(), stax.Dense(32, W_std=relu_std, b_std=0.1),
                                stax.Relu(), stax.Dense(1, W_std=1.0, b_std=0.1))
  z = (np.asarray(x, np.float64) - digits_data.mean) / digits_data.std
  expected = digits_data.num_classes * np.asarray(kernel_fn(z, z, "ntk"), np.float64)
  np.testing.assert_allclose(np.asarray(kernel(x)), expected, rtol=2e-4, atol=1e-4)
  two_layers = kernels.Kernel.infinite("mlp", num_classes=digits_data.num_classes,
                                       input_mean=digits_data.mean, input_std=digits_data.std)
  assert not np.allclose(np.asarray(two_layers(x)), expected, rtol=1e-2)


def test_architecture_without_a_twin_fails_at_planning(digits_data):
  model = models.build("vgg11", num_classes=digits_data.num_classes,
                       input_shape=(32, 32, 3))
  with pytest.raises(ValueError, match="stax twins exist for"):
    experiment.make_plan(_config("infinite", {}), "npc", model, digits_data)
