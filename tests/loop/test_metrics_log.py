"""Training curves: metrics.jsonl and TensorBoard event files, exact across kill/resume."""

import glob
import math
import os
import struct

import numpy as np
import pytest

from assljax.app import configs, experiment
from assljax.loop import metrics_log
from assljax.ssl.optim import fixmatch_schedule

STEPS = 12        # per round (the tiny config)
EVERY = 2         # metrics_every


class Interrupt(Exception):
  pass


@pytest.fixture(scope="module")
def prepared(tiny_config_path):
  config = configs.load_config(tiny_config_path)
  config.strategies = ["random"]
  config.al.budget = 15
  return experiment.prepare(config, log=lambda _: None)


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("metrics_reference"))
  experiment.run_experiment(prepared, workdir, log=lambda _: None)
  return metrics_log.read(experiment.run_dir(workdir, "random", 0))


def _event_scalars(directory: str) -> dict[str, list[tuple[int, float]]]:
  """``{tag: [(step, value), ...]}`` from TensorBoard event files (TFRecord framing),
  honouring a purge (SessionLog.START at step s drops earlier events at steps >= s)."""
  from tensorboardX.proto import event_pb2
  scalars: dict[str, list[tuple[int, float]]] = {}
  for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      if event.HasField("session_log") and event.session_log.status == event.session_log.START:
        scalars = {tag: [(s, v) for s, v in points if s < event.step]
                   for tag, points in scalars.items()}
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def test_records_every_metrics_every_steps_over_rounds(prepared, reference):
  steps = [(r["round"], r["step"], r["global_step"]) for r in reference]
  assert steps == [(r, s, r * STEPS + s) for r in (0, 1) for s in range(EVERY, STEPS + 1, EVERY)]
  first = reference[0]
  for key in ("loss", "loss_x", "loss_u", "mask_rate", "confidence", "pseudo_label_accuracy",
              "pseudo_label_accuracy_all", "pseudo_label_shift", "learning_rate",
              "steps_per_second", "trial"):
    assert key in first, key
  # the learning rate is the chunk mean of FixMatch's cosine at steps 0 and 1
  schedule = fixmatch_schedule(0.03, STEPS)  # the tiny config: FixMatch defaults
  expected = np.mean([float(schedule(s)) for s in range(EVERY)])
  assert first["learning_rate"] == pytest.approx(expected, rel=1e-5)
  assert all(0.0 <= r["pseudo_label_accuracy_all"] <= 1.0 for r in reference)
  assert all(r["pseudo_label_shift"] == 0.0 for r in reference)  # plain FixMatch


def test_resume_appends_without_duplicates(prepared, reference, tmp_path):
  pytest.importorskip("tensorboardX")
  workdir = str(tmp_path)
  calls = {"n": 0}
  original = experiment.collect_results

  def interrupting(*args):
    calls["n"] += 1
    if calls["n"] == 6:  # round 1, mid-training: its first steps are logged twice
      raise Interrupt
    return original(*args)

  experiment.collect_results = interrupting
  try:
    with pytest.raises(Interrupt):
      experiment.run_experiment(prepared, workdir, log=lambda _: None)
  finally:
    experiment.collect_results = original
  run = experiment.run_dir(workdir, "random", 0)
  before = metrics_log.read(run)
  experiment.run_experiment(prepared, workdir, log=lambda _: None)
  after = metrics_log.read(run)
  assert len(before) < len(after) == len(reference)
  strip = lambda records: [{k: v for k, v in r.items() if k != "steps_per_second"}
                           for r in records]
  assert strip(after) == strip(reference)
  scalars = _event_scalars(os.path.join(run, metrics_log.TENSORBOARD))
  loss = scalars["train/loss"]
  assert [s for s, _ in loss] == [r["global_step"] for r in reference]
  assert all(math.isclose(v, r["loss"], rel_tol=1e-6) for (_, v), r in zip(loss, reference))


def test_resume_in_the_same_second_keeps_the_earlier_event_file(tmp_path, monkeypatch):
  # tensorboardX names event files by the second they are opened: a resume within that
  # second must not truncate the file of the run it resumes.
  pytest.importorskip("tensorboardX")
  import tensorboardX.event_file_writer as event_file_writer
  monkeypatch.setattr(event_file_writer.time, "time", lambda: 1_700_000_000.25)
  first = metrics_log.MetricsLog(str(tmp_path))
  for step in (1, 2, 3):
    first.write(step, {"loss": float(step)})
  first.close()               # killed after step 3; the checkpoint was at step 2
  resumed = metrics_log.MetricsLog(str(tmp_path), resume_from=2)
  for step in (3, 4):
    resumed.write(step, {"loss": 10.0 * step})
  resumed.close()
  assert len(os.listdir(tmp_path / metrics_log.TENSORBOARD)) == 2
  scalars = _event_scalars(str(tmp_path / metrics_log.TENSORBOARD))
  assert scalars["train/loss"] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
  assert [r["loss"] for r in metrics_log.read(str(tmp_path))] == [1.0, 2.0, 30.0, 40.0]


def test_each_record_is_on_disk_when_write_returns(tmp_path):
  # A SIGKILL skips close(): the events before the checkpoint the run resumes from are
  # not written again, so they must already be in the file.
  pytest.importorskip("tensorboardX")
  log = metrics_log.MetricsLog(str(tmp_path))
  for step in range(1, 31):
    log.write(step, {"loss": 0.5 * step, "round": 0})
  scalars = _event_scalars(str(tmp_path / metrics_log.TENSORBOARD))
  assert scalars["train/loss"] == [(s, 0.5 * s) for s in range(1, 31)]
  assert [s for s, _ in scalars["train/round"]] == list(range(1, 31))
  log.close()
