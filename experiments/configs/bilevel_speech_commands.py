"""Bilevel coreset on Speech Commands: WRN-28-2 + MixMatch on 32x32 log-mel spectrograms.

Semi-supervised batch active learning via bilevel optimization (Borsos, Tagliasacchi &
Krause, ICASSP 2021), the keyword-spotting protocol: tfds ``speech_commands`` (12
classes: ten keywords, silence, unknown) as one-second clips turned into 32x32 log-mel
spectrograms (``assljax.data.audio``); a random class-balanced initial set, then queries
of 10 labels (the paper's batch size) up to about 200 labels, each chosen by the bilevel
coreset (Nystrom features of an infinite-width NTK from 2,000 landmarks, a logistic
proxy over labeled + chosen samples with 8 augmented copies each, greedy selection by
the implicit gradient of the outer loss on 30,000 unlabeled samples with the SSL
model's soft pseudo-labels; 90% this way, 10% uniformly at random) or a baseline:
uniform sampling, max-entropy, k-center greedy. MixMatch at the reference settings
(DESIGN §5: Adam 2e-3, K = 2, T = 0.5, alpha = 0.75, lambda_u = 75 ramped up over 16,384
steps, EMA 0.999, batch 64), 2^20 steps per round, retrained every round; 3 seeds.
Spectrograms are not mirrored (time reversal changes a word); the weak augmentation is
a 2-pixel shift in time and frequency.

Deviation: the paper starts from 50 labels; the loop's initial set is class-balanced
and 50 is not a multiple of 12 classes, so the closest is used: 4 per class = 48, then
15 queries of 10 (198 labels).

Arguments: ``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, a 2,000-clip pool, 2
queries, one seed, a smaller Nystrom proxy).

    assljax run --config experiments/configs/bilevel_speech_commands.py --workdir runs/bilevel_speech_commands
    assljax run --config experiments/configs/bilevel_speech_commands.py:runlocal --workdir runs/bilevel_sc_local
"""

from __future__ import annotations

import ml_collections

import common

# label -> registry name
BASELINES = {"uniform": "random", "max_entropy": "entropy", "k_center": "coreset"}
Q = 10
BILEVEL = dict(landmarks=2000, augmentations=8, augment_flip=False, augment_pad=2,
               inner_steps=200, cg_steps=100, random_fraction=0.1)
BILEVEL_LOCAL = dict(landmarks=64, augmentations=2, inner_steps=30, cg_steps=20,
                     outer_size=None)


def protocol(config, *, dataset: str, initial_per_class: int, rounds: int,
             outer_size: int | None) -> None:
  """Data, model, MixMatch, the label schedule and the strategies of one protocol."""
  common.set_tfds(config, dataset)
  config.model.name = "wrn-28-2"
  config.ssl.algorithm = "mixmatch"
  config.ssl.options = ml_collections.ConfigDict(dict(
      num_views=2, temperature=0.5, alpha=0.75, lambda_u=75.0, rampup_steps=16384))
  config.ssl.batch_size = 64
  config.ssl.mu = 1
  config.ssl.lr = 2e-3
  config.ssl.weight_decay = None  # MixMatch's reference (decoupled 0.02 on kernels)
  config.ssl.total_steps = common.FIXMATCH_STEPS
  config.ssl.steps_per_round = common.FIXMATCH_STEPS
  config.ssl.ema_decay = 0.999
  config.ssl.reinit = True
  config.ssl.augment = ml_collections.ConfigDict(dict(flip=False, pad=2, num_ops=2,
                                                      cutout_fraction=0.5))
  num_classes = {"speech_commands": 12, "spoken_digit": 10}[dataset]
  initial = initial_per_class * num_classes
  config.al.update(initial_per_class=initial_per_class, query_size=Q,
                   budget=initial + rounds * Q, mode="sequential")
  for label, name in BASELINES.items():
    common.add_strategy(config, label, name=name)
  common.add_strategy(config, "bilevel", outer_size=outer_size, **BILEVEL)
  config.seeds = [0, 1, 2]
  config.checkpoint_every = common.CHECKPOINT_EVERY


def shrink(config, *, num_classes: int) -> None:
  common.small_wrn(config)
  common.runlocal(config, num_classes=num_classes)
  config.strategy_options.bilevel.hparams.update(BILEVEL_LOCAL)


def get_config(arg: str | None = None):
  args = common.parse_arg(arg)
  config = common.new_config("bilevel_speech_commands")
  protocol(config, dataset="speech_commands", initial_per_class=4, rounds=15,
           outer_size=30_000)
  if args["runlocal"]:
    shrink(config, num_classes=12)
  return config
