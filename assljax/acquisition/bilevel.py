"""Bilevel coreset with the Nyström proxy (Borsos, Tagliasacchi & Krause, ICASSP 2021;
Borsos, Mutný & Krause, "Coresets via bilevel optimization", NeurIPS 2020).

    strategy = assljax.acquisition.get("bilevel", landmarks=256, augmentations=8)
    idx = strategy(key, ctx, budget)
    # the paper's inner solver (§2: Adam, 10^3 steps, batch 64, lambda = 1e-4, 30 CG steps)
    strategy = assljax.acquisition.get("bilevel", inner_solver="adam", inner_steps=1000,
                                       inner_batch_size=64, inner_lr=1e-3, reg=1e-4,
                                       cg_steps=30)

Proxy model. Nyström features ``z_x = k(x, U) K_UU^{+1/2}`` (``m`` landmarks ``U`` drawn
uniformly from the pool, labeled and unlabeled, as in the paper) of an NTK:
``Kernel.infinite`` of the stax twin of ``architecture`` by default ("mlp" for flat
inputs, "wrn-28-2" for images: the paper's Wide ResNet twin with a flatten readout, whose
kernel stays on the spatial diagonal -- the "cnn" twin average-pools and costs ~1000x more
per pair), or any :class:`assljax.kernels.Kernel` given as the ``kernel`` hyperparameter
(which wins) or as ``ctx.kernel``. On the features, a multinomial logistic regression
``theta = (W, b)``.

Bilevel problem (eq. (3) of the paper). Inner: ``theta*(w) = argmin_theta F(theta, w)``,

    F = (1 / n_F) sum_i w_i CE(z_i theta, t_i) + (reg / 2) ||theta||^2,

over the labeled samples (true one-hot targets) and the chosen samples ``B`` (soft
pseudo-labels ``ytilde``), ``n_F = sum_i w_i``. ``reg`` is the reference code's
``inner_reg`` (PyTorch Adam ``weight_decay``, i.e. the gradient ``reg * theta``, and
``reg / 2 ||theta||^2`` in its Hessian) on the *mean* loss; eq. (3) writes a sum plus
``lambda ||w||^2``, the same problem with ``lambda = n_F reg / 2``. Outer, eq. (1)/(3):

    G = sum_{(x, y) labeled} CE(z_x theta, y) + sum_{x unlabeled} CE(z_x theta, ytilde_x),

the labeled term (true labels, inputs as they are) and the pool term with *equal weight
per sample*: the paper has no trade-off factor, so with ``l`` labeled and ``n_U``
unlabeled samples the labeled set carries a share ``l / (l + n_U)`` of the weight of ``G``
(when the inner problem holds only the labeled samples, un-augmented, the labeled term's
gradient at ``theta*`` is the ridge's ``-l reg theta*``: small; augmented copies and chosen
samples make it larger). When the pool term
is estimated on ``O``, ``outer_size`` unlabeled samples drawn uniformly (all of them by
default), each one stands for ``n_U / |O|`` pool samples (:func:`outer_weights`); ``G`` is
divided by ``l + n_U`` (a constant: it leaves every choice unchanged). The chosen samples
stay in the pool term, as in eq. (1). ``ytilde = softmax(ctx.apply_fn(x))`` on the
un-augmented sample: the paper's ``ytilde_x = f_SSL(x)`` (the reference code feeds the
SSL logits through the same softmax). The reference ``nystrom_example`` draws its outer
set from the pool without the labeled samples and leaves the labeled term out; this
module follows the paper.

Greedy forward selection (eq. (2), Algorithm 1). By the implicit function theorem the
derivative of the outer loss with respect to the weight of a candidate ``x`` (weight 0
now) is

    dG / dw_x = -(1 / n_F) grad_theta CE(z_x theta*, ytilde_x)^T H^{-1} grad_theta G(theta*),

with ``H`` the Hessian of ``F`` at ``theta*``. Each step solves the inner problem
(warm-started from the previous step), computes ``v = H^{-1} grad G`` by conjugate
gradients (``jax.scipy.sparse.linalg.cg`` on Hessian-vector products, from 0, at most
``cg_steps`` iterations), scores every candidate in ``O`` by ``grad CE(x, ytilde_x)^T v``
(closed form for the linear model; candidates as they are, not augmented, as in the
reference) and adds the highest-scoring one (the most negative implicit gradient) to
the inner problem with its pseudo-label. ``1 - random_fraction`` of the budget is chosen
this way (paper: 90%); the rest uniformly at random among the remaining unlabeled
samples.

Inner solvers (``inner_solver``):

- ``"lbfgs"`` (the default): optax L-BFGS to a gradient-norm tolerance on a fixed
  training set in which every labeled/chosen image is present as ``augmentations``
  weakly augmented copies (:func:`assljax.ssl.augment.weak_augment`, drawn once per
  acquisition), at most ``inner_steps`` (200) iterations. Deterministic and close to
  the exact minimizer, which is what the implicit gradient assumes; no kernel
  evaluations inside the loop.
- ``"adam"``: the paper's solver (Algorithm 1): ``inner_steps`` (paper: 1000) Adam steps
  (learning rate ``inner_lr``; the reference uses PyTorch's default 1e-3, betas
  (0.9, 0.999), eps 1e-8; the moments carry over from one greedy step to the next, as
  the reference's single optimizer does) on minibatches of ``inner_batch_size``
  (paper: 64) samples drawn uniformly without replacement from labeled + chosen (all
  of them while there are fewer). With ``fresh_augmentations`` (default) every step
  draws new weak augmentations of its minibatch on the device and computes their
  Nyström features inside the jitted loop (so the kernel must be jittable) --
  ``inner_batch_size x m`` kernel evaluations per step, keys
  ``fold_in(fold_in(key, pick), step)``; without it, the minibatches are drawn from the
  presampled copies (the reference code's ``nr_presampled_transforms`` speed-up; the
  batch then counts copies).

With either solver the Hessian in the CG solve is that of ``F`` at the final ``theta``
on the fixed presampled training set (``augmentations`` copies per image, the sample as
it is when ``augmentations == 0`` or the inputs are not images): the reference code
likewise takes the Hessian on its presampled augmented training set. With Adam,
``theta`` is the iterate after ``inner_steps`` steps, not an exact minimizer, as in the
paper.

Shapes stay fixed through an acquisition (the training rows are allocated for
``labeled + budget`` samples, padded to a power of two; the outer rows are padded to a
multiple of 256), so a greedy step compiles once and not per pick. Images are
``(n, H, W, C)`` with ``C`` in 1, 3; other inputs are never augmented.

An empty labeled set works (the first inner problem has only the regularizer, so
``theta* = 0``). Memory: ``(l + |O|) x m`` features plus ``(l + budget) x copies x m``
training rows (and, for Adam with fresh views, ``l + budget`` raw inputs); the pool
itself is streamed through the kernel ``chunk_size`` rows at a time.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from assljax._compile import jit
from assljax._validation import (UserInputError, check_chunk_size, check_int, check_number,
                                 check_positive_int)
from assljax.acquisition.base import Context, StatelessStrategy, check_finite, register
from assljax.acquisition.uncertainty import pool_logits

PyTree = Any

_HIGHEST = jax.lax.Precision.HIGHEST
INNER_SOLVERS = ("lbfgs", "adam")
#: ``inner_steps`` when it is None: L-BFGS iterations / Adam steps (the paper's 10^3).
DEFAULT_INNER_STEPS = {"lbfgs": 200, "adam": 1000}
_OUTER_PAD = 256


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


def _ridge(theta: PyTree) -> jax.Array:
  return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(theta))


def inner_objective(theta: PyTree, z: jax.Array, targets: jax.Array, weights: jax.Array, *,
                    reg: float, normalizer: float | jax.Array) -> jax.Array:
  """``F = sum_i w_i CE_i / normalizer + reg / 2 ||theta||^2`` (scalar).

  ``z: (n, m)``, ``targets: (n, C)``, ``weights: (n,)``.
  """
  data = jnp.sum(weights * soft_cross_entropy(theta, z, targets)) / normalizer
  return data + 0.5 * reg * _ridge(theta)


def outer_objective(theta: PyTree, z: jax.Array, targets: jax.Array,
                    weights: jax.Array | None = None) -> jax.Array:
  """``G = sum_i weights_i CE(z_i theta, t_i)`` (scalar); ``weights=None``: the mean.

  ``z: (n, m)``, ``targets: (n, C)``, ``weights: (n,)`` (see :func:`outer_weights` for
  the paper's labeled + pool weighting).
  """
  ce = soft_cross_entropy(theta, z, targets)
  return jnp.mean(ce) if weights is None else jnp.sum(weights * ce)


def outer_weights(n_labeled: int, n_outer: int, n_unlabeled: int) -> np.ndarray:
  """Row weights ``(n_labeled + n_outer,)`` of the outer objective of eq. (1)/(3).

  Rows are the labeled samples, then ``n_outer`` unlabeled samples drawn uniformly from
  the ``n_unlabeled`` of the pool. Every sample of ``labeled u pool`` weighs the same, so
  a labeled row gets ``1 / (n_labeled + n_unlabeled)`` and a drawn unlabeled row
  ``(n_unlabeled / n_outer) / (n_labeled + n_unlabeled)``; the weights sum to 1.
  """
  if min(n_labeled, n_outer, n_unlabeled) < 0 or n_outer > n_unlabeled:
    raise UserInputError(f"outer_weights needs 0 <= n_outer <= n_unlabeled, got n_labeled="
                         f"{n_labeled}, n_outer={n_outer}, n_unlabeled={n_unlabeled}")
  total = n_labeled + n_unlabeled
  if total == 0:
    return np.zeros((0,), np.float64)
  per_outer = (n_unlabeled / n_outer) / total if n_outer else 0.0
  return np.concatenate([np.full(n_labeled, 1.0 / total), np.full(n_outer, per_outer)])


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


def adam_init(theta: PyTree) -> PyTree:
  """Fresh Adam moments for :func:`solve_inner_adam` (``optax.scale_by_adam`` state)."""
  import optax
  return optax.scale_by_adam().init(theta)


def minibatch_rows(key: jax.Array, weights: jax.Array, batch_size: int) -> jax.Array:
  """``min(batch_size, n)`` row indices ``(b,)``: rows with positive weight, uniformly
  without replacement (Gumbel top-k), then, while there are fewer, zero-weight rows."""
  k = min(int(batch_size), weights.shape[0])
  gumbel = jax.random.gumbel(key, weights.shape, jnp.float32)
  return jax.lax.top_k(jnp.where(weights > 0, gumbel, -jnp.inf), k)[1]


def solve_inner_adam(theta: PyTree, opt_state: PyTree, key: jax.Array, x: jax.Array,
                     targets: jax.Array, weights: jax.Array, *, reg: float, steps: int,
                     batch_size: int, lr: float | jax.Array,
                     features: Callable[[jax.Array, jax.Array], jax.Array] | None = None
                     ) -> tuple[PyTree, PyTree]:
  """``steps`` Adam steps on minibatch estimates of :func:`inner_objective`.

  Step ``s`` draws :func:`minibatch_rows` with ``fold_in(fold_in(key, s), 0)`` and takes
  the gradient of ``sum_b w_b CE_b / sum_b w_b + reg / 2 ||theta||^2`` over the batch
  (0/1 weights: an unbiased estimate of ``F`` with ``normalizer = sum w``), then
  ``theta -= lr * adam(grad)``. Jittable (``steps`` and ``batch_size`` are static).

  Args:
    theta: ``{"kernel": (m, C), "bias": (C,)}``, the start.
    opt_state: Adam moments (:func:`adam_init`), carried across calls to warm-start.
    key: PRNG key.
    x: ``(n, ...)`` training rows: features ``(n, m)``, or inputs for ``features``.
    targets: ``(n, C)``; weights: ``(n,)``, 0 for unused rows.
    reg: ridge; steps: Adam steps; batch_size: rows per step; lr: learning rate.
    features: ``features(key, x_batch) -> (b, m)`` features of freshly augmented views
      of ``x_batch``, called with ``fold_in(fold_in(key, s), 1)``; None: ``x`` are
      features.

  Returns:
    ``(theta, opt_state)`` after the last step.
  """
  import optax

  adam = optax.scale_by_adam()

  def loss(th, z, t, w):
    total = jnp.sum(w)
    data = jnp.sum(w * soft_cross_entropy(th, z, t)) / jnp.where(total > 0, total, 1.0)
    return data + 0.5 * reg * _ridge(th)

  def step(s, carry):
    th, state = carry
    k_step = jax.random.fold_in(key, s)
    rows = minibatch_rows(jax.random.fold_in(k_step, 0), weights, batch_size)
    xb = jnp.take(x, rows, axis=0)
    z = xb if features is None else features(jax.random.fold_in(k_step, 1), xb)
    grad = jax.grad(loss)(th, z.astype(targets.dtype), jnp.take(targets, rows, axis=0),
                          jnp.take(weights, rows, axis=0))
    updates, state = adam.update(grad, state, th)
    th = jax.tree_util.tree_map(lambda p, u: p - lr * u, th, updates)
    return th, state

  return jax.lax.fori_loop(0, steps, step, (theta, opt_state))


def inverse_hvp(theta: PyTree, z: jax.Array, targets: jax.Array, weights: jax.Array,
                v: PyTree, *, reg: float, normalizer: float | jax.Array, cg_steps: int = 50,
                tol: float = 1e-6) -> PyTree:
  """``H^{-1} v`` with ``H`` the Hessian of :func:`inner_objective` at ``theta``, by CG.

  Hessian-vector products are forward-over-reverse (``jvp`` of ``grad``); ``H`` is
  positive definite for ``reg > 0`` (the objective is convex plus the ridge). CG starts
  from 0 and stops after ``cg_steps`` iterations or at relative residual ``tol``.
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
                              normalizer: float, outer_weights: jax.Array | None = None,
                              cg_steps: int = 50, tol: float = 1e-6) -> jax.Array:
  """``dG / dw_x`` ``(n_cand,)`` for candidates added to the inner problem with weight 0.

  ``theta`` must minimize the inner objective on ``(z_train, t_train, w_train)``. The
  candidates enter ``F`` as ``w_x CE(z_x theta, t_x) / normalizer``; ``G`` is
  :func:`outer_objective` on ``(z_outer, t_outer, outer_weights)``.
  """
  g = jax.grad(outer_objective)(theta, z_outer, t_outer, outer_weights)
  v = inverse_hvp(theta, z_train, t_train, w_train, g, reg=reg, normalizer=normalizer,
                  cg_steps=cg_steps, tol=tol)
  return -candidate_scores(theta, v, z_cand, t_cand) / normalizer


