"""Defaults shared by every experiment config; each config file overrides what differs.

Not a config itself (no get_config): configs start from :func:`base_config` through
``assljax.app.common.new_config``.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Every field `assljax run` reads, at the FixMatch reference settings (DESIGN §5)."""
  config = ml_collections.ConfigDict()
  config.experiment = "experiment"
  config.dataset = ml_collections.ConfigDict(dict(
      name="digits", data_dir=None, seed=0, max_train=None, max_test=None,
      options=ml_collections.ConfigDict()))
  config.model = ml_collections.ConfigDict(dict(name="wrn-28-2",
                                                options=ml_collections.ConfigDict()))
  config.ssl = ml_collections.ConfigDict(dict(
      algorithm="fixmatch", options=ml_collections.ConfigDict(), batch_size=64, mu=None,
      optimizer=None, lr=None, end_lr=None, weight_decay=None, total_steps=2 ** 20,
      ema_decay=0.999,
      compute_dtype="float32", steps_per_round=2 ** 20, reinit=True,
      # None, or dict(eval_every, patience, validation_size): stop a round's training
      # once accuracy on a split held out of the pool stopped improving (CRC §4.1).
      early_stopping=None,
      augment=ml_collections.ConfigDict(dict(flip=True, pad=4, num_ops=2,
                                             cutout_fraction=0.5))))
  config.al = ml_collections.ConfigDict(dict(initial_per_class=1, query_size=10, budget=60,
                                             mode="sequential", initial_trials=1,
                                             initial_sampling="balanced", initial_extra=0))
  config.strategies = ["random"]
  config.strategy_options = ml_collections.ConfigDict()
  config.seeds = [0]
  config.oracle = "simulated"
  config.checkpoint_every = 1000
  # Training steps between two lines of RUN/metrics.jsonl (and TensorBoard scalars).
  config.metrics_every = 100
  config.eval_batch_size = 1024
  config.progress = True
  # Devices of the data mesh that training and pool scoring are split over; None: one
  # device, no mesh. Batch sizes must divide by it.
  config.num_devices = None
  return config
