"""The model edge: one Flax NNX module, split once, pure functions outward.

Everything outside ``assljax.models`` (kernels, acquisition strategies, SSL losses, the
loop) sees models only as pure functions of plain pytrees:

    model = assljax.models.build("wrn-28-2", num_classes=10, input_shape=(32, 32, 3))
    variables = model.init(key)                    # Variables(params, batch_stats)
    logits = model.apply(params, batch_stats, x)   # eval mode: running BN statistics
    logits, batch_stats = model.apply_train(params, batch_stats, x)  # batch statistics
    features = model.embed(params, batch_stats, x) # penultimate, (n, d), eval mode
    apply_fn, embed_fn = model.bind(batch_stats)   # (params, x) -> (n, C) / (n, d)

``x`` is a batch of raw inputs ``(n, *input_shape)`` (images as float in [0, 1]); a
model standardizes its inputs itself with the ``input_mean``/``input_std`` it was built
with, so every caller feeds the same arrays. ``params`` and ``batch_stats`` are nested
dicts of arrays (``nnx.to_pure_dict``), ready for optax, orbax and
``jax.tree_util`` paths. The final layer is always called ``head`` (an ``nnx.Linear``),
so that ``logits = embed(x) @ params["head"]["kernel"] + params["head"]["bias"]``.

Mixed precision: ``model.with_compute_dtype(jnp.bfloat16)`` is the same model (same
``params``/``batch_stats`` pytrees, float32) computing every layer in bfloat16; BatchNorm
statistics are still reduced in float32 and the running statistics stay float32.

Modules registered here implement ``__call__(x, *, train)`` (logits) and
``features(x, *, train)`` (penultimate activations) on standardized inputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from assljax._validation import UserInputError

PyTree = Any
ModuleFactory = Callable[..., nnx.Module]

_REGISTRY: dict[str, Callable[..., nnx.Module]] = {}


class Variables(NamedTuple):
  """All of a model's arrays: trainable ``params`` and BatchNorm ``batch_stats``."""
  params: PyTree
  batch_stats: PyTree


def register(name: str) -> Callable[[ModuleFactory], ModuleFactory]:
  """Registers ``factory(rngs, *, num_classes, input_shape, **options) -> nnx.Module``."""

  def decorator(factory: ModuleFactory) -> ModuleFactory:
    if name in _REGISTRY:
      raise UserInputError(f"model {name!r} is already registered")
    _REGISTRY[name] = factory
    return factory

  return decorator


def available() -> tuple[str, ...]:
  """Names accepted by :func:`build`."""
  return tuple(sorted(_REGISTRY))


def _copy_state(template: nnx.State, pure: PyTree) -> nnx.State:
  state = jax.tree_util.tree_map(lambda v: v, template)
  nnx.replace_by_pure_dict(state, pure)
  return state


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
  """Pure functions of one NNX architecture. Build with :func:`build`."""
  name: str
  num_classes: int
  input_shape: tuple[int, ...]
  feature_dim: int
  graphdef: Any
  params_template: nnx.State
  stats_template: nnx.State
  input_mean: jax.Array
  input_std: jax.Array
  make_module: Callable[[nnx.Rngs], nnx.Module]
  compute_dtype: Any = None
  cache: dict = dataclasses.field(default_factory=dict, repr=False)

  def with_compute_dtype(self, dtype: Any) -> "Model":
    """The same model computing in ``dtype`` (e.g. ``jnp.bfloat16``), weights kept float32.

    Every layer with a ``dtype`` option (convolutions, dense layers, BatchNorm) computes
    in ``dtype``; ``params`` and ``batch_stats`` keep their structure and float32 dtype,
    so variables move freely between the two views. Outputs come back in ``dtype``.
    """
    base = self.make_module

    def make_module(rngs: nnx.Rngs) -> nnx.Module:
      module = base(rngs)
      for _, sub in nnx.iter_modules(module):
        if hasattr(sub, "dtype") and hasattr(sub, "param_dtype"):
          sub.dtype = dtype
      return module

    abstract = nnx.eval_shape(lambda: make_module(nnx.Rngs(0)))
    graphdef, params, stats = nnx.split(abstract, nnx.Param, nnx.BatchStat)
    return dataclasses.replace(self, graphdef=graphdef, params_template=params,
                               stats_template=stats, make_module=make_module,
                               compute_dtype=dtype, cache={})

  def init(self, key: jax.Array) -> Variables:
    """Fresh variables from ``key`` (deterministic, jitted once per model).

    On CPU the initializer is compiled with XLA's backend optimizations off: it runs
    once, and the random-number code of a ResNet-sized model otherwise takes tens of
    seconds to compile (about 4x less this way).
    """
    if isinstance(key, jax.core.Tracer):  # inside someone's jit: trace through
      return self._init(key)
    if "init" not in self.cache:
      options = ({"xla_backend_optimization_level": 0}
                 if jax.default_backend() == "cpu" else None)
      self.cache["init"] = jax.jit(self._init, compiler_options=options)
    return self.cache["init"](key)

  def _init(self, key: jax.Array) -> Variables:
    _, params, stats = nnx.split(self.make_module(nnx.Rngs(key)), nnx.Param, nnx.BatchStat)
    return Variables(nnx.to_pure_dict(params), nnx.to_pure_dict(stats))

  def _module(self, params: PyTree, batch_stats: PyTree) -> nnx.Module:
    return nnx.merge(self.graphdef, _copy_state(self.params_template, params),
                     _copy_state(self.stats_template, batch_stats))

  def _standardize(self, x: jax.Array) -> jax.Array:
    if x.shape[1:] != self.input_shape:
      raise UserInputError(
          f"{self.name} expects inputs of shape (n, {', '.join(map(str, self.input_shape))}),"
          f" got {tuple(x.shape)}.")
    # Floating inputs keep their dtype (float32 in, float32 out).
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    # Per-channel (or scalar) statistics, broadcast explicitly (rank promotion raises).
    lead = (1,) * (x.ndim - self.input_mean.ndim)
    mean = self.input_mean.astype(dtype).reshape(lead + self.input_mean.shape)
    lead = (1,) * (x.ndim - self.input_std.ndim)
    std = self.input_std.astype(dtype).reshape(lead + self.input_std.shape)
    return (x - mean) / std

  def apply(self, params: PyTree, batch_stats: PyTree, x: jax.Array) -> jax.Array:
    """Eval-mode logits ``(n, C)`` for raw inputs ``x`` ``(n, *input_shape)``."""
    return self._module(params, batch_stats)(self._standardize(x), train=False)

  def apply_train(self, params: PyTree, batch_stats: PyTree,
                  x: jax.Array) -> tuple[jax.Array, PyTree]:
    """Train-mode logits ``(n, C)`` and the updated running BatchNorm statistics."""
    module = self._module(params, batch_stats)
    logits = module(self._standardize(x), train=True)
    _, _, new_stats = nnx.split(module, nnx.Param, nnx.BatchStat)
    new_stats = jax.tree_util.tree_map(lambda new, old: new.astype(jnp.asarray(old).dtype),
                                       nnx.to_pure_dict(new_stats), batch_stats)
    return logits, new_stats

  def embed(self, params: PyTree, batch_stats: PyTree, x: jax.Array) -> jax.Array:
    """Eval-mode penultimate features ``(n, feature_dim)``; logits = features @ W + b."""
    return self._module(params, batch_stats).features(self._standardize(x), train=False)

  def bind(self, batch_stats: PyTree) -> tuple[Callable, Callable]:
    """``(apply_fn, embed_fn)``, both ``(params, x) -> array`` in eval mode.

    The form kernels and acquisition strategies take: BatchNorm statistics are closed
    over, so derivatives are taken with respect to ``params`` only.
    """
    return (lambda params, x: self.apply(params, batch_stats, x),
            lambda params, x: self.embed(params, batch_stats, x))


