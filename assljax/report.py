"""Learning curves and tables from ``results.json`` (``assljax report``).

    records = load_records(["runs/npc", "runs/random"])   # concatenated, validated
    summary = summarize(records)                          # plain dict, JSON-ready
    paths = write_report(records, "report/")              # figures, tables, summary.json

A record is one (strategy, seed, round) of ``assljax run``; the fields are fixed in
``docs/results_schema.md``. Curves are grouped by the record's ``label`` (the legend
label; the strategy name unless the config names variants), accuracies are reported in
percent as mean ± population standard deviation (``ddof=0``) over seeds.

matplotlib is imported only inside the functions that draw, and figures are rendered
with the Agg canvas directly (no pyplot, no global backend switch), so the report works
headless and from a notebook alike.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# A fixed, distinct color cycle (tab10 without its gray, which antialiased text and grid
# lines could reproduce), so that a curve's exact RGB identifies its label in the PNG.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#bcbd22", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
_LINESTYLES = ("-", "--", ":", "-.")

_STD_NOTE = "population std over seeds, ddof=0"

# field -> kind, in the order of docs/results_schema.md.
_FIELDS = {
  "experiment": "str",
  "dataset": "str",
  "strategy": "str",
  "label": "str",
  "seed": "int",
  "round": "int",
  "num_labels": "int",
  "test_accuracy": "float",
  "per_class_accuracy": "float_list",
  "labeled_class_histogram": "int_list",
  "queried_indices": "int_list",
  "acquisition_seconds": "float",
  "training_seconds": "float",
  "num_classes": "int",
  "class_names": "str_list",
}

# Names of the files write_report writes, keyed as in its returned dict.
_FILES = {
  "learning_curves_png": "learning_curves.png",
  "learning_curves_svg": "learning_curves.svg",
  "accuracy_md": "accuracy_table.md",
  "accuracy_csv": "accuracy_table.csv",
  "timing_md": "timing_table.md",
  "timing_csv": "timing_table.csv",
  "histogram_png": "class_histogram.png",
  "histogram_md": "class_histogram.md",
  "iou_png": "iou_heatmap.png",
  "iou_md": "iou_table.md",
  "iou_csv": "iou_table.csv",
  "summary_json": "summary.json",
  "report_md": "report.md",
}


# ----------------------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
  return type(value).__name__


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_record(record: Any, where: str) -> None:
  """Raises ValueError naming ``where`` when ``record`` breaks the results schema."""
  if not isinstance(record, Mapping):
    raise ValueError(f"{where} must be a JSON object, got {_type_name(record)}.")
  for name, kind in _FIELDS.items():
    if name not in record:
      raise ValueError(f"{where} is missing field {name!r}.")
    value = record[name]
    if kind == "str":
      ok = isinstance(value, str)
      expected = "a string"
    elif kind == "int":
      ok = _is_int(value)
      expected = "an int"
    elif kind == "float":
      ok = _is_number(value)
      expected = "a number"
    else:
      element = {"float_list": _is_number, "int_list": _is_int,
                 "str_list": lambda v: isinstance(v, str)}[kind]
      ok = isinstance(value, list) and all(element(v) for v in value)
      expected = {"float_list": "a list of numbers", "int_list": "a list of ints",
                  "str_list": "a list of strings"}[kind]
    if not ok:
      raise ValueError(f"{where}: field {name!r} must be {expected}, got {value!r:.80}.")

  if record["label"] == "":
    raise ValueError(f"{where}: field 'label' must not be empty.")
  for name in ("round", "num_labels"):
    if record[name] < 0:
      raise ValueError(f"{where}: field {name!r} must be >= 0, got {record[name]}.")
  num_classes = record["num_classes"]
  if num_classes < 1:
    raise ValueError(f"{where}: field 'num_classes' must be >= 1, got {num_classes}.")
  accuracy = record["test_accuracy"]
  if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
    raise ValueError(f"{where}: field 'test_accuracy' must be a fraction in [0, 1], "
                     f"got {accuracy}.")
  for name in ("acquisition_seconds", "training_seconds"):
    if not (math.isfinite(record[name]) and record[name] >= 0.0):
      raise ValueError(f"{where}: field {name!r} must be finite and >= 0, got {record[name]}.")
  for name in ("per_class_accuracy", "labeled_class_histogram", "class_names"):
    if len(record[name]) != num_classes:
      raise ValueError(f"{where}: field {name!r} has length {len(record[name])}, expected "
                       f"num_classes = {num_classes}.")
  histogram = record["labeled_class_histogram"]
  if min(histogram) < 0:
    raise ValueError(f"{where}: field 'labeled_class_histogram' has a negative count.")
  if sum(histogram) != record["num_labels"]:
    raise ValueError(f"{where}: field 'labeled_class_histogram' sums to {sum(histogram)}, "
                     f"but 'num_labels' is {record['num_labels']}.")
  queried = record["queried_indices"]
  if queried and min(queried) < 0:
    raise ValueError(f"{where}: field 'queried_indices' has a negative index.")
  if len(set(queried)) != len(queried):
    raise ValueError(f"{where}: field 'queried_indices' repeats an index.")


def _check_collection(records: Sequence[Mapping], sources: Sequence[str]) -> None:
  """Cross-record checks: one dataset and class list, unique runs and rounds."""
  first = records[0]
  for record, source in zip(records, sources):
    for name in ("dataset", "num_classes", "class_names"):
      if record[name] != first[name]:
        raise ValueError(f"{source} has {name} {record[name]!r:.60} but {sources[0]} has "
                         f"{first[name]!r:.60}; report one dataset at a time.")
  strategy_of: dict[str, tuple[str, str]] = {}
  round_seen: dict[tuple, str] = {}
  count_seen: dict[tuple, tuple[int, str]] = {}
  queried_seen: dict[tuple, dict[int, int]] = {}
  for record, source in zip(records, sources):
    label, seed, rnd = record["label"], record["seed"], record["round"]
    strategy, where = strategy_of.setdefault(label, (record["strategy"], source))
    if strategy != record["strategy"]:
      raise ValueError(f"label {label!r} names strategy {record['strategy']!r} in {source} "
                       f"but {strategy!r} in {where}; give each variant its own label.")
    key = (label, seed, rnd)
    if key in round_seen:
      raise ValueError(f"label {label!r}, seed {seed}, round {rnd} appears twice "
                       f"({round_seen[key]} and {source}); pass each workdir once.")
    round_seen[key] = source
    count_key = (label, seed, record["num_labels"])
    if count_key in count_seen:
      other_round, other = count_seen[count_key]
      raise ValueError(f"label {label!r}, seed {seed} reports {record['num_labels']} labels in "
                       f"two rounds ({other_round} in {other} and {rnd} in {source}).")
    count_seen[count_key] = (rnd, source)
    run = queried_seen.setdefault((label, seed), {})
    for index in record["queried_indices"]:
      if index in run:
        raise ValueError(f"label {label!r}, seed {seed} queries pool index {index} in rounds "
                         f"{run[index]} and {rnd} ({source}).")
      run[index] = rnd


def _check_records(records: Any) -> list[Mapping]:
  if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
    raise ValueError(f"records must be a list of result records, got {_type_name(records)}.")
  if not records:
    raise ValueError("records is empty; there is nothing to report.")
  records = list(records)
  for i, record in enumerate(records):
    _check_record(record, f"record {i}")
  _check_collection(records, [f"record {i}" for i in range(len(records))])
  return records


def load_records(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[dict]:
  """Loads and validates the records of one or more runs, concatenated in order.

  Args:
    paths: a workdir containing ``results.json``, a ``results.json`` file, or a list of
      either. Records keep the order of ``paths`` and of each file.

  Returns:
    The records, a list of dicts with the fields of ``docs/results_schema.md``.

  Raises:
    ValueError: naming the file and the problem when a path is missing, a file is not
      JSON or not a list of records, a field is missing or has the wrong type or value,
      or the records contradict each other (two datasets, the same round twice).
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  if isinstance(paths, bytes) or not isinstance(paths, Sequence) or not paths:
    raise ValueError("load_records needs at least one workdir or results.json path.")
  records: list[dict] = []
  sources: list[str] = []
  for raw in paths:
    if not isinstance(raw, (str, os.PathLike)):
      raise ValueError(f"paths must be strings or path-likes, got {_type_name(raw)}.")
    path = pathlib.Path(raw)
    if path.is_dir():
      file = path / "results.json"
      if not file.is_file():
        raise ValueError(f"{path} has no results.json (expected a workdir written by "
                         "`assljax run` or a results.json file).")
    elif path.is_file():
      file = path
    else:
      raise ValueError(f"{path} does not exist.")
    try:
      data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f"{file} is not valid JSON ({e}).") from None
    if not isinstance(data, list):
      raise ValueError(f"{file} must hold a JSON list of records, got {_type_name(data)}.")
    if not data:
      raise ValueError(f"{file} holds no records.")
    for i, record in enumerate(data):
      where = f"{file}, record {i}"
      _check_record(record, where)
      records.append(record)
      sources.append(where)
  _check_collection(records, sources)
  return records


