"""CRC Tab. 3: CIFAR-10, WRN-28-2 + FixMatch, Q in {50, 100}, G = Q/10, five queries.

Convergence rate control (Kong et al., "Better Optimization can Reduce Sample
Complexity: Active Semi-Supervised Learning via Convergence Rate Control", ICLR 2021
submission; ../shared/papers/000), Table 3 (p. 7). The protocol, with where each number
comes from (the same facts, checked by a test, are in ``paper_tables.py``):

* Data and model: tfds ``cifar10`` (50,000-image pool, 10,000 test images), WRN-28-2
  (§4.1 p. 7, App. A.1 p. 12).
* Labels: the first query is Q labels sampled at random, class-balanced (Q/10 per class;
  §4.1 p. 7 and App. A.1: "randomly sampled a balanced number of images per class in the
  first query iteration"); then five queries of Q by the strategy. Labels after each
  query: 50 -> 100, 150, 200, 250, 300 (Q = 50) and 100 -> 200, 300, 400, 500, 600
  (Q = 100); Tab. 3's columns are the five labels counts after the first one (step 0 is
  the same random set for every strategy, so the table leaves it out, App. A.1).
* Strategies (Tab. 3's rows, §4.2 p. 7): ``random``, ``entropy``, ``confidence`` (least
  confidence), ``egl`` (CRC's form: the expected *squared* gradient norm of the cross
  entropy over *all* parameters, E_y ||grad_theta H(y, f(x))||^2), ``crc`` with
  G = Q/10 (5 or 10; §3.4 p. 6 "All experiments hereon use G = Q/10") on the NTK of the
  last layer (Alg. 2, §3.3).
* SSL: FixMatch (§4.1: the kekmodel/FixMatch-pytorch implementation; "all other
  configurations were as set in the original implementations", App. A.1): Nesterov SGD
  lr 0.03, momentum 0.9, weight decay 5e-4, EMA 0.999, batch 64 labeled, mu = 7,
  threshold 0.95, lambda_u = 1, cosine schedule over 2^20 steps; retrained from scratch
  after every query (§3.3 p. 5). 3 seeds (§4.1 "repeated 3 times").
* How long a round trains (argument ``train=``):
  ``reference`` (default): FixMatch's 2^20 steps;
  ``crc``: CRC §4.1's rule, validation every "epoch" of 1,024 iterations (App. A.1) and
  stop after 50 epochs without improvement or at 350 epochs (358,400 steps), on a
  validation split of 5,000 images held out of the pool
  (``ssl.early_stopping = dict(eval_every=1024, patience=51200, validation_size=5000)``).

What still differs from the paper:
* ``train=reference`` trains every round for 2^20 steps instead of CRC's early-stopped
  schedule; with ``train=crc`` the validation size (5,000, Oliver et al.'s CIFAR-10 split)
  is a choice the paper does not state, and the cosine keeps FixMatch's 2^20-step length
  (the paper does not say it was shortened).
* App. A.1: CIFAR runs used ReLU; the library's WRN uses leaky ReLU 0.1 (no option).
* App. A.1: "we ran several experiments and used the best models at query step 0"; the
  library's ``al.initial_trials`` keeps the *median* of K, and K is not stated, so each
  seed trains one first-round model.

Arguments (comma-separated): ``q=50|100`` (Q, default 50), ``train=reference|crc``,
``data=tfds|PATH`` (tfds ``cifar10``, or the path of an ImageFolder
``PATH/{train,test}/<class>/*``), ``runlocal`` (CPU-sized: WRN-10-1,
200 steps per round, a 2,000-image pool, 2 queries, one seed).

    assljax run --config experiments/configs/crc_cifar10.py:q=50 --workdir runs/crc_cifar10_q50
    assljax run --config experiments/configs/crc_cifar10.py:q=100 --workdir runs/crc_cifar10_q100
    assljax run --config experiments/configs/crc_cifar10.py:q=50,train=crc --workdir runs/crc_cifar10_q50_es
    assljax run --config experiments/configs/crc_cifar10.py:runlocal --workdir runs/crc_cifar10
    assljax report runs/crc_cifar10_q50 --out runs/crc_cifar10_q50/report
"""

from __future__ import annotations

import ml_collections

from assljax.app import common

QUERY_SIZES = (50, 100)
QUERIES = 5            # Tab. 3: five queries after the random first one
TRAIN = ("reference", "crc")
EPOCH = 1024           # App. A.1: "one epoch" = 1,024 training iterations between validations
# §4.1 p. 7: patience / maximum in epochs ("50/100/inf epochs or 350/600/512 epochs ... for
# CIFAR10/100/SVHN"); None = infinite patience.
STOPPING = {"cifar10": (50, 350), "cifar100": (100, 600), "svhn": (None, 512)}
VALIDATION_SIZE = 5000  # a choice: CRC does not state its validation split


def crc_training(config, train: str, dataset: str) -> None:
  """``train="crc"``: CRC §4.1's stopping rule for ``dataset`` ("cifar10", "cifar100",
  "svhn"): at most ``max_epochs * 1024`` steps per round and, with a finite patience, early
  stopping on a held-out validation split. ``"reference"`` changes nothing."""
  common.choose("train", train, TRAIN)
  if train == "reference":
    return
  patience, max_epochs = STOPPING[dataset]
  config.ssl.steps_per_round = max_epochs * EPOCH
  if patience is not None:
    config.ssl.early_stopping = ml_collections.ConfigDict(dict(
        eval_every=EPOCH, patience=patience * EPOCH, validation_size=VALIDATION_SIZE))


def add_baselines(config) -> None:
  """Tab. 3's baselines (§4.2): random, entropy, least confidence and CRC's EGL."""
  for label in ("random", "entropy", "confidence"):
    common.add_strategy(config, label)
  common.add_strategy(config, "egl", params="all", squared=True)


def protocol(config, *, q: int, queries: int, train: str) -> None:
  """CIFAR-10's CRC protocol without data or strategies: WRN-28-2, FixMatch, a random
  balanced first query of ``q`` labels and ``queries`` queries of ``q``, 3 seeds."""
  config.model.name = "wrn-28-2"
  common.fixmatch(config)
  crc_training(config, train, "cifar10")
  config.al.update(initial_per_class=q // 10, query_size=q, budget=q + queries * q,
                   mode="sequential", initial_trials=1, initial_sampling="balanced")
  config.seeds = [0, 1, 2]


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, q=50, train="reference", data="tfds")
  q = common.choose("q", args["q"], QUERY_SIZES)
  config = common.new_config(f"crc_cifar10_q{q}")
  common.cifar10_source(config, args["data"])
  protocol(config, q=q, queries=QUERIES, train=args["train"])
  add_baselines(config)
  common.add_strategy(config, "crc", group_size=q // 10)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
