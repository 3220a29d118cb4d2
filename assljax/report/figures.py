"""The report's figures, drawn with matplotlib (imported only inside these functions).

Figures are rendered with the Agg canvas directly (no pyplot, no global backend switch),
so the report works headless and from a notebook alike. Each label keeps one style
(:func:`style`) in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from assljax._optional import require
from assljax.report.paired import describe_interval
from assljax.report.tables import fmt_iou, fmt_ratio, seed_phrase
from assljax.report.tables import title as report_title

# A fixed, distinct color cycle (tab10 without its gray, which antialiased text and grid
# lines could reproduce), so that a curve's exact RGB identifies its label in the PNG.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#bcbd22", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
_LINESTYLES = ("-", "--", ":", "-.")


def style(label_index: int) -> dict:
  """Color, marker and linestyle of the ``label_index``-th label (in summary order)."""
  return {"color": COLORS[label_index % len(COLORS)],
          "marker": MARKERS[(label_index + label_index // len(COLORS)) % len(MARKERS)],
          "linestyle": _LINESTYLES[(label_index // len(COLORS)) % len(_LINESTYLES)]}


def _new_figure(width: float, height: float):
  FigureCanvasAgg = require("matplotlib.backends.backend_agg").FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(width, height), layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def _clean_axes(ax) -> None:
  ax.spines["top"].set_visible(False)
  ax.spines["right"].set_visible(False)
  ax.tick_params(direction="out", length=3)


def learning_curve_figure(summary: Mapping):
  fig = _new_figure(6.0, 4.2)
  ax = fig.add_subplot()
  all_x = sorted({x for c in summary["curves"].values() for x in c["x"]})
  for i, label in enumerate(summary["labels"]):
    curve = summary["curves"][label]
    x = np.asarray(curve["x"], np.float64)
    mean = np.asarray(curve["mean"])
    std = np.asarray(curve["std"])
    look = style(i)
    ax.fill_between(x, mean - std, mean + std, color=look["color"], alpha=0.18, linewidth=0,
                    zorder=1)
    ax.plot(x, mean, label=label, linewidth=1.8, markersize=5, zorder=3,
            markeredgecolor=look["color"], **look)
  ax.set_xlabel("Number of labeled samples")
  ax.set_ylabel("Test accuracy (%)")
  ax.set_title(f"{report_title(summary)}\nmean ± std over {seed_phrase(summary)}", fontsize=11)
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


def histogram_figure(summary: Mapping):
  """Grouped bars (classes x labels) when they fit, else one small panel per label."""
  labels = summary["labels"]
  names = summary["class_names"]
  num_classes = len(names)
  balanced = _balanced_count(summary)
  title = f"Labeled-class histogram after the last round\n{report_title(summary)}"
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
      ax.bar(offsets, h["mean"], width=bar, color=style(i)["color"], zorder=2,
             label=f"{label} (max/min {fmt_ratio(h['imbalance_ratio'])})")
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
    ax.bar(centers, h["mean"], width=0.8, color=style(k)["color"], zorder=2)
    if balanced is not None:
      ax.axhline(balanced, color="#333333", linestyle="--", linewidth=0.8, zorder=3)
    ax.set_title(f"{label} (max/min {fmt_ratio(h['imbalance_ratio'])})", fontsize="small")
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


def iou_figure(summary: Mapping):
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
      ax.text(j, i, fmt_iou(value), ha="center", va="center", fontsize="small",
              color="black" if math.isnan(value) or value > 0.6 else "white")
  ax.set_xticks(range(n))
  ax.set_yticks(range(n))
  ax.set_xticklabels(labels, rotation=30, ha="right")
  ax.set_yticklabels(labels)
  ax.set_title(f"IoU of acquired label sets\n{report_title(summary)}", fontsize=11)
  fig.colorbar(image, ax=ax, label="IoU (mean over seeds)", shrink=0.85)
  return fig


def paired_figure(summary: Mapping, paired: Mapping):
  """Difference to the reference vs number of labels: mean line and interval band per label.

  One line per label other than the reference, in the label's own style; a zero line;
  no band where the interval is undefined (fewer than 2 paired seeds).
  """
  fig = _new_figure(6.0, 4.2)
  ax = fig.add_subplot()
  ref = paired["reference"]
  index = {label: i for i, label in enumerate(summary["labels"])}
  all_x = sorted({x for label in paired["labels"]
                  for x in paired["comparisons"][label]["by_num_labels"]["x"]})
  ax.axhline(0.0, color="#333333", linewidth=1.0, zorder=2)
  for label in paired["labels"]:
    b = paired["comparisons"][label]["by_num_labels"]
    x = np.asarray(b["x"], np.float64)
    mean = np.asarray(b["mean"], np.float64)
    lo = np.asarray(b["ci_low"], np.float64)
    hi = np.asarray(b["ci_high"], np.float64)
    ok = np.isfinite(lo) & np.isfinite(hi)
    look = style(index[label])
    ax.fill_between(x, np.where(ok, lo, mean), np.where(ok, hi, mean), where=ok,
                    color=look["color"], alpha=0.15, linewidth=0, zorder=1)
    ax.plot(x, mean, label=label, linewidth=1.8, markersize=5, zorder=3,
            markeredgecolor=look["color"], **look)
  ax.set_xlabel("Number of labeled samples")
  ax.set_ylabel(f"Test accuracy − {ref} (percentage points)")
  ax.set_title(f"{report_title(summary)}: paired difference to {ref}\nmean over seeds, band: "
               f"{describe_interval(paired)}", fontsize=10)
  if 0 < len(all_x) <= 12:
    ax.set_xticks(all_x)
    ax.set_xticklabels([str(x) for x in all_x], rotation=45 if len(all_x) > 8 else 0)
  ax.grid(True, color="#e0e0e0", linewidth=0.6, zorder=0)
  ax.set_axisbelow(True)
  _clean_axes(ax)
  if len(paired["labels"]) <= 6:
    ax.legend(frameon=False, fontsize="small", loc="best")
  else:
    fig.set_size_inches(7.6, 4.2)
    fig.legend(*ax.get_legend_handles_labels(), frameon=False, fontsize="small",
               loc="outside right upper")
  return fig


def training_curve_figure(summary: Mapping, curves: Mapping):
  """Training metrics vs global step, one panel per metric, one mean line per label.

  ``curves`` is :func:`assljax.report.training.load_training_curves`' output. Thin
  dotted lines mark where the lowest-seed run of the first label starts a new round.
  """
  from assljax.report.training import PANELS
  panels = [(key, name) for key, name in PANELS if any(key in c for c in curves.values())]
  fig = _new_figure(9.0, 2.6 * math.ceil(len(panels) / 2) + 0.6)
  index = {label: i for i, label in enumerate(summary["labels"])}
  labels = [label for label in summary["labels"] if label in curves]
  for p, (key, name) in enumerate(panels):
    ax = fig.add_subplot(math.ceil(len(panels) / 2), 2, p + 1)
    for label in labels:
      curve = curves[label]
      if key not in curve:
        continue
      look = style(index[label])
      ax.plot(curve["global_step"], curve[key], color=look["color"],
              linestyle=look["linestyle"], linewidth=1.2, label=label)
    for start in curves[labels[0]]["round_starts"]:
      ax.axvline(start, color="#999999", linewidth=0.6, linestyle=":", zorder=0)
    if key == "loss":
      ax.set_yscale("log")
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("Training step (all rounds)", fontsize=9)
    _clean_axes(ax)
  fig.suptitle(f"{report_title(summary)}: training, mean over seeds", fontsize=11)
  handles, names = fig.axes[0].get_legend_handles_labels()
  fig.legend(handles, names, frameon=False, fontsize="small", loc="outside lower center",
             ncol=min(len(names), 5))
  return fig
