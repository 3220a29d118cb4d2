"""dynamicAL Tab. 1: query rounds R vs query size b at a fixed budget B = 1000, CIFAR-10 + CNN.

dynamicAL (Wang et al., NeurIPS 2022; ../shared/papers/003), Table 1 (§5.2, "The
performance ... with total budget size B = 1000"; B = b x R, §2.2), its "CIFAR10 + CNN"
column. The same facts, checked by a test, are in ``paper_tables.py``.

* The ``dynamical_cifar10`` protocol: tfds ``cifar10``, the PyTorch tutorial CNN, M = 500
  initial labels sampled i.i.d., supervised training continued across rounds at a constant
  lr of 0.001 (Adam, batch 128, no augmentation, 1,000 steps per round), 5 runs.
* Strategy: ``dynamicAL`` only (Tab. 1 reports dynamicAL alone).
* One run per row of Tab. 1, chosen with ``b=``: (R, b) = (10, 100), (4, 250), (2, 500),
  (1, 1000), i.e. 500 -> 1,500 labels in R queries of b. Tab. 1 reports the accuracy at
  1,500 labels: 36.84, 36.72, 36.71, 36.67 % for the four rows.

What still differs from the paper: as in ``dynamical_cifar10`` (optimizer, batch and
augmentation from the official code, a fixed 1,000 steps for "until convergence", raw
weights evaluated).

Arguments: ``b=100|250|500|1000`` (default 100, Tab. 1's first row), ``data=tfds|PATH`` (as in ``dynamical_cifar10``), ``runlocal`` (CPU-sized: a 2,000-image pool, 200 steps
per round, at most 2 queries, one seed).

    assljax run --config experiments/configs/dynamical_rounds.py:b=100 --workdir runs/dynamical_rounds_b100
    assljax run --config experiments/configs/dynamical_rounds.py:b=250 --workdir runs/dynamical_rounds_b250
    assljax run --config experiments/configs/dynamical_rounds.py:b=500 --workdir runs/dynamical_rounds_b500
    assljax run --config experiments/configs/dynamical_rounds.py:b=1000 --workdir runs/dynamical_rounds_b1000
    assljax report runs/dynamical_rounds_b* --out runs/dynamical_rounds_report
"""

from __future__ import annotations

from assljax.app import common

dynamical_cifar10 = common.sibling(__file__, "dynamical_cifar10")

BUDGET = 1000                                     # B = b x R beyond the initial 500
ROUNDS = {100: 10, 250: 4, 500: 2, 1000: 1}       # b -> R, Tab. 1's rows


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, b=100, data="tfds")
  b = common.choose("b", args["b"], tuple(ROUNDS))
  config = common.new_config(f"dynamical_rounds_b{b}")
  common.cifar10_source(config, args["data"])
  dynamical_cifar10.tutorial_cnn(config)
  dynamical_cifar10.protocol(config, b=b, queries=ROUNDS[b])
  dynamical_cifar10.add_strategies(config, ("dynamicAL",))
  if args["runlocal"]:
    common.runlocal(config, num_classes=10, rounds=min(2, ROUNDS[b]))
  return config
