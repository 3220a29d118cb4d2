"""CRC on CIFAR-10: WRN-28-2 + FixMatch, query size Q in {50, 100}, group size G = Q/10.

Convergence rate control (Kong et al., "Better Optimization can Reduce Sample
Complexity: Active Semi-Supervised Learning via Convergence Rate Control", ICLR 2021
submission; arXiv 2104.03525v1 "Relieving the Plateau"), main CIFAR-10 comparison.
The first query is a random class-balanced set of Q labels (Q/10 per class); then
rounds of Q labels chosen by CRC (random disjoint groups of G = Q/10 pool samples
scored by the smallest positive eigenvalue of the NTK Gram over labeled + group; the
Q/G best groups) or by a baseline: random, entropy, least confidence, EGL. FixMatch at
the reference settings (DESIGN §5), retrained from scratch every round; 3 seeds.

Arguments (comma-separated): ``q=50`` or ``q=100`` (Q, default 50), ``r=4`` (queries
after the first one; default 4, i.e. 250 labels for Q = 50 and 500 for Q = 100),
``data=tfds|folder|PATH`` (tfds ``cifar10``, the ImageFolder copy at
``../shared/data/cifar10``, or an ImageFolder path), ``runlocal`` (CPU-sized: WRN-10-1,
200 steps per round, a 2,000-image pool, 2 queries, one seed).

    assljax run --config experiments/configs/crc_cifar10.py:q=50 --workdir runs/crc_cifar10_q50
    assljax run --config experiments/configs/crc_cifar10.py:q=100 --workdir runs/crc_cifar10_q100
    assljax run --config experiments/configs/crc_cifar10.py:runlocal --workdir runs/crc_cifar10
    assljax report runs/crc_cifar10_q50 --out runs/crc_cifar10_q50/report
"""

from __future__ import annotations

import common

BASELINES = ("random", "entropy", "confidence", "egl")


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, q=50, r=4, data="tfds")
  q = common.choose("q", args["q"], (50, 100))
  rounds = common.positive("r", args["r"])
  config = common.new_config(f"crc_cifar10_q{q}")
  common.cifar10_source(config, args["data"])
  config.model.name = "wrn-28-2"
  common.fixmatch(config)
  config.al = dict(initial_per_class=q // 10, query_size=q, budget=q + rounds * q,
                   mode="sequential")
  for label in BASELINES:
    common.add_strategy(config, label)
  common.add_strategy(config, "crc", group_size=q // 10)
  config.seeds = [0, 1, 2]
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
