"""Bilevel coreset with the Nyström proxy (Borsos, Tagliasacchi & Krause, ICASSP 2021;
Borsos, Mutný & Krause, "Coresets via bilevel optimization", NeurIPS 2020).

    strategy = assljax.acquisition.get("bilevel", landmarks=256, augmentations=8)
    idx = strategy(key, ctx, budget)

Proxy model. Nyström features ``z_x = k(x, U) K_UU^{+1/2}`` (``m`` landmarks ``U`` drawn
uniformly from the pool) of an NTK: ``Kernel.infinite`` of the stax twin of
``architecture`` by default ("mlp" for flat inputs, "wrn-28-2" for images: the paper's
Wide ResNet twin with a flatten readout, whose kernel stays on the spatial diagonal --
the "cnn" twin average-pools and costs ~1000x more per pair), or any
:class:`assljax.kernels.Kernel` given as the ``kernel`` hyperparameter (which wins) or as
``ctx.kernel``. On the features, a multinomial logistic regression ``theta = (W, b)``.

Bilevel problem. Inner: ``theta*(w) = argmin_theta F(theta, w)`` with

    F = (1 / n_F) sum_i w_i CE(z_i theta, t_i) + (reg / 2) ||theta||^2

over labeled samples (true one-hot targets) and chosen samples (soft pseudo-labels),
each present as ``augmentations`` weakly augmented copies
(:func:`assljax.ssl.augment.weak_augment`; inputs that are not ``(n, H, W, C)`` images
are used as they are), ``n_F`` the number of rows. Outer:
``G(theta) = mean_{x in O} CE(z_x theta, ytilde_x)`` over ``O``, ``outer_size`` unlabeled
samples drawn uniformly (all of them by default), with ``ytilde = softmax(ctx.apply_fn)``
the semi-supervised model's soft pseudo-labels.

Greedy forward selection. By the implicit function theorem the derivative of the outer
loss with respect to the weight of a candidate ``x`` (weight 0 now) is

    dG / dw_x = -(1 / n_F) grad_theta CE(z_x theta*, ytilde_x)^T H^{-1} grad_theta G(theta*),

with ``H`` the Hessian of ``F`` at ``theta*``. Each step solves the inner problem (optax
L-BFGS, warm-started), computes ``v = H^{-1} grad G`` by conjugate gradients
(``jax.scipy.sparse.linalg.cg`` on Hessian-vector products), scores every candidate in
``O`` by ``grad CE(x, ytilde_x)^T v`` (closed form for the linear model) and adds the
highest-scoring one (the most negative implicit gradient) with its augmented copies.
``1 - random_fraction`` of the budget is chosen this way; the rest uniformly at random
among the remaining unlabeled samples.

An empty labeled set works (the first inner problem has only the regularizer, so
``theta* = 0``). Memory: ``|O| x m`` features plus ``(l + budget) x copies x m`` training
rows; the pool itself is streamed through the kernel ``chunk_size`` rows at a time.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax.acquisition.base import Context, StatelessStrategy, check_finite, register
from assljax.acquisition.uncertainty import check_chunk_size, pool_logits

PyTree = Any


# ----------------------------------------------------------------------------------------
# The logistic-regression proxy and its implicit gradients.


def soft_cross_entropy(theta: PyTree, z: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-row ``CE(z theta, t) = -sum_c t_c log softmax(z W + b)_c``, ``(n,)``.

  Args:
    theta: ``{"kernel": (m, C), "bias": (C,)}``.
    z: ``(n, m)`` features.
    targets: ``(n, C)`` probability vectors.
  """
  logits = z @ theta["kernel"] + theta["bias"][None, :]
  return -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def inner_objective(theta: PyTree, z: jax.Array, targets: jax.Array, weights: jax.Array, *,
                    reg: float, normalizer: float | jax.Array) -> jax.Array:
  """``F = sum_i w_i CE_i / normalizer + reg / 2 ||theta||^2`` (scalar)."""
  data = jnp.sum(weights * soft_cross_entropy(theta, z, targets)) / normalizer
  sq = sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(theta))
  return data + 0.5 * reg * sq