# ------------------------------------------------------------------------------ summary


def _unique(values) -> list:
  """Distinct values in order of first appearance."""
  return list(dict.fromkeys(values))


def _iou(a: set, b: set) -> float:
  union = len(a | b)
  return len(a & b) / union if union else math.nan


def summarize(records: Sequence[Mapping]) -> dict:
  """The numbers behind every figure and table of the report.

  Args:
    records: result records (``load_records`` output, or dicts with the same fields).

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
  records = _check_records(records)
  labels = _unique(r["label"] for r in records)
  by_label = {label: [r for r in records if r["label"] == label] for label in labels}

  curves, timing, histograms = {}, {}, {}
  acquired: dict[str, dict[int, set]] = {}
  for label, rows in by_label.items():
    xs = sorted({r["num_labels"] for r in rows})
    accs = [np.array([r["test_accuracy"] for r in rows if r["num_labels"] == x], np.float64)
            for x in xs]
    curves[label] = {
      "x": xs,
      "mean": [float(100.0 * a.mean()) for a in accs],
      "std": [float(100.0 * a.std()) for a in accs],
      "n_seeds": [int(a.size) for a in accs],
    }

    seeds = sorted({r["seed"] for r in rows})
    rounds = sorted({r["round"] for r in rows})
    acq_per_round = [np.mean([r["acquisition_seconds"] for r in rows if r["round"] == k])
                     for k in rounds]
    train_per_round = [np.mean([r["training_seconds"] for r in rows if r["round"] == k])
                       for k in rounds]
    acq_all = [r["acquisition_seconds"] for r in rows if r["queried_indices"]]
    totals = [sum(r["acquisition_seconds"] + r["training_seconds"] for r in rows
                  if r["seed"] == s) for s in seeds]
    timing[label] = {
      "round": rounds,
      "acquisition_seconds": [float(v) for v in acq_per_round],
      "training_seconds": [float(v) for v in train_per_round],
      "acquisition_mean": float(np.mean(acq_all)) if acq_all else math.nan,
      "training_mean": float(np.mean([r["training_seconds"] for r in rows])),
      "total_mean": float(np.mean(totals)),
      "num_seeds": len(seeds),
    }

    last = [max((r for r in rows if r["seed"] == s), key=lambda r: r["round"]) for s in seeds]
    hist = np.array([r["labeled_class_histogram"] for r in last], np.float64)   # (S, C)
    mean_hist = hist.mean(axis=0)
    lo, hi = float(mean_hist.min()), float(mean_hist.max())
    histograms[label] = {
      "mean": [float(v) for v in mean_hist],
      "std": [float(v) for v in hist.std(axis=0)],
      "num_labels": float(np.mean([r["num_labels"] for r in last])),
      "seeds": seeds,
      "imbalance_ratio": hi / lo if lo > 0 else math.inf,
    }

    acquired[label] = {s: {i for r in rows if r["seed"] == s for i in r["queried_indices"]}
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
    "experiments": _unique(r["experiment"] for r in records),
    "dataset": first["dataset"],
    "num_classes": first["num_classes"],
    "class_names": list(first["class_names"]),
    "labels": labels,
    "strategies": {label: by_label[label][0]["strategy"] for label in labels},
    "accuracy_unit": "percent",
    "std": _STD_NOTE,
    "curves": curves,
    "timing": timing,
    "histograms": histograms,
    "iou": {"labels": labels, "matrix": matrix, "num_seeds": counts},
  }


# ------------------------------------------------------------------------------- tables


def _title(summary: Mapping) -> str:
  return f"{', '.join(summary['experiments'])} — {summary['dataset']}"


def _seed_phrase(summary: Mapping) -> str:
  counts = sorted({n for c in summary["curves"].values() for n in c["n_seeds"]})
  if counts[0] == counts[-1]:
    return f"{counts[0]} seed" + ("s" if counts[0] != 1 else "")
  return f"{counts[0]}–{counts[-1]} seeds"


def _cell(mean: float, std: float) -> str:
  return f"{mean:.1f} ± {std:.1f}"


def _accuracy_rows(summary: Mapping) -> tuple[list[int], list[list[str]]]:
  """Columns (label counts) and one row of cells per label ('' where missing)."""
  columns = sorted({x for c in summary["curves"].values() for x in c["x"]})
  rows = []
  for label in summary["labels"]:
    curve = summary["curves"][label]
    cells = {x: _cell(m, s) for x, m, s in zip(curve["x"], curve["mean"], curve["std"])}
    rows.append([cells.get(x, "") for x in columns])
  return columns, rows


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                    align: Sequence[str]) -> str:
  def join(cells):   # a '|' inside a label would split the cell
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
  lines = [join(header), "| " + " | ".join(align) + " |"] + [join(row) for row in rows]
  return "\n".join(lines) + "\n"


def _accuracy_markdown(summary: Mapping) -> str:
  columns, rows = _accuracy_rows(summary)
  labels = summary["labels"]
  md_rows = [[label] + ["–" if c == "" else c for c in row] for label, row in zip(labels, rows)]
  # Bold the best mean of each column (ties at the printed precision all bold), as papers do.
  for j, x in enumerate(columns):
    means = {}
    for i, label in enumerate(labels):
      curve = summary["curves"][label]
      if x in curve["x"]:
        means[i] = round(curve["mean"][curve["x"].index(x)], 1)
    if len(means) > 1:
      best = max(means.values())
      for i, m in means.items():
        if m == best:
          md_rows[i][j + 1] = f"**{md_rows[i][j + 1]}**"
  table = _markdown_table(["Label"] + [str(x) for x in columns], md_rows,
                          ["---"] + ["---:"] * len(columns))
  return (f"# Test accuracy (%) — {_title(summary)}\n\n"
          f"Mean ± std over {_seed_phrase(summary)} ({summary['std']}); columns are the "
          f"number of labeled samples; the best mean per column is bold.\n\n{table}")


def _fmt_seconds(value: float) -> str:
  if math.isnan(value):
    return "–"
  if value >= 100:
    return f"{value:.0f}"
  if value >= 10:
    return f"{value:.1f}"
  if value >= 1:
    return f"{value:.2f}"
  return f"{value:.3f}"


_TIMING_HEADER = ["Label", "Rounds", "Acquisition (s/round)", "Training (s/round)",
                  "Total per run (s)"]


def _timing_rows(summary: Mapping, fmt) -> list[list[str]]:
  rows = []
  for label in summary["labels"]:
    t = summary["timing"][label]
    rows.append([label, str(len(t["round"])), fmt(t["acquisition_mean"]),
                 fmt(t["training_mean"]), fmt(t["total_mean"])])
  return rows


def _timing_markdown(summary: Mapping) -> str:
  table = _markdown_table(_TIMING_HEADER, _timing_rows(summary, _fmt_seconds),
                          ["---", "---:", "---:", "---:", "---:"])
  return (f"# Time per round — {_title(summary)}\n\n"
          "Wall-clock seconds, mean over seeds; acquisition averages the rounds that "
          "queried samples, training averages every round.\n\n" + table)


def _fmt_iou(value: float) -> str:
  return "–" if math.isnan(value) else f"{value:.2f}"


def _iou_markdown(summary: Mapping) -> str:
  labels = summary["labels"]
  rows = [[a] + [_fmt_iou(v) for v in row] for a, row in zip(labels, summary["iou"]["matrix"])]
  table = _markdown_table([""] + labels, rows, ["---"] + ["---:"] * len(labels))
  return (f"# Overlap of acquired label sets (IoU) — {_title(summary)}\n\n"
          "Intersection over union of all pool indices a run queried, mean over the seeds "
          "both labels share.\n\n" + table)


def _fmt_ratio(value: float) -> str:
  return "∞" if math.isinf(value) else f"{value:.2f}"


def _histogram_markdown(summary: Mapping) -> str:
  names = summary["class_names"]
  rows = []
  for label in summary["labels"]:
    h = summary["histograms"][label]
    rows.append([label, f"{h['num_labels']:g}"] + [f"{v:.1f}" for v in h["mean"]]
                + [_fmt_ratio(h["imbalance_ratio"])])
  table = _markdown_table(["Label", "Labels"] + names + ["max/min"], rows,
                          ["---"] + ["---:"] * (len(names) + 2))
  return (f"# Labeled-class histogram after the last round — {_title(summary)}\n\n"
          "Labeled samples per class, mean over seeds; max/min is the imbalance ratio.\n\n"
          + table)


def _write_csv(path: pathlib.Path, header: Sequence[str], rows: Sequence[Sequence[str]]):
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def _fmt_number(value: float) -> str:
  return "" if math.isnan(value) else f"{value:.6g}"


# ------------------------------------------------------------------------------ figures


def _style(label_index: int) -> dict:
  return {"color": COLORS[label_index % len(COLORS)],
          "marker": MARKERS[(label_index + label_index // len(COLORS)) % len(MARKERS)],
          "linestyle": _LINESTYLES[(label_index // len(COLORS)) % len(_LINESTYLES)]}


def _new_figure(width: float, height: float):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(width, height), layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def _clean_axes(ax) -> None:
  ax.spines["top"].set_visible(False)
  ax.spines["right"].set_visible(False)
  ax.tick_params(direction="out", length=3)


def _learning_curve_figure(summary: Mapping):
  fig = _new_figure(6.0, 4.2)
  ax = fig.add_subplot()
  all_x = sorted({x for c in summary["curves"].values() for x in c["x"]})
  for i, label in enumerate(summary["labels"]):
    curve = summary["curves"][label]
    x = np.asarray(curve["x"], np.float64)
    mean = np.asarray(curve["mean"])
    std = np.asarray(curve["std"])
    style = _style(i)
    ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.18, linewidth=0,
                    zorder=1)
    ax.plot(x, mean, label=label, linewidth=1.8, markersize=5, zorder=3,
            markeredgecolor=style["color"], **style)
  ax.set_xlabel("Number of labeled samples")
  ax.set_ylabel("Test accuracy (%)")
  ax.set_title(f"{_title(summary)}\nmean ± std over {_seed_phrase(summary)}", fontsize=11)
  if len(all_x) <= 12:
    ax.set_xticks(all_x)
    ax.set_xticklabels([str(x) for x in all_x], rotation=45 if len(all_x) > 8 else 0)
  ax.grid(True, color="#e0e0e0", linewidth=0.6, zorder=0)
  ax.set_axisbelow(True)
  _clean_axes(ax)
  if len(summary["labels"]) <= 6:
    ax.legend(frameon=False, fontsize="small", loc="best")
  else:
    fig.set_size_inches(7.6, 4.2)
    fig.legend(*ax.get_legend_handles_labels(), frameon=False, fontsize="small",
               loc="outside right upper")
  return fig


def _class_ticks(ax, names: Sequence[str], *, labels_visible: bool = True) -> None:
  num_classes = len(names)
  step = 1 if num_classes <= 30 else int(math.ceil(num_classes / 20))
  ticks = list(range(0, num_classes, step))
  long_names = max(len(n) for n in names) > 4
  ax.set_xticks(ticks)
  ax.set_xticklabels([names[t] for t in ticks], rotation=45 if long_names else 0,
                     ha="right" if long_names else "center", fontsize="small",
                     rotation_mode="anchor" if long_names else "default")
  ax.tick_params(axis="x", labelbottom=labels_visible)
  ax.set_xlim(-0.6, num_classes - 0.4)


def _balanced_count(summary: Mapping) -> float | None:
  """Labels per class of a balanced set, when every label ends with the same count."""
  totals = {summary["histograms"][label]["num_labels"] for label in summary["labels"]}
  return totals.pop() / summary["num_classes"] if len(totals) == 1 else None


def _histogram_figure(summary: Mapping):
  """Grouped bars (classes x labels) when they fit, else one small panel per label."""
  labels = summary["labels"]
  names = summary["class_names"]
  num_classes = len(names)
  balanced = _balanced_count(summary)
  title = f"Labeled-class histogram after the last round\n{_title(summary)}"
  ylabel = "Labeled samples (mean over seeds)"
  centers = np.arange(num_classes, dtype=np.float64)

  if num_classes <= 20 and len(labels) <= 6:
    width = float(np.clip(1.2 + num_classes * (0.25 + 0.12 * len(labels)), 6.0, 16.0))
    fig = _new_figure(width, 4.0)
    ax = fig.add_subplot()
    bar = 0.8 / len(labels)
    for i, label in enumerate(labels):
      h = summary["histograms"][label]
      offsets = centers - 0.4 + bar * (i + 0.5)
      ax.bar(offsets, h["mean"], width=bar, color=_style(i)["color"], zorder=2,
             label=f"{label} (max/min {_fmt_ratio(h['imbalance_ratio'])})")
      if any(v > 0 for v in h["std"]):
        ax.errorbar(offsets, h["mean"], yerr=h["std"], fmt="none", ecolor="#333333",
                    elinewidth=0.7, capsize=1.5, zorder=3)
    if balanced is not None:
      ax.axhline(balanced, color="#333333", linestyle="--", linewidth=0.9, zorder=4,
                 label=f"balanced ({balanced:g} per class)")
    _class_ticks(ax, names)
    ax.set_xlabel("Class")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, axis="y", color="#e0e0e0", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    _clean_axes(ax)
    fig.legend(frameon=False, fontsize="small", ncols=min(len(labels) + 1, 3),
               loc="outside lower center")
    return fig

  ncols = min(len(labels), 3)
  nrows = int(math.ceil(len(labels) / ncols))
  panel_width = float(np.clip(1.0 + 0.05 * num_classes, 3.0, 5.0))
  fig = _new_figure(ncols * panel_width + 0.6, 2.1 * nrows + 1.0)
  axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
  for k, ax in enumerate(axes.flat):
    if k >= len(labels):
      ax.set_visible(False)
      continue
    label = labels[k]
    h = summary["histograms"][label]
    ax.bar(centers, h["mean"], width=0.8, color=_style(k)["color"], zorder=2)
    if balanced is not None:
      ax.axhline(balanced, color="#333333", linestyle="--", linewidth=0.8, zorder=3)
    ax.set_title(f"{label} (max/min {_fmt_ratio(h['imbalance_ratio'])})", fontsize="small")
    # Tick labels under a panel with no visible panel below it.
    _class_ticks(ax, names, labels_visible=k + ncols >= len(labels))
    ax.grid(True, axis="y", color="#e0e0e0", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    _clean_axes(ax)
  note = "" if balanced is None else f" (dashed: balanced, {balanced:g} per class)"
  fig.suptitle(title + note, fontsize=11)
  fig.supxlabel("Class")
  fig.supylabel(ylabel)
  return fig


def _iou_figure(summary: Mapping):
  labels = summary["labels"]
  n = len(labels)
  matrix = np.asarray(summary["iou"]["matrix"], np.float64)
  fig = _new_figure(max(4.5, 1.8 + 0.8 * n), max(3.6, 1.2 + 0.7 * n))
  ax = fig.add_subplot()
  import matplotlib
  cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
  image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=1.0)
  for i in range(n):
    for j in range(n):
      value = matrix[i, j]
      ax.text(j, i, _fmt_iou(value), ha="center", va="center", fontsize="small",
              color="black" if math.isnan(value) or value > 0.6 else "white")
  ax.set_xticks(range(n))
  ax.set_yticks(range(n))
  ax.set_xticklabels(labels, rotation=30, ha="right")
  ax.set_yticklabels(labels)
  ax.set_title(f"IoU of acquired label sets\n{_title(summary)}", fontsize=11)
  fig.colorbar(image, ax=ax, label="IoU (mean over seeds)", shrink=0.85)
  return fig


# ------------------------------------------------------------------------------- output


def _json_ready(value: Any) -> Any:
  """Replaces NaN and inf by None so the file is strict JSON."""
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, Mapping):
    return {k: _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  return value


def write_report(records: Sequence[Mapping], out_dir: str | os.PathLike) -> dict[str, str]:
  """Writes the report's figures and tables into ``out_dir`` (created if needed).

  Files: learning curves (``learning_curves.png``/``.svg``: accuracy in percent vs number
  of labels, mean line ± std band per label); the same as ``accuracy_table.md``/``.csv``
  (rows = labels, columns = label counts, cells ``"mean ± std"`` in percent, one
  decimal); ``timing_table.md``/``.csv``; ``class_histogram.png``/``.md`` (last-round
  labeled-class histogram per label, grouped bars); ``iou_heatmap.png``,
  ``iou_table.md``/``.csv``; ``summary.json`` (:func:`summarize` plus each label's
  ``colors``/``markers``, NaN and inf written as null); ``report.md`` (all of it).

  Args:
    records: result records, as from :func:`load_records`.
    out_dir: output folder.

  Returns:
    ``{key: path}`` for every file written, keys ``learning_curves_png``,
    ``learning_curves_svg``, ``accuracy_md``, ``accuracy_csv``, ``timing_md``,
    ``timing_csv``, ``histogram_png``, ``histogram_md``, ``iou_png``, ``iou_md``,
    ``iou_csv``, ``summary_json``, ``report_md``.

  Raises:
    ValueError: when the records are invalid or ``out_dir`` is an existing file.
  """
  summary = summarize(records)
  out = pathlib.Path(out_dir)
  if out.exists() and not out.is_dir():
    raise ValueError(f"--out {out} exists and is not a directory.")
  out.mkdir(parents=True, exist_ok=True)
  paths = {key: out / name for key, name in _FILES.items()}
  labels = summary["labels"]

  import matplotlib
  with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 10,
                              "savefig.facecolor": "white"}):
    fig = _learning_curve_figure(summary)
    fig.savefig(paths["learning_curves_png"], dpi=200)
    fig.savefig(paths["learning_curves_svg"])
    _histogram_figure(summary).savefig(paths["histogram_png"], dpi=200)
    _iou_figure(summary).savefig(paths["iou_png"], dpi=200)

  columns, rows = _accuracy_rows(summary)
  paths["accuracy_md"].write_text(_accuracy_markdown(summary), encoding="utf-8")
  _write_csv(paths["accuracy_csv"], ["label"] + [str(x) for x in columns],
             [[label] + row for label, row in zip(labels, rows)])
  paths["timing_md"].write_text(_timing_markdown(summary), encoding="utf-8")
  _write_csv(paths["timing_csv"],
             ["label", "rounds", "acquisition_seconds_per_round",
              "training_seconds_per_round", "total_seconds_per_run"],
             [[r[0], r[1]] + r[2:] for r in _timing_rows(summary, _fmt_number)])
  paths["histogram_md"].write_text(_histogram_markdown(summary), encoding="utf-8")
  paths["iou_md"].write_text(_iou_markdown(summary), encoding="utf-8")
  _write_csv(paths["iou_csv"], ["label"] + labels,
             [[a] + [_fmt_number(v) for v in row]
              for a, row in zip(labels, summary["iou"]["matrix"])])

  document = dict(summary)
  document["colors"] = {label: _style(i)["color"] for i, label in enumerate(labels)}
  document["markers"] = {label: _style(i)["marker"] for i, label in enumerate(labels)}
  document["files"] = {key: name for key, name in _FILES.items()}
  paths["summary_json"].write_text(
      json.dumps(_json_ready(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
      encoding="utf-8")

  def body(key: str) -> str:   # a table file without its level-1 heading
    return paths[key].read_text(encoding="utf-8").split("\n", 1)[1].strip()

  paths["report_md"].write_text(
      f"# Report — {_title(summary)}\n\n"
      f"## Learning curves\n\n![learning curves]({_FILES['learning_curves_png']})\n\n"
      f"{body('accuracy_md')}\n\n## Time per round\n\n{body('timing_md')}\n\n"
      f"## Labeled-class histogram\n\n![class histogram]({_FILES['histogram_png']})\n\n"
      f"{body('histogram_md')}\n\n## Overlap of acquired label sets\n\n"
      f"![IoU heatmap]({_FILES['iou_png']})\n\n{body('iou_md')}\n", encoding="utf-8")
  return {key: str(path) for key, path in paths.items()}


def _text_table(summary: Mapping) -> str:
  """A short fixed-width accuracy and timing table for the terminal."""
  columns, rows = _accuracy_rows(summary)
  labels = summary["labels"]
  header = ["label"] + [str(x) for x in columns]
  body = [[label] + [c or "-" for c in row] for label, row in zip(labels, rows)]
  widths = [max(len(r[j]) for r in [header] + body) for j in range(len(header))]

  def line(cells):
    return "  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                     for j, (c, w) in enumerate(zip(cells, widths))).rstrip()

  out = [f"{_title(summary)}: test accuracy (%), mean ± std over {_seed_phrase(summary)}",
         line(header)] + [line(r) for r in body]
  out.append("seconds per round (acquisition / training):")
  width = max(len(label) for label in labels)
  for label in labels:
    t = summary["timing"][label]
    out.append(f"{label.ljust(width)}  {_fmt_seconds(t['acquisition_mean'])} / "
               f"{_fmt_seconds(t['training_mean'])}")
  return "\n".join(out)


def run_report(paths: str | os.PathLike | Sequence[str | os.PathLike],
               out: str | os.PathLike, *, quiet: bool = False) -> dict[str, str]:
  """``assljax report DIR [DIR ...] --out OUT``: load, write, print a text table.

  Args:
    paths: workdirs (or results.json files) whose records are concatenated.
    out: output folder for :func:`write_report`.
    quiet: when True, print nothing.

  Returns:
    :func:`write_report`'s ``{key: path}``.

  Raises:
    ValueError: one sentence naming the bad input.
  """
  records = load_records(paths)
  written = write_report(records, out)
  if not quiet:
    print(_text_table(summarize(records)))
    print(f"wrote {len(written)} files to {out} (see {written['report_md']})")
  return written


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry: ``DIR [DIR ...] --out OUT``; returns the exit code 0.

  Raises:
    ValueError: bad input (the caller prints it on one line and exits 2).
  """
  parser = argparse.ArgumentParser(
      prog="assljax report",
      description="Learning curves (mean ± std over seeds), accuracy/timing/IoU tables and "
                  "class histograms from the results.json of one or more workdirs.")
  parser.add_argument("dirs", nargs="+", metavar="DIR",
                      help="workdir containing results.json, or a results.json file")
  parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
  parser.add_argument("--quiet", action="store_true", help="print nothing")
  args = parser.parse_args(argv)
  run_report(args.dirs, args.out, quiet=args.quiet)
  return 0


if __name__ == "__main__":
  try:
    sys.exit(main())
  except ValueError as e:
    print(f"assljax report: error: {e}", file=sys.stderr)
    sys.exit(2)
