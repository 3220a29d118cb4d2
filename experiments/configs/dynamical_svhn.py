"""dynamicAL App. E Tab. 6 / 7 (and Fig. 3): SVHN, torchvision's VGG-11, 500 i.i.d. labels, b.

dynamicAL (Wang et al., NeurIPS 2022; ../shared/papers/003), App. E.3 Table 6 (b = 500;
Fig. 3 middle plots it) and Table 7 (b = 1000). The protocol and its sources (the same
facts, checked by a test, are in ``paper_tables.py``):

* Data: tfds ``svhn_cropped`` (train split, 73,257 images, as the pool; 26,032 test
  images).
* Model: "the Pytorch Offical implementation of VGG-11" (App. C.1), torchvision's
  ``vgg11`` layout (``vgg11_torchvision``: eight 3x3 convolutions without BatchNorm,
  adaptive average pooling to 7x7, dense 4096, dense 4096, head; 128.8 M parameters).
* Labels: M = 500 initial labels sampled i.i.d. (§2.2, §5.1), then 9 queries of b:
  b = 500 -> 500, 1,000, ..., 5,000 labels (Tab. 6), b = 1000 -> 500, 1,500, ..., 9,500
  (Tab. 7).
* Strategies and training: as ``dynamical_cifar10`` (App. E.1's baselines with two-armed
  ALBL, and dynamicAL; supervised, continued across rounds, constant lr 0.001, Adam,
  batch 128, no augmentation, 1,000 steps per round, 5 runs).

What still differs from the paper:
* torchvision's two Dropout(0.5) layers are left out (the library's model edge has no
  dropout).
* The pool is SVHN's train split without ``extra`` (the paper does not say).
* As in ``dynamical_cifar10``: Adam / batch 128 / no augmentation from the official code,
  1,000 steps per round for "until convergence", raw weights evaluated.

Arguments: ``b=500|1000`` (Tab. 6 or Tab. 7; default 500), ``runlocal`` (CPU-sized: a
2,000-image pool, 200 steps per round, 2 queries, one seed, and the CIFAR VGG-11 ``vgg11``
-- the same eight-convolution stack with BatchNorm and global average pooling, 9.2 M
parameters -- instead of torchvision's 128.8 M-parameter layout: dynamicAL's per-sample
gradients of 128.8 M parameters take 16 GB per chunk of 32 samples, beyond a CPU machine,
and ``vgg11_torchvision`` has no smaller width).

    assljax run --config experiments/configs/dynamical_svhn.py --workdir runs/dynamical_svhn
    assljax run --config experiments/configs/dynamical_svhn.py:b=1000 --workdir runs/dynamical_svhn_b1000
    assljax run --config experiments/configs/dynamical_svhn.py:runlocal --workdir runs/dynamical_svhn_local
"""

from __future__ import annotations

import ml_collections

from assljax.app import common

dynamical_cifar10 = common.sibling(__file__, "dynamical_cifar10")

QUERY_SIZES = (500, 1000)   # Tab. 6, Tab. 7


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, b=500)
  b = common.choose("b", args["b"], QUERY_SIZES)
  config = common.new_config(f"dynamical_svhn_b{b}")
  common.set_tfds(config, "svhn_cropped")
  config.model.name = "vgg11_torchvision"
  config.model.options = ml_collections.ConfigDict()
  dynamical_cifar10.protocol(config, b=b, queries=dynamical_cifar10.QUERIES)
  dynamical_cifar10.add_strategies(config)
  if args["runlocal"]:
    config.model.name = "vgg11"   # the VGG-11 code path at CPU cost (see above)
    common.runlocal(config, num_classes=10)
  return config
