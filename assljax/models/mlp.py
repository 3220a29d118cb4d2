"""Fully connected ReLU network, the smallest model family (digits, toy problems)."""

from __future__ import annotations

import math

import jax
from flax import nnx

from assljax.models.core import register


class MLP(nnx.Module):
  """``input -> [Dense(width) -> ReLU] * depth -> head``; features are the last hidden."""

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...],
               width: int = 256, depth: int = 2):
    in_dim = math.prod(input_shape)
    dims = [in_dim] + [width] * depth
    self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
    self.head = nnx.Linear(dims[-1], num_classes, rngs=rngs)

  def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no BatchNorm or dropout
    h = x.reshape((x.shape[0], -1))
    for layer in self.hidden:
      h = jax.nn.relu(layer(h))
    return h

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("mlp")
def _mlp(rngs, *, num_classes, input_shape, width=256, depth=2):
  return MLP(rngs, num_classes=num_classes, input_shape=input_shape, width=width, depth=depth)
