"""The `make demo` config is the protocol the README promises, and it is valid."""

import pathlib

from assljax.loop import configs, experiment

DEMO = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "configs" / "demo.py"


def test_demo_is_npc_entropy_random_on_digits_with_fixmatch():
  config = configs.load_config(str(DEMO))
  experiment.check_config(config)
  assert (config.dataset.name, config.model.name, config.ssl.algorithm) == (
      "digits", "cnn", "fixmatch")
  assert sorted(config.strategies) == ["entropy", "npc", "random"]
  assert len(config.seeds) == 2
  al = config.al
  # 10 balanced labels (digits has 10 classes), then 5 rounds of 10 queries.
  assert (al.initial_per_class, al.query_size) == (1, 10)
  assert (al.budget - 10 * al.initial_per_class) // al.query_size == 5