def outer_objective(theta: PyTree, z: jax.Array, targets: jax.Array) -> jax.Array:
  """``G = mean_i CE(z_i theta, t_i)`` (scalar)."""
  return jnp.mean(soft_cross_entropy(theta, z, targets))


def solve_inner(theta0: PyTree, z: jax.Array, targets: jax.Array, weights: jax.Array, *,
                reg: float, normalizer: float | jax.Array, max_steps: int = 200,
                tol: float = 1e-6) -> PyTree:
  """Minimizes :func:`inner_objective` from ``theta0`` with optax L-BFGS.

  Stops after ``max_steps`` iterations or when the gradient norm drops below ``tol``.
  Jittable (``max_steps`` is a loop bound).
  """
  import optax

  def f(theta):
    return inner_objective(theta, z, targets, weights, reg=reg, normalizer=normalizer)

  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(f)

  def cond(carry):
    _, _, step, gnorm = carry
    return (step < max_steps) & (gnorm > tol)

  def body(carry):
    theta, state, step, _ = carry
    value, grad = value_and_grad(theta, state=state)
    updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=f)
    return (optax.apply_updates(theta, updates), state, step + 1,
            optax.tree_utils.tree_norm(grad))

  dtype = jax.tree_util.tree_leaves(theta0)[0].dtype
  init = (theta0, opt.init(theta0), jnp.asarray(0), jnp.asarray(jnp.inf, dtype))
  return jax.lax.while_loop(cond, body, init)[0]


def inverse_hvp(theta: PyTree, z: jax.Array, targets: jax.Array, weights: jax.Array,
                v: PyTree, *, reg: float, normalizer: float | jax.Array, cg_steps: int = 50,
                tol: float = 1e-6) -> PyTree:
  """``H^{-1} v`` with ``H`` the Hessian of :func:`inner_objective` at ``theta``, by CG.

  Hessian-vector products are forward-over-reverse (``jvp`` of ``grad``); ``H`` is
  positive definite for ``reg > 0`` (the objective is convex plus the ridge).
  """
  grad_f = jax.grad(
      lambda t: inner_objective(t, z, targets, weights, reg=reg, normalizer=normalizer))

  def hvp(u):
    return jax.jvp(grad_f, (theta,), (u,))[1]

  return jax.scipy.sparse.linalg.cg(hvp, v, tol=tol, maxiter=cg_steps)[0]


def candidate_scores(theta: PyTree, v: PyTree, z: jax.Array, targets: jax.Array) -> jax.Array:
  """``grad_theta CE(z_i theta, t_i)^T v`` ``(n,)`` in closed form for the linear model.

  ``grad_W CE = z_i (p_i - t_i)^T`` and ``grad_b CE = p_i - t_i``, so the score is
  ``sum_c (p_i - t_i)_c (z_i V_W + v_b)_c``.
  """
  logits = z @ theta["kernel"] + theta["bias"][None, :]
  resid = jax.nn.softmax(logits, axis=-1) - targets
  return jnp.sum(resid * (z @ v["kernel"] + v["bias"][None, :]), axis=-1)


def implicit_weight_gradients(theta: PyTree, z_train: jax.Array, t_train: jax.Array,
                              w_train: jax.Array, z_cand: jax.Array, t_cand: jax.Array,
                              z_outer: jax.Array, t_outer: jax.Array, *, reg: float,
                              normalizer: float, cg_steps: int = 50,
                              tol: float = 1e-6) -> jax.Array:
  """``dG / dw_x`` ``(n_cand,)`` for candidates added to the inner problem with weight 0.

  ``theta`` must minimize the inner objective on ``(z_train, t_train, w_train)``. The
  candidates enter ``F`` as ``w_x CE(z_x theta, t_x) / normalizer``.
  """
  g = jax.grad(outer_objective)(theta, z_outer, t_outer)
  v = inverse_hvp(theta, z_train, t_train, w_train, g, reg=reg, normalizer=normalizer,
                  cg_steps=cg_steps, tol=tol)
  return -candidate_scores(theta, v, z_cand, t_cand) / normalizer


