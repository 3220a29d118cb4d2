"""The loop end to end on a tiny problem: records, resume equivalence, modes, human oracle."""

import json
import os

import numpy as np
import pytest

from assljax.app import configs, experiment
from assljax.loop.oracle import labels_path
from assljax.loop.state import Schedule

from loop_helpers import without_timings


class Interrupt(Exception):
  pass


@pytest.fixture(scope="module")
def prepared(tiny_config_path):
  return experiment.prepare(configs.load_config(tiny_config_path), log=lambda _: None)


def _with(prepared, **overrides):
  config = configs.from_json(configs.to_json(prepared.config))
  configs.apply_overrides(config, [f"{k}={v!r}" for k, v in overrides.items()])
  plans = {label: experiment.make_plan(config, label, prepared.model, prepared.dataset)
           for label in config.strategies}
  return prepared._replace(config=config, plans=plans)


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("reference"))
  status = experiment.run_experiment(prepared, workdir, log=lambda _: None)
  return workdir, status.records


def test_records_follow_the_schedule(prepared, reference):
  workdir, records = reference
  assert [(r["strategy"], r["round"], r["num_labels"]) for r in records] == [
      (s, i, 10 + 5 * i) for s in ("random", "entropy") for i in range(3)]
  initial = None
  for strategy in ("random", "entropy"):
    runs = [r for r in records if r["strategy"] == strategy]
    queried = [i for r in runs for i in r["queried_indices"]]
    assert len(queried) == len(set(queried)) == 10 and runs[-1]["queried_indices"] == []
    for r in runs:
      assert sum(r["labeled_class_histogram"]) == r["num_labels"]
      assert 0.0 <= r["test_accuracy"] <= 1.0 and len(r["per_class_accuracy"]) == 10
    assert runs[0]["labeled_class_histogram"] == [1] * 10  # balanced initial labels
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f) == records
  # Both strategies start from the same balanced set (same seed) and query differently.
  random_q = {i for r in records if r["strategy"] == "random" for i in r["queried_indices"]}
  entropy_q = {i for r in records if r["strategy"] == "entropy" for i in r["queried_indices"]}
  assert random_q != entropy_q
  del initial


@pytest.mark.parametrize("stop_after", [1, 3, 6, 9])
def test_resume_after_interruption_is_identical(prepared, reference, tmp_path, stop_after):
  """Interrupt after the k-th checkpoint (mid-training, after training, after acquisition)."""
  workdir = str(tmp_path)
  calls = {"n": 0}
  original = experiment.collect_results

  def interrupting(*args):
    calls["n"] += 1
    if calls["n"] == stop_after:
      raise Interrupt
    return original(*args)

  experiment.collect_results = interrupting
  try:
    with pytest.raises(Interrupt):
      experiment.run_experiment(prepared, workdir, log=lambda _: None)
  finally:
    experiment.collect_results = original
  status = experiment.run_experiment(prepared, workdir, log=lambda _: None)
  assert without_timings(status.records) == without_timings(reference[1])


def test_single_and_zero_shot_schedules(prepared, tmp_path):
  schedule = Schedule.make(mode="single_shot", initial_per_class=1, query_size=5, budget=20,
                           num_classes=10, pool_size=200)
  assert schedule == Schedule(1, (10,), False)
  zero = _with(prepared, **{"al.mode": "zero_shot", "strategies": ["random"]})
  records = experiment.run_experiment(zero, str(tmp_path), log=lambda _: None).records
  assert [(r["round"], r["num_labels"], len(r["queried_indices"])) for r in records] == [
      (0, 10, 10), (1, 20, 0)]
  assert records[0]["training_seconds"] == 0.0
  with pytest.raises(ValueError, match="mode must be"):
    Schedule.make(mode="twice", initial_per_class=1, query_size=5, budget=20, num_classes=10,
                  pool_size=200)


def test_human_oracle_round_trip(prepared, reference, tmp_path):
  human = _with(prepared, oracle="human", strategies=["random"])
  workdir = str(tmp_path)
  status = experiment.run_experiment(human, workdir, log=lambda _: None)
  assert status.status == "awaiting_labels" and len(status.pending) == 5
  run = experiment.run_dir(workdir, "random", 0)
  assert os.path.isfile(os.path.join(run, "queries", "round_0.csv"))
  assert os.path.isfile(os.path.join(run, "queries", "round_0.png"))
  truth = human.dataset.train.y
  for round_index in range(2):
    _, r, pending = experiment.awaiting_run(workdir, human.config)
    assert r == round_index
    answer = tmp_path / f"answer{r}.csv"
    names = human.dataset.class_names
    answer.write_text("sample_id,label\n" + "".join(
        f"{i},{names[truth[i]] if k % 2 else truth[i]}\n" for k, i in enumerate(pending)))
    assert experiment.ingest_labels(human, workdir, str(answer)) == labels_path(run, r)
    status = experiment.run_experiment(human, workdir, log=lambda _: None)
  assert status.status == "done"
  simulated = [r for r in reference[1] if r["strategy"] == "random"]
  assert without_timings(status.records) == without_timings(simulated)


def test_continued_training_differs_from_reinit(prepared, tmp_path):
  cont = _with(prepared, **{"ssl.reinit": False, "strategies": ["random"]})
  records = experiment.run_experiment(cont, str(tmp_path), log=lambda _: None).records
  assert [r["num_labels"] for r in records] == [10, 15, 20]
  assert np.all(np.isfinite([r["test_accuracy"] for r in records]))
