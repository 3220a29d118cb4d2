"""NPC Tab. 3: zero-shot and single-shot acquisition on CIFAR-10, Q in {30, 50}, NPC vs BADGE.

Neural pre-conditioning (Kong et al., NeurIPS 2022; ../shared/papers/001 and 002),
§5.4 and Table 3. The same facts, checked by a test, are in ``paper_tables.py``.

* The ``npc_cifar10`` protocol: tfds ``cifar10``, WRN-28-2, FixMatch + DARP (uniform target)
  at FixMatch's reference settings, 10 random class-balanced labels (1 per class),
  classifiers trained from scratch, 3 seeds.
* One query of Q = 30 or Q = 50 (argument ``q=``), so 10 -> 40 or 60 labels (Tab. 3's
  columns):
  - ``*_zero_shot``: the query is made by the randomly initialized network, before any
    training ("a randomly initialized (N_L = 0) model", §5.4; ``mode="zero_shot"``); its
    round 0 reports the untrained network;
  - ``*_single_shot``: the query is made by the model trained on the 10 initial labels
    (§5.4, Tab. 3 caption; ``mode="single_shot"``), the median of 5 trainings (§5.1,
    ``al.initial_trials = 5``).
* Strategies (Tab. 3's rows): ``npc`` and ``badge`` (§5.4: the two "selected based on
  their similarity"), each in both modes: ``npc_zero_shot``, ``npc_single_shot``,
  ``badge_zero_shot``, ``badge_single_shot``.

What still differs from the paper:
* ``al.initial_trials = 5`` applies to the first round that trains. For single-shot that is
  the 10-label model, as in §5.1; for zero-shot it is the model trained after the query
  (40 or 60 labels), whose accuracy is the one reported: the median of 5 trainings, where
  the paper presumably trained it once.
* SSL settings and DARP's schedule as in ``npc_cifar10`` (choices).

Arguments: ``q=30|50`` (default 30), ``data=tfds|PATH`` (as in ``npc_cifar10``),
``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, a 2,000-image pool, the same one
query, at most 3 initial trials, one seed).

    assljax run --config experiments/configs/npc_shots.py:q=30 --workdir runs/npc_shots_q30
    assljax run --config experiments/configs/npc_shots.py:q=50 --workdir runs/npc_shots_q50
    assljax run --config experiments/configs/npc_shots.py:runlocal --workdir runs/npc_shots_local
"""

from __future__ import annotations

from assljax.app import common

npc_cifar10 = common.sibling(__file__, "npc_cifar10")

QUERY_SIZES = (30, 50)
MODES = {"zero_shot": "zero_shot", "single_shot": "single_shot"}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, q=30, data="tfds")
  q = common.choose("q", args["q"], QUERY_SIZES)
  config = common.new_config(f"npc_shots_q{q}")
  common.cifar10_source(config, args["data"])
  npc_cifar10.protocol(config, dataset="cifar10", query_size=q, budget=10 + q)
  config.al.mode = "single_shot"
  for name in ("npc", "badge"):
    for suffix, mode in MODES.items():
      common.add_strategy(config, f"{name}_{suffix}", name=name, mode=mode)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10, rounds=1)
  return config
