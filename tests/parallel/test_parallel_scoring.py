"""Pool scoring on a data mesh: 1, 2 and 8 devices select exactly what one device selects.

Every strategy that scores samples or candidate batches streams through the mesh-aware
``chunked_map`` (or the host-looped per-sample-gradient helpers); under
``parallel.use_mesh`` their chunks are split over the devices. Scores agree with the
unsharded ones up to float32 rounding; the pools below have no near-ties, so the
selected indices must be identical.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from assljax import acquisition, parallel
from assljax.acquisition.uncertainty import RowFn, map_rows
from mlp_pool import mlp_context

N, C, BUDGET = 64, 3, 6


@pytest.fixture(scope="module")
def ctx():
  return mlp_context(N, C)[1]


# chunk sizes are small so that several chunks (and padding) run on every mesh
CHEAP = {
    "entropy": {"chunk_size": 4},
    "margin": {"chunk_size": 4},
    "confidence": {"chunk_size": 4},
    "egl": {"chunk_size": 4},
    "coreset": {"chunk_size": 4},
}
COSTLY = {
    "badge": {"chunk_size": 4},
    "dynamicAL": {"chunk_size": 4},
    "npc": {"num_candidates": 40, "chunk_size": 4},
    "crc": {"group_size": 2, "chunk_size": 2},
    "bilevel": {"chunk_size": 4, "landmarks": 8, "inner_steps": 20, "cg_steps": 5,
                "kernel": lambda a, b: a @ b.T + 1.0},
}


def _select(name, hparams, ctx, mesh=None):
  with parallel.use_mesh(mesh):
    return np.asarray(acquisition.get(name, **hparams)(jax.random.key(3), ctx, BUDGET))


@pytest.mark.parametrize("name", list(CHEAP))
def test_cheap_strategies_on_1_2_8_devices(name, ctx):
  ref = _select(name, CHEAP[name], ctx)
  assert len(np.unique(ref)) == BUDGET
  for devices in (1, 2, 8):
    np.testing.assert_array_equal(_select(name, CHEAP[name], ctx, parallel.data_mesh(devices)),
                                  ref, err_msg=f"{name} on {devices} devices")


@pytest.mark.parametrize("name", list(COSTLY))
def test_costly_strategies_on_8_devices(name, ctx):
  hparams = COSTLY[name]
  ref = _select(name, hparams, ctx)
  np.testing.assert_array_equal(_select(name, hparams, ctx, parallel.data_mesh(8)), ref)


def test_npc_argmax_search_on_8_devices(ctx, monkeypatch):
  import assljax.acquisition.spectral as spectral

  # the bounded search (one while_loop over bound and exact blocks, each block split
  # over the devices) instead of scoring all 40 candidates
  monkeypatch.setattr(spectral, "_SEARCH_MIN", 8)
  hparams = {"num_candidates": 40, "chunk_size": 2, "method": "bordered"}
  ref = _select("npc", hparams, ctx)
  np.testing.assert_array_equal(_select("npc", hparams, ctx, parallel.data_mesh(8)), ref)


def test_scores_are_computed_sharded_and_match(ctx):
  strategy = acquisition.get("entropy", chunk_size=4)
  idx = np.arange(N, dtype=np.int32)  # 64 rows: 8 per device
  ref = strategy.scores(ctx, idx)
  with parallel.use_mesh(parallel.data_mesh(8)):
    got = strategy.scores(ctx, idx)
  assert got.sharding.spec == P("data")
  assert {s.data.shape for s in got.addressable_shards} == {(N // 8,)}
  np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


def test_a_pool_sharded_over_devices_selects_the_same(ctx):
  mesh = parallel.data_mesh(8)
  sharded = dataclasses.replace(ctx, x=parallel.shard_rows(ctx.x, mesh))
  assert {s.data.shape for s in sharded.x.addressable_shards} == {(N // 8, 5)}
  for name, hparams in [("entropy", CHEAP["entropy"]), ("coreset", CHEAP["coreset"]),
                        ("npc", COSTLY["npc"])]:
    np.testing.assert_array_equal(_select(name, hparams, sharded, mesh),
                                  _select(name, hparams, ctx), err_msg=name)


def test_features_and_nystrom_on_8_devices(ctx):
  from assljax.kernels import Kernel, nystrom_features

  kernel = Kernel.empirical(ctx.apply_fn, ctx.params, param_filter="all", chunk_size=4)
  phi = nystrom_features(kernel, ctx.x[:6])
  feats = jax.jit(lambda x: map_rows(RowFn(lambda p, r: ctx.embed_fn(p, r)), ctx.params, x,
                                     jnp.arange(N), chunk_size=4))
  ref_z, ref_h = phi(ctx.x), feats(ctx.x)
  with parallel.use_mesh(parallel.data_mesh(8)):
    z, h = phi(ctx.x), feats(ctx.x)
  assert h.sharding.spec == P("data")
  np.testing.assert_allclose(z, ref_z, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(h, ref_h, rtol=1e-6, atol=1e-6)
