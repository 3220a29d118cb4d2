"""The loop state: one pytree with everything a run needs to continue bit-identically.

Arrays live in :class:`LoopState` (checkpointed by orbax against an abstract template);
what is naturally JSON (the phase, the records so far, pending queries, partial timings)
lives in the checkpoint's metadata, saved atomically with the arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from assljax.data.pool import Pool
from assljax.ssl.train import TrainState

PHASES = ("train", "acquire", "label", "done")


class Schedule(NamedTuple):
  """How many labels a run buys and when.

  Attributes:
    initial_per_class: ``Q0``, balanced labels per class before the first query.
    query_sizes: labels bought after each round's evaluation, in order.
    zero_shot: acquire ``query_sizes[0]`` before any training, with the randomly
      initialized network (NPC §5.4); round 0 then reports the untrained model.
  """
  initial_per_class: int
  query_sizes: tuple[int, ...]
  zero_shot: bool = False

  @classmethod
  def make(cls, *, mode: str, initial_per_class: int, query_size: int, budget: int,
           num_classes: int, pool_size: int) -> "Schedule":
    """The schedule of ``mode`` ("sequential", "single_shot" or "zero_shot").

    ``budget`` counts all labels, the initial ones included. Sequential buys
    ``query_size`` per round until the budget is reached; single-shot trains once on
    the initial labels and buys the rest at once; zero-shot buys the rest at once
    before any training.
    """
    from assljax.data.pool import validate_query_plan

    plan = validate_query_plan(pool_size, num_classes, initial_per_class, query_size, budget)
    if mode == "sequential":
      sizes = (plan.query_size,) * plan.num_rounds
    elif mode in ("single_shot", "zero_shot"):
      sizes = (plan.budget - plan.initial,) if plan.budget > plan.initial else ()
    else:
      raise ValueError(f"mode must be 'sequential', 'single_shot' or 'zero_shot', got {mode!r}")
    return cls(initial_per_class, tuple(int(s) for s in sizes), mode == "zero_shot")


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
