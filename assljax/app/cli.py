"""The `assljax` command line.

    assljax run --config experiments/configs/NAME.py[:ARG] --workdir DIR [--config.KEY=VALUE ...]
    assljax run --workdir DIR --resume       # continue after a crash or a labeling step
    assljax run --config NAME.py --workdir DIR/cell_I --cell I   # one (strategy, seed) cell
    assljax cells --config NAME.py [--config.KEY=VALUE ...] [--count]   # list the cells
    assljax query --workdir DIR [--format csv|label-studio] [--local-files-root ROOT]
    assljax label --workdir DIR --labels FILE.csv|EXPORT.json   # CSV or Label Studio export
    assljax report DIR [DIR ...] --out OUT [--reference LABEL]   # curves, tables, paired stats

Bad input of any kind (:class:`assljax.UserInputError`, a missing optional dependency,
a file that cannot be read) prints one line, ``assljax: error: ...``, and exits with code 2;
``--debug`` (anywhere on the line) prints the traceback instead. Any other exception is a
bug in assljax and surfaces with its traceback and exit code 1. Nothing already saved in
a workdir is changed by a failed command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from assljax._validation import UserInputError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
  """argparse that reports errors in the same one-line form as everything else."""

  def error(self, message: str):
    raise UserInputError(message)


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="assljax", description="Active semi-supervised learning in JAX.")
  parser.add_argument("--debug", action="store_true",
                      help="show the traceback of an input error instead of one line")
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

  run = commands.add_parser("run", help="run or resume an experiment")
  run.add_argument("--config", help="experiments/configs/NAME.py[:ARG]")
  run.add_argument("--workdir", required=True, help="where checkpoints and results go")
  run.add_argument("--resume", action="store_true", help="continue the run saved in --workdir")
  run.add_argument("--cell", type=int, metavar="I",
                   help="run only cell I (0-based) of the config's (strategy, seed) cells "
                        "(see `assljax cells`); running it again in the same workdir resumes")

  cells = commands.add_parser("cells", help="list the (strategy, seed) cells of a config, for "
                                            "`run --cell I` on many machines")
  cells.add_argument("--config", required=True, help="experiments/configs/NAME.py[:ARG]")
  cells.add_argument("--count", action="store_true", help="print only the number of cells")

  query = commands.add_parser("query", help="export the queries waiting for human labels")
  query.add_argument("--workdir", required=True)
  query.add_argument("--format", default="csv", choices=("csv", "label-studio"),
                     help="csv: CSV + contact sheet (default); label-studio: tasks.json, "
                          "label_config.xml and media files for a Label Studio project")
  query.add_argument("--local-files-root", metavar="ROOT",
                     help="label-studio: refer to media by /data/local-files/ URLs relative to "
                          "ROOT (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT) instead of embedding "
                          "them")

  label = commands.add_parser("label", help="validate and store human labels")
  label.add_argument("--workdir", required=True)
  label.add_argument("--labels", required=True,
                     help="CSV with sample_id and label columns, or a Label Studio JSON / "
                          "JSON-MIN export of the tasks `query --format label-studio` wrote")

  from assljax.report import output as report_output   # argparse lines shared with the module
  report = commands.add_parser("report", help="learning curves, tables and paired differences "
                                              "to a reference strategy from results")
  report_output.add_arguments(report)
  return parser


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Separates ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) from other arguments."""
  rest, overrides, i = [], [], 0
  argv = list(argv)
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      body = arg[len("--config."):]
      if "=" not in body:
        if i + 1 >= len(argv):
          raise UserInputError(f"{arg} needs a value")
        body, i = f"{body}={argv[i + 1]}", i + 1
      overrides.append(body)
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def _run(args, overrides: list[str]) -> int:
  from assljax.app import configs, experiment, sweep
  from assljax.loop.round import Status

  workdir = os.path.abspath(args.workdir)
  resume, cell_count = args.resume, None
  if args.resume:
    if args.config:
      raise UserInputError("--resume continues the config saved in the workdir; drop --config")
    if args.cell is not None:
      raise UserInputError("--resume continues the cell saved in the workdir; drop --cell")
    config = experiment.load_saved_config(workdir)
    configs.apply_overrides(config, [o for o in overrides if o.startswith("progress=")])
    if any(not o.startswith("progress=") for o in overrides):
      raise UserInputError("--resume accepts no config overrides except --config.progress")
  else:
    if not args.config:
      raise UserInputError("run needs --config FILE.py[:ARG] (or --resume)")
    if args.cell is None and os.path.isfile(os.path.join(workdir, "config.json")):
      raise UserInputError(f"{workdir} already holds a run; continue it with --resume "
                           "or choose a new --workdir")
    config = configs.apply_overrides(configs.load_config(args.config), overrides)
    experiment.check_config(config)
    if args.cell is not None:
      cell_count = len(sweep.cells(config))
      config = sweep.select_cell(config, args.cell)
      if sweep.holds_cell(workdir, config):
        resume = True
      elif os.path.isfile(os.path.join(workdir, "config.json")):
        raise UserInputError(f"{workdir} already holds a run that is not cell {args.cell} of this "
                             "config; choose a new --workdir")
      print(f"assljax: cell {args.cell} of {cell_count}: strategy {config.strategies[0]}, "
            f"seed {config.seeds[0]}" + (" (resuming)" if resume else ""))
  prepared = experiment.prepare(config)
  if not resume:
    if args.cell is not None:   # before config.json: a workdir with config.json is a run
      sweep.save_cell(workdir, args.cell, cell_count, config, args.config, overrides)
    experiment.save_config(workdir, config)
  status = experiment.run_experiment(prepared, workdir)
  if status.status == Status.AWAITING_LABELS:
    print(f"assljax: {len(status.pending)} queries await human labels; see `assljax query "
          f"--workdir {args.workdir}`")
    return 0
  print(f"assljax: done; {len(status.records)} records in "
        f"{os.path.join(args.workdir, 'results.json')}")
  return 0


