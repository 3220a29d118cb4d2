"""The notebooks run top to bottom (nbclient, the venv's kernel) and are stored stripped."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("kernel_spectra.ipynb", "finite_vs_infinite.ipynb", "decision_boundary.ipynb")


def test_notebooks_listed():
  assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name):
  nbformat = pytest.importorskip("nbformat")
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code, "a notebook without code cells"
  for cell in code:
    assert cell.outputs == [], f"{name}: stored with outputs; strip them before committing"
    assert cell.execution_count is None, f"{name}: stored with execution counts"
  assert nb.cells[0].cell_type == "markdown"                      # states its question first
  last = nb.cells[-1]
  assert last.cell_type == "markdown" and "What we found" in last.source
  # notebooks teach the public API: no private assljax names
  for cell in code:
    for line in cell.source.splitlines():
      if "assljax" in line or line.lstrip().startswith(("from ", "import ")):
        assert "._" not in line and "import _" not in line, f"{name}: private import {line!r}"


def _python3_kernel_is_this_interpreter() -> bool:
  """The 'python3' kernelspec resolves to the interpreter running the tests."""
  from jupyter_client.kernelspec import KernelSpecManager

  spec = KernelSpecManager().get_kernel_spec("python3")
  exe = spec.argv[0]
  # jupyter_client swaps a bare 'python'/'python3' for sys.executable when launching
  major, minor = sys.version_info[:2]
  return exe in ("python", f"python{major}", f"python{major}.{minor}") or (
      os.path.realpath(exe) == os.path.realpath(sys.executable))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  pytest.importorskip("ipykernel")
  assert _python3_kernel_is_this_interpreter(), (
      "the 'python3' Jupyter kernel is not this interpreter's ipykernel")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
  # run as a user would: without the test suite's simulated devices
  flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                   if not f.startswith("--xla_force_host_platform_device_count"))
  monkeypatch.setenv("XLA_FLAGS", flags)
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()   # raises CellExecutionError on the first failing cell
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") == "error"
            or (o.get("output_type") == "stream" and "Traceback" in o.get("text", ""))]
  assert not errors, f"{name}: error output {errors[0]}"
  images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)
  assert images >= 3, f"{name}: expected its figures, got {images}"
  assert list(tmp_path.iterdir()) == [], f"{name}: wrote files into its working directory"
