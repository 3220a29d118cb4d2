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
        x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="SAME")
      else:
        x = jax.nn.relu(self.norms[layer](self.convs[layer](x), use_running_average=not train))
        layer += 1
    return x.mean(axis=(1, 2))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.features(x, train=train))


@register("vgg11")
def _vgg11(rngs, *, num_classes, input_shape):
  return VGG(rngs, num_classes=num_classes, input_shape=input_shape, layout=VGG11_LAYOUT)
