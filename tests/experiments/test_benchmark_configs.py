"""The label-efficiency benchmarks and the demo: each config runs the protocol its docstring states.

The committed results in experiments/results/ were produced by these configs; a change
to a number here changes what those results mean, so each is held to its docstring.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assljax.app import configs, experiment

CONFIG_DIR = Path(os.path.abspath(__file__)).parents[2] / "experiments" / "configs"


def load(name: str, arg: str | None = None):
  return configs.load_config(str(CONFIG_DIR / f"{name}.py") + ("" if arg is None else f":{arg}"))


def schedule(config, num_classes=10) -> list[int]:
  al = config.al
  first = al.initial_per_class * num_classes + al.get("initial_extra", 0)
  return list(range(first, al.budget + 1, al.query_size))


def strategy_names(config) -> dict[str, str]:
  return {label: config.strategy_options.get(label, {}).get("name", label)
          for label in config.strategies}


def test_digits_benchmark_protocol():
  config = load("benchmark_digits")
  experiment.check_config(config)
  assert config.dataset.name == "digits" and config.seeds == list(range(8))
  assert strategy_names(config) == {s: s for s in (
      "random", "entropy", "margin", "badge", "coreset", "npc", "crc", "dynamicAL", "bilevel")}
  assert schedule(config) == [10, 20, 30, 40, 50, 60] and config.al.mode == "sequential"
  ssl = config.ssl
  assert (ssl.algorithm, ssl.total_steps, ssl.steps_per_round, ssl.reinit) == (
      "fixmatch_darp", 2000, 2000, True)
  assert (ssl.options.threshold, ssl.options.lambda_u, ssl.options.warmup_steps) == (0.95, 1.0, 800)
  assert (ssl.batch_size, ssl.mu, ssl.ema_decay) == (32, 4, 0.99)
  assert config.strategy_options.bilevel.hparams.landmarks == 256
  local = load("benchmark_digits", "runlocal")
  experiment.check_config(local)
  assert (local.ssl.steps_per_round, local.seeds, schedule(local)) == (100, [0, 1], [10, 20, 30])
  assert load("benchmark_digits", "steps=500,seeds=3").ssl.options.warmup_steps == 200
  plain = load("benchmark_digits", "darp=False")   # the "before" of the recipe comparison
  assert plain.ssl.algorithm == "fixmatch"
  assert plain.ssl.options.to_dict() == dict(threshold=0.95, lambda_u=1.0)
  with pytest.raises(ValueError, match="darp"):
    load("benchmark_digits", "darp=1")


def test_demo_is_the_digits_recipe_with_fewer_steps_rounds_and_strategies():
  demo, bench = load("demo"), load("benchmark_digits", "steps=1000")
  experiment.check_config(demo)
  assert strategy_names(demo) == {"random": "random", "npc": "npc"}
  assert demo.seeds == [0, 1, 2, 3, 4] and schedule(demo) == [10, 20, 30]
  for section in ("dataset", "model", "ssl"):
    assert demo[section].to_dict() == bench[section].to_dict(), section


def test_fsdd_benchmark_protocol(tmp_path):
  with pytest.raises(ValueError, match="benchmark_fsdd needs the audio folder"):
    load("benchmark_fsdd")
  config = load("benchmark_fsdd", f"data={tmp_path}")
  experiment.check_config(config)
  assert config.dataset.name == "audiofolder" and config.dataset.options.root == str(tmp_path)
  assert config.seeds == [0, 1, 2, 3] and schedule(config) == [10, 20, 30, 40, 50, 60]
  assert strategy_names(config) == {"uniform": "random", "max_entropy": "entropy",
                                    "k_center": "coreset", "consistency": "consistency",
                                    "bilevel": "bilevel", "npc": "npc", "crc": "crc"}
  ssl = config.ssl
  assert (ssl.algorithm, ssl.optimizer, ssl.lr, ssl.end_lr, ssl.steps_per_round) == (
      "mixmatch", "adam", 1e-3, 1e-5, 2000)
  assert (ssl.options.num_views, ssl.options.lambda_u, ssl.options.temperature) == (2, 10.0, 0.5)
  assert ssl.augment.audio is False and config.model.options.input_pool == 2
  assert config.strategy_options.max_entropy.hparams.augmentations == 2
  assert config.strategy_options.consistency.hparams.augmentations == 5


def test_cifar10_benchmark_protocol(tmp_path):
  with pytest.raises(ValueError, match="benchmark_cifar10 needs the image folder"):
    load("benchmark_cifar10")
  config = load("benchmark_cifar10", f"data={tmp_path}")
  experiment.check_config(config)
  assert schedule(config) == [10, 30, 50, 70] and config.seeds == [0, 1, 2]
  assert set(strategy_names(config).values()) == {"random", "margin", "albl", "badge", "npc"}
  assert config.ssl.algorithm == "fixmatch_darp" and config.dataset.max_train == 5000
