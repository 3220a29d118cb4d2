"""Small CNNs: ``"cnn"`` (three 3x3 conv layers and a dense layer) and ``"tutorial_cnn"``
(the PyTorch CIFAR-10 tutorial network that dynamicAL's App. C.1 uses)."""

from __future__ import annotations

import jax
from flax import nnx

from assljax._validation import UserInputError
from assljax.models._pooling import max_pool
from assljax.models.core import register


class CNN(nnx.Module):
  """``[AvgPool(input_pool)] -> [Conv3x3 -> ReLU -> MaxPool2] * 3 -> Dense(hidden) -> ReLU
  -> head``.

  ``input_pool`` (default 1: none) averages ``input_pool x input_pool`` input pixels
  first, a cheap way to train on CPU at a quarter of the convolution cost (e.g. 32x32
  spectrograms seen as 16x16).
  """

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...],
               channels: tuple[int, ...] = (32, 64, 64), hidden: int = 128,
               input_pool: int = 1):
    height, width, in_channels = input_shape
    if isinstance(input_pool, bool) or not isinstance(input_pool, int) or input_pool < 1 \
        or height % input_pool or width % input_pool:
      raise UserInputError(f"input_pool must be a positive integer dividing the input size "
                           f"{height}x{width}, got {input_pool!r}")
    self.input_pool = input_pool
    height, width = height // input_pool, width // input_pool
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
    if self.input_pool > 1:
      window = (self.input_pool, self.input_pool)
      x = nnx.avg_pool(x, window_shape=window, strides=window, padding="VALID")
    for conv in self.convs:
      x = max_pool(jax.nn.relu(conv(x)), padding="SAME")
    return jax.nn.relu(self.dense(x.reshape((x.shape[0], -1))))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("cnn")
def _cnn(rngs, *, num_classes, input_shape, channels=(32, 64, 64), hidden=128, input_pool=1):
  return CNN(rngs, num_classes=num_classes, input_shape=input_shape,
             channels=tuple(channels), hidden=hidden, input_pool=input_pool)


class TutorialCNN(nnx.Module):
  """The PyTorch CIFAR-10 tutorial network, dynamicAL's "simple CNN" (its App. C.1).

  ``Conv5x5(6) -> ReLU -> MaxPool2 -> Conv5x5(16) -> ReLU -> MaxPool2 -> Dense(120) ->
  ReLU -> Dense(84) -> ReLU -> head``, convolutions without padding (PyTorch's
  ``nn.Conv2d`` default), so 32x32x3 inputs give 5x5x16 = 400 features before the dense
  layers and 62,006 parameters on 10 classes.
  """

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...]):
    height, width, in_channels = input_shape
    self.conv1 = nnx.Conv(in_channels, 6, (5, 5), padding="VALID", rngs=rngs)
    self.conv2 = nnx.Conv(6, 16, (5, 5), padding="VALID", rngs=rngs)
    for _ in range(2):
      height, width = (height - 4) // 2, (width - 4) // 2
    if height < 1 or width < 1:
      raise UserInputError(f"the tutorial CNN needs inputs of at least 16x16, got {input_shape}")
    self.fc1 = nnx.Linear(height * width * 16, 120, rngs=rngs)
    self.fc2 = nnx.Linear(120, 84, rngs=rngs)
    self.head = nnx.Linear(84, num_classes, rngs=rngs)

  def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no BatchNorm or dropout
    x = max_pool(jax.nn.relu(self.conv1(x)))
    x = max_pool(jax.nn.relu(self.conv2(x)))
    x = jax.nn.relu(self.fc1(x.reshape((x.shape[0], -1))))
    return jax.nn.relu(self.fc2(x))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("tutorial_cnn")
def _tutorial_cnn(rngs, *, num_classes, input_shape):
  return TutorialCNN(rngs, num_classes=num_classes, input_shape=input_shape)
