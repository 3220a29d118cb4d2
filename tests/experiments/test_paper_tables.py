"""Every CRC, NPC and dynamicAL config resolves to its paper table (experiments/configs/
paper_tables.py): at full scale, with its default arguments and with each documented
argument value, the config's dataset, model, label schedule (the label count after every
query, computed by the loop's own ``Schedule``), SSL recipe, strategies with their
hyperparameters, and seeds are the table entry's. The entries themselves are checked for
consistency (columns within the schedule, expected accuracies for run labels at table
columns, a "differs" list), and each config's docstring names its table.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import sys
from pathlib import Path

import pytest

from assljax.app import configs, experiment
from assljax.loop.state import Schedule

ROOT = Path(os.path.abspath(__file__)).parents[2]
CONFIG_DIR = ROOT / "experiments" / "configs"
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn_cropped": 10, "spoken_digit": 10}
PAPER_CONFIGS = ("crc_cifar10", "crc_cifar100", "crc_svhn", "crc_ablation_layers",
                 "crc_ablation_group", "npc_cifar10", "npc_cifar100", "npc_shots",
                 "dynamical_cifar10", "dynamical_svhn", "dynamical_rounds",
                 "bilevel_speech_commands", "bilevel_spoken_digit")


def _tables():
  spec = importlib.util.spec_from_file_location("paper_tables", CONFIG_DIR / "paper_tables.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules.setdefault("paper_tables", module)
  spec.loader.exec_module(module)
  return module


paper_tables = _tables()
CASES = [(name, arg) for name in PAPER_CONFIGS for arg in paper_tables.argument_strings(name)]


def load(name: str, arg: str = ""):
  arg = ",".join(filter(None, [paper_tables.LOAD_ARGUMENTS.get(name, ""), arg]))
  return configs.load_config(str(CONFIG_DIR / f"{name}.py") + (f":{arg}" if arg else ""))


def num_classes(entry_or_config) -> int:
  if isinstance(entry_or_config, dict):
    return entry_or_config.get("num_classes") or NUM_CLASSES[entry_or_config["dataset"]]
  name = entry_or_config.dataset.name
  return NUM_CLASSES.get(name) or paper_tables.TABLES[entry_or_config.experiment]["num_classes"]


def plain(value):
  """ConfigDicts, tuples and dicts as JSON-comparable plain values."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  return json.loads(json.dumps(value))


def label_options(config, label: str) -> dict:
  value = plain(config.strategy_options.get(label, {}))
  out = {"name": value.get("name", label), "hparams": value.get("hparams", {})}
  out.update({k: value[k] for k in ("mode", "kernel") if k in value})
  return out


def label_counts(config, label: str) -> tuple[int, ...]:
  """Labels at every evaluated round of ``label``, from the loop's own schedule."""
  c = num_classes(config)
  schedule = Schedule.make(
      mode=label_options(config, label).get("mode", config.al.mode),
      initial_per_class=config.al.initial_per_class, query_size=config.al.query_size,
      budget=config.al.budget, num_classes=c, pool_size=10 ** 6,
      initial_sampling=config.al.initial_sampling, initial_extra=config.al.initial_extra)
  return tuple(itertools.accumulate(
      schedule.query_sizes, initial=config.al.initial_per_class * c + config.al.initial_extra))


def test_every_paper_config_has_an_entry_and_documented_arguments():
  assert sorted(paper_tables.TABLES) == sorted(PAPER_CONFIGS)
  for name in PAPER_CONFIGS:
    # the default argument is the first documented value of each argument
    assert paper_tables.resolve(name, "") == paper_tables.resolve(name, None)
    assert paper_tables.resolve(name)["arguments"] == {
        k: v[0] for k, v in paper_tables.TABLES[name]["arguments"].items()}


