"""Core-set equals a brute-force k-center greedy on the full distance matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import assljax
from assljax import acquisition
from assljax.acquisition import coreset


def _problem(n=50, n_labeled=6, seed=0):
  model = assljax.models.build("mlp", num_classes=3, input_shape=(4,), width=6, depth=1)
  variables = model.init(jax.random.key(seed))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(n, 4)), jnp.float32)
  mask = np.zeros(n, bool)
  mask[rng.choice(n, n_labeled, replace=False)] = True
  labels = np.where(mask, rng.integers(0, 3, n), 0).astype(np.int32)
  return acquisition.Context(apply_fn=apply_fn, params=variables.params, x=x,
                             labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                             num_classes=3, embed_fn=embed_fn)


def _brute_force_k_center(features, labeled, k, first=None):
  f = np.asarray(features, np.float64)
  dist = np.sqrt(((f[:, None, :] - f[None, :, :]) ** 2).sum(-1))   # full n x n
  centers = list(np.flatnonzero(labeled))
  picks = []
  for _ in range(k):
    if not centers:
      c = first
    else:
      min_d = dist[:, centers].min(axis=1)
      min_d[centers] = -1.0
      c = int(np.argmax(min_d))
    picks.append(c)
    centers.append(c)
  return np.asarray(picks)


@pytest.mark.parametrize("chunk_size", [7, None])
def test_coreset_equals_brute_force_k_center(chunk_size):
  ctx = _problem()
  idx = acquisition.get("coreset", chunk_size=chunk_size)(jax.random.key(0), ctx, 8)
  features = ctx.embed_fn(ctx.params, ctx.x)
  np.testing.assert_array_equal(np.asarray(idx),
                                _brute_force_k_center(features, ctx.labeled_mask, 8))


def test_empty_labeled_set_starts_from_a_keyed_random_point():
  ctx = _problem(n_labeled=0)
  strategy = acquisition.get("coreset")
  idx = np.asarray(strategy(jax.random.key(3), ctx, 6))
  np.testing.assert_array_equal(idx, np.asarray(strategy(jax.random.key(3), ctx, 6)))
  features = ctx.embed_fn(ctx.params, ctx.x)
  np.testing.assert_array_equal(
      idx, _brute_force_k_center(features, ctx.labeled_mask, 6, first=int(idx[0])))
  firsts = {int(strategy(jax.random.key(s), ctx, 1)[0]) for s in range(20)}
  assert len(firsts) > 5


def test_min_sq_distances_streams_to_the_same_values():
  rng = np.random.default_rng(1)
  f = jnp.asarray(rng.normal(size=(37, 5)))
  c = jnp.asarray(rng.normal(size=(9, 5)))
  want = ((np.asarray(f)[:, None] - np.asarray(c)[None]) ** 2).sum(-1).min(1)
  for chunk in (4, 37, None):
    np.testing.assert_allclose(np.asarray(coreset.min_sq_distances(f, c, chunk_size=chunk)),
                               want, rtol=1e-5, atol=1e-5)
