"""CRC Tab. 4 (left half): SVHN, WRN-28-2 + Mean Teacher, Q = 20, G = 2, 120 -> 220 labels.

Convergence rate control (Kong et al., ICLR 2021 submission; ../shared/papers/000),
Table 4, SVHN columns (p. 8). The protocol and its sources (the same facts, checked by a
test, are in ``paper_tables.py``):

* Data and model: tfds ``svhn_cropped`` (train split, 73,257 images, as the pool; no
  ``extra``; 26,032 test images), WRN-28-2 with leaky ReLU 0.1 (§4.1 p. 7, App. A.1 p. 12).
* Labels: a random class-balanced first query of 120 labels (12 per class, Tab. 4
  caption), then five queries of Q = 20: 120 -> 140, 160, 180, 200, 220 (Tab. 4's
  columns).
* Strategies (Tab. 4's rows): ``random`` and ``crc`` with G = Q/10 = 2 (§3.4 p. 6) on the
  last-layer NTK (Alg. 2).
* SSL: Mean Teacher as in the implementation CRC cites (§4.1 fn. 5,
  perrying/realistic-ssl-evaluation-pytorch; "all other configurations were as set in the
  original implementations", App. A.1), read from its ``config.py``, ``train.py``,
  ``lib/algs/mean_teacher.py`` and ``lib/transform.py``: Adam lr 4e-4 without weight
  decay; batches of 100 = 50 labeled + 50 unlabeled (``batch_size=50, mu=1``);
  consistency weight 8 on the MSE between the student's and the teacher's softmax, with
  the sigmoid ramp-up exp(-5 (1 - t/200,000)^2) over 200,000 iterations; teacher EMA
  min(1 - 1/(t + 1), 0.95); 500,000 iterations per round; augmentation: no flip, a
  random crop of the 2-pixel reflect-padded image, no Gaussian noise (SVHN's transform);
  retrained from scratch after every query (§3.3); 3 seeds (§4.1).
* ``train=reference`` (default): the implementation's 500,000 iterations; ``train=crc``:
  CRC §4.1 for SVHN, "inf" patience and at most 512 epochs of 1,024 iterations
  (524,288 steps), i.e. no early stopping.

What still differs from the paper and its implementation:
* The implementation multiplies the learning rate by 0.2 at iteration 400,000; the
  library's Adam is constant or linearly decaying (``ssl.end_lr``), so it stays 4e-4.
* The implementation averages the consistency over the unlabeled half of each batch only
  (masked, divided by the batch of 100); the library's Mean Teacher averages it over every
  input, labeled ones included.
* The implementation reports the *student* at its best validation accuracy (validated
  every 25,000 iterations on 7,325 held-out images); the library evaluates the EMA
  teacher after the last step, and the pool keeps those images.
* App. A.1's "best models at query step 0" of several runs is not reproduced.

Arguments: ``train=reference|crc``, ``runlocal`` (CPU-sized: WRN-10-1, 200 steps per
round, a 2,000-image pool, 2 queries, one seed).

    assljax run --config experiments/configs/crc_svhn.py --workdir runs/crc_svhn
    assljax run --config experiments/configs/crc_svhn.py:runlocal --workdir runs/crc_svhn_local
"""

from __future__ import annotations

import ml_collections

from assljax.app import common

crc_cifar10 = common.sibling(__file__, "crc_cifar10")

Q = 20
INITIAL_PER_CLASS = 12   # Tab. 4 caption: 12 images per class in the first query
QUERIES = 5              # 140, 160, 180, 200, 220
ITERATIONS = 500_000     # realistic-ssl-evaluation-pytorch config.py: "iteration"


def mean_teacher_reference(config) -> None:
  """Mean Teacher at the settings of perrying/realistic-ssl-evaluation-pytorch (SVHN)."""
  config.ssl.algorithm = "mean_teacher"
  config.ssl.options = ml_collections.ConfigDict(dict(
      consistency=8.0, rampup_steps=200_000, ema_during_rampup=0.95, ema_after_rampup=0.95))
  config.ssl.optimizer = "adam"
  config.ssl.lr = 4e-4
  config.ssl.end_lr = None
  config.ssl.weight_decay = 0.0
  config.ssl.batch_size = 50
  config.ssl.mu = 1
  config.ssl.total_steps = ITERATIONS
  config.ssl.steps_per_round = ITERATIONS
  config.ssl.ema_decay = 0.95  # Mean Teacher's own schedule drives the EMA
  config.ssl.reinit = True
  config.ssl.augment = ml_collections.ConfigDict(dict(flip=False, pad=2, num_ops=0,
                                                      cutout_fraction=0.0))
  config.checkpoint_every = common.CHECKPOINT_EVERY


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, train="reference")
  config = common.new_config("crc_svhn")
  common.set_tfds(config, "svhn_cropped")
  config.model.name = "wrn-28-2"
  mean_teacher_reference(config)
  # infinite patience: only the length changes
  crc_cifar10.crc_training(config, args["train"], "svhn")
  config.ssl.total_steps = config.ssl.steps_per_round
  config.al.update(initial_per_class=INITIAL_PER_CLASS, query_size=Q,
                   budget=10 * INITIAL_PER_CLASS + QUERIES * Q, mode="sequential",
                   initial_trials=1, initial_sampling="balanced")
  common.add_strategy(config, "random")
  common.add_strategy(config, "crc", group_size=Q // 10)
  config.seeds = [0, 1, 2]
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
