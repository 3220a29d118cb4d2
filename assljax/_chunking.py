"""Streaming a function over the leading axis in fixed-size chunks.

Every hot path that touches a whole pool (kernels over many samples, per-sample
scores, candidate batches) goes through :func:`chunked_map`, so peak memory is set by
``chunk_size`` rather than by the pool size, and a chunk is compiled once.

Under a mesh with a ``"data"`` axis (``assljax.parallel.use_mesh``, i.e. ``jax.set_mesh``)
the rows of every chunk are sharded over that axis, so each of ``D`` devices computes
``chunk_size / D`` rows per step and every caller of :func:`chunked_map` runs data
parallel without knowing it (see :func:`chunked_map`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from assljax import parallel
from assljax._validation import check_chunk_size

PyTree = Any


def num_chunks(n: int, chunk_size: int) -> int:
  """Number of chunks of ``chunk_size`` needed to cover ``n`` items."""
  return -(-n // chunk_size)


def pad_to_multiple(x: jax.Array, multiple: int, *, axis: int = 0) -> jax.Array:
  """Pads ``x`` along ``axis`` with copies of its first slice to a multiple of ``multiple``.

  Padding repeats real data (rather than zeros) so that functions which are not
  defined at zero (normalizations, logs) stay finite on the padding; callers drop
  the padded outputs.
  """
  n = x.shape[axis]
  extra = (-n) % multiple
  if extra == 0:
    return x
  filler = jnp.repeat(jax.lax.slice_in_dim(x, 0, 1, axis=axis), extra, axis=axis)
  return jnp.concatenate([x, filler], axis=axis)


def chunked_map(fn: Callable[..., PyTree], *xs: PyTree, chunk_size: int | None) -> PyTree:
  """Applies ``fn`` to chunks of the leading axis of ``xs`` and concatenates results.

  Args:
    fn: maps arrays with leading dimension ``c <= chunk_size`` to a pytree of arrays
      whose leading dimension is ``c`` (one output row per input row).
    *xs: pytrees of arrays sharing the leading dimension ``n``.
    chunk_size: rows per chunk; ``None`` (or ``>= n``) calls ``fn`` once on everything.

  Returns:
    ``fn(*xs)`` computed chunk by chunk (via ``jax.lax.map``), leading dimension ``n``.

  Under a data mesh of ``D > 1`` devices (see :mod:`assljax.parallel`) ``chunk_size``
  counts rows *per device*: each step maps ``D * chunk_size`` rows, ``chunk_size`` on each
  device, so per-device memory keeps the one-device bound and there are ``D`` times fewer
  steps (``None``: one step, ``ceil(n / D)`` rows per device). Chunk ``t`` of ``k`` holds
  the rows ``t, t + k, t + 2k, ...``: when ``n`` is a multiple of ``D * chunk_size`` and
  the inputs are sharded by rows (``assljax.parallel.shard_rows``), every device maps
  rows it already holds. The chunk's rows carry sharding constraints and XLA's SPMD
  partitioner splits ``fn``'s work (a pool ``fn`` gathers from may stay sharded: XLA
  gathers locally and all-reduces). Results come back sharded by rows. Loops inside
  ``fn`` whose trip count depends on the data should go through
  ``assljax.parallel.per_device``. ``fn`` must be row-wise
  (output row ``i`` depends on input row ``i`` only, as it must anyway for the result
  not to depend on ``chunk_size``); results then agree with the unsharded path up to
  floating-point rounding (XLA may order a row's arithmetic differently for other
  shapes: a few ulps). ``chunked_map`` calls nested inside ``fn`` are not sharded again.
  """
  leaves = jax.tree_util.tree_leaves(xs)
  if not leaves:
    raise ValueError("chunked_map needs at least one array input.")
  n = leaves[0].shape[0]
  if any(leaf.shape[0] != n for leaf in leaves):
    raise ValueError(
        "chunked_map inputs disagree on the leading dimension: "
        f"{sorted({leaf.shape[0] for leaf in leaves})}.")
  check_chunk_size(chunk_size)
  if n == 0:
    raise ValueError("chunked_map got empty inputs (leading dimension 0).")
  found = parallel.current_data_axis()
  if found is not None:
    return _sharded_chunked_map(fn, xs, n, chunk_size, found)
  if chunk_size is None or chunk_size >= n:
    return fn(*xs)
  k = num_chunks(n, chunk_size)
  padded = jax.tree_util.tree_map(lambda a: pad_to_multiple(a, chunk_size), xs)
  stacked = jax.tree_util.tree_map(
      lambda a: a.reshape((k, chunk_size) + a.shape[1:]), padded)
  out = jax.lax.map(lambda args: fn(*args), stacked)
  return jax.tree_util.tree_map(
      lambda a: a.reshape((k * chunk_size,) + a.shape[2:])[:n], out)


def _sharded_chunked_map(fn: Callable[..., PyTree], xs: tuple, n: int, chunk_size: int | None,
                         found: tuple[str, int]) -> PyTree:
  """:func:`chunked_map` with every chunk's rows sharded over the mesh axis ``found``."""
  size = found[1]
  per_device = -(-n // size)
  if chunk_size is not None:
    per_device = min(int(chunk_size), per_device)
  c = per_device * size
  k = num_chunks(n, c)
  padded = jax.tree_util.tree_map(lambda a: pad_to_multiple(a, k * c), xs)

  rows = parallel._constrain  # rows(a, axis): shard `axis` of `a` over the data axis

  def body(args):
    args = jax.tree_util.tree_map(lambda a: rows(a, 0), args)
    with parallel._inside_sharded():
      out = fn(*args)
    return jax.tree_util.tree_map(lambda a: rows(a, 0), out)

  if k == 1:
    out = body(padded)
    return jax.tree_util.tree_map(lambda a: a[:n], out)
  # (k c, ...) -> (c, k, ...) -> (k, c, ...): chunk t = rows t, t + k, ...; a row-sharded
  # input of k c rows splits into D blocks of c / D leading entries each, without moving.
  stacked = jax.tree_util.tree_map(
      lambda a: rows(jnp.swapaxes(a.reshape((c, k) + a.shape[1:]), 0, 1), 1), padded)
  out = jax.lax.map(body, stacked)
  return jax.tree_util.tree_map(
      lambda a: rows(jnp.swapaxes(rows(a, 1), 0, 1), 0).reshape((k * c,) + a.shape[2:])[:n],
      out)
