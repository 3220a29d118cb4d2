"""CRC on SVHN: WRN-28-2 + Mean Teacher, query size Q = 20, group size G = 2.

Convergence rate control (Kong et al., ICLR 2021 submission / arXiv 2104.03525v1), the
SVHN comparison with Mean Teacher as the semi-supervised learner. The first query is a
random class-balanced set of 20 labels (2 per class); then rounds of Q = 20 labels
chosen by CRC (G = Q/10 = 2) or a baseline (random, entropy, least confidence, EGL).
Mean Teacher (DESIGN §5): EMA teacher 0.99 -> 0.999 after the ramp-up, MSE consistency
weight up to 100 with a sigmoid ramp-up over 16,384 steps; Nesterov SGD lr 0.03,
weight decay 5e-4; weak augmentation without flips (digits); retrained every round;
3 seeds. Uses tfds ``svhn_cropped`` (train split as the pool, without ``extra``).

Arguments: ``r=4`` (queries after the first one; default 4, i.e. 100 labels),
``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, a 2,000-image pool, 2 queries,
one seed).

    assljax run --config experiments/configs/crc_svhn.py --workdir runs/crc_svhn
    assljax run --config experiments/configs/crc_svhn.py:runlocal --workdir runs/crc_svhn_local
"""

from __future__ import annotations

import ml_collections

import common
from crc_cifar10 import BASELINES

Q = 20


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, r=4)
  rounds = common.positive("r", args["r"])
  config = common.new_config("crc_svhn")
  common.set_tfds(config, "svhn_cropped")
  config.model.name = "wrn-28-2"
  common.fixmatch(config, flip=False)  # optimizer, schedule, augmentation; then Mean Teacher
  config.ssl.algorithm = "mean_teacher"
  config.ssl.options = ml_collections.ConfigDict(dict(
      consistency=100.0, rampup_steps=16384, ema_during_rampup=0.99, ema_after_rampup=0.999))
  config.ssl.mu = 1
  config.al = dict(initial_per_class=Q // 10, query_size=Q, budget=Q + rounds * Q,
                   mode="sequential")
  for label in BASELINES:
    common.add_strategy(config, label)
  common.add_strategy(config, "crc", group_size=Q // 10)
  config.seeds = [0, 1, 2]
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
