"""The `make demo` experiment: NPC against random on the embedded 8×8 digits, paired by seed.

A reduced copy of ``benchmark_digits`` (its recipe: the small CNN, FixMatch with DARP,
retrained every round) that finishes in minutes on 2 CPU cores: 1,000 training steps
per round, one label per class (10) then 2 queries of 10 (30 labels), NPC and random
sampling, 5 seeds. Runs with the same seed share their initial labels and weight
initializations, so `assljax report` compares NPC with random seed by seed (the paired
difference, its 95 % interval and wins/ties/losses) and says in words whether the
difference is distinguishable from noise at this number of seeds.

Five seeds and three rounds separate only large effects. The full benchmark (nine
strategies, 10 → 60 labels, 8 seeds, 2,000 steps per round) is
``experiments/configs/benchmark_digits.py``; its results are committed in
``experiments/results/benchmark_digits/``.

    assljax run --config experiments/configs/demo.py --workdir runs/demo
    assljax report runs/demo --out runs/demo/report
"""

from __future__ import annotations

from assljax.app import common

benchmark_digits = common.sibling(__file__, "benchmark_digits")

STEPS = 1000


def get_config(arg: str | None = None):
  del arg
  config = common.new_config("demo")
  benchmark_digits.recipe(config, steps=STEPS)
  config.al.update(initial_per_class=1, query_size=10, budget=30, mode="sequential")
  common.add_strategy(config, "random")
  common.add_strategy(config, "npc")
  config.seeds = [0, 1, 2, 3, 4]
  config.progress = False
  return config
