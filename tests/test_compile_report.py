"""``--jax-compile-report``: compile time attributed to the test that caused it."""

import os
import re
import subprocess
import sys
import textwrap

TESTS = os.path.dirname(os.path.abspath(__file__))

_CONFTEST = """
import compile_report

def pytest_addoption(parser):
  compile_report.addoption(parser)

def pytest_configure(config):
  compile_report.register(config)
"""

_TESTS = """
import jax
import numpy as np

@jax.jit
def doubled(x):
  return 2 * x

def test_two_shapes():
  doubled(np.ones(3, np.float32)).block_until_ready()
  doubled(np.ones(4, np.float32)).block_until_ready()   # a second program
  doubled(np.ones(3, np.float32)).block_until_ready()   # in-memory cache: no third

def test_nothing_compiled():
  assert 1 + 1 == 2
"""


def _pytest(tmp_path, *args):
  (tmp_path / "conftest.py").write_text(_CONFTEST)
  (tmp_path / "test_tiny.py").write_text(textwrap.dedent(_TESTS))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)  # count compiles, not the suite's cache hits
  return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "-p", "no:xdist", str(tmp_path), *args], capture_output=True,
                        text=True, cwd=tmp_path, env=env)


def test_report_counts_programs_per_test_and_function(tmp_path):
  out = _pytest(tmp_path, "--jax-compile-report=5")
  assert out.returncode == 0, out.stdout + out.stderr
  lines = out.stdout.splitlines()
  assert any("JAX compilation" in line for line in lines), out.stdout
  rows = {line.split()[-1]: line.split() for line in lines
          if re.match(r"\s*[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+\S+::", line)}
  assert rows["test_tiny.py::test_two_shapes"][4] == "2"
  assert rows["test_tiny.py::test_nothing_compiled"][4] == "0"
  functions = [line.split() for line in lines if line.rstrip().endswith("jit(doubled)")]
  assert len(functions) == 1 and functions[0][1] == "2"


def test_off_by_default_and_negative_refused(tmp_path):
  out = _pytest(tmp_path)
  assert out.returncode == 0 and "JAX compilation" not in out.stdout
  out = _pytest(tmp_path, "--jax-compile-report=-1")
  assert out.returncode != 0
  assert "--jax-compile-report must be 0 or more, got -1" in out.stderr
