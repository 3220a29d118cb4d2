"""NPC on CIFAR-10: WRN-28-2 + FixMatch with DARP, 10 -> 70 labels in queries of 20.

Neural pre-conditioning (Kong et al., "A Neural Pre-Conditioning Active Learning
Algorithm to Reduce Label Complexity", NeurIPS 2022), the CIFAR-10 protocol: a random
class-balanced initial set Q0 = 10 (one per class), then three queries of Q = 20 (10,
30, 50, 70 labels), each picked by NPC (m random candidate batches of Q, m = number of
unlabeled samples; the batch maximizing the smallest eigenvalue of the last-layer NTK
Gram over labeled + batch) or a baseline: passive (uniform random), margin, ALBL,
BADGE. FixMatch + DARP at the reference settings (DESIGN §5; DARP refines every 10
steps after a warm-up of 40% of the steps, towards the uniform class distribution),
retrained every round; 3 seeds. The zero- and single-shot variants are ``npc_shots``.

Arguments: ``data=tfds|folder|PATH`` (tfds ``cifar10``, the ImageFolder copy at
``../shared/data/cifar10``, or an ImageFolder path), ``runlocal`` (CPU-sized: WRN-10-1,
200 steps per round, a 2,000-image pool, 2 queries, one seed).

    assljax run --config experiments/configs/npc_cifar10.py --workdir runs/npc_cifar10
    assljax run --config experiments/configs/npc_cifar10.py:runlocal --workdir runs/npc_cifar10_local
"""

from __future__ import annotations

import common

# label -> registry name: "passive" is uniform random sampling.
BASELINES = {"passive": "random", "margin": "margin", "albl": "albl", "badge": "badge"}


def npc_hparams(dataset: str) -> dict:
  """NPC's hyperparameters on ``dataset``: m = number of unlabeled samples (the default).

  On CIFAR-100 the traced last-layer NTK of WRN-28-8 has rank d + 1 = 513 (65 for the
  runlocal WRN-10-1), below l + Q from the third query on (500 + 200 = 700 labeled +
  candidates), where every candidate Gram is singular and the plain lambda_min ranks all
  candidates equal (NPC would return a random batch); there NPC ranks by the smallest
  *positive* eigenvalue instead (``positive_only=True``).
  """
  return {"positive_only": True} if dataset == "cifar100" else {}


def protocol(config, *, dataset: str):
  """The NPC protocol of ``dataset`` ("cifar10" or "cifar100"): data, model, FixMatch +
  DARP and the label schedule (no strategies)."""
  if dataset == "cifar10":
    config.model.name = "wrn-28-2"
    common.fixmatch(config, darp=True)
    config.al = dict(initial_per_class=1, query_size=20, budget=70, mode="sequential")
  else:
    common.set_tfds(config, "cifar100")
    config.model.name = "wrn-28-8"
    common.fixmatch(config, darp=True, weight_decay=1e-3)
    config.al = dict(initial_per_class=1, query_size=200, budget=900, mode="sequential")
  config.seeds = [0, 1, 2]


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, data="tfds")
  config = common.new_config("npc_cifar10")
  common.cifar10_source(config, args["data"])
  protocol(config, dataset="cifar10")
  for label, name in BASELINES.items():
    common.add_strategy(config, label, name=name)
  common.add_strategy(config, "npc", **npc_hparams("cifar10"))
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
