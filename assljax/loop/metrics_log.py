"""Per-step training metrics of one run: ``metrics.jsonl`` and TensorBoard event files.

    log = MetricsLog(run_dir, resume_from=global_step)
    log.write(global_step, {"round": 0, "trial": 0, "step": 100, "loss": 0.7, ...})
    log.close()

Every record is one line of ``RUN_DIR/metrics.jsonl`` (plain JSON: ``global_step``,
``round``, ``trial``, ``step`` and the chunk means of the training metrics). When
``tensorboardX`` is installed, the same numbers go to ``RUN_DIR/tensorboard`` as scalars
``train/<metric>`` at ``global_step`` (and the round as ``train/round``), readable with
``tensorboard --logdir RUN_DIR``. tensorboardX writes TensorBoard's event format without
TensorFlow (a few hundred kB of pure Python next to TensorFlow's 1.9 GB), which is why it
is the writer here rather than ``tf.summary`` or ``clu.metric_writers`` (built on it).

``global_step`` counts every training step of the run so far, over rounds (and the
initial trials of ``initial_trials``), so curves of successive rounds follow each other
on one axis. Resuming is exact: a run restarts from its last checkpoint after global step
``g``, so records after ``g`` are dropped from ``metrics.jsonl`` and TensorBoard is told
to purge them (``purge_step = g + 1``); the re-run writes them again, once.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

_log = logging.getLogger(__name__)
JSONL = "metrics.jsonl"
TENSORBOARD = "tensorboard"


class MetricsLog:
  """Appends training records of one run; see the module docstring.

  Args:
    directory: the run directory.
    resume_from: the global step the run restarts from (steps already done); records
      after it are dropped (they will be written again).
    tensorboard: also write event files when tensorboardX is importable.
  """

  def __init__(self, directory: str, *, resume_from: int = 0, tensorboard: bool = True):
    os.makedirs(directory, exist_ok=True)
    self.path = os.path.join(directory, JSONL)
    self._truncate(int(resume_from))
    self._file = open(self.path, "a")
    self._writer = None
    if tensorboard:
      try:
        from tensorboardX import SummaryWriter
      except ImportError:
        _log.info("tensorboardX is not installed: training metrics go to %s only "
                  "(pip install tensorboardX for TensorBoard event files)", self.path)
      else:
        # TensorBoard drops earlier events at steps >= purge_step. tensorboardX names a file
        # by the second it opens it and the host: a resume within the same second would
        # truncate the file of the run it resumes, so the name also carries the resume
        # step (zero-padded: files of one second sort in the order they were written) and
        # the process id.
        self._writer = SummaryWriter(os.path.join(directory, TENSORBOARD),
                                     purge_step=int(resume_from) + 1 if resume_from else None,
                                     filename_suffix=f".{int(resume_from):012d}.{os.getpid()}")

  def _truncate(self, resume_from: int) -> None:
    if not os.path.isfile(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    kept = [line for line in lines if json.loads(line)["global_step"] <= resume_from]
    if len(kept) != len(lines):
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(kept)
      os.replace(tmp, self.path)

  def write(self, global_step: int, record: dict[str, Any]) -> None:
    """One record at ``global_step``; numbers are written as floats (NaN as null)."""
    line = {"global_step": int(global_step)}
    for key, value in record.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        line[key] = value if math.isfinite(value) else None
    self._file.write(json.dumps(line) + "\n")
    self._file.flush()
    if self._writer is not None:
      for key, value in line.items():
        if key not in ("global_step", "step", "trial") and value is not None:
          self._writer.add_scalar(f"train/{key}", value, int(global_step))
      self._writer.flush()

  def close(self) -> None:
    self._file.close()
    if self._writer is not None:
      self._writer.close()


def read(directory: str) -> list[dict]:
  """The records of ``directory/metrics.jsonl`` (``[]`` when there is none)."""
  path = os.path.join(directory, JSONL)
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
