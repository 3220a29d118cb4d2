"""Oracles: the simulated one, and the human CSV round trip with strict validation."""

import os

import numpy as np
import pytest
from matplotlib import image as mpimg

from assljax.loop import oracle

CLASSES = ("cat", "dog", "bird")


def test_simulated_oracle_returns_ground_truth():
  truth = np.array([2, 0, 1, 1])
  np.testing.assert_array_equal(oracle.SimulatedOracle(truth)(np.array([3, 0])), [1, 2])


def test_query_csv_round_trip_accepts_indices_and_names(tmp_path):
  path = oracle.write_queries(tmp_path / "q.csv", [5, 9, 2], ["a.png", "b.png", "c.png"])
  text = open(path).read().splitlines()
  assert text[0] == "sample_id,source,label" and text[1] == "5,a.png,"
  filled = "\n".join(["sample_id,source,label", "5,a.png,dog", "9,b.png,2", "2,c.png, cat "])
  (tmp_path / "filled.csv").write_text(filled + "\n")
  assert oracle.read_labels(tmp_path / "filled.csv", [5, 9, 2], CLASSES) == {5: 1, 9: 2, 2: 0}


@pytest.mark.parametrize("body, message", [
    ("sample_id,label\n5,0\n9,1\n2,1\n7,0\n", r":5: sample_id 7 is not a pending query"),
    ("sample_id,label\n5,0\n5,1\n", r":3: sample_id 5 is labeled twice"),
    ("sample_id,label\n5,3\n", r":2: label 3 is out of range \[0, 3\)"),
    ("sample_id,label\n5,-1\n", r":2: label -1 is out of range"),
    ("sample_id,label\n5,horse\n", r":2: label 'horse' is neither a class index"),
    ("sample_id,label\nfive,0\n", r":2: sample_id 'five' is not an integer"),
    ("id,label\n5,0\n", r"missing sample_id"),
    ("sample_id,label\n5,0\n9,1\n", r"1 pending queries have no label: 2"),
    ("", r"missing sample_id, label"),
])
def test_bad_label_files_are_rejected_naming_the_line(tmp_path, body, message):
  (tmp_path / "l.csv").write_text(body)
  with pytest.raises(ValueError, match=message):
    oracle.read_labels(tmp_path / "l.csv", [5, 9, 2], CLASSES)


def test_label_file_is_never_evaluated(tmp_path):
  (tmp_path / "l.csv").write_text('sample_id,label\n5,__import__("os").getcwd()\n')
  with pytest.raises(ValueError, match="neither a class index"):
    oracle.read_labels(tmp_path / "l.csv", [5], CLASSES)


def test_missing_and_binary_label_files(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    oracle.read_labels(tmp_path / "none.csv", [1], CLASSES)
  (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00\x01binary")
  with pytest.raises(ValueError, match="UTF-8"):
    oracle.read_labels(tmp_path / "b.csv", [1], CLASSES)


def test_contact_sheet_shows_the_images(tmp_path):
  images = np.zeros((3, 8, 8, 1), np.float32)
  images[1] = 1.0
  path = oracle.write_contact_sheet(tmp_path / "sheet.png", images, [4, 7, 9])
  pixels = mpimg.imread(path)
  assert pixels.shape[0] > 50 and pixels.std() > 0.05


def test_run_meta_round_trips_and_reads_checkpoints_written_before_it():
  from assljax.loop.state import Phase, RunMeta
  meta = RunMeta(phase=Phase.LABEL, records=[{"round": 0}], pending=[3, 1], checkpoint=4,
                 trial_accuracies=[0.5])
  saved = meta.to_json()
  assert saved["phase"] == "label" and "trial_pick" not in saved and "early_stopping" not in saved
  assert RunMeta.from_json(saved) == meta
  # a checkpoint of a run older than the metrics log: no steps_before
  old = {"phase": "train", "records": [], "pending": [], "current": {}, "train_seconds": 1.5,
         "checkpoint": 2}
  restored = RunMeta.from_json(old)
  assert (restored.phase, restored.steps_before, restored.train_seconds) == (Phase.TRAIN, 0, 1.5)
  with pytest.raises(ValueError):
    RunMeta.from_json({**old, "phase": "sleep"})


def test_any_oracle_object_labels_the_queries(tiny_config_path, tmp_path):
  # run_loop takes any object with answer(round, pending); this one swaps classes 0 and 1
  # and records what it was asked, so the pool must hold exactly its answers.
  from assljax.app import configs, experiment
  from assljax.loop.round import Status, run_loop
  config = configs.load_config(tiny_config_path)
  config.strategies = ["random"]
  prepared = experiment.prepare(config, log=lambda _: None)
  truth = np.asarray(prepared.dataset.train.y)

  class SwappingOracle:
    def __init__(self):
      self.asked = []

    def answer(self, round_index, pending):
      self.asked.append((round_index, list(pending)))
      labels = truth[np.asarray(pending)]
      return np.where(labels < 2, 1 - labels, labels).astype(np.int32)

  oracle = SwappingOracle()
  plan = prepared.plans["random"]
  status = run_loop(workdir=str(tmp_path), dataset=prepared.dataset, model=prepared.model,
                    trainer=prepared.trainer, strategy=plan.strategy, schedule=plan.schedule,
                    seed=0, train_steps=4, checkpoint_every=4, oracle=oracle, progress=False,
                    log=lambda _: None)
  assert status.status == Status.DONE
  asked = [index for _, pending in oracle.asked for index in pending]
  assert [r for r, _ in oracle.asked] == list(range(len(plan.schedule.query_sizes)))
  assert [r["queried_indices"] for r in status.records[:-1]] == [p for _, p in oracle.asked]
  swapped = np.where(truth[asked] < 2, 1 - truth[asked], truth[asked])
  assert (swapped != truth[asked]).any()   # the answers are not the ground truth
  initial = np.asarray(status.records[0]["labeled_class_histogram"])
  final = np.asarray(status.records[-1]["labeled_class_histogram"])
  np.testing.assert_array_equal(final, initial + np.bincount(swapped, minlength=final.size))


def test_an_object_without_answer_is_refused_before_any_work(tmp_path):
  from assljax.loop.round import run_loop
  with pytest.raises(ValueError, match="oracle must be 'simulated', 'human' or an object"):
    run_loop(workdir=str(tmp_path), dataset=_FakeDataset(), model=None, trainer=None,
             strategy=None, schedule=None, seed=0, train_steps=1, oracle=None,
             label="x", log=lambda _: None)
  assert os.listdir(tmp_path) == []   # nothing written


class _FakeDataset:
  class train:
    y = np.zeros(4, np.int32)
