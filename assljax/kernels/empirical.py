"""Finite-width (empirical) neural tangent kernel, built from ``jax.vjp`` and ``jax.vmap``.

    ntk_fn = empirical_ntk_fn(apply_fn, *, trace_axes=(-1,), param_filter=None,
                              chunk_size=None)
    K = ntk_fn(params, x1, x2)     # (n1, n2):       K[i, j] = sum_c <J_c(x1_i), J_c(x2_j)>
                                   # (n1, n2, C, C): trace_axes=(), K[i, j, c, d] =
                                   #                 <J_c(x1_i), J_d(x2_j)>

where ``J_c(x) = d apply_fn(params, x)[c] / d params`` (restricted to the parameters that
``param_filter`` selects). The traced kernel is the *sum* over the class axis (DESIGN §4:
the last-layer trace is ``C (h.h' + 1)``); ``neural_tangents.empirical_ntk_fn`` divides its
trace by the number of classes, i.e. ours is ``C`` times theirs.

Formulation (the faster one in ``benchmarks/ntk.py`` on this stack): per-sample Jacobians
``vmap(jacrev)`` (one reverse pass per class and sample, batched by XLA), then one matrix
product per parameter leaf. For the traced kernel, the class axis is folded into the
contraction: ``K = sum_leaves J1.reshape(n1, C p) @ J2.reshape(n2, C p).T``. Contractions run at
``Precision.HIGHEST`` (full float32 even on GPUs that would default to TF32), because
downstream strategies read small eigenvalues off these Gram matrices.

Last layer in closed form: when the selected parameters are exactly a ``(d, C)`` kernel
and a ``(C,)`` bias that enter the logits as ``logits = h(x) @ W + s(x) b`` (the project's
``head``; stax' ``Dense`` readout with its NTK scaling), the class block is
``(h.h' + s s') I_C`` and no Jacobian is formed. ``h`` and ``s`` are read off a
``jax.linearize`` of the network w.r.t. ``(W, b)`` (``ceil(d / C)`` tangent directions, one
forward pass), and one extra random tangent checks that the logits really are affine in
``(W, b)`` that way. If the check fails (e.g. ``apply_fn`` returns log-probabilities), the
kernel falls back to autodiff, so the answer is exact either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from assljax._chunking import chunked_map
from assljax._compile import jit
from assljax._validation import UserInputError, check_chunk_size, is_traced

PyTree = Any
ParamFilter = Any  # None | "all" | "last_layer" | Callable[[tuple, Any], bool]
ApplyFn = Callable[[PyTree, jax.Array], jax.Array]

_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------- inputs


def _check_inputs(x1: Any, x2: Any = None) -> tuple[jax.Array, jax.Array | None]:
  """Validates a kernel's inputs and returns them as arrays.

  Raises ``ValueError`` for a missing batch axis, an empty batch, trailing shapes that
  differ between ``x1`` and ``x2``, or (for concrete arrays) NaN/infinity.
  """
  xs = [jnp.asarray(x1)] + ([] if x2 is None else [jnp.asarray(x2)])
  for name, x in zip(("x1", "x2"), xs):
    if x.ndim < 1:
      raise UserInputError(f"{name} must have a leading batch axis, got a scalar.")
    if x.shape[0] == 0:
      raise UserInputError(f"{name} is empty (batch size 0).")
  if len(xs) == 2 and xs[0].shape[1:] != xs[1].shape[1:]:
    raise UserInputError(
        f"x1 and x2 must share their per-sample shape, got {tuple(xs[0].shape[1:])} and "
        f"{tuple(xs[1].shape[1:])}.")
  for name, x in zip(("x1", "x2"), xs):
    if not is_traced(x) and jnp.issubdtype(x.dtype, jnp.inexact):
      if not bool(_all_finite(x)):
        raise UserInputError(f"{name} contains NaN or infinity.")
  return xs[0], (xs[1] if len(xs) == 2 else None)


@jax.jit
def _all_finite(x: jax.Array) -> jax.Array:
  # one program per shape; eagerly, isfinite and the reduction compile one by one
  return jnp.all(jnp.isfinite(x))


def _check_trace_axes(trace_axes: Any) -> bool:
  """True for the traced kernel ``(-1,)``/``(1,)``, False for the full one ``()``."""
  try:
    axes = tuple(int(a) for a in trace_axes)
  except TypeError:
    raise UserInputError(
        f"trace_axes must be (-1,) (trace over classes) or () (full class blocks), got "
        f"{trace_axes!r}.") from None
  if axes in ((-1,), (1,)):
    return True
  if axes == ():
    return False
  raise UserInputError(
      f"trace_axes must be (-1,) (trace over classes) or () (full class blocks), got "
      f"{trace_axes!r}; logits have shape (n, C).")


# ----------------------------------------------------------------------------- params


def _path_keys(path: Sequence[Any]) -> tuple:
  keys = []
  for entry in path:
    for attr in ("key", "idx", "name"):
      if hasattr(entry, attr):
        keys.append(getattr(entry, attr))
        break
    else:
      keys.append(str(entry))
  return tuple(keys)


def _has_leaves(tree: PyTree) -> bool:
  return bool(jax.tree_util.tree_leaves(tree))


def select_params(params: PyTree,
                  param_filter: ParamFilter = None) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
  """Splits ``params`` into the part a kernel differentiates and a way to put it back.

  Args:
    params: the pytree ``apply_fn`` takes.
    param_filter: ``None`` or ``"all"`` (everything); ``"last_layer"`` (``params["head"]``
      for project models; for list/tuple params such as stax', the last element that
      holds arrays); or a predicate ``(path, leaf) -> bool`` where ``path`` is the tuple
      of dict keys / sequence indices / attribute names leading to ``leaf``.

  Returns:
    ``(selected, rebuild)``: ``selected`` is a subtree (``"all"``, ``"last_layer"``) or a
    tuple of the selected leaves in flattening order (predicate); ``rebuild(new_selected)``
    returns ``params`` with the selected part replaced.

  Raises:
    ValueError: the filter selects nothing, is of an unknown kind, or ``"last_layer"``
      cannot tell which part of ``params`` is the last layer.
  """
  if not _has_leaves(params):
    raise UserInputError("params holds no arrays, so there is nothing to differentiate.")
  if param_filter is None or param_filter == "all":
    return params, lambda selected: selected
  if isinstance(param_filter, str) and param_filter == "last_layer":
    return _select_last_layer(params)
  if isinstance(param_filter, str) or not callable(param_filter):
    raise UserInputError(
        f"param_filter must be None, 'all', 'last_layer' or a predicate (path, leaf) -> "
        f"bool, got {param_filter!r}.")
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  chosen = [i for i, (path, leaf) in enumerate(flat) if param_filter(_path_keys(path), leaf)]
  if not chosen:
    raise UserInputError("param_filter selected no parameters; the kernel would be empty.")
  leaves = [leaf for _, leaf in flat]

  def rebuild(selected: tuple) -> PyTree:
    new = list(leaves)
    for i, value in zip(chosen, selected):
      new[i] = value
    return jax.tree_util.tree_unflatten(treedef, new)

  return tuple(leaves[i] for i in chosen), rebuild


def _select_last_layer(params: PyTree) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
  if isinstance(params, Mapping):
    if "head" not in params:
      raise UserInputError(
          "param_filter='last_layer' needs a 'head' entry in params (the final layer of "
          "project models); pass a predicate (path, leaf) -> bool instead.")
    if not _has_leaves(params["head"]):
      raise UserInputError("param_filter='last_layer' selected params['head'], which is empty.")

    def rebuild_dict(selected: PyTree) -> PyTree:
      new = dict(params)
      new["head"] = selected
      try:
        return type(params)(new)
      except TypeError:
        return new

    return params["head"], rebuild_dict
  if isinstance(params, (list, tuple)):
    nonempty = [i for i, p in enumerate(params) if _has_leaves(p)]
    last = nonempty[-1]  # params has leaves, so some element does

    def rebuild_seq(selected: PyTree) -> PyTree:
      new = list(params)
      new[last] = selected
      return type(params)(new) if not hasattr(params, "_fields") else type(params)(*new)

    return params[last], rebuild_seq
  raise UserInputError(
      f"param_filter='last_layer' cannot find the last layer in params of type "
      f"{type(params).__name__}; pass a predicate (path, leaf) -> bool instead.")


def _affine_head(selected: PyTree, num_classes: int) -> tuple[int, int] | None:
  """Leaf indices ``(kernel, bias)`` if ``selected`` is exactly a ``(d, C)`` kernel and a
  ``(C,)`` bias (or ``(1, ..., 1, C)``, as stax stores it); None otherwise or if ambiguous."""
  leaves = jax.tree_util.tree_leaves(selected)
  if len(leaves) != 2:
    return None
  shapes = [tuple(jnp.shape(leaf)) for leaf in leaves]

  def is_kernel(shape):
    return len(shape) == 2 and shape[1] == num_classes

  def is_bias(shape):
    return len(shape) >= 1 and shape[-1] == num_classes and math.prod(shape) == num_classes

  found = [(ik, 1 - ik) for ik in (0, 1) if is_kernel(shapes[ik]) and is_bias(shapes[1 - ik])]
  return found[0] if len(found) == 1 else None


def _shaped_like_head(selected: PyTree) -> bool:
  """Whether ``selected`` looks like a final dense layer for some number of logits."""
  leaves = jax.tree_util.tree_leaves(selected)
  return any(leaf.ndim == 2 and _affine_head(selected, int(leaf.shape[1])) is not None
             for leaf in leaves)


# ----------------------------------------------------------------------------- kernel


class _EmpiricalNTK:
  """Implementation behind :func:`empirical_ntk_fn` and ``Kernel.empirical``.

  ``kernel(params, x1, x2)``, ``diag(params, x)`` and ``head_features(params, x)``; see
  the module docstring for the formulation.
  """

  def __init__(self, apply_fn: ApplyFn, *, traced: bool, param_filter: ParamFilter,
               chunk_size: int | None):
    if not callable(apply_fn):
      raise UserInputError(f"apply_fn must be callable, got {type(apply_fn).__name__}.")
    self.apply_fn = apply_fn
    self.traced = traced
    self.param_filter = param_filter
    self.chunk_size = chunk_size
    self._structure_cache: dict = {}
    self._kernel_autodiff = jit(self._kernel_autodiff_impl, static_argnames="symmetric")
    self._kernel_cond = jit(self._kernel_cond_impl, static_argnames="symmetric")
    self._head_parts = jit(self._head_parts_impl)
    self._closed = jit(self._closed_kernel, static_argnums=2)
    self._diag_autodiff = jit(self._diag_autodiff_impl)
    self._diag_cond = jit(self._diag_cond_impl)

  # -- structure ------------------------------------------------------------------

  def structure(self, params: PyTree, x: jax.Array) -> tuple[int, tuple[int, int] | None]:
    """``(C, head)``: the number of logits and the closed-form head's leaf indices."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    key = (treedef, tuple((tuple(jnp.shape(l)), jnp.result_type(l)) for l in leaves),
           tuple(x.shape[1:]), x.dtype)
    if key not in self._structure_cache:
      selected, _ = select_params(params, self.param_filter)
      spec = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
      out = jax.eval_shape(self.apply_fn, params, spec)
      if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[0] != 1:
        raise UserInputError(
            "apply_fn(params, x) must return logits of shape (n, C); on one sample it "
            f"returned {getattr(out, 'shape', type(out).__name__)}.")
      num_classes = int(out.shape[1])
      self._structure_cache[key] = (num_classes, _affine_head(selected, num_classes))
    return self._structure_cache[key]

  # -- autodiff -------------------------------------------------------------------

  def _jacobian(self, selected: PyTree, rebuild: Callable, x: jax.Array) -> list[jax.Array]:
    """Per-sample Jacobians, one ``(n, C, p_leaf)`` array per selected leaf."""

    def single(sel, xi):
      return self.apply_fn(rebuild(sel), xi[None])[0]

    jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(selected, x)
    return [j.reshape(j.shape[0], j.shape[1], -1) for j in jax.tree_util.tree_leaves(jac)]

  def _contract(self, jac1: list[jax.Array], jac2: list[jax.Array]) -> jax.Array:
    if self.traced:
      return sum(jnp.dot(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1).T,
                         precision=_HIGHEST) for a, b in zip(jac1, jac2))
    n1, c = jac1[0].shape[:2]
    n2 = jac2[0].shape[0]
    flat = sum(jnp.dot(a.reshape(n1 * c, -1), b.reshape(n2 * c, -1).T, precision=_HIGHEST)
               for a, b in zip(jac1, jac2))
    return flat.reshape(n1, c, n2, c).transpose(0, 2, 1, 3)

  def _kernel_autodiff_impl(self, params, x1, x2, *, symmetric: bool):
    selected, rebuild = select_params(params, self.param_filter)

    def jac(x):
      return self._jacobian(selected, rebuild, x)

    if self.chunk_size is None:
      j1 = jac(x1)
      return self._contract(j1, j1 if symmetric else jac(x2))

    def rows(x1c):
      j1 = jac(x1c)
      # one row block: columns streamed in chunks of x2 (leading axis = x2's chunk)
      block = chunked_map(lambda x2c: jnp.swapaxes(self._contract(j1, jac(x2c)), 0, 1),
                          x2, chunk_size=self.chunk_size)
      return jnp.swapaxes(block, 0, 1)

    return chunked_map(rows, x1, chunk_size=self.chunk_size)

  def _diag_autodiff_impl(self, params, x):
    selected, rebuild = select_params(params, self.param_filter)

    def sq_norms(xc):
      return sum(jnp.sum(j * j, axis=(1, 2)) for j in self._jacobian(selected, rebuild, xc))

    return chunked_map(sq_norms, x, chunk_size=self.chunk_size)

  # -- closed-form last layer -----------------------------------------------------

  def _head_parts_impl(self, params, x):
    """``(g, ok)``: ``g = [h, s]`` ``(n, d + 1)`` and a per-sample check ``(n,)`` bool."""
    selected, rebuild = select_params(params, self.param_filter)
    leaves, treedef = jax.tree_util.tree_flatten(selected)
    ik, ib = _affine_head(selected, int(leaves[0].shape[-1]))  # both leaves end in C
    w, b = leaves[ik], leaves[ib]
    d, c = w.shape

    def parts(xc):
      def logits(wv, bv):
        new = list(leaves)
        new[ik], new[ib] = wv, bv
        return self.apply_fn(rebuild(jax.tree_util.tree_unflatten(treedef, new)), xc)

      _, lin = jax.linearize(logits, w, b)
      k = -(-d // c)
      # W tangent t: t[j, col] = 1 iff j == t * C + col, so output column col is
      # h[:, t * C + col]; then the bias direction e_0; then one random probe of both.
      eye = jnp.eye(k * c, dtype=w.dtype)[:d]
      tw = jnp.transpose(eye.reshape(d, k, c), (1, 0, 2))
      probe_key_w, probe_key_b = jax.random.split(jax.random.key(0))
      probe_w = jax.random.normal(probe_key_w, (d, c), w.dtype)
      probe_b = jax.random.normal(probe_key_b, (c,), b.dtype)
      tws = jnp.concatenate([tw, jnp.zeros((1, d, c), w.dtype), probe_w[None]], axis=0)
      e0 = jnp.zeros((1, c), b.dtype).at[0, 0].set(1)
      tbs = jnp.concatenate([jnp.zeros((k, c), b.dtype), e0, probe_b[None]], axis=0)
      out = jax.vmap(lin)(tws, tbs.reshape((k + 2,) + b.shape))  # (k + 2, n, C)
      n = xc.shape[0]
      h = jnp.transpose(out[:k], (1, 0, 2)).reshape(n, k * c)[:, :d]
      s = out[k, :, 0]
      expect = jnp.dot(h, probe_w, precision=_HIGHEST) + s[:, None] * probe_b[None, :]
      scale = (jnp.dot(jnp.abs(h), jnp.abs(probe_w), precision=_HIGHEST)
               + jnp.abs(s)[:, None] * jnp.abs(probe_b)[None, :])
      eps = float(jnp.finfo(out.dtype).eps)
      tol = 64 * (d + 1) * eps * scale + eps * (jnp.max(scale) + eps)
      ok = jnp.all(jnp.abs(out[k + 1] - expect) <= tol, axis=1)
      g = jnp.concatenate([h, s[:, None]], axis=1)
      return g, ok

    return chunked_map(parts, x, chunk_size=self.chunk_size)

  def _closed_kernel(self, g1, g2, num_classes: int) -> jax.Array:
    gram = jnp.dot(g1, g2.T, precision=_HIGHEST)
    if self.traced:
      return gram * jnp.asarray(num_classes, gram.dtype)
    eye = jnp.eye(num_classes, dtype=gram.dtype)
    return gram[:, :, None, None] * eye[None, None]

  def _kernel_cond_impl(self, params, x1, x2, *, symmetric: bool):
    g1, ok1 = self._head_parts_impl(params, x1)
    g2, ok2 = (g1, ok1) if symmetric else self._head_parts_impl(params, x2)
    num_classes = self.structure(params, x1)[0]
    return jax.lax.cond(
        jnp.all(ok1) & jnp.all(ok2),
        lambda: self._closed_kernel(g1, g2, num_classes),
        lambda: self._kernel_autodiff_impl(params, x1, x2, symmetric=symmetric))

  def _diag_cond_impl(self, params, x):
    g, ok = self._head_parts_impl(params, x)
    num_classes = self.structure(params, x)[0]
    return jax.lax.cond(jnp.all(ok),
                        lambda: jnp.sum(g * g, axis=1) * jnp.asarray(num_classes, g.dtype),
                        lambda: self._diag_autodiff_impl(params, x))

  # -- public entry points --------------------------------------------------------

  def kernel(self, params: PyTree, x1: Any, x2: Any = None) -> jax.Array:
    x1, x2 = _check_inputs(x1, x2)
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    num_classes, head = self.structure(params, x1)
    if head is not None:
      if is_traced(params, x1, x2):
        return self._kernel_cond(params, x1, x2, symmetric=symmetric)
      g1, ok1 = self._head_parts(params, x1)
      g2, ok2 = (g1, ok1) if symmetric else self._head_parts(params, x2)
      if bool(jnp.all(ok1)) and bool(jnp.all(ok2)):
        return self._closed(g1, g2, num_classes)
    return self._kernel_autodiff(params, x1, x2, symmetric=symmetric)

  def diag(self, params: PyTree, x: Any) -> jax.Array:
    """Traced self-kernel ``K[i, i]`` ``(n,)`` without forming the ``(n, n)`` kernel."""
    x, _ = _check_inputs(x)
    num_classes, head = self.structure(params, x)
    if head is not None:
      if is_traced(params, x):
        return self._diag_cond(params, x)
      g, ok = self._head_parts(params, x)
      if bool(jnp.all(ok)):
        return jnp.sum(g * g, axis=1) * jnp.asarray(num_classes, g.dtype)
    return self._diag_autodiff(params, x)

  def head_features(self, params: PyTree, x: Any) -> jax.Array:
    """``sqrt(C) [h, s]`` ``(n, d + 1)`` for a closed-form head; ValueError otherwise."""
    x, _ = _check_inputs(x)
    num_classes, head = self.structure(params, x)
    if head is None:
      raise UserInputError(
          "no finite feature map is available: the selected parameters are not exactly a "
          "(d, C) kernel and a (C,) bias of the final layer.")
    g, ok = self._head_parts(params, x)
    if not is_traced(params, x) and not bool(jnp.all(ok)):
      raise UserInputError(
          "no finite feature map is available: the logits are not affine in the selected "
          "(d, C) kernel and (C,) bias as logits = h @ W + s b.")
    return g * jnp.sqrt(jnp.asarray(num_classes, g.dtype))


def empirical_ntk_fn(apply_fn: ApplyFn, *, trace_axes: Sequence[int] = (-1,),
                     param_filter: ParamFilter = None,
                     chunk_size: int | None = None) -> Callable[..., jax.Array]:
  """Returns ``ntk_fn(params, x1, x2=None)``, the finite-width NTK of ``apply_fn``.

  Args:
    apply_fn: ``(params, x) -> logits`` ``(n, C)``, acting on each sample independently
      (eval-mode BatchNorm is fine; train-mode batch statistics are not).
    trace_axes: ``(-1,)`` for the class-traced kernel ``(n1, n2)`` (a sum over the ``C``
      classes), ``()`` for the full class blocks ``(n1, n2, C, C)``.
    param_filter: which parameters the kernel differentiates: ``None``/``"all"``,
      ``"last_layer"``, or a predicate ``(path, leaf) -> bool`` (see :func:`select_params`).
      A selection of exactly a ``(d, C)`` kernel and ``(C,)`` bias uses the closed form.
    chunk_size: if set, samples are processed ``chunk_size`` at a time (``lax.map``): at
      most one Jacobian chunk of ``x1`` and one of ``x2``, each of ``chunk_size`` samples,
      exist at once (column chunks are recomputed for every row chunk).

  Returns:
    ``ntk_fn(params, x1, x2=None)`` with ``x1: (n1, ...)``, ``x2: (n2, ...)`` (``None``
    means ``x1``, computing the Jacobians once) returning ``(n1, n2)`` or
    ``(n1, n2, C, C)`` in the parameters' dtype. It can be called inside ``jax.jit``.

  Raises:
    ValueError: for bad options here, and from ``ntk_fn`` for ``x1``/``x2`` with different
      per-sample shapes, non-finite inputs, or a filter that selects nothing.
  """
  impl = _EmpiricalNTK(apply_fn, traced=_check_trace_axes(trace_axes),
                       param_filter=param_filter, chunk_size=check_chunk_size(chunk_size))
  if not (param_filter is None or callable(param_filter)
          or (isinstance(param_filter, str) and param_filter in ("all", "last_layer"))):
    raise UserInputError(
        f"param_filter must be None, 'all', 'last_layer' or a predicate (path, leaf) -> "
        f"bool, got {param_filter!r}.")

  def ntk_fn(params: PyTree, x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    """Empirical NTK ``(n1, n2)`` (traced) or ``(n1, n2, C, C)``; see empirical_ntk_fn."""
    return impl.kernel(params, x1, x2)

  return ntk_fn
