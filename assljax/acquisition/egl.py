"""Expected gradient length (Settles, Craven & Ray, 2008).

    strategy = assljax.acquisition.get("egl", params="last_layer" | "all")
    idx = strategy(key, ctx, budget)

The score of a pool sample is the length of the cross-entropy gradient it would produce,
in expectation over the model's own posterior:

    EGL(x) = sum_y p(y | x) * || grad_theta l(x, y) ||

* ``params="last_layer"`` (default): theta = the head ``(W, b)`` with
  ``logits = h(x) @ W + b``; then ``grad_W l = h (p - e_y)^T`` and ``grad_b l = p - e_y``, so
  ``||grad l(x, y)||^2 = ||p - e_y||^2 (||h||^2 + 1)`` in closed form from penultimate
  features (``ctx.embed_fn`` required). No autodiff, cost O(C + d) per sample.
* ``params="all"``: theta = every parameter; ``grad l(x, y) = J(x)^T (p - e_y)`` with
  ``J`` the per-sample Jacobian of the logits, computed as one linearization per sample
  and one VJP per class (unrolled over classes), ``chunk_size`` samples per jitted
  call (chunks looped on the host, see ``uncertainty.host_map_rows``), so memory is
  ``chunk_size x P`` floats.

``squared=True`` uses ``E ||grad||^2`` instead of ``E ||grad||``.

CRC's EGL baseline (Kong et al., §4.2, after Huang et al. 2016) is the expected *squared*
norm of the cross-entropy gradient over *all* parameters,

    x* = argmax_{x in X_U}  E_{y ~ p(y | x, theta)} || grad_theta H(y, f_theta(x)) ||^2,

which is ``get("egl", params="all", squared=True)`` exactly: ``grad_theta H(y, f(x)) =
J(x)^T (p - e_y)`` with ``p = softmax(f(x))``, summed over every leaf of ``ctx.params``
(the trainable parameters; BatchNorm running statistics are bound into ``apply_fn`` and
not differentiated), weighted by ``p_y``, top ``budget`` taken. The defaults
(``params="last_layer"``, ``squared=False``) are the cheaper last-layer EGL.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import UserInputError, check_chunk_size
from assljax.acquisition.base import Context, StatelessStrategy, check_finite, register
from assljax.acquisition.uncertainty import (RowFn, head_params,
                                             host_map_rows, map_rows, require_embed_fn,
                                             top_k_rows)

PyTree = Any


def last_layer_egl(features: jax.Array, kernel: jax.Array, bias: jax.Array, *,
                   squared: bool = False) -> jax.Array:
  """EGL of a linear head in closed form.

  Args:
    features: ``(n, d)`` penultimate features ``h``.
    kernel, bias: the head, ``(d, C)`` and ``(C,)``.
    squared: expectation of the squared norm instead of the norm.

  Returns:
    ``(n,)``: ``sum_y p_y ||p - e_y|| sqrt(||h||^2 + 1)`` (or its squared-norm variant).
  """
  logits = features @ kernel + bias[None, :]
  p = jax.nn.softmax(logits, axis=-1)
  # ||p - e_y||^2 = ||p||^2 - 2 p_y + 1 for every class y at once: (n, C)
  sq_res = jnp.maximum(jnp.sum(p * p, axis=-1, keepdims=True) - 2.0 * p + 1.0, 0.0)
  sq_h = jnp.sum(features * features, axis=-1, keepdims=True) + 1.0
  sq_norms = sq_res * sq_h
  per_class = sq_norms if squared else jnp.sqrt(sq_norms)
  score = jnp.sum(p * per_class, axis=-1)
  return jnp.where(jnp.all(jnp.isfinite(logits), axis=-1), score, jnp.nan)


def _tree_sq_norm(tree: PyTree) -> jax.Array:
  return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree))


def all_params_egl(apply_fn: Callable, params: PyTree, x: jax.Array, *,
                   squared: bool = False) -> jax.Array:
  """EGL over all parameters for a batch ``x`` ``(n, ...)``; returns ``(n,)``.

  One linearization per sample, one VJP per class (unrolled, so the program grows with
  ``C``); call it on chunks (memory about ``n x P`` floats).
  """

  def one(xi):
    logits, vjp = jax.vjp(lambda p: apply_fn(p, xi[None])[0], params)
    p = jax.nn.softmax(logits)
    num_classes = logits.shape[-1]

    # one VJP per class, unrolled: XLA:CPU runs backward passes inside loops far slower
    sq_norms = jnp.stack([
        _tree_sq_norm(vjp(p - jax.nn.one_hot(y, num_classes, dtype=p.dtype))[0])
        for y in range(num_classes)])
    per_class = sq_norms if squared else jnp.sqrt(sq_norms)
    score = jnp.sum(p * per_class)
    return jnp.where(jnp.all(jnp.isfinite(logits)), score, jnp.nan)

  return jax.vmap(one)(x)


def _last_layer_rows(embed_fn, squared, params, x):
  return last_layer_egl(embed_fn(params, x), params["head"]["kernel"], params["head"]["bias"],
                        squared=squared)


def _all_rows(apply_fn, squared, params, x):
  return all_params_egl(apply_fn, params, x, squared=squared)


class EGL(StatelessStrategy):
  """Top-``budget`` unlabeled samples by expected gradient length.

  Args:
    params: "last_layer" (closed form, needs ``ctx.embed_fn``) or "all" (autodiff).
    squared: score ``E ||grad||^2`` instead of ``E ||grad||``.
    chunk_size: pool rows per step; default 256 for the last layer, 32 for "all"
      (per-sample gradients hold ``chunk_size x P`` floats).
  """

  def __init__(self, *, params: str = "last_layer", squared: bool = False,
               chunk_size: int | None = None):
    if params not in ("last_layer", "all"):
      raise UserInputError(f"egl params must be 'last_layer' or 'all', got {params!r}")
    self.params = params
    self.squared = bool(squared)
    if chunk_size is None:
      chunk_size = 256 if params == "last_layer" else 32
    self.chunk_size = check_chunk_size(chunk_size)

  def scores(self, ctx: Context, idx: np.ndarray) -> jax.Array:
    """EGL scores ``(n,)`` of pool rows ``idx`` (ValueError on NaN/inf model outputs)."""
    if self.params == "last_layer":
      head_params(ctx, "egl")
      row_fn = RowFn(_last_layer_rows, (require_embed_fn(ctx, "egl"), self.squared))
      scores = map_rows(row_fn, ctx.params, ctx.x, jnp.asarray(idx, jnp.int32),
                        chunk_size=self.chunk_size)
    else:
      # per-sample gradients: chunks looped on the host (see host_map_rows)
      scores = host_map_rows(RowFn(_all_rows, (ctx.apply_fn, self.squared)), ctx.params,
                             ctx.x, idx, chunk_size=self.chunk_size)
    check_finite(scores, "model outputs")
    return scores

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    del key  # deterministic given the model
    idx = ctx.unlabeled_indices()
    return top_k_rows(self.scores(ctx, idx), idx, budget)


@register("egl")
def _egl(*, params: str = "last_layer", squared: bool = False,
         chunk_size: int | None = None) -> EGL:
  return EGL(params=params, squared=squared, chunk_size=chunk_size)
