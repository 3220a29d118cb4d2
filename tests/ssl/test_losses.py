"""Each loss on hand-made cases, ramp-ups, EMA, and the optimizers' weight-decay mask."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from assljax import models, ssl
from assljax.ssl.algorithm import Batch, LossContext, no_augment
from assljax.ssl.mean_teacher import consistency_mse


def _forward(params, batch_stats, x):
  """A linear 'model' on flattened inputs: logits = x @ W (no BatchNorm)."""
  return x.reshape((x.shape[0], -1)) @ params["w"], batch_stats


def _ce(logits, label):
  logits = np.asarray(logits, np.float64)
  return np.log(np.exp(logits).sum()) - logits[label]


def _softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _ctx(state=(), num_unlabeled=4, ema=None):
  return LossContext(ema, {}, state, jnp.asarray(num_unlabeled, jnp.int32))


X_L = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])
Y_L = jnp.array([0, 2])
# Weak-view logits (W = I): confidences 0.987, 0.787, 0.965, 1/3.
X_U = jnp.array([[5.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 4.0], [1.0, 1.0, 1.0]])
BATCH = Batch(X_L, Y_L, X_U, jnp.arange(4, dtype=jnp.int32))
PARAMS = {"w": jnp.eye(3)}


def test_fixmatch_masks_below_threshold_and_uses_strong_views():
  half = lambda key, x: 0.5 * x  # the "strong" view halves the logits
  alg = ssl.fixmatch(threshold=0.95, lambda_u=2.0, mu=2, weak=no_augment, strong=half)
  value, (_, metrics, _) = alg.loss(_forward, PARAMS, {}, BATCH, jax.random.key(0), 0, _ctx())
  loss_x = (_ce(X_L[0], 0) + _ce(X_L[1], 2)) / 2
  # Rows 0 and 2 pass the threshold (pseudo-labels 0 and 2); 1 and 3 are masked out.
  loss_u = (_ce(0.5 * X_U[0], 0) + _ce(0.5 * X_U[2], 2)) / 4
  np.testing.assert_allclose(metrics["loss_x"], loss_x, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss_u"], loss_u, rtol=1e-6)
  np.testing.assert_allclose(metrics["mask_rate"], 0.5)
  np.testing.assert_allclose(value, loss_x + 2.0 * loss_u, rtol=1e-6)
  # Gradient: pseudo-labels are constants; the weak view carries no loss.
  grad = jax.grad(lambda p: alg.loss(_forward, p, {}, BATCH, jax.random.key(0), 0,
                                     _ctx())[0])(PARAMS)["w"]
  expected = np.zeros((3, 3))
  for x, y, weight in [(X_L[0], 0, 0.5), (X_L[1], 2, 0.5), (0.5 * X_U[0], 0, 2.0 / 4),
                       (0.5 * X_U[2], 2, 2.0 / 4)]:
    x = np.asarray(x, np.float64)
    residual = _softmax(x) - np.eye(3)[y]
    expected += weight * np.outer(x, residual)
  np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_fixmatch_threshold_zero_and_one():
  everything = ssl.fixmatch(threshold=0.0, mu=2, weak=no_augment, strong=no_augment)
  nothing = ssl.fixmatch(threshold=1.0, mu=2, weak=no_augment, strong=no_augment)
  _, (_, m_all, _) = everything.loss(_forward, PARAMS, {}, BATCH, jax.random.key(0), 0, _ctx())
  _, (_, m_none, _) = nothing.loss(_forward, PARAMS, {}, BATCH, jax.random.key(0), 0, _ctx())
  assert float(m_all["mask_rate"]) == 1.0 and float(m_none["mask_rate"]) == 0.0
  expected = np.mean([_ce(u, int(np.argmax(u))) for u in np.asarray(X_U)])
  np.testing.assert_allclose(m_all["loss_u"], expected, rtol=1e-6)
  assert float(m_none["loss_u"]) == 0.0


def test_supervised_is_cross_entropy_on_labeled():
  alg = ssl.supervised(weak=no_augment)
  assert alg.mu == 0
  value, (stats, metrics, _) = alg.loss(_forward, PARAMS, {"s": 1}, BATCH, jax.random.key(0),
                                        0, _ctx())
  np.testing.assert_allclose(value, (_ce(X_L[0], 0) + _ce(X_L[1], 2)) / 2, rtol=1e-6)
  assert stats == {"s": 1} and float(metrics["accuracy_x"]) == 0.5  # row 2 predicts 1


def test_sharpen_closed_form():
  p = jnp.array([[0.6, 0.3, 0.1], [0.25, 0.25, 0.5]])
  expected = np.asarray(p) ** 2 / (np.asarray(p) ** 2).sum(axis=1, keepdims=True)
  np.testing.assert_allclose(ssl.sharpen(p, 0.5), expected, rtol=1e-6)
  np.testing.assert_allclose(ssl.sharpen(p, 1.0), p, rtol=1e-6)
  hard = ssl.sharpen(p, 1e-3)
  np.testing.assert_allclose(hard[0], [1.0, 0.0, 0.0], atol=1e-6)


def test_mixup_is_a_convex_combination_with_its_permutation():
  x = jax.random.normal(jax.random.key(0), (6, 2, 2, 1))
  t = jax.nn.one_hot(jnp.arange(6) % 3, 3)
  mix = jax.jit(functools.partial(ssl.mixup, alpha=0.75))
  xm, tm, lam, perm = mix(jax.random.key(1), x, t)
  assert 0.5 <= float(lam) <= 1.0
  assert sorted(np.asarray(perm).tolist()) == list(range(6))
  np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[perm], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(tm, lam * t + (1 - lam) * t[perm], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(tm.sum(axis=1), 1.0, rtol=1e-6)
  lams = np.array([float(mix(jax.random.key(s), x, t)[2]) for s in range(2, 26)])
  assert lams.min() >= 0.5 and lams.std() > 0.05  # really random, folded to [0.5, 1]


def test_mixmatch_loss_by_hand():
  alg = ssl.mixmatch(num_views=2, temperature=0.5, alpha=0.75, lambda_u=75.0,
                     rampup_steps=100, mu=2, weak=no_augment)
  key, step = jax.random.key(3), 50
  value, (_, metrics, _) = alg.loss(_forward, PARAMS, {}, BATCH, key, step, _ctx())
  # Same draws as the loss: keys = split(key, K + 2), mixup with the last one.
  keys = jax.random.split(key, 4)
  guess = ssl.sharpen(jnp.asarray(_softmax(X_U), jnp.float32), 0.5)
  inputs = jnp.concatenate([X_L, X_U, X_U])
  targets = jnp.concatenate([jax.nn.one_hot(Y_L, 3), guess, guess])
  xm, tm, lam, _ = ssl.mixup(keys[-1], inputs, targets, alpha=0.75)
  logits = np.asarray(xm, np.float64)
  tm = np.asarray(tm, np.float64)
  log_p = np.log(_softmax(logits))
  loss_x = -np.mean((tm[:2] * log_p[:2]).sum(axis=1))
  loss_u = np.mean((_softmax(logits[2:]) - tm[2:]) ** 2)
  np.testing.assert_allclose(metrics["mixup_lambda"], lam)
  np.testing.assert_allclose(metrics["loss_x"], loss_x, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss_u"], loss_u, rtol=1e-5)
  np.testing.assert_allclose(metrics["weight_u"], 75.0 * 0.5)  # linear ramp at 50/100
  np.testing.assert_allclose(value, loss_x + 37.5 * loss_u, rtol=1e-5)


def test_mean_teacher_consistency_by_hand():
  alg = ssl.mean_teacher(consistency=100.0, rampup_steps=10, mu=2, weak=no_augment)
  teacher = {"w": jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 1.5]])}
  ctx = _ctx(ema=teacher)
  value, (_, metrics, _) = alg.loss(_forward, PARAMS, {}, BATCH, jax.random.key(0), 5, ctx)
  xs = np.concatenate([np.asarray(X_L), np.asarray(X_U)])
  student, teach = xs, xs @ np.asarray(teacher["w"], np.float64)
  loss_c = np.mean((_softmax(student) - _softmax(teach)) ** 2)
  weight = 100.0 * np.exp(-5 * (1 - 0.5) ** 2)
  loss_x = (_ce(X_L[0], 0) + _ce(X_L[1], 2)) / 2
  np.testing.assert_allclose(metrics["loss_u"], loss_c, rtol=1e-5)
  np.testing.assert_allclose(metrics["weight_u"], weight, rtol=1e-6)
  np.testing.assert_allclose(value, loss_x + weight * loss_c, rtol=1e-5)
  # The teacher is a target: no gradient flows into it.
  g = jax.grad(lambda t: alg.loss(_forward, PARAMS, {}, BATCH, jax.random.key(0), 5,
                                  _ctx(ema=t))[0])(teacher)
  assert float(jnp.abs(g["w"]).max()) == 0.0
  np.testing.assert_allclose(consistency_mse(jnp.zeros((2, 3)), jnp.zeros((2, 3))), 0.0)


def test_rampups_closed_forms():
  np.testing.assert_allclose(ssl.sigmoid_rampup(0, 100), np.exp(-5.0), rtol=1e-6)
  np.testing.assert_allclose(ssl.sigmoid_rampup(25, 100), np.exp(-5 * 0.75 ** 2), rtol=1e-6)
  assert float(ssl.sigmoid_rampup(100, 100)) == 1.0 == float(ssl.sigmoid_rampup(500, 100))
  assert float(ssl.sigmoid_rampup(3, 0)) == 1.0
  np.testing.assert_allclose(ssl.linear_rampup(4, 16), 0.25)
  assert float(ssl.linear_rampup(40, 16)) == 1.0 and float(ssl.linear_rampup(0, 16)) == 0.0


def test_ema_update_and_mean_teacher_schedule():
  ema = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([0.0], jnp.bfloat16)}
  new = {"a": jnp.array([3.0, -2.0]), "b": jnp.array([1.0], jnp.bfloat16)}
  out = ssl.ema_update(ema, new, 0.75)
  np.testing.assert_allclose(out["a"], [1.5, 1.0])
  assert out["b"].dtype == jnp.bfloat16 and float(out["b"][0]) == 0.25
  decay = lambda s: float(ssl.mean_teacher_decay(s, rampup_steps=2000))
  assert decay(0) == 0.0
  np.testing.assert_allclose(decay(9), 0.9, rtol=1e-6)
  np.testing.assert_allclose(decay(1000), 0.99, rtol=1e-6)
  np.testing.assert_allclose(decay(3000), 0.999, rtol=1e-6)


def _leaf_names(tree):
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def test_weight_decay_mask_covers_exactly_the_kernels():
  model = models.build("wrn-28-2", num_classes=10, input_shape=(32, 32, 3))
  params = nnx.to_pure_dict(model.params_template)
  mask = ssl.kernel_mask(params)
  names = dict(_leaf_names(mask))
  kernels = [k for k in names if k.endswith("['kernel']")]
  assert kernels and all(names[k] for k in kernels)
  assert not any(v for k, v in names.items() if not k.endswith("['kernel']"))
  # 25 convolutions (stem, 2 per block, 3 projection shortcuts) + the dense head.
  assert len(kernels) == 1 + 2 * 12 + 3 + 1
  assert names["['head']['kernel']"] and not names["['head']['bias']"]
  assert not names["['bn']['scale']"] and not names["['blocks'][0]['bn1']['bias']"]


def _tiny_params():
  return {"conv": {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.full((2,), 3.0)},
          "bn": {"scale": jnp.full((2,), 4.0)}}


def test_sgd_nesterov_decays_kernels_only():
  lr, wd = 0.1, 0.01
  opt = ssl.sgd(lr, total_steps=100, weight_decay=wd)
  params = _tiny_params()
  state = opt.init(params)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, state = opt.update(zeros, state, params)
  # Coupled decay g = wd * w, then Nesterov: update = -lr (g + 0.9 * g) at step 0.
  np.testing.assert_allclose(updates["conv"]["kernel"], -lr * 1.9 * wd * 2.0, rtol=1e-6)
  assert float(jnp.abs(updates["conv"]["bias"]).max()) == 0.0
  assert float(jnp.abs(updates["bn"]["scale"]).max()) == 0.0
  # A gradient on the bias goes through plain Nesterov SGD.
  grads = {"conv": {"kernel": jnp.zeros((2, 2)), "bias": jnp.ones((2,))},
           "bn": {"scale": jnp.zeros((2,))}}
  updates, _ = ssl.sgd(lr, total_steps=100, weight_decay=wd).update(
      grads, ssl.sgd(lr, total_steps=100, weight_decay=wd).init(params), params)
  np.testing.assert_allclose(updates["conv"]["bias"], -lr * 1.9, rtol=1e-6)


def test_adam_decoupled_decay_on_kernels_only():
  lr, wd = 2e-3, 0.02
  opt = ssl.adam(lr, weight_decay=wd)
  params = _tiny_params()
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = opt.update(zeros, opt.init(params), params)
  np.testing.assert_allclose(updates["conv"]["kernel"], -lr * wd * 2.0, rtol=1e-6)
  assert float(jnp.abs(updates["conv"]["bias"]).max()) == 0.0
  assert float(jnp.abs(updates["bn"]["scale"]).max()) == 0.0


def test_fixmatch_cosine_schedule():
  schedule = ssl.fixmatch_schedule(0.03, 1000)
  np.testing.assert_allclose(schedule(0), 0.03)
  np.testing.assert_allclose(schedule(500), 0.03 * np.cos(7 * np.pi / 32), rtol=1e-6)
  np.testing.assert_allclose(schedule(1000), 0.03 * np.cos(7 * np.pi / 16), rtol=1e-6)
  np.testing.assert_allclose(schedule(5000), schedule(1000))  # held after K


@pytest.mark.parametrize("make,kwargs", [
    (ssl.fixmatch, {"threshold": 1.5}), (ssl.fixmatch, {"mu": 0}),
    (ssl.mixmatch, {"temperature": 0.0}), (ssl.mean_teacher, {"consistency": -1.0}),
    (ssl.fixmatch_darp, {"refine_every": 0}),
    (ssl.fixmatch_darp, {"target_distribution": [0.5, -0.5]}),
])
def test_bad_hyperparameters_raise(make, kwargs):
  with pytest.raises(ValueError):
    make(weak=no_augment, **kwargs) if make is not ssl.fixmatch_darp else make(
        weak=no_augment, strong=no_augment, **kwargs)
