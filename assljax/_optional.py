"""Imports of the packages that not every install of assljax has.

The core install (``pip install assljax``) runs the embedded digits end to end without
TensorFlow; the rest comes with extras (pyproject.toml):

    tfds       tensorflow-datasets + TensorFlow: the tensorflow-datasets sources
    audio      TensorFlow: log-mel spectrograms of audio sources (folders of WAV files)
    infinite   neural-tangents: infinite-width kernels (Kernel.infinite, kernels.stax)
    notebooks  nbclient, nbformat, ipykernel (+ infinite): the notebooks
    dev        all of the above + pytest, pytest-xdist, hypothesis

Every import of such a package goes through :func:`require` (or :func:`check`), so a
missing one raises :class:`MissingDependencyError` with one line naming the command::

    tfds = require("tensorflow_datasets", extra="tfds")
    # MissingDependencyError: tensorflow-datasets sources need tensorflow-datasets, which is
    # not installed; run: pip install 'assljax[tfds]'

Core dependencies that accelerator images may lack (scikit-learn, matplotlib) go through
it too, with ``extra=None``: the line then names the package to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from assljax._validation import UserInputError

# extra -> (what needs it, the modules it provides); pyproject.toml lists the packages
EXTRAS = {
    "tfds": ("tensorflow-datasets sources", ("tensorflow_datasets", "tensorflow")),
    "audio": ("audio spectrograms", ("tensorflow",)),
    "infinite": ("infinite-width kernels", ("neural_tangents",)),
}
# top-level module -> pip distribution name
_DISTRIBUTIONS = {
    "tensorflow": "tensorflow",
    "tensorflow_datasets": "tensorflow-datasets",
    "neural_tangents": "neural-tangents",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
}
# core modules (extra=None) -> what needs them
_CORE_USES = {"sklearn": "the embedded digits data", "matplotlib": "figures"}


class MissingDependencyError(ModuleNotFoundError):
  """An optional package is not installed; the message is one line naming the pip command."""

  def __init__(self, message: str, *, name: str, extra: str | None):
    super().__init__(message, name=name)
    self.extra = extra


def _installed(module: str) -> bool:
  """Whether top-level ``module`` can be imported, without importing it."""
  if module in sys.modules:
    return sys.modules[module] is not None
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


def _missing(module: str, extra: str | None) -> MissingDependencyError:
  distribution = _DISTRIBUTIONS.get(module, module)
  if extra is None:
    uses = _CORE_USES.get(module, "assljax")
    command = f"pip install {distribution}"
  else:
    uses = EXTRAS[extra][0]
    command = f"pip install 'assljax[{extra}]'"
  return MissingDependencyError(f"{uses} need {distribution}, which is not installed; run: "
                                f"{command}", name=module, extra=extra)


def check(module: str, *, extra: str | None = None) -> None:
  """Raises :class:`MissingDependencyError` unless ``module`` (and ``extra``'s packages) exist.

  Imports nothing. ``module`` is a dotted name; only its top-level package is looked up.
  """
  if extra is not None and extra not in EXTRAS:
    raise UserInputError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}.")
  top = module.partition(".")[0]
  needed = (top,) if extra is None else (top, *(m for m in EXTRAS[extra][1] if m != top))
  for name in needed:
    if not _installed(name):
      raise _missing(name, extra)


def require(module: str, *, extra: str | None = None) -> types.ModuleType:
  """``importlib.import_module(module)``, after :func:`check`.

  Args:
    module: dotted module name, e.g. ``"tensorflow_datasets"`` or ``"sklearn.datasets"``.
    extra: the pyproject extra that installs it (``"tfds"``, ``"audio"``, ``"infinite"``),
      or None for a core dependency.

  Raises:
    MissingDependencyError: (a ``ModuleNotFoundError``) one line: what needs the package
      and the ``pip install`` to run. A package that is installed but fails to import
      raises its own error unchanged.
  """
  check(module, extra=extra)
  return importlib.import_module(module)
