"""``jit`` for the package's convolution programs: Eigen convolutions on CPU.

jaxlib 0.10's XLA:CPU hands convolutions with 32 or more channels to YNNPACK, whose
kernels for the gradients of a convolution are slow on this project's machines: the
weight gradient of one 3x3 convolution of 120 images of 32 x 32 x 32 takes 310-670 ms
there and 26 ms in XLA's Eigen convolution, and the forward 30 ms against 20 ms
(``benchmarks/train_step.py``: a FixMatch step of WRN-28-2 goes from 6.1 s to 1.6-1.9 s).
So on CPU :func:`jit` compiles with YNNPACK kept for dots and reductions only
(:func:`compiler_options`), and every training step, kernel and pool pass that runs a
convolution uses it instead of ``jax.jit``. (A YNNPACK reduction can still absorb the
convolution feeding it, e.g. one input gradient before the digits CNN's max pooling;
dropping reductions from the list too measured the same on the WRN and CNN steps.)

The options are left out, so XLA's own defaults apply, when

* the default backend is not the CPU (GPU/TPU convolutions never use YNNPACK);
* ``XLA_FLAGS`` names ``--xla_cpu_experimental_ynn_fusion_type`` (the caller's choice);
* this jaxlib rejects the option (checked once by compiling a one-element program).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import jax
import numpy as np

from assljax._validation import is_traced

_YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
# jaxlib 0.10's default list (its dumped debug options) without INDIVIDUAL_CONVOLUTION.
_YNN_WITHOUT_CONVOLUTION = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"


@functools.cache
def compiler_options() -> dict[str, str] | None:
  """The XLA options :func:`jit` compiles with, or None for XLA's defaults (see above)."""
  if jax.default_backend() != "cpu" or _YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", ""):
    return None
  options = {_YNN_FUSION_TYPE: _YNN_WITHOUT_CONVOLUTION}
  try:
    jax.jit(lambda x: x + 1, compiler_options=options).lower(np.float32(0)).compile()
  except Exception:  # an unknown option on another jaxlib: keep XLA's defaults
    return None
  return options


class _LazyJit:
  """``jax.jit(fun, compiler_options=compiler_options(), **kwargs)``, built on first use.

  Deferred so that importing the package neither starts a backend nor compiles; every
  attribute of the jitted function (``lower``, ``trace``, ``eval_shape`` ...) is forwarded.
  Called inside someone else's ``jax.jit`` (where JAX refuses compiler options: the
  outer program is the one compiled), it is a plain ``jax.jit`` of ``fun``.
  """

  def __init__(self, fun: Callable, kwargs: dict[str, Any]):
    functools.update_wrapper(self, fun)
    self._fun = fun
    self._kwargs = kwargs
    self._jitted = None
    self._nested = None

  def _get(self) -> Callable:
    if self._jitted is None:
      self._jitted = jax.jit(self._fun, compiler_options=compiler_options(), **self._kwargs)
    return self._jitted

  def _get_nested(self) -> Callable:
    if compiler_options() is None:
      return self._get()
    if self._nested is None:
      self._nested = jax.jit(self._fun, **self._kwargs)
    return self._nested

  def __call__(self, *args, **kwargs):
    if is_traced(args, kwargs):
      return self._get_nested()(*args, **kwargs)
    try:
      return self._get()(*args, **kwargs)
    except ValueError as error:  # traced by an outer jit although no argument is a tracer
      if "top-level" not in str(error):
        raise
      return self._get_nested()(*args, **kwargs)

  def __getattr__(self, name: str):
    # only reached for names the instance lacks; its own fields are missing only while
    # copy or pickle rebuild it, and must not recurse into _get then
    if name.startswith("__") or name in ("_fun", "_kwargs", "_jitted", "_nested"):
      raise AttributeError(name)
    return getattr(self._get(), name)


def jit(fun: Callable | None = None, /, **kwargs: Any) -> Callable:
  """``jax.jit`` with :func:`compiler_options`; same keyword arguments, or a decorator.

      step = jit(train_step, donate_argnums=(0,))

      @functools.partial(jit, static_argnames=("chunk_size",))
      def scores(params, x, *, chunk_size): ...
  """
  if "compiler_options" in kwargs:
    raise TypeError("assljax._compile.jit sets compiler_options itself")
  if fun is None:
    return lambda f: _LazyJit(f, kwargs)
  return _LazyJit(fun, kwargs)
