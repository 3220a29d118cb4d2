"""NPC Tab. 1: CIFAR-10, WRN-28-2 + FixMatch with DARP, Q0 = 10, Q = 20, 10 -> 70 labels.

Neural pre-conditioning (Kong et al., "A Neural Pre-Conditioning Active Learning
Algorithm to Reduce Label Complexity", NeurIPS 2022; ../shared/papers/001 and 002),
Table 1. The protocol and its sources (the same facts, checked by a test, are in
``paper_tables.py``):

* Data and model: tfds ``cifar10``; WRN-28-2 ("for all experiments", §5.1).
* Labels: Q0 = 10 random class-balanced labels (1 per class, §2.1 and §5.1), and the
  first-round model is the median of 5 trainings from different initializations
  (§5.1: "used the model that attained median performance across 5 trials";
  ``al.initial_trials = 5``); then three queries of Q = 20 (§5.1): 10 -> 30, 50, 70
  (Tab. 1's columns; the initial model's 57.64 % is in the caption).
* Strategies (Tab. 1's rows, §5.2): ``passive`` (uniform random), ``margin``, ``albl``
  (a two-armed bandit over least confidence and Coreset), ``badge`` and ``npc`` (m random
  candidate batches of Q, m = the number of unlabeled samples, "m = O(N_U)" §3.4; the
  batch maximizing lambda_min of the traced last-layer NTK Gram over labeled + batch).
* SSL: FixMatch + DARP with a uniform target distribution (§2.1, §2.2.2, §5.1) at FixMatch's
  reference settings (Nesterov SGD lr 0.03, momentum 0.9, weight decay 5e-4, EMA 0.999,
  batch 64, mu = 7, threshold 0.95, lambda_u = 1, cosine over 2^20 steps); classifiers
  trained from scratch after each acquisition (§5.1); 3 seeds ("averaged over 3 trials").

What still differs from the paper:
* §5.1 "adopt[s] all SSL-related configurations from (Oliver et al., 2018)" without
  listing them; FixMatch's own reference settings (DESIGN §5) are used.
* DARP's schedule is not given in the paper: refinement every 10 steps after a warm-up of
  40 % of the steps, 10 solver iterations (DARP's code warms up for ``--warm 200`` of 500
  epochs).
* Tab. 3's zero- and single-shot runs are ``npc_shots``.

Arguments: ``data=tfds|PATH`` (tfds ``cifar10``, or the path of an ImageFolder
``PATH/{train,test}/<class>/*``), ``runlocal`` (CPU-sized: WRN-10-1,
200 steps per round, a 2,000-image pool, 2 queries, at most 3 initial trials, one seed).

    assljax run --config experiments/configs/npc_cifar10.py --workdir runs/npc_cifar10
    assljax run --config experiments/configs/npc_cifar10.py:runlocal --workdir runs/npc_cifar10_local
"""

from __future__ import annotations

from assljax.app import common

INITIAL_TRIALS = 5   # §5.1: the median of 5 first-round models


def add_baselines(config) -> None:
  """§5.2's baselines: passive (uniform random), margin, two-armed ALBL, BADGE."""
  common.add_strategy(config, "passive", name="random")
  common.add_strategy(config, "margin")
  common.add_strategy(config, "albl", experts=common.ALBL_TWO_ARMS)
  common.add_strategy(config, "badge")


def protocol(config, *, dataset: str, query_size: int, budget: int):
  """The NPC protocol on ``dataset`` ("cifar10" or "cifar100"; data source set by the
  caller): WRN-28-2, FixMatch + DARP, 1 random balanced label per class with the median
  of 5 first-round models, queries of ``query_size`` up to ``budget``, 3 seeds."""
  config.model.name = "wrn-28-2"
  common.fixmatch(config, darp=True, weight_decay=1e-3 if dataset == "cifar100" else None)
  config.al.update(initial_per_class=1, query_size=query_size, budget=budget,
                   mode="sequential", initial_trials=INITIAL_TRIALS,
                   initial_sampling="balanced")
  config.seeds = [0, 1, 2]


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, data="tfds")
  config = common.new_config("npc_cifar10")
  common.cifar10_source(config, args["data"])
  protocol(config, dataset="cifar10", query_size=20, budget=70)
  add_baselines(config)
  common.add_strategy(config, "npc")
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
