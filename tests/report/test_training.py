"""Training curves in the report: means over seeds of each run's metrics.jsonl, by hand."""

from __future__ import annotations

import json
import math

import numpy as np
from report_toy import LABELS, rgb_counts, toy_records, write_results

from assljax import report
from assljax.report.training import load_training_curves


def _write_metrics(workdir, label, seed, rows):
  run = workdir / "runs" / label / f"seed_{seed}"
  run.mkdir(parents=True, exist_ok=True)
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rows(losses, masks, rounds):
  return [{"global_step": 10 * (i + 1), "round": r, "trial": 0, "step": 10 * (i + 1),
           "loss": loss, "mask_rate": mask, "learning_rate": 0.03}
          for i, (loss, mask, r) in enumerate(zip(losses, masks, rounds))]


def test_mean_over_seeds_round_marks_and_missing_values(tmp_path):
  workdir = write_results(tmp_path / "run", toy_records())
  _write_metrics(workdir, "random", 0, _rows([1.0, 0.5, 2.0], [0.1, 0.2, 0.0], [0, 0, 1]))
  _write_metrics(workdir, "random", 1, _rows([3.0, None, 1.0], [0.3, 0.4, 0.2], [0, 0, 1]))
  _write_metrics(workdir, "margin", 1, _rows([0.7, 0.6], [0.5, 0.6], [0, 1]))
  curves = load_training_curves([workdir / "results.json"], ["random", "margin", "npc"])
  assert sorted(curves) == ["margin", "random"]          # npc has no metrics.jsonl
  random = curves["random"]
  assert random["global_step"] == [10, 20, 30] and random["seeds"] == [0, 1]
  np.testing.assert_allclose(random["loss"], [2.0, 0.5, 1.5])   # seed 1's null left out
  np.testing.assert_allclose(random["mask_rate"], [0.2, 0.3, 0.1])
  assert random["round_starts"] == [20]       # the last step of round 0
  assert "pseudo_label_accuracy" not in random     # no run logged it: no panel
  assert curves["margin"]["round_starts"] == [10] and curves["margin"]["seeds"] == [1]


def test_all_missing_is_nan(tmp_path):
  workdir = tmp_path / "run"
  _write_metrics(workdir, "random", 0, _rows([None, 1.0], [0.1, 0.2], [0, 0]))
  curve = load_training_curves(workdir, ["random"])["random"]
  assert math.isnan(curve["loss"][0]) and curve["loss"][1] == 1.0


def test_report_draws_training_curves_only_when_logged(tmp_path):
  plain = write_results(tmp_path / "plain", toy_records())
  paths = report.run_report([plain], tmp_path / "out_plain", quiet=True)
  assert "training_png" not in paths
  assert "Training curves" not in (tmp_path / "out_plain" / "report.md").read_text()

  logged = write_results(tmp_path / "logged", toy_records())
  for seed in (0, 1):
    _write_metrics(logged, "random", seed, _rows([1.0, 0.5], [0.1, 0.9], [0, 1]))
    _write_metrics(logged, "margin", seed, _rows([0.8, 0.4], [0.2, 0.8], [0, 1]))
  paths = report.run_report([logged], tmp_path / "out_logged", quiet=True)
  text = (tmp_path / "out_logged" / "report.md").read_text()
  assert "![training curves](training_curves.png)" in text and "mean over 2 seeds" in text
  # one line per label that logged, in its report color; npc logged nothing
  colors = {label: report.COLORS[i] for i, label in enumerate(LABELS)}
  _, counts = rgb_counts(paths["training_png"], list(colors.values()))
  assert counts[colors["random"]] > 50 and counts[colors["margin"]] > 50
  assert counts[colors["npc (zero-shot)"]] == 0
