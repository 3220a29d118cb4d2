"""Aggregation over seeds: the numbers behind every figure and table of the report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from assljax.report.schema import RoundRecord, as_round_records

STD_NOTE = "population std over seeds, ddof=0"


def unique(values) -> list:
  """Distinct values in order of first appearance."""
  return list(dict.fromkeys(values))


def _iou(a: set, b: set) -> float:
  union = len(a | b)
  return len(a & b) / union if union else math.nan


def summarize(records: Sequence[Mapping | RoundRecord]) -> dict:
  """The numbers behind every figure and table of the report.

  Args:
    records: result records (``load_records`` output, dicts with the same fields, or
      :class:`~assljax.report.RoundRecord`).

  Returns:
    A JSON-ready dict (NaN marks an undefined value):

    - ``experiments`` (list[str]), ``dataset``, ``num_classes`` C, ``class_names``;
      ``labels``: legend labels in order of first appearance; ``strategies``: label ->
      strategy name; ``accuracy_unit``: ``"percent"``; ``std``: how std is computed.
    - ``curves[label]``: ``x`` (num_labels, ascending), ``mean`` and ``std`` of test
      accuracy in percent over the seeds that reached ``x``, ``n_seeds``; all length n_x.
    - ``timing[label]``: per round (``round``, length R) the mean over seeds of
      ``acquisition_seconds`` and ``training_seconds``; ``acquisition_mean``: mean over
      every (seed, round) that queried samples (NaN if none did); ``training_mean``: mean
      over every (seed, round); ``total_mean``: mean over seeds of a run's total seconds;
      ``num_seeds``.
    - ``histograms[label]``: ``mean`` and ``std`` (length C) over seeds of the
      labeled-class histogram of each seed's last round, ``num_labels`` (mean labels of
      those rounds), ``seeds``, ``imbalance_ratio`` (max / min class count of ``mean``,
      inf when a class has none).
    - ``iou``: ``labels`` and ``matrix`` (L, L): IoU of the sets of all indices a run
      queried, between two labels, averaged over the seeds both have (NaN when no seed
      is shared or both sets are empty); ``num_seeds`` (L, L) the seeds averaged.

  Raises:
    ValueError: when a record breaks the schema or records contradict each other.
  """
  records = as_round_records(records)
  labels = unique(r.label for r in records)
  by_label = {label: [r for r in records if r.label == label] for label in labels}

  curves, timing, histograms = {}, {}, {}
  acquired: dict[str, dict[int, set]] = {}
  for label, rows in by_label.items():
    xs = sorted({r.num_labels for r in rows})
    accs = [np.array([r.test_accuracy for r in rows if r.num_labels == x], np.float64)
            for x in xs]
    curves[label] = {
      "x": xs,
      "mean": [float(100.0 * a.mean()) for a in accs],
      "std": [float(100.0 * a.std()) for a in accs],
      "n_seeds": [int(a.size) for a in accs],
    }

    seeds = sorted({r.seed for r in rows})
    rounds = sorted({r.round for r in rows})
    acq_per_round = [np.mean([r.acquisition_seconds for r in rows if r.round == k])
                     for k in rounds]
    train_per_round = [np.mean([r.training_seconds for r in rows if r.round == k])
                       for k in rounds]
    acq_all = [r.acquisition_seconds for r in rows if r.queried_indices]
    totals = [sum(r.acquisition_seconds + r.training_seconds for r in rows if r.seed == s)
              for s in seeds]
    timing[label] = {
      "round": rounds,
      "acquisition_seconds": [float(v) for v in acq_per_round],
      "training_seconds": [float(v) for v in train_per_round],
      "acquisition_mean": float(np.mean(acq_all)) if acq_all else math.nan,
      "training_mean": float(np.mean([r.training_seconds for r in rows])),
      "total_mean": float(np.mean(totals)),
      "num_seeds": len(seeds),
    }

    last = [max((r for r in rows if r.seed == s), key=lambda r: r.round) for s in seeds]
    hist = np.array([r.labeled_class_histogram for r in last], np.float64)   # (S, C)
    mean_hist = hist.mean(axis=0)
    lo, hi = float(mean_hist.min()), float(mean_hist.max())
    histograms[label] = {
      "mean": [float(v) for v in mean_hist],
      "std": [float(v) for v in hist.std(axis=0)],
      "num_labels": float(np.mean([r.num_labels for r in last])),
      "seeds": seeds,
      "imbalance_ratio": hi / lo if lo > 0 else math.inf,
    }

    acquired[label] = {s: {i for r in rows if r.seed == s for i in r.queried_indices}
                       for s in seeds}

  matrix, counts = [], []
  for a in labels:
    row, count_row = [], []
    for b in labels:
      common = sorted(set(acquired[a]) & set(acquired[b]))
      values = [_iou(acquired[a][s], acquired[b][s]) for s in common]
      values = [v for v in values if not math.isnan(v)]
      row.append(float(np.mean(values)) if values else math.nan)
      count_row.append(len(values))
    matrix.append(row)
    counts.append(count_row)

  first = records[0]
  return {
    "experiments": unique(r.experiment for r in records),
    "dataset": first.dataset,
    "num_classes": first.num_classes,
    "class_names": list(first.class_names),
    "labels": labels,
    "strategies": {label: by_label[label][0].strategy for label in labels},
    "accuracy_unit": "percent",
    "std": STD_NOTE,
    "curves": curves,
    "timing": timing,
    "histograms": histograms,
    "iou": {"labels": labels, "matrix": matrix, "num_seeds": counts},
  }
