"""One active semi-supervised learning run: train → evaluate → acquire → label → repeat.

:func:`run_loop` is the whole loop for one (strategy, seed): it starts or resumes the run,
then calls one function per phase until the budget is spent. Each phase ends in a
checkpoint, and training also checkpoints every ``checkpoint_every`` steps, so a run
killed at any moment resumes from the last checkpoint and produces the same queries and
metrics as an uninterrupted run (everything random derives from the run's key with
``fold_in``).

Phases of round ``r`` (:class:`~assljax.loop.state.Phase`, stored in the checkpoint's
:class:`~assljax.loop.state.RunMeta`):

    train    train the model on the labeled pool (fresh weights or continued)
             and evaluate the EMA weights on the test split
    acquire  score the pool with the strategy and pick the next queries
    label    ask the oracle: ground truth, or a human via CSV (the run stops and
             `assljax run --resume` continues once `assljax label` stored the answers)
    done     the budget is spent
"""

from __future__ import annotations

import enum
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
from assljax.loop.state import (ACQUIRE, TRAIN_INIT, LoopState, Phase, RunMeta, Schedule,
                                round_key)
from assljax.models.core import Model
from assljax.report.schema import RoundRecord
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


class Status(enum.StrEnum):
  """How :func:`run_loop` ended."""
  DONE = "done"
  AWAITING_LABELS = "awaiting_labels"


class RunStatus(NamedTuple):
  """How :func:`run_loop` ended (:class:`Status`), the records so far, pending queries."""
  status: Status
  records: list
  pending: list


def _write_json(path: str, value: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1)
  os.replace(tmp, path)


