"""Loop modes of the papers' protocols, divergence and hyperparameter checks.

* ``random_init_first``: the untrained network makes the first query (CRC Tab. 1 left);
* ``initial_trials``: the median of K models trained on the initial labels (NPC §5.1);
* a diverging run stops with one line and keeps its last finite checkpoint.
"""

import json
import os

import jax
import numpy as np
import pytest

from assljax import acquisition
from assljax.app import configs, experiment
from assljax.loop.checkpoint import Checkpoints
from assljax.loop.state import Schedule
from assljax.ssl.train import TrainingDiverged

from loop_helpers import without_timings


@pytest.fixture(scope="module")
def prepared(tiny_config_path):
  return experiment.prepare(configs.load_config(tiny_config_path), log=lambda _: None)


def _with(prepared, **overrides):
  config = configs.from_json(configs.to_json(prepared.config))
  configs.apply_overrides(config, [f"{k}={v!r}" for k, v in overrides.items()])
  experiment.check_config(config)
  plans = {label: experiment.make_plan(config, label, prepared.model, prepared.dataset)
           for label in config.strategies}
  return prepared._replace(config=config, plans=plans)


def test_random_init_first_schedule():
  schedule = Schedule.make(mode="random_init_first", initial_per_class=0, query_size=5,
                           budget=15, num_classes=10, pool_size=200)
  assert schedule == Schedule(0, (5, 5, 5), True)
  with pytest.raises(ValueError, match="random_init_first"):
    Schedule.make(mode="sequential", initial_per_class=0, query_size=5, budget=15,
                  num_classes=10, pool_size=200)


def test_first_query_by_the_untrained_network(prepared, tmp_path):
  run = _with(prepared, **{"al.mode": "random_init_first", "al.initial_per_class": 0,
                           "al.budget": 10, "strategies": ["entropy"]})
  records = experiment.run_experiment(run, str(tmp_path), log=lambda _: None).records
  assert [(r["round"], r["num_labels"], len(r["queried_indices"])) for r in records] == [
      (0, 0, 5), (1, 5, 5), (2, 10, 0)]
  assert records[0]["training_seconds"] == 0.0 and records[1]["training_seconds"] > 0.0
  # Round 0's query is entropy under the weights the loop initialized for round 0.
  from assljax.data.pool import initial_pool
  from assljax.loop.state import TRAIN_INIT, ACQUIRE, round_key
  from assljax.ssl.train import make_data
  dataset, model, trainer = run.dataset, run.model, run.trainer
  base = jax.random.key_data(jax.random.PRNGKey(0))
  n = dataset.train.y.shape[0]
  data = make_data(dataset.train.x, np.zeros(n, np.int32), np.ones(n, bool))
  state = trainer.init(round_key(base, 0, TRAIN_INIT), data)
  variables = trainer.eval_variables(state)
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  pool = initial_pool(dataset.train.y, 0, key=0, num_classes=10)
  ctx = acquisition.Context(apply_fn=apply_fn, params=variables.params, x=dataset.train.x,
                            labeled_mask=pool.labeled_mask, labels=np.zeros(n, np.int32),
                            num_classes=10, embed_fn=embed_fn)
  expected = acquisition.get("entropy")(round_key(base, 0, ACQUIRE), ctx, 5)
  assert records[0]["queried_indices"] == [int(i) for i in np.asarray(expected)]


def test_initial_trials_keep_the_median_model(prepared, tmp_path):
  logs = []
  single = _with(prepared, **{"strategies": ["random"], "al.budget": 15})
  trials = _with(prepared, **{"strategies": ["random"], "al.budget": 15,
                              "al.initial_trials": 3})
  one = experiment.run_experiment(single, str(tmp_path / "one"), log=lambda _: None).records
  three = experiment.run_experiment(trials, str(tmp_path / "three"), log=logs.append).records
  line = next(text for text in logs if "initial trials" in text)
  accuracies = [float(a.rstrip("%")) / 100 for a in
                line.split("test accuracy ")[1].split(";")[0].split(", ")]
  assert len(accuracies) == 3
  # trial 0 is the single-model run's model (same key)
  assert accuracies[0] == pytest.approx(one[0]["test_accuracy"], abs=1e-6)
  median = sorted(accuracies)[1]
  assert three[0]["test_accuracy"] == pytest.approx(median, abs=1e-6)
  assert f"keeping trial {accuracies.index(median)}" in line or sorted(accuracies).count(median) > 1
  # later rounds train one model
  assert [r["num_labels"] for r in three] == [10, 15]


def test_initial_trials_resume_identically(prepared, tmp_path):
  trials = _with(prepared, **{"strategies": ["random"], "al.budget": 15,
                              "al.initial_trials": 3})
  reference = experiment.run_experiment(trials, str(tmp_path / "ref"), log=lambda _: None)
  original = experiment.collect_results
  calls = {"n": 0}

  class Stop(Exception):
    pass

  def interrupting(*args):
    calls["n"] += 1
    if calls["n"] == 7:  # inside the third trial (4 steps per checkpoint, 12 steps)
      raise Stop
    return original(*args)

  experiment.collect_results = interrupting
  try:
    with pytest.raises(Stop):
      experiment.run_experiment(trials, str(tmp_path / "cut"), log=lambda _: None)
  finally:
    experiment.collect_results = original
  resumed = experiment.run_experiment(trials, str(tmp_path / "cut"), log=lambda _: None)
  assert without_timings(resumed.records) == without_timings(reference.records)


