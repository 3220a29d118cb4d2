"""EGL against an autodiff computation of the expected gradient length (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import assljax
from assljax import acquisition
from assljax.acquisition import egl


def _problem(n=24, n_labeled=5, num_classes=3):
  model = assljax.models.build("mlp", num_classes=num_classes, input_shape=(4,), width=8,
                               depth=2)
  variables = model.init(jax.random.key(0))
  params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables.params)
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(0)
  x = jnp.asarray(2.0 * rng.normal(size=(n, 4)), jnp.float64)
  mask = np.zeros(n, bool)
  mask[:n_labeled] = True
  labels = np.where(mask, rng.integers(0, num_classes, n), 0).astype(np.int32)
  return acquisition.Context(apply_fn=apply_fn, params=params, x=x,
                             labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                             num_classes=num_classes, embed_fn=embed_fn)


def _autodiff_egl(ctx, rows, which, squared):
  """sum_y p(y|x) ||grad l(x, y)||: jax.grad of one sample's loss, for every (x, y)."""

  def sq_norm(xi, y):
    def loss(sub):
      params = dict(ctx.params, head=sub) if which == "last_layer" else sub
      return -jax.nn.log_softmax(ctx.apply_fn(params, xi[None])[0])[y]
    g = jax.grad(loss)(ctx.params["head"] if which == "last_layer" else ctx.params)
    return sum(jnp.sum(leaf ** 2) for leaf in jax.tree_util.tree_leaves(g))

  classes = jnp.arange(ctx.num_classes)
  x = ctx.x[rows]
  sq = jax.jit(jax.vmap(jax.vmap(sq_norm, in_axes=(None, 0)), in_axes=(0, None)))(x, classes)
  p = np.asarray(jax.nn.softmax(ctx.apply_fn(ctx.params, x), axis=-1))
  sq = np.asarray(sq)
  return np.sum(p * (sq if squared else np.sqrt(sq)), axis=1)


@pytest.mark.parametrize("which", ["last_layer", "all"])
@pytest.mark.parametrize("squared", [False, True])
def test_egl_equals_autodiff(which, squared):
  with jax.enable_x64(True):
    ctx = _problem()
    rows = ctx.unlabeled_indices()
    strategy = acquisition.get("egl", params=which, squared=squared, chunk_size=5)
    got = np.asarray(strategy.scores(ctx, rows))
    want = _autodiff_egl(ctx, rows, which, squared)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    idx = strategy(jax.random.key(0), ctx, 4)
    np.testing.assert_array_equal(np.asarray(idx), rows[np.argsort(-want, kind="stable")[:4]])


def test_closed_form_identity():
  # ||p - e_y||^2 (||h||^2 + 1) is the squared norm of the (W, b) gradient
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    h = jnp.asarray(rng.normal(size=(6, 5)))
    w = jnp.asarray(rng.normal(size=(5, 4)))
    b = jnp.asarray(rng.normal(size=(4,)))
    got = egl.last_layer_egl(h, w, b, squared=True)
    p = np.asarray(jax.nn.softmax(h @ w + b[None, :], axis=-1))
    want = [sum(p[i, y] * (np.sum((p[i] - np.eye(4)[y]) ** 2) * (np.sum(h[i] ** 2) + 1))
                for y in range(4)) for i in range(6)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9)


def test_last_layer_needs_embed_fn():
  ctx = _problem()
  ctx = acquisition.Context(**{**ctx.__dict__, "embed_fn": None})
  with pytest.raises(ValueError, match="embed_fn"):
    acquisition.get("egl")(jax.random.key(0), ctx, 2)


def test_crc_form_is_all_parameter_expected_squared_norm():
  """CRC §4.2: argmax_x E_{y ~ p(y|x)} ||grad_theta H(y, f(x))||^2 over ALL parameters.

  Brute force: one jax.grad of the cross-entropy per sample and per class (Python loops),
  float64, summed over every parameter leaf.
  """
  with jax.enable_x64(True):
    ctx = _problem(n=14, n_labeled=4)
    rows = ctx.unlabeled_indices()
    leaves = jax.tree_util.tree_leaves(ctx.params)
    assert len(leaves) >= 6        # hidden layers and head: not just the last layer

    def cross_entropy(params, xi, y):
      return -jax.nn.log_softmax(ctx.apply_fn(params, xi[None])[0])[y]

    grad = jax.jit(jax.grad(cross_entropy))
    want = []
    for i in rows:
      p = np.asarray(jax.nn.softmax(ctx.apply_fn(ctx.params, ctx.x[i][None])[0]))
      total = 0.0
      for y in range(ctx.num_classes):
        g = grad(ctx.params, ctx.x[i], y)
        total += p[y] * sum(float(np.sum(np.asarray(leaf) ** 2))
                            for leaf in jax.tree_util.tree_leaves(g))
      want.append(total)
    want = np.asarray(want)

    strategy = acquisition.get("egl", params="all", squared=True, chunk_size=4)
    got = np.asarray(strategy.scores(ctx, rows))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    order = np.argsort(-want, kind="stable")
    assert want[order[2]] - want[order[3]] > 1e-8 * want.max()   # no near tie at the cut
    np.testing.assert_array_equal(np.asarray(strategy(jax.random.key(0), ctx, 3)),
                                  rows[order[:3]])
    # the head is part of "all", so the all-parameter score dominates the last-layer one
    last = np.asarray(acquisition.get("egl", squared=True).scores(ctx, rows))
    assert np.all(want > last * (1 + 1e-6))
