"""Label-efficiency benchmark on spoken digits: the Bilevel paper's Tab. 1 protocol at CPU scale.

The protocol of Borsos, Tagliasacchi & Krause (ICASSP 2021) on the Free Spoken Digit
Dataset, Tab. 1 (their numbers at 60 labels: uniform 91.33 ± 3.98, max-entropy
87.56 ± 7.44, k-center 92.67 ± 2.37, consistency 96.61 ± 2.80, bilevel 98.89 ± 1.13;
6 seeds, WRN-28, 10^5 MixMatch iterations per round):

* data: an audio folder ``DATA/{train,test}/<digit>/*.wav`` (the recordings 5–49 of each
  speaker and digit are the pool, 0–4 the test set, the dataset's official split),
  one-second clips at 16 kHz as 32×32 log-mel spectrograms (§3);
* labels: one per digit (10), then 5 queries of 10 → 60, retrained from scratch every
  round (§3);
* training: MixMatch as the paper (two label-guessing views K = 2, T = 0.5, α = 0.75,
  λ_u = 10, Adam with the rate decaying linearly from 1e-3 to 1e-5); the views are the
  spectrogram shifted by up to 2 pixels (``ssl.augment.audio=False``, see below);
* strategies: uniform (random), max-entropy (entropy of the softmax averaged over 2
  augmented views), k-center (coreset), consistency (variance over 5 views), bilevel
  (Nyström features of an infinite-width NTK, 90 % greedy / 10 % random), and the NTK
  strategies NPC and CRC (G = Q/10 = 1);
* seeds 0–3.

What differs from the paper, to fit 2 CPU cores (the ``steps``, ``seeds`` arguments
restore more): a 3-layer CNN (32/64/64 channels, 128 hidden units) on the spectrogram
average-pooled to 16×16 (``input_pool=2``) instead of WRN-28, batch 32 instead of 64,
``steps`` MixMatch steps per round (2,000) instead of 10^5, EMA 0.99, λ_u ramped up over
the first 40 % of a round; the MixMatch views shift the spectrogram instead of applying
the §3 waveform augmentations (``--config.ssl.augment.audio=True`` restores them: they
cost 30–44 ms per 64 clips on this CPU against 0.3–0.6 ms, as much as the training step
itself); the bilevel proxy uses the infinite-width NTK of a one-hidden-layer MLP on the
flattened spectrograms with 512 landmarks and the L-BFGS inner solver (the paper: the
WRN-28 NTK with 2,000 landmarks and Adam; the WRN twin costs ~9 minutes per acquisition
here), and its augmented copies and the augmentation-based baselines shift the
spectrogram by up to 2 pixels (the strategies see spectrograms, not waveforms).

Measured before choosing (held-out *pool* clips, never the test split; 30 labels, two
label draws): at 32×32 the CNN takes 0.2–0.5 s per MixMatch step here, at 16×16
20–50 ms. This model is far from the paper's regime: 40–44 % accuracy on 500 held-out
pool clips after 2,000 or 4,000 MixMatch steps, and 42–45 % trained supervised on the
30 labels alone (MixMatch adds nothing at this scale), against the paper's ~90 % at 60
labels with WRN-28 and 10^5 steps. Compare strategies here with each other and with
random, not with Tab. 1's numbers.

Arguments: ``data=PATH`` (required: the audio folder, e.g. ``../shared/data/fsdd``),
``steps=N``, ``seeds=N``, ``runlocal`` (100 steps, 2 queries, one seed, 2,000-clip pool).

    assljax run --config experiments/configs/benchmark_fsdd.py:data=../shared/data/fsdd --workdir runs/benchmark_fsdd
    assljax report runs/benchmark_fsdd --out runs/benchmark_fsdd/report
"""

from __future__ import annotations

import os

import ml_collections

from assljax.app import common

AUGMENTED = dict(augment_flip=False, augment_pad=2)
STRATEGIES = {
    "uniform": dict(name="random"),
    "max_entropy": dict(name="entropy", augmentations=2, **AUGMENTED),
    "k_center": dict(name="coreset"),
    "consistency": dict(name="consistency", augmentations=5, **AUGMENTED),
    "bilevel": dict(name="bilevel", architecture="mlp", landmarks=512,
                    augmentations=8, inner_solver="lbfgs", random_fraction=0.1, **AUGMENTED),
    "npc": dict(name="npc"),
    "crc": dict(name="crc"),
}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, data="", steps=2000, seeds=4)
  if not args["data"]:
    raise ValueError("benchmark_fsdd needs the audio folder: --config "
                     "experiments/configs/benchmark_fsdd.py:data=PATH")
  steps = common.positive("steps", args["steps"])
  config = common.new_config("benchmark_fsdd")
  config.dataset.name = "audiofolder"
  config.dataset.options = ml_collections.ConfigDict(
      dict(root=os.path.abspath(os.path.expanduser(args["data"]))))
  config.model.name = "cnn"
  config.model.options = dict(channels=(32, 64, 64), hidden=128, input_pool=2)
  config.ssl.algorithm = "mixmatch"
  config.ssl.options = ml_collections.ConfigDict(dict(
      num_views=2, temperature=0.5, alpha=0.75, lambda_u=10.0, rampup_steps=(2 * steps) // 5))
  config.ssl.batch_size = 32
  config.ssl.mu = 1
  config.ssl.optimizer = "adam"
  config.ssl.lr = 1e-3
  config.ssl.end_lr = 1e-5
  config.ssl.weight_decay = None  # MixMatch's decoupled 0.02 (the paper keeps [4]'s)
  config.ssl.total_steps = steps
  config.ssl.steps_per_round = steps
  config.ssl.ema_decay = 0.99
  config.ssl.reinit = True
  config.ssl.augment = ml_collections.ConfigDict(dict(
      flip=False, pad=2, num_ops=0, cutout_fraction=0.0, audio=False))
  config.al.update(initial_per_class=1, query_size=10, budget=60, mode="sequential")
  for label, options in STRATEGIES.items():
    options = dict(options)
    common.add_strategy(config, label, name=options.pop("name"), **options)
  config.seeds = list(range(common.positive("seeds", args["seeds"])))
  config.checkpoint_every = steps
  config.progress = False
  if args["runlocal"]:
    config.ssl.total_steps = config.ssl.steps_per_round = config.checkpoint_every = 100
    config.ssl.options.rampup_steps = 40
    config.al.budget = 30
    config.dataset.max_train = 2000
    config.seeds = [0]
  return config
