"""The reference optimizers: FixMatch's Nesterov SGD and MixMatch's Adam (optax).

Weight decay acts on convolution and dense *kernels* only (leaves named ``kernel``),
never on biases or BatchNorm scales and offsets, as in the FixMatch and MixMatch
reference code.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from assljax._validation import UserInputError, check_number, check_positive_int

PyTree = Any


class Recipe(NamedTuple):
  """The reference learning rate and weight decay of an optimizer family."""
  lr: float
  weight_decay: float


# The one source of these numbers: the optimizers below, the SSL algorithms and the
# experiment configs all read them from here.
RECIPES = {
    "sgd": Recipe(lr=0.03, weight_decay=5e-4),    # FixMatch (Sohn et al., 2020)
    "adam": Recipe(lr=2e-3, weight_decay=0.02),   # MixMatch (Berthelot et al., 2019)
}


def _leaf_name(path) -> str:
  last = path[-1]
  for attr in ("key", "name", "idx"):
    if hasattr(last, attr):
      return str(getattr(last, attr))
  return str(last)


def kernel_mask(params: PyTree) -> PyTree:
  """Pytree of bools, True exactly at leaves whose name is ``kernel`` (conv/dense weights)."""
  return jax.tree_util.tree_map_with_path(lambda path, _: _leaf_name(path) == "kernel", params)


def fixmatch_schedule(lr: float, total_steps: int) -> Callable[[jax.Array], jax.Array]:
  """``k -> lr * cos(7 pi k / (16 K))`` with ``k`` clipped to ``K = total_steps``."""
  if total_steps < 1:
    raise UserInputError(f"total_steps must be a positive integer, got {total_steps!r}.")

  def schedule(count):
    k = jnp.minimum(jnp.asarray(count, jnp.float32), float(total_steps))
    return lr * jnp.cos(7.0 * math.pi * k / (16.0 * total_steps))

  return schedule


def adam_schedule(lr: float, *, end_lr: float | None = None, total_steps: int | None = None
                  ) -> Callable[[jax.Array], jax.Array]:
  """``step -> rate`` of :func:`adam`: constant, or linear from ``lr`` to ``end_lr``."""
  if end_lr is None:
    return lambda count: jnp.full((), lr, jnp.float32)
  return optax.linear_schedule(lr, end_lr, total_steps)


def sgd(lr: float = RECIPES["sgd"].lr, *, total_steps: int, momentum: float = 0.9,
        nesterov: bool = True, weight_decay: float = RECIPES["sgd"].weight_decay
        ) -> optax.GradientTransformation:
  """FixMatch's optimizer: SGD + Nesterov momentum, cosine decay, L2 on kernels.

  The decay is coupled (``grad += weight_decay * kernel`` before the momentum), which is
  what both the TensorFlow reference (an L2 term in the loss) and its PyTorch port do.
  """
  lr = check_number("lr", lr, low=0.0, include_low=False)
  weight_decay = check_number("weight_decay", weight_decay, low=0.0)
  momentum = check_number("momentum", momentum, low=0.0, high=1.0, include_high=False)
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask=kernel_mask),
      optax.sgd(fixmatch_schedule(lr, total_steps), momentum=momentum, nesterov=nesterov))


def adam(lr: float = RECIPES["adam"].lr, *, weight_decay: float = RECIPES["adam"].weight_decay,
         end_lr: float | None = None, total_steps: int | None = None
         ) -> optax.GradientTransformation:
  """MixMatch's optimizer: Adam and decoupled decay on kernels.

  Each step multiplies kernels by ``1 - lr_k * weight_decay`` (MixMatch's ``wd = 0.02``
  scaled by the learning rate), i.e. ``optax.adamw`` with a kernel mask. The rate is
  constant (MixMatch), or with ``end_lr`` decays linearly from ``lr`` to ``end_lr`` over
  ``total_steps`` and stays there (the Bilevel coreset paper's 1e-3 -> 1e-5 over 10^5
  iterations).
  """
  lr = check_number("lr", lr, low=0.0, include_low=False)
  weight_decay = check_number("weight_decay", weight_decay, low=0.0)
  if end_lr is None:
    return optax.adamw(lr, weight_decay=weight_decay, mask=kernel_mask)
  end_lr = check_number("end_lr", end_lr, low=0.0)
  check_positive_int("total_steps (with end_lr)", total_steps)
  schedule = adam_schedule(lr, end_lr=end_lr, total_steps=total_steps)
  return optax.adamw(schedule, weight_decay=weight_decay, mask=kernel_mask)


def named(name: str, *, total_steps: int, lr: float | None = None,
          weight_decay: float | None = None, end_lr: float | None = None
          ) -> optax.GradientTransformation:
  """The optimizer family ``name`` (``"sgd"`` or ``"adam"``) with its :data:`RECIPES` values
  where ``lr`` / ``weight_decay`` are None; ``end_lr`` is Adam's linear decay target."""
  if name not in RECIPES:
    raise UserInputError(f"optimizer must be one of {', '.join(map(repr, RECIPES))}, "
                         f"got {name!r}.")
  recipe = RECIPES[name]
  lr = recipe.lr if lr is None else lr
  weight_decay = recipe.weight_decay if weight_decay is None else weight_decay
  if name == "sgd":
    return sgd(lr, total_steps=total_steps, weight_decay=weight_decay)
  return adam(lr, weight_decay=weight_decay, end_lr=end_lr, total_steps=total_steps)
