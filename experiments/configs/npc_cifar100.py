"""NPC on CIFAR-100: WRN-28-8 + FixMatch with DARP, 100 -> 900 labels in queries of 200.

Neural pre-conditioning (Kong et al., NeurIPS 2022), the CIFAR-100 protocol: a random
class-balanced initial set Q0 = 100 (one per class), then four queries of Q = 200 (100,
300, 500, 700, 900 labels) by NPC or a baseline (passive, margin, ALBL, BADGE).
FixMatch + DARP at the reference settings with weight decay 1e-3 (DESIGN §5),
retrained every round; 3 seeds. NPC ranks candidates by the smallest *positive*
eigenvalue here: the traced last-layer NTK of WRN-28-8 has rank 513 < l + Q from the
third query on, where the plain lambda_min is 0 for every candidate (see
``npc_cifar10.npc_hparams``).

Arguments: ``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, a 2,000-image pool,
2 queries, one seed).

    assljax run --config experiments/configs/npc_cifar100.py --workdir runs/npc_cifar100
    assljax run --config experiments/configs/npc_cifar100.py:runlocal --workdir runs/npc_cifar100_local
"""

from __future__ import annotations

import common
from npc_cifar10 import BASELINES, npc_hparams, protocol


def get_config(arg: str | None = None):
  args = common.parse_arg(arg)
  config = common.new_config("npc_cifar100")
  protocol(config, dataset="cifar100")
  for label, name in BASELINES.items():
    common.add_strategy(config, label, name=name)
  common.add_strategy(config, "npc", **npc_hparams("cifar100"))
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=100)
  return config
