"""The labeled pool: which samples have a label, and which label.

    pool = initial_pool(ds.train.y, per_class=1, key=0, num_classes=10)  # Q0 per class
    plan = validate_query_plan(pool_size, num_classes, per_class, query_size, budget)
    pool = add_labels(pool, idx, oracle_labels, num_classes=10)         # after each query
    class_histogram(pool, 10)                                           # (10,) counts

A :class:`Pool` is a NamedTuple of two host numpy arrays (a pytree orbax saves as is);
every function is pure and returns a new pool. Bad input raises ``ValueError`` naming
the offending numbers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from assljax._validation import UserInputError, check_int


class Pool(NamedTuple):
  """Label state of a pool of ``N`` samples.

  Attributes:
    labeled_mask: ``(N,)`` bool, True where a label is known.
    labels: ``(N,)`` int32, the label where known and ``-1`` elsewhere.
  """
  labeled_mask: np.ndarray
  labels: np.ndarray

  @property
  def size(self) -> int:
    return int(self.labeled_mask.shape[0])

  @property
  def num_labeled(self) -> int:
    return int(np.count_nonzero(self.labeled_mask))

  def labeled_indices(self) -> np.ndarray:
    """Indices with a label, ascending, ``(l,)`` int32."""
    return np.flatnonzero(self.labeled_mask).astype(np.int32)

  def unlabeled_indices(self) -> np.ndarray:
    """Indices without a label, ascending, ``(N - l,)`` int32."""
    return np.flatnonzero(~np.asarray(self.labeled_mask)).astype(np.int32)


class QueryPlan(NamedTuple):
  """A checked labeling schedule.

  Attributes:
    initial: ``Q0 * C`` labels before the first query.
    query_size: ``Q``, labels bought per round.
    budget: ``B``, labels in total when the loop ends (initial ones included).
    num_rounds: ``(B - Q0 * C) / Q`` acquisition rounds.
  """
  initial: int
  query_size: int
  budget: int
  num_rounds: int

  def labels_after(self, round_index: int) -> int:
    """Labels known after ``round_index`` acquisition rounds (0 -> the initial pool)."""
    return self.initial + round_index * self.query_size


def _check_int(value: Any, what: str, *, minimum: int) -> int:
  value = check_int(what, value)
  if value < minimum:
    raise UserInputError(f"{what} must be at least {minimum}, got {value}.")
  return int(value)


def _check_labels(labels: Any, num_classes: int, what: str) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise UserInputError(f"{what} must be a one-dimensional array, got shape {labels.shape}.")
  if labels.size and not np.issubdtype(labels.dtype, np.integer):
    raise UserInputError(f"{what} must be integers, got dtype {labels.dtype}.")
  bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if bad.size:
    raise UserInputError(f"{what} must lie in [0, {num_classes}); position {bad[0]} holds"
                     f" {labels[bad[0]]}.")
  return labels.astype(np.int32)


def _check_pool(pool: Pool, num_classes: int) -> None:
  mask, labels = np.asarray(pool.labeled_mask), np.asarray(pool.labels)
  if mask.dtype != np.bool_ or mask.ndim != 1 or labels.shape != mask.shape:
    raise UserInputError(f"a pool needs a bool labeled_mask (N,) and labels (N,), got"
                         f" {mask.dtype} {mask.shape} and {labels.shape}.")
  if np.any(labels[~mask] != -1) or np.any((labels[mask] < 0) | (labels[mask] >= num_classes)):
    raise UserInputError(f"pool labels must be -1 where unlabeled and in [0, {num_classes}) where"
                     " labeled.")


def empty_pool(pool_size: int) -> Pool:
  """A pool of ``pool_size`` samples without any label."""
  pool_size = _check_int(pool_size, "pool_size", minimum=1)
  return Pool(np.zeros(pool_size, bool), np.full(pool_size, -1, np.int32))


def initial_pool(y: Any, per_class: int, *, key: Any, num_classes: int,
                 sampling: str = "balanced", extra: int = 0) -> Pool:
  """The initial pool of ``per_class * C + extra`` labels.

  ``sampling="balanced"`` (the default) takes ``per_class`` samples of every class;
  ``"iid"`` takes ``per_class * C`` samples uniformly at random from the whole pool,
  whatever their classes (dynamicAL §3: the initial set is sampled i.i.d.). Then
  ``extra`` more are drawn uniformly at random from the rest (the Bilevel paper starts
  Speech Commands from 50 labels with every one of its 35 classes represented: one per
  class plus 15).

  Args:
    y: ``(N,)`` ground-truth labels of the pool in ``[0, num_classes)`` (the simulated
      oracle).
    per_class: ``Q0``, samples per class (0 gives an empty pool).
    key: a ``jax.random`` key or an integer seed; the same key gives the same pool.
    num_classes: ``C``.

  Returns:
    A :class:`Pool` with ``per_class * C`` labels, equal to ``y`` where labeled. Balanced:
    within class ``c`` the samples are the first ``per_class`` of
    ``jax.random.permutation(fold_in(key, c), count_c)``; i.i.d.: the first
    ``per_class * C`` of ``jax.random.permutation(fold_in(key, C), N)``; the ``extra``
    ones are the first unlabeled samples of ``permutation(fold_in(key, C + 1), N)``.

  Raises:
    ValueError: when ``per_class`` exceeds the size of a class, or ``y`` is out of range.
  """
  num_classes = _check_int(num_classes, "num_classes", minimum=2)
  per_class = _check_int(per_class, "per_class (Q0)", minimum=0)
  y = _check_labels(y, num_classes, "pool labels y")
  if isinstance(key, (bool, np.bool_)):
    raise UserInputError(f"key must be a jax.random key or an integer seed, got {key!r}.")
  if isinstance(key, (int, np.integer)):
    key = jax.random.key(int(key))
  if sampling not in ("balanced", "iid"):
    raise UserInputError(f"sampling must be 'balanced' or 'iid', got {sampling!r}.")
  extra = _check_int(extra, "extra initial labels", minimum=0)
  if per_class * num_classes + extra > y.shape[0]:
    raise UserInputError(f"the initial pool Q0 * C + extra = {per_class * num_classes + extra} "
                         f"exceeds the pool of {y.shape[0]}.")
  if sampling == "iid":
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, num_classes), y.shape[0]))
    mask = np.zeros(y.shape[0], bool)
    mask[order[:per_class * num_classes]] = True
  else:
    mask = _balanced_mask(y, per_class, key, num_classes)
  if extra:
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, num_classes + 1),
                                              y.shape[0]))
    mask[order[~mask[order]][:extra]] = True
  return Pool(mask, np.where(mask, y, -1).astype(np.int32))


def _balanced_mask(y: np.ndarray, per_class: int, key: Any, num_classes: int) -> np.ndarray:
  counts = np.bincount(y, minlength=num_classes)
  short = np.flatnonzero(counts < per_class)
  if short.size:
    c = int(short[0])
    raise UserInputError(f"per_class (Q0) = {per_class} exceeds the {counts[c]} pool samples of"
                         f" class {c}.")
  mask = np.zeros(y.shape[0], bool)
  for c in range(num_classes):
    members = np.flatnonzero(y == c)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, c), members.size))
    mask[members[order[:per_class]]] = True
  return mask


def add_labels(pool: Pool, indices: Any, labels: Any, *, num_classes: int) -> Pool:
  """A new pool with ``labels`` ``(k,)`` recorded at ``indices`` ``(k,)``.

  Raises:
    ValueError: index out of range, duplicate index, index already labeled, label out
      of ``[0, num_classes)``, or mismatched lengths.
  """
  num_classes = _check_int(num_classes, "num_classes", minimum=2)
  _check_pool(pool, num_classes)
  indices, labels = np.asarray(indices), np.asarray(labels)
  if indices.ndim != 1 or labels.ndim != 1 or indices.shape != labels.shape:
    raise UserInputError(f"indices and labels must be one-dimensional of equal length, got shapes"
                         f" {indices.shape} and {labels.shape}.")
  if indices.size and not np.issubdtype(indices.dtype, np.integer):
    raise UserInputError(f"indices must be integers, got dtype {indices.dtype}.")
  indices = indices.astype(np.int64)
  outside = np.flatnonzero((indices < 0) | (indices >= pool.size))
  if outside.size:
    raise UserInputError(f"index {indices[outside[0]]} is out of range for a pool of {pool.size}.")
  values, counts = np.unique(indices, return_counts=True)
  if np.any(counts > 1):
    raise UserInputError(f"index {values[np.argmax(counts > 1)]} appears more than once.")
  known = np.flatnonzero(np.asarray(pool.labeled_mask)[indices])
  if known.size:
    raise UserInputError(f"index {indices[known[0]]} is already labeled.")
  labels = _check_labels(labels, num_classes, "labels")
  mask = np.array(pool.labeled_mask, bool)
  new_labels = np.array(pool.labels, np.int32)
  mask[indices] = True
  new_labels[indices] = labels
  return Pool(mask, new_labels)


def validate_query_plan(pool_size: int, num_classes: int, per_class: int, query_size: int,
                        budget: int, *, extra: int = 0) -> QueryPlan:
  """Checks a labeling schedule before any work and returns it.

  Args:
    pool_size: ``N``, samples in the pool.
    num_classes: ``C``.
    per_class: ``Q0``, initial labels per class.
    extra: initial labels beyond ``Q0 * C`` (drawn at random, see :func:`initial_pool`).
    query_size: ``Q``, labels per acquisition round.
    budget: ``B``, labels in total at the end, initial ones included.

  Returns:
    A :class:`QueryPlan` with ``num_rounds = (B - Q0 * C) / Q``.

  Raises:
    ValueError: naming the numbers when the initial pool or a query does not fit in the
      pool, or ``B`` is not ``Q0 * C`` plus a whole number of queries within the pool.
  """
  pool_size = _check_int(pool_size, "pool_size", minimum=1)
  num_classes = _check_int(num_classes, "num_classes", minimum=2)
  per_class = _check_int(per_class, "per_class (Q0)", minimum=0)
  query_size = _check_int(query_size, "query_size (Q)", minimum=1)
  budget = _check_int(budget, "budget (B)", minimum=0)
  extra = _check_int(extra, "extra initial labels", minimum=0)
  initial = per_class * num_classes + extra
  if initial > pool_size:
    raise UserInputError(f"the initial pool Q0 * C + extra = {per_class} * {num_classes} + {extra}"
                         f" = {initial} exceeds the pool of {pool_size}.")
  if query_size > pool_size - initial:
    raise UserInputError(f"query_size (Q) = {query_size} exceeds the {pool_size - initial} "
                         "unlabeled"
                         f" samples left after the initial {initial} labels.")
  if budget > pool_size:
    raise UserInputError(f"budget (B) = {budget} exceeds the pool of {pool_size}.")
  if budget < initial + query_size:
    raise UserInputError(f"budget (B) = {budget} leaves no query after the initial {initial} labels"
                         f" (needs at least {initial} + Q = {initial + query_size}).")
  if (budget - initial) % query_size:
    raise UserInputError(f"budget (B) = {budget} is not reachable: {budget} - {initial} initial "
                         "labels"
                         f" is not a multiple of query_size (Q) = {query_size}.")
  return QueryPlan(initial, query_size, budget, (budget - initial) // query_size)


def class_histogram(pool: Pool, num_classes: int) -> np.ndarray:
  """Labeled samples per class, ``(num_classes,)`` int64."""
  num_classes = _check_int(num_classes, "num_classes", minimum=2)
  _check_pool(pool, num_classes)
  return np.bincount(np.asarray(pool.labels)[np.asarray(pool.labeled_mask)],
                     minlength=num_classes).astype(np.int64)
