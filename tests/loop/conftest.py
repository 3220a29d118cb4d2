"""A tiny experiment (digits subset, small MLP, few steps) shared by the loop tests."""

import textwrap

import pytest

TINY_CONFIG = textwrap.dedent('''
    import ml_collections

    def get_config(arg=None):
      c = ml_collections.ConfigDict()
      c.experiment = "tiny"
      c.dataset = ml_collections.ConfigDict(dict(
          name="digits", data_dir=None, seed=0, max_train=200, max_test=100,
          options=ml_collections.ConfigDict()))
      c.model = ml_collections.ConfigDict(dict(name="mlp",
                                               options=dict(width=32, depth=1)))
      c.ssl = ml_collections.ConfigDict(dict(
          algorithm="fixmatch", options=ml_collections.ConfigDict(dict(threshold=0.7)),
          batch_size=16, mu=2, lr=None, weight_decay=None, total_steps=12, ema_decay=0.9,
          compute_dtype="float32", steps_per_round=12, reinit=True, early_stopping=None,
          augment=ml_collections.ConfigDict(dict(flip=False, pad=1, num_ops=1,
                                                 cutout_fraction=0.25))))
      c.al = ml_collections.ConfigDict(dict(initial_per_class=1, query_size=5, budget=20,
                                            mode="sequential", initial_trials=1,
                                            initial_sampling="balanced", initial_extra=0))
      c.strategies = ["random", "entropy"]
      c.strategy_options = ml_collections.ConfigDict()
      c.seeds = [0]
      c.oracle = "simulated"
      c.checkpoint_every = 4
      c.metrics_every = 2
      c.eval_batch_size = 64
      c.progress = False
      c.num_devices = None
      return c
''')

from loop_helpers import TIMING_FIELDS, without_timings  # noqa: F401  (re-exported)


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("configs") / "tiny.py"
  path.write_text(TINY_CONFIG)
  return str(path)
