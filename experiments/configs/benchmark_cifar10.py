"""Label-efficiency benchmark on CIFAR-10: NPC's Tab. 1 protocol scaled to 2 CPU cores.

The protocol of NPC (Kong et al., NeurIPS 2022, papers/001) Tab. 1 — Q0 = 10 random
balanced labels, then queries of Q = 20 → 30, 50, 70 labels; FixMatch with DARP towards
the uniform class distribution, retrained every round; passive (uniform random),
margin, ALBL (least confidence + coreset bandit), BADGE, NPC. The paper, at 70 labels with
WRN-28-2 and the full FixMatch schedule: passive 91.00 ± 2.78, NPC 94.85 ± 0.02.

What is scaled down so that it finishes on 2 CPU cores (``steps``, ``pool``, ``seeds``
arguments restore more):

* data: ``DATA/{train,test}/<class>/*`` (an ImageFolder, e.g. ``../shared/data/cifar10``),
  a stratified ``pool`` of the train split (5,000 images, 500 per class) and 2,000 test
  images;
* model: a 3-layer CNN (32/64/64 channels, 128 hidden units) on the images averaged
  down to 16×16 (``input_pool=2``) instead of WRN-28-2 on 32×32: XLA's CPU convolutions
  make a WRN step on these batches cost seconds here (issue 15), which would put one
  seed's four rounds beyond a day;
* training: FixMatch + DARP at the reference thresholds (τ = 0.95, λ_u = 1) with batch
  32 labeled + 2 × 32 unlabeled, Nesterov SGD lr 0.03 with the 7π/16 cosine over a
  round, EMA 0.99, ``steps`` per round (1,500) instead of 2^20; DARP refines every 10
  steps after the first 40 %;
* one first-round model per seed instead of the median of 5 (NPC §5.1), to save a
  fifth of the compute;
* seeds 0–2 (the paper: 3).

Arguments: ``data=PATH`` (required), ``steps=N``, ``pool=N``, ``seeds=N``, ``runlocal``
(60 steps, 1 query, one seed, a 600-image pool).

    assljax run --config experiments/configs/benchmark_cifar10.py:data=../shared/data/cifar10 --workdir runs/benchmark_cifar10
    assljax report runs/benchmark_cifar10 --out runs/benchmark_cifar10/report
"""

from __future__ import annotations

import ml_collections

from assljax.app import common

STRATEGIES = {"passive": dict(name="random"), "margin": dict(name="margin"),
              "albl": dict(name="albl", experts=common.ALBL_TWO_ARMS),
              "badge": dict(name="badge"), "npc": dict(name="npc")}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, data="", steps=1500, pool=5000, seeds=3)
  if not args["data"]:
    raise ValueError("benchmark_cifar10 needs the image folder: --config "
                     "experiments/configs/benchmark_cifar10.py:data=PATH")
  steps = common.positive("steps", args["steps"])
  config = common.new_config("benchmark_cifar10")
  common.cifar10_source(config, args["data"])
  config.dataset.max_train = common.positive("pool", args["pool"])
  config.dataset.max_test = 2000
  config.model.name = "cnn"
  config.model.options = ml_collections.ConfigDict(dict(channels=(32, 64, 64), hidden=128,
                                                        input_pool=2))
  common.fixmatch(config, darp=True)
  config.ssl.options.warmup_steps = (2 * steps) // 5
  config.ssl.batch_size = 32
  config.ssl.mu = 2
  config.ssl.total_steps = config.ssl.steps_per_round = steps
  config.ssl.ema_decay = 0.99
  config.checkpoint_every = steps
  config.al.update(initial_per_class=1, query_size=20, budget=70, mode="sequential")
  for label, options in STRATEGIES.items():
    options = dict(options)
    common.add_strategy(config, label, name=options.pop("name"), **options)
  config.seeds = list(range(common.positive("seeds", args["seeds"])))
  config.progress = False
  config.eval_batch_size = 500
  if args["runlocal"]:
    config.ssl.total_steps = config.ssl.steps_per_round = config.checkpoint_every = 60
    config.ssl.options.warmup_steps = 24
    config.al.budget = 30
    config.dataset.max_train, config.dataset.max_test = 600, 200
    config.seeds = [0]
  return config
