"""Writing the report folder and the ``assljax report`` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from assljax._optional import require
from assljax._validation import UserInputError
from assljax.report import figures, paired as paired_lib, tables
from assljax.report.schema import RoundRecord, as_round_records, load_round_records
from assljax.report.summary import summarize
from assljax.report.training import load_training_curves

# Names of the files write_report writes, keyed as in its returned dict.
FILES = {
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
  "paired_png": "paired_differences.png",
  "paired_md": "paired_table.md",
  "paired_csv": "paired_table.csv",
  "training_png": "training_curves.png",
  "summary_json": "summary.json",
  "report_md": "report.md",
}
_PAIRED_KEYS = ("paired_png", "paired_md", "paired_csv")
_TRAINING_KEYS = ("training_png",)


def _json_ready(value: Any) -> Any:
  """Replaces NaN and inf by None so the file is strict JSON."""
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, Mapping):
    return {k: _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  return value


def _paired(records: list[RoundRecord], labels: Sequence[str], *, reference: str | None,
            interval: str, tie_tolerance: float) -> tuple[dict | None, str]:
  """The paired comparison, or None and the reason it was skipped."""
  if reference is None:
    reference = paired_lib.DEFAULT_REFERENCE
    if reference not in labels:
      return None, (f"there is no {reference!r} label to compare with; choose a reference "
                    "with --reference LABEL")
  result = paired_lib.paired_comparison(records, reference=reference, interval=interval,
                                        tie_tolerance=tie_tolerance)
  if not result["labels"]:
    return None, f"{reference!r} is the only label"
  return result, ""


def _write(records: list[RoundRecord], out_dir: str | os.PathLike, *, reference: str | None,
           interval: str, tie_tolerance: float, training_curves: Mapping | None
           ) -> tuple[dict[str, str], dict, dict | None]:
  """write_report on validated records; returns (paths, summary, paired or None)."""
  paired_lib.check_options(interval=interval, tie_tolerance=tie_tolerance)
  summary = summarize(records)
  labels = summary["labels"]
  paired, skipped = _paired(records, labels, reference=reference, interval=interval,
                            tie_tolerance=tie_tolerance)
  out = pathlib.Path(out_dir)
  if out.exists() and not out.is_dir():
    raise UserInputError(f"--out {out} exists and is not a directory.")
  out.mkdir(parents=True, exist_ok=True)
  training_curves = {label: curve for label, curve in (training_curves or {}).items()
                     if label in labels}
  names = {key: name for key, name in FILES.items()
           if (paired is not None or key not in _PAIRED_KEYS)
           and (training_curves or key not in _TRAINING_KEYS)}
  paths = {key: out / name for key, name in names.items()}

  matplotlib = require("matplotlib")
  with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 10,
                              "savefig.facecolor": "white"}):
    fig = figures.learning_curve_figure(summary)
    fig.savefig(paths["learning_curves_png"], dpi=200)
    fig.savefig(paths["learning_curves_svg"])
    figures.histogram_figure(summary).savefig(paths["histogram_png"], dpi=200)
    figures.iou_figure(summary).savefig(paths["iou_png"], dpi=200)
    if paired is not None:
      figures.paired_figure(summary, paired).savefig(paths["paired_png"], dpi=200)
    if training_curves:
      figures.training_curve_figure(summary, training_curves).savefig(paths["training_png"],
                                                                       dpi=150)

  paths["accuracy_md"].write_text(tables.accuracy_markdown(summary), encoding="utf-8")
  tables.write_csv(paths["accuracy_csv"], *tables.accuracy_csv_rows(summary))
  paths["timing_md"].write_text(tables.timing_markdown(summary), encoding="utf-8")
  tables.write_csv(paths["timing_csv"], tables.TIMING_CSV_HEADER,
                   tables.timing_rows(summary, tables.fmt_number))
  paths["histogram_md"].write_text(tables.histogram_markdown(summary), encoding="utf-8")
  paths["iou_md"].write_text(tables.iou_markdown(summary), encoding="utf-8")
  tables.write_csv(paths["iou_csv"], *tables.iou_csv_rows(summary))
  if paired is not None:
    paths["paired_md"].write_text(tables.paired_markdown(summary, paired), encoding="utf-8")
    tables.write_csv(paths["paired_csv"], tables.PAIRED_CSV_HEADER,
                     tables.paired_csv_rows(paired))

  document = dict(summary)
  document["colors"] = {label: figures.style(i)["color"] for i, label in enumerate(labels)}
  document["markers"] = {label: figures.style(i)["marker"] for i, label in enumerate(labels)}
  document["paired"] = paired
  document["files"] = dict(names)
  paths["summary_json"].write_text(
      json.dumps(_json_ready(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
      encoding="utf-8")

  def body(key: str) -> str:   # a table file without its level-1 heading
    return paths[key].read_text(encoding="utf-8").split("\n", 1)[1].strip()

  if paired is not None:
    paired_section = (f"## Paired differences to {paired['reference']}\n\n"
                      f"![paired differences]({FILES['paired_png']})\n\n"
                      + body("paired_md").replace("\n## ", "\n### ") + "\n")
  else:
    paired_section = f"## Paired differences\n\nNot computed: {skipped}.\n"
  training_section = ""
  if training_curves:
    counts = sorted({len(c["seeds"]) for c in training_curves.values()})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    training_section = (
        f"## Training curves\n\n![training curves]({FILES['training_png']})\n\n"
        f"Each run's `metrics.jsonl` (written every `metrics_every` training steps), mean "
        f"over {seeds} seed{'' if counts == [1] else 's'} at each step; "
        f"the step axis runs over all rounds, and dotted lines mark where a round (or an "
        f"initial trial) starts.\n\n")
  paths["report_md"].write_text(
      f"# Report — {tables.title(summary)}\n\n"
      f"## Learning curves\n\n![learning curves]({FILES['learning_curves_png']})\n\n"
      f"{body('accuracy_md')}\n\n{training_section}{paired_section}"
      f"\n## Time per round\n\n{body('timing_md')}\n\n"
      f"## Labeled-class histogram\n\n![class histogram]({FILES['histogram_png']})\n\n"
      f"{body('histogram_md')}\n\n## Overlap of acquired label sets\n\n"
      f"![IoU heatmap]({FILES['iou_png']})\n\n{body('iou_md')}\n", encoding="utf-8")
  return {key: str(path) for key, path in paths.items()}, summary, paired


def write_report(records: Sequence[Mapping | RoundRecord], out_dir: str | os.PathLike, *,
                 reference: str | None = None, interval: str = "t",
                 tie_tolerance: float = 1e-9,
                 training_curves: Mapping | None = None) -> dict[str, str]:
  """Writes the report's figures and tables into ``out_dir`` (created if needed).

  Files: learning curves (``learning_curves.png``/``.svg``: accuracy in percent vs number
  of labels, mean line ± std band per label); the same as ``accuracy_table.md``/``.csv``
  (rows = labels, columns = label counts, cells ``"mean ± std"`` in percent, one
  decimal); ``timing_table.md``/``.csv``; ``class_histogram.png``/``.md`` (last-round
  labeled-class histogram per label, grouped bars); ``iou_heatmap.png``,
  ``iou_table.md``/``.csv``; the paired comparison with the reference
  (:func:`~assljax.report.paired_comparison`): ``paired_differences.png`` (difference vs
  number of labels, interval band, zero line), ``paired_table.md``/``.csv`` (AULC and per
  label count); ``summary.json`` (:func:`summarize`, each label's ``colors``/``markers``,
  ``paired`` (the comparison, or null), ``files``; NaN and inf written as null);
  ``report.md`` (all of it).

  Args:
    records: result records, as from :func:`load_records` or :func:`load_round_records`.
    out_dir: output folder.
    reference: the label the others are compared with, seed by seed. None: ``"random"``
      when the records have that label, else the paired files are not written (and
      ``report.md`` says why).
    interval: ``"t"`` (paired t interval over seeds) or ``"bootstrap"``.
    tie_tolerance: a paired difference within this many percentage points is a tie.
    training_curves: ``{label: curve}`` as from
      :func:`assljax.report.training.load_training_curves`, or None (no training figure).

  Returns:
    ``{key: path}`` for every file written, keys ``learning_curves_png``,
    ``learning_curves_svg``, ``accuracy_md``, ``accuracy_csv``, ``timing_md``,
    ``timing_csv``, ``histogram_png``, ``histogram_md``, ``iou_png``, ``iou_md``,
    ``iou_csv``, ``paired_png``, ``paired_md``, ``paired_csv`` (when compared),
    ``training_png`` (when there are training curves),
    ``summary_json``, ``report_md``.

  Raises:
    ValueError: when the records are invalid, ``reference`` is given but not a label of
      the records, an option is out of range, or ``out_dir`` is an existing file.
  """
  return _write(as_round_records(records), out_dir, reference=reference, interval=interval,
                tie_tolerance=tie_tolerance, training_curves=training_curves)[0]


def run_report(paths: str | os.PathLike | Sequence[str | os.PathLike],
               out: str | os.PathLike, *, quiet: bool = False, reference: str | None = None,
               interval: str = "t", tie_tolerance: float = 1e-9) -> dict[str, str]:
  """``assljax report DIR [DIR ...] --out OUT``: load, write, print a text table.

  The training curves come from each run's ``metrics.jsonl`` under the workdirs.
  The text table holds the accuracy table, seconds per round and, when a reference is
  compared with, each label's AULC difference to it with its interval and verdict.

  Args:
    paths: workdirs (or results.json files) whose records are concatenated.
    out: output folder for :func:`write_report`.
    quiet: when True, print nothing.
    reference, interval, tie_tolerance: as for :func:`write_report`.

  Returns:
    :func:`write_report`'s ``{key: path}``.

  Raises:
    ValueError: one sentence naming the bad input.
  """
  records = load_round_records(paths)
  labels = list(dict.fromkeys(r.label for r in records))
  written, summary, paired = _write(records, out, reference=reference, interval=interval,
                                    tie_tolerance=tie_tolerance,
                                    training_curves=load_training_curves(paths, labels))
  if not quiet:
    print(tables.text_table(summary, paired))
    print(f"wrote {len(written)} files to {out} (see {written['report_md']})")
  return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the arguments of ``assljax report`` to ``parser`` (shared with ``assljax.app.cli``)."""
  parser.add_argument("dirs", nargs="+", metavar="DIR",
                      help="workdir containing results.json, or a results.json file")
  parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
  parser.add_argument("--quiet", action="store_true", help="print nothing")
  parser.add_argument("--reference", metavar="LABEL", default=None,
                      help="label every other label is compared with, seed by seed "
                           "(default: 'random' when present, else no paired comparison)")
  parser.add_argument("--interval", choices=paired_lib.INTERVALS, default="t",
                      help="95%% interval of a paired difference: paired t over seeds "
                           "(default) or percentile bootstrap of the seeds")
  parser.add_argument("--tie-tolerance", type=float, default=1e-9, metavar="PP",
                      help="a paired difference within PP percentage points is a tie "
                           "(default 1e-9)")


def run_from_args(args: argparse.Namespace) -> int:
  """Runs the report for parsed :func:`add_arguments` arguments; returns the exit code 0."""
  run_report(args.dirs, args.out, quiet=args.quiet, reference=args.reference,
             interval=args.interval, tie_tolerance=args.tie_tolerance)
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry: ``DIR [DIR ...] --out OUT [options]``; returns the exit code 0.

  Raises:
    ValueError: bad input (the caller prints it on one line and exits 2).
  """
  parser = argparse.ArgumentParser(
      prog="assljax report",
      description="Learning curves (mean ± std over seeds), accuracy/timing/IoU tables, "
                  "class histograms and paired differences to a reference strategy from the "
                  "results.json of one or more workdirs.")
  add_arguments(parser)
  return run_from_args(parser.parse_args(argv))