@functools.partial(jax.jit, static_argnames=("inner_steps", "cg_steps"))
def _greedy_step(theta, z_train, t_train, w_train, z_outer, t_outer, taken, *, reg,
                 inner_steps, inner_tol, cg_steps, cg_tol):
  """One greedy step: solve the inner problem, score the outer set, pick the best.

  Returns ``(theta*, best row of z_outer)``; rows with ``taken`` are skipped.
  """
  normalizer = jnp.maximum(jnp.sum(w_train), 1.0)
  theta = solve_inner(theta, z_train, t_train, w_train, reg=reg, normalizer=normalizer,
                      max_steps=inner_steps, tol=inner_tol)
  g = jax.grad(outer_objective)(theta, z_outer, t_outer)
  v = inverse_hvp(theta, z_train, t_train, w_train, g, reg=reg, normalizer=normalizer,
                  cg_steps=cg_steps, tol=cg_tol)
  scores = candidate_scores(theta, v, z_outer, t_outer)
  scores = jnp.where(taken | ~jnp.isfinite(scores), -jnp.inf, scores)
  return theta, jnp.argmax(scores).astype(jnp.int32)


# ----------------------------------------------------------------------------------------
# Features.


def _feature_rows(phi: Callable, x: jax.Array, rows: np.ndarray,
                  chunk_size: int | None) -> jax.Array:
  """``phi(x[rows])`` ``(n, m)``, ``chunk_size`` rows per call.

  Every call is padded (with copies of a real row) to a power of two no larger than
  ``chunk_size``, so the kernel compiles for at most ``log2(chunk_size) + 1`` shapes
  instead of once per distinct row count (the greedy loop adds one row at a time).
  """
  rows = np.asarray(rows)
  limit = rows.size if chunk_size is None else chunk_size
  out = []
  for start in range(0, rows.size, limit):
    part = rows[start:start + limit]
    size = min(limit, 1 << int(np.ceil(np.log2(part.size))))
    padded = np.concatenate([part, np.full(size - part.size, part[0])])
    out.append(phi(jnp.take(x, jnp.asarray(padded), axis=0))[:part.size])
  return out[0] if len(out) == 1 else jnp.concatenate(out)


def _is_image_batch(x: jax.Array) -> bool:
  return x.ndim == 4 and x.shape[-1] in (1, 3)


