"""Test-wide JAX settings. Must run before JAX initializes its backends."""

import os

# Eight simulated CPU devices, so that sharding tests run on one CPU host.
_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow (imported by tfds) must not grab accelerators or threads it does not need.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
