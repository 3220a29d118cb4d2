"""dynamicAL: select the samples that speed up training most (Wang et al., NeurIPS 2022).

    strategy = assljax.acquisition.get("dynamicAL", gamma=2.0, chunk_size=32)
    idx = strategy(key, ctx, budget)

Training dynamics of a labeled set ``S`` under gradient flow on the summed
cross-entropy ``L_S = sum_{(x, y) in S} l(x, y)`` are ``G(S) = ||grad_theta L_S||^2``,
which the paper writes with the class-block empirical NTK ``Theta`` as

    G(S) = sum_{(x, y), (x', y') in S} dl(x, y)/df^T  Theta(x, x')  dl(x', y')/df.

With pseudo-labels ``yhat = argmax f(x)`` for pool samples, adding one sample changes
it by

    Delta(x | S) = G(S + {(x, yhat)}) - G(S) = ||g_x||^2 + 2 g_x^T G_S,
    g_x = grad_theta l(x, yhat),  G_S = sum_{(x', y') in S} grad_theta l(x', y'),

and dynamicAL takes the ``budget`` unlabeled samples with the largest
``||g_x||^2 + gamma g_x^T G_S`` (``gamma = 2`` is the exact increment; the official code
exposes the weight as an argument). Sums of per-sample scores approximate the increment
of a whole query set; :func:`approximation_ratio` measures that approximation.

Computation, all parameters of ``ctx.apply_fn`` (eval mode: BatchNorm uses running
statistics, as ``Model.bind`` provides):

* ``G_S``: one summed-loss gradient per ``chunk_size`` labeled samples, accumulated.
  With an empty labeled set ``G_S = 0`` and the score is ``||g_x||^2``.
* ``||g_x||^2``: per-sample gradients (``vmap`` of ``grad``), ``chunk_size`` at a time
  (memory ``chunk_size x P`` floats).
* ``g_x^T G_S``: one forward-mode JVP of the per-sample losses in direction ``G_S`` per
  chunk, i.e. one JVP per sample.

Chunks are looped on the host, one compiled program per chunk shape: XLA:CPU runs
convolution backward passes inside ``lax.map``/``lax.scan`` 15-20x slower than outside a
loop (measured on WRN-28-2, jax 0.10.2).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax import parallel
from assljax._compile import jit
from assljax._validation import check_chunk_size, check_number
from assljax.acquisition.base import Context, StatelessStrategy, check_finite, register
from assljax.acquisition.uncertainty import RowFn, host_map_rows, top_k_rows

PyTree = Any


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-sample cross-entropy ``(n,)`` of logits ``(n, C)`` at int labels ``(n,)``."""
  logp = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]


def _tree_vdot(a: PyTree, b: PyTree) -> jax.Array:
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                            jax.tree_util.tree_leaves(b)))


@functools.partial(jit, static_argnums=(0,))
def _chunk_gradient(apply_fn: Callable, acc: PyTree, params: PyTree, x: jax.Array,
                    idx: jax.Array, labels: jax.Array, weights: jax.Array) -> PyTree:
  # under a data mesh the rows are split over the devices; XLA all-reduces the sum
  idx, labels, weights = parallel.constrain_rows((idx, labels, weights))
  g = jax.grad(lambda p: jnp.sum(
      weights * cross_entropy(apply_fn(p, jnp.take(x, idx, axis=0)), labels)))(params)
  return jax.tree_util.tree_map(jnp.add, acc, g)


