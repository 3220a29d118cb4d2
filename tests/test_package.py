"""Package-level contracts: light import, lazy subpackages, the test-wide JAX settings."""

import os
import subprocess
import sys

import jax
import pytest


def test_conftest_settings():
  assert jax.config.jax_numpy_rank_promotion == "raise"
  assert jax.device_count() == 8
  # the older element-wise emitters unless the environment chose (conftest)
  assert any(flag.startswith("--xla_cpu_use_fusion_emitters=")
             for flag in os.environ["XLA_FLAGS"].split())
  # unoptimized compiles unless the environment asks for optimized ones (conftest)
  asked = os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] not in ("0", "false", "False")
  assert jax.config.values["jax_disable_most_optimizations"] is asked


@pytest.mark.compute_bound
def test_compute_bound_tests_compile_optimized_programs_here_and_in_subprocesses():
  assert jax.config.values["jax_disable_most_optimizations"] is False
  code = "import jax; print(jax.config.values['jax_disable_most_optimizations'])"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


def test_import_is_light():
  # `import assljax` must not pull heavy optional dependencies (accelerator images).
  code = ("import sys, assljax; heavy = [m for m in ('tensorflow', 'tensorflow_datasets', "
          "'neural_tangents', 'sklearn', 'matplotlib') if m in sys.modules]; print(heavy)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_report_and_command_line_do_not_load_jax():
  # `assljax --help` and `assljax report` run without starting JAX.
  code = "import sys, assljax.report, assljax.app.cli; print('jax' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


def test_subpackages_are_lazy_attributes():
  import assljax
  assert assljax.models.build is not None
  assert "models" in dir(assljax)
  assert assljax.parallel.data_mesh is not None
