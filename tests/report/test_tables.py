"""assljax.report.tables: Markdown and CSV cells of the toy report, by hand."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from report_toy import ACC, LABELS

from assljax import report


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
