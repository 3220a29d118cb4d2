"""random / entropy / margin / least confidence against numpy on tiny problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import assljax
from assljax import acquisition
from assljax.acquisition import uncertainty


def _problem(n=40, n_labeled=6, num_classes=4, seed=0):
  model = assljax.models.build("mlp", num_classes=num_classes, input_shape=(5,), width=16,
                               depth=1)
  variables = model.init(jax.random.key(seed))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(seed)
  x = jnp.asarray(3.0 * rng.normal(size=(n, 5)), jnp.float32)
  mask = np.zeros(n, bool)
  mask[rng.choice(n, n_labeled, replace=False)] = True
  labels = np.where(mask, rng.integers(0, num_classes, n), 0).astype(np.int32)
  return acquisition.Context(apply_fn=apply_fn, params=variables.params, x=x,
                             labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                             num_classes=num_classes, embed_fn=embed_fn)


def _numpy_scores(logits, kind):
  logits = np.asarray(logits, np.float64)
  z = logits - logits.max(axis=1, keepdims=True)
  p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
  if kind == "entropy":
    return -(p * np.log(p)).sum(axis=1)
  if kind == "margin":
    s = np.sort(p, axis=1)
    return s[:, -2] - s[:, -1]
  return 1.0 - p.max(axis=1)


@pytest.mark.parametrize("kind", ["entropy", "margin", "confidence"])
def test_scores_match_numpy(kind):
  logits = np.random.default_rng(1).normal(size=(50, 6)) * 3
  with jax.enable_x64(True):
    got = uncertainty.uncertainty_scores(jnp.asarray(logits), kind)
  np.testing.assert_allclose(np.asarray(got), _numpy_scores(logits, kind), rtol=1e-12,
                             atol=1e-12)


@pytest.mark.parametrize("kind", ["entropy", "margin", "confidence"])
@pytest.mark.parametrize("chunk_size", [7, None])
def test_selection_is_numpy_top_k_of_unlabeled(kind, chunk_size):
  ctx = _problem()
  idx = acquisition.get(kind, chunk_size=chunk_size)(jax.random.key(0), ctx, 5)
  logits = np.asarray(ctx.apply_fn(ctx.params, ctx.x))
  scores = _numpy_scores(logits, kind)
  scores[np.asarray(ctx.labeled_mask)] = -np.inf
  expected = np.argsort(-scores, kind="stable")[:5]
  np.testing.assert_array_equal(np.asarray(idx), expected)
  assert idx.dtype == jnp.int32


def test_scores_flag_nonfinite_rows():
  logits = jnp.asarray([[0.0, 1.0], [jnp.nan, 0.0], [jnp.inf, 0.0]])
  for kind in ("entropy", "margin", "confidence"):
    s = np.asarray(uncertainty.uncertainty_scores(logits, kind))
    assert np.isfinite(s[0]) and np.isnan(s[1]) and np.isnan(s[2])


def test_random_is_uniform_over_unlabeled_only():
  ctx = _problem(n=12, n_labeled=4)
  strategy = acquisition.get("random")
  counts = np.zeros(12)
  for seed in range(300):
    counts[np.asarray(strategy(jax.random.key(seed), ctx, 3))] += 1
  mask = np.asarray(ctx.labeled_mask)
  assert counts[mask].sum() == 0
  # 300 draws x 3 picks over 8 unlabeled: each expected 112.5 times (binomial sd ~ 8.6)
  assert np.all(np.abs(counts[~mask] - 112.5) < 45)
