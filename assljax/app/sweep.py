"""Sweeps: the (strategy, seed) cells of one config, run by separate processes or machines.

A config runs every strategy label for every seed, one independent run per pair (runs of
different cells share nothing but the config). A sweep gives each pair a cell number and
each cell its own workdir, so that a SLURM job array, several GPUs of one host or several
hosts run them side by side, and ``assljax report`` merges the workdirs afterwards:

    assljax cells --config X.py                 # the cells (index, strategy, seed), count
    assljax run --config X.py --workdir runs/X/cell_I --cell I     # one process per I
    assljax report runs/X/cell_0 runs/X/cell_1 ... --out runs/X/report

Cell ``i`` is the ``i``-th ``(label, seed)`` of :func:`assljax.app.experiment.runs`:
labels in ``config.strategies`` order, seeds in ``config.seeds`` order within a label,
numbered from 0 (as ``SLURM_ARRAY_TASK_ID`` with ``--array=0-N``). Overrides
(``--config.KEY=VALUE``) apply before numbering, the same for every cell.

A cell's workdir holds an ordinary run of the config restricted to that cell
(``strategies=[label]``, ``seeds=[seed]`` in ``config.json``) plus ``cell.json``
(index, count, label, seed, config file and overrides), so ``--resume``, ``query`` and
``label`` work on it as on any workdir; and running the same ``--cell`` command again in
the same workdir resumes it (a requeued array task continues instead of failing), while a
workdir holding anything else is refused.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Sequence

import ml_collections

from assljax._validation import UserInputError

CELL_FILE = "cell.json"


def cells(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """``(label, seed)`` of every cell, indexed by cell number."""
  from assljax.app import experiment
  return experiment.runs(config)


def select_cell(config: ml_collections.ConfigDict, cell: int) -> ml_collections.ConfigDict:
  """A copy of ``config`` restricted to cell ``cell``: one strategy label and one seed.

  Raises:
    ValueError: when ``cell`` is not an integer in ``[0, number of cells)``.
  """
  table = cells(config)
  if isinstance(cell, bool) or not isinstance(cell, int):
    raise UserInputError(f"--cell must be an integer, got {cell!r}")
  if not 0 <= cell < len(table):
    raise UserInputError(f"cell {cell} is out of range: this config has {len(table)} cells, "
                         f"0 to {len(table) - 1} (see `assljax cells --config ...`)")
  label, seed = table[cell]
  selected = copy.deepcopy(config)
  with selected.unlocked():
    selected.strategies = [label]
    selected.seeds = [seed]
  return selected


def describe(config: ml_collections.ConfigDict) -> str:
  """The cell table as text: ``cell strategy seed`` rows, then ``N cells``."""
  table = cells(config)
  width = max([len("strategy")] + [len(label) for label, _ in table])
  lines = [f"{'cell':>4}  {'strategy':<{width}}  seed"]
  lines += [f"{i:>4}  {label:<{width}}  {seed}" for i, (label, seed) in enumerate(table)]
  lines.append(f"{len(table)} cells")
  return "\n".join(lines)


def save_cell(workdir: str, cell: int, count: int, config: ml_collections.ConfigDict,
              source: str, overrides: Sequence[str]) -> str:
  """Writes ``WORKDIR/cell.json``: which cell of which config the workdir runs."""
  path = os.path.join(workdir, CELL_FILE)
  record = {"cell": int(cell), "cells": int(count), "strategy": config.strategies[0],
            "seed": int(config.seeds[0]), "config": source, "overrides": list(overrides)}
  os.makedirs(workdir, exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(record, f, indent=1)
  os.replace(path + ".tmp", path)
  return path


def holds_cell(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Whether ``workdir`` already runs exactly ``config`` (a cell selected by :func:`select_cell`).

  True only when ``cell.json`` exists and the saved ``config.json`` equals ``config``
  (the same file, overrides and cell); then running the cell again means resuming it.
  """
  from assljax.app import configs as configs_lib
  saved = os.path.join(workdir, "config.json")
  if not (os.path.isfile(saved) and os.path.isfile(os.path.join(workdir, CELL_FILE))):
    return False
  try:
    with open(saved) as f:
      stored = configs_lib.to_json(configs_lib.from_json(f.read()))
    return stored == configs_lib.to_json(configs_lib.from_json(configs_lib.to_json(config)))
  except (ValueError, UnicodeDecodeError):
    return False
