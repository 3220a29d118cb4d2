"""dynamicAL, its Table 1: number of query rounds vs query batch size b on CIFAR-10.

The ``dynamical_cifar10`` protocol (CNN, supervised training continued across rounds,
lr 0.001, 500 random balanced initial labels; dynamicAL and the same baselines) with
the total budget held fixed at 500 + 3,000 labels, so that the batch size sets the
number of rounds: b = 250 -> 12 rounds, b = 500 -> 6, b = 1000 -> 3. One run per b;
the table is read off the learning curves (``assljax report`` over the three workdirs).

Arguments: ``b=250|500|1000`` (default 250), ``total=3000`` (labels bought after the
initial 500; must be a multiple of b), ``data=tfds|folder|PATH`` (as in
``dynamical_cifar10``), ``runlocal`` (CPU-sized: a 2,000-image pool, 200 steps per
round, 2 queries, one seed).

    assljax run --config experiments/configs/dynamical_rounds.py:b=250 --workdir runs/dynamical_rounds_b250
    assljax run --config experiments/configs/dynamical_rounds.py:b=500 --workdir runs/dynamical_rounds_b500
    assljax run --config experiments/configs/dynamical_rounds.py:b=1000 --workdir runs/dynamical_rounds_b1000
    assljax report runs/dynamical_rounds_b250 runs/dynamical_rounds_b500 runs/dynamical_rounds_b1000 --out runs/dynamical_rounds_report
"""

from __future__ import annotations

import ml_collections

import common
from dynamical_cifar10 import QUERY_SIZES, add_strategies, protocol


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, b=250, total=3000, data="tfds")
  b = common.choose("b", args["b"], QUERY_SIZES)
  total = common.positive("total", args["total"])
  if total % b:
    raise ValueError(f"config argument total={total} is not a multiple of b={b}")
  config = common.new_config(f"dynamical_rounds_b{b}")
  common.cifar10_source(config, args["data"])
  config.model.name = "cnn"
  config.model.options = ml_collections.ConfigDict(dict(channels=(32, 64, 64), hidden=128))
  protocol(config, b=b, rounds=total // b)
  add_strategies(config)
  if args["runlocal"]:
    common.runlocal(config, num_classes=10)
  return config
