"""assljax.report: summary numbers by hand, tables, figures read back as pixels, bad input."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from assljax import report

CLASS_NAMES = ["cat", "dog", "frog", "ship"]
LABELS = ["random", "margin", "npc (zero-shot)"]
STRATEGY = {"random": "random", "margin": "margin", "npc (zero-shot)": "npc"}
SEEDS = (0, 1)
ROUNDS = 4
INITIAL = [1, 1, 1, 1]   # 4 initial labels, one per class; each round queries 2 more.

# ACC[label][seed][round]: test accuracy (fraction).
ACC = {
  "random": [[0.301, 0.405, 0.502, 0.553], [0.305, 0.395, 0.498, 0.557]],
  "margin": [[0.350, 0.450, 0.560, 0.610], [0.340, 0.470, 0.540, 0.630]],
  "npc (zero-shot)": [[0.320, 0.480, 0.600, 0.700], [0.320, 0.460, 0.620, 0.660]],
}
# QUERIED[label][seed][round]: pool indices acquired after that round (none in the last).
QUERIED = {
  "random": [[[0, 1], [2, 3], [4, 5], []], [[10, 11], [12, 13], [14, 15], []]],
  "margin": [[[0, 1], [2, 20], [21, 22], []], [[10, 11], [12, 13], [14, 30], []]],
  "npc (zero-shot)": [[[40, 41], [42, 43], [44, 45], []], [[10, 40], [41, 42], [43, 44], []]],
}


def _class_of(index: int) -> int:
  return index % 4


def _records(labels=LABELS, seeds=SEEDS) -> list[dict]:
  records = []
  for li, label in enumerate(labels):
    for seed in seeds:
      hist = list(INITIAL)
      for rnd in range(ROUNDS):
        queried = QUERIED[label][seed % 2][rnd]
        records.append({
          "experiment": "toy_exp", "dataset": "toyset", "strategy": STRATEGY[label],
          "label": label, "seed": seed, "round": rnd, "num_labels": sum(hist),
          "test_accuracy": ACC[label][seed % 2][rnd],
          "per_class_accuracy": [0.5, 0.5, 0.5, 0.5],
          "labeled_class_histogram": list(hist), "queried_indices": list(queried),
          "acquisition_seconds": (1.0 + li + 0.5 * rnd + 0.25 * seed) if queried else 0.0,
          "training_seconds": 10.0 * (li + 1) + rnd,
          "num_classes": 4, "class_names": list(CLASS_NAMES),
        })
        for index in queried:
          hist[_class_of(index)] += 1
  return records


def _write(path, records):
  path.mkdir(parents=True, exist_ok=True)
  (path / "results.json").write_text(json.dumps(records))
  return path


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  workdir = _write(root / "run", _records())
  paths = report.run_report([workdir], root / "out", quiet=True)
  return paths


def _rgb_counts(png_path, colors):
  import matplotlib.image
  image = matplotlib.image.imread(png_path)
  rgb = np.round(image[..., :3] * 255).astype(np.int64)
  codes = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
  return image, {c: int(np.sum(codes == int(c[1:], 16))) for c in colors}


# ------------------------------------------------------------------------------ summary


def test_curves_match_numpy():
  summary = report.summarize(_records())
  assert summary["labels"] == LABELS
  assert summary["accuracy_unit"] == "percent"
  for label in LABELS:
    acc = np.array(ACC[label], np.float64)              # (seeds, rounds)
    curve = summary["curves"][label]
    assert curve["x"] == [4, 6, 8, 10]
    np.testing.assert_allclose(curve["mean"], 100 * acc.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(curve["std"], 100 * acc.std(axis=0), rtol=1e-12, atol=1e-12)
    assert curve["n_seeds"] == [2, 2, 2, 2]
  # By hand: margin at 10 labels is (61 + 63) / 2 = 62 % with population std 1 %.
  assert summary["curves"]["margin"]["mean"][3] == pytest.approx(62.0)
  assert summary["curves"]["margin"]["std"][3] == pytest.approx(1.0)


def test_timing_and_histograms_by_hand():
  summary = report.summarize(_records())
  for li, label in enumerate(LABELS):
    t = summary["timing"][label]
    assert t["round"] == [0, 1, 2, 3]
    # Acquisition of round r, seed s: 1 + li + 0.5 r + 0.25 s (none in the last round).
    np.testing.assert_allclose(t["acquisition_seconds"],
                               [1.125 + li, 1.625 + li, 2.125 + li, 0.0])
    assert t["acquisition_mean"] == pytest.approx(1.625 + li)
    assert t["training_mean"] == pytest.approx(10.0 * (li + 1) + 1.5)
    # A run: acquisition 3 (1 + li) + 1.5 + 0.75 s, training 40 (li + 1) + 6.
    expected_total = np.mean([3 * (1 + li) + 1.5 + 0.75 * s + 40 * (li + 1) + 6 for s in SEEDS])
    assert t["total_mean"] == pytest.approx(expected_total)
    assert t["num_seeds"] == 2
  h = summary["histograms"]
  # random: seed 0 adds classes of {0..5} -> [3,3,2,2]; seed 1 of {10..15} -> [2,2,3,3].
  np.testing.assert_allclose(h["random"]["mean"], [2.5, 2.5, 2.5, 2.5])
  np.testing.assert_allclose(h["random"]["std"], [0.5, 0.5, 0.5, 0.5])
  assert h["random"]["imbalance_ratio"] == pytest.approx(1.0)
  # margin: {0,1,2,20,21,22} -> [3,3,3,1]; {10,...,14,30} -> [2,2,4,2].
  np.testing.assert_allclose(h["margin"]["mean"], [2.5, 2.5, 3.5, 1.5])
  assert h["margin"]["imbalance_ratio"] == pytest.approx(3.5 / 1.5)
  assert h["margin"]["num_labels"] == 10.0
  assert h["margin"]["seeds"] == [0, 1]


def test_iou_by_hand():
  summary = report.summarize(_records())
  m = np.array(summary["iou"]["matrix"])
  assert summary["iou"]["labels"] == LABELS
  np.testing.assert_allclose(np.diag(m), 1.0)
  np.testing.assert_allclose(m, m.T)
  # random vs margin: seed 0 {0,1,2} of 9 -> 1/3; seed 1 {10,...,14} of 7 -> 5/7.
  assert m[0, 1] == pytest.approx((1 / 3 + 5 / 7) / 2)
  # random/margin vs npc: seed 0 disjoint -> 0; seed 1 share only {10} of 11 -> 1/11.
  assert m[0, 2] == pytest.approx((0 + 1 / 11) / 2)
  assert m[1, 2] == pytest.approx((0 + 1 / 11) / 2)
  assert summary["iou"]["num_seeds"] == [[2, 2, 2]] * 3


def test_iou_averages_only_shared_seeds_and_marks_undefined():
  records = _records()
  # A third seed for random only: it must not enter random's IoU with the others.
  extra = [dict(r, seed=2, queried_indices=[100 + 2 * r["round"], 101 + 2 * r["round"]]
                if r["queried_indices"] else [])
           for r in records if r["label"] == "random" and r["seed"] == 0]
  single = [dict(records[0], label="one-shot", strategy="passive", seed=0,
                 queried_indices=[], acquisition_seconds=0.0)]
  summary = report.summarize(records + extra + single)
  m = np.array(summary["iou"]["matrix"], np.float64)
  assert m[0, 1] == pytest.approx((1 / 3 + 5 / 7) / 2)
  assert summary["iou"]["num_seeds"][0][1] == 2
  assert summary["iou"]["num_seeds"][0][0] == 3
  # "one-shot" queried nothing: IoU with itself is undefined, with random it is 0.
  assert np.isnan(m[3, 3]) and m[0, 3] == 0.0
  assert np.isnan(summary["timing"]["one-shot"]["acquisition_mean"])
  # random's curve now averages three seeds.
  assert summary["curves"]["random"]["n_seeds"] == [3, 3, 3, 3]


# ------------------------------------------------------------------------------- tables


def test_markdown_and_csv_cells(written):
  with open(written["accuracy_csv"], encoding="utf-8") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["label", "4", "6", "8", "10"]
  table = {row[0]: row[1:] for row in rows[1:]}
  assert list(table) == LABELS
  assert table["random"][0] == "30.3 ± 0.2"
  assert table["margin"][3] == "62.0 ± 1.0"
  assert table["npc (zero-shot)"][3] == "68.0 ± 2.0"
  for label in LABELS:
    acc = 100 * np.array(ACC[label])
    assert table[label] == [f"{m:.1f} ± {s:.1f}" for m, s in zip(acc.mean(0), acc.std(0))]

  md = open(written["accuracy_md"], encoding="utf-8").read()
  assert "| Label | 4 | 6 | 8 | 10 |" in md
  # Best mean per column in bold: margin at 4 labels, npc from 6 on.
  assert "| margin | **34.5 ± 0.5** | 46.0 ± 1.0 | 55.0 ± 1.0 | 62.0 ± 1.0 |" in md
  assert ("| npc (zero-shot) | 32.0 ± 0.0 | **47.0 ± 1.0** | **61.0 ± 1.0** | **68.0 ± 2.0** |"
          in md)

  timing = open(written["timing_md"], encoding="utf-8").read()
  assert "| random | 4 | 1.62 | 11.5 | 50.9 |" in timing  # total: (50.5 + 51.25) / 2
  with open(written["iou_csv"], encoding="utf-8") as f:
    iou = list(csv.reader(f))
  assert iou[0] == ["label"] + LABELS
  assert float(iou[1][2]) == pytest.approx((1 / 3 + 5 / 7) / 2, abs=1e-5)
  assert "| random | 1.00 | 0.52 | 0.05 |" in open(written["iou_md"], encoding="utf-8").read()
  hist_md = open(written["histogram_md"], encoding="utf-8").read()
  assert "| margin | 10 | 2.5 | 2.5 | 3.5 | 1.5 | 2.33 |" in hist_md
  report_md = open(written["report_md"], encoding="utf-8").read()
  assert "![learning curves](learning_curves.png)" in report_md and "**68.0 ± 2.0**" in report_md


def test_summary_json_holds_plotted_series(written):
  doc = json.loads(open(written["summary_json"], encoding="utf-8").read())
  assert doc["labels"] == LABELS
  assert len(doc["curves"]) == 3
  assert doc["colors"] == dict(zip(LABELS, report.COLORS[:3]))
  for label in LABELS:
    acc = 100 * np.array(ACC[label])
    np.testing.assert_allclose(doc["curves"][label]["mean"], acc.mean(0))
    np.testing.assert_allclose(doc["curves"][label]["std"], acc.std(0), atol=1e-12)
    assert doc["curves"][label]["x"] == [4, 6, 8, 10]


# ------------------------------------------------------------------------------ figures


def test_learning_curve_png_has_one_curve_per_label(written):
  image, counts = _rgb_counts(written["learning_curves_png"], report.COLORS)
  assert image.ndim == 3 and image.shape[0] > 400 and image.shape[1] > 600
  assert float(image[..., :3].var()) > 1e-3          # not blank
  # Each label's exact color covers a whole curve (far more than its legend swatch) ...
  for color in report.COLORS[:3]:
    assert counts[color] > 2000, counts
  # ... and no further color of the cycle appears: exactly three curves were drawn.
  for color in report.COLORS[3:]:
    assert counts[color] == 0, counts


def test_curve_is_drawn_where_the_data_says(written):
  # The highest data point (npc, 68 % at 10 labels) is drawn highest: npc's color reaches
  # higher in the image (smaller row index) than any other label's.
  import matplotlib.image
  image = matplotlib.image.imread(written["learning_curves_png"])
  rgb = np.round(image[..., :3] * 255).astype(np.int64)
  top = {}
  for color in report.COLORS[:3]:
    target = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
    rows, cols = np.nonzero(np.all(rgb == target, axis=-1))
    right = cols > np.percentile(cols, 90)            # the right end of the curve
    top[color] = rows[right].min()
  assert top[report.COLORS[2]] < top[report.COLORS[1]] < top[report.COLORS[0]]


def test_svg_and_other_figures(written):
  svg = open(written["learning_curves_svg"], encoding="utf-8").read()
  assert svg.lstrip().startswith("<?xml") and "<svg" in svg
  for text in LABELS + ["toy_exp", "toyset", "Test accuracy (%)"]:
    assert text in svg
  for key in ("histogram_png", "iou_png"):
    image, counts = _rgb_counts(written[key], report.COLORS)
    assert float(image[..., :3].var()) > 1e-3
    if key == "histogram_png":                       # one bar series per label
      assert all(counts[c] > 500 for c in report.COLORS[:3]), counts
      assert all(counts[c] == 0 for c in report.COLORS[3:]), counts


def test_many_labels_use_panels_and_keep_one_color_each(tmp_path):
  # Seven labels (more than fit as grouped bars): one histogram panel per label.
  base = [r for r in _records() if r["label"] == "random"]
  records = [dict(r, label=f"variant {k}", strategy=f"s{k}",
                  test_accuracy=r["test_accuracy"] + 0.05 * k) for k in range(7) for r in base]
  paths = report.write_report(records, tmp_path)
  for key, minimum in (("histogram_png", 500), ("learning_curves_png", 2000)):
    _, counts = _rgb_counts(paths[key], report.COLORS)
    assert all(counts[c] > minimum for c in report.COLORS[:7]), (key, counts)
    assert all(counts[c] == 0 for c in report.COLORS[7:]), (key, counts)
  doc = json.loads(open(paths["summary_json"], encoding="utf-8").read())
  assert len(doc["curves"]) == 7 and len(set(doc["colors"].values())) == 7
  # Identical acquisitions: every pair overlaps completely.
  np.testing.assert_allclose(doc["iou"]["matrix"], np.ones((7, 7)))


# ------------------------------------------------------------------------------ loading


def test_load_records_dirs_and_files_concatenate(tmp_path):
  records = _records()
  a = _write(tmp_path / "a", [r for r in records if r["label"] != "margin"])
  b = _write(tmp_path / "b", [r for r in records if r["label"] == "margin"])
  loaded = report.load_records([a, b / "results.json"])
  assert len(loaded) == len(records)
  assert report.load_records(str(a)) == [r for r in records if r["label"] != "margin"]
  got = report.summarize(loaded)
  want = report.summarize(records)
  assert got["curves"] == want["curves"] and got["iou"]["num_seeds"] == want["iou"]["num_seeds"]
  assert got["labels"] == ["random", "npc (zero-shot)", "margin"]
  perm = [0, 2, 1]
  np.testing.assert_allclose(got["iou"]["matrix"],
                             np.array(want["iou"]["matrix"])[perm][:, perm])


def _bad(tmp_path, mutate):
  records = _records()
  mutate(records)
  return _write(tmp_path / "bad", records)


@pytest.mark.parametrize("mutate, message", [
  (lambda rs: rs[3].pop("test_accuracy"), r"record 3 is missing field 'test_accuracy'"),
  (lambda rs: rs[0].update(seed="0"), r"record 0: field 'seed' must be an int"),
  (lambda rs: rs[0].update(seed=True), r"field 'seed' must be an int"),
  (lambda rs: rs[1].update(test_accuracy=61.0), r"'test_accuracy' must be a fraction in \[0, 1\]"),
  (lambda rs: rs[1].update(queried_indices=[1, "2"]), r"'queried_indices' must be a list of ints"),
  (lambda rs: rs[2].update(labeled_class_histogram=[9, 0, 0, 0]), r"sums to 9, but 'num_labels'"),
  (lambda rs: rs[2].update(class_names=["a"]), r"'class_names' has length 1"),
  (lambda rs: rs[5].update(dataset="other"), r"report one dataset at a time"),
  (lambda rs: rs[5].update(strategy="badge"), r"label 'random' names strategy 'badge'"),
  (lambda rs: rs[1].update(queried_indices=[0, 7]), r"queries pool index 0 in rounds 0 and 1"),
])
def test_bad_fields_name_file_and_problem(tmp_path, mutate, message):
  path = _bad(tmp_path, mutate)
  with pytest.raises(ValueError, match=message) as info:
    report.load_records([path])
  if "record" in message:
    assert str(path / "results.json") in str(info.value)


def test_bad_files(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    report.load_records([tmp_path / "nowhere"])
  (tmp_path / "empty_dir").mkdir()
  with pytest.raises(ValueError, match="has no results.json"):
    report.load_records([tmp_path / "empty_dir"])
  bad = tmp_path / "broken.json"
  bad.write_text("[{'not': json}")
  with pytest.raises(ValueError, match="broken.json is not valid JSON"):
    report.load_records(bad)
  bad.write_text('{"records": []}')
  with pytest.raises(ValueError, match="must hold a JSON list of records, got dict"):
    report.load_records(bad)
  bad.write_text("[]")
  with pytest.raises(ValueError, match="holds no records"):
    report.load_records(bad)
  with pytest.raises(ValueError, match="at least one"):
    report.load_records([])
  run = _write(tmp_path / "run", _records())
  with pytest.raises(ValueError, match=r"round 0 appears twice .*pass each workdir once"):
    report.load_records([run, run])
  with pytest.raises(ValueError, match="records is empty"):
    report.summarize([])
  with pytest.raises(ValueError, match="record 0 must be a JSON object"):
    report.summarize([1])
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="not a directory"):
    report.write_report(_records(), tmp_path / "file")


# ---------------------------------------------------------------------------------- CLI


def test_main_prints_table_and_writes(tmp_path, capsys):
  run = _write(tmp_path / "run", _records())
  assert report.main([str(run), "--out", str(tmp_path / "out")]) == 0
  out = capsys.readouterr().out
  assert "toy_exp — toyset" in out
  assert "npc (zero-shot)" in out and "68.0 ± 2.0" in out
  assert (tmp_path / "out" / "learning_curves.png").is_file()
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(report._FILES.values())


def test_module_cli_bad_input_and_light_import(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "assljax.report", str(tmp_path / "missing"),
                         "--out", str(tmp_path / "out")], capture_output=True, text=True)
  assert proc.returncode == 2
  assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
  code = "import sys, assljax.report; print('matplotlib' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


def test_records_are_not_modified(written):
  records = _records()
  before = copy.deepcopy(records)
  report.summarize(records)
  assert records == before