def _best_candidate(theta, z_hess, t_hess, w_hess, z_outer, t_outer, w_outer, taken, *, reg,
                    cg_steps, cg_tol):
  """Row of ``z_outer`` with the largest implicit score, skipping ``taken`` rows."""
  normalizer = jnp.maximum(jnp.sum(w_hess), 1.0)
  g = jax.grad(outer_objective)(theta, z_outer, t_outer, w_outer)
  v = inverse_hvp(theta, z_hess, t_hess, w_hess, g, reg=reg, normalizer=normalizer,
                  cg_steps=cg_steps, tol=cg_tol)
  scores = candidate_scores(theta, v, z_outer, t_outer)
  scores = jnp.where(taken | ~jnp.isfinite(scores), -jnp.inf, scores)
  return jnp.argmax(scores).astype(jnp.int32)


@functools.partial(jit, static_argnames=("inner_steps", "cg_steps"))
def _lbfgs_step(theta, z_train, t_train, w_train, z_outer, t_outer, w_outer, taken, *, reg,
                inner_steps, inner_tol, cg_steps, cg_tol):
  """One greedy step with L-BFGS: ``(theta*, best row of z_outer)``."""
  normalizer = jnp.maximum(jnp.sum(w_train), 1.0)
  theta = solve_inner(theta, z_train, t_train, w_train, reg=reg, normalizer=normalizer,
                      max_steps=inner_steps, tol=inner_tol)
  best = _best_candidate(theta, z_train, t_train, w_train, z_outer, t_outer, w_outer, taken,
                         reg=reg, cg_steps=cg_steps, cg_tol=cg_tol)
  return theta, best


