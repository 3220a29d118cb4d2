"""Mesh helpers and the mesh-aware chunked_map, on the 8 simulated CPU devices."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from assljax import parallel
from assljax._chunking import chunked_map


def test_eight_simulated_devices():
  assert jax.device_count() == 8  # tests/conftest.py


def test_data_mesh_shapes_and_validation():
  mesh = parallel.data_mesh()
  assert mesh.axis_names == ("data",) and mesh.devices.size == 8
  assert mesh.axis_types == (jax.sharding.AxisType.Auto,)
  two = parallel.data_mesh(2)
  assert list(two.devices) == jax.devices()[:2]
  for bad in (0, 9, 2.0, True):
    with pytest.raises(ValueError):
      parallel.data_mesh(bad)
  with pytest.raises(ValueError):
    parallel.data_mesh(devices=[])


def test_current_data_axis_follows_use_mesh():
  assert parallel.current_data_axis() is None
  assert parallel.data_parallelism() == 1
  with parallel.use_mesh(parallel.data_mesh(4)):
    assert parallel.current_data_axis() == ("data", 4)
    assert parallel.data_parallelism() == 4
    # visible while tracing too
    jax.jit(lambda a: (parallel.data_parallelism() == 4 or pytest.fail(), a)[1])(1.0)
  with parallel.use_mesh(parallel.data_mesh(1)):  # one device: nothing to shard
    assert parallel.current_data_axis() is None
  with parallel.use_mesh(jax.sharding.Mesh(np.array(jax.devices()), ("model",))):
    assert parallel.current_data_axis() is None
  with parallel.use_mesh(None):
    assert parallel.current_data_axis() is None
  with pytest.raises(ValueError):
    parallel.use_mesh("data")
  assert parallel.current_data_axis() is None


def test_shard_rows_and_replicate_place_data():
  mesh = parallel.data_mesh(4)
  x = np.arange(24, dtype=np.float32).reshape(8, 3)
  sharded = parallel.shard_rows({"x": x}, mesh)["x"]
  shards = sorted(sharded.addressable_shards, key=lambda s: s.index[0].start)
  assert len(shards) == 4 and all(s.data.shape == (2, 3) for s in shards)
  np.testing.assert_array_equal(np.concatenate([np.asarray(s.data) for s in shards]), x)
  rep = parallel.replicate(x, mesh)
  assert len(rep.addressable_shards) == 4
  assert all(s.data.shape == (8, 3) for s in rep.addressable_shards)
  with pytest.raises(ValueError, match="divisible"):
    parallel.shard_rows(np.zeros((6, 2)), mesh)
  with pytest.raises(ValueError, match="no mesh"):
    parallel.replicate(x)
  with parallel.use_mesh(mesh):  # the current mesh is the default
    assert parallel.shard_rows(x).sharding.spec == P("data")


def test_initialize_distributed_is_a_no_op_in_one_process(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  for var in parallel._DISTRIBUTED_ENV + parallel._CLUSTER_ENV:
    monkeypatch.delenv(var, raising=False)
  assert parallel.initialize_distributed() is False
  monkeypatch.setenv("JAX_NUM_PROCESSES", "1")
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  assert parallel.initialize_distributed() is False
  assert calls == []
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "1")
  assert parallel.initialize_distributed() is True
  assert calls == [{"num_processes": 2, "process_id": 1}]
  monkeypatch.setenv("JAX_PROCESS_ID", "one")
  with pytest.raises(ValueError, match="JAX_PROCESS_ID"):
    parallel.initialize_distributed()
  monkeypatch.delenv("JAX_PROCESS_ID")
  monkeypatch.delenv("JAX_NUM_PROCESSES")
  monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
  assert parallel.initialize_distributed(coordinator_address="h:1", num_processes=2,
                                         process_id=0) is True
  assert calls[-1] == {"coordinator_address": "h:1", "num_processes": 2, "process_id": 0}


def _fns():
  w = jax.random.normal(jax.random.key(1), (5, 3))

  def rowwise(a, b):
    return {"h": jnp.tanh(a @ w) * b[:, None], "s": jnp.sum(a * a, axis=-1)}

  return rowwise


@pytest.mark.parametrize("n,chunk", [(37, 4), (64, 2), (64, None), (5, 3)])
@pytest.mark.parametrize("devices", [1, 2, 8])
def test_sharded_chunked_map_matches_unsharded(n, chunk, devices):
  rowwise = _fns()
  a = jax.random.normal(jax.random.key(0), (n, 5))
  b = jnp.arange(n, dtype=jnp.float32)
  f = jax.jit(lambda a, b: chunked_map(rowwise, a, b, chunk_size=chunk))
  ref = rowwise(a, b)
  with parallel.use_mesh(parallel.data_mesh(devices)):
    out = f(a, b)
    eager = chunked_map(rowwise, a, b, chunk_size=chunk)
  for got in (out, eager):
    assert got["h"].shape == (n, 3) and got["s"].shape == (n,)
    np.testing.assert_allclose(got["h"], ref["h"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["s"], ref["s"], rtol=1e-6)


def test_chunks_are_sharded_rows_and_memory_per_device_falls():
  n, d = 8192, 16
  fn = lambda a: jnp.sum(jnp.tanh(a) ** 2, axis=-1)
  sizes = {}
  for devices in (1, 2, 8):
    mesh = parallel.data_mesh(devices)
    x = parallel.shard_rows(jnp.ones((n, d)), mesh)
    with parallel.use_mesh(mesh):
      calls = []

      def probe(a):  # the shape fn sees while tracing: the whole chunk, global view
        calls.append(a.shape)
        return fn(a)

      f = jax.jit(lambda a: chunked_map(probe, a, chunk_size=64))
      out = f(x)
      compiled = f.lower(x).compile()
    assert calls[-1] == (64 * devices, d)  # chunk_size rows per device
    np.testing.assert_allclose(out, np.full(n, d * np.tanh(1.0) ** 2), rtol=1e-5)
    if devices > 1:
      assert out.sharding.spec == P("data")
      assert {s.data.shape for s in out.addressable_shards} == {(n // devices,)}
      # the per-device program holds 64 rows of a chunk, not 64 * devices, and a
      # row-sharded input needs no communication at all
      text = compiled.as_text()
      assert re.search(rf"f32\[(1,)?64,{d}\]", text)
      assert not re.search(rf"f32\[(1,)?{64 * devices},{d}\]", text)
      assert not any(op in text for op in ("all-gather", "all-to-all", "all-reduce",
                                           "collective-permute"))
    mem = compiled.memory_analysis()
    sizes[devices] = mem.argument_size_in_bytes + mem.output_size_in_bytes
  assert sizes[1] == (n * d + n) * 4
  assert sizes[2] == sizes[1] // 2 and sizes[8] == sizes[1] // 8


def test_nested_chunked_map_is_sharded_once():
  def outer(a):
    return chunked_map(lambda r: r * 2.0, a, chunk_size=2) + 1.0

  a = jnp.arange(48, dtype=jnp.float32).reshape(16, 3)
  with parallel.use_mesh(parallel.data_mesh(8)):
    seen = []

    def probe(rows):
      seen.append(parallel.current_data_axis())
      return outer(rows)

    out = jax.jit(lambda a: chunked_map(probe, a, chunk_size=1))(a)
  assert seen == [None]
  np.testing.assert_array_equal(out, a * 2.0 + 1.0)
