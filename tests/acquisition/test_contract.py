"""The acquisition contract, for every baseline strategy and dynamicAL / bilevel.

`budget` distinct unlabeled int32 indices; same key -> same indices; bad budgets and
NaN model outputs raise ValueError; an empty labeled set works.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import assljax
from assljax import acquisition

N, C = 40, 3

STRATEGIES = {
    "random": {},
    "entropy": {"chunk_size": 16},
    "margin": {"chunk_size": 16},
    "confidence": {"chunk_size": 16},
    # the pool here is not images, so its views are unaugmented (scores 0, random order);
    # the augmented path is covered in test_consistency.py
    "consistency": {"chunk_size": 16},
    "egl": {"chunk_size": 16},
    "badge": {"chunk_size": 16},
    "coreset": {"chunk_size": 16},
    "albl": {"chunk_size": 16},
    "dynamicAL": {"chunk_size": 16},
    # a cheap explicit kernel here; the default infinite-width kernel is covered in
    # test_bilevel.py
    "bilevel": {"chunk_size": 16, "landmarks": 8, "kernel": lambda a, b: a @ b.T + 1.0},
}


@pytest.fixture(scope="module")
def ctx():
  model = assljax.models.build("mlp", num_classes=C, input_shape=(5,), width=12, depth=1)
  variables = model.init(jax.random.key(0))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(0)
  mask = np.zeros(N, bool)
  mask[rng.choice(N, 7, replace=False)] = True
  labels = np.where(mask, rng.integers(0, C, N), 0).astype(np.int32)
  return acquisition.Context(apply_fn=apply_fn, params=variables.params,
                             x=jnp.asarray(rng.normal(size=(N, 5)), jnp.float32),
                             labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                             num_classes=C, embed_fn=embed_fn)


def _check(idx, ctx, budget):
  idx = np.asarray(idx)
  assert idx.shape == (budget,) and idx.dtype == np.int32
  assert len(np.unique(idx)) == budget
  assert idx.min() >= 0 and idx.max() < N
  assert not np.asarray(ctx.labeled_mask)[idx].any()


def test_registry_lists_every_strategy():
  assert set(STRATEGIES) <= set(acquisition.available())


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_contract(name, ctx):
  strategy = acquisition.get(name, **STRATEGIES[name])
  remaining = int(N - np.asarray(ctx.labeled_mask).sum())
  key = jax.random.key(7)
  idx = strategy(key, ctx, 6)
  _check(idx, ctx, 6)
  np.testing.assert_array_equal(np.asarray(strategy(key, ctx, 6)), np.asarray(idx))
  sel, _ = strategy.select(key, ctx, 6)
  np.testing.assert_array_equal(np.asarray(sel), np.asarray(idx))
  # the whole remaining pool
  _check(strategy(key, ctx, remaining), ctx, remaining)
  for bad in (remaining + 1, 0, -2, 2.5):
    with pytest.raises(ValueError):
      strategy(key, ctx, bad)
  # an empty labeled set works
  empty = dataclasses.replace(ctx, labeled_mask=jnp.zeros((N,), bool))
  _check(strategy(key, empty, 5), empty, 5)


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n != "random"])
def test_nan_model_outputs_raise(name, ctx):
  # random never looks at the model, so it has nothing to check
  params = jax.tree_util.tree_map(lambda a: a, ctx.params)
  params["hidden"][0]["bias"] = params["hidden"][0]["bias"].at[0].set(jnp.nan)
  broken = dataclasses.replace(ctx, params=params)
  with pytest.raises(ValueError, match="NaN"):
    acquisition.get(name, **STRATEGIES[name])(jax.random.key(0), broken, 3)


def test_unknown_hyperparameters_raise():
  for name in STRATEGIES:
    with pytest.raises(ValueError):
      acquisition.get(name, not_a_hyperparameter=1)


def test_a_type_error_inside_a_constructor_is_not_relabeled(monkeypatch):
  # A bad keyword is the user's error; a TypeError raised by the constructor's own code is a
  # bug and keeps its type and traceback.
  from assljax.acquisition import base

  def broken_constructor(*, scale: float = 1.0):
    return len(scale)  # TypeError: a bug, whatever the hyperparameters

  monkeypatch.setitem(base._REGISTRY, "broken_for_test", broken_constructor)
  with pytest.raises(assljax.UserInputError, match="bad hyperparameters.*'size'"):
    acquisition.get("broken_for_test", size=2)
  with pytest.raises(TypeError, match="len"):
    acquisition.get("broken_for_test", scale=2.0)