def build(name: str, *, num_classes: int, input_shape: tuple[int, ...],
          input_mean: Any = 0.0, input_std: Any = 1.0, **options: Any) -> Model:
  """Builds the pure-function view of a registered architecture.

  Args:
    name: one of :func:`available` (e.g. ``"wrn-28-2"``, ``"cnn"``, ``"mlp"``).
    num_classes: ``C``, the width of the logits.
    input_shape: one example's shape, e.g. ``(32, 32, 3)`` (channels last).
    input_mean, input_std: per-channel (or scalar) standardization applied to raw
      inputs before the first layer.
    **options: architecture options (widths, depth...), keyword-only per factory.

  Returns:
    A :class:`Model`. Nothing is allocated until ``model.init(key)``.
  """
  if name not in _REGISTRY:
    raise UserInputError(f"unknown model {name!r}; available: {', '.join(available())}")
  if not isinstance(num_classes, int) or num_classes < 2:
    raise UserInputError(f"num_classes must be an integer >= 2, got {num_classes!r}")
  input_shape = tuple(int(d) for d in input_shape)
  if not input_shape or any(d < 1 for d in input_shape):
    raise UserInputError(f"input_shape must be positive dimensions, got {input_shape}")
  factory = _REGISTRY[name]

  def make_module(rngs: nnx.Rngs) -> nnx.Module:
    return factory(rngs, num_classes=num_classes, input_shape=input_shape, **options)

  abstract = nnx.eval_shape(lambda: make_module(nnx.Rngs(0)))
  graphdef, params, stats = nnx.split(abstract, nnx.Param, nnx.BatchStat)
  head = getattr(abstract, "head", None)
  if not isinstance(head, nnx.Linear):
    raise TypeError(f"model {name!r} must expose its final nnx.Linear as `head`")
  return Model(
      name=name, num_classes=num_classes, input_shape=input_shape,
      feature_dim=int(head.in_features), graphdef=graphdef, params_template=params,
      stats_template=stats, input_mean=_per_input(input_mean, input_shape, "input_mean"),
      input_std=_per_input(input_std, input_shape, "input_std"), make_module=make_module)


def _per_input(value: Any, input_shape: tuple[int, ...], what: str) -> jax.Array:
  # Shape (1, *input_shape): subtracting from a batch needs no rank promotion.
  array = np.asarray(value, np.float32)
  try:
    return jnp.asarray(np.broadcast_to(array, input_shape)[None])
  except ValueError:
    raise UserInputError(f"{what} of shape {array.shape} does not broadcast to the input shape "
                         f"{input_shape}") from None


def count_params(params: PyTree) -> int:
  """Total number of scalars in ``params`` (arrays or ``jax.ShapeDtypeStruct`` leaves).

  ``count_params(nnx.to_pure_dict(model.params_template))`` counts without allocating.
  """
  return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))
