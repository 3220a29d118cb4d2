"""The loop state: one pytree with everything a run needs to continue bit-identically.

Arrays live in :class:`LoopState` (checkpointed by orbax against an abstract template);
what is naturally JSON (the phase, the records so far, pending queries, partial timings)
lives in the checkpoint's metadata, saved atomically with the arrays.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import Any, NamedTuple

import jax
import numpy as np

from assljax._validation import UserInputError
from assljax.data.pool import Pool
from assljax.ssl.train import TrainState



class Phase(enum.StrEnum):
  """Where a run stands in its round; stored in every checkpoint."""
  TRAIN = "train"        # train on the labeled pool, then evaluate on the test split
  ACQUIRE = "acquire"    # the strategy picks the next queries
  LABEL = "label"        # the oracle answers them
  DONE = "done"          # the budget is spent


class Mode(enum.StrEnum):
  """When a run buys its labels (:meth:`Schedule.make`)."""
  SEQUENTIAL = "sequential"
  RANDOM_INIT_FIRST = "random_init_first"
  SINGLE_SHOT = "single_shot"
  ZERO_SHOT = "zero_shot"


MODES = tuple(mode.value for mode in Mode)


class Schedule(NamedTuple):
  """How many labels a run buys and when.

  Attributes:
    initial_per_class: ``Q0``, balanced labels per class before the first query.
    query_sizes: labels bought after each round's evaluation, in order.
    zero_shot: acquire ``query_sizes[0]`` before any training, with the randomly
      initialized network (NPC §5.4, CRC's "randomly initialized model"); round 0 then
      reports the untrained model.
    initial_sampling: ``"balanced"`` (``initial_per_class`` of every class) or ``"iid"``
      (``initial_per_class * C`` uniformly at random; dynamicAL).
    initial_extra: initial labels drawn uniformly at random on top of those.
  """
  initial_per_class: int
  query_sizes: tuple[int, ...]
  zero_shot: bool = False
  initial_sampling: str = "balanced"
  initial_extra: int = 0

  @classmethod
  def make(cls, *, mode: str, initial_per_class: int, query_size: int, budget: int,
           num_classes: int, pool_size: int, initial_sampling: str = "balanced",
           initial_extra: int = 0) -> "Schedule":
    """The schedule of ``mode`` (one of :data:`MODES`).

    ``budget`` counts all labels, the initial ones included.

    * ``"sequential"``: train on the initial labels, buy ``query_size``, retrain, ...
      until the budget is reached (needs initial labels).
    * ``"random_init_first"``: the first query of ``query_size`` is made by the randomly
      initialized network, before any training, then sequentially by the trained model
      (CRC Tab. 1 left half and Fig. 2, "randomly initialized model"); usually with no
      initial labels (``initial_per_class=0``).
    * ``"single_shot"``: train once on the initial labels and buy the rest at once.
    * ``"zero_shot"``: buy the rest at once before any training (NPC Tab. 3).
    """
    from assljax.data.pool import validate_query_plan

    if initial_sampling not in ("balanced", "iid"):
      raise UserInputError(f"initial_sampling must be 'balanced' or 'iid', got "
                           f"{initial_sampling!r}")
    if mode not in MODES:
      raise UserInputError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    mode = Mode(mode)
    plan = validate_query_plan(pool_size, num_classes, initial_per_class, query_size, budget,
                               extra=initial_extra)
    if plan.initial == 0 and mode in (Mode.SEQUENTIAL, Mode.SINGLE_SHOT):
      raise UserInputError(f"mode {mode.value!r} trains on the initial labels first, and "
                           f"initial_per_class is 0; use mode 'random_init_first' (or "
                           f"'zero_shot') to let the untrained network make the first query")
    if mode in (Mode.SEQUENTIAL, Mode.RANDOM_INIT_FIRST):
      sizes = (plan.query_size,) * plan.num_rounds
    else:
      sizes = (plan.budget - plan.initial,) if plan.budget > plan.initial else ()
    return cls(initial_per_class, tuple(int(s) for s in sizes),
               mode in (Mode.ZERO_SHOT, Mode.RANDOM_INIT_FIRST), initial_sampling,
               int(initial_extra))


@dataclasses.dataclass
class RunMeta:
  """What a run knows besides its arrays: saved as JSON with every checkpoint.

  Attributes:
    phase: the phase to run next.
    records: one result record per finished round (:mod:`assljax.report.schema`).
    pending: pool indices queried in this round and not labeled yet.
    current: this round's results so far (``test_accuracy``, ``per_class_accuracy``,
      ``training_seconds``, ``acquisition_seconds``).
    train_seconds: training time of this round so far (over resumes).
    steps_before: training steps of the earlier rounds and trials (the metrics'
      ``global_step`` is ``steps_before + step``).
    checkpoint: the number of the last checkpoint written.
    early_stopping: ``{"best": accuracy, "best_step": step}`` while a round trains with
      early stopping, else None.
    trial_accuracies: test accuracies of the finished initial trials (``initial_trials``
      > 1), else None.
    trial_pick: the median trial once all were trained, else None.
  """
  phase: Phase = Phase.TRAIN
  records: list = dataclasses.field(default_factory=list)
  pending: list = dataclasses.field(default_factory=list)
  current: dict = dataclasses.field(default_factory=dict)
  train_seconds: float = 0.0
  steps_before: int = 0
  checkpoint: int = -1
  early_stopping: dict | None = None
  trial_accuracies: list | None = None
  trial_pick: int | None = None

  def to_json(self) -> dict:
    """A JSON-ready dict; fields that are None are left out."""
    value = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
             if getattr(self, field.name) is not None}
    value["phase"] = str(self.phase)
    return value

  @classmethod
  def from_json(cls, value: dict) -> "RunMeta":
    """The inverse of :meth:`to_json`; missing fields take their defaults (checkpoints
    written before a field existed)."""
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names - {"has_extra"})
    if unknown:  # written by another version of assljax: dropped, but never silently
      logging.getLogger(__name__).warning("run metadata fields %s are not known to this "
                                          "version and are dropped", ", ".join(unknown))
    meta = cls(**{key: item for key, item in value.items() if key in names})
    meta.phase = Phase(meta.phase)
    return meta


class LoopState(NamedTuple):
  """Arrays of one run between two steps of the loop.

  Attributes:
    round: ``()`` int32, the current round.
    labeled_mask: ``(N,)`` bool.
    labels: ``(N,)`` int32, ``-1`` where unknown.
    key: ``(2,)`` uint32 base key of the run; round ``r`` uses ``fold_in(key, r)``.
    train: the training state of the current round.
  """
  round: Any
  labeled_mask: Any
  labels: Any
  key: Any
  train: TrainState

  @property
  def pool(self) -> Pool:
    return Pool(np.asarray(self.labeled_mask, dtype=bool), np.asarray(self.labels, np.int32))


def round_key(key: jax.Array, round_index: int, purpose: int) -> jax.Array:
  """The key of one purpose (0 train init, 1 acquisition) in one round."""
  return jax.random.fold_in(jax.random.fold_in(key, round_index), purpose)


TRAIN_INIT, ACQUIRE = 0, 1
