"""assljax.report.summary: the numbers behind the report, by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from report_toy import ACC, LABELS, SEEDS, toy_records

from assljax import report


def test_curves_match_numpy():
  summary = report.summarize(toy_records())
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
  summary = report.summarize(toy_records())
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
  summary = report.summarize(toy_records())
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
  records = toy_records()
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


def test_records_are_not_modified(written):
  records = toy_records()
  before = copy.deepcopy(records)
  report.summarize(records)
  assert records == before