@functools.partial(jit, static_argnames=("views", "inner_steps", "batch_size",
                                             "cg_steps"))
def _adam_step(theta, opt_state, key, x_rows, t_rows, w_rows, nystrom, z_hess, t_hess, w_hess,
               z_outer, t_outer, w_outer, taken, *, views, reg, lr, inner_steps, batch_size,
               cg_steps, cg_tol):
  """One greedy step with Adam: ``(theta, opt_state, best row of z_outer)``.

  ``views`` (static) maps ``(nystrom, key, x_batch)`` to features of fresh views; None:
  ``x_rows`` are features.
  """
  features = None if views is None else functools.partial(views, nystrom)
  theta, opt_state = solve_inner_adam(theta, opt_state, key, x_rows, t_rows, w_rows, reg=reg,
                                      steps=inner_steps, batch_size=batch_size, lr=lr,
                                      features=features)
  best = _best_candidate(theta, z_hess, t_hess, w_hess, z_outer, t_outer, w_outer, taken,
                         reg=reg, cg_steps=cg_steps, cg_tol=cg_tol)
  return theta, opt_state, best


# ----------------------------------------------------------------------------------------
# Features.


class _FreshViews:
  """``(nystrom, key, x) -> (n, m)``: Nyström features of weak augmentations of ``x``.

  A static argument of the jitted Adam step, hashed by the kernel's identity and the
  augmentation options, so that one compiled step serves every pick and acquisition.
  """

  def __init__(self, kernel: Callable, *, augment: bool, flip: bool, pad: int):
    self.kernel, self.augment, self.flip, self.pad = kernel, augment, flip, pad

  def _key(self):
    return (id(self.kernel), self.augment, self.flip, self.pad)

  def __hash__(self):
    return hash(self._key())

  def __eq__(self, other):
    return (isinstance(other, _FreshViews) and other.kernel is self.kernel
            and other._key() == self._key())

  def __call__(self, nystrom: tuple[jax.Array, jax.Array], key: jax.Array,
               x: jax.Array) -> jax.Array:
    landmarks, inv_sqrt = nystrom
    if self.augment:
      from assljax.ssl.augment import weak_augment
      x = weak_augment(key, x, flip=self.flip, pad=self.pad)
    k_xu = jnp.asarray(self.kernel(x, landmarks))
    return jnp.dot(k_xu, inv_sqrt.astype(k_xu.dtype), precision=_HIGHEST)


