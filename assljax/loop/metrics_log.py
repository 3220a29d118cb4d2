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
import time
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
    self._events = None
    if tensorboard:
      try:
        from tensorboardX import event_file_writer
      except ImportError:
        _log.info("tensorboardX is not installed: training metrics go to %s only "
                  "(pip install tensorboardX for TensorBoard event files)", self.path)
      else:
        events_dir = os.path.join(directory, TENSORBOARD)
        os.makedirs(events_dir, exist_ok=True)
        # tensorboardX's SummaryWriter queues events for a thread and writes them to disk
        # every 120 s: a killed run loses the events before its last checkpoint, which a
        # resume does not write again. EventsWriter writes in the calling thread, so each
        # record is on disk when write() returns.
        # The file name carries the second it was opened and the host; a resume within the
        # same second would truncate the file of the run it resumes, so it also carries the
        # resume step (zero-padded: files of one second sort in the order they were
        # written) and the process id.
        self._events = event_file_writer.EventsWriter(
            os.path.join(events_dir, "events"),
            filename_suffix=f".{int(resume_from):012d}.{os.getpid()}")
        if resume_from:
          # TensorBoard drops earlier events at steps >= the step of a SessionLog.START.
          from tensorboardX.proto.event_pb2 import Event, SessionLog
          self._events.write_event(Event(wall_time=time.time(), step=int(resume_from) + 1,
                                         session_log=SessionLog(status=SessionLog.START)))
        self._events.flush()

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
    if self._events is not None:
      from tensorboardX.proto.event_pb2 import Event
      from tensorboardX.proto.summary_pb2 import Summary
      values = [Summary.Value(tag=f"train/{key}", simple_value=float(value))
                for key, value in line.items()
                if key not in ("global_step", "step", "trial") and value is not None]
      self._events.write_event(Event(wall_time=time.time(), step=int(global_step),
                                     summary=Summary(value=values)))
      self._events.flush()

  def close(self) -> None:
    self._file.close()
    if self._events is not None:
      self._events.close()


def read(directory: str) -> list[dict]:
  """The records of ``directory/metrics.jsonl`` (``[]`` when there is none)."""
  path = os.path.join(directory, JSONL)
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
