"""Compatibility shim that lets neural-tangents 0.6.5 import on JAX >= 0.10.

neural-tangents 0.6.5 (the latest release) was written against JAX 0.4, and imports
names that JAX has since removed from its public modules:

* ``jax.core.{Jaxpr, JaxprEqn, Literal, Var, Primitive, ClosedJaxpr}`` moved to
  ``jax.extend.core``;
* ``jax.util`` (``safe_zip``/``safe_map``) is gone; the functions live on in
  ``jax._src.util``;
* ``jax.interpreters.ad.backward_pass`` moved to ``jax._src.interpreters.ad`` and
  ``jax.interpreters.ad.zeros_like_p`` no longer exists.

:func:`install` puts aliases back under the old names, only where they are missing, so
it is a no-op on a JAX that still has them. ``zeros_like_p`` gets a fresh primitive that
no JAX program ever binds: neural-tangents only uses it as a key of its
structured-derivative rule table, so the rule is simply never matched.

What works afterwards: every ``stax`` kernel (infinite width), and the empirical NTK with
``NtkImplementation.JACOBIAN_CONTRACTION`` and ``NTK_VECTOR_PRODUCTS``.
``STRUCTURED_DERIVATIVES`` does not (it relies on a changed ``jax.linearize``); assljax
never uses it.

neural-tangents' ``experimental`` package (a TensorFlow port) is imported eagerly by
``neural_tangents/__init__``. When TensorFlow cannot be imported, as on accelerator
images that ship only JAX, :func:`install` registers an empty stand-in for
``neural_tangents.experimental`` so that the rest of the package still imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from assljax._optional import check

_INSTALLED = False
_MOVED_TO_EXTEND_CORE = ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive", "ClosedJaxpr")


def tensorflow_importable() -> bool:
  """Whether ``import tensorflow`` can succeed, without importing it."""
  if "tensorflow" in sys.modules:
    return sys.modules["tensorflow"] is not None
  try:
    return importlib.util.find_spec("tensorflow") is not None
  except (ImportError, ValueError):
    return False


def install(*, stub_experimental: bool | None = None) -> None:
  """Adds the aliases neural-tangents 0.6.5 needs. Idempotent.

  Args:
    stub_experimental: register an empty ``neural_tangents.experimental`` module.
      ``None`` (default) does so exactly when TensorFlow is not importable.
  """
  global _INSTALLED
  import jax
  import jax.core
  import jax.extend.core as extend_core
  import jax.interpreters.ad as ad

  for name in _MOVED_TO_EXTEND_CORE:
    if not hasattr(jax.core, name) and hasattr(extend_core, name):
      setattr(jax.core, name, getattr(extend_core, name))

  try:
    importlib.import_module("jax.util")
  except ImportError:
    from jax._src import util as src_util

    util = types.ModuleType("jax.util")
    util.__doc__ = "assljax alias of the jax._src.util names neural-tangents imports."
    util.safe_zip = src_util.safe_zip
    util.safe_map = src_util.safe_map
    sys.modules["jax.util"] = util
    jax.util = util

  if not hasattr(ad, "backward_pass"):
    from jax._src.interpreters import ad as src_ad

    ad.backward_pass = src_ad.backward_pass
  if not hasattr(ad, "zeros_like_p"):
    ad.zeros_like_p = extend_core.Primitive("assljax_unused_zeros_like")

  if stub_experimental is None:
    stub_experimental = not tensorflow_importable()
  if stub_experimental and "neural_tangents.experimental" not in sys.modules:
    experimental = types.ModuleType("neural_tangents.experimental")
    experimental.__doc__ = (
        "Stand-in registered by assljax because TensorFlow is not importable; the "
        "TensorFlow port of neural-tangents is unavailable.")
    experimental.__path__ = []
    sys.modules["neural_tangents.experimental"] = experimental
  _INSTALLED = True


def import_neural_tangents() -> types.ModuleType:
  """Imports ``neural_tangents`` with the shim applied first."""
  check("neural_tangents", extra="infinite")
  if "neural_tangents" not in sys.modules:
    install()
  try:
    return importlib.import_module("neural_tangents")
  except ImportError as e:
    raise ImportError(
        "neural-tangents could not be imported even with assljax's compatibility "
        f"shim ({e}). Install it with `pip install neural-tangents==0.6.5`.") from e
