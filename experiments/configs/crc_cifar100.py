"""CRC on CIFAR-100: WRN-28-8 + FixMatch, query size Q = 50, group size G = 5.

Convergence rate control (Kong et al., ICLR 2021 submission / arXiv 2104.03525v1), the
CIFAR-100 comparison. The first query is a random class-balanced set (one label per
class, 100 labels, the smallest balanced set on 100 classes); then rounds of Q = 50
labels chosen by CRC (G = Q/10 = 5) or a baseline (random, entropy, least confidence,
EGL), up to 400 labels (FixMatch's 400-label CIFAR-100 setting). FixMatch at the
reference settings with weight decay 1e-3 (DESIGN §5), retrained every round; 3 seeds.

Arguments: ``r=6`` (queries after the first one; default 6, i.e. 100 + 6 * 50 = 400
labels), ``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, a 2,000-image pool,
2 queries, one seed).

    assljax run --config experiments/configs/crc_cifar100.py --workdir runs/crc_cifar100
    assljax run --config experiments/configs/crc_cifar100.py:runlocal --workdir runs/crc_cifar100_local
"""

from __future__ import annotations

import common
from crc_cifar10 import BASELINES

Q = 50


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, r=6)
  rounds = common.positive("r", args["r"])
  config = common.new_config("crc_cifar100")
  common.set_tfds(config, "cifar100")
  config.model.name = "wrn-28-8"
  common.fixmatch(config, weight_decay=1e-3)
  config.al = dict(initial_per_class=1, query_size=Q, budget=100 + rounds * Q,
                   mode="sequential")
  for label in BASELINES:
    common.add_strategy(config, label)
  common.add_strategy(config, "crc", group_size=Q // 10)
  config.seeds = [0, 1, 2]
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=100)
  return config