@pytest.mark.parametrize("name, arg", CASES, ids=[f"{n}:{a}" for n, a in CASES])
def test_table_entry_is_consistent(name, arg):
  entry = paper_tables.resolve(name, arg)
  assert entry["paper"] in paper_tables.PAPERS and entry["table"]
  assert entry["differs"] and all(isinstance(d, str) and d for d in entry["differs"])
  assert entry["sources"]
  c = num_classes(entry)
  initial = entry["initial"]
  assert (initial["labels"] == initial["per_class"] * c + initial.get("extra", 0)
          == entry["labels"][0])
  assert initial["sampling"] in ("balanced", "iid") and initial["trials"] >= 1
  assert set(entry["columns"]) <= set(entry["labels"])
  steps = {b - a for a, b in zip(entry["labels"], entry["labels"][1:])}
  if entry["mode"] in ("sequential", "random_init_first"):
    assert steps == {entry["query_size"]}
  else:  # one query of Q
    assert len(entry["labels"]) == 2 and steps == {entry["query_size"]}
  for label, strategy in entry["strategies"].items():
    if strategy["name"] == "crc":  # CRC takes Q/G whole groups (§3.4: G divides Q)
      assert entry["query_size"] % strategy["hparams"]["group_size"] == 0, label
  for label, accuracies in entry["expected"].items():
    assert label in entry["strategies"], label
    assert set(accuracies) <= set(entry["columns"]), label
    assert all(0.0 < a < 100.0 for a in accuracies.values())
  assert len(entry["seeds"]) == len(set(entry["seeds"])) >= 3


@pytest.mark.parametrize("name, arg", CASES, ids=[f"{n}:{a}" for n, a in CASES])
def test_config_resolves_to_its_table_entry(name, arg):
  entry = paper_tables.resolve(name, arg)
  config = load(name, arg)
  if entry["recipe"]["early_stopping"] is None:
    # train=crc's ssl.early_stopping is wired by the loop separately; the table test does
    # not depend on it.
    experiment.check_config(config)
  # full scale: the whole pool and test split of the tfds dataset
  assert config.dataset.name == entry["dataset"] and config.dataset.data_dir is None
  assert config.dataset.max_train is None and config.dataset.max_test is None
  assert config.model.name == entry["model"]["name"]
  assert plain(config.model.options) == entry["model"]["options"]
  # labels: initial set, Q, mode, and the label count after every query
  assert config.al.initial_per_class == entry["initial"]["per_class"]
  assert config.al.initial_extra == entry["initial"].get("extra", 0)
  assert config.al.initial_sampling == entry["initial"]["sampling"]
  assert config.al.initial_trials == entry["initial"]["trials"]
  assert config.al.query_size == entry["query_size"]
  assert config.al.mode == entry["mode"]
  # recipe
  for key, value in entry["recipe"].items():
    assert plain(config.ssl.get(key)) == plain(value), f"ssl.{key}"
  assert config.ssl.total_steps >= config.ssl.steps_per_round
  # strategies, their hyperparameters, and each one's schedule
  assert list(config.strategies) == list(entry["strategies"])
  for label, expected in entry["strategies"].items():
    assert label_options(config, label) == plain({"hparams": {}, **expected}), label
    assert label_counts(config, label) == tuple(entry["labels"]), label
  assert tuple(config.seeds) == tuple(entry["seeds"])


@pytest.mark.parametrize("name", [n for n in PAPER_CONFIGS if n not in
                                  ("crc_cifar100", "crc_svhn", "npc_cifar100", "dynamical_svhn",
                                   "bilevel_speech_commands", "bilevel_spoken_digit")])
def test_imagefolder_source_changes_only_the_data(name):
  tfds_config, folder = load(name), load(name, "data=/data/cifar10_images")
  assert folder.dataset.name == "imagefolder"
  for section in ("model", "ssl", "al", "strategy_options"):
    assert plain(folder[section]) == plain(tfds_config[section]), section
  assert list(folder.strategies) == list(tfds_config.strategies)


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_docstring_names_its_table_and_arguments(name):
  spec = importlib.util.spec_from_file_location(f"_doc_{name}", CONFIG_DIR / f"{name}.py")
  source = spec.loader.get_source(spec.name)
  doc = source.split('"""')[1]
  table = re.search(r"Tab\. \d+", paper_tables.TABLES[name]["table"]).group(0)
  assert table in " ".join(doc.split()), table
  for key, values in paper_tables.TABLES[name]["arguments"].items():
    assert f"``{key}=" in doc, key
    for value in values:
      assert str(value) in doc, (key, value)
