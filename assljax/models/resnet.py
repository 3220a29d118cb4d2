"""ResNet-18, CIFAR variant (one of dynamicAL's target networks).

The common CIFAR port (kuangliu/pytorch-cifar, used by BADGE and dynamicAL): a 3x3
stem with 64 channels and no max-pool, four stages of two post-activation basic blocks
(widths 64/128/256/512, strides 1/2/2/2; convolutions without bias, each followed by
BatchNorm; a 1x1 convolution + BatchNorm shortcut where the shape changes), ReLU,
global average pooling and the linear ``head``. BatchNorm uses PyTorch's defaults
(momentum 0.1, i.e. running statistics keep 0.9 per step; epsilon 1e-5). ResNet-18 on
10 classes has 11,173,962 parameters.
"""

from __future__ import annotations

import jax
from flax import nnx

from assljax.models.core import register

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _bn(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(channels, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, rngs=rngs)


def _conv(c_in: int, c_out: int, kernel: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
  return nnx.Conv(c_in, c_out, (kernel, kernel), strides=(stride, stride), padding="SAME",
                  use_bias=False, rngs=rngs)


class BasicBlock(nnx.Module):
  """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""

  def __init__(self, c_in: int, c_out: int, stride: int, rngs: nnx.Rngs):
    self.conv1 = _conv(c_in, c_out, 3, stride, rngs)
    self.bn1 = _bn(c_out, rngs)
    self.conv2 = _conv(c_out, c_out, 3, 1, rngs)
    self.bn2 = _bn(c_out, rngs)
    if stride != 1 or c_in != c_out:
      self.shortcut_conv = _conv(c_in, c_out, 1, stride, rngs)
      self.shortcut_bn = _bn(c_out, rngs)
    else:
      self.shortcut_conv = None
      self.shortcut_bn = None

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    h = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=not train))
    h = self.bn2(self.conv2(h), use_running_average=not train)
    if self.shortcut_conv is not None:
      x = self.shortcut_bn(self.shortcut_conv(x), use_running_average=not train)
    return jax.nn.relu(h + x)


class ResNet(nnx.Module):
  """CIFAR ResNet with basic blocks; ``blocks=(2, 2, 2, 2)`` is ResNet-18."""

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...],
               blocks: tuple[int, ...] = (2, 2, 2, 2), width: int = 64):
    self.stem = _conv(input_shape[-1], width, 3, 1, rngs)
    self.stem_bn = _bn(width, rngs)
    layers, c_in = [], width
    for stage, count in enumerate(blocks):
      c_out = width * 2 ** stage
      for i in range(count):
        layers.append(BasicBlock(c_in, c_out, 2 if (stage > 0 and i == 0) else 1, rngs))
        c_in = c_out
    self.blocks = nnx.List(layers)
    self.head = nnx.Linear(c_in, num_classes, rngs=rngs)

  def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """``x`` (n, H, W, C) standardized -> (n, 8 * width)."""
    h = jax.nn.relu(self.stem_bn(self.stem(x), use_running_average=not train))
    for block in self.blocks:
      h = block(h, train=train)
    return h.mean(axis=(1, 2))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("resnet18")
def _resnet18(rngs, *, num_classes, input_shape):
  return ResNet(rngs, num_classes=num_classes, input_shape=input_shape, blocks=(2, 2, 2, 2))
