"""Markdown, CSV and terminal tables of a summary (``summarize``) and a paired comparison."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence

from assljax.report.paired import describe_interval

# ------------------------------------------------------------------------------ helpers


def title(summary: Mapping) -> str:
  return f"{', '.join(summary['experiments'])} — {summary['dataset']}"


def seed_phrase(summary: Mapping) -> str:
  counts = sorted({n for c in summary["curves"].values() for n in c["n_seeds"]})
  if counts[0] == counts[-1]:
    return f"{counts[0]} seed" + ("s" if counts[0] != 1 else "")
  return f"{counts[0]}–{counts[-1]} seeds"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   align: Sequence[str]) -> str:
  def join(cells):   # a '|' inside a label would split the cell
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
  lines = [join(header), "| " + " | ".join(align) + " |"] + [join(row) for row in rows]
  return "\n".join(lines) + "\n"


def write_csv(path: str | os.PathLike, header: Sequence[str],
              rows: Sequence[Sequence[str]]) -> None:
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def fmt_number(value: float) -> str:
  """A CSV number: 6 significant digits, empty when undefined."""
  return "" if math.isnan(value) else f"{value:.6g}"


def fmt_seconds(value: float) -> str:
  if math.isnan(value):
    return "–"
  if value >= 100:
    return f"{value:.0f}"
  if value >= 10:
    return f"{value:.1f}"
  if value >= 1:
    return f"{value:.2f}"
  return f"{value:.3f}"


def fmt_iou(value: float) -> str:
  return "–" if math.isnan(value) else f"{value:.2f}"


def fmt_ratio(value: float) -> str:
  return "∞" if math.isinf(value) else f"{value:.2f}"


def _text_grid(header: Sequence[str], body: Sequence[Sequence[str]],
               left: Sequence[int] = (0,)) -> list[str]:
  """Fixed-width lines; the columns ``left`` left-aligned, the others right-aligned."""
  widths = [max(len(r[j]) for r in [header, *body]) for j in range(len(header))]

  def line(cells):
    return "  ".join(c.ljust(w) if j in left else c.rjust(w)
                     for j, (c, w) in enumerate(zip(cells, widths))).rstrip()

  return [line(header)] + [line(r) for r in body]


# ----------------------------------------------------------------------------- accuracy


def _cell(mean: float, std: float) -> str:
  return f"{mean:.1f} ± {std:.1f}"


def accuracy_rows(summary: Mapping) -> tuple[list[int], list[list[str]]]:
  """Columns (label counts) and one row of cells per label ('' where missing)."""
  columns = sorted({x for c in summary["curves"].values() for x in c["x"]})
  rows = []
  for label in summary["labels"]:
    curve = summary["curves"][label]
    cells = {x: _cell(m, s) for x, m, s in zip(curve["x"], curve["mean"], curve["std"])}
    rows.append([cells.get(x, "") for x in columns])
  return columns, rows


def accuracy_markdown(summary: Mapping) -> str:
  columns, rows = accuracy_rows(summary)
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
  table = markdown_table(["Label"] + [str(x) for x in columns], md_rows,
                         ["---"] + ["---:"] * len(columns))
  return (f"# Test accuracy (%) — {title(summary)}\n\n"
          f"Mean ± std over {seed_phrase(summary)} ({summary['std']}); columns are the "
          f"number of labeled samples; the best mean per column is bold.\n\n{table}")


def accuracy_csv_rows(summary: Mapping) -> tuple[list[str], list[list[str]]]:
  columns, rows = accuracy_rows(summary)
  return (["label"] + [str(x) for x in columns],
          [[label] + row for label, row in zip(summary["labels"], rows)])


# ------------------------------------------------------------------------------- timing


_TIMING_HEADER = ["Label", "Rounds", "Acquisition (s/round)", "Training (s/round)",
                  "Total per run (s)"]
TIMING_CSV_HEADER = ["label", "rounds", "acquisition_seconds_per_round",
                     "training_seconds_per_round", "total_seconds_per_run"]


def timing_rows(summary: Mapping, fmt) -> list[list[str]]:
  rows = []
  for label in summary["labels"]:
    t = summary["timing"][label]
    rows.append([label, str(len(t["round"])), fmt(t["acquisition_mean"]),
                 fmt(t["training_mean"]), fmt(t["total_mean"])])
  return rows


def timing_markdown(summary: Mapping) -> str:
  table = markdown_table(_TIMING_HEADER, timing_rows(summary, fmt_seconds),
                         ["---", "---:", "---:", "---:", "---:"])
  return (f"# Time per round — {title(summary)}\n\n"
          "Wall-clock seconds, mean over seeds; acquisition averages the rounds that "
          "queried samples, training averages every round.\n\n" + table)


# ---------------------------------------------------------------------- IoU, histogram


def iou_markdown(summary: Mapping) -> str:
  labels = summary["labels"]
  rows = [[a] + [fmt_iou(v) for v in row] for a, row in zip(labels, summary["iou"]["matrix"])]
  table = markdown_table([""] + labels, rows, ["---"] + ["---:"] * len(labels))
  return (f"# Overlap of acquired label sets (IoU) — {title(summary)}\n\n"
          "Intersection over union of all pool indices a run queried, mean over the seeds "
          "both labels share.\n\n" + table)


def iou_csv_rows(summary: Mapping) -> tuple[list[str], list[list[str]]]:
  labels = summary["labels"]
  return (["label"] + labels,
          [[a] + [fmt_number(v) for v in row] for a, row in zip(labels, summary["iou"]["matrix"])])


def histogram_markdown(summary: Mapping) -> str:
  names = summary["class_names"]
  rows = []
  for label in summary["labels"]:
    h = summary["histograms"][label]
    rows.append([label, f"{h['num_labels']:g}"] + [f"{v:.1f}" for v in h["mean"]]
                + [fmt_ratio(h["imbalance_ratio"])])
  table = markdown_table(["Label", "Labels"] + names + ["max/min"], rows,
                         ["---"] + ["---:"] * (len(names) + 2))
  return (f"# Labeled-class histogram after the last round — {title(summary)}\n\n"
          "Labeled samples per class, mean over seeds; max/min is the imbalance ratio.\n\n"
          + table)


# ------------------------------------------------------------------------------- paired


def fmt_difference(value: float) -> str:
  return "–" if math.isnan(value) else f"{value:+.2f}"


def fmt_interval(low: float, high: float) -> str:
  if math.isnan(low) or math.isnan(high):
    return "–"
  return f"[{low:+.2f}, {high:+.2f}]"


def _wtl(stats: Mapping, i: int | None = None) -> str:
  pick = (lambda k: stats[k]) if i is None else (lambda k: stats[k][i])
  return f"{pick('wins')}/{pick('ties')}/{pick('losses')}"


def _seeds(seeds: Sequence[int], singular: str, plural: str) -> str:
  """``"seed 3 has"`` or ``"seeds 3, 4 have"`` (singular/plural: the verb)."""
  if len(seeds) == 1:
    return f"seed {seeds[0]} {singular}"
  return f"seeds {', '.join(str(s) for s in seeds)} {plural}"


def paired_notes(paired: Mapping) -> list[str]:
  """One sentence per caveat: unpaired seeds, seeds left out of AULC, unequal starts."""
  ref = paired["reference"]
  notes = []
  for label in paired["labels"]:
    c = paired["comparisons"][label]
    only_label, only_ref = c["unpaired_seeds"]["label"], c["unpaired_seeds"]["reference"]
    if only_label:
      notes.append(f"{label}: {_seeds(only_label, 'has', 'have')} no {ref} run and "
                   f"{'is' if len(only_label) == 1 else 'are'} left out.")
    if only_ref:
      notes.append(f"{label}: {ref}'s {_seeds(only_ref, 'has', 'have')} no {label} run and "
                   f"{'is' if len(only_ref) == 1 else 'are'} left out.")
    excluded = c["aulc"]["excluded_seeds"]
    if excluded:
      notes.append(f"{label}: {_seeds(excluded, 'covers', 'cover')} other label counts than "
                   f"{ref} (a run unfinished?) and {'is' if len(excluded) == 1 else 'are'} "
                   "left out of the AULC.")
    differ = c["initial_labels_differ"]
    if differ:
      notes.append(f"{label}: {_seeds(differ, 'starts', 'start')} from other initial labels "
                   f"than {ref}, so {'it is' if len(differ) == 1 else 'they are'} not paired "
                   "by the initial labels; read with care.")
  return notes


_AULC_HEADER = ["Label", "Seeds", "AULC (%)", "{ref} AULC (%)", "Δ (pp)", "{pct} CI (pp)",
                "W/T/L", "Verdict"]
_PER_X_HEADER = ["Label", "Labels", "Seeds", "Δ (pp)", "{pct} CI (pp)", "W/T/L", "Verdict"]


def _header(template: Sequence[str], paired: Mapping) -> list[str]:
  pct = f"{100 * paired['level']:g} %"
  return [h.format(ref=paired["reference"], pct=pct) for h in template]


def aulc_rows(paired: Mapping) -> list[list[str]]:
  rows = []
  for label in paired["labels"]:
    a = paired["comparisons"][label]["aulc"]
    rows.append([label, str(a["n_seeds"]),
                 "–" if math.isnan(a["label_mean"]) else f"{a['label_mean']:.2f}",
                 "–" if math.isnan(a["reference_mean"]) else f"{a['reference_mean']:.2f}",
                 fmt_difference(a["mean"]), fmt_interval(a["ci_low"], a["ci_high"]), _wtl(a),
                 a["verdict"]])
  return rows


def per_x_rows(paired: Mapping) -> list[list[str]]:
  rows = []
  for label in paired["labels"]:
    b = paired["comparisons"][label]["by_num_labels"]
    for i, x in enumerate(b["x"]):
      rows.append([label, str(x), str(b["n_seeds"][i]), fmt_difference(b["mean"][i]),
                   fmt_interval(b["ci_low"][i], b["ci_high"][i]), _wtl(b, i),
                   b["verdict"][i]])
  return rows


def paired_markdown(summary: Mapping, paired: Mapping) -> str:
  ref = paired["reference"]
  tol = f"{paired['tie_tolerance']:g}"
  intro = (f"Label − {ref} in percentage points (pp), paired by seed (runs with the same "
           f"seed share the initial labels and the initialization): mean over the seeds both "
           f"have, {describe_interval(paired)}, and wins/ties/losses (W/T/L) over those seeds "
           f"(a tie: |difference| ≤ {tol} pp). An interval that contains 0 means these seeds "
           f"cannot tell the label from {ref}; with one seed there is no interval.")
  if paired["interval"] == "bootstrap":
    intro += (" The percentile bootstrap is too narrow at few seeds (at 2 seeds it spans "
              "just the two differences); the t interval is the safer reading there.")
  notes = paired_notes(paired)
  note_text = "".join(f"\n- {n}" for n in notes)
  aulc = markdown_table(_header(_AULC_HEADER, paired), aulc_rows(paired),
                        ["---"] + ["---:"] * 6 + ["---"])
  per_x = markdown_table(_header(_PER_X_HEADER, paired), per_x_rows(paired),
                         ["---"] + ["---:"] * 5 + ["---"])
  return (f"# Paired differences to {ref} — {title(summary)}\n\n{intro}\n"
          + (f"\nNotes:{note_text}\n" if notes else "")
          + "\n## Area under the learning curve\n\n"
          "AULC: a run's mean test accuracy (%) over all its rounds, the first included.\n\n"
          f"{aulc}\n## Test accuracy per number of labels\n\n{per_x}")


PAIRED_CSV_HEADER = ["label", "strategy", "reference", "metric", "num_labels", "n_seeds",
                     "mean_difference_pp", "ci_low_pp", "ci_high_pp", "wins", "ties", "losses",
                     "verdict"]


def paired_csv_rows(paired: Mapping) -> list[list[str]]:
  """One row per label for the AULC (``metric`` aulc, no ``num_labels``), then one per
  label count (``metric`` accuracy)."""
  ref = paired["reference"]
  rows = []
  for label in paired["labels"]:
    c = paired["comparisons"][label]
    a = c["aulc"]
    rows.append([label, c["strategy"], ref, "aulc", "", str(a["n_seeds"]),
                 fmt_number(a["mean"]), fmt_number(a["ci_low"]), fmt_number(a["ci_high"]),
                 str(a["wins"]), str(a["ties"]), str(a["losses"]), a["verdict"]])
    b = c["by_num_labels"]
    for i, x in enumerate(b["x"]):
      rows.append([label, c["strategy"], ref, "accuracy", str(x), str(b["n_seeds"][i]),
                   fmt_number(b["mean"][i]), fmt_number(b["ci_low"][i]),
                   fmt_number(b["ci_high"][i]), str(b["wins"][i]), str(b["ties"][i]),
                   str(b["losses"][i]), b["verdict"][i]])
  return rows


# ------------------------------------------------------------------------------ terminal


def text_table(summary: Mapping, paired: Mapping | None = None) -> str:
  """A short fixed-width accuracy, timing (and AULC difference) table for the terminal."""
  columns, rows = accuracy_rows(summary)
  labels = summary["labels"]
  header = ["label"] + [str(x) for x in columns]
  body = [[label] + [c or "-" for c in row] for label, row in zip(labels, rows)]
  out = [f"{title(summary)}: test accuracy (%), mean ± std over {seed_phrase(summary)}"]
  out += _text_grid(header, body)
  out.append("seconds per round (acquisition / training):")
  width = max(len(label) for label in labels)
  for label in labels:
    t = summary["timing"][label]
    out.append(f"{label.ljust(width)}  {fmt_seconds(t['acquisition_mean'])} / "
               f"{fmt_seconds(t['training_mean'])}")
  if paired is not None and paired["labels"]:
    out.append(f"AULC (mean accuracy over rounds, %) minus {paired['reference']}'s, paired by "
               f"seed, {describe_interval(paired)}:")
    header = _header(_AULC_HEADER, paired)
    out += _text_grid(header, aulc_rows(paired), left=(0, len(header) - 1))
    out += [f"note: {n}" for n in paired_notes(paired)]
  return "\n".join(out)