def _nystrom_map(kernel: Callable, landmarks: jax.Array, *, rcond: float,
                 chunk_size: int | None) -> Callable:
  """:func:`assljax.kernels.nystrom_features` with ``phi.inv_sqrt`` ``(m, m)`` exposed.

  ``phi(x) = k(x, U) (K_UU)^{+1/2}``, the pseudo-inverse square root over the eigenvalues
  above ``rcond * lambda_max`` (float64 on the host), as in ``nystrom_features``; the
  jitted Adam step takes ``(landmarks, inv_sqrt)`` as arrays rather than baking them in.
  ``K_UU`` is computed in :func:`_feature_rows`' blocks of ``chunk_size`` rows, the
  kernel program that the pool's features use.
  """
  from assljax.kernels import nystrom_features

  k_uu = _feature_rows(lambda u: kernel(u, landmarks), landmarks,
                       np.arange(landmarks.shape[0]), chunk_size)
  # nystrom_features validates kernel, landmarks and K_UU; give it the matrix computed here
  # so that the kernel runs once on the landmarks
  phi_checked = nystrom_features(lambda a, b: k_uu, landmarks, rcond=rcond)
  k64 = np.asarray(k_uu, np.float64)
  lam, vec = np.linalg.eigh(0.5 * (k64 + k64.T))
  keep = lam > rcond * lam[-1]
  v = vec[:, keep]
  inv_sqrt = jnp.asarray((v * lam[keep] ** -0.5) @ v.T, jnp.result_type(k_uu))

  def phi(x: jax.Array) -> jax.Array:
    """Nyström features ``(n, m)`` of ``x: (n, ...)``."""
    k_xu = jnp.asarray(kernel(x, landmarks))
    return jnp.dot(k_xu, inv_sqrt.astype(k_xu.dtype), precision=_HIGHEST)

  phi.rank = phi_checked.rank
  phi.landmarks = phi_checked.landmarks
  phi.inv_sqrt = inv_sqrt
  phi.kernel = kernel
  return phi


