"""Infinite-width NTK through neural-tangents ``stax``, with twins of the project's models.

    kernel_fn = infinite_ntk_fn("wrn-28-2", num_classes=10)
    K = kernel_fn(x1, x2)            # (n1, n2) = C * Theta(x1, x2)
    init_fn, apply_fn, kernel_fn = stax_twin("cnn", num_classes=10)

Traced convention: the output channels of an infinite-width network are i.i.d., so the
``(C, C)`` class block of the NTK is ``Theta(x, x') I_C``; its trace, which is what
``kernel_fn`` returns, is ``C * Theta`` (``num_classes=1`` gives ``Theta`` itself). This
matches the finite-width traced kernel of :mod:`assljax.kernels.empirical` (a sum over
classes), not neural-tangents' own empirical trace (a mean).

Twins (NTK parameterization; widths only matter for the finite ``init_fn``/``apply_fn``):

* ``"mlp"`` -- ``Flatten -> [Dense(width) -> ReLU] * depth -> Dense(C)``
  (options ``width=256``, ``depth=2``).
* ``"cnn"`` -- ``[Conv3x3(c) -> ReLU -> AvgPool2] per c in channels -> Flatten ->
  Dense(hidden) -> ReLU -> Dense(C)`` (options ``channels=(32, 64, 64)``,
  ``hidden=128``). The model's max-pooling has no closed-form kernel, so the twin
  average-pools (``"SAME"`` padding counts padded zeros on odd sizes).
* ``"wrn"`` (options ``depth=28``, ``widen_factor=2``), ``"wrn-28-2"``, ``"wrn-28-8"`` --
  the FixMatch Wide ResNet layout of :mod:`assljax.models.wide_resnet` (3x3 stem of 16
  channels, pre-activation blocks with LeakyReLU(0.1), 1x1 projection shortcuts, bias-free
  convolutions) without BatchNorm, and with a ``Flatten -> Dense(C)`` head instead of
  global average pooling, as in the Bilevel-coreset paper. Flatten keeps the kernel on
  the diagonal of the spatial covariance, so it costs ``O(n1 n2 H W depth)``.

Shared options: ``W_std`` (hidden layers; default ``sqrt(2)`` for ReLU nets,
``sqrt(2 / (1 + 0.1**2))`` for the WRN's LeakyReLU -- He scaling), ``b_std`` (biases where
the model has them; default ``0.1``); the readout layer uses ``W_std=1``. For
:func:`infinite_ntk_fn`, ``input_mean`` and ``input_std`` (scalar or per channel; default
0 and 1) standardize raw inputs exactly as :func:`assljax.models.build` does, so the same
``[0, 1]`` images feed both kernels.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp

from assljax._chunking import chunked_map
from assljax._validation import UserInputError, check_chunk_size, check_positive_int
from assljax.kernels._compat import import_neural_tangents
from assljax.kernels.empirical import _check_inputs

StaxTriple = tuple[Callable, Callable, Callable]

_TWINS = ("mlp", "cnn", "wrn", "wrn-28-2", "wrn-28-8")
_LEAKY_SLOPE = 0.1


def _pop_options(name: str, options: dict, defaults: dict) -> dict:
  unknown = sorted(set(options) - set(defaults))
  if unknown:
    raise UserInputError(f"unknown options for the {name!r} twin: {', '.join(unknown)}; "
                         f"accepted: {', '.join(sorted(defaults))}.")
  return {**defaults, **options}


def stax_twin(name: str, *, num_classes: int, **options: Any) -> StaxTriple:
  """The neural-tangents ``stax`` twin of a project architecture.

  Args:
    name: ``"mlp"``, ``"cnn"``, ``"wrn"``, ``"wrn-28-2"`` or ``"wrn-28-8"``.
    num_classes: width ``C`` of the readout layer (of the finite ``apply_fn``).
    **options: architecture options (see the module docstring), ``W_std``, ``b_std``.

  Returns:
    ``(init_fn, apply_fn, kernel_fn)`` from ``neural_tangents.stax``; inputs are
    ``(n, H, W, C)`` images (``(n, ...)`` for the MLP), already standardized.
  """
  check_positive_int("num_classes", num_classes)
  if name not in _TWINS:
    raise UserInputError(f"unknown architecture {name!r}; stax twins exist for "
                         f"{', '.join(_TWINS)} (or pass an (init_fn, apply_fn, kernel_fn) triple).")
  stax = import_neural_tangents().stax
  relu_std = math.sqrt(2.0)
  if name == "mlp":
    o = _pop_options(name, options, dict(width=256, depth=2, W_std=relu_std, b_std=0.1))
    layers = [stax.Flatten()]
    for _ in range(int(o["depth"])):
      layers += [stax.Dense(int(o["width"]), W_std=o["W_std"], b_std=o["b_std"]), stax.Relu()]
    layers.append(stax.Dense(num_classes, W_std=1.0, b_std=o["b_std"]))
    return stax.serial(*layers)
  if name == "cnn":
    o = _pop_options(name, options,
                     dict(channels=(32, 64, 64), hidden=128, W_std=relu_std, b_std=0.1))
    layers = []
    for c in tuple(o["channels"]):
      layers += [stax.Conv(int(c), (3, 3), padding="SAME", W_std=o["W_std"], b_std=o["b_std"]),
                 stax.Relu(), stax.AvgPool((2, 2), strides=(2, 2), padding="SAME")]
    layers += [stax.Flatten(), stax.Dense(int(o["hidden"]), W_std=o["W_std"], b_std=o["b_std"]),
               stax.Relu(), stax.Dense(num_classes, W_std=1.0, b_std=o["b_std"])]
    return stax.serial(*layers)
  fixed = {"wrn-28-2": dict(depth=28, widen_factor=2), "wrn-28-8": dict(depth=28, widen_factor=8)}
  leaky_std = math.sqrt(2.0 / (1.0 + _LEAKY_SLOPE**2))
  if name == "wrn":
    o = _pop_options(name, options, dict(depth=28, widen_factor=2, W_std=leaky_std, b_std=0.1))
  else:
    o = {**fixed[name], **_pop_options(name, options, dict(W_std=leaky_std, b_std=0.1))}
  return _wrn_twin(stax, num_classes=num_classes, depth=int(o["depth"]),
                   widen_factor=int(o["widen_factor"]), w_std=o["W_std"], b_std=o["b_std"])


def _wrn_twin(stax, *, num_classes: int, depth: int, widen_factor: int, w_std: float,
              b_std: float) -> StaxTriple:
  if depth < 10 or (depth - 4) % 6:
    raise UserInputError(f"WRN depth must be 6n + 4 with n >= 1, got {depth}.")
  if widen_factor < 2:
    # with 16 * k == 16 the first block adds its activated (non-Gaussian) input through an
    # identity shortcut, a sum neural-tangents cannot take in closed form
    raise UserInputError(f"the WRN stax twin needs widen_factor >= 2, got {widen_factor}.")
  per_stage = (depth - 4) // 6
  widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)

  def conv(c_out: int, size: int, stride: int):
    return stax.Conv(c_out, (size, size), strides=(stride, stride), padding="SAME", W_std=w_std)

  def block(c_in: int, c_out: int, stride: int, activate_before_residual: bool):
    act = stax.LeakyRelu(_LEAKY_SLOPE)
    shortcut = (conv(c_out, 1, stride) if (c_in != c_out or stride != 1) else stax.Identity())
    if activate_before_residual:
      main = stax.serial(conv(c_out, 3, stride), act, conv(c_out, 3, 1))
      return stax.serial(act, stax.FanOut(2), stax.parallel(main, shortcut), stax.FanInSum())
    main = stax.serial(act, conv(c_out, 3, stride), act, conv(c_out, 3, 1))
    return stax.serial(stax.FanOut(2), stax.parallel(main, shortcut), stax.FanInSum())

  layers, c_in = [conv(16, 3, 1)], 16
  for stage, (c_out, stride) in enumerate(zip(widths, (1, 2, 2))):
    for i in range(per_stage):
      layers.append(block(c_in, c_out, stride if i == 0 else 1,
                          activate_before_residual=(stage == 0 and i == 0)))
      c_in = c_out
  layers += [stax.LeakyRelu(_LEAKY_SLOPE), stax.Flatten(),
             stax.Dense(num_classes, W_std=1.0, b_std=b_std)]
  return stax.serial(*layers)


def _as_float(x: Any) -> jax.Array:
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.float32)


def _is_triple(architecture: Any) -> bool:
  return (isinstance(architecture, (tuple, list)) and len(architecture) == 3
          and all(callable(f) for f in architecture))


def _standardizer(input_mean: Any, input_std: Any) -> Callable[[jax.Array], jax.Array]:
  mean = jnp.asarray(input_mean, jnp.float32)
  std = jnp.asarray(input_std, jnp.float32)
  if mean.ndim > 1 or std.ndim > 1:
    raise UserInputError("input_mean and input_std must be scalars or per-channel vectors.")
  if not bool(jnp.all(std > 0)):
    raise UserInputError("input_std must be positive.")

  def standardize(x: jax.Array) -> jax.Array:
    def expand(a):
      return a.reshape((1,) * (x.ndim - a.ndim) + a.shape).astype(x.dtype)

    return (x - expand(mean)) / expand(std)

  return standardize


class _InfiniteNTK:
  """Implementation behind :func:`infinite_ntk_fn` and ``Kernel.infinite``."""

  def __init__(self, architecture: Any, *, num_classes: int, chunk_size: int | None,
               options: dict):
    check_positive_int("num_classes", num_classes)
    options = dict(options)
    standardize = _standardizer(options.pop("input_mean", 0.0), options.pop("input_std", 1.0))
    if isinstance(architecture, str):
      triple = stax_twin(architecture, num_classes=num_classes, **options)
      self.description = architecture
    elif _is_triple(architecture):
      if options:
        raise UserInputError(f"options {', '.join(sorted(options))} only apply to named "
                             "architectures, not to a stax triple.")
      import_neural_tangents()
      triple = tuple(architecture)
      self.description = "stax triple"
    else:
      raise UserInputError("architecture must be one of "
                           f"{', '.join(_TWINS)} or an (init_fn, apply_fn, kernel_fn) stax triple.")
    self.triple = triple
    self.num_classes = num_classes
    self.chunk_size = check_chunk_size(chunk_size)
    stax_kernel_fn = triple[2]
    scale = float(num_classes)

    def pair(a, b):
      with warnings.catch_warnings():
        # identity shortcuts of residual twins trip neural-tangents' generic FanIn warning;
        # the summed branches are independent (each residual branch has fresh weights)
        warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")
        k = stax_kernel_fn(standardize(a), None if b is None else standardize(b), "ntk")
      return k * scale

    def kernel_impl(x1, x2, *, symmetric: bool):
      if self.chunk_size is None:
        return pair(x1, None if symmetric else x2)

      def rows(x1c):
        block = chunked_map(lambda x2c: pair(x1c, x2c).T, x2, chunk_size=self.chunk_size)
        return block.T

      return chunked_map(rows, x1, chunk_size=self.chunk_size)

    def diag_impl(x):
      per_sample = jax.vmap(lambda xi: pair(xi[None], None)[0, 0])
      return chunked_map(per_sample, x, chunk_size=self.chunk_size)

    self._kernel = jax.jit(kernel_impl, static_argnames="symmetric")
    self._diag = jax.jit(diag_impl)

  def kernel(self, x1: Any, x2: Any = None) -> jax.Array:
    x1, x2 = _check_inputs(_as_float(x1), None if x2 is None else _as_float(x2))
    symmetric = x2 is None
    return self._kernel(x1, x1 if symmetric else x2, symmetric=symmetric)

  def diag(self, x: Any) -> jax.Array:
    x, _ = _check_inputs(_as_float(x))
    return self._diag(x)


def infinite_ntk_fn(architecture: str | StaxTriple, *, num_classes: int = 1,
                    chunk_size: int | None = None, **options: Any) -> Callable[..., jax.Array]:
  """Returns ``kernel_fn(x1, x2=None)``, the infinite-width NTK traced over classes.

  Args:
    architecture: a twin name (``"mlp"``, ``"cnn"``, ``"wrn"``, ``"wrn-28-2"``,
      ``"wrn-28-8"``) or a user ``(init_fn, apply_fn, kernel_fn)`` stax triple.
    num_classes: ``C``; the result is ``C`` times the per-channel NTK (the trace of the
      ``(C, C)`` class block, whose channels are i.i.d.).
    chunk_size: if set, the kernel is computed in ``(chunk_size, chunk_size)`` blocks
      (``lax.map``), bounding memory by one block's intermediate covariances.
    **options: ``input_mean``/``input_std`` (raw-input standardization, as in
      :func:`assljax.models.build`) and, for named twins, the options of
      :func:`stax_twin`.

  Returns:
    ``kernel_fn(x1, x2=None)`` with ``x1: (n1, ...)``, ``x2: (n2, ...)`` (``None`` means
    ``x1``) returning ``(n1, n2)`` in the inputs' float dtype.
  """
  impl = _InfiniteNTK(architecture, num_classes=num_classes, chunk_size=chunk_size,
                      options=options)

  def kernel_fn(x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    """Infinite-width NTK ``(n1, n2)``, traced over classes; see infinite_ntk_fn."""
    return impl.kernel(x1, x2)

  return kernel_fn
