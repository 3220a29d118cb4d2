"""Data-parallel training on a mesh: batch sharded, state replicated, same results.

A tiny model with BatchNorm (registered here) trains with FixMatch on 1, 2 and 8
simulated devices; the states agree with the single-device trainer up to float32
reassociation of the cross-device sums (gradients, BatchNorm means): atol 1e-5 after
4 steps (the observed gap is below 1e-6). The BatchNorm statistics must come from the
*global* batch: per-device statistics would not even agree between devices, and their
variances (over 1 labeled row per device on 8 devices) would be far off.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from assljax import models, parallel, ssl
from assljax.models.core import register

N, C, SHAPE = 64, 3, (4, 4, 1)
_NAME = "_test_parallel_bn_mlp"


class _BNMLP(nnx.Module):
  """``Dense -> BatchNorm -> ReLU -> head``: the smallest network with batch statistics."""

  def __init__(self, rngs, *, num_classes, input_shape, width=8):
    self.dense = nnx.Linear(math.prod(input_shape), width, rngs=rngs)
    self.bn = nnx.BatchNorm(width, momentum=0.5, rngs=rngs)
    self.head = nnx.Linear(width, num_classes, rngs=rngs)

  def features(self, x, *, train=False):
    h = self.dense(x.reshape((x.shape[0], -1)))
    return jax.nn.relu(self.bn(h, use_running_average=not train))

  def __call__(self, x, *, train=False):
    return self.head(self.features(x, train=train))


if _NAME not in models.available():
  register(_NAME)(lambda rngs, **kw: _BNMLP(rngs, **kw))


def _pool():
  rng = np.random.default_rng(0)
  y = rng.integers(0, C, size=N).astype(np.int32)
  # per-row offsets make per-device batch means differ from the global mean
  x = rng.uniform(size=(N,) + SHAPE).astype(np.float32) + np.arange(N)[:, None, None, None] / N
  x[:, 0, 0, 0] += y
  mask = np.zeros(N, bool)
  mask[:16] = True
  return x, y, mask


def _jitter(key, x):
  return x + 0.05 * jax.random.normal(key, x.shape)


def _run(mesh, *, device_loop=False):
  """Trains 4 steps in chunks of 2 with an evaluation at the end; (trainer, state, records)."""
  model = models.build(_NAME, num_classes=C, input_shape=SHAPE)
  alg = ssl.fixmatch(mu=2, weak=_jitter, strong=_jitter, threshold=0.3)
  trainer = ssl.make_trainer(model, alg, batch_size=8, total_steps=10, mesh=mesh,
                             device_loop=device_loop)
  x, y, mask = _pool()
  data = trainer.place(ssl.make_data(x, y, mask))
  records = []
  state = trainer.train(trainer.init(jax.random.key(0), data), data, 4, chunk_steps=2,
                        progress=False, eval_every=4, eval_data=(x, y),
                        callback=lambda s, r: records.append(r))
  return trainer, state, records


def _close(a, b, atol):
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(la) == len(lb)
  for u, v in zip(la, lb):
    u, v = np.asarray(u), np.asarray(v)
    if np.issubdtype(u.dtype, np.floating):
      np.testing.assert_allclose(u, v, rtol=0, atol=atol)
    else:
      np.testing.assert_array_equal(u, v)


_RUNS = {}


def _cached(devices):
  if devices not in _RUNS:
    _RUNS[devices] = _run(None if devices is None else parallel.data_mesh(devices))
  return _RUNS[devices]


@pytest.fixture(scope="module")
def reference():
  return _cached(None)


@pytest.mark.parametrize("devices", [1, 2, 8])
def test_sharded_training_matches_one_device(reference, devices):
  _, ref_state, ref_records = reference
  trainer, state, records = _cached(devices)
  assert int(state.step) == 4
  # parameters and the whole state stay replicated on every device of the mesh
  for leaf in jax.tree_util.tree_leaves(state):
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == devices
  _close(state, ref_state, atol=1e-5)
  assert [r["step"] for r in records] == [2, 4]
  for r, q in zip(records, ref_records):
    np.testing.assert_allclose(r["loss"], q["loss"], rtol=1e-5)
  assert records[-1]["eval"]["accuracy"] == ref_records[-1]["eval"]["accuracy"]


def test_batch_norm_statistics_are_global_batch_means(reference):
  _, ref_state, _ = reference
  _, state, _ = _cached(8)
  stats = jax.tree_util.tree_leaves(state.batch_stats)
  assert stats and all(np.asarray(s).std() > 0 for s in stats)  # they really moved
  _close(state.batch_stats, ref_state.batch_stats, atol=1e-5)


def test_the_step_shards_the_batch_and_reduces_gradients():
  mesh = parallel.data_mesh(8)
  model = models.build(_NAME, num_classes=C, input_shape=SHAPE)
  trainer = ssl.make_trainer(model, ssl.supervised(weak=_jitter), batch_size=16,
                             total_steps=10, mesh=mesh)
  x, y, mask = _pool()
  data = trainer.place(ssl.make_data(x, y, mask))
  state = trainer.init(jax.random.key(1), data)
  total = trainer.place({k: jnp.zeros(v.shape, v.dtype) for k, v in
                         jax.eval_shape(trainer.train_step, state, data)[1].items()})
  text = trainer.step_fn.lower(state, data, total).compile().as_text()
  assert "all-reduce" in text  # gradients (and BatchNorm means) summed across devices
  # the per-device forward pass sees 16 / 8 = 2 rows of the 16-dim flattened input
  assert "f32[2,16]" in text and "f32[16,16]" not in text
  # data placed once is not copied again
  assert trainer.place(data) is data or all(
      a is b for a, b in zip(jax.tree_util.tree_leaves(trainer.place(data)),
                             jax.tree_util.tree_leaves(data)))


def test_batch_sizes_must_divide_over_the_mesh():
  model = models.build(_NAME, num_classes=C, input_shape=SHAPE)
  with pytest.raises(ValueError, match="multiples"):
    ssl.make_trainer(model, ssl.supervised(weak=_jitter), batch_size=12,
                     mesh=parallel.data_mesh(8))
  with pytest.raises(ValueError, match="mesh"):
    ssl.make_trainer(model, ssl.supervised(weak=_jitter), batch_size=8,
                     mesh=jax.sharding.Mesh(np.array(jax.devices()), ("model",)))
