"""One active semi-supervised learning run: train → evaluate → acquire → label → repeat.

:func:`run_loop` is the whole loop for one (strategy, seed), written as one linear
sequence of phases so it reads top to bottom. Each phase ends in a checkpoint, and
training also checkpoints every ``checkpoint_every`` steps, so a run killed at any
moment resumes from the last checkpoint and produces the same queries and metrics as
an uninterrupted run (everything random derives from the run's key with ``fold_in``).

Phases of round ``r`` (stored in the checkpoint metadata):

    train    train the model on the labeled pool (fresh weights or continued)
             and evaluate the EMA weights on the test split
    acquire  score the pool with the strategy and pick the next queries
    label    ask the oracle: ground truth, or a human via CSV (the run stops and
             `assljax run --resume` continues once `assljax label` stored the answers)
    done     the budget is spent
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import UserInputError, check_positive_int
from assljax.acquisition.base import Context
from assljax.data.dataset import Dataset
from assljax.data.pool import add_labels, class_histogram, initial_pool
from assljax.loop import oracle as oracle_lib
from assljax.loop.checkpoint import Checkpoints
from assljax.loop.metrics_log import MetricsLog
from assljax.loop.state import ACQUIRE, TRAIN_INIT, LoopState, Schedule, round_key
from assljax.models.core import Model
from assljax.ssl.train import Trainer, TrainingDiverged, evaluate, make_data

_log = logging.getLogger(__name__)
KernelFactory = Callable[[Callable, Any, Callable], Any]


class EarlyStopping(NamedTuple):
  """Ends a round's training once validation accuracy stopped improving (CRC §4.1).

  Attributes:
    eval_every: steps between evaluations of the EMA weights on the validation split.
    patience: steps without a new best validation accuracy after which training stops
      (CRC: 50 epochs of 1,024 steps); ``train_steps`` stays the maximum.
    x, y: the validation split, ``(n, ...)`` inputs and ``(n,)`` labels.
  """
  eval_every: int
  patience: int
  x: Any
  y: Any


class RunStatus(NamedTuple):
  """How :func:`run_loop` ended: ``"done"`` or ``"awaiting_labels"``."""
  status: str
  records: list
  pending: list


def _write_json(path: str, value: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1)
  os.replace(tmp, path)


def labels_path(workdir: str, round_index: int) -> str:
  """Where `assljax label` stores validated human labels for a round."""
  return os.path.join(workdir, "labels", f"round_{round_index}.csv")


def queries_path(workdir: str, round_index: int, suffix: str = ".csv") -> str:
  return os.path.join(workdir, "queries", f"round_{round_index}{suffix}")


def export_queries(workdir: str, round_index: int, pending: list[int], dataset: Dataset) -> list:
  """Writes the pending queries of a round as CSV, a PNG contact sheet and audio files."""
  sources = [str(dataset.train.ids[i]) for i in pending]
  written = [oracle_lib.write_queries(queries_path(workdir, round_index), pending, sources)]
  written.append(oracle_lib.write_contact_sheet(
      queries_path(workdir, round_index, ".png"), dataset.train.x[np.asarray(pending)], pending))
  if dataset.kind == "audio":
    written += oracle_lib.copy_audio_sources(
        queries_path(workdir, round_index, "_audio"), pending, sources)
  return written


def run_loop(*, workdir: str, dataset: Dataset, model: Model, trainer: Trainer, strategy: Any,
             schedule: Schedule, seed: int, train_steps: int, reinit: bool = True,
             oracle: str = "simulated", checkpoint_every: int = 1000,
             kernel_factory: KernelFactory | None = None, experiment: str = "",
             label: str | None = None, eval_batch_size: int = 1024, progress: bool = True,
             log: Callable[[str], None] = print,
             on_checkpoint: Callable[[list], None] | None = None,
             train_x: Any = None, initial_trials: int = 1,
             early_stopping: EarlyStopping | None = None,
             metrics_every: int | None = None) -> RunStatus:
  """Runs (or resumes) one active-learning run in ``workdir``.

  Args:
    workdir: this run's directory (checkpoints, queries, labels, records.json).
    dataset: train split = the pool, test split = evaluation.
    model, trainer: the classifier and its training recipe.
    strategy: from :func:`assljax.acquisition.get`.
    schedule: initial labels and query sizes (:meth:`Schedule.make`).
    seed: the run's seed; the initial labels and every key derive from it.
    train_steps: training steps per round.
    reinit: re-initialize the weights every round (else continue training).
    oracle: ``"simulated"`` (ground truth) or ``"human"`` (CSV round trip).
    checkpoint_every: training steps between checkpoints.
    kernel_factory: ``(apply_fn, params, embed_fn) -> Kernel`` passed to strategies as
      ``ctx.kernel``; None leaves the strategy's default.
    experiment, label: copied into the records (``label`` defaults to the strategy name).
    eval_batch_size: evaluation chunk size.
    progress: show progress bars.
    log: where the one-line summaries go.
    on_checkpoint: called with the records so far after every checkpoint.
    train_x: ``(N, ...)`` training inputs of the pool samples when they differ from the
      model's inputs ``dataset.train.x`` (audio: waveforms that the training augmentations
      turn into spectrograms); None trains on ``dataset.train.x``. Evaluation and
      acquisition always use ``dataset.train.x`` / ``dataset.test.x``.
    initial_trials: ``K``; the first round that trains (round 0, or round 1 after a
      zero-shot first query) trains ``K`` models from different initializations on the
      same labels and keeps the one of median test accuracy (NPC §5.1: "the model that
      attained median performance across 5 trials"; the lower median for even ``K``).
      Every strategy of a seed shares that round's labels and seeds, so it keeps the same
      model whatever the strategy: the choice favours none. The median trial is trained
      again when it was not the last (training is deterministic), so the round costs
      ``K`` or ``K + 1`` trainings.
    early_stopping: evaluate on a validation split every ``eval_every`` steps and end
      the round's training after ``patience`` steps without improvement (at most
      ``train_steps``); the weights at the stop are the round's model. None trains
      ``train_steps`` steps.
    metrics_every: write the training metrics (chunk means: losses by term, mask and
      confidence rates, pseudo-label accuracy against the simulated oracle's ground
      truth, learning rate, DARP's shift of the pseudo-labels, steps/s) every this many
      steps to ``workdir/metrics.jsonl`` and TensorBoard event files
      (:mod:`assljax.loop.metrics_log`); None: every ``checkpoint_every`` steps.

  Returns:
    A :class:`RunStatus`.

  Raises:
    TrainingDiverged: (a ``ValueError``) training produced a non-finite loss or
      parameters; the message names the run, round and step, and the last checkpoint
      (all finite) is kept, so nothing saved is lost.
  """
  if oracle not in ("simulated", "human"):
    raise UserInputError(f"oracle must be 'simulated' or 'human', got {oracle!r}")
  if train_steps < 1 or checkpoint_every < 1:
    raise UserInputError("train_steps and checkpoint_every must be positive integers")
  metrics_every = checkpoint_every if metrics_every is None else metrics_every
  check_positive_int("metrics_every", metrics_every)
  check_positive_int("initial_trials", initial_trials)
  if train_x is not None and np.shape(train_x)[0] != dataset.train.y.shape[0]:
    raise UserInputError(f"train_x has {np.shape(train_x)[0]} rows but the pool has "
                         f"{dataset.train.y.shape[0]}")
  os.makedirs(workdir, exist_ok=True)
  label = label or strategy.name
  num_classes = dataset.num_classes
  x_pool = jnp.asarray(dataset.train.x)
  truth = oracle_lib.SimulatedOracle(dataset.train.y)
  base_key = jax.random.key_data(jax.random.PRNGKey(seed))
  checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"))

  x_train = x_pool if train_x is None else jnp.asarray(train_x)
  first_trained_round = 1 if schedule.zero_shot else 0

  # the simulated oracle's ground truth, for the pseudo-label accuracy metrics only
  known_labels = dataset.train.y if oracle == "simulated" else None

  def ssl_data(state: LoopState):
    return make_data(x_train, np.maximum(np.asarray(state.labels), 0), state.labeled_mask,
                     labeled_capacity=dataset.train.y.shape[0], num_classes=num_classes,
                     truth=known_labels)

  def fresh_train_state(state: LoopState, round_index: int, variables=None, trial: int = 0):
    key = round_key(base_key, round_index, TRAIN_INIT)
    if trial:
      key = jax.random.fold_in(key, trial)
    if state.labeled_mask.any():
      return trainer.init(key, ssl_data(state), variables=variables)
    # Zero-shot with no initial labels: there is nothing to train on yet, but the
    # state still needs its shapes (the algorithm state is sized by the pool).
    everything = np.ones_like(state.labeled_mask)
    return trainer.init(key, make_data(x_train, np.zeros_like(state.labels), everything),
                        variables=variables)

  def save(state: LoopState, meta: dict, extra: Any = None) -> None:
    meta["checkpoint"] = meta.get("checkpoint", -1) + 1
    checkpoints.save(meta["checkpoint"], state, meta, extra=extra)
    _write_json(os.path.join(workdir, "records.json"), meta["records"])
    if on_checkpoint is not None:
      on_checkpoint(meta["records"])

  def evaluation(state: LoopState) -> dict:
    result = evaluate(model, trainer.eval_variables(state.train), dataset.test.x,
                      dataset.test.y, batch_size=eval_batch_size)
    return {"test_accuracy": result["accuracy"],
            "per_class_accuracy": [float(a) for a in result["per_class_accuracy"]]}

  # ============================ start or resume ============================
  if checkpoints.latest_step() is None:
    pool = initial_pool(dataset.train.y, schedule.initial_per_class, key=seed,
                        num_classes=num_classes, sampling=schedule.initial_sampling,
                        extra=schedule.initial_extra)
    state = LoopState(round=jnp.asarray(0, jnp.int32), labeled_mask=pool.labeled_mask,
                      labels=pool.labels, key=base_key, train=None)
    state = state._replace(train=fresh_train_state(state, 0))
    meta = {"phase": "train", "records": [], "pending": [], "current": {},
            "train_seconds": 0.0, "steps_before": 0}
    strategy_state = None
    if schedule.zero_shot:
      meta["phase"] = "acquire"
      meta["current"] = {**evaluation(state), "training_seconds": 0.0}
    save(state, meta)
  else:
    template = LoopState(round=jnp.asarray(0, jnp.int32),
                         labeled_mask=np.zeros(dataset.train.y.shape, bool),
                         labels=np.zeros(dataset.train.y.shape, np.int32), key=base_key,
                         train=None)
    template = template._replace(train=jax.eval_shape(lambda: fresh_train_state(template, 0)))
    _, state, meta, strategy_state = checkpoints.restore(template)
    state = LoopState(*state)
    if strategy_state is not None:
      strategy_state = strategy_state.get("value", strategy_state)
    # After a fallback past an unreadable checkpoint, never reuse its number.
    meta["checkpoint"] = checkpoints.latest_step()
    log(f"[{label} seed {seed}] resuming round {int(state.round)} at phase {meta['phase']}")
  meta.setdefault("steps_before", 0)  # runs checkpointed before metrics were logged
  metrics_log = MetricsLog(workdir, resume_from=meta["steps_before"] + (
      int(state.train.step) if meta["phase"] == "train" else 0))

  def current_trial() -> int:
    if "trial_pick" in meta:
      return int(meta["trial_pick"])
    return len(meta.get("trial_accuracies", []))

  while meta["phase"] != "done":
    round_index = int(state.round)
    prefix = f"[{label} seed {seed}] round {round_index}"

    # ================================ train ================================
    if meta["phase"] == "train":
      _log.debug("%s: phase train", prefix)
      data = ssl_data(state)
      started = time.perf_counter()

      def checkpoint_training(train_state, record):
        nonlocal started
        step = int(record["step"])
        if early_stopping is not None and "eval" in record:
          best = meta.setdefault("early_stopping", {"best": -1.0, "best_step": 0})
          if record["eval"]["accuracy"] > best["best"]:
            best.update(best=float(record["eval"]["accuracy"]), best_step=step)
        metrics_log.write(meta["steps_before"] + step, {
            "round": round_index, "trial": current_trial(),
            **{k: v for k, v in record.items() if k != "eval"},
            **({"validation_accuracy": record["eval"]["accuracy"]} if "eval" in record else {})})
        meta["train_seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        if step % checkpoint_every == 0 or step >= train_steps:
          save(state._replace(train=train_state), meta, extra=_wrap(strategy_state))

      def patience_spent(step: int) -> bool:
        best = meta.get("early_stopping")
        return (early_stopping is not None and best is not None
                and step - best["best_step"] >= early_stopping.patience)

      es_options = {} if early_stopping is None else dict(
          eval_every=early_stopping.eval_every, eval_data=(early_stopping.x, early_stopping.y),
          should_stop=lambda record: patience_spent(int(record["step"])))

      trials = initial_trials if round_index == first_trained_round else 1
      while True:
        done = int(state.train.step)
        remaining = 0 if patience_spent(done) else train_steps - done
        try:
          train_state = trainer.train(
              state.train, data, remaining, chunk_steps=min(checkpoint_every, metrics_every),
              callback=checkpoint_training, progress=progress, description=prefix,
              eval_batch_size=eval_batch_size, **es_options)
        except TrainingDiverged as err:
          metrics_log.close()
          raise TrainingDiverged(err.step, (
              f"{prefix}: training diverged at step {err.step} (non-finite loss or "
              f"parameters); the last finite checkpoint is kept in "
              f"{checkpoints.directory}")) from None
        state = state._replace(train=train_state)
        meta["steps_before"] += int(state.train.step)
        meta["train_seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        if patience_spent(int(state.train.step)) and int(state.train.step) < train_steps:
          best = meta["early_stopping"]
          log(f"{prefix}: early stop at step {int(state.train.step)} (best validation "
              f"accuracy {100 * best['best']:.2f}% at step {best['best_step']})")
        meta.pop("early_stopping", None)
        meta["current"] = {**evaluation(state), "training_seconds": meta["train_seconds"]}
        if trials == 1:
          break
        # Median of `trials` models (NPC §5.1); "trial_accuracies" lists finished ones.
        accuracies = meta.setdefault("trial_accuracies", [])
        if "trial_pick" in meta:
          break  # the median trial, trained again
        accuracies.append(meta["current"]["test_accuracy"])
        if len(accuracies) < trials:
          trial = len(accuracies)
        else:
          order = sorted(range(trials), key=lambda k: (accuracies[k], k))
          meta["trial_pick"] = order[(trials - 1) // 2]
          log(f"{prefix}: {trials} initial trials, test accuracy "
              f"{', '.join(f'{100 * a:.2f}%' for a in accuracies)}; keeping trial "
              f"{meta['trial_pick']} (median)")
          if meta["trial_pick"] == trials - 1:
            break
          trial = meta["trial_pick"]
        state = state._replace(train=fresh_train_state(state, round_index, trial=trial))
        save(state, meta, extra=_wrap(strategy_state))
      meta["phase"] = "acquire"
      save(state, meta, extra=_wrap(strategy_state))

    # =============================== acquire ===============================
    if meta["phase"] == "acquire":
      _log.debug("%s: phase acquire", prefix)
      if round_index >= len(schedule.query_sizes):
        meta["records"].append(_record(meta, state, [], 0.0, dataset, experiment,
                                       strategy.name, label, seed, round_index))
        meta["phase"] = "done"
        save(state, meta, extra=_wrap(strategy_state))
        log(_summary(prefix, meta["records"][-1]))
        break
      variables = trainer.eval_variables(state.train)
      apply_fn, embed_fn = model.bind(variables.batch_stats)
      kernel = (kernel_factory(apply_fn, variables.params, embed_fn)
                if kernel_factory is not None else None)
      ctx = Context(apply_fn=apply_fn, params=variables.params, x=x_pool,
                    labeled_mask=jnp.asarray(state.labeled_mask),
                    labels=jnp.asarray(np.maximum(np.asarray(state.labels), 0)),
                    num_classes=num_classes, embed_fn=embed_fn, kernel=kernel,
                    state=strategy_state)
      started = time.perf_counter()
      indices, strategy_state = strategy.select(
          round_key(base_key, round_index, ACQUIRE), ctx, schedule.query_sizes[round_index])
      meta["current"]["acquisition_seconds"] = time.perf_counter() - started
      meta["pending"] = [int(i) for i in np.asarray(indices)]
      meta["phase"] = "label"
      save(state, meta, extra=_wrap(strategy_state))

    # ================================ label ================================
    if meta["phase"] == "label":
      _log.debug("%s: phase label", prefix)
      pending = meta["pending"]
      if oracle == "simulated":
        answers = truth(np.asarray(pending))
      else:
        path = labels_path(workdir, round_index)
        if not os.path.isfile(path):
          written = export_queries(workdir, round_index, pending, dataset)
          log(f"{prefix}: {len(pending)} queries await labels: {written[0]} "
              f"(fill in the label column, then `assljax label` and `assljax run --resume`)")
          metrics_log.close()
          return RunStatus("awaiting_labels", meta["records"], pending)
        by_id = oracle_lib.read_labels(path, pending, dataset.class_names)
        answers = np.asarray([by_id[i] for i in pending], np.int32)
      pool = add_labels(state.pool, np.asarray(pending, np.int32), answers,
                        num_classes=num_classes)
      meta["records"].append(_record(meta, state, pending,
                                     meta["current"].get("acquisition_seconds", 0.0), dataset,
                                     experiment, strategy.name, label, seed, round_index))
      log(_summary(prefix, meta["records"][-1]))
      state = state._replace(round=jnp.asarray(round_index + 1, jnp.int32),
                             labeled_mask=pool.labeled_mask, labels=pool.labels)
      continued = None if reinit else trainer.variables(state.train)
      state = state._replace(train=fresh_train_state(state, round_index + 1, continued))
      meta.update(phase="train", pending=[], current={}, train_seconds=0.0)
      save(state, meta, extra=_wrap(strategy_state))

  metrics_log.close()
  return RunStatus("done", meta["records"], [])


def _wrap(strategy_state: Any) -> Any:
  # orbax needs a container at the top of an item; a bare array or NamedTuple is wrapped.
  return None if strategy_state is None else {"value": strategy_state}


def _record(meta: dict, state: LoopState, queried: list, acquisition_seconds: float,
            dataset: Dataset, experiment: str, strategy: str, label: str, seed: int,
            round_index: int) -> dict:
  mask = np.asarray(state.labeled_mask)
  return {
      "experiment": experiment, "dataset": dataset.name, "strategy": strategy,
      "label": label, "seed": int(seed), "round": int(round_index),
      "num_labels": int(mask.sum()),
      "test_accuracy": float(meta["current"]["test_accuracy"]),
      "per_class_accuracy": meta["current"]["per_class_accuracy"],
      "labeled_class_histogram": [int(c) for c in class_histogram(state.pool,
                                                                  dataset.num_classes)],
      "queried_indices": [int(i) for i in queried],
      "acquisition_seconds": float(acquisition_seconds),
      "training_seconds": float(meta["current"]["training_seconds"]),
      "num_classes": int(dataset.num_classes),
      "class_names": list(dataset.class_names),
  }


def _summary(prefix: str, record: dict) -> str:
  return (f"{prefix}: {record['num_labels']} labels, test accuracy "
          f"{100 * record['test_accuracy']:.2f}%, train {record['training_seconds']:.1f}s, "
          f"acquire {record['acquisition_seconds']:.1f}s")
