"""NPC Tab. 2: CIFAR-100, WRN-28-2 + FixMatch with DARP, Q0 = 100, Q = 200, 100 -> 900 labels.

Neural pre-conditioning (Kong et al., NeurIPS 2022; ../shared/papers/001 and 002),
Table 2. The protocol and its sources (the same facts, checked by a test, are in
``paper_tables.py``):

* Data and model: tfds ``cifar100``; WRN-28-2 ("for all experiments", §5.1).
* Labels: Q0 = 100 random class-balanced labels (1 per class, §2.1 and §5.1; Tab. 2
  caption), the first-round model being the median of 5 trainings (§5.1,
  ``al.initial_trials = 5``); then four queries of Q = 200 (§5.1): 100 -> 300, 500, 700,
  900 (Tab. 2's columns; the initial model's 21.29 % is in the caption).
* Strategies (Tab. 2's rows, §5.2): ``passive`` (uniform random), ``margin``, ``albl``
  (two arms: least confidence and Coreset), ``badge``, ``npc`` scored as the paper
  scores, by the plain smallest eigenvalue of the traced last-layer NTK Gram; and, an
  EXTRA row not in the paper, ``npc_positive_only``: NPC ranking candidates by the
  smallest *positive* eigenvalue (``positive_only=True``).
* SSL: FixMatch + DARP with a uniform target (§2.1, §5.1) at FixMatch's reference settings
  with its CIFAR-100 weight decay 1e-3 (Nesterov SGD lr 0.03, EMA 0.999, batch 64, mu = 7,
  threshold 0.95, lambda_u = 1, cosine over 2^20 steps); trained from scratch after each
  acquisition; 3 seeds.

Why the extra row: the traced last-layer NTK of WRN-28-2 has rank at most d + 1 = 129
(d = 128 penultimate features), and labeled + candidates is already 100 + 200 = 300 at the
first query. Every candidate Gram is then singular, its plain lambda_min is 0 for all
candidates, and plain NPC returns its first candidate, a uniformly random batch (the
library's documented behaviour). The paper's traced last-layer Gram has the same rank, and
the paper does not say how it handled this.

What still differs from the paper:
* §5.1's "SSL-related configurations from (Oliver et al., 2018)" are not listed; FixMatch's
  reference settings are used, with FixMatch's CIFAR-100 weight decay 1e-3 (a choice; the
  paper states no weight decay).
* DARP's schedule (refinement every 10 steps after a 40 % warm-up) is a choice, as in
  ``npc_cifar10``.

Arguments: ``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, a 2,000-image pool,
2 queries, at most 3 initial trials, one seed).

    assljax run --config experiments/configs/npc_cifar100.py --workdir runs/npc_cifar100
    assljax run --config experiments/configs/npc_cifar100.py:runlocal --workdir runs/npc_cifar100_local
"""

from __future__ import annotations

from assljax.app import common

npc_cifar10 = common.sibling(__file__, "npc_cifar10")


def get_config(arg: str | None = None):
  args = common.parse_arg(arg)
  config = common.new_config("npc_cifar100")
  common.set_tfds(config, "cifar100")
  npc_cifar10.protocol(config, dataset="cifar100", query_size=200, budget=900)
  npc_cifar10.add_baselines(config)
  common.add_strategy(config, "npc")
  common.add_strategy(config, "npc_positive_only", name="npc", positive_only=True)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=100)
  return config
