"""assljax.report.figures: figures read back as pixels (a label's exact color is its curve)."""

from __future__ import annotations

import json

import numpy as np
from report_toy import LABELS, rgb_counts, toy_records

from assljax import report


def test_learning_curve_png_has_one_curve_per_label(written):
  image, counts = rgb_counts(written["learning_curves_png"], report.COLORS)
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
    image, counts = rgb_counts(written[key], report.COLORS)
    assert float(image[..., :3].var()) > 1e-3
    if key == "histogram_png":                       # one bar series per label
      assert all(counts[c] > 500 for c in report.COLORS[:3]), counts
      assert all(counts[c] == 0 for c in report.COLORS[3:]), counts


def test_many_labels_use_panels_and_keep_one_color_each(tmp_path):
  # Seven labels (more than fit as grouped bars): one histogram panel per label.
  base = [r for r in toy_records() if r["label"] == "random"]
  records = [dict(r, label=f"variant {k}", strategy=f"s{k}",
                  test_accuracy=r["test_accuracy"] + 0.05 * k) for k in range(7) for r in base]
  paths = report.write_report(records, tmp_path)
  for key, minimum in (("histogram_png", 500), ("learning_curves_png", 2000)):
    _, counts = rgb_counts(paths[key], report.COLORS)
    assert all(counts[c] > minimum for c in report.COLORS[:7]), (key, counts)
    assert all(counts[c] == 0 for c in report.COLORS[7:]), (key, counts)
  doc = json.loads(open(paths["summary_json"], encoding="utf-8").read())
  assert len(doc["curves"]) == 7 and len(set(doc["colors"].values())) == 7
  # Identical acquisitions: every pair overlaps completely.
  np.testing.assert_allclose(doc["iou"]["matrix"], np.ones((7, 7)))
