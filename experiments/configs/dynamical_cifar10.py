"""dynamicAL App. E Tab. 2 / 3 (and Fig. 3): CIFAR-10, the tutorial CNN, 500 i.i.d. labels, b.

dynamicAL (Wang et al., "Deep Active Learning by Leveraging Training Dynamics", NeurIPS
2022; ../shared/papers/003 is its ICLR 2022 submission text), App. E.3 Table 2 (b = 250)
and Table 3 (b = 500; Fig. 3 left plots it). The protocol and its sources (the same
facts, checked by a test, are in ``paper_tables.py``):

* Data: tfds ``cifar10`` (50,000-image pool, 10,000 test images).
* Model: the PyTorch CIFAR-10 tutorial network (App. C.1: "the same architecture used in
  Pytorch CIFAR10 Image Classification Tutorial"): conv5x5(6), max-pool, conv5x5(16),
  max-pool, dense 120, dense 84, head; ``tutorial_cnn``, 62,006 parameters.
* Labels: an initial set of M = 500 labels sampled i.i.d. from the pool, not
  class-balanced (§2.2: "M points are i.i.d. sampled ... as the (initial) labeled set";
  §5.1: M = 500; ``al.initial_sampling = "iid"``); then 9 queries of b (the tables' rows
  1 ... 9): b = 250 -> 500, 750, ..., 2,750 labels (Tab. 2), b = 500 -> 500, 1,000, ...,
  5,000 (Tab. 3).
* Strategies (App. E.1, the tables' columns): ``random``, ``coreset`` (k-center greedy on
  penultimate features), ``confidence``, ``margin``, ``entropy``, ``albl`` (two arms:
  Coreset and least confidence, E.1), ``badge``, ``dynamicAL`` (pseudo-labels
  argmax f; score ||grad l||^2 + 2 grad l^T sum_S grad l over all parameters; top b).
* Training: supervised cross-entropy on the labeled set, *continued* across rounds ("after
  each query, no re-initialization is used", §5.1); a constant learning rate of 0.001
  (App. C.1); 5 runs (§5.1 "mean value of 5 runs", §8).

What still differs from the paper (choices, from the official code where it exists):
* The paper names no optimizer, batch size or augmentation; Adam (no weight decay), batch
  128 and no augmentation follow the official dynamicAL code; the optimizer state
  restarts every round while the weights continue.
* "Train ... until convergence" (Alg. 1) is a fixed 1,000 steps per round here (with the
  earlier 3-convolution CNN, accuracy plateaued by ~250 steps; experiments/README.md).
* The raw weights are evaluated (EMA decay 0).

Arguments (comma-separated): ``b=250|500`` (query size: Tab. 2 or Tab. 3; default 250),
``data=tfds|PATH`` (tfds ``cifar10``, or the path of an ImageFolder
``PATH/{train,test}/<class>/*``, which needs no tensorflow-datasets preparation), ``runlocal`` (CPU-sized: a 2,000-image pool, 200 steps per round, 2 queries, one
seed; the same CNN, which is already small).

    assljax run --config experiments/configs/dynamical_cifar10.py --workdir runs/dynamical_cifar10
    assljax run --config experiments/configs/dynamical_cifar10.py:b=500 --workdir runs/dynamical_cifar10_b500
    assljax run --config experiments/configs/dynamical_cifar10.py:data=/data/cifar10_images,runlocal --workdir runs/dynamical_local
"""

from __future__ import annotations

import ml_collections

from assljax.app import common

QUERY_SIZES = (250, 500)   # Tab. 2, Tab. 3
QUERIES = 9                # the tables' rows 1 ... 9
INITIAL = 500              # M (§5.1)
STEPS_PER_ROUND = 1000     # a choice: "until convergence" (Alg. 1)
STRATEGIES = ("random", "coreset", "confidence", "margin", "entropy", "albl", "badge",
              "dynamicAL")


def protocol(config, *, b: int, queries: int) -> None:
  """The dynamicAL training recipe and label schedule (no data, model or strategies):
  M = 500 i.i.d. initial labels, ``queries`` queries of ``b``, supervised training
  continued across rounds at a constant lr of 0.001, 5 seeds."""
  config.ssl.algorithm = "supervised"
  config.ssl.options = ml_collections.ConfigDict()
  config.ssl.batch_size = 128
  config.ssl.mu = None
  config.ssl.optimizer = "adam"
  config.ssl.lr = 0.001
  config.ssl.end_lr = None   # constant (App. C.1)
  config.ssl.weight_decay = 0.0
  config.ssl.total_steps = STEPS_PER_ROUND
  config.ssl.steps_per_round = STEPS_PER_ROUND
  # Evaluate the trained weights themselves (EMA decay 0 copies them every step).
  config.ssl.ema_decay = 0.0
  config.ssl.reinit = False
  config.ssl.augment = ml_collections.ConfigDict(dict(flip=False, pad=0, num_ops=0,
                                                      cutout_fraction=0.0))
  config.al.update(initial_per_class=INITIAL // 10, query_size=b,
                   budget=INITIAL + queries * b, mode="sequential", initial_trials=1,
                   initial_sampling="iid")
  config.checkpoint_every = 500
  config.seeds = [0, 1, 2, 3, 4]


def add_strategies(config, labels=STRATEGIES) -> None:
  for label in labels:
    if label == "albl":
      common.add_strategy(config, "albl", experts=common.ALBL_TWO_ARMS)
    else:
      common.add_strategy(config, label)


def tutorial_cnn(config) -> None:
  config.model.name = "tutorial_cnn"
  config.model.options = ml_collections.ConfigDict()


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, b=250, data="tfds")
  b = common.choose("b", args["b"], QUERY_SIZES)
  config = common.new_config(f"dynamical_cifar10_b{b}")
  common.cifar10_source(config, args["data"])
  tutorial_cnn(config)
  protocol(config, b=b, queries=QUERIES)
  add_strategies(config)
  if args["runlocal"]:
    common.runlocal(config, num_classes=10)
  return config
