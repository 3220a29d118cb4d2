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


# ----------------------------------------------------------------------------------------
# Scores averaged over weakly augmented views (Bilevel §3: max-entropy over 2 augmentations).


def _image_problem(n=14, side=6, num_classes=3, x64=False):
  model = assljax.models.build("mlp", num_classes=num_classes, input_shape=(side, side, 3),
                               width=8, depth=1)
  variables = model.init(jax.random.key(1))
  params = variables.params
  if x64:
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
  apply_fn, _ = model.bind(variables.batch_stats)
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(n, side, side, 3))
  x[3] = 0.6                     # a constant image: every augmented view equals it
  mask = np.zeros(n, bool)
  mask[[0, 7]] = True
  return acquisition.Context(apply_fn=apply_fn, params=params, x=jnp.asarray(x, jnp.float32),
                             labeled_mask=jnp.asarray(mask), labels=jnp.zeros(n, jnp.int32),
                             num_classes=num_classes)


def _mean_view_probs(ctx, key, rows, views, pad):
  """float64 mean softmax over the documented views, one sample and one view at a time."""
  from assljax.ssl.augment import weak_augment
  out = []
  for i in rows:
    keys = jax.random.split(jax.random.fold_in(key, int(i)), views)
    logits = np.concatenate([
        np.asarray(ctx.apply_fn(ctx.params, weak_augment(k, ctx.x[i][None], pad=pad)),
                   np.float64) for k in keys])
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    out.append((z / z.sum(axis=1, keepdims=True)).mean(axis=0))
  return np.stack(out)


def _numpy_prob_scores(p, kind):
  if kind == "entropy":
    return -(p * np.log(p)).sum(axis=1)
  if kind == "margin":
    s = np.sort(p, axis=1)
    return s[:, -2] - s[:, -1]
  return 1.0 - p.max(axis=1)


@pytest.mark.parametrize("kind", ["entropy", "margin", "confidence"])
def test_scores_averaged_over_augmentations_match_brute_force(kind):
  with jax.enable_x64(True):
    ctx = _image_problem(x64=True)
    rows = ctx.unlabeled_indices()
    key = jax.random.key(5)
    strategy = acquisition.get(kind, augmentations=2, augment_pad=2, chunk_size=5)
    got = np.asarray(strategy.scores(ctx, rows, key))
    pbar = _mean_view_probs(ctx, key, rows, 2, 2)
    want = _numpy_prob_scores(pbar, kind)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # the option changes the score, except on the constant image (all views identical)
    plain = np.asarray(acquisition.get(kind).scores(ctx, rows))
    const = rows == 3
    np.testing.assert_allclose(got[const], plain[const], rtol=1e-9)
    assert np.abs(got[~const] - plain[~const]).max() > 1e-6
    # selection: top-k of the scores with the key passed to the strategy
    order = np.argsort(-want, kind="stable")
    assert want[order[3]] - want[order[4]] > 1e-6, "near tie at the cut; pick another seed"
    np.testing.assert_array_equal(np.asarray(strategy(key, ctx, 4)), rows[order[:4]])


def test_augmented_entropy_is_deterministic_per_key_and_chunking_free():
  ctx = _image_problem()
  rows = ctx.unlabeled_indices()
  a = acquisition.get("entropy", augmentations=2, augment_pad=2, chunk_size=3)
  b = acquisition.get("entropy", augmentations=2, augment_pad=2, chunk_size=None)
  s = np.asarray(a.scores(ctx, rows, jax.random.key(0)))
  np.testing.assert_allclose(np.asarray(b.scores(ctx, rows, jax.random.key(0))), s, rtol=1e-6)
  assert not np.allclose(np.asarray(a.scores(ctx, rows, jax.random.key(1))), s)
  np.testing.assert_array_equal(np.asarray(a(jax.random.key(4), ctx, 5)),
                                np.asarray(a(jax.random.key(4), ctx, 5)))


def test_augmentations_leave_non_image_pools_alone_and_bad_options_raise():
  ctx = _problem()                                    # (n, 5) inputs: not images
  rows = ctx.unlabeled_indices()
  plain = acquisition.get("entropy", chunk_size=7)
  aug = acquisition.get("entropy", augmentations=2, chunk_size=7)
  np.testing.assert_array_equal(np.asarray(aug.scores(ctx, rows, jax.random.key(0))),
                                np.asarray(plain.scores(ctx, rows)))
  np.testing.assert_array_equal(np.asarray(aug(jax.random.key(0), ctx, 5)),
                                np.asarray(plain(jax.random.key(0), ctx, 5)))
  for bad in (dict(augmentations=-1), dict(augmentations=1.5), dict(augment_pad=-2)):
    with pytest.raises(ValueError, match="augment"):
      acquisition.get("entropy", **bad)
