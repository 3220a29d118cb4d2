"""NTK-spectrum strategies: NPC and CRC (registry names ``"npc"`` and ``"crc"``).

    strategy = assljax.acquisition.get("npc", num_candidates=None)
    strategy = assljax.acquisition.get("crc", group_size=None)
    idx = strategy(key, ctx, budget)          # (budget,) int32, distinct, unlabeled

Both score a set ``G`` of unlabeled samples by the spectrum of the NTK Gram matrix over
``labeled ∪ G``:

* **NPC** draws ``num_candidates`` (default: the number of unlabeled samples) random
  candidate batches of ``Q = budget`` distinct unlabeled samples, scores each by the
  smallest eigenvalue ``λ_min`` of the Gram over ``labeled ∪ batch`` and returns the
  best batch. A batch holding two copies of the same input (or a copy of a labeled
  input) has a singular Gram, ``λ_min = 0``, so NPC never picks duplicates as long as
  some candidate's Gram is non-singular (see below).
* **CRC** partitions the unlabeled pool into random disjoint groups of ``G =
  group_size`` samples (default ``max(1, Q // 10)``), scores each group by the smallest
  *positive* eigenvalue of the Gram over ``labeled ∪ group`` (above the relative
  tolerance of :func:`assljax.kernels.spectral.default_rtol`, see there) and returns the
  best groups. Groups are taken best first until ``Q`` samples are chosen; when ``G``
  does not divide ``Q`` the last group taken contributes only its first ``Q mod G``
  members (in the random order of the partition). The ``N_U mod G`` samples left over
  by the partition are not scored; they are used only when the full groups cannot cover
  ``Q`` (then every full group is taken and the rest is drawn from them in random
  order).

  CRC does *not* avoid duplicates, and that is faithful to the paper. Groups are scored
  independently against the labeled set only, never against each other, and the
  positive-only score ignores the zero eigenvalue a copy adds. With ``G = 1`` (any
  ``Q < 20``, e.g. ``Q = 10``) each sample is scored alone, so (i) the copies of one
  unlabeled input get the same score and are taken together, and (ii) a copy of a
  labeled input leaves the positive spectrum of the Gram at or above that of ``K_LL``
  (Weyl), while a new input can only lower the smallest eigenvalue (Cauchy
  interlacing): when ``K_LL`` is non-singular, copies of labeled inputs rank first.
  Measured on a pool where every image appears three times (``Q = 10``, ``G = 1``):
  CRC chose 17 duplicate copies in 40 picks, NPC none
  (``tests/acquisition/test_spectral_duplicates.py`` shows both on a tiny pool).
  Larger groups only avoid copies *within* a group (a group holding two copies has a
  zero eigenvalue, which the positive-only score also ignores).

Kernel: ``ctx.kernel``, an :class:`assljax.kernels.Kernel`, or by default the
class-traced last-layer empirical NTK in closed form, ``Kernel.empirical(apply_fn, params,
param_filter="last_layer", embed_fn=embed_fn)``: the Gram of the features
``last_layer_features(embed_fn(params, x), C) = sqrt(C) [h(x), 1]`` (no autodiff). The
strategies ask the kernel for its finite feature map (:meth:`Kernel.feature_map`) and
evaluate it once on the labeled set and on the pool samples that occur in some
candidate; a kernel without one (infinite width, all-parameter NTK) gives Gram blocks
instead (:meth:`Kernel.gram_blocks`: ``K_LL`` once, ``K_LU`` for the pool samples that
occur in some candidate, and the candidates' ``g x g`` blocks from kernel calls on
about 256 samples at a time; an unchunked all-parameter empirical NTK takes all three
from one call when the labeled set and those pool samples number at most 256 together,
so that each Jacobian is formed once; never an ``N x N`` matrix). Scores come from
:func:`assljax.kernels.batch_min_eigenvalues` with the candidates as index sets into the
pool, so the ``(m, l, g)`` cross blocks are never materialized; its dispatcher picks the
feature-space, bordered or dense solver (hyperparameter ``method``). Both strategies
work with an empty labeled set (then the score is the spectrum of the candidate block
alone) and with a freshly initialized network ("zero-shot").

When ``l + Q`` exceeds the rank of the kernel (``d + 1`` for the last-layer NTK of
``d``-dimensional features), every candidate's Gram is singular and NPC's plain score is
0 for all of them; NPC then returns its first candidate, a uniformly random batch. Pass
``positive_only=True`` to rank by the smallest positive eigenvalue instead.

NPC needs only the best of its ``m`` candidates, so with many candidates it first bounds
every score from above (one root-finder step and the Rayleigh quotient of the vector it
proposes, or for ``positive_only`` two steps certified by an inertia count) and solves
exactly only the candidates whose bound can reach the best exact score found
(:meth:`NPC.best`, :func:`assljax.kernels.argmax_min_eigenvalue`: one compiled program
for bounds and exact solves); the pick is the same as scoring every candidate exactly.
The kernel's features (or Gram blocks) are computed once per round for every pool
sample that occurs in some candidate.

Deterministic for a key: candidate batches come from Floyd's algorithm with
``jax.random`` keys folded from ``key``, CRC's partition from ``jax.random.permutation``,
and ties go to the first candidate. The solver is compiled per labeled-set size and
candidate count (so once per active-learning round; the gathered pool is padded to a
power of two to avoid more).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax import parallel
from assljax._validation import UserInputError, check_positive_int
from assljax.acquisition.base import (Context, StatelessStrategy, check_finite, check_request,
                                      register)

PyTree = Any

_EMBED_CHUNK = 256
_KERNEL_ROWS = 256   # samples per kernel call when building Gram blocks without features
_HOST_ROWS = 4096    # pool samples gathered per feature-map call
_SEARCH_MIN = 4096   # NPC candidates above which the argmax is searched with bounds first
# root-finder steps per bound: the plain value's bound adds the Rayleigh quotient of the
# step's next point, as tight after one step as the count-certified bound after two (the
# positive-only value's bound is the count's alone)
_BOUND_STEPS = {False: 1, True: 2}   # by positive_only
_REFINE_STEPS = 6    # ... per second bound of the contenders left (4-8 measured alike)


@functools.partial(jax.jit, static_argnames=("num_sets", "size", "n"))
def random_subsets(key: jax.Array, *, num_sets: int, size: int, n: int) -> jax.Array:
  """``num_sets`` independent uniformly random ``size``-subsets of ``range(n)``.

  Floyd's algorithm, vectorized over the sets: ``O(num_sets * size^2)`` work and no
  ``num_sets x n`` array.

  Returns:
    ``(num_sets, size)`` int32; each row holds distinct values in ``[0, n)``.
  """
  def step(i, sets):
    j = n - size + i
    t = jax.random.randint(jax.random.fold_in(key, i), (num_sets,), 0, j + 1)
    seen = jnp.any(sets == t[:, None], axis=1)
    return sets.at[:, i].set(jnp.where(seen, j, t).astype(jnp.int32))

  sets = jnp.full((num_sets, size), -1, jnp.int32)
  return jax.lax.fori_loop(0, size, step, sets)


def _kernel_for(ctx: Context, embed_chunk_size: int) -> Any:
  """``ctx.kernel``, or the closed-form last-layer NTK of ``ctx.embed_fn`` by default."""
  from assljax.kernels import Kernel

  if ctx.kernel is None:
    if ctx.embed_fn is None:
      raise UserInputError("npc/crc need ctx.embed_fn (penultimate features, for the default "
                           "last-layer NTK) or a ctx.kernel.")
    return Kernel.empirical(ctx.apply_fn, ctx.params, param_filter="last_layer",
                            embed_fn=ctx.embed_fn, num_classes=ctx.num_classes,
                            chunk_size=embed_chunk_size)
  if not isinstance(ctx.kernel, Kernel):
    raise UserInputError(f"ctx.kernel must be an assljax.kernels.Kernel, got "
                         f"{type(ctx.kernel).__name__}.")
  return ctx.kernel


def _map_rows(phi: Callable[[jax.Array], jax.Array], x: jax.Array,
              rows: np.ndarray) -> jax.Array:
  """``phi(x[rows])`` ``(len(rows), d)``, gathering ``_HOST_ROWS`` samples per call."""
  return jnp.concatenate([phi(_take_rows(x, rows[s:s + _HOST_ROWS]))
                          for s in range(0, len(rows), _HOST_ROWS)], axis=0)


@jax.jit
def _take_rows(x: jax.Array, rows: jax.Array) -> jax.Array:
  # jitted: indexing eagerly compiles its half-dozen operations one by one
  return jnp.take(x, rows, axis=0)


def _spectral_inputs(kernel: Any, x: jax.Array, labeled: np.ndarray,
                     groups: np.ndarray) -> dict[str, jax.Array]:
  """The solver inputs for the kernel's Gram over ``labeled ∪ group``, per group.

  Args:
    kernel: an :class:`assljax.kernels.Kernel`.
    x: ``(N, ...)`` the pool.
    labeled: ``(l,)`` pool rows of the labeled set (may be empty).
    groups: ``(m, g)`` pool rows of each group.

  Returns:
    keyword arguments of :func:`assljax.kernels.batch_min_eigenvalues`: features
    ``phi_L (l, d)``, ``phi_G (P, d)`` or Gram blocks ``K_LL (l, l)``, ``K_LG (l, P)``,
    ``K_GG (m, g, g)``, and ``index (m, g)`` into the ``P`` pool rows that occur in
    some group.
  """
  rows_u, inverse = np.unique(groups, return_inverse=True)
  index = inverse.reshape(groups.shape).astype(np.int32)
  # pad the gathered pool to a power of two (repeating a row no group points at twice)
  # so that the solver compiles once per size class, not once per draw
  padded = max(8, 1 << (len(rows_u) - 1).bit_length())
  rows_u = np.concatenate([rows_u, np.full(padded - len(rows_u), rows_u[0])])
  phi = kernel.feature_map()
  if phi is not None:
    phi_u = _map_rows(phi, x, rows_u)
    phi_l = (_map_rows(phi, x, labeled) if len(labeled)
             else jnp.zeros((0, phi_u.shape[1]), phi_u.dtype))
    return dict(phi_L=phi_l, phi_G=phi_u, index=index)
  K_LL, K_LU, K_GG = kernel.gram_blocks(x[jnp.asarray(labeled)], x[jnp.asarray(rows_u)],
                                        index, chunk_size=_KERNEL_ROWS)
  return dict(K_LL=K_LL, K_LG=K_LU, K_GG=K_GG, index=index)


class _SpectralStrategy(StatelessStrategy):

  def __init__(self, *, rtol: float | None, chunk_size: int | None, method: str,
               embed_chunk_size: int):
    if method not in ("auto", "dense", "bordered", "features"):
      raise UserInputError(f"method must be 'auto', 'dense', 'bordered' or 'features', "
                           f"got {method!r}.")
    if rtol is not None and (isinstance(rtol, bool) or not isinstance(rtol, numbers.Real)
                             or not rtol >= 0):
      raise UserInputError(f"rtol must be a non-negative number or None, got {rtol!r}.")
    self.rtol = rtol
    self.chunk_size = check_positive_int("chunk_size", chunk_size, allow_none=True)
    self.method = method
    self.embed_chunk_size = check_positive_int("embed_chunk_size", embed_chunk_size)

  def scores(self, ctx: Context, groups: np.ndarray, *, positive_only: bool,
             bound_steps: int | None = None) -> np.ndarray:
    """``(m,)`` smallest (positive) eigenvalue of the Gram over labeled ∪ each group.

    ``groups``: ``(m, g)`` pool indices. The kernel is chosen as in the module doc. With
    ``bound_steps``, certified upper bounds instead
    (:func:`assljax.kernels.batch_min_eigenvalues`).
    """
    from assljax.kernels import batch_min_eigenvalues

    out = batch_min_eigenvalues(**self._inputs(ctx, groups), positive_only=positive_only,
                                rtol=self.rtol, chunk_size=self.chunk_size,
                                method=self.method, bound_steps=bound_steps)
    out = parallel.to_host(out)   # every process gets all scores (multi-host meshes)
    check_finite(out, "spectral scores")
    return out

  def _inputs(self, ctx: Context, groups: np.ndarray) -> dict[str, jax.Array]:
    kernel = _kernel_for(ctx, self.embed_chunk_size)
    return _spectral_inputs(kernel, ctx.x, ctx.labeled_indices(), np.asarray(groups))


@register("npc")
class NPC(_SpectralStrategy):
  """Best of ``num_candidates`` random batches by ``λ_min`` of the NTK Gram (module doc).

  Args:
    num_candidates: ``m``, random candidate batches scored per round; None (default)
      uses the number of unlabeled samples.
    positive_only: rank by the smallest eigenvalue above the relative tolerance instead
      of the smallest eigenvalue (False, NPC's criterion, by default).
    rtol: positive-only tolerance (None: :func:`assljax.kernels.spectral.default_rtol`).
    chunk_size: candidates per solver chunk (bounds memory).
    method: spectral solver, ``"auto"`` (cheapest exact), ``"dense"``, ``"bordered"`` or
      ``"features"``.
    embed_chunk_size: pool samples embedded per chunk.
  """

  def __init__(self, *, num_candidates: int | None = None, positive_only: bool = False,
               rtol: float | None = None, chunk_size: int | None = 256,
               method: str = "auto", embed_chunk_size: int = _EMBED_CHUNK):
    super().__init__(rtol=rtol, chunk_size=chunk_size, method=method,
                     embed_chunk_size=embed_chunk_size)
    self.num_candidates = check_positive_int("num_candidates", num_candidates, allow_none=True)
    self.positive_only = bool(positive_only)

  def candidates(self, key: jax.Array, ctx: Context, budget: int) -> np.ndarray:
    """The ``(m, budget)`` candidate batches, as pool indices, this key draws."""
    check_request(ctx, budget)
    unlabeled = ctx.unlabeled_indices()
    m = self.num_candidates or len(unlabeled)
    pos = random_subsets(key, num_sets=m, size=budget, n=len(unlabeled))
    return unlabeled[np.asarray(pos)]

  def best(self, ctx: Context, batches: np.ndarray) -> int:
    """Row of ``batches`` with the largest score, the first among equals: ``np.argmax`` of
    :meth:`scores`, without solving every candidate exactly when there are many.

    Above ``_SEARCH_MIN`` candidates, :func:`assljax.kernels.argmax_min_eigenvalue`
    bounds every candidate from above (``_BOUND_STEPS`` root-finder steps, certified by
    an inertia count or a Rayleigh quotient), solves the block of highest bounds
    exactly, bounds the candidates that can still reach its best value again
    (``_REFINE_STEPS``) and solves exactly only blocks of the highest of those, until no
    bound left can win or tie: the same pick, one compiled program per round.
    """
    if len(batches) <= _SEARCH_MIN:
      return int(np.argmax(self.scores(ctx, batches, positive_only=self.positive_only)))
    from assljax.kernels import argmax_min_eigenvalue

    found = argmax_min_eigenvalue(**self._inputs(ctx, batches),
                                  positive_only=self.positive_only, rtol=self.rtol,
                                  chunk_size=self.chunk_size, method=self.method,
                                  bound_steps=_BOUND_STEPS[self.positive_only],
                                  refine_steps=_REFINE_STEPS)
    check_finite(np.asarray(found.value), "spectral scores")
    return int(found.index)

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    batches = self.candidates(key, ctx, budget)
    return jnp.asarray(batches[self.best(ctx, batches)], jnp.int32)


@register("crc")
class CRC(_SpectralStrategy):
  """Best random disjoint groups by smallest positive NTK eigenvalue (module doc).

  Not duplicate-aware (faithful to the paper): with ``G = 1`` copies of labeled or of
  other chosen inputs can be taken (module doc); NPC never takes them.

  Args:
    group_size: ``G``; None (default) uses ``max(1, budget // 10)``.
    rtol: positive-only tolerance (None: :func:`assljax.kernels.spectral.default_rtol`).
    chunk_size: groups per solver chunk (bounds memory).
    method: spectral solver, ``"auto"``, ``"dense"``, ``"bordered"`` or ``"features"``.
    embed_chunk_size: pool samples embedded per chunk.
  """

  def __init__(self, *, group_size: int | None = None, rtol: float | None = None,
               chunk_size: int | None = 256, method: str = "auto",
               embed_chunk_size: int = _EMBED_CHUNK):
    super().__init__(rtol=rtol, chunk_size=chunk_size, method=method,
                     embed_chunk_size=embed_chunk_size)
    self.group_size = check_positive_int("group_size", group_size, allow_none=True)

  def groups(self, key: jax.Array, ctx: Context, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """``(groups (n_groups, G), leftover)`` as pool indices for this key."""
    check_request(ctx, budget)
    unlabeled = ctx.unlabeled_indices()
    G = self.group_size or max(1, budget // 10)
    perm = unlabeled[np.asarray(jax.random.permutation(key, len(unlabeled)))]
    n_full = len(perm) // G
    return perm[:n_full * G].reshape(n_full, G), perm[n_full * G:]

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    groups, leftover = self.groups(key, ctx, budget)
    n_full, G = groups.shape
    if n_full * G <= budget:  # every full group is needed anyway
      chosen = np.concatenate([groups.reshape(-1), leftover[:budget - n_full * G]])
      return jnp.asarray(chosen, jnp.int32)
    scores = self.scores(ctx, groups, positive_only=True)
    order = np.argsort(-scores, kind="stable")
    need = -(-budget // G)
    chosen = groups[order[:need]].reshape(-1)[:budget]
    return jnp.asarray(chosen, jnp.int32)
