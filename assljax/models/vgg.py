"""VGG-11 with BatchNorm, CIFAR variant (one of dynamicAL's target networks).

The common CIFAR port of VGG (kuangliu/pytorch-cifar, used by BADGE and dynamicAL):
``[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]`` where each number is a 3x3
convolution (with bias) -> BatchNorm -> ReLU and ``M`` a 2x2 max-pool, then a single
linear ``head`` on the 512 pooled channels. BatchNorm uses PyTorch's defaults
(momentum 0.1, i.e. running statistics keep 0.9 per step; epsilon 1e-5). On 32x32
inputs the last pool leaves 1x1 maps, so the global average pool used here equals the
reference's flatten; other input sizes still give 512 features. VGG-11 on 10 classes
has 9,231,114 parameters.
"""

from __future__ import annotations

import jax
from flax import nnx

from assljax.models._pooling import max_pool
from assljax.models.core import register

VGG11_LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


class VGG(nnx.Module):
  """``[Conv3x3 -> BN -> ReLU | MaxPool2] * layout -> global average pool -> head``."""

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...],
               layout: tuple = VGG11_LAYOUT):
    convs, norms, c_in = [], [], input_shape[-1]
    for item in layout:
      if item == "M":
        continue
      convs.append(nnx.Conv(c_in, int(item), (3, 3), padding="SAME", rngs=rngs))
      norms.append(nnx.BatchNorm(int(item), momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
                                 rngs=rngs))
      c_in = int(item)
    self.layout = tuple(layout)
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    self.head = nnx.Linear(c_in, num_classes, rngs=rngs)

  def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """``x`` (n, H, W, C) standardized -> (n, 512)."""
    layer = 0
    for item in self.layout:
      if item == "M":
        x = max_pool(x, padding="SAME")
      else:
        x = jax.nn.relu(self.norms[layer](self.convs[layer](x), use_running_average=not train))
        layer += 1
    return x.mean(axis=(1, 2))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("vgg11")
def _vgg11(rngs, *, num_classes, input_shape):
  return VGG(rngs, num_classes=num_classes, input_shape=input_shape, layout=VGG11_LAYOUT)


def _adaptive_avg_pool(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """PyTorch's ``AdaptiveAvgPool2d``: bin ``i`` averages rows ``floor(i H / n)`` to
  ``ceil((i + 1) H / n)``; a 1x1 map is repeated (VGG on 32x32 inputs)."""
  import math
  height, width = x.shape[1], x.shape[2]
  rows = []
  for i in range(size[0]):
    r0, r1 = (i * height) // size[0], math.ceil((i + 1) * height / size[0])
    cols = []
    for j in range(size[1]):
      c0, c1 = (j * width) // size[1], math.ceil((j + 1) * width / size[1])
      cols.append(x[:, r0:r1, c0:c1, :].mean(axis=(1, 2)))
    rows.append(jax.numpy.stack(cols, axis=1))
  return jax.numpy.stack(rows, axis=1)


class TorchvisionVGG(nnx.Module):
  """torchvision's ``vgg11`` layout (dynamicAL App. C.1: "the PyTorch official VGG-11").

  ``[Conv3x3 -> ReLU | MaxPool2] * layout`` (no BatchNorm), ``AdaptiveAvgPool2d(7, 7)``,
  then ``Dense(4096) -> ReLU -> Dense(4096) -> ReLU -> head``: 128,807,306 parameters on
  10 classes, as ``torchvision.models.vgg11(num_classes=10)``. torchvision's two
  ``Dropout(0.5)`` layers are left out: the model edge has no dropout randomness.
  """

  def __init__(self, rngs: nnx.Rngs, *, num_classes: int, input_shape: tuple[int, ...],
               layout: tuple = VGG11_LAYOUT):
    convs, c_in = [], input_shape[-1]
    for item in layout:
      if item != "M":
        convs.append(nnx.Conv(c_in, int(item), (3, 3), padding="SAME", rngs=rngs))
        c_in = int(item)
    self.layout = tuple(layout)
    self.convs = nnx.List(convs)
    self.fc1 = nnx.Linear(7 * 7 * c_in, 4096, rngs=rngs)
    self.fc2 = nnx.Linear(4096, 4096, rngs=rngs)
    self.head = nnx.Linear(4096, num_classes, rngs=rngs)

  def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no BatchNorm, dropout left out
    layer = 0
    for item in self.layout:
      if item == "M":
        x = max_pool(x)
      else:
        x = jax.nn.relu(self.convs[layer](x))
        layer += 1
    # torchvision flattens channels-first: (C, 7, 7) -> C * 49
    x = _adaptive_avg_pool(x, (7, 7)).transpose((0, 3, 1, 2))
    x = jax.nn.relu(self.fc1(x.reshape((x.shape[0], -1))))
    return jax.nn.relu(self.fc2(x))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("vgg11_torchvision")
def _vgg11_torchvision(rngs, *, num_classes, input_shape):
  return TorchvisionVGG(rngs, num_classes=num_classes, input_shape=input_shape)