class BilevelCoreset(StatelessStrategy):
  """Greedy bilevel-coreset selection on Nyström features of an NTK.

  Args:
    kernel: a ``Kernel`` (or any ``k(x1, x2) -> (n1, n2)``) for the Nyström features;
      wins over ``ctx.kernel``; both None: ``Kernel.infinite(architecture)``.
    architecture: stax twin of the default kernel; None: "mlp" for ``(N, d)`` pools,
      "wrn-28-2" for image pools.
    kernel_options: extra options of ``Kernel.infinite`` (e.g. ``input_mean``,
      ``input_std`` to standardize like the model).
    landmarks: Nyström rank ``m`` (capped at the pool size).
    outer_size: unlabeled samples in the outer objective (= the candidates); None: all.
    augmentations: weakly augmented copies per labeled/chosen image (0: the sample as is).
    augment_flip, augment_pad: options of ``weak_augment`` (no flip for digits/SVHN).
    reg: ridge of the inner problem (positive).
    inner_steps, inner_tol: L-BFGS iterations / gradient-norm tolerance per greedy step.
    cg_steps, cg_tol: conjugate-gradient iterations / tolerance for ``H^{-1} v``.
    random_fraction: share of the budget drawn uniformly at random (paper: 0.1).
    chunk_size: pool rows per kernel / forward call.
    rcond: eigenvalue floor of the Nyström pseudo-inverse square root.
  """

  def __init__(self, *, kernel: Any = None, architecture: str | None = None,
               kernel_options: dict | None = None, landmarks: int = 256,
               outer_size: int | None = None, augmentations: int = 8,
               augment_flip: bool = True, augment_pad: int = 4, reg: float = 1e-4,
               inner_steps: int = 200, inner_tol: float = 1e-6, cg_steps: int = 50,
               cg_tol: float = 1e-6, random_fraction: float = 0.1,
               chunk_size: int | None = 256, rcond: float = 1e-6):
    if kernel is not None and not callable(kernel):
      raise ValueError(f"bilevel kernel must be a Kernel or callable, got {type(kernel).__name__}")
    self.kernel = kernel
    self.architecture = architecture
    self.kernel_options = dict(kernel_options or {})
    for name, value, low in (("landmarks", landmarks, 1), ("augmentations", augmentations, 0),
                             ("augment_pad", augment_pad, 0), ("inner_steps", inner_steps, 1),
                             ("cg_steps", cg_steps, 1)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"bilevel {name} must be an integer >= {low}, got {value!r}")
    if outer_size is not None and (isinstance(outer_size, bool) or outer_size < 1):
      raise ValueError(f"bilevel outer_size must be a positive integer or None, got {outer_size!r}")
    if not reg > 0:
      raise ValueError(f"bilevel reg must be positive, got {reg!r}")
    if not 0.0 <= random_fraction <= 1.0:
      raise ValueError(f"bilevel random_fraction must lie in [0, 1], got {random_fraction!r}")
    self.landmarks = int(landmarks)
    self.outer_size = None if outer_size is None else int(outer_size)
    self.augmentations = int(augmentations)
    self.augment_flip = bool(augment_flip)
    self.augment_pad = int(augment_pad)
    self.reg = float(reg)
    self.inner_steps = int(inner_steps)
    self.inner_tol = float(inner_tol)
    self.cg_steps = int(cg_steps)
    self.cg_tol = float(cg_tol)
    self.random_fraction = float(random_fraction)
    self.chunk_size = check_chunk_size(chunk_size)
    self.rcond = float(rcond)
    self._default_kernels = {}

  # -- pieces ----------------------------------------------------------------------

  def _kernel_for(self, ctx: Context):
    if self.kernel is not None:
      return self.kernel
    if ctx.kernel is not None:
      return ctx.kernel
    arch = self.architecture or ("mlp" if ctx.x.ndim == 2 else "wrn-28-2")
    if arch not in self._default_kernels:  # built once, so its jitted kernel is reused
      from assljax.kernels import Kernel
      self._default_kernels[arch] = Kernel.infinite(arch, num_classes=1,
                                                    chunk_size=self.chunk_size,
                                                    **self.kernel_options)
    return self._default_kernels[arch]

  def feature_map(self, key: jax.Array, ctx: Context) -> Callable[[jax.Array], jax.Array]:
    """Nyström ``phi(x) -> (n, m)`` from ``landmarks`` pool samples drawn with ``key``."""
    from assljax.kernels import nystrom_features
    m = min(self.landmarks, ctx.pool_size)
    rows = np.sort(np.asarray(jax.random.choice(key, ctx.pool_size, (m,), replace=False)))
    return nystrom_features(self._kernel_for(ctx), jnp.take(ctx.x, jnp.asarray(rows), axis=0),
                            rcond=self.rcond)

  def copies(self, ctx: Context) -> int:
    """Rows per labeled/chosen sample in the inner problem."""
    return self.augmentations if (self.augmentations > 0 and _is_image_batch(ctx.x)) else 1

  def _train_features(self, key: jax.Array, phi: Callable, ctx: Context,
                      rows: np.ndarray) -> jax.Array:
    """Features of ``copies`` (augmented) views of each of ``rows``: ``(len * copies, m)``."""
    copies = self.copies(ctx)
    x = jnp.take(ctx.x, jnp.asarray(np.repeat(rows, copies)), axis=0)
    if copies > 1 or (self.augmentations > 0 and _is_image_batch(ctx.x)):
      from assljax.ssl.augment import weak_augment
      x = weak_augment(key, x, flip=self.augment_flip, pad=self.augment_pad)
    return _feature_rows(phi, x, np.arange(x.shape[0]), self.chunk_size)

  # -- selection -------------------------------------------------------------------

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    unlabeled = ctx.unlabeled_indices()
    labeled = ctx.labeled_indices()
    n_random = int(round(self.random_fraction * budget))
    n_greedy = budget - n_random
    k_outer, k_land, k_aug, k_rand = (jax.random.fold_in(key, i) for i in range(4))

    if self.outer_size is None or self.outer_size >= unlabeled.size:
      outer = unlabeled
    else:
      outer = np.sort(unlabeled[np.asarray(
          jax.random.choice(k_outer, unlabeled.size, (self.outer_size,), replace=False))])
    if outer.size < n_greedy:
      raise ValueError(f"bilevel outer_size={self.outer_size} is smaller than the {n_greedy} "
                       "samples to choose greedily")

    chosen = np.zeros((0,), np.int32)
    if n_greedy > 0:
      pseudo = jax.nn.softmax(pool_logits(ctx, outer, chunk_size=self.chunk_size), axis=-1)
      phi = self.feature_map(k_land, ctx)
      z_outer = _feature_rows(phi, ctx.x, outer, self.chunk_size)
      check_finite(z_outer, "Nyström features of the pool")
      chosen = self._greedy(k_aug, ctx, phi, labeled, outer, z_outer, pseudo, n_greedy)
    if n_random > 0:
      rest = np.setdiff1d(unlabeled, chosen)
      extra = rest[np.asarray(jax.random.choice(k_rand, rest.size, (n_random,), replace=False))]
      chosen = np.concatenate([chosen, extra])
    return chosen.astype(np.int32)

  def _greedy(self, key, ctx, phi, labeled, outer, z_outer, pseudo, n_greedy) -> np.ndarray:
    copies = self.copies(ctx)
    num_classes = ctx.num_classes
    m = z_outer.shape[1]
    n_rows = (labeled.size + n_greedy) * copies
    z_train = jnp.zeros((n_rows, m), z_outer.dtype)
    t_train = jnp.zeros((n_rows, num_classes), z_outer.dtype)
    w_train = jnp.zeros((n_rows,), z_outer.dtype)
    if labeled.size:
      z_lab = self._train_features(jax.random.fold_in(key, 0), phi, ctx, labeled)
      check_finite(z_lab, "Nyström features of the labeled set")
      onehot = jax.nn.one_hot(np.repeat(np.asarray(ctx.labels)[labeled], copies), num_classes,
                              dtype=z_outer.dtype)
      n_lab_rows = labeled.size * copies
      z_train = z_train.at[:n_lab_rows].set(z_lab)
      t_train = t_train.at[:n_lab_rows].set(onehot)
      w_train = w_train.at[:n_lab_rows].set(1.0)
    theta = {"kernel": jnp.zeros((m, num_classes), z_outer.dtype),
             "bias": jnp.zeros((num_classes,), z_outer.dtype)}
    taken = jnp.zeros((outer.size,), jnp.bool_)
    picks = []
    for t in range(n_greedy):
      theta, best = _greedy_step(theta, z_train, t_train, w_train, z_outer, pseudo, taken,
                                 reg=self.reg, inner_steps=self.inner_steps,
                                 inner_tol=self.inner_tol, cg_steps=self.cg_steps,
                                 cg_tol=self.cg_tol)
      best = int(best)
      picks.append(int(outer[best]))
      taken = taken.at[best].set(True)
      start = (labeled.size + t) * copies
      z_new = self._train_features(jax.random.fold_in(key, t + 1), phi, ctx, outer[best:best + 1])
      z_train = z_train.at[start:start + copies].set(z_new)
      t_train = t_train.at[start:start + copies].set(
          jnp.broadcast_to(pseudo[best][None, :], (copies, num_classes)))
      w_train = w_train.at[start:start + copies].set(1.0)
    return np.asarray(picks, np.int32)


@register("bilevel")
def _bilevel(**hyperparameters: Any) -> BilevelCoreset:
  return BilevelCoreset(**hyperparameters)
