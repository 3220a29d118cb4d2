"""dynamicAL on SVHN: VGG-11, supervised, 500 initial labels, queries of b.

dynamicAL (Wang et al., NeurIPS 2022), the SVHN / VGG-11 protocol: the recipe of
``dynamical_cifar10`` (500 random balanced initial labels, 9 queries of b = 250 by
default, supervised training continued across rounds with Adam at lr 0.001, batch 128, no
augmentation, 1,000 steps per round, 3 seeds; baselines random, coreset, least
confidence, margin, entropy, ALBL, BADGE) on tfds ``svhn_cropped`` (train split as the
pool, without ``extra``) with VGG-11 (BatchNorm, global average pooling; BatchNorm in
eval mode for every gradient dynamicAL takes). The training recipe is
``dynamical_cifar10``'s.

Arguments: ``b=250|500|1000`` (default 250), ``r=9`` (queries), ``runlocal`` (CPU-sized:
a 2,000-image pool, 200 steps per round, 2 queries, one seed; VGG-11 has no smaller
variant, so it stays).

    assljax run --config experiments/configs/dynamical_svhn.py --workdir runs/dynamical_svhn
    assljax run --config experiments/configs/dynamical_svhn.py:runlocal --workdir runs/dynamical_svhn_local
"""

from __future__ import annotations

import common
from dynamical_cifar10 import QUERY_SIZES, add_strategies, protocol


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, b=250, r=9)
  b = common.choose("b", args["b"], QUERY_SIZES)
  rounds = common.positive("r", args["r"])
  config = common.new_config(f"dynamical_svhn_b{b}")
  common.set_tfds(config, "svhn_cropped")
  config.model.name = "vgg11"
  protocol(config, b=b, rounds=rounds)
  add_strategies(config)
  if args["runlocal"]:
    common.runlocal(config, num_classes=10)
  return config
