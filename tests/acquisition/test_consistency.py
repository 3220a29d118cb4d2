"""Consistency-based selection (Gao et al. 2020) against a float64 brute force."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import assljax
from assljax import acquisition
from assljax.acquisition import consistency
from assljax.ssl.augment import weak_augment

N, C, SIDE = 16, 3, 6


def _image_ctx(*, x64=False, seed=0, n_labeled=4):
  model = assljax.models.build("mlp", num_classes=C, input_shape=(SIDE, SIDE, 3), width=8,
                               depth=1)
  variables = model.init(jax.random.key(seed))
  params = variables.params
  if x64:
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(N, SIDE, SIDE, 3))
  x[5] = 0.3            # constant images: every flip / reflect-pad crop is the image itself
  x[9] = 0.8
  mask = np.zeros(N, bool)
  mask[rng.choice(np.setdiff1d(np.arange(N), [5, 9]), n_labeled, replace=False)] = True
  labels = np.where(mask, rng.integers(0, C, N), 0).astype(np.int32)
  return acquisition.Context(apply_fn=apply_fn, params=params,
                             x=jnp.asarray(x, jnp.float32), labeled_mask=jnp.asarray(mask),
                             labels=jnp.asarray(labels), num_classes=C, embed_fn=embed_fn)


def _view_probs(ctx, key, rows, views, *, flip=True, pad=2, original=False):
  """(n, K, C) float64 softmax of the documented views, one sample and one view at a time."""
  out = []
  for i in rows:
    xi = ctx.x[i][None]
    keys = jax.random.split(jax.random.fold_in(key, int(i)), views)
    imgs = [weak_augment(k, xi, flip=flip, pad=pad) for k in keys]
    if original:
      imgs = [xi] + imgs
    logits = np.concatenate([np.asarray(ctx.apply_fn(ctx.params, im), np.float64)
                             for im in imgs])
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    out.append(z / z.sum(axis=1, keepdims=True))
  return np.stack(out)


def test_consistency_scores_closed_form():
  probs = np.random.default_rng(1).dirichlet(np.ones(4), size=(7, 5))   # (n, K, C)
  with jax.enable_x64(True):
    got = np.asarray(consistency.consistency_scores(jnp.asarray(probs)))
  np.testing.assert_allclose(got, np.var(probs, axis=1).sum(axis=1), rtol=1e-12)
  same = np.repeat(probs[:, :1], 5, axis=1)                            # identical views
  assert np.all(np.abs(np.asarray(consistency.consistency_scores(jnp.asarray(same)))) < 1e-12)


@pytest.mark.parametrize("original, chunk_size", [(False, 5), (True, None)])
def test_scores_and_selection_match_brute_force(original, chunk_size):
  with jax.enable_x64(True):
    ctx = _image_ctx(x64=True)
    rows = ctx.unlabeled_indices()
    strategy = acquisition.get("consistency", augmentations=5, augment_pad=2,
                               include_original=original, chunk_size=chunk_size)
    key = jax.random.key(3)
    probs = _view_probs(ctx, key, rows, 5, original=original)
    want = np.var(probs, axis=1).sum(axis=1)                  # Gao et al.: sum_c Var_k
    got = np.asarray(strategy.scores(key, ctx, rows))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    const = np.isin(rows, [5, 9])
    assert np.all(got[const] < 1e-20) and np.all(got[~const] > 1e-8)   # 0 up to rounding
    # the strategy scores with fold_in(key, 0); ties are broken by a random order
    sel_key = jax.random.key(11)
    want = np.var(_view_probs(ctx, jax.random.fold_in(sel_key, 0), rows, 5,
                              original=original), axis=1).sum(axis=1)
    order = np.argsort(-want, kind="stable")
    assert want[order[3]] - want[order[4]] > 1e-9 * want.max()
    idx = np.asarray(strategy(sel_key, ctx, 4))
    assert idx.dtype == np.int32
    np.testing.assert_array_equal(np.sort(idx), np.sort(rows[order[:4]]))
    np.testing.assert_array_equal(np.asarray(strategy(sel_key, ctx, 4)), idx)


def test_deterministic_for_a_key_and_the_views_depend_on_it():
  ctx = _image_ctx()
  strategy = acquisition.get("consistency", augment_pad=2, chunk_size=4)
  rows = ctx.unlabeled_indices()
  a = np.asarray(strategy.scores(jax.random.key(0), ctx, rows))
  b = np.asarray(strategy.scores(jax.random.key(0), ctx, rows))
  c = np.asarray(strategy.scores(jax.random.key(1), ctx, rows))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  # a row's views depend on its pool index, not on which rows are scored with it
  np.testing.assert_allclose(np.asarray(strategy.scores(jax.random.key(0), ctx, rows[::-1])),
                             a[::-1], rtol=1e-6)
  # the constant images never come before an informative one
  idx = np.asarray(strategy(jax.random.key(2), ctx, len(rows) - 2))
  assert not np.isin(idx, [5, 9]).any()
  # raw uint32 keys (the loop's jax.random.PRNGKey) give the same views as typed ones
  raw = np.asarray(strategy.scores(jax.random.key_data(jax.random.key(0)), ctx, rows))
  np.testing.assert_array_equal(raw, a)


def test_non_image_pool_is_unaugmented_and_random():
  model = assljax.models.build("mlp", num_classes=C, input_shape=(5,), width=8, depth=1)
  variables = model.init(jax.random.key(0))
  apply_fn, _ = model.bind(variables.batch_stats)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(30, 5)), jnp.float32)
  mask = np.zeros(30, bool)
  mask[:6] = True
  ctx = acquisition.Context(apply_fn=apply_fn, params=variables.params, x=x,
                            labeled_mask=jnp.asarray(mask), labels=jnp.zeros(30, jnp.int32),
                            num_classes=C)
  strategy = acquisition.get("consistency", chunk_size=7)
  rows = ctx.unlabeled_indices()
  assert np.all(np.asarray(strategy.scores(jax.random.key(0), ctx, rows)) == 0.0)
  picks = [np.asarray(strategy(jax.random.key(s), ctx, 4)) for s in range(6)]
  assert all(p.min() >= 6 for p in picks)
  assert len({tuple(p) for p in picks}) > 1            # not always the lowest indices


def test_bad_hyperparameters_and_inputs():
  for bad in (dict(augmentations=1), dict(augmentations=2.5), dict(augment_pad=-1),
              dict(chunk_size=0), dict(views=3)):
    with pytest.raises(ValueError):
      acquisition.get("consistency", **bad)
  ctx = _image_ctx()
  with pytest.raises(ValueError, match="pad"):
    acquisition.get("consistency", augment_pad=SIDE)(jax.random.key(0), ctx, 2)
  params = jax.tree_util.tree_map(lambda a: a, ctx.params)
  params["head"]["bias"] = params["head"]["bias"].at[0].set(jnp.nan)
  with pytest.raises(ValueError, match="NaN"):
    acquisition.get("consistency", augment_pad=2)(jax.random.key(0),
                                                   dataclasses.replace(ctx, params=params), 2)


def test_contract_on_an_image_pool():
  ctx = _image_ctx()
  strategy = acquisition.get("consistency", augment_pad=2, augment_flip=False, chunk_size=8)
  remaining = int(N - np.asarray(ctx.labeled_mask).sum())
  for c, budget in ((ctx, remaining),
                    (dataclasses.replace(ctx, labeled_mask=jnp.zeros(N, bool)), 5)):
    idx = np.asarray(strategy(jax.random.key(0), c, budget))
    assert idx.dtype == np.int32 and idx.shape == (budget,) and len(set(idx)) == budget
    assert not np.asarray(c.labeled_mask)[idx].any()
  with pytest.raises(ValueError):
    strategy(jax.random.key(0), ctx, remaining + 1)
