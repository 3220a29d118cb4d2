"""Bilevel coreset on spoken digits: WRN-28-2 + MixMatch, 10 -> 60 labels in queries of 10.

Semi-supervised batch active learning via bilevel optimization (Borsos, Tagliasacchi &
Krause, ICASSP 2021), the spoken-digit protocol: tfds ``spoken_digit`` (the
free-spoken-digit dataset, 8 kHz, resampled to 16 kHz; recordings 0-4 of every speaker
and digit are the test set, as its authors prescribe) as 32x32 log-mel spectrograms;
a random balanced initial set of 10 labels (one per digit), then 5 queries of 10 (60
labels) by the bilevel coreset or a baseline (uniform, max-entropy, k-center), with the
MixMatch recipe and bilevel settings of ``bilevel_speech_commands`` (all unlabeled
clips in the outer objective: the pool is small); 3 seeds.

Arguments: ``runlocal`` (CPU-sized: WRN-10-1, 200 steps per round, 2 queries, one seed,
a smaller Nystrom proxy).

    assljax run --config experiments/configs/bilevel_spoken_digit.py --workdir runs/bilevel_spoken_digit
    assljax run --config experiments/configs/bilevel_spoken_digit.py:runlocal --workdir runs/bilevel_sd_local
"""

from __future__ import annotations

import common
from bilevel_speech_commands import protocol, shrink


def get_config(arg: str | None = None):
  args = common.parse_arg(arg)
  config = common.new_config("bilevel_spoken_digit")
  protocol(config, dataset="spoken_digit", initial_per_class=1, rounds=5, outer_size=None)
  if args["runlocal"]:
    shrink(config, num_classes=10)
  return config
