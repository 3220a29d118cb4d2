"""The engine: resumable bit-identical chunks, one compile across rounds, evaluation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import models, ssl
from assljax.ssl import augment

N, C, SHAPE = 48, 3, (4, 4, 1)


def _pool(seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, C, size=N).astype(np.int32)
  x = rng.uniform(size=(N,) + SHAPE).astype(np.float32) * 0.5
  x[:, 0, 0, 0] += y / C  # a learnable signal
  return x, y


def _mask(count):
  mask = np.zeros(N, bool)
  mask[:count] = True
  return mask


@pytest.fixture(scope="module")
def mlp():
  return models.build("mlp", num_classes=C, input_shape=SHAPE, width=8, depth=1)


WEAK = functools.partial(augment.weak_augment, flip=True, pad=1)


def _noisy(key, x):
  return WEAK(key, x) + 0.1 * jax.random.normal(key, x.shape)


def _jitter(key, x):  # a cheap stand-in augmentation (keys still matter)
  return x + 0.05 * jax.random.normal(key, x.shape)


@pytest.fixture(scope="module")
def sup_trainer(mlp):
  return ssl.make_trainer(mlp, ssl.supervised(weak=_jitter), batch_size=4, total_steps=10)


def _leaves_equal(a, b):
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(u), np.asarray(v))
                                    for u, v in zip(la, lb))


@pytest.mark.parametrize("device_loop", [False, True])
def test_resume_from_any_chunk_boundary_is_bit_identical(mlp, device_loop):
  x, y = _pool()
  data = ssl.make_data(x, y, _mask(10))
  alg = ssl.fixmatch_darp(threshold=0.5, mu=2, weak=WEAK, strong=_noisy, warmup_steps=2,
                          refine_every=2)
  trainer = ssl.make_trainer(mlp, alg, batch_size=4, total_steps=10, device_loop=device_loop)
  key = jax.random.key(7)
  whole = trainer.train(trainer.init(key, data), data, 6, chunk_steps=6, progress=False)
  # Interrupted after 2 steps, "checkpointed" to host memory, restored and resumed in
  # chunks of a different length.
  first = trainer.train(trainer.init(key, data), data, 2, chunk_steps=2, progress=False)
  saved = jax.device_get(first)
  restored = jax.tree_util.tree_map(jnp.asarray, saved)
  resumed = trainer.train(restored, data, 4, chunk_steps=3, progress=False)
  assert int(whole.step) == int(resumed.step) == 6
  assert _leaves_equal(whole, resumed)
  assert isinstance(whole.algo_state, ssl.DarpState)
  # The DARP state really changed (refined at steps 2 and 4).
  assert not np.allclose(np.asarray(whole.algo_state.refined), 1.0 / C)


def test_growing_labeled_set_compiles_once(mlp):
  x, y = _pool(1)
  trainer = ssl.make_trainer(mlp, ssl.fixmatch(mu=1, weak=_jitter, strong=_jitter),
                             batch_size=4, total_steps=20)
  state = None
  for count, chunk in [(6, 2), (12, 3), (20, 5)]:  # three rounds, the pool grows labels
    data = ssl.make_data(x, y, _mask(count))
    state = trainer.init(jax.random.key(count), data,
                         variables=None if state is None else trainer.variables(state))
    state = trainer.train(state, data, 5, chunk_steps=chunk, progress=False)
  assert trainer.step_fn._cache_size() == 1
  looped = ssl.make_trainer(mlp, ssl.supervised(weak=_jitter), batch_size=4, total_steps=20,
                            device_loop=True)
  for count, chunk in [(6, 2), (12, 3)]:
    data = ssl.make_data(x, y, _mask(count))
    looped.train(looped.init(jax.random.key(0), data), data, 5, chunk_steps=chunk,
                 progress=False)
  assert looped.loop_fn._cache_size() == 1


def test_batches_come_from_the_labeled_set_only():
  x, y = _pool(2)
  mask = np.zeros(N, bool)
  mask[[3, 17, 40]] = True
  data = ssl.make_data(x, y, mask, unlabeled="rest", labeled_capacity=8)
  assert data.labeled_idx.shape == (8,) and int(data.num_labeled) == 3
  assert int(data.num_unlabeled) == N - 3
  batch = jax.jit(lambda k: ssl.train.sample_batch(k, data, 64, 256))(jax.random.key(0))
  flat, seen = x.reshape(N, -1), set()
  for row, label in zip(np.asarray(batch.x_labeled), np.asarray(batch.y_labeled)):
    idx = np.flatnonzero((flat == row.ravel()).all(axis=1))
    assert idx.tolist() in ([3], [17], [40]) and label == y[idx[0]]
    seen.add(int(idx[0]))
  assert seen == {3, 17, 40}  # 64 draws with replacement from 3 items hit all of them
  rows = np.asarray(batch.unlabeled_rows)
  assert rows.min() >= 0 and rows.max() < N - 3
  picked = np.asarray(data.unlabeled_idx)[rows]
  assert not set(picked.tolist()) & {3, 17, 40}


def test_init_continues_from_given_variables(mlp, sup_trainer):
  x, y = _pool(3)
  data = ssl.make_data(x, y, _mask(10))
  trainer = sup_trainer
  variables = mlp.init(jax.random.key(11))
  state = trainer.init(jax.random.key(0), data, variables=variables)
  assert _leaves_equal(state.params, variables.params)
  assert _leaves_equal(state.ema_params, variables.params)
  assert int(state.step) == 0
  state = trainer.train(state, data, 2, progress=False)
  # The caller's arrays survive the donation of the state.
  assert np.isfinite(np.asarray(jax.tree_util.tree_leaves(variables.params)[0])).all()
  fresh = trainer.init(jax.random.key(0), data)
  assert not _leaves_equal(fresh.params, variables.params)


def test_callback_records_and_periodic_evaluation(sup_trainer):
  x, y = _pool(4)
  data = ssl.make_data(x, y, _mask(12))
  trainer = sup_trainer
  records = []
  trainer.train(trainer.init(jax.random.key(0), data), data, 4, chunk_steps=3, eval_every=2,
                eval_data=(x, y), progress=False, callback=lambda s, r: records.append(
                    (int(s.step), r)))
  assert [step for step, _ in records] == [2, 3, 4]
  assert [r["step"] for _, r in records] == [2, 3, 4]
  assert ["eval" in r for _, r in records] == [True, False, True]
  assert all(np.isfinite(r["loss"]) for _, r in records)
  assert 0.0 <= records[-1][1]["eval"]["accuracy"] <= 1.0


def test_evaluate_matches_numpy(mlp):
  x, y = _pool(5)
  variables = mlp.init(jax.random.key(1))
  y = y.copy()
  y[y == 2] = 0  # class 2 absent
  result = ssl.evaluate(mlp, variables, x, y, batch_size=7)
  preds = np.asarray(mlp.apply(*variables, jnp.asarray(x))).argmax(axis=1)
  assert result["accuracy"] == pytest.approx(np.mean(preds == y))
  for c in (0, 1):
    assert result["per_class_accuracy"][c] == pytest.approx(np.mean(preds[y == c] == c))
  assert np.isnan(result["per_class_accuracy"][2])
  with pytest.raises(ValueError):
    ssl.evaluate(mlp, variables, x, np.full(N, 5))


def test_mixmatch_and_mean_teacher_run_in_the_engine(mlp):
  x, y = _pool(6)
  data = ssl.make_data(x, y, _mask(12))
  mm = ssl.make_trainer(mlp, ssl.mixmatch(weak=_jitter, rampup_steps=4), batch_size=4,
                        total_steps=10)
  assert mm.unlabeled_batch_size == 4
  state = mm.train(mm.init(jax.random.key(0), data), data, 3, progress=False)
  assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree_util.tree_leaves(state.params))
  mt = ssl.make_trainer(mlp, ssl.mean_teacher(weak=_jitter, rampup_steps=4), batch_size=4,
                        total_steps=10)
  state = mt.train(mt.init(jax.random.key(0), data), data, 1, progress=False)
  # The teacher's EMA decay at step 0 is min(1 - 1/1, 0.99) = 0: teacher = student.
  assert _leaves_equal(state.ema_params, state.params)
  state = mt.train(state, data, 1, progress=False)
  diff = [np.abs(np.asarray(a) - np.asarray(b)).max()
          for a, b in zip(jax.tree_util.tree_leaves(state.ema_params),
                          jax.tree_util.tree_leaves(state.params))]
  assert max(diff) > 0  # step 1 averages with decay 1/2


def test_bfloat16_compute_in_the_engine():
  model = models.build("cnn", num_classes=C, input_shape=SHAPE, channels=(4, 4, 4), hidden=8)
  x, y = _pool(7)
  data = ssl.make_data(x, y, _mask(12))
  runs = {}
  for dtype in (None, jnp.bfloat16):
    trainer = ssl.make_trainer(model, ssl.supervised(weak=ssl.no_augment), batch_size=8,
                               total_steps=10, compute_dtype=dtype)
    records = []
    state = trainer.train(trainer.init(jax.random.key(0), data), data, 2, progress=False,
                          callback=lambda s, r: records.append(r["loss"]))
    floats = [leaf for leaf in jax.tree_util.tree_leaves(state)
              if jnp.issubdtype(leaf.dtype, jnp.floating)]
    assert floats and all(leaf.dtype == jnp.float32 for leaf in floats)
    runs[dtype] = (records[0], state)
  loss32, loss16 = runs[None][0], runs[jnp.bfloat16][0]
  assert np.isfinite(loss16) and loss16 != loss32 and abs(loss16 - loss32) < 0.05 * loss32


def test_bad_inputs_raise(mlp):
  x, y = _pool(8)
  with pytest.raises(ValueError, match="empty"):
    ssl.make_data(x, y, np.zeros(N, bool))
  with pytest.raises(ValueError):
    ssl.make_data(x, y[:-1], _mask(3))
  with pytest.raises(ValueError):
    ssl.make_data(x, y, _mask(10), labeled_capacity=4)
  with pytest.raises(ValueError):
    ssl.make_data(x, y, _mask(10), num_classes=2)
  with pytest.raises(ValueError):
    ssl.make_trainer(mlp, ssl.fixmatch(weak=WEAK), mu=0)
  with pytest.raises(ValueError):
    ssl.make_trainer(mlp, ssl.supervised(weak=WEAK), batch_size=0)
