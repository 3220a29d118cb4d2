"""Training curves behind a report: each run's ``metrics.jsonl``, averaged over seeds.

    curves = load_training_curves(["runs/demo"], labels=["random", "npc"])
    # {"random": {"global_step": [...], "round_starts": [...], "loss": [...], ...}, ...}

``assljax run`` writes one ``metrics.jsonl`` per (label, seed) run in
``WORKDIR/runs/LABEL/seed_N`` (:mod:`assljax.loop.metrics_log`). Seeds of one label share
the training schedule, so their records line up by ``global_step``; the curve of a
label is, at every global step, the mean over the seeds that have a finite value there.
The report draws these next to the learning curves, so an under-trained recipe or a
collapsing pseudo-label accuracy is visible without opening TensorBoard.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence

from assljax.loop import metrics_log

# (metric key in metrics.jsonl, panel title); a panel is drawn when some run has the key
PANELS = (("loss", "Training loss"),
          ("mask_rate", "Mask rate (unlabeled above threshold)"),
          ("pseudo_label_accuracy", "Pseudo-label accuracy (masked)"),
          ("learning_rate", "Learning rate"))
_SEED_DIR = re.compile(r"^seed_(\d+)$")


def _workdir(path: str | os.PathLike) -> str:
  path = os.fspath(path)
  return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


def _seed_records(workdirs: Sequence[str], label: str) -> dict[int, list[dict]]:
  """``{seed: records}`` of ``label`` over the workdirs (a later workdir wins a seed)."""
  runs: dict[int, list[dict]] = {}
  for workdir in workdirs:
    label_dir = os.path.join(workdir, "runs", label)
    if not os.path.isdir(label_dir):
      continue
    for name in sorted(os.listdir(label_dir)):
      match = _SEED_DIR.match(name)
      if match:
        records = metrics_log.read(os.path.join(label_dir, name))
        if records:
          runs[int(match.group(1))] = records
  return runs


def _mean_curve(runs: dict[int, list[dict]]) -> dict:
  steps = sorted({r["global_step"] for records in runs.values() for r in records})
  keys = [key for key, _ in PANELS
          if any(r.get(key) is not None for records in runs.values() for r in records)]
  by_step = {seed: {r["global_step"]: r for r in records} for seed, records in runs.items()}
  curve: dict = {"global_step": steps, "seeds": sorted(runs)}
  for key in keys:
    values = []
    for step in steps:
      finite = [float(rows[step][key]) for rows in by_step.values()
                if step in rows and rows[step].get(key) is not None
                and math.isfinite(float(rows[step][key]))]
      values.append(sum(finite) / len(finite) if finite else math.nan)
    curve[key] = values
  # the global step at which each round after the first starts (the last step of the one
  # before): the figure marks it
  first = runs[min(runs)]
  curve["round_starts"] = [a["global_step"] for a, b in zip(first, first[1:])
                           if (b.get("round"), b.get("trial")) != (a.get("round"), a.get("trial"))]
  return curve


def load_training_curves(paths: str | os.PathLike | Sequence[str | os.PathLike],
                         labels: Sequence[str]) -> dict[str, dict]:
  """Mean training curves per label from the ``metrics.jsonl`` of every run.

  Args:
    paths: workdirs (or their ``results.json`` files), as given to ``assljax report``.
    labels: the labels to look for (``WORKDIR/runs/LABEL/seed_N``).

  Returns:
    ``{label: curve}`` for the labels with at least one run that logged metrics; a
    curve has ``global_step`` (``(T,)`` ints), ``seeds``, ``round_starts`` (the global
    steps after which a new round or initial trial begins, read off the lowest seed) and, for each
    :data:`PANELS` key some run logged, ``(T,)`` means over seeds (NaN where no seed has a
    finite value). Empty when no run logged metrics (e.g. records from elsewhere).
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  workdirs = list(dict.fromkeys(_workdir(p) for p in paths))
  curves = {}
  for label in labels:
    runs = _seed_records(workdirs, label)
    if runs:
      curves[label] = _mean_curve(runs)
  return curves
