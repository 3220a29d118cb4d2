"""Test-wide JAX settings. Must run before JAX initializes its backends."""

import os
import shutil
import tempfile

# Eight simulated CPU devices, so that sharding tests run on one CPU host. XLA:CPU's older
# element-wise emitters instead of its fusion emitters: the same programs, compiled about
# 2.5x faster (the suite compiles thousands of small ones; results may differ in the last
# bits, like those of unoptimized programs below).
_xla_flags = os.environ.get("XLA_FLAGS", "")
if "--xla_force_host_platform_device_count=8" not in _xla_flags:
  _xla_flags += " --xla_force_host_platform_device_count=8"
if "--xla_cpu_use_fusion_emitters" not in _xla_flags:  # unless the environment chose
  _xla_flags += " --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = _xla_flags.strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow (imported by tfds) must not grab accelerators or threads it does not need.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# One persistent compilation cache per test session, shared by the xdist workers and the
# subprocesses the tests start (inherited through the environment): many tests compile
# the same tiny programs, and a cache hit skips XLA's compile. Started empty by the
# controlling process, so a session never reads another session's programs.
_CACHE = os.path.join(tempfile.gettempdir(), f"assljax-tests-jax-cache-{os.getuid()}")
if "PYTEST_XDIST_WORKER" not in os.environ:
  shutil.rmtree(_CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
# Most of the suite's time is XLA compiling thousands of tiny programs that then run for
# milliseconds: compile them without LLVM's optimizations (JAX's own switch for "the cost of
# optimization is greater than that of running a less-optimized program"; the same
# programs, rounded differently at most in the last bits). Tests marked `compute_bound`
# compile as users' programs are compiled. `JAX_DISABLE_MOST_OPTIMIZATIONS=0 make test`
# runs the whole suite on optimized programs.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

import compile_report  # noqa: E402  (tests/ is on sys.path: rootdir-relative imports)


def pytest_addoption(parser):
  compile_report.addoption(parser)


def pytest_configure(config):
  compile_report.register(config)


@pytest.fixture(autouse=True)
def _optimized_programs_for_compute_bound_tests(request, monkeypatch):
  """A `compute_bound` test (seconds of training, in-process or in the subprocesses it
  starts) compiles with XLA's optimizations: there they save more than they cost."""
  if request.node.get_closest_marker("compute_bound") is None:
    yield
    return
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "0")
  previous = jax.config.values["jax_disable_most_optimizations"]
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)
