"""The one acquisition signature every strategy shares, its registry and its checks.

    strategy = assljax.acquisition.get("npc", **hyperparameters)
    idx = strategy(key, ctx, budget)                 # (budget,) int32
    idx, state = strategy.select(key, ctx, budget)   # for strategies with memory (ALBL)

``idx`` holds ``budget`` distinct indices into ``ctx.x`` where ``ctx.labeled_mask`` is
False; the same key gives the same indices. Strategies are host-side Python objects that
call jitted, chunked kernels; a strategy never sees an NNX module, only
``apply_fn(params, x) -> logits`` and ``embed_fn(params, x) -> features``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import UserInputError, check_positive_int

PyTree = Any

_REGISTRY: dict[str, Callable[..., "Strategy"]] = {}


@dataclasses.dataclass(frozen=True)
class Context:
  """Everything a strategy may look at in one acquisition round.

  Attributes:
    apply_fn: ``(params, x) -> logits`` of shape ``(n, C)``, eval mode.
    params: the pytree ``apply_fn`` differentiates with respect to.
    x: the pool, ``(N, ...)``, raw inputs as the model takes them.
    labeled_mask: ``(N,)`` bool, True where a label is known.
    labels: ``(N,)`` int32 labels, valid where ``labeled_mask``.
    num_classes: ``C``.
    embed_fn: ``(params, x) -> features`` of shape ``(n, d)`` with
      ``logits = features @ params["head"]["kernel"] + params["head"]["bias"]``;
      needed by strategies that use penultimate features (coreset, BADGE, last-layer
      NTK in closed form).
    kernel: an :class:`assljax.kernels.Kernel` for kernel-based strategies, or None to
      use the strategy's default.
    state: what a strategy carried over from the previous round (ALBL's bandit), or
      None on the first round.
  """
  apply_fn: Callable[[PyTree, jax.Array], jax.Array]
  params: PyTree
  x: jax.Array
  labeled_mask: jax.Array
  labels: jax.Array
  num_classes: int
  embed_fn: Callable[[PyTree, jax.Array], jax.Array] | None = None
  kernel: Any = None
  state: PyTree = None

  @property
  def pool_size(self) -> int:
    return int(self.labeled_mask.shape[0])

  def unlabeled_indices(self) -> np.ndarray:
    """Indices where no label is known, ascending, as a host int array."""
    return np.flatnonzero(~np.asarray(self.labeled_mask)).astype(np.int32)

  def labeled_indices(self) -> np.ndarray:
    """Indices where a label is known, ascending, as a host int array."""
    return np.flatnonzero(np.asarray(self.labeled_mask)).astype(np.int32)


class Strategy(Protocol):
  """What :func:`get` returns."""
  name: str

  def __call__(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    ...

  def select(self, key: jax.Array, ctx: Context, budget: int) -> tuple[jax.Array, PyTree]:
    ...


class StatelessStrategy:
  """Base for strategies without memory: subclasses implement ``_select``."""
  name: str = "?"

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    raise NotImplementedError

  def select(self, key: jax.Array, ctx: Context, budget: int) -> tuple[jax.Array, PyTree]:
    """``(indices, state)``; the state is passed through unchanged."""
    return self(key, ctx, budget), ctx.state

  def __call__(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    check_request(ctx, budget)
    idx = self._select(key, ctx, budget)
    return check_selection(idx, ctx, budget, self.name)

  def __repr__(self) -> str:
    fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
    return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


# strategy name -> module of assljax.acquisition that registers it (imported on first use,
# so that heavy dependencies load only for the strategy that needs them)
_MODULE_OF = {
    "random": "uncertainty",
    "entropy": "uncertainty",
    "margin": "uncertainty",
    "confidence": "uncertainty",
    "consistency": "consistency",
    "egl": "egl",
    "badge": "badge",
    "coreset": "coreset",
    "albl": "albl",
    "crc": "spectral",
    "npc": "spectral",
    "dynamicAL": "dynamic",
    "bilevel": "bilevel",
}


def register(name: str) -> Callable:
  """Registers ``constructor(**hyperparameters) -> Strategy`` under ``name``."""

  def decorator(constructor: Callable[..., Strategy]) -> Callable[..., Strategy]:
    if name in _REGISTRY:
      raise UserInputError(f"acquisition strategy {name!r} is already registered")
    _REGISTRY[name] = constructor
    return constructor

  return decorator


def available() -> tuple[str, ...]:
  """Strategy names accepted by :func:`get`."""
  return tuple(sorted(set(_MODULE_OF) | set(_REGISTRY), key=str.lower))


def get(name: str, **hyperparameters: Any) -> Strategy:
  """The strategy registered as ``name``, configured with ``hyperparameters``."""
  if name not in _REGISTRY and name in _MODULE_OF:
    importlib.import_module(f"assljax.acquisition.{_MODULE_OF[name]}")
  if name not in _REGISTRY:
    raise UserInputError(
        f"unknown acquisition strategy {name!r}; available: {', '.join(available())}")
  constructor = _REGISTRY[name]
  # Bind first, so an unknown or missing hyperparameter is the user's error while a
  # TypeError raised inside the constructor stays the bug it is.
  try:
    inspect.signature(constructor).bind(**hyperparameters)
  except TypeError as e:
    raise UserInputError(f"bad hyperparameters for strategy {name!r}: {e}") from None
  strategy = constructor(**hyperparameters)
  strategy.name = name
  return strategy


def check_request(ctx: Context, budget: int) -> None:
  """Validates a context and budget before any work; raises ``ValueError`` naming the problem."""
  check_positive_int("budget", budget)
  n = ctx.pool_size
  if ctx.labeled_mask.ndim != 1 or ctx.labeled_mask.dtype != jnp.bool_:
    raise UserInputError(
        f"labeled_mask must be a 1-D bool array, got shape {ctx.labeled_mask.shape} "
        f"dtype {ctx.labeled_mask.dtype}")
  if ctx.x.shape[0] != n or ctx.labels.shape != (n,):
    raise UserInputError(
        f"pool arrays disagree: x has {ctx.x.shape[0]} rows, labeled_mask {n}, "
        f"labels shape {tuple(ctx.labels.shape)}")
  remaining = n - int(np.count_nonzero(np.asarray(ctx.labeled_mask)))
  if budget > remaining:
    raise UserInputError(
        f"budget {budget} exceeds the {remaining} unlabeled samples left in the pool")
  labels = np.asarray(ctx.labels)[np.asarray(ctx.labeled_mask)]
  if labels.size and (labels.min() < 0 or labels.max() >= ctx.num_classes):
    raise UserInputError(
        f"labels must lie in [0, {ctx.num_classes}) where labeled_mask is set; found "
        f"values in [{labels.min()}, {labels.max()}]")


def check_selection(idx: Any, ctx: Context, budget: int, name: str) -> jax.Array:
  """Asserts a strategy kept the contract and returns ``idx`` as int32 ``(budget,)``."""
  idx = np.asarray(idx)
  mask = np.asarray(ctx.labeled_mask)
  if idx.shape != (budget,):
    raise AssertionError(f"strategy {name!r} returned shape {idx.shape}, expected ({budget},)")
  if len(np.unique(idx)) != budget:
    raise AssertionError(f"strategy {name!r} returned duplicate indices")
  if idx.min() < 0 or idx.max() >= mask.shape[0] or mask[idx].any():
    raise AssertionError(f"strategy {name!r} returned labeled or out-of-range indices")
  return jnp.asarray(idx, dtype=jnp.int32)


def check_finite(values: jax.Array, what: str) -> None:
  """Raises ``ValueError`` if ``values`` has NaN/inf, naming ``what`` and how many rows."""
  finite = np.isfinite(np.asarray(values))
  if not finite.all():
    rows = finite.reshape(finite.shape[0], -1).all(axis=1) if finite.ndim else finite
    bad = int(np.count_nonzero(~rows)) if finite.ndim else 1
    raise UserInputError(f"{what} contain NaN or infinity ({bad} rows); refusing to score")


def top_k_unlabeled(scores: jax.Array, labeled_mask: jax.Array, k: int) -> jax.Array:
  """Indices of the ``k`` largest ``scores`` among unlabeled entries, best first.

  Ties break towards the lower index, so the result is deterministic.
  """
  masked = jnp.where(labeled_mask, -jnp.inf, scores)
  _, idx = jax.lax.top_k(masked, k)
  return idx.astype(jnp.int32)
