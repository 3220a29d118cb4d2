"""Small CIFAR-tutorial-style CNN: three conv layers and a dense layer (dynamicAL)."""

from __future__ import annotations

import jax
from flax import nnx

from assljax.models.core import register


def _max_pool(x: jax.Array) -> jax.Array:
  return nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="SAME")


class CNN(nnx.Module):
  """``[Conv3x3 -> ReLU -> MaxPool2] * 3 -> Dense(hidden) -> ReLU -> head``."""

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...],
               channels: tuple[int, ...] = (32, 64, 64), hidden: int = 128):
    height, width, in_channels = input_shape
    convs, c_in = [], in_channels
    for c_out in channels:
      convs.append(nnx.Conv(c_in, c_out, (3, 3), padding="SAME", rngs=rngs))
      c_in = c_out
      height, width = -(-height // 2), -(-width // 2)
    self.convs = nnx.List(convs)
    self.dense = nnx.Linear(height * width * c_in, hidden, rngs=rngs)
    self.head = nnx.Linear(hidden, num_classes, rngs=rngs)

  def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no BatchNorm or dropout
    for conv in self.convs:
      x = _max_pool(jax.nn.relu(conv(x)))
    return jax.nn.relu(self.dense(x.reshape((x.shape[0], -1))))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("cnn")
def _cnn(rngs, *, num_classes, input_shape, channels=(32, 64, 64), hidden=128):
  return CNN(rngs, num_classes=num_classes, input_shape=input_shape,
             channels=tuple(channels), hidden=hidden)
