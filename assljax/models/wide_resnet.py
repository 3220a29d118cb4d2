"""Wide ResNet as in FixMatch's reference (WRN-28-2 / WRN-28-8).

3x3 stem with 16 channels; three stages of ``(depth - 4) / 6`` pre-activation blocks of
widths ``16k, 32k, 64k`` (32/64/128 for k = 2) with strides 1, 2, 2; BatchNorm with
momentum 0.999 (TensorFlow convention: running statistics move by 0.001 per step);
LeakyReLU(0.1); 1x1 projection shortcut where the width or stride changes; the first
block activates before the residual split. Then BN, LeakyReLU, global average pooling
and the ``head``. WRN-28-2 on 10 classes has 1,467,610 parameters.
"""

from __future__ import annotations

import jax
from flax import nnx

from assljax._validation import UserInputError
from assljax.models.core import register

_BN_MOMENTUM = 0.999
_BN_EPSILON = 1e-3
_LEAKY_SLOPE = 0.1
# He-normal on fan-out, as in the reference (kaiming_normal_, mode="fan_out").
_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
_dense_init = nnx.initializers.glorot_normal()


def _act(x: jax.Array) -> jax.Array:
  return jax.nn.leaky_relu(x, _LEAKY_SLOPE)


def _bn(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(channels, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, rngs=rngs)


def _conv(c_in: int, c_out: int, kernel: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
  return nnx.Conv(c_in, c_out, (kernel, kernel), strides=(stride, stride), padding="SAME",
                  use_bias=False, kernel_init=_conv_init, rngs=rngs)


class Block(nnx.Module):
  """Pre-activation residual block."""

  def __init__(self, c_in: int, c_out: int, stride: int, activate_before_residual: bool,
               rngs: nnx.Rngs):
    self.bn1 = _bn(c_in, rngs)
    self.conv1 = _conv(c_in, c_out, 3, stride, rngs)
    self.bn2 = _bn(c_out, rngs)
    self.conv2 = _conv(c_out, c_out, 3, 1, rngs)
    self.shortcut = (_conv(c_in, c_out, 1, stride, rngs)
                     if (c_in != c_out or stride != 1) else None)
    self.activate_before_residual = activate_before_residual

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    h = _act(self.bn1(x, use_running_average=not train))
    if self.activate_before_residual:
      x = h
    h = self.conv1(h)
    h = self.conv2(_act(self.bn2(h, use_running_average=not train)))
    return h + (self.shortcut(x) if self.shortcut is not None else x)


class WideResNet(nnx.Module):
  """WRN-depth-widen_factor with the FixMatch reference layout."""

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...],
               depth: int = 28, widen_factor: int = 2):
    if (depth - 4) % 6:
      raise UserInputError(f"WRN depth must be 6n + 4, got {depth}")
    blocks_per_stage = (depth - 4) // 6
    widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
    self.stem = _conv(input_shape[-1], 16, 3, 1, rngs)
    blocks, c_in = [], 16
    for stage, (c_out, stride) in enumerate(zip(widths, (1, 2, 2))):
      for i in range(blocks_per_stage):
        blocks.append(Block(c_in, c_out, stride if i == 0 else 1,
                            activate_before_residual=(stage == 0 and i == 0), rngs=rngs))
        c_in = c_out
    self.blocks = nnx.List(blocks)
    self.bn = _bn(c_in, rngs)
    self.head = nnx.Linear(c_in, num_classes, kernel_init=_dense_init, rngs=rngs)

  def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.stem(x)
    for block in self.blocks:
      h = block(h, train=train)
    h = _act(self.bn(h, use_running_average=not train))
    return h.mean(axis=(1, 2))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("wrn")
def _wrn(rngs, *, num_classes, input_shape, depth=28, widen_factor=2):
  return WideResNet(rngs, num_classes=num_classes, input_shape=input_shape, depth=depth,
                    widen_factor=widen_factor)


@register("wrn-28-2")
def _wrn_28_2(rngs, *, num_classes, input_shape):
  return WideResNet(rngs, num_classes=num_classes, input_shape=input_shape, depth=28,
                    widen_factor=2)


@register("wrn-28-8")
def _wrn_28_8(rngs, *, num_classes, input_shape):
  return WideResNet(rngs, num_classes=num_classes, input_shape=input_shape, depth=28,
                    widen_factor=8)