def summed_gradient(apply_fn: Callable, params: PyTree, x: jax.Array, idx: np.ndarray,
                    labels: np.ndarray, *, chunk_size: int | None) -> PyTree:
  """``sum_i grad_theta l(x[idx_i], labels_i)``, a pytree like ``params``.

  Args:
    apply_fn: ``(params, x) -> logits (n, C)``.
    params: the parameters to differentiate.
    x: the pool ``(N, ...)``.
    idx: ``(n,)`` host int rows of ``x``; ``n = 0`` gives zeros.
    labels: ``(n,)`` int labels of those rows.
    chunk_size: rows per backward pass; chunks are looped on the host (one compiled
      program, the last chunk padded with zero weight), because XLA:CPU runs backward
      passes inside ``lax.scan`` 15-20x slower. Under a data mesh of ``D`` devices
      (:mod:`assljax.parallel`) it counts rows per device (``D * chunk_size`` per pass).
  """
  idx = np.asarray(idx, np.int32)
  labels = np.asarray(labels, np.int32)
  acc = jax.tree_util.tree_map(jnp.zeros_like, params)
  n = idx.size
  if n == 0:
    return acc
  size = parallel.data_parallelism()
  c = -(-n // size) if chunk_size is None else min(chunk_size, -(-n // size))
  c *= size
  for start in range(0, n, c):
    part = slice(start, min(start + c, n))
    k = part.stop - part.start
    pad = c - k
    i = np.concatenate([idx[part], np.full(pad, idx[0], np.int32)])
    y = np.concatenate([labels[part], np.zeros(pad, np.int32)])
    w = np.concatenate([np.ones(k), np.zeros(pad)])
    acc = _chunk_gradient(apply_fn, acc, params, x, jnp.asarray(i), jnp.asarray(y),
                          jnp.asarray(w, jax.tree_util.tree_leaves(params)[0].dtype))
  return acc


def dynamic_terms(apply_fn: Callable, params: PyTree, x: jax.Array,
                  g_s: PyTree) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-sample ``(||g_x||^2, g_x^T G_S, yhat)`` for a batch ``x`` ``(n, ...)``.

  ``g_x`` is the all-parameter cross-entropy gradient at the pseudo-label
  ``yhat = argmax apply_fn(params, x)``; ``G_S`` (``g_s``) is a pytree like ``params``.
  Rows with non-finite logits get NaN terms.
  """
  logits = apply_fn(params, x)
  yhat = jnp.argmax(logits, axis=-1)
  finite = jnp.all(jnp.isfinite(logits), axis=-1)

  def one_loss(p, xi, yi):
    return cross_entropy(apply_fn(p, xi[None]), yi[None])[0]

  grads = jax.vmap(jax.grad(one_loss), in_axes=(None, 0, 0))(params, x, yhat)
  sq_norm = sum(jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=-1)
                for g in jax.tree_util.tree_leaves(grads))
  _, cross = jax.jvp(lambda p: cross_entropy(apply_fn(p, x), yhat), (params,), (g_s,))
  nan = jnp.asarray(jnp.nan, sq_norm.dtype)
  return jnp.where(finite, sq_norm, nan), jnp.where(finite, cross, nan), yhat


def _terms_rows(apply_fn, params, x, g_s):
  return dynamic_terms(apply_fn, params, x, g_s)


def pool_dynamic_terms(apply_fn: Callable, params: PyTree, x: jax.Array, idx: np.ndarray,
                       g_s: PyTree, *,
                       chunk_size: int | None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """:func:`dynamic_terms` of pool rows ``x[idx]``, ``chunk_size`` rows per jitted call."""
  return host_map_rows(RowFn(_terms_rows, (apply_fn,)), params, x, idx, g_s,
                       chunk_size=chunk_size)


@jax.jit
def _leaf_sums(tree: PyTree) -> jax.Array:
  return jnp.stack([jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(tree)])


def training_dynamics_scores(ctx: Context, idx: np.ndarray, *, gamma: float = 2.0,
                             chunk_size: int | None = 32) -> jax.Array:
  """``Delta(x | S) = ||g_x||^2 + gamma g_x^T G_S`` ``(n,)`` for pool rows ``idx``.

  ``S`` is the labeled set of ``ctx`` (true labels); pool rows use pseudo-labels.
  Raises ValueError on NaN/inf model outputs.
  """
  lab = ctx.labeled_indices()
  g_s = summed_gradient(ctx.apply_fn, ctx.params, ctx.x, lab, np.asarray(ctx.labels)[lab],
                        chunk_size=chunk_size)
  check_finite(_leaf_sums(g_s), "gradients over the labeled set")
  sq_norm, cross, _ = pool_dynamic_terms(ctx.apply_fn, ctx.params, ctx.x, idx, g_s,
                                         chunk_size=chunk_size)
  check_finite(sq_norm, "model outputs (logits)")
  return sq_norm + gamma * cross


@jax.jit
def _ratio(g_s: PyTree, g_q: PyTree, sq_norm: jax.Array, cross: jax.Array) -> jax.Array:
  g_sq = jax.tree_util.tree_map(jnp.add, g_s, g_q)
  increment = _tree_vdot(g_sq, g_sq) - _tree_vdot(g_s, g_s)
  return jnp.sum(sq_norm + 2.0 * cross) / increment


def approximation_ratio(apply_fn: Callable, params: PyTree, x_s: jax.Array, y_s: jax.Array,
                        x_q: jax.Array, *, chunk_size: int | None = 32) -> jax.Array:
  """The paper's ratio ``R(Q | S) = sum_{x in Q} Delta(x | S) / (G(S + Q) - G(S))``.

  Args:
    apply_fn, params: the model.
    x_s, y_s: the labeled set ``(l, ...)`` and its int labels ``(l,)`` (``l`` may be 0).
    x_q: the query set ``(q, ...)``, labeled with its pseudo-labels ``argmax f``.
    chunk_size: rows per backward pass.

  Returns:
    A scalar; 1 means the per-sample scores add up to the exact increment of ``G``
    (``Delta`` with ``gamma = 2``; ``G(S) = ||sum_S grad l||^2``).
  """
  x_all = jnp.concatenate([x_s, x_q])
  n_s, n_all = x_s.shape[0], x_all.shape[0]
  yhat = np.asarray(jnp.argmax(apply_fn(params, x_q), axis=-1))
  idx_s, idx_q = np.arange(n_s), np.arange(n_s, n_all)
  g_s = summed_gradient(apply_fn, params, x_all, idx_s, np.asarray(y_s), chunk_size=chunk_size)
  g_q = summed_gradient(apply_fn, params, x_all, idx_q, yhat, chunk_size=chunk_size)
  sq_norm, cross, _ = pool_dynamic_terms(apply_fn, params, x_all, idx_q, g_s,
                                         chunk_size=chunk_size)
  return _ratio(g_s, g_q, sq_norm, cross)


class DynamicAL(StatelessStrategy):
  """Top-``budget`` unlabeled samples by ``||g_x||^2 + gamma g_x^T G_S``.

  Args:
    gamma: weight of the cross term (2 = the exact increment of training dynamics).
    chunk_size: samples per per-sample-gradient step (memory ``chunk_size x P``).
  """

  def __init__(self, *, gamma: float = 2.0, chunk_size: int | None = 32):
    gamma = check_number("gamma", gamma)
    self.gamma = gamma
    self.chunk_size = check_chunk_size(chunk_size)

  def scores(self, ctx: Context, idx: np.ndarray) -> jax.Array:
    """``Delta`` scores ``(n,)`` of pool rows ``idx``."""
    return training_dynamics_scores(ctx, idx, gamma=self.gamma, chunk_size=self.chunk_size)

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    del key  # deterministic given the model
    idx = ctx.unlabeled_indices()
    return top_k_rows(self.scores(ctx, idx), idx, budget)


@register("dynamicAL")
def _dynamic_al(*, gamma: float = 2.0, chunk_size: int | None = 32) -> DynamicAL:
  return DynamicAL(gamma=gamma, chunk_size=chunk_size)