def _feature_rows(phi: Callable, x: jax.Array, rows: np.ndarray,
                  chunk_size: int | None) -> jax.Array:
  """``phi(x[rows])`` ``(n, m)``, ``chunk_size`` rows per call.

  Calls are padded (with copies of a real row) so that the kernel compiles for few row
  counts rather than once per distinct count: when ``rows`` spans several chunks every
  call has ``chunk_size`` rows (the last one padded: at most one chunk of extra work,
  and no program of its own); within one chunk, the next power of two (the greedy loop
  adds one row at a time), so at most ``log2(chunk_size) + 2`` shapes in all.
  """
  rows = np.asarray(rows)
  limit = rows.size if chunk_size is None else chunk_size
  out = []
  for start in range(0, rows.size, limit):
    part = rows[start:start + limit]
    size = limit if rows.size > limit else min(limit, 1 << int(np.ceil(np.log2(part.size))))
    padded = np.concatenate([part, np.full(size - part.size, part[0])])
    out.append(phi(jnp.take(x, jnp.asarray(padded), axis=0))[:part.size])
  return out[0] if len(out) == 1 else jnp.concatenate(out)


def _is_image_batch(x: jax.Array) -> bool:
  return x.ndim == 4 and x.shape[-1] in (1, 3)


def _check_int(name: str, value: Any, low: int) -> int:
  return check_int(f"bilevel {name}", value, low=low)


