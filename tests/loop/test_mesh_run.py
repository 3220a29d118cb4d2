"""`assljax run` on a data mesh (config.num_devices) reproduces the one-device run."""

import json
import os

import pytest

from assljax.app.cli import main

from loop_helpers import without_timings


def _records(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return without_timings(json.load(f))


@pytest.mark.slow
def test_two_devices_select_and_score_like_one(tiny_config_path, tmp_path):
  single, meshed = str(tmp_path / "one"), str(tmp_path / "two")
  only_entropy = "--config.strategies=['entropy']"  # scores the pool on the mesh
  assert main(["run", "--config", tiny_config_path, "--workdir", single, only_entropy]) == 0
  assert main(["run", "--config", tiny_config_path, "--workdir", meshed, only_entropy,
               "--config.num_devices=2"]) == 0
  expected, actual = _records(single), _records(meshed)
  assert len(actual) == len(expected) == 3
  for want, got in zip(expected, actual):
    # Queries and label histograms are exact; a float32 reduction order may move an
    # accuracy by at most one test sample.
    assert got["queried_indices"] == want["queried_indices"]
    assert got["labeled_class_histogram"] == want["labeled_class_histogram"]
    assert abs(got["test_accuracy"] - want["test_accuracy"]) <= 0.011


@pytest.mark.parametrize("value, message", [
    ("0", "config.num_devices must be a positive integer or None"),
    ("64", "config.num_devices is 64 but only 8"),
    ("3", "multiples of the 3 devices"),
])
def test_bad_device_counts(capsys, tiny_config_path, tmp_path, value, message):
  workdir = tmp_path / "run"
  assert main(["run", "--config", tiny_config_path, "--workdir", str(workdir),
               f"--config.num_devices={value}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err
  assert not os.path.exists(workdir / "runs")
