"""Exponential moving averages of weights (evaluation weights, Mean Teacher's teacher)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def ema_update(ema: PyTree, new: PyTree, decay: jax.Array | float) -> PyTree:
  """``decay * ema + (1 - decay) * new`` leaf by leaf, keeping each leaf's dtype.

  Args:
    ema, new: pytrees of the same structure (params or BatchNorm statistics).
    decay: scalar in [0, 1]; 0.999 is FixMatch's and MixMatch's evaluation EMA.

  Returns:
    The updated average, same structure and dtypes as ``ema``.
  """
  decay = jnp.asarray(decay, jnp.float32)

  def one(e, x):
    e32 = e.astype(jnp.float32)
    return (decay * e32 + (1.0 - decay) * x.astype(jnp.float32)).astype(e.dtype)

  return jax.tree_util.tree_map(one, ema, new)


def mean_teacher_decay(step: jax.Array, *, rampup_steps: int, during: float = 0.99,
                       after: float = 0.999) -> jax.Array:
  """Mean Teacher's EMA decay at ``step``: ``min(1 - 1 / (step + 1), d)``.

  ``d`` is ``during`` while ``step < rampup_steps`` and ``after`` from then on (the
  0.99 -> 0.999 schedule); the ``1 - 1/(step + 1)`` cap makes early averages a true
  mean of the weights seen so far.
  """
  step = jnp.asarray(step, jnp.float32)
  target = jnp.where(step < rampup_steps, jnp.float32(during), jnp.float32(after))
  return jnp.minimum(1.0 - 1.0 / (step + 1.0), target)