class BilevelCoreset(StatelessStrategy):
  """Greedy bilevel-coreset selection on Nyström features of an NTK.

  Args:
    kernel: a ``Kernel`` (or any ``k(x1, x2) -> (n1, n2)``) for the Nyström features;
      wins over ``ctx.kernel``; both None: ``Kernel.infinite(architecture)``.
    architecture: stax twin of the default kernel; None: "mlp" for ``(N, d)`` pools,
      "wrn-28-2" for image pools.
    kernel_options: extra options of ``Kernel.infinite`` (e.g. ``input_mean``,
      ``input_std`` to standardize like the model).
    landmarks: Nyström rank ``m`` (capped at the pool size; paper: 2000).
    outer_size: unlabeled samples in the outer objective (= the candidates); None: all.
    augmentations: weakly augmented copies per labeled/chosen image in the presampled
      training set (L-BFGS's problem, and the Hessian of both solvers); 0: no
      augmentation at all (also none in Adam's steps).
    augment_flip, augment_pad: options of ``weak_augment`` (no flip for digits/SVHN/audio).
    inner_solver: "lbfgs" (default: exact solve on the presampled set) or "adam" (the
      paper's minibatch solver, fresh augmentations every step).
    reg: ridge of the inner problem on the mean loss (positive; paper: 1e-4).
    inner_steps: L-BFGS iterations (at most) or Adam steps per greedy step; None: 200 for
      L-BFGS, 1000 for Adam (the paper's).
    inner_tol: L-BFGS gradient-norm tolerance.
    inner_batch_size: Adam minibatch, in samples (paper: 64).
    inner_lr: Adam learning rate (reference: 1e-3).
    fresh_augmentations: Adam draws new weak augmentations every step (Algorithm 1);
      False: minibatches of the presampled copies (the reference code's speed-up).
    cg_steps, cg_tol: conjugate-gradient iterations / relative tolerance for
      ``H^{-1} v`` (paper: 30 steps).
    random_fraction: share of the budget drawn uniformly at random (paper: 0.1).
    chunk_size: pool rows per kernel / forward call.
    rcond: eigenvalue floor of the Nyström pseudo-inverse square root.
  """

  def __init__(self, *, kernel: Any = None, architecture: str | None = None,
               kernel_options: dict | None = None, landmarks: int = 256,
               outer_size: int | None = None, augmentations: int = 8,
               augment_flip: bool = True, augment_pad: int = 4, inner_solver: str = "lbfgs",
               reg: float = 1e-4, inner_steps: int | None = None, inner_tol: float = 1e-6,
               inner_batch_size: int = 64, inner_lr: float = 1e-3,
               fresh_augmentations: bool = True, cg_steps: int = 50, cg_tol: float = 1e-6,
               random_fraction: float = 0.1, chunk_size: int | None = 256,
               rcond: float = 1e-6):
    if kernel is not None and not callable(kernel):
      raise UserInputError(f"bilevel kernel must be a Kernel or callable, got "
                           f"{type(kernel).__name__}")
    if inner_solver not in INNER_SOLVERS:
      raise UserInputError(f"bilevel inner_solver must be one of {', '.join(INNER_SOLVERS)}, got "
                           f"{inner_solver!r}")
    self.kernel = kernel
    self.architecture = architecture
    self.kernel_options = dict(kernel_options or {})
    self.landmarks = _check_int("landmarks", landmarks, 1)
    self.augmentations = _check_int("augmentations", augmentations, 0)
    self.augment_pad = _check_int("augment_pad", augment_pad, 0)
    self.inner_solver = inner_solver
    self.inner_steps = _check_int(
        "inner_steps", DEFAULT_INNER_STEPS[inner_solver] if inner_steps is None else inner_steps,
        1)
    self.inner_batch_size = _check_int("inner_batch_size", inner_batch_size, 1)
    self.cg_steps = _check_int("cg_steps", cg_steps, 1)
    check_positive_int("bilevel outer_size", outer_size, allow_none=True)
    for name, value in (("reg", reg), ("inner_lr", inner_lr), ("inner_tol", inner_tol),
                        ("cg_tol", cg_tol)):
      check_number(f"bilevel {name}", value, low=0.0, include_low=False)
    check_number("bilevel random_fraction", random_fraction, low=0.0, high=1.0)
    self.outer_size = None if outer_size is None else int(outer_size)
    self.augment_flip = bool(augment_flip)
    self.reg = float(reg)
    self.inner_tol = float(inner_tol)
    self.inner_lr = float(inner_lr)
    self.fresh_augmentations = bool(fresh_augmentations)
    self.cg_tol = float(cg_tol)
    self.random_fraction = float(random_fraction)
    self.chunk_size = check_chunk_size(chunk_size)
    self.rcond = check_number("bilevel rcond", rcond, low=0.0, high=1.0, include_high=False)
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
    """Nyström ``phi(x) -> (n, m)`` from ``landmarks`` pool samples drawn with ``key``.

    ``phi.landmarks`` ``(m, ...)`` and ``phi.inv_sqrt`` ``(m, m)``: ``phi(x) =
    kernel(x, landmarks) @ inv_sqrt``.
    """
    m = min(self.landmarks, ctx.pool_size)
    rows = np.sort(np.asarray(jax.random.choice(key, ctx.pool_size, (m,), replace=False)))
    return _nystrom_map(self._kernel_for(ctx), jnp.take(ctx.x, jnp.asarray(rows), axis=0),
                        rcond=self.rcond, chunk_size=self.chunk_size)

  def augments(self, ctx: Context) -> bool:
    """Whether labeled/chosen samples enter the inner problem augmented."""
    return self.augmentations > 0 and _is_image_batch(ctx.x)

  def copies(self, ctx: Context) -> int:
    """Rows per labeled/chosen sample in the presampled training set."""
    return self.augmentations if self.augments(ctx) else 1

  def _train_features(self, key: jax.Array, phi: Callable, ctx: Context,
                      rows: np.ndarray) -> jax.Array:
    """Features of ``copies`` (augmented) views of each of ``rows``: ``(len * copies, m)``."""
    copies = self.copies(ctx)
    x = jnp.take(ctx.x, jnp.asarray(np.repeat(rows, copies)), axis=0)
    if self.augments(ctx):
      from assljax.ssl.augment import weak_augment
      x = weak_augment(key, x, flip=self.augment_flip, pad=self.augment_pad)
    return _feature_rows(phi, x, np.arange(x.shape[0]), self.chunk_size)

  # -- selection -------------------------------------------------------------------

  def _select(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    unlabeled = ctx.unlabeled_indices()
    labeled = ctx.labeled_indices()
    n_random = int(round(self.random_fraction * budget))
    n_greedy = budget - n_random
    k_outer, k_land, k_aug, k_rand, k_inner = (jax.random.fold_in(key, i) for i in range(5))

    if self.outer_size is None or self.outer_size >= unlabeled.size:
      outer = unlabeled
    else:
      outer = np.sort(unlabeled[np.asarray(
          jax.random.choice(k_outer, unlabeled.size, (self.outer_size,), replace=False))])
    if outer.size < n_greedy:
      raise UserInputError(f"bilevel outer_size={self.outer_size} is smaller than the {n_greedy} "
                           "samples to choose greedily")

    chosen = np.zeros((0,), np.int32)
    if n_greedy > 0:
      pseudo = jax.nn.softmax(pool_logits(ctx, outer, chunk_size=self.chunk_size), axis=-1)
      phi = self.feature_map(k_land, ctx)
      # labeled (for the outer labeled term) and outer rows, as they are, in one stream
      z_plain = _feature_rows(phi, ctx.x, np.concatenate([labeled, outer]), self.chunk_size)
      check_finite(z_plain, "Nyström features of the pool")
      chosen = self._greedy(k_aug, k_inner, ctx, phi, labeled, unlabeled.size, outer,
                            z_plain, pseudo, n_greedy)
    if n_random > 0:
      rest = np.setdiff1d(unlabeled, chosen)
      extra = rest[np.asarray(jax.random.choice(k_rand, rest.size, (n_random,), replace=False))]
      chosen = np.concatenate([chosen, extra])
    return chosen.astype(np.int32)

  def _greedy(self, k_aug, k_inner, ctx, phi, labeled, n_unlabeled, outer, z_plain, pseudo,
              n_greedy) -> np.ndarray:
    copies, augment = self.copies(ctx), self.augments(ctx)
    num_classes, n_lab = ctx.num_classes, labeled.size
    dtype = z_plain.dtype
    m = z_plain.shape[1]

    # outer rows: [labeled (true labels); O (pseudo-labels); padding], candidates are O
    n_outer = n_lab + outer.size
    rows_outer = -(-n_outer // _OUTER_PAD) * _OUTER_PAD
    pad = rows_outer - n_outer
    onehot = jax.nn.one_hot(np.asarray(ctx.labels)[labeled], num_classes, dtype=dtype)
    z_outer = jnp.concatenate([z_plain, jnp.zeros((pad, m), dtype)])
    t_outer = jnp.concatenate([onehot, pseudo.astype(dtype), jnp.zeros((pad, num_classes), dtype)])
    w_outer = jnp.asarray(np.concatenate([outer_weights(n_lab, outer.size, n_unlabeled),
                                          np.zeros(pad)]), dtype)
    taken = jnp.asarray(np.concatenate([np.ones(n_lab, bool), np.zeros(outer.size, bool),
                                        np.ones(pad, bool)]))

    # presampled training set: `copies` rows per labeled / chosen sample, capacity padded
    capacity = 1 << int(np.ceil(np.log2(max(n_lab + n_greedy, 1))))
    z_train = jnp.zeros((capacity * copies, m), dtype)
    t_train = jnp.zeros((capacity * copies, num_classes), dtype)
    w_train = jnp.zeros((capacity * copies,), dtype)
    if n_lab:
      z_lab = (self._train_features(jax.random.fold_in(k_aug, 0), phi, ctx, labeled)
               if augment else z_plain[:n_lab])
      check_finite(z_lab, "Nyström features of the labeled set")
      z_train = z_train.at[:n_lab * copies].set(z_lab)
      t_train = t_train.at[:n_lab * copies].set(jnp.repeat(onehot, copies, axis=0))
      w_train = w_train.at[:n_lab * copies].set(1.0)

    adam = self.inner_solver == "adam"
    fresh = adam and augment and self.fresh_augmentations
    if fresh:  # raw inputs, one row per sample, augmented anew at every Adam step
      x_rows = jnp.zeros((capacity,) + ctx.x.shape[1:], ctx.x.dtype)
      x_rows = x_rows.at[:n_lab].set(jnp.take(ctx.x, jnp.asarray(labeled), axis=0))
      t_rows = jnp.zeros((capacity, num_classes), dtype).at[:n_lab].set(onehot)
      w_rows = jnp.zeros((capacity,), dtype).at[:n_lab].set(1.0)
      views = _FreshViews(phi.kernel, augment=True, flip=self.augment_flip,
                          pad=self.augment_pad)
    nystrom = (phi.landmarks, phi.inv_sqrt)

    theta = {"kernel": jnp.zeros((m, num_classes), dtype),
             "bias": jnp.zeros((num_classes,), dtype)}
    opt_state = adam_init(theta) if adam else None
    picks = []
    for t in range(n_greedy):
      if adam:
        theta, opt_state, best = _adam_step(
            theta, opt_state, jax.random.fold_in(k_inner, t),
            *((x_rows, t_rows, w_rows) if fresh else (z_train, t_train, w_train)), nystrom,
            z_train, t_train, w_train, z_outer, t_outer, w_outer, taken,
            views=views if fresh else None, reg=self.reg, lr=self.inner_lr,
            inner_steps=self.inner_steps, batch_size=self.inner_batch_size,
            cg_steps=self.cg_steps, cg_tol=self.cg_tol)
      else:
        theta, best = _lbfgs_step(theta, z_train, t_train, w_train, z_outer, t_outer, w_outer,
                                  taken, reg=self.reg, inner_steps=self.inner_steps,
                                  inner_tol=self.inner_tol, cg_steps=self.cg_steps,
                                  cg_tol=self.cg_tol)
      best = int(best)
      j = best - n_lab  # position in `outer`
      picks.append(int(outer[j]))
      taken = taken.at[best].set(True)
      slot = n_lab + t
      z_new = (self._train_features(jax.random.fold_in(k_aug, t + 1), phi, ctx,
                                    outer[j:j + 1]) if augment else z_outer[best:best + 1])
      target = pseudo[j].astype(dtype)
      z_train = z_train.at[slot * copies:(slot + 1) * copies].set(z_new)
      t_train = t_train.at[slot * copies:(slot + 1) * copies].set(
          jnp.broadcast_to(target[None, :], (copies, num_classes)))
      w_train = w_train.at[slot * copies:(slot + 1) * copies].set(1.0)
      if fresh:
        x_rows = x_rows.at[slot].set(ctx.x[int(outer[j])])
        t_rows = t_rows.at[slot].set(target)
        w_rows = w_rows.at[slot].set(1.0)
    return np.asarray(picks, np.int32)


register("bilevel")(BilevelCoreset)
