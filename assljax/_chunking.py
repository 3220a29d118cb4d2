"""Streaming a function over the leading axis in fixed-size chunks.

Every hot path that touches a whole pool (kernels over many samples, per-sample
scores, candidate batches) goes through :func:`chunked_map`, so peak memory is set by
``chunk_size`` rather than by the pool size, and a chunk is compiled once.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

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
  """
  leaves = jax.tree_util.tree_leaves(xs)
  if not leaves:
    raise ValueError("chunked_map needs at least one array input.")
  n = leaves[0].shape[0]
  if any(leaf.shape[0] != n for leaf in leaves):
    raise ValueError(
        "chunked_map inputs disagree on the leading dimension: "
        f"{sorted({leaf.shape[0] for leaf in leaves})}.")
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
  if n == 0:
    raise ValueError("chunked_map got empty inputs (leading dimension 0).")
  if chunk_size is None or chunk_size >= n:
    return fn(*xs)
  k = num_chunks(n, chunk_size)
  padded = jax.tree_util.tree_map(lambda a: pad_to_multiple(a, chunk_size), xs)
  stacked = jax.tree_util.tree_map(
      lambda a: a.reshape((k, chunk_size) + a.shape[1:]), padded)
  out = jax.lax.map(lambda args: fn(*args), stacked)
  return jax.tree_util.tree_map(
      lambda a: a.reshape((k * chunk_size,) + a.shape[2:])[:n], out)
