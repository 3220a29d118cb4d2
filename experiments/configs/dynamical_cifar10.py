"""dynamicAL on CIFAR-10: the small CNN, supervised, 500 initial labels, queries of b.

dynamicAL (Wang et al., "Deep Active Learning by Leveraging Training Dynamics",
NeurIPS 2022), the CIFAR-10 / CNN protocol: a random class-balanced initial set of 500
labels (50 per class), then 9 queries of b labels (b = 250 by default; 500 + 9 * 250 =
2,750 labels) picked by dynamicAL (pseudo-labels y = argmax f; score
||grad l(x, y)||^2 + 2 grad l(x, y)^T sum_S grad l over all parameters; top b) or a
baseline: random, coreset (k-center greedy), least confidence, margin, entropy, ALBL,
BADGE. Supervised training on the labeled set only, *continued* across rounds (no
re-initialization) with Adam at lr 0.001 (the official code's optimizer) and no weight
decay, labeled batch 128, no data augmentation (the official code normalizes and nothing
else), 1,000 steps per round; 3 seeds. The optimizer state restarts every round.

Arguments (comma-separated): ``b=250|500|1000`` (query size, default 250), ``r=9``
(queries, default 9), ``data=tfds|folder|PATH`` (tfds ``cifar10``; ``folder``: the
ImageFolder copy at ``../shared/data/cifar10``, resolved from this file's location, which
needs no tensorflow-datasets preparation and is what the CPU reproduction uses; or an
ImageFolder path), ``runlocal`` (CPU-sized: a 2,000-image pool, 200 steps per round,
2 queries, one seed; the same CNN, which is already small).

    assljax run --config experiments/configs/dynamical_cifar10.py --workdir runs/dynamical_cifar10
    assljax run --config experiments/configs/dynamical_cifar10.py:data=folder --workdir runs/dynamical_cifar10
    assljax run --config experiments/configs/dynamical_cifar10.py:data=folder,runlocal --workdir runs/dynamical_local
"""

from __future__ import annotations

import ml_collections

import common

# label -> registry name
BASELINES = {"random": "random", "coreset": "coreset", "confidence": "confidence",
             "margin": "margin", "entropy": "entropy", "albl": "albl", "badge": "badge"}
QUERY_SIZES = (250, 500, 1000)
INITIAL_PER_CLASS = 50
STEPS_PER_ROUND = 1000


def protocol(config, *, b: int, rounds: int) -> None:
  """The dynamicAL training recipe and label schedule (no data, model or strategies)."""
  config.ssl.algorithm = "supervised"
  config.ssl.options = ml_collections.ConfigDict()
  config.ssl.batch_size = 128
  config.ssl.mu = None
  config.ssl.optimizer = "adam"
  config.ssl.lr = 0.001
  config.ssl.weight_decay = 0.0
  config.ssl.total_steps = STEPS_PER_ROUND
  config.ssl.steps_per_round = STEPS_PER_ROUND
  # Evaluate the trained weights themselves (EMA decay 0 copies them every step).
  config.ssl.ema_decay = 0.0
  config.ssl.reinit = False
  config.ssl.augment = ml_collections.ConfigDict(dict(flip=False, pad=0, num_ops=0,
                                                      cutout_fraction=0.0))
  config.al = dict(initial_per_class=INITIAL_PER_CLASS, query_size=b,
                   budget=10 * INITIAL_PER_CLASS + rounds * b, mode="sequential")
  config.checkpoint_every = 500
  config.seeds = [0, 1, 2]


def add_strategies(config) -> None:
  for label, name in BASELINES.items():
    common.add_strategy(config, label, name=name)
  common.add_strategy(config, "dynamicAL")


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, b=250, r=9, data="tfds")
  b = common.choose("b", args["b"], QUERY_SIZES)
  rounds = common.positive("r", args["r"])
  config = common.new_config(f"dynamical_cifar10_b{b}")
  common.cifar10_source(config, args["data"])
  config.model.name = "cnn"
  config.model.options = ml_collections.ConfigDict(dict(channels=(32, 64, 64), hidden=128))
  protocol(config, b=b, rounds=rounds)
  add_strategies(config)
  if args["runlocal"]:
    common.runlocal(config, num_classes=10)
  return config
