"""One interface for finite- and infinite-width kernels (DESIGN §3).

    kernel = Kernel.empirical(apply_fn, params, param_filter="last_layer", embed_fn=embed_fn)
    kernel = Kernel.infinite("wrn-28-2", num_classes=10)
    kernel = Kernel.from_features(lambda x: phi(x))
    K = kernel(x1, x2)          # (n1, n2) float32, traced over classes
    d = kernel.diag(x)          # (n,)  = diag(kernel(x, x)) without the (n, n) matrix
    phi = kernel.feature_map()  # x (n, ...) -> (n, d) with phi(x1) @ phi(x2).T == kernel(x1, x2),
                                # or None when the kernel has no finite feature map
    K_LL, K_LU, K_GG = kernel.gram_blocks(x_labeled, x_pool, index)
                                # (l, l), (l, N), (m, g, g): Grams over labeled ∪ x_pool[index[i]]

Swapping finite for infinite width is one argument: every kernel takes raw inputs as the
models do and returns the class-*summed* trace (``C`` times the per-class kernel).

Strategies that need a Gram over ``labeled ∪ candidates`` (NPC, CRC) ask the kernel for
:meth:`Kernel.feature_map` first (a rank-``d`` Gram is cheapest in feature space) and
fall back to :meth:`Kernel.gram_blocks`; they never look inside the kernel.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax._chunking import chunked_map
from assljax._validation import UserInputError, check_chunk_size, check_positive_int
from assljax.kernels.empirical import _check_inputs, _EmpiricalNTK
from assljax.kernels.empirical import _shaped_like_head as _selection_like_head
from assljax.kernels.empirical import select_params
from assljax.kernels.last_layer import _embedded_features

PyTree = Any
_HIGHEST = jax.lax.Precision.HIGHEST
_POOL_COLUMNS = 4096  # pool samples per kernel call for K_LU in Kernel.gram_blocks


def _f32(a: jax.Array) -> jax.Array:
  return a.astype(jnp.float32)


def _check_feature_output(phi: Any, n: int) -> jax.Array:
  if not hasattr(phi, "ndim") or phi.ndim != 2 or phi.shape[0] != n:
    raise UserInputError(f"feature_fn must map (n, ...) inputs to (n, d) features; for n = {n} "
                         f"it returned shape {getattr(phi, 'shape', type(phi).__name__)}.")
  return phi


class Kernel:
  """A positive semi-definite kernel on raw inputs; build it with a classmethod.

  Attributes:
    kind: ``"empirical"``, ``"infinite"`` or ``"features"``.
    has_features: whether :meth:`features` returns a finite feature map (last-layer
      empirical kernels and :meth:`from_features` kernels), i.e. whether
      :meth:`feature_map` is not None.

  What strategies ask of a kernel: :meth:`__call__` and :meth:`diag` (every kernel),
  :meth:`feature_map` (None when there is no finite map) and :meth:`gram_blocks` (every
  kernel; the Grams over a labeled set joined with each of many candidate groups).
  """

  def __init__(self, *, kind: str, description: str,
               kernel_fn: Callable[[jax.Array, jax.Array | None], jax.Array],
               diag_fn: Callable[[jax.Array], jax.Array],
               features_fn: Callable[[jax.Array], jax.Array] | None = None,
               no_features_reason: str = "", per_sample_work: bool = False):
    self.kind = kind
    # True when one symmetric call does per-sample work once (unchunked Jacobians) and
    # the pairwise part is a cheap contraction: gram_blocks then makes one call.
    self._per_sample_work = per_sample_work
    self._description = description
    self._kernel_fn = kernel_fn
    self._diag_fn = diag_fn
    self._features_fn = features_fn
    self._no_features_reason = no_features_reason

  # -- constructors ---------------------------------------------------------------

  @classmethod
  def empirical(cls, apply_fn: Callable[[PyTree, jax.Array], jax.Array], params: PyTree, *,
                param_filter: Any = "all",
                embed_fn: Callable[[PyTree, jax.Array], jax.Array] | None = None,
                num_classes: int | None = None, chunk_size: int | None = None) -> "Kernel":
    """Finite-width NTK of ``apply_fn`` at ``params`` (see ``empirical_ntk_fn``).

    Args:
      apply_fn: ``(params, x) -> logits (n, C)``, eval mode.
      params: the parameters to differentiate (bound into the kernel).
      param_filter: ``"all"``, ``"last_layer"`` or a predicate ``(path, leaf) -> bool``.
      embed_fn: ``(params, x) -> h (n, d)`` with ``logits = h @ W + b``; with
        ``param_filter="last_layer"`` the kernel is the closed form
        ``last_layer_features(h, C)`` Gram and needs no autodiff. Ignored otherwise.
      num_classes: ``C``; inferred from ``params["head"]["bias"]`` or from ``apply_fn``'s
        output when None. On the autodiff paths a value that contradicts ``apply_fn``
        raises ``ValueError``; the ``embed_fn`` path trusts it.
      chunk_size: samples per chunk for Jacobians / embeddings (bounds memory).

    Returns:
      A :class:`Kernel` with ``has_features`` True for the last-layer closed form.
    """
    if not callable(apply_fn):
      raise UserInputError(f"apply_fn must be callable, got {type(apply_fn).__name__}.")
    check_positive_int("num_classes", num_classes, allow_none=True)
    chunk_size = check_chunk_size(chunk_size)
    select_params(params, param_filter)  # validates the filter now (empty -> ValueError)
    impl = _EmpiricalNTK(apply_fn, traced=True, param_filter=param_filter,
                         chunk_size=chunk_size)

    def classes(x: jax.Array) -> int:
      c = impl.structure(params, x)[0]
      if num_classes is not None and num_classes != c:
        raise UserInputError(f"num_classes={num_classes} but apply_fn returns {c} logits.")
      return c

    filter_name = param_filter if isinstance(param_filter, str) else "predicate"
    description = f"empirical NTK ({filter_name} parameters)"
    last_layer = isinstance(param_filter, str) and param_filter == "last_layer"

    if last_layer and embed_fn is not None:
      if not callable(embed_fn):
        raise UserInputError(f"embed_fn must be callable, got {type(embed_fn).__name__}.")
      head = params.get("head") if isinstance(params, dict) else None
      bias = head.get("bias") if isinstance(head, dict) else None
      known = num_classes if num_classes is not None else (
          int(bias.shape[0]) if getattr(bias, "ndim", 0) == 1 else None)

      def embed_features(x: jax.Array) -> jax.Array:
        c = known if known is not None else classes(x)
        return _embedded_features(embed_fn, params, x, num_classes=c, chunk_size=chunk_size)

      return cls._from_feature_fn(embed_features, kind="empirical",
                                  description=description + ", closed form via embed_fn")

    def kernel_fn(x1, x2):
      classes(x1)
      return impl.kernel(params, x1, x2)

    def diag_fn(x):
      classes(x)
      return impl.diag(params, x)

    def head_features(x):
      classes(x)
      return impl.head_features(params, x)

    reason = ("no finite feature map is available for the empirical NTK of "
              f"{filter_name!r} parameters; use param_filter='last_layer' (or nystrom_features).")
    features_fn = head_features if _shaped_like_head(params, param_filter) else None
    return cls(kind="empirical", description=description, kernel_fn=kernel_fn,
               diag_fn=diag_fn, features_fn=features_fn, no_features_reason=reason,
               per_sample_work=chunk_size is None)

  @classmethod
  def infinite(cls, architecture: Any, *, num_classes: int = 1, chunk_size: int | None = None,
               **options: Any) -> "Kernel":
    """Infinite-width NTK of a stax twin or triple (see ``infinite_ntk_fn``).

    Args:
      architecture: ``"mlp"``, ``"cnn"``, ``"wrn"``, ``"wrn-28-2"``, ``"wrn-28-8"`` or an
        ``(init_fn, apply_fn, kernel_fn)`` stax triple.
      num_classes: ``C``; the kernel is ``C`` times the per-channel NTK.
      chunk_size: block size for the kernel (bounds memory).
      **options: twin options and ``input_mean``/``input_std``.
    """
    from assljax.kernels.infinite import _InfiniteNTK

    impl = _InfiniteNTK(architecture, num_classes=num_classes, chunk_size=chunk_size,
                        options=options)
    return cls(kind="infinite", description=f"infinite-width NTK ({impl.description})",
               kernel_fn=impl.kernel, diag_fn=impl.diag,
               no_features_reason=("no finite feature map is available for an infinite-width "
                                   "NTK; use nystrom_features(kernel, landmarks)."))

  @classmethod
  def from_features(cls, feature_fn: Callable[[jax.Array], jax.Array], *,
                    chunk_size: int | None = None) -> "Kernel":
    """Linear kernel ``phi(x1) @ phi(x2).T`` of an explicit feature map.

    Args:
      feature_fn: ``x (n, ...) -> phi (n, d)``, jittable.
      chunk_size: samples per call of ``feature_fn`` (bounds memory).
    """
    if not callable(feature_fn):
      raise UserInputError(f"feature_fn must be callable, got {type(feature_fn).__name__}.")
    chunk_size = check_chunk_size(chunk_size)

    def features(x: jax.Array) -> jax.Array:
      phi = chunked_map(feature_fn, x, chunk_size=chunk_size)
      return _check_feature_output(phi, x.shape[0])

    return cls._from_feature_fn(features, kind="features", description="explicit features")

  @classmethod
  def _from_feature_fn(cls, features: Callable[[jax.Array], jax.Array], *, kind: str,
                       description: str) -> "Kernel":
    def kernel_fn(x1, x2):
      phi1 = features(x1)
      phi2 = phi1 if x2 is None else features(x2)
      return jnp.dot(phi1, phi2.T, precision=_HIGHEST)

    def diag_fn(x):
      phi = features(x)
      return jnp.sum(phi * phi, axis=1)

    return cls(kind=kind, description=description, kernel_fn=kernel_fn, diag_fn=diag_fn,
               features_fn=features)

  # -- API -------------------------------------------------------------------------

  def __call__(self, x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    """Kernel matrix ``(n1, n2)`` float32 for ``x1: (n1, ...)``, ``x2: (n2, ...)``.

    ``x2=None`` means ``x1`` (and computes shared work once).
    """
    x1, x2 = _check_inputs(x1, x2)
    return _f32(self._kernel_fn(x1, x2))

  def diag(self, x: jax.Array) -> jax.Array:
    """``k(x_i, x_i)`` ``(n,)`` float32, without forming the ``(n, n)`` matrix."""
    x, _ = _check_inputs(x)
    return _f32(self._diag_fn(x))

  @property
  def has_features(self) -> bool:
    return self._features_fn is not None

  def features(self, x: jax.Array) -> jax.Array:
    """Finite feature map ``(n, d)`` float32 with ``features(x1) @ features(x2).T ==
    kernel(x1, x2)``; ``ValueError`` when the kernel has none (see ``has_features``)."""
    if self._features_fn is None:
      raise UserInputError(self._no_features_reason)
    x, _ = _check_inputs(x)
    return _f32(self._features_fn(x))

  def feature_map(self) -> Callable[[jax.Array], jax.Array] | None:
    """The finite feature map, or None when the kernel has none.

    Returns:
      ``phi(x: (n, ...)) -> (n, d)`` float32 with ``phi(x1) @ phi(x2).T == kernel(x1,
      x2)`` (it is :meth:`features`), for last-layer empirical kernels and
      :meth:`from_features` kernels; None for infinite-width kernels and empirical NTKs
      of more than a final dense layer (use :meth:`gram_blocks`, or
      ``nystrom_features`` for an approximate map). A last-layer kernel built without
      ``embed_fn`` reads its features off the network, and ``phi`` raises ``ValueError``
      on inputs where the logits turn out not to be affine in the head.
    """
    return self.features if self._features_fn is not None else None

  def gram_blocks(self, x_labeled: jax.Array, x_pool: jax.Array, index: Any, *,
                  chunk_size: int = 256) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gram blocks over ``labeled ∪ x_pool[index[i]]`` for every group ``i``, no ``N x N``.

    Every kernel has them, from kernel calls only: ``K_LL`` in one call, ``K_LU`` over
    4096 pool samples per call, and each group's ``g x g`` block from calls on about
    ``chunk_size`` samples (several groups at once, keeping the diagonal blocks). An
    unchunked all-parameter empirical NTK, whose cost is the per-sample Jacobians, takes
    all three from one call on ``labeled ∪ x_pool`` when ``l + N <= chunk_size``: every
    Jacobian is formed once instead of two to three times.
    They are the index-set form that ``assljax.kernels.batch_min_eigenvalues(K_LL, K_LU,
    K_GG, index=index)`` scores.

    Args:
      x_labeled: ``(l, ...)`` labeled inputs; ``l = 0`` is allowed.
      x_pool: ``(N, ...)`` inputs the groups are drawn from.
      index: ``(m, g)`` ints in ``[0, N)``: group ``i`` is ``x_pool[index[i]]``.
      chunk_size: samples per kernel call for the group blocks.

    Returns:
      ``K_LL (l, l)``, ``K_LU (l, N)`` and ``K_GG (m, g, g)``, float32.
    """
    x_pool, _ = _check_inputs(x_pool)
    x_labeled = jnp.asarray(x_labeled)
    if x_labeled.ndim < 1 or x_labeled.shape[1:] != x_pool.shape[1:]:
      raise UserInputError(f"x_labeled must be (l, {', '.join(map(str, x_pool.shape[1:]))}) like "
                           f"x_pool, got shape {tuple(x_labeled.shape)}.")
    index = np.asarray(index)
    if index.ndim != 2 or index.shape[1] == 0 or not np.issubdtype(index.dtype, np.integer):
      raise UserInputError(f"index must be (m, g) integers with g >= 1, got shape "
                           f"{tuple(index.shape)} and dtype {index.dtype}.")
    n = x_pool.shape[0]
    if index.size and (index.min() < 0 or index.max() >= n):
      raise UserInputError(f"index entries must lie in [0, {n}), found "
                       f"[{int(index.min())}, {int(index.max())}].")
    check_positive_int("chunk_size", chunk_size)
    l = x_labeled.shape[0]
    # One call computes (l + N)^2 pairs; within chunk_size samples that is no more than
    # one K_GG call's, while every Jacobian is formed once (a larger call would trade
    # Jacobians for many more pairs, and exceed the caller's bound on a call's samples).
    if self._per_sample_work and l + n <= chunk_size:
      full = self(jnp.concatenate([x_labeled.astype(x_pool.dtype), x_pool]), None)
      return full[:l, :l], full[:l, l:], _index_blocks(full[l:, l:], jnp.asarray(index))
    if l == 0:
      K_LL, K_LU = jnp.zeros((0, 0), jnp.float32), jnp.zeros((0, n), jnp.float32)
    else:
      K_LL = self(x_labeled, None)
      K_LU = jnp.concatenate([self(x_labeled, x_pool[s:s + _POOL_COLUMNS])
                              for s in range(0, n, _POOL_COLUMNS)], axis=1)
    m, g = index.shape
    per = max(1, int(chunk_size) // g)
    blocks = []
    for s in range(0, m, per):
      rows = index[s:s + per]
      c = rows.shape[0]
      K = self(x_pool[jnp.asarray(rows.reshape(-1))], None).reshape(c, g, c, g)
      ar = jnp.arange(c)
      blocks.append(K[ar, :, ar, :])
    K_GG = (jnp.concatenate(blocks, axis=0) if blocks
            else jnp.zeros((0, g, g), jnp.float32))
    return K_LL, K_LU, K_GG

  def __repr__(self) -> str:
    return f"Kernel({self._description})"


@jax.jit
def _index_blocks(gram: jax.Array, index: jax.Array) -> jax.Array:
  """``gram[index[i]][:, index[i]]`` for every row of ``index`` ``(m, g)``: ``(m, g, g)``."""
  return gram[index[:, :, None], index[:, None, :]]


def _shaped_like_head(params: PyTree, param_filter: Any) -> bool:
  """Whether the filter selects a (d, C) kernel and a (C,) bias (checked on data later)."""
  try:
    selected, _ = select_params(params, param_filter)
  except ValueError:
    return False
  return _selection_like_head(selected)
