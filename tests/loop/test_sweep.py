"""Sweeps: a config's (strategy, seed) cells run in separate workdirs and merged by the report."""

import hashlib
import json
import os

import pytest
from loop_helpers import without_timings

from assljax.app.cli import main
from assljax.report import output

# One acquisition round of few steps: two records per run.
SMALL = ["--config.al.budget=15", "--config.ssl.steps_per_round=4", "--config.ssl.total_steps=4"]


@pytest.fixture(scope="module")
def sweep(tiny_config_path, tmp_path_factory):
  """The tiny config (random, entropy; seed 0) run whole, and as cells 0 and 1."""
  root = tmp_path_factory.mktemp("sweep")
  dirs = {"whole": str(root / "whole"), 0: str(root / "cell_0"), 1: str(root / "cell_1")}
  assert main(["run", "--config", tiny_config_path, "--workdir", dirs["whole"]] + SMALL) == 0
  for cell in (0, 1):
    assert main(["run", "--config", tiny_config_path, "--workdir", dirs[cell],
                 "--cell", str(cell)] + SMALL) == 0
  return dirs


def _fails(capsys, argv, message):
  code = main(argv)
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2, (argv, err)
  assert len(err) == 1 and err[0].startswith("assljax: error: "), err
  assert message in err[0], (message, err[0])


def _snapshot(root):
  digest = {}
  for folder, _, files in os.walk(root):
    for name in files:
      with open(os.path.join(folder, name), "rb") as f:
        digest[os.path.relpath(os.path.join(folder, name), root)] = hashlib.sha256(
            f.read()).hexdigest()
  return digest


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def _summary_without_timings(path):
  with open(path) as f:
    summary = json.load(f)
  for timing in summary["timing"].values():
    for key in ("acquisition_seconds", "training_seconds", "acquisition_mean", "training_mean",
                "total_mean"):
      timing.pop(key)
  return summary


def test_cells_are_listed_and_counted(capsys, tiny_config_path):
  assert main(["cells", "--config", tiny_config_path]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split() == ["cell", "strategy", "seed"]
  assert [line.split() for line in lines[1:]] == [["0", "random", "0"], ["1", "entropy", "0"],
                                                  ["2", "cells"]]
  assert main(["cells", "--config", tiny_config_path, "--count", "--config.seeds=[3, 4]"]) == 0
  assert capsys.readouterr().out.strip() == "4"
  _fails(capsys, ["cells", "--config", tiny_config_path, "--config.seeds=[]"],
         "seeds must be a non-empty list")


def test_bad_cells_create_nothing(capsys, tmp_path, tiny_config_path):
  workdir = tmp_path / "cell"
  base = ["run", "--config", tiny_config_path, "--workdir", str(workdir)]
  _fails(capsys, base + ["--cell", "2"], "cell 2 is out of range: this config has 2 cells, 0 to 1")
  _fails(capsys, base + ["--cell", "-1"], "cell -1 is out of range")
  _fails(capsys, base + ["--cell", "one"], "invalid int value: 'one'")
  _fails(capsys, base + ["--cell", "1", "--config.seeds=[0, 0]"], "seeds has duplicates")
  _fails(capsys, ["run", "--workdir", str(workdir), "--resume", "--cell", "0"], "drop --cell")
  assert not workdir.exists()


def test_cells_merge_into_the_report_of_one_run(tmp_path, sweep):
  whole, cells = _results(sweep["whole"]), _results(sweep[0]) + _results(sweep[1])
  assert len(whole) == 4 and {r["label"] for r in _results(sweep[1])} == {"entropy"}
  assert without_timings(cells) == without_timings(whole)
  one = output.run_report([sweep["whole"]], tmp_path / "one", quiet=True)
  merged = output.run_report([sweep[0], sweep[1]], tmp_path / "merged", quiet=True)
  assert _summary_without_timings(merged["summary_json"]) == _summary_without_timings(
      one["summary_json"])
  for key in ("accuracy_csv", "paired_csv", "histogram_md", "iou_csv"):
    with open(merged[key]) as a, open(one[key]) as b:
      assert a.read() == b.read(), key


def test_a_cell_workdir_resumes(capsys, tiny_config_path, sweep):
  results = _results(sweep[1])
  again = ["run", "--config", tiny_config_path, "--workdir", sweep[1], "--cell", "1"] + SMALL
  assert main(again) == 0                      # a requeued array task: resumes, finds it done
  out = capsys.readouterr().out
  assert "cell 1 of 2: strategy entropy, seed 0 (resuming)" in out and "done; 2 records" in out
  assert main(["run", "--workdir", sweep[1], "--resume"]) == 0
  assert _results(sweep[1]) == results
  with open(os.path.join(sweep[1], "cell.json")) as f:
    assert json.load(f) == {"cell": 1, "cells": 2, "strategy": "entropy", "seed": 0,
                            "config": tiny_config_path, "overrides": [a[9:] for a in SMALL]}
  before = _snapshot(sweep[1])
  _fails(capsys, again[:-3] + ["--config.al.budget=20"] + SMALL[1:],
         "is not cell 1 of this config")
  _fails(capsys, ["run", "--config", tiny_config_path, "--workdir", sweep[1], "--cell", "0"]
         + SMALL, "is not cell 0 of this config")
  _fails(capsys, ["run", "--config", tiny_config_path, "--workdir", sweep["whole"], "--cell",
                  "0"] + SMALL, "already holds a run that is not cell 0")
  assert _snapshot(sweep[1]) == before
