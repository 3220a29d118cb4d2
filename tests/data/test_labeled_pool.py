"""The labeled pool: balanced initial labels, adding labels, the query plan, histograms."""

import jax
import numpy as np
import pytest

from assljax import data


def _y(counts=(5, 3, 4), seed=0):
  y = np.repeat(np.arange(len(counts)), counts)
  return np.random.default_rng(seed).permutation(y)


def test_initial_pool_is_balanced_and_deterministic():
  y = _y()
  pool = data.initial_pool(y, 2, key=jax.random.key(1), num_classes=3)
  assert pool.labeled_mask.dtype == np.bool_ and pool.labels.dtype == np.int32
  assert pool.size == 12 and pool.num_labeled == 6
  assert data.class_histogram(pool, 3).tolist() == [2, 2, 2]
  np.testing.assert_array_equal(pool.labels[pool.labeled_mask], y[pool.labeled_mask])
  np.testing.assert_array_equal(pool.labels[~pool.labeled_mask], -1)
  np.testing.assert_array_equal(pool.labeled_indices(), np.flatnonzero(pool.labeled_mask))
  np.testing.assert_array_equal(pool.unlabeled_indices(), np.flatnonzero(~pool.labeled_mask))
  again = data.initial_pool(y, 2, key=jax.random.key(1), num_classes=3)
  np.testing.assert_array_equal(pool.labeled_mask, again.labeled_mask)
  as_int = data.initial_pool(y, 2, key=1, num_classes=3)  # an int seed means jax.random.key(seed)
  np.testing.assert_array_equal(pool.labeled_mask, as_int.labeled_mask)
  masks = {tuple(data.initial_pool(y, 2, key=k, num_classes=3).labeled_mask) for k in range(8)}
  assert len(masks) > 1
  # per_class equal to the smallest class takes all of it
  full = data.initial_pool(y, 3, key=0, num_classes=3)
  assert np.all(full.labeled_mask[y == 1])
  assert data.initial_pool(y, 0, key=0, num_classes=3).num_labeled == 0


def test_initial_pool_errors():
  y = _y()
  with pytest.raises(ValueError,
                     match=r"per_class \(Q0\) = 4 exceeds the 3 pool samples of class 1"):
    data.initial_pool(y, 4, key=0, num_classes=3)
  with pytest.raises(ValueError, match=r"must lie in \[0, 3\); position \d+ holds 3"):
    data.initial_pool(np.append(y, 3), 1, key=0, num_classes=3)
  with pytest.raises(ValueError, match="per_class"):
    data.initial_pool(y, -1, key=0, num_classes=3)
  with pytest.raises(ValueError, match="key must be"):
    data.initial_pool(y, 1, key=True, num_classes=3)
  with pytest.raises(ValueError, match="num_classes must be at least 2"):
    data.initial_pool(y, 1, key=0, num_classes=1)


def test_add_labels_records_and_validates():
  pool = data.empty_pool(6)
  pool = data.add_labels(pool, [4, 1], [2, 0], num_classes=3)
  assert pool.labeled_mask.tolist() == [False, True, False, False, True, False]
  assert pool.labels.tolist() == [-1, 0, -1, -1, 2, -1]
  same = data.add_labels(pool, np.zeros(0, np.int32), np.zeros(0, np.int32), num_classes=3)
  np.testing.assert_array_equal(same.labels, pool.labels)
  before = pool.labels.copy()
  cases = [
      (([6], [0]), "index 6 is out of range for a pool of 6"),
      (([-1], [0]), "index -1 is out of range"),
      (([2, 2], [0, 1]), "index 2 appears more than once"),
      (([4], [1]), "index 4 is already labeled"),
      (([2], [3]), r"labels must lie in \[0, 3\); position 0 holds 3"),
      (([2], [-1]), r"labels must lie in \[0, 3\)"),
      (([2, 3], [1]), "equal length"),
      (([2.0], [1]), "indices must be integers"),
      (([2], [1.5]), "labels must be integers"),
  ]
  for (idx, labels), message in cases:
    with pytest.raises(ValueError, match=message):
      data.add_labels(pool, idx, labels, num_classes=3)
  np.testing.assert_array_equal(pool.labels, before)  # inputs are never modified
  with pytest.raises(ValueError, match="-1 where unlabeled"):
    data.add_labels(data.Pool(pool.labeled_mask, pool.labels + 1), [2], [1], num_classes=3)


def test_class_histogram_brute_force():
  rng = np.random.default_rng(0)
  pool = data.empty_pool(40)
  for step in range(4):
    idx = rng.choice(pool.unlabeled_indices(), 5, replace=False)
    pool = data.add_labels(pool, idx, rng.integers(0, 4, 5), num_classes=4)
    brute = [sum(1 for i in range(40) if pool.labeled_mask[i] and pool.labels[i] == c)
             for c in range(4)]
    assert data.class_histogram(pool, 4).tolist() == brute
    assert pool.num_labeled == 5 * (step + 1)


def test_validate_query_plan():
  plan = data.validate_query_plan(1437, 10, 1, 10, 60)
  assert plan == data.QueryPlan(initial=10, query_size=10, budget=60, num_rounds=5)
  assert plan.labels_after(0) == 10 and plan.labels_after(5) == 60
  cases = [
      ((100, 10, 11, 5, 120), r"Q0 \* C \+ extra = 11 \* 10 \+ 0 = 110 exceeds the pool of 100"),
      ((100, 10, 1, 91, 101), r"query_size \(Q\) = 91 exceeds the 90 unlabeled samples"),
      ((100, 10, 1, 10, 110), r"budget \(B\) = 110 exceeds the pool of 100"),
      ((100, 10, 1, 10, 15), r"budget \(B\) = 15 leaves no query after the initial 10 labels"),
      ((100, 10, 1, 10, 55), r"budget \(B\) = 55 is not reachable: 55 - 10 initial labels is not"
                             r" a multiple of query_size \(Q\) = 10"),
      ((100, 10, 1, 0, 50), r"query_size \(Q\) must be at least 1, got 0"),
      ((100, 10, 1.0, 10, 50), r"per_class \(Q0\) must be an integer"),
      ((100, 1, 1, 10, 50), "num_classes must be at least 2"),
      ((100, 10, 1, True, 50), "query_size"),
  ]
  for args, message in cases:
    with pytest.raises(ValueError, match=message):
      data.validate_query_plan(*args)