def test_divergence_stops_and_keeps_a_finite_checkpoint(prepared, tmp_path):
  config = _with(prepared, **{"strategies": ["random"], "ssl.lr": 1e30}).config
  run = experiment.prepare(config, log=lambda _: None)  # a trainer with that lr
  with pytest.raises(TrainingDiverged, match=r"\[random seed 0\] round 0: training diverged "
                                              r"at step \d+") as info:
    experiment.run_experiment(run, str(tmp_path), log=lambda _: None)
  assert info.value.step < 12
  directory = os.path.join(experiment.run_dir(str(tmp_path), "random", 0), "checkpoints")
  assert str(directory) in str(info.value)
  saved = Checkpoints(directory)
  step = saved.latest_step()
  assert step is not None
  ocp = saved._ocp
  state = saved._manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))["state"]
  arrays = [np.asarray(a) for a in jax.tree_util.tree_leaves(state)
            if np.issubdtype(np.asarray(a).dtype, np.floating)]
  assert arrays and all(np.isfinite(a).all() for a in arrays)


@pytest.mark.parametrize("key,value,message", [
    ("ssl.lr", float("nan"), "config.ssl.lr must be finite"),
    ("ssl.lr", -0.1, r"config.ssl.lr must be in \(0, inf\)"),
    ("ssl.weight_decay", float("inf"), "config.ssl.weight_decay must be finite"),
    ("ssl.ema_decay", 1.5, r"config.ssl.ema_decay must be in \[0, 1\]"),
    ("ssl.options.threshold", float("nan"), "threshold must be finite"),
    ("ssl.options.lambda_u", -1.0, "lambda_u must be in"),
    ("al.initial_trials", 0, "initial_trials must be a positive integer"),
])
def test_hyperparameters_are_checked(prepared, key, value, message):
  config = configs.from_json(configs.to_json(prepared.config))
  node = config
  *parents, leaf = key.split(".")
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(ValueError, match=message):
    experiment.check_config(config)
    experiment.build_algorithm(config.ssl.algorithm, config.ssl.options.to_dict(),
                               None, None)


def test_early_stopping_on_a_held_out_split(prepared, tmp_path):
  """A frozen model (lr ~ 0) never improves on its first evaluation: training stops one
  patience later, the held-out samples leave the pool, and nothing else changes."""
  logs = []
  config = _with(prepared, **{"strategies": ["random"], "al.budget": 15, "ssl.lr": 1e-12,
                              "ssl.ema_decay": 0.0}).config
  config.ssl.early_stopping = dict(eval_every=4, patience=4, validation_size=30)
  run = experiment.prepare(config, log=lambda _: None)
  assert len(run.dataset.train.y) == len(prepared.dataset.train.y) - 30
  x_val, y_val = run.validation
  assert len(y_val) == 30 and np.bincount(y_val, minlength=10).min() >= 2  # stratified
  pool_ids = set(run.dataset.train.ids.tolist())
  held = {i for i in prepared.dataset.train.ids.tolist() if i not in pool_ids}
  assert len(held) == 30
  records = experiment.run_experiment(run, str(tmp_path), log=logs.append).records
  stops = [line for line in logs if "early stop at step 8" in line]
  assert len(stops) == 2, logs  # both rounds: best at step 4, no gain by step 8
  assert [r["num_labels"] for r in records] == [10, 15]
  with pytest.raises(ValueError, match="early_stopping"):
    bad = _with(prepared, **{"strategies": ["random"]}).config
    bad.ssl.early_stopping = dict(eval_every=4, patience=4)
    experiment.check_config(bad)


def test_initial_extra_labels_on_top_of_a_balanced_set():
  from assljax.data.pool import initial_pool
  y = np.repeat(np.arange(5), 20)
  pool = initial_pool(y, 1, key=3, num_classes=5, extra=7)
  assert pool.labeled_mask.sum() == 12
  assert np.bincount(y[pool.labeled_mask], minlength=5).min() >= 1  # every class represented
  same = initial_pool(y, 1, key=3, num_classes=5)
  assert (same.labeled_mask <= pool.labeled_mask).all()  # the balanced part is unchanged
  schedule = Schedule.make(mode="sequential", initial_per_class=1, query_size=10, budget=52,
                           num_classes=35, pool_size=1000, initial_extra=7)
  assert schedule.query_sizes == (10,) and schedule.initial_extra == 7
  with pytest.raises(ValueError, match="not reachable"):
    Schedule.make(mode="sequential", initial_per_class=1, query_size=10, budget=60,
                  num_classes=35, pool_size=1000, initial_extra=7)
