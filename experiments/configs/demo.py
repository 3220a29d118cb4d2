"""The `make demo` experiment: NPC vs entropy vs random on the embedded 8×8 digits.

A small CNN trained with FixMatch; 2 seeds; 10 balanced labels, then 5 rounds of 10
queries (60 labels in the end). Finishes in minutes on a 2-core laptop CPU.

    assljax run --config experiments/configs/demo.py --workdir runs/demo
    assljax report runs/demo --out runs/demo/report
"""

from __future__ import annotations

from defaults import base_config


def get_config(arg: str | None = None):
  del arg
  config = base_config()
  config.experiment = "demo"
  config.dataset.name = "digits"
  config.model.name = "cnn"
  config.model.options = dict(channels=(16, 32, 32), hidden=64)
  config.ssl.algorithm = "fixmatch"
  config.ssl.batch_size = 32
  config.ssl.mu = 4
  config.ssl.total_steps = 400
  config.ssl.steps_per_round = 400
  # The reference 0.999 averages over ~1000 steps: longer than a whole round here.
  config.ssl.ema_decay = 0.99
  config.ssl.augment = dict(flip=False, pad=1, num_ops=2, cutout_fraction=0.25)
  config.al.update(initial_per_class=1, query_size=10, budget=60, mode="sequential")
  config.strategies = ["random", "npc", "entropy"]
  config.seeds = [0, 1]
  config.checkpoint_every = 400
  return config
