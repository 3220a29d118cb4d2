"""The `make demo` config is the protocol the README promises, and it is valid."""

import pathlib

from assljax.app import configs, experiment

DEMO = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "configs" / "demo.py"


def test_demo_is_npc_against_random_on_digits_with_fixmatch_darp():
  config = configs.load_config(str(DEMO))
  experiment.check_config(config)
  assert (config.dataset.name, config.model.name, config.ssl.algorithm) == (
      "digits", "cnn", "fixmatch_darp")
  assert list(config.strategies) == ["random", "npc"]
  # enough seeds for a paired interval (t with 4 degrees of freedom)
  assert len(config.seeds) == 5
  al = config.al
  # 10 balanced labels (digits has 10 classes), then 2 rounds of 10 queries.
  assert (al.initial_per_class, al.query_size, al.budget, al.mode) == (1, 10, 30, "sequential")
  assert config.ssl.steps_per_round == config.ssl.total_steps == 1000
  assert config.ssl.reinit


def test_make_demo_runs_every_strategy_of_the_config():
  # `make demo` starts one process per strategy; a strategy added to the config only must
  # not silently drop out of the demo.
  makefile = (DEMO.parents[2] / "Makefile").read_text()
  line, = [l for l in makefile.splitlines() if l.startswith("DEMO_STRATEGIES :=")]
  config = configs.load_config(str(DEMO))
  assert line.split(":=")[1].split() == list(config.strategies)