def _cells(args, overrides: list[str]) -> int:
  from assljax.app import configs, experiment, sweep
  config = configs.apply_overrides(configs.load_config(args.config), overrides)
  experiment.check_config(config)
  print(len(sweep.cells(config)) if args.count else sweep.describe(config))
  return 0


def _query(args) -> int:
  from assljax.app import experiment
  workdir = os.path.abspath(args.workdir)
  prepared = experiment.prepare(experiment.load_saved_config(workdir), log=lambda _: None)
  for path in experiment.export_pending(prepared, workdir, fmt=args.format,
                                        local_files_root=args.local_files_root):
    print(path)
  return 0


def _label(args) -> int:
  from assljax.app import experiment
  workdir = os.path.abspath(args.workdir)
  prepared = experiment.prepare(experiment.load_saved_config(workdir), log=lambda _: None)
  target = experiment.ingest_labels(prepared, workdir, args.labels)
  print(f"assljax: labels stored in {target}; continue with `assljax run --workdir "
        f"{args.workdir} --resume`")
  return 0


def _report(args) -> int:
  from assljax.report import output
  return output.run_from_args(args)


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the `assljax` console script; returns the exit code."""
  from assljax._optional import MissingDependencyError

  argv = list(sys.argv[1:] if argv is None else argv)
  debug = "--debug" in argv
  argv = [arg for arg in argv if arg != "--debug"]
  try:
    rest, overrides = _split_overrides(argv)
    if rest[:1] == ["-h"] or rest[:1] == ["--help"] or (len(rest) >= 2 and rest[1] in ("-h", "--help")):
      _parser().parse_args(rest)  # prints help and exits 0
    args = _parser().parse_args(rest)
    if overrides and args.command not in ("run", "cells"):
      raise UserInputError("--config.KEY=VALUE overrides only apply to `assljax run` and "
                           "`assljax cells`")
    handler = {"run": lambda: _run(args, overrides), "cells": lambda: _cells(args, overrides),
               "query": lambda: _query(args), "label": lambda: _label(args),
               "report": lambda: _report(args)}[args.command]
    return handler()
  # Only problems of the user's input or machine become one line; anything else is a bug in
  # assljax and keeps its traceback.
  except (UserInputError, MissingDependencyError, OSError) as e:
    if debug:
      raise
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"assljax: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except KeyboardInterrupt:
    print("assljax: interrupted; resume with `assljax run --workdir DIR --resume`",
          file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
