"""DARP (Kim et al., 2020): distribution-aligning refinery of pseudo-labels, on FixMatch.

DARP keeps the weak-view softmax ``A`` (n, C) of every unlabeled sample and, every few
steps after a warm-up, replaces it by the solution of the convex problem

    minimize_M   sum_i w_i sum_k M_ik log(M_ik / A_ik)      (w_i = 1 / H(A_i))
    subject to   sum_k M_ik = 1 (each row),  sum_i M_ik = c_k (each class),  M >= 0

i.e. the entropy-weighted KL projection of the predictions onto pseudo-label matrices
whose class totals match the target counts ``c`` (uniform by default). Stationarity gives
the closed form ``M_ik = A_ik exp(-1 - (lambda_i + nu_k) / w_i)`` with per-row and
per-class duals; :func:`refine_pseudo_labels` alternates the exact row normalization
(``lambda``) with a per-class Newton solve for ``nu`` (10 outer iterations by default,
as in the reference), all in the log domain so that confident rows (``w_i`` large) do
not overflow. FixMatch then thresholds the refined rows instead of the raw softmax.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from assljax._validation import UserInputError, check_number
from assljax.ssl.algorithm import Algorithm, Augment, check_positive, default_strong, default_weak
from assljax.ssl.fixmatch import fixmatch_loss

PyTree = Any


def row_entropy(probs: jax.Array, *, min_entropy: float = 1e-6) -> jax.Array:
  """``max(-sum_k p_ik log p_ik, min_entropy)`` per row, ``(n, C) -> (n,)``."""
  p = probs
  ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
  return jnp.maximum(ent, min_entropy)


def darp_objective(m: jax.Array, probs: jax.Array, *, min_entropy: float = 1e-6) -> jax.Array:
  """``sum_i w_i sum_k m_ik log(m_ik / a_ik)`` with ``w_i = 1 / H(a_i)``, a scalar."""
  w = 1.0 / row_entropy(probs, min_entropy=min_entropy)
  safe = jnp.where(m > 0, m, 1.0)
  terms = jnp.where(m > 0, m * (jnp.log(safe) - jnp.log(jnp.where(m > 0, probs, 1.0))), 0.0)
  return jnp.sum(w * terms.sum(axis=-1))


@functools.partial(jax.jit, static_argnames=("num_iters", "num_newton", "min_entropy"))
def refine_pseudo_labels(probs: jax.Array, target_counts: jax.Array, *,
                         mask: jax.Array | None = None, num_iters: int = 10,
                         num_newton: int = 10, min_entropy: float = 1e-6) -> jax.Array:
  """Solves DARP's entropy-weighted KL projection (module docstring).

  Args:
    probs: ``(n, C)`` rows of class probabilities (each row sums to 1).
    target_counts: ``(C,)`` positive class totals ``c``; they should sum to the number of
      valid rows.
    mask: ``(n,)`` bool, rows taking part (others come back as zeros); None = all.
    num_iters: outer iterations (row normalization + per-class Newton). Each is an
      exact block minimization of the dual, so the iterates converge to the optimum;
      the reference uses 10.
    num_newton: Newton steps per class per outer iteration, warm-started from the
      previous ``nu`` (the per-class dual function is convex and monotone, so Newton
      converges monotonically after its first step).
    min_entropy: floor on each row's entropy (a one-hot row would get weight infinity).

  Returns:
    ``(n, C)`` refined matrix: rows sum to 1; columns sum to ``target_counts`` up to the
    convergence of ``num_iters`` iterations.
  """
  if probs.ndim != 2:
    raise UserInputError(f"probs must be (n, C), got shape {tuple(probs.shape)}.")
  if target_counts.shape != probs.shape[1:]:
    raise UserInputError(f"target_counts must have shape ({probs.shape[1]},), "
                         f"got {tuple(target_counts.shape)}.")
  dtype = probs.dtype
  n, _ = probs.shape
  valid = jnp.ones((n,), bool) if mask is None else mask.astype(bool)
  tiny = jnp.finfo(dtype).tiny
  log_a = jnp.where(valid[:, None], jnp.log(jnp.maximum(probs, tiny)) - 1.0, -jnp.inf)
  ent = jnp.where(valid, row_entropy(probs, min_entropy=min_entropy), 1.0).astype(dtype)
  log_c = jnp.log(target_counts.astype(dtype))

  def row_duals(nu):  # log X_i = -logsumexp_k(log a_ik - nu_k H_i): rows sum to one
    log_x = -jax.nn.logsumexp(log_a - nu[None, :] * ent[:, None], axis=1)
    return jnp.where(valid, log_x, 0.0)

  def newton(nu, log_x):
    base = log_a + log_x[:, None]

    def step(_, nu):
      z = base - nu[None, :] * ent[:, None]
      g = jax.nn.logsumexp(z, axis=0) - log_c           # log column sum - log target
      slope = -jnp.sum(jax.nn.softmax(z, axis=0) * ent[:, None], axis=0)
      ok = jnp.isfinite(g) & (slope < 0)
      return jnp.where(ok, nu - g / jnp.where(ok, slope, -1.0), nu)

    return jax.lax.fori_loop(0, num_newton, step, nu)

  def outer(_, nu):
    return newton(nu, row_duals(nu))

  nu = jax.lax.fori_loop(0, num_iters, outer, jnp.zeros(probs.shape[1], dtype))
  log_m = log_a + row_duals(nu)[:, None] - nu[None, :] * ent[:, None]
  return jnp.where(valid[:, None], jnp.exp(log_m), 0.0)


def darp_prescale(probs: jax.Array, target_counts: jax.Array, *, alpha: float = 2.0,
                  mask: jax.Array | None = None) -> jax.Array:
  """The reference's re-weighting before the solver (``estimate_pseudo`` in DARP's code).

  For each class ``k`` the ``floor(alpha * c_k)`` rows with the largest ``probs[:, k]``
  are selected; the class column is scaled by ``c_k / (sum of the selected
  probabilities)`` on selected rows and zeroed elsewhere; rows are renormalized with
  a 1e-6 floor (a row selected by no class becomes uniform).

  Args:
    probs: ``(n, C)``; target_counts: ``(C,)``; mask: ``(n,)`` valid rows or None.

  Returns:
    ``(n, C)`` rows summing to one (invalid rows unchanged).
  """
  n, _ = probs.shape
  valid = jnp.ones((n,), bool) if mask is None else mask.astype(bool)
  score = jnp.where(valid[:, None], probs, -jnp.inf)
  order = jnp.argsort(-score, axis=0, stable=True)
  rank = jnp.argsort(order, axis=0, stable=True)
  quota = jnp.floor(alpha * target_counts).astype(jnp.int32)
  selected = (rank < quota[None, :]) & valid[:, None]
  kept = jnp.sum(jnp.where(selected, probs, 0.0), axis=0)
  weights = (target_counts + 1e-6) / (kept + 1e-6)
  scaled = probs * jnp.where(selected, weights[None, :], 0.0) + 1e-6
  out = scaled / scaled.sum(axis=1, keepdims=True)
  return jnp.where(valid[:, None], out, probs)


class DarpState(NamedTuple):
  """DARP's memory: the latest weak-view softmax of every unlabeled row and the refined
  matrix from the last refinement, both ``(R, C)`` (R = unlabeled-set capacity)."""
  original: jax.Array
  refined: jax.Array


def fixmatch_darp(*, threshold: float = 0.95, lambda_u: float = 1.0, mu: int = 7,
                  weak: Augment | None = None, strong: Augment | None = None,
                  warmup_steps: int = 0, refine_every: int = 10,
                  target_distribution: Any = None, num_iters: int = 10, num_newton: int = 10,
                  alpha: float | None = 2.0) -> Algorithm:
  """FixMatch whose pseudo-labels are refined by DARP.

  Every step stores the weak-view softmax of the sampled unlabeled rows. From
  ``warmup_steps`` on, every ``refine_every`` steps the stored matrix is (optionally)
  pre-scaled as in the reference (``alpha``; None skips it) and refined by
  :func:`refine_pseudo_labels` towards ``target_distribution`` times the number of
  unlabeled rows; between refinements the last refined rows are used. FixMatch's
  threshold is applied to the refined rows. Before the warm-up ends this is FixMatch.

  Args:
    threshold, lambda_u, mu, weak, strong: as in :func:`assljax.ssl.fixmatch.fixmatch`.
    warmup_steps: steps of plain FixMatch before the first refinement.
    refine_every: steps between refinements (10 in the reference).
    target_distribution: ``(C,)`` class proportions of the unlabeled set (normalized
      here); None = uniform.
    num_iters, num_newton: solver iterations (:func:`refine_pseudo_labels`).
    alpha: the reference's pre-scaling quota factor (2), or None.
  """
  check_number("threshold", threshold, low=0.0, high=1.0)
  check_positive("lambda_u", lambda_u, allow_zero=True)
  check_positive("refine_every", refine_every)
  check_positive("warmup_steps", warmup_steps, allow_zero=True)
  if alpha is not None:
    check_positive("alpha", alpha)
  if target_distribution is not None:
    target_distribution = jnp.asarray(target_distribution, jnp.float32)
    if target_distribution.ndim != 1 or bool(jnp.any(target_distribution <= 0)):
      raise UserInputError("target_distribution must be a 1-D array of positive proportions.")
    target_distribution = target_distribution / target_distribution.sum()

  def init_state(num_rows: int, num_classes: int) -> DarpState:
    if target_distribution is not None and target_distribution.shape[0] != num_classes:
      raise UserInputError(f"target_distribution has {target_distribution.shape[0]} classes, "
                           f"the model has {num_classes}.")
    uniform = lambda: jnp.full((num_rows, num_classes), 1.0 / num_classes, jnp.float32)
    return DarpState(uniform(), uniform())  # two buffers: the state is donated

  def pseudo_fn(probs, batch, step, state, num_unlabeled):
    rows = batch.unlabeled_rows
    original = state.original.at[rows].set(probs.astype(state.original.dtype))
    num_rows, num_classes = original.shape
    valid = jnp.arange(num_rows) < num_unlabeled
    proportions = (jnp.full((num_classes,), 1.0 / num_classes, jnp.float32)
                   if target_distribution is None else target_distribution)
    counts = proportions * num_unlabeled.astype(jnp.float32)
    active = step >= warmup_steps
    due = active & ((step - warmup_steps) % refine_every == 0)

    def refine(_):
      base = original if alpha is None else darp_prescale(original, counts, alpha=alpha,
                                                          mask=valid)
      return refine_pseudo_labels(base, counts, mask=valid, num_iters=num_iters,
                                  num_newton=num_newton)

    refined = jax.lax.cond(due, refine, lambda _: state.refined, None)
    targets = jnp.where(active, refined[rows], probs)
    return targets, DarpState(original, refined)

  loss = fixmatch_loss(threshold=threshold, lambda_u=lambda_u, weak=weak or default_weak(),
                       strong=strong or default_strong(), pseudo_fn=pseudo_fn)
  if int(mu) < 1:
    raise UserInputError(f"mu must be a positive integer for FixMatch-DARP, got {mu!r}.")
  return Algorithm(name="fixmatch_darp", loss=loss, mu=int(mu), init_state=init_state)
