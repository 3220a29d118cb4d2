"""BADGE: factorized distances, embeddings = autodiff gradients, k-means++ seeding."""

import jax
import jax.numpy as jnp
import numpy as np

import assljax
from assljax import acquisition
from assljax.acquisition import badge


def _problem(n=30, n_labeled=5, num_classes=4):
  model = assljax.models.build("mlp", num_classes=num_classes, input_shape=(6,), width=7,
                               depth=1)
  variables = model.init(jax.random.key(1))
  params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables.params)
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(1)
  x = jnp.asarray(2.0 * rng.normal(size=(n, 6)), jnp.float64)
  mask = np.zeros(n, bool)
  mask[rng.choice(n, n_labeled, replace=False)] = True
  labels = np.where(mask, rng.integers(0, num_classes, n), 0).astype(np.int32)
  return acquisition.Context(apply_fn=apply_fn, params=params, x=x,
                             labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                             num_classes=num_classes, embed_fn=embed_fn)


def test_embeddings_are_autodiff_last_layer_gradients():
  with jax.enable_x64(True):
    ctx = _problem()
    rows = ctx.unlabeled_indices()
    a, h = acquisition.get("badge", chunk_size=4).factors(ctx, rows)

    def head_grad(xi):
      yhat = jnp.argmax(ctx.apply_fn(ctx.params, xi[None])[0])
      loss = lambda head: -jax.nn.log_softmax(
          ctx.apply_fn(dict(ctx.params, head=head), xi[None])[0])[yhat]
      return jax.grad(loss)(ctx.params["head"])["kernel"]          # (d, C)

    grads = np.asarray(jax.vmap(head_grad)(ctx.x[rows]))
    explicit = np.einsum("nd,nc->ndc", np.asarray(h), np.asarray(a))
    np.testing.assert_allclose(explicit, grads, rtol=1e-10, atol=1e-12)


def test_factorized_distances_equal_explicit_embeddings():
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    a = jnp.asarray(rng.normal(size=(15, 5)))
    h = jnp.asarray(rng.normal(size=(15, 8)))
    g = np.einsum("nd,nc->ndc", np.asarray(h), np.asarray(a)).reshape(15, -1)
    explicit = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    for c in range(15):
      got = badge.factorized_sq_distances(a, h, a[c], h[c])
      np.testing.assert_allclose(np.asarray(got), explicit[:, c], rtol=1e-10, atol=1e-10)


def test_kmeans_pp_first_pick_and_d2_sampling_law():
  # a = 1 (C = 1), so embeddings are the scalars h: distances are (h_i - h_j)^2
  with jax.enable_x64(True):
    a = jnp.ones((4, 1))
    h = jnp.asarray([[10.0], [0.0], [1.0], [2.0]])
    keys = jax.random.split(jax.random.key(0), 2000)
    picks = np.asarray(jax.vmap(lambda k: badge.kmeans_pp_factorized(k, a, h, 2))(keys))
  assert np.all(picks[:, 0] == 0)                         # the largest-norm embedding
  counts = np.bincount(picks[:, 1], minlength=4)[1:]
  expected = 2000 * np.array([100.0, 81.0, 64.0]) / 245.0  # D^2 = 100, 81, 64
  assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))


def test_kmeans_pp_covers_separated_clusters_and_stays_distinct():
  rng = np.random.default_rng(3)
  centers = 50.0 * rng.normal(size=(5, 3))
  h = np.repeat(centers, 8, axis=0) + 0.01 * rng.normal(size=(40, 3))
  a = np.tile(np.array([[0.6, -0.8]]), (40, 1))
  for seed in range(5):
    picks = np.asarray(badge.kmeans_pp_factorized(jax.random.key(seed), jnp.asarray(a),
                                                  jnp.asarray(h), 5))
    assert sorted(picks // 8) == [0, 1, 2, 3, 4]
  # duplicates: only 2 distinct embeddings but 6 picks -> still 6 distinct indices
  h_dup = np.repeat(np.eye(2), 5, axis=0)
  a_dup = np.ones((10, 1))
  picks = np.asarray(badge.kmeans_pp_factorized(jax.random.key(0), jnp.asarray(a_dup),
                                                jnp.asarray(h_dup), 6))
  assert len(set(picks.tolist())) == 6


def test_strategy_picks_unlabeled_and_is_deterministic():
  ctx = _problem()
  strategy = acquisition.get("badge", chunk_size=8)
  idx1 = np.asarray(strategy(jax.random.key(5), ctx, 6))
  idx2 = np.asarray(strategy(jax.random.key(5), ctx, 6))
  np.testing.assert_array_equal(idx1, idx2)
  assert not np.asarray(ctx.labeled_mask)[idx1].any() and len(set(idx1.tolist())) == 6
  # the first pick is the unlabeled sample with the largest gradient embedding norm
  rows = ctx.unlabeled_indices()
  a, h = strategy.factors(ctx, rows)
  norms = np.sum(np.asarray(a) ** 2, 1) * np.sum(np.asarray(h) ** 2, 1)
  assert idx1[0] == rows[np.argmax(norms)]
