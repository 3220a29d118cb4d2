"""NPC zero-shot and single-shot acquisition (its Table 3) against sequential NPC.

The NPC protocols of ``npc_cifar10`` / ``npc_cifar100`` (WRN + FixMatch with DARP, a
random balanced initial set of one label per class, the same final budget: 70 labels
on CIFAR-10, 900 on CIFAR-100), with the whole budget beyond the initial labels bought

* ``npc``: sequentially, Q per round (the reference);
* ``npc_single_shot``: at once, after training on the initial labels;
* ``npc_zero_shot``: at once, before any training, with the randomly initialized
  network's NTK (NPC §5.4); its round 0 reports the untrained network;
* ``passive``: uniform random, sequentially (the baseline of every table).

Arguments: ``dataset=cifar10|cifar100`` (default cifar10), ``data=tfds|folder|PATH``
(CIFAR-10 only), ``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, a
2,000-image pool, two queries' worth of labels, one seed).

    assljax run --config experiments/configs/npc_shots.py --workdir runs/npc_shots_cifar10
    assljax run --config experiments/configs/npc_shots.py:dataset=cifar100 --workdir runs/npc_shots_cifar100
    assljax run --config experiments/configs/npc_shots.py:runlocal --workdir runs/npc_shots_local
"""

from __future__ import annotations

import common
from npc_cifar10 import npc_hparams, protocol


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, dataset="cifar10", data="tfds")
  dataset = common.choose("dataset", args["dataset"], ("cifar10", "cifar100"))
  config = common.new_config(f"npc_shots_{dataset}")
  if dataset == "cifar10":
    common.cifar10_source(config, args["data"])
  elif args["data"] != "tfds":
    raise ValueError("config argument data= applies to dataset=cifar10 only")
  protocol(config, dataset=dataset)
  common.add_strategy(config, "passive", name="random")
  hparams = npc_hparams(dataset)
  common.add_strategy(config, "npc", **hparams)
  common.add_strategy(config, "npc_single_shot", name="npc", mode="single_shot", **hparams)
  common.add_strategy(config, "npc_zero_shot", name="npc", mode="zero_shot", **hparams)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10 if dataset == "cifar10" else 100)
  return config
