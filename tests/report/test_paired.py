"""assljax.report.paired: paired differences to a reference, against hand-computed values."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from report_toy import rgb_counts, write_results

from assljax import report
from assljax.app import cli
from assljax.report import tables

T_975_2 = 4.302652729749464   # t quantile (0.975, 2 degrees of freedom), from a table
COUNTS = [4, 6, 8]            # labels per round: 4 initial, 2 queried after rounds 0 and 1
HISTOGRAMS = [[1, 1, 1, 1], [2, 2, 1, 1], [2, 2, 2, 2]]
# DIFFS[label][seed]: accuracy − random's in percentage points, per round. random is 50 %.
DIFFS = {
  "npc": {0: [0, 2, 1], 1: [0, 3, 2], 2: [0, 4, 6]},
  "bad": {0: [0, -3, -1], 1: [0, -4, -1], 2: [0, -5, -1]},
}


def _run(label, seed, accuracies, *, rounds=3, strategy=None):
  """The records of one run: rounds with COUNTS[r] labels and accuracies[r] (fraction)."""
  return [{
    "experiment": "paired_exp", "dataset": "toyset", "strategy": strategy or label,
    "label": label, "seed": seed, "round": r, "num_labels": COUNTS[r],
    "test_accuracy": accuracies[r], "per_class_accuracy": [0.5] * 4,
    "labeled_class_histogram": list(HISTOGRAMS[r]),
    "queried_indices": [100 * seed + 2 * r, 100 * seed + 2 * r + 1] if r < 2 else [],
    "acquisition_seconds": 0.5 if r < 2 else 0.0, "training_seconds": 2.0,
    "num_classes": 4, "class_names": ["a", "b", "c", "d"],
  } for r in range(rounds)]


def _records(seeds=(0, 1, 2), labels=("npc", "bad")):
  records = []
  for seed in seeds:
    records += _run("random", seed, [0.5, 0.5, 0.5])
  for label in labels:
    for seed in seeds:
      records += _run(label, seed, [0.5 + d / 100 for d in DIFFS[label][seed]])
  return records


def _t_interval(d):
  d = np.asarray(d, np.float64)
  mean = d.sum() / d.size
  sd = math.sqrt(((d - mean) ** 2).sum() / (d.size - 1))
  half = T_975_2 * sd / math.sqrt(d.size)
  return mean, mean - half, mean + half


def test_three_seeds_by_hand():
  paired = report.paired_comparison(_records())
  assert paired["reference"] == "random" and paired["interval"] == "t"
  assert paired["labels"] == ["npc", "bad"] and paired["unit"] == "percentage points"
  npc = paired["comparisons"]["npc"]
  assert npc["strategy"] == "npc" and npc["seeds"] == [0, 1, 2]
  assert npc["unpaired_seeds"] == {"label": [], "reference": []}
  assert npc["initial_labels_differ"] == []
  b = npc["by_num_labels"]
  assert b["x"] == COUNTS and b["n_seeds"] == [3, 3, 3]
  assert b["seeds"] == [[0, 1, 2]] * 3
  np.testing.assert_allclose(b["differences"], [[0, 0, 0], [2, 3, 4], [1, 2, 6]], atol=1e-9)
  np.testing.assert_allclose(b["reference_mean"], [50, 50, 50])
  np.testing.assert_allclose(b["label_mean"], [50, 53, 53])

  # 4 labels: the shared initial round, three exact ties, a zero-width interval at 0.
  assert b["mean"][0] == 0.0 and (b["ci_low"][0], b["ci_high"][0]) == (0.0, 0.0)
  assert (b["wins"][0], b["ties"][0], b["losses"][0]) == (0, 3, 0)
  assert b["verdict"][0] == "not distinguishable from random at 3 seeds"
  # 6 labels: d = 2, 3, 4; mean 3, sd 1, half-width 4.3027 / √3 = 2.4841 -> [0.516, 5.484].
  assert b["mean"][1] == pytest.approx(3.0)
  assert b["ci_low"][1] == pytest.approx(3 - T_975_2 / math.sqrt(3), abs=1e-9)
  assert b["ci_high"][1] == pytest.approx(5.484138, abs=1e-6)
  assert (b["wins"][1], b["ties"][1], b["losses"][1]) == (3, 0, 0)
  assert b["verdict"][1] == "ahead of random (95 % CI excludes 0)"
  # 8 labels: d = 1, 2, 6; mean 3, sd √7, half-width 4.3027 · √7 / √3 = 6.5724.
  assert b["mean"][2] == pytest.approx(3.0)
  assert b["ci_low"][2] == pytest.approx(3 - T_975_2 * math.sqrt(7 / 3), abs=1e-9)
  assert b["ci_high"][2] == pytest.approx(9.572411, abs=1e-6)
  assert b["verdict"][2] == "not distinguishable from random at 3 seeds"

  # AULC differences per seed: (0 + 2 + 1) / 3 = 1, 5/3, 10/3; mean 2, sd √13 / 3.
  a = npc["aulc"]
  assert a["seeds"] == [0, 1, 2] and a["excluded_seeds"] == [] and a["n_seeds"] == 3
  np.testing.assert_allclose(a["differences"], [1, 5 / 3, 10 / 3], atol=1e-9)
  assert a["label_mean"] == pytest.approx(52.0) and a["reference_mean"] == pytest.approx(50.0)
  half = T_975_2 * (math.sqrt(13) / 3) / math.sqrt(3)
  assert (a["mean"], a["ci_low"], a["ci_high"]) == pytest.approx((2, 2 - half, 2 + half))
  assert (a["wins"], a["ties"], a["losses"]) == (3, 0, 0)
  assert a["verdict"] == "not distinguishable from random at 3 seeds"
  for d, m, lo, hi in zip(b["differences"], b["mean"], b["ci_low"], b["ci_high"]):
    assert (m, lo, hi) == pytest.approx(_t_interval(d), abs=1e-9)

  bad = paired["comparisons"]["bad"]
  # 6 labels: d = -3, -4, -5 -> [-6.484, -1.516]; AULC d = -4/3, -5/3, -2 (sd 1/3).
  assert bad["by_num_labels"]["verdict"][1] == "behind random (95 % CI excludes 0)"
  assert bad["by_num_labels"]["ci_high"][1] == pytest.approx(-4 + T_975_2 / math.sqrt(3))
  assert (bad["by_num_labels"]["losses"][1], bad["by_num_labels"]["wins"][1]) == (3, 0)
  # 8 labels: d = -1, -1, -1 exactly: sd 0, a zero-width interval that excludes 0.
  assert bad["by_num_labels"]["ci_low"][2] == pytest.approx(-1.0)
  assert bad["by_num_labels"]["ci_high"][2] == pytest.approx(-1.0)
  assert bad["aulc"]["mean"] == pytest.approx(-5 / 3)
  assert bad["aulc"]["ci_high"] == pytest.approx(-5 / 3 + T_975_2 / 3 / math.sqrt(3))
  assert bad["aulc"]["verdict"] == "behind random (95 % CI excludes 0)"


def test_unpaired_seeds_are_left_out_and_listed():
  records = _records()
  records += _run("random", 7, [0.9, 0.9, 0.9])   # no npc/bad partner
  records += _run("npc", 8, [0.1, 0.1, 0.1])      # no random partner
  paired = report.paired_comparison(records)
  npc = paired["comparisons"]["npc"]
  assert npc["seeds"] == [0, 1, 2]
  assert npc["unpaired_seeds"] == {"label": [8], "reference": [7]}
  assert paired["comparisons"]["bad"]["unpaired_seeds"] == {"label": [], "reference": [7]}
  # The numbers are those of the three paired seeds.
  assert npc["by_num_labels"]["mean"][1] == pytest.approx(3.0)
  assert npc["by_num_labels"]["n_seeds"] == [3, 3, 3]
  assert npc["aulc"]["mean"] == pytest.approx(2.0)


def test_unfinished_run_is_left_out_of_aulc_only():
  records = [r for r in _records() if not (r["label"] == "npc" and r["seed"] == 2
                                           and r["round"] == 2)]
  paired = report.paired_comparison(records)
  npc = paired["comparisons"]["npc"]
  assert npc["by_num_labels"]["n_seeds"] == [3, 3, 2]
  assert npc["by_num_labels"]["seeds"][2] == [0, 1]
  assert npc["by_num_labels"]["mean"][2] == pytest.approx(1.5)
  assert npc["aulc"]["excluded_seeds"] == [2] and npc["aulc"]["seeds"] == [0, 1]
  assert npc["aulc"]["mean"] == pytest.approx((1 + 5 / 3) / 2)
  assert tables.paired_notes(paired) == [
      "npc: seed 2 covers other label counts than random (a run unfinished?) and is left out "
      "of the AULC."]


def test_one_seed_has_no_interval():
  paired = report.paired_comparison(_records(seeds=(1,)))
  b = paired["comparisons"]["npc"]["by_num_labels"]
  assert b["n_seeds"] == [1, 1, 1]
  assert b["mean"][1] == pytest.approx(3.0)
  assert all(math.isnan(v) for v in b["ci_low"] + b["ci_high"])
  assert b["verdict"] == ["1 paired seed: no interval (needs 2 or more seeds)"] * 3
  assert (b["wins"][1], b["ties"][0]) == (1, 1)
  a = paired["comparisons"]["npc"]["aulc"]
  assert math.isnan(a["ci_low"]) and a["verdict"].startswith("1 paired seed")
  boot = report.paired_comparison(_records(seeds=(1,)), interval="bootstrap")
  assert math.isnan(boot["comparisons"]["npc"]["aulc"]["ci_high"])


def test_bootstrap_by_hand():
  # Two seeds with d = 1 and 3: resampled means are 1, 2, 3 with probability 1/4, 1/2,
  # 1/4, so the 2.5 and 97.5 percentiles over 10,000 resamples are exactly 1 and 3.
  records = _records(seeds=(0, 1), labels=("npc",))
  records = [dict(r, test_accuracy=0.5 + (0.01 if r["seed"] == 0 else 0.03))
             if r["label"] == "npc" and r["round"] == 2 else r for r in records]
  paired = report.paired_comparison(records, interval="bootstrap")
  assert paired["interval"] == "bootstrap"
  assert paired["resamples"] == 10_000 and paired["seed"] == 0
  b = paired["comparisons"]["npc"]["by_num_labels"]
  assert (b["ci_low"][2], b["ci_high"][2]) == pytest.approx((1.0, 3.0))
  assert (b["ci_low"][0], b["ci_high"][0]) == (0.0, 0.0)          # all ties
  # Three seeds: inside [min d, max d], and the same with the same seed.
  again = [report.paired_comparison(_records(), interval="bootstrap", seed=5)
           for _ in range(2)]
  assert again[0] == again[1]
  b = again[0]["comparisons"]["npc"]["by_num_labels"]
  assert 1.0 - 1e-9 <= b["ci_low"][2] < 3.0 < b["ci_high"][2] <= 6.0 + 1e-9


def test_tie_tolerance_and_reference_choice():
  paired = report.paired_comparison(_records(), tie_tolerance=1.5)
  b = paired["comparisons"]["npc"]["by_num_labels"]
  assert (b["wins"][2], b["ties"][2], b["losses"][2]) == (2, 1, 0)   # d = 1, 2, 6
  bad = paired["comparisons"]["bad"]["by_num_labels"]
  assert (bad["wins"][2], bad["ties"][2], bad["losses"][2]) == (0, 3, 0)  # d = -1 x 3
  other = report.paired_comparison(_records(), reference="npc")
  assert other["labels"] == ["random", "bad"]
  assert other["comparisons"]["random"]["by_num_labels"]["mean"][1] == pytest.approx(-3.0)
  assert other["comparisons"]["random"]["aulc"]["verdict"] == (
      "not distinguishable from npc at 3 seeds")


def test_different_initial_labels_are_flagged():
  records = _records()
  for r in records:
    if r["label"] == "npc" and r["seed"] == 1 and r["round"] == 0:
      r["labeled_class_histogram"] = [2, 0, 1, 1]
  paired = report.paired_comparison(records)
  assert paired["comparisons"]["npc"]["initial_labels_differ"] == [1]
  assert tables.paired_notes(paired) == [
      "npc: seed 1 starts from other initial labels than random, so it is not paired by the "
      "initial labels; read with care."]


@pytest.mark.parametrize("options, message", [
  (dict(reference="badge"), r"reference label 'badge' is not in the records \(labels: "
                            r"'random', 'npc', 'bad'\); choose one with --reference\."),
  (dict(interval="normal"), "interval must be one of t, bootstrap"),
  (dict(tie_tolerance=-1.0), "tie_tolerance must be a finite number >= 0"),
  (dict(level=95), r"level must be a number in \(0, 1\)"),
  (dict(resamples=0), "resamples must be a positive int"),
])
def test_bad_options(options, message):
  with pytest.raises(ValueError, match=message):
    report.paired_comparison(_records(), **options)


# -------------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def paired_report(tmp_path_factory):
  root = tmp_path_factory.mktemp("paired")
  records = _records() + _run("random", 7, [0.9, 0.9, 0.9])
  return report.write_report(records, root / "out")


def test_csv_and_markdown(paired_report):
  with open(paired_report["paired_csv"], encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [(r["label"], r["metric"], r["num_labels"]) for r in rows] == (
      [("npc", "aulc", "")] + [("npc", "accuracy", str(x)) for x in COUNTS]
      + [("bad", "aulc", "")] + [("bad", "accuracy", str(x)) for x in COUNTS])
  row = rows[2]   # npc at 6 labels
  assert (row["strategy"], row["reference"], row["n_seeds"]) == ("npc", "random", "3")
  assert float(row["mean_difference_pp"]) == pytest.approx(3.0)
  assert float(row["ci_low_pp"]) == pytest.approx(3 - T_975_2 / math.sqrt(3), abs=1e-5)
  assert (row["wins"], row["ties"], row["losses"]) == ("3", "0", "0")
  assert row["verdict"] == "ahead of random (95 % CI excludes 0)"
  assert float(rows[0]["ci_high_pp"]) == pytest.approx(2 + T_975_2 * math.sqrt(13) / 3
                                                       / math.sqrt(3), abs=1e-5)

  md = open(paired_report["paired_md"], encoding="utf-8").read()
  assert "95 % paired t interval over seeds" in md
  assert ("| npc | 3 | 52.00 | 50.00 | +2.00 | [-0.99, +4.99] | 3/0/0 | "
          "not distinguishable from random at 3 seeds |") in md
  assert ("| npc | 6 | 3 | +3.00 | [+0.52, +5.48] | 3/0/0 | "
          "ahead of random (95 % CI excludes 0) |") in md
  assert ("| bad | 6 | 3 | -4.00 | [-6.48, -1.52] | 0/0/3 | "
          "behind random (95 % CI excludes 0) |") in md
  assert "npc: random's seed 7 has no npc run and is left out." in md
  report_md = open(paired_report["report_md"], encoding="utf-8").read()
  assert "## Paired differences to random" in report_md
  assert "![paired differences](paired_differences.png)" in report_md
  assert "### Area under the learning curve" in report_md


def test_summary_json_paired_section(paired_report):
  doc = json.loads(open(paired_report["summary_json"], encoding="utf-8").read())
  p = doc["paired"]
  assert p["reference"] == "random" and p["labels"] == ["npc", "bad"]
  assert p["comparisons"]["npc"]["by_num_labels"]["mean"] == pytest.approx([0.0, 3.0, 3.0])
  assert p["comparisons"]["npc"]["unpaired_seeds"] == {"label": [], "reference": [7]}
  assert doc["files"]["paired_csv"] == "paired_table.csv"


def test_figure_one_line_per_label_and_no_reference(paired_report):
  image, counts = rgb_counts(paired_report["paired_png"], report.COLORS)
  assert float(image[..., :3].var()) > 1e-3
  # Labels in summary order: random (0, the reference: not drawn), npc (1), bad (2).
  assert counts[report.COLORS[0]] == 0, counts
  assert counts[report.COLORS[1]] > 1000 and counts[report.COLORS[2]] > 1000, counts
  assert all(counts[c] == 0 for c in report.COLORS[3:]), counts


def test_one_seed_writes_null_and_dash(tmp_path):
  paths = report.write_report(_records(seeds=(0,)), tmp_path)
  doc = json.loads(open(paths["summary_json"], encoding="utf-8").read())
  assert doc["paired"]["comparisons"]["npc"]["aulc"]["ci_low"] is None
  md = open(paths["paired_md"], encoding="utf-8").read()
  assert "| npc | 1 | 51.00 | 50.00 | +1.00 | – | 1/0/0 | 1 paired seed: no interval" in md


def test_no_reference_label_skips_the_paired_files(tmp_path):
  records = [r for r in _records() if r["label"] != "random"]
  paths = report.write_report(records, tmp_path)
  assert not any(key.startswith("paired") for key in paths)
  assert not (tmp_path / "paired_table.md").exists()
  assert "Not computed: there is no 'random' label" in open(paths["report_md"]).read()
  assert json.loads(open(paths["summary_json"]).read())["paired"] is None
  with pytest.raises(ValueError, match="reference label 'random' is not in the records"):
    report.write_report(records, tmp_path, reference="random")


# ---------------------------------------------------------------------------------- CLI


def test_cli_prints_aulc_table_and_options(tmp_path, capsys):
  run = write_results(tmp_path / "run", _records())
  assert cli.main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
  out = capsys.readouterr().out
  assert "AULC (mean accuracy over rounds, %) minus random's" in out
  assert "not distinguishable from random at 3 seeds" in out
  assert "behind random (95 % CI excludes 0)" in out
  assert cli.main(["report", str(run), "--out", str(tmp_path / "boot"), "--reference", "npc",
                   "--interval", "bootstrap", "--tie-tolerance", "0.5", "--quiet"]) == 0
  assert capsys.readouterr().out == ""
  doc = json.loads((tmp_path / "boot" / "summary.json").read_text())
  assert doc["paired"]["reference"] == "npc" and doc["paired"]["interval"] == "bootstrap"
  assert doc["paired"]["tie_tolerance"] == 0.5


@pytest.mark.parametrize("extra, message", [
  (["--reference", "badge"], "reference label 'badge' is not in the records"),
  (["--interval", "normal"], "invalid choice: 'normal'"),
  (["--tie-tolerance", "-1"], "tie_tolerance must be a finite number >= 0"),
])
def test_cli_bad_options_one_line(tmp_path, capsys, extra, message):
  run = write_results(tmp_path / "run", _records())
  assert cli.main(["report", str(run), "--out", str(tmp_path / "out")] + extra) == 2
  err = capsys.readouterr().err
  assert err.startswith("assljax: error: ") and message in err and err.count("\n") == 1