def run_loop(*, workdir: str, dataset: Dataset, model: Model, trainer: Trainer, strategy: Any,
             schedule: Schedule, seed: int, train_steps: int, reinit: bool = True,
             oracle: str | oracle_lib.Oracle = "simulated", checkpoint_every: int = 1000,
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
    oracle: ``"simulated"`` (ground truth), ``"human"`` (CSV round trip,
      :class:`~assljax.loop.oracle.CsvOracle`), or any
      :class:`~assljax.loop.oracle.Oracle`.
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
    TrainingDiverged: (a ``UserInputError``) training produced a non-finite loss or
      parameters; the message names the run, round and step, and the last checkpoint
      (all finite) is kept, so nothing saved is lost.
  """
  if isinstance(oracle, str) and oracle not in tuple(oracle_lib.OracleKind):
    raise UserInputError(f"oracle must be 'simulated' or 'human', got {oracle!r}")
  if train_steps < 1 or checkpoint_every < 1:
    raise UserInputError("train_steps and checkpoint_every must be positive integers")
  metrics_every = checkpoint_every if metrics_every is None else metrics_every
  check_positive_int("metrics_every", metrics_every)
  check_positive_int("initial_trials", initial_trials)
  if train_x is not None and np.shape(train_x)[0] != dataset.train.y.shape[0]:
    raise UserInputError(f"train_x has {np.shape(train_x)[0]} rows but the pool has "
                         f"{dataset.train.y.shape[0]}")
  label = label or strategy.name
  if oracle == oracle_lib.OracleKind.SIMULATED:
    oracle = oracle_lib.SimulatedOracle(dataset.train.y)
  elif oracle == oracle_lib.OracleKind.HUMAN:
    oracle = oracle_lib.CsvOracle(workdir, dataset,
                                  log=lambda line: log(f"[{label} seed {seed}] {line}"))
  if not callable(getattr(oracle, "answer", None)):
    raise UserInputError(f"oracle must be 'simulated', 'human' or an object with "
                         f"answer(round_index, pending), got {oracle!r}")
  os.makedirs(workdir, exist_ok=True)
  run = _Run(workdir=workdir, dataset=dataset, model=model, trainer=trainer,
             strategy=strategy, schedule=schedule, seed=seed, train_steps=train_steps,
             reinit=reinit, oracle=oracle, checkpoint_every=checkpoint_every,
             kernel_factory=kernel_factory, experiment=experiment, label=label,
             eval_batch_size=eval_batch_size, progress=progress, log=log,
             on_checkpoint=on_checkpoint, train_x=train_x, initial_trials=initial_trials,
             early_stopping=early_stopping, metrics_every=metrics_every)

  state, meta = run.start_or_resume()
  run.metrics_log = MetricsLog(workdir, resume_from=meta.steps_before + (
      int(state.train.step) if meta.phase == Phase.TRAIN else 0))
  try:
    while meta.phase != Phase.DONE:
      if meta.phase == Phase.TRAIN:
        state = run.train(state, meta)
      elif meta.phase == Phase.ACQUIRE:
        state = run.acquire(state, meta)
      else:
        state = run.label(state, meta)
        if meta.phase == Phase.LABEL:   # the oracle has no answers yet
          return RunStatus(Status.AWAITING_LABELS, meta.records, meta.pending)
    return RunStatus(Status.DONE, meta.records, [])
  finally:
    run.metrics_log.close()


class _Run:
  """The fixed inputs of one run and its phases; :func:`run_loop` drives it.

  Each phase takes the arrays (:class:`LoopState`) and the run's metadata
  (:class:`RunMeta`, updated in place), ends with a checkpoint, and returns the arrays.
  """

  def __init__(self, *, workdir, dataset, model, trainer, strategy, schedule, seed,
               train_steps, reinit, oracle, checkpoint_every, kernel_factory, experiment,
               label, eval_batch_size, progress, log, on_checkpoint, train_x, initial_trials,
               early_stopping, metrics_every):
    self.workdir, self.dataset, self.model, self.trainer = workdir, dataset, model, trainer
    self.strategy, self.schedule, self.seed = strategy, schedule, seed
    self.train_steps, self.reinit, self.oracle = train_steps, reinit, oracle
    self.checkpoint_every, self.kernel_factory = checkpoint_every, kernel_factory
    self.experiment, self.run_label, self.eval_batch_size = experiment, label, eval_batch_size
    self.progress, self.log, self.on_checkpoint = progress, log, on_checkpoint
    self.initial_trials, self.early_stopping = initial_trials, early_stopping
    self.metrics_every = metrics_every
    self.num_classes = dataset.num_classes
    self.x_pool = jnp.asarray(dataset.train.x)
    self.x_train = self.x_pool if train_x is None else jnp.asarray(train_x)
    self.base_key = jax.random.key_data(jax.random.PRNGKey(seed))
    self.checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"))
    self.first_trained_round = 1 if schedule.zero_shot else 0
    # the simulated oracle's ground truth, for the pseudo-label accuracy metrics only
    simulated = isinstance(oracle, oracle_lib.SimulatedOracle)
    self.known_labels = dataset.train.y if simulated else None
    self.strategy_state = None
    self.metrics_log: MetricsLog | None = None

  # ------------------------------------------------------------------ helpers

  def prefix(self, state: LoopState) -> str:
    return f"[{self.run_label} seed {self.seed}] round {int(state.round)}"

  def ssl_data(self, state: LoopState):
    return make_data(self.x_train, np.maximum(np.asarray(state.labels), 0), state.labeled_mask,
                     labeled_capacity=self.dataset.train.y.shape[0],
                     num_classes=self.num_classes, truth=self.known_labels)

  def fresh_train_state(self, state: LoopState, round_index: int, variables=None,
                        trial: int = 0):
    key = round_key(self.base_key, round_index, TRAIN_INIT)
    if trial:
      key = jax.random.fold_in(key, trial)
    if state.labeled_mask.any():
      return self.trainer.init(key, self.ssl_data(state), variables=variables)
    # Zero-shot with no initial labels: there is nothing to train on yet, but the
    # state still needs its shapes (the algorithm state is sized by the pool).
    everything = np.ones_like(state.labeled_mask)
    return self.trainer.init(
        key, make_data(self.x_train, np.zeros_like(state.labels), everything),
        variables=variables)

  def save(self, state: LoopState, meta: RunMeta) -> None:
    meta.checkpoint += 1
    self.checkpoints.save(meta.checkpoint, state, meta.to_json(),
                          extra=_wrap(self.strategy_state))
    _write_json(os.path.join(self.workdir, "records.json"), meta.records)
    if self.on_checkpoint is not None:
      self.on_checkpoint(meta.records)

  def evaluation(self, state: LoopState) -> dict:
    result = evaluate(self.model, self.trainer.eval_variables(state.train), self.dataset.test.x,
                      self.dataset.test.y, batch_size=self.eval_batch_size)
    return {"test_accuracy": result["accuracy"],
            "per_class_accuracy": [float(a) for a in result["per_class_accuracy"]]}

  def finish_round(self, state: LoopState, meta: RunMeta, queried: list,
                   acquisition_seconds: float) -> None:
    meta.records.append(_record(meta, state, queried, acquisition_seconds, self.dataset,
                                self.experiment, self.strategy.name, self.run_label, self.seed,
                                int(state.round)))

  # ========================== start or resume ==========================

  def start_or_resume(self) -> tuple[LoopState, RunMeta]:
    if self.checkpoints.latest_step() is None:
      schedule = self.schedule
      pool = initial_pool(self.dataset.train.y, schedule.initial_per_class, key=self.seed,
                          num_classes=self.num_classes, sampling=schedule.initial_sampling,
                          extra=schedule.initial_extra)
      state = LoopState(round=jnp.asarray(0, jnp.int32), labeled_mask=pool.labeled_mask,
                        labels=pool.labels, key=self.base_key, train=None)
      state = state._replace(train=self.fresh_train_state(state, 0))
      meta = RunMeta()
      if schedule.zero_shot:
        meta.phase = Phase.ACQUIRE
        meta.current = {**self.evaluation(state), "training_seconds": 0.0}
      self.save(state, meta)
      return state, meta
    shape = self.dataset.train.y.shape
    template = LoopState(round=jnp.asarray(0, jnp.int32), labeled_mask=np.zeros(shape, bool),
                         labels=np.zeros(shape, np.int32), key=self.base_key, train=None)
    template = template._replace(
        train=jax.eval_shape(lambda: self.fresh_train_state(template, 0)))
    _, state, saved, strategy_state = self.checkpoints.restore(template)
    state = LoopState(*state)
    if strategy_state is not None:
      self.strategy_state = strategy_state.get("value", strategy_state)
    meta = RunMeta.from_json(saved)
    # After a fallback past an unreadable checkpoint, never reuse its number.
    meta.checkpoint = self.checkpoints.latest_step()
    self.log(f"[{self.run_label} seed {self.seed}] resuming round {int(state.round)} at phase "
             f"{meta.phase}")
    return state, meta

  # =============================== train ===============================

  def train(self, state: LoopState, meta: RunMeta) -> LoopState:
    """Trains the round's model (``initial_trials`` of them in the first trained round)
    and evaluates it on the test split; then the phase is acquire."""
    round_index, prefix = int(state.round), self.prefix(state)
    _log.debug("%s: phase train", prefix)
    early_stopping, data = self.early_stopping, self.ssl_data(state)
    started = time.perf_counter()

    def current_trial() -> int:
      if meta.trial_pick is not None:
        return int(meta.trial_pick)
      return len(meta.trial_accuracies or [])

    def checkpoint_training(train_state, record):
      nonlocal started
      step = int(record["step"])
      if early_stopping is not None and "eval" in record:
        if meta.early_stopping is None:
          meta.early_stopping = {"best": -1.0, "best_step": 0}
        if record["eval"]["accuracy"] > meta.early_stopping["best"]:
          meta.early_stopping.update(best=float(record["eval"]["accuracy"]), best_step=step)
      self.metrics_log.write(meta.steps_before + step, {
          "round": round_index, "trial": current_trial(),
          **{k: v for k, v in record.items() if k != "eval"},
          **({"validation_accuracy": record["eval"]["accuracy"]} if "eval" in record else {})})
      meta.train_seconds += time.perf_counter() - started
      started = time.perf_counter()
      if step % self.checkpoint_every == 0 or step >= self.train_steps:
        self.save(state._replace(train=train_state), meta)

    def patience_spent(step: int) -> bool:
      best = meta.early_stopping
      return (early_stopping is not None and best is not None
              and step - best["best_step"] >= early_stopping.patience)

    es_options = {} if early_stopping is None else dict(
        eval_every=early_stopping.eval_every, eval_data=(early_stopping.x, early_stopping.y),
        should_stop=lambda record: patience_spent(int(record["step"])))

    trials = self.initial_trials if round_index == self.first_trained_round else 1
    while True:
      done = int(state.train.step)
      remaining = 0 if patience_spent(done) else self.train_steps - done
      try:
        train_state = self.trainer.train(
            state.train, data, remaining,
            chunk_steps=min(self.checkpoint_every, self.metrics_every),
            callback=checkpoint_training, progress=self.progress, description=prefix,
            eval_batch_size=self.eval_batch_size, **es_options)
      except TrainingDiverged as err:
        raise TrainingDiverged(err.step, (
            f"{prefix}: training diverged at step {err.step} (non-finite loss or "
            f"parameters); the last finite checkpoint is kept in "
            f"{self.checkpoints.directory}")) from None
      state = state._replace(train=train_state)
      meta.steps_before += int(state.train.step)
      meta.train_seconds += time.perf_counter() - started
      started = time.perf_counter()
      if patience_spent(int(state.train.step)) and int(state.train.step) < self.train_steps:
        best = meta.early_stopping
        self.log(f"{prefix}: early stop at step {int(state.train.step)} (best validation "
                 f"accuracy {100 * best['best']:.2f}% at step {best['best_step']})")
      meta.early_stopping = None
      meta.current = {**self.evaluation(state), "training_seconds": meta.train_seconds}
      if trials == 1:
        break
      # Median of `trials` models (NPC §5.1); `trial_accuracies` lists finished ones.
      if meta.trial_accuracies is None:
        meta.trial_accuracies = []
      if meta.trial_pick is not None:
        break  # the median trial, trained again
      accuracies = meta.trial_accuracies
      accuracies.append(meta.current["test_accuracy"])
      if len(accuracies) < trials:
        trial = len(accuracies)
      else:
        order = sorted(range(trials), key=lambda k: (accuracies[k], k))
        meta.trial_pick = order[(trials - 1) // 2]
        self.log(f"{prefix}: {trials} initial trials, test accuracy "
                 f"{', '.join(f'{100 * a:.2f}%' for a in accuracies)}; keeping trial "
                 f"{meta.trial_pick} (median)")
        if meta.trial_pick == trials - 1:
          break
        trial = meta.trial_pick
      state = state._replace(train=self.fresh_train_state(state, round_index, trial=trial))
      self.save(state, meta)
    meta.phase = Phase.ACQUIRE
    self.save(state, meta)
    return state

  # ============================== acquire ==============================

  def acquire(self, state: LoopState, meta: RunMeta) -> LoopState:
    """Scores the pool and picks the round's queries (phase label), or records the last
    round (phase done)."""
    round_index = int(state.round)
    _log.debug("%s: phase acquire", self.prefix(state))
    if round_index >= len(self.schedule.query_sizes):
      self.finish_round(state, meta, [], 0.0)
      meta.phase = Phase.DONE
      self.save(state, meta)
      self.log(_summary(self.prefix(state), meta.records[-1]))
      return state
    variables = self.trainer.eval_variables(state.train)
    apply_fn, embed_fn = self.model.bind(variables.batch_stats)
    kernel = (self.kernel_factory(apply_fn, variables.params, embed_fn)
              if self.kernel_factory is not None else None)
    ctx = Context(apply_fn=apply_fn, params=variables.params, x=self.x_pool,
                  labeled_mask=jnp.asarray(state.labeled_mask),
                  labels=jnp.asarray(np.maximum(np.asarray(state.labels), 0)),
                  num_classes=self.num_classes, embed_fn=embed_fn, kernel=kernel,
                  state=self.strategy_state)
    started = time.perf_counter()
    indices, self.strategy_state = self.strategy.select(
        round_key(self.base_key, round_index, ACQUIRE), ctx,
        self.schedule.query_sizes[round_index])
    meta.current["acquisition_seconds"] = time.perf_counter() - started
    meta.pending = [int(i) for i in np.asarray(indices)]
    meta.phase = Phase.LABEL
    self.save(state, meta)
    return state

  # =============================== label ===============================

  def label(self, state: LoopState, meta: RunMeta) -> LoopState:
    """Adds the oracle's answers to the pool and starts the next round (phase train);
    the phase stays label while the oracle has no answers yet."""
    round_index = int(state.round)
    _log.debug("%s: phase label", self.prefix(state))
    pending = meta.pending
    answers = self.oracle.answer(round_index, pending)
    if answers is None:
      return state
    pool = add_labels(state.pool, np.asarray(pending, np.int32), np.asarray(answers),
                      num_classes=self.num_classes)
    self.finish_round(state, meta, pending, meta.current.get("acquisition_seconds", 0.0))
    self.log(_summary(self.prefix(state), meta.records[-1]))
    state = state._replace(round=jnp.asarray(round_index + 1, jnp.int32),
                           labeled_mask=pool.labeled_mask, labels=pool.labels)
    continued = None if self.reinit else self.trainer.variables(state.train)
    state = state._replace(train=self.fresh_train_state(state, round_index + 1, continued))
    meta.phase, meta.pending, meta.current, meta.train_seconds = Phase.TRAIN, [], {}, 0.0
    self.save(state, meta)
    return state


def _wrap(strategy_state: Any) -> Any:
  # orbax needs a container at the top of an item; a bare array or NamedTuple is wrapped.
  return None if strategy_state is None else {"value": strategy_state}


def _record(meta: RunMeta, state: LoopState, queried: list, acquisition_seconds: float,
            dataset: Dataset, experiment: str, strategy: str, label: str, seed: int,
            round_index: int) -> dict:
  # Built as the report's RoundRecord, so a record the loop writes is valid by
  # construction (the schema lives in one place: assljax/report/schema.py).
  mask = np.asarray(state.labeled_mask)
  try:
    record = RoundRecord(
        experiment=experiment, dataset=dataset.name, strategy=strategy, label=label,
        seed=int(seed), round=int(round_index), num_labels=int(mask.sum()),
        test_accuracy=float(meta.current["test_accuracy"]),
        per_class_accuracy=meta.current["per_class_accuracy"],
        labeled_class_histogram=[int(c) for c in class_histogram(state.pool,
                                                                 dataset.num_classes)],
        queried_indices=[int(i) for i in queried],
        acquisition_seconds=float(acquisition_seconds),
        training_seconds=float(meta.current["training_seconds"]),
        num_classes=int(dataset.num_classes), class_names=list(dataset.class_names),
        where=f"{label} seed {seed} round {round_index}")
  except UserInputError as err:  # the loop built this record: a bug, not the user's input
    raise RuntimeError(f"assljax wrote an invalid result record: {err}") from err
  return record.as_dict()


def _summary(prefix: str, record: dict) -> str:
  return (f"{prefix}: {record['num_labels']} labels, test accuracy "
          f"{100 * record['test_accuracy']:.2f}%, train {record['training_seconds']:.1f}s, "
          f"acquire {record['acquisition_seconds']:.1f}s")
