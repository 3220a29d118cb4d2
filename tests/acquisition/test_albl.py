"""ALBL: the bandit follows its update rule; the state round-trips through orbax."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from assljax import acquisition
from assljax.acquisition import albl

N, C = 30, 3


def _apply(params, x):
  # a lookup table: row i of the pool gets logits params["table"][i]
  return params["table"][x[:, 0].astype(jnp.int32)]


def _embed(params, x):
  del params
  return x[:, 1:]


def _context(table, labeled, labels, state=None):
  rng = np.random.default_rng(0)
  x = np.concatenate([np.arange(N)[:, None], rng.normal(size=(N, 3))], axis=1)
  mask = np.zeros(N, bool)
  mask[labeled] = True
  return acquisition.Context(apply_fn=_apply, params={"table": jnp.asarray(table, jnp.float32)},
                             x=jnp.asarray(x, jnp.float32), labeled_mask=jnp.asarray(mask),
                             labels=jnp.asarray(np.where(mask, labels, 0), jnp.int32),
                             num_classes=C, embed_fn=_embed, state=state)


def _reference_rule(arms, rewards, k, pmin, delta):
  """DeepAL's ActiveLearningByLearning update, in float64 numpy."""
  w = np.ones(k)
  history = []
  for arm, reward in zip(arms, rewards):
    p = (1.0 - k * pmin) * w / w.sum() + pmin
    w[arm] *= np.exp(pmin / 2.0 * (reward + 1.0 / p[arm] * np.sqrt(np.log(k / delta) / k)))
    history.append(w / w.sum())
  return history


def test_weights_follow_the_update_rule_on_a_scripted_reward_sequence():
  k, pmin, delta = 3, 0.05, 0.1
  arms = [0, 2, 2, 1, 0, 2, 1, 1]
  rewards = [0.4, 1.3, 0.9, 0.1, 2.0, 0.7, 0.0, 1.1]
  state = albl.initial_state(k, N)
  got = []
  for arm, reward in zip(arms, rewards):
    probs = albl.arm_probabilities(state.log_weights, pmin)
    state = state._replace(last_arm=jnp.asarray(arm, jnp.int32), last_prob=probs[arm])
    state = albl.bandit_update(state, reward, pmin=pmin, delta=delta)
    got.append(np.asarray(jax.nn.softmax(state.log_weights)))
  for g, want in zip(got, _reference_rule(arms, rewards, k, pmin, delta)):
    np.testing.assert_allclose(g, want, rtol=1e-5)


def test_select_computes_the_importance_weighted_reward_and_updates(tmp_path):
  rng = np.random.default_rng(1)
  labels = rng.integers(0, C, N)
  table = rng.normal(size=(N, C))
  labeled0 = np.arange(5)
  strategy = acquisition.get("albl", chunk_size=8)
  k, pmin = 3, 1.0 / 30.0
  idx1, state1 = strategy.select(jax.random.key(0), _context(table, labeled0, labels), 4)
  arm1 = int(state1.last_arm)
  assert float(state1.last_prob) == np.float32(1.0 / k)    # uniform weights at the start
  qp = np.asarray(state1.query_prob)
  np.testing.assert_allclose(qp[np.asarray(idx1)], 1.0 / k, rtol=1e-6)
  assert np.all(qp[np.setdiff1d(np.arange(N), idx1)] == 1.0)
  np.testing.assert_array_equal(np.asarray(state1.log_weights), 0.0)

  # the oracle labels idx1; the retrained model gets a known set of labeled samples right
  labeled1 = np.concatenate([labeled0, np.asarray(idx1)])
  table2 = rng.normal(size=(N, C))
  right = labeled1[::2]
  table2[right] = 0.0
  table2[right, labels[right]] = 5.0
  ctx2 = _context(table2, labeled1, labels, state=state1)
  idx2, state2 = strategy.select(jax.random.key(1), ctx2, 4)
  correct = np.argmax(table2[labeled1], 1) == labels[labeled1]
  reward = np.mean(correct / qp[labeled1])
  step = pmin / 2 * (reward + math.sqrt(math.log(k / 0.1) / k) * k)
  want = np.zeros(k)
  want[arm1] = step
  np.testing.assert_allclose(np.asarray(state2.log_weights), want, rtol=1e-5)
  assert not np.isin(np.asarray(idx2), labeled1).any()

  # orbax round trip: the restored state gives the same next round
  path = tmp_path / "albl"
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, state2)
  checkpointer.wait_until_finished()
  restored = checkpointer.restore(path)
  labeled2 = np.concatenate([labeled1, np.asarray(idx2)])
  a = strategy.select(jax.random.key(2), _context(table2, labeled2, labels, state2), 3)
  b = strategy.select(jax.random.key(2), _context(table2, labeled2, labels, restored), 3)
  np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
  for x, y in zip(a[1], albl.as_state(b[1])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_the_chosen_expert_makes_the_selection():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, C, N)
  table = rng.normal(size=(N, C))
  state = albl.initial_state(3, N)._replace(log_weights=jnp.asarray([0.0, 30.0, 0.0]))
  ctx = _context(table, np.arange(6), labels, state=state)
  strategy = acquisition.get("albl")
  experts = [acquisition.get(name) for name in strategy.experts]
  plain = _context(table, np.arange(6), labels)
  arms = []
  for seed in range(6):
    key = jax.random.key(seed)
    idx, new_state = strategy.select(key, ctx, 5)
    arm = int(new_state.last_arm)
    arms.append(arm)
    np.testing.assert_array_equal(np.asarray(idx),
                                  np.asarray(experts[arm](jax.random.fold_in(key, 1), plain, 5)))
    np.testing.assert_array_equal(np.asarray(strategy(key, ctx, 5)), np.asarray(idx))
  assert arms.count(1) >= 4          # coreset has probability 1 - 2 pmin = 0.93


def test_two_arm_form_of_the_npc_and_dynamical_papers():
  # NPC: "a two-armed adversarial bandit ... least confidence and Coreset"
  rng = np.random.default_rng(3)
  labels = rng.integers(0, C, N)
  table = rng.normal(size=(N, C))
  strategy = acquisition.get("albl", experts=("confidence", "coreset"), chunk_size=8)
  assert strategy.experts == ("confidence", "coreset") and strategy.pmin == 1.0 / 20.0
  labeled0 = np.arange(5)
  idx1, state1 = strategy.select(jax.random.key(0), _context(table, labeled0, labels), 4)
  assert state1.log_weights.shape == (2,)
  assert float(state1.last_prob) == np.float32(0.5)       # uniform over two arms
  arm1 = int(state1.last_arm)
  plain = _context(table, labeled0, labels)
  expert = acquisition.get(strategy.experts[arm1], chunk_size=8)
  np.testing.assert_array_equal(np.asarray(idx1),
                                np.asarray(expert(jax.random.fold_in(jax.random.key(0), 1),
                                                  plain, 4)))
  # next round: the importance-weighted reward goes to the arm that was pulled
  labeled1 = np.concatenate([labeled0, np.asarray(idx1)])
  ctx2 = _context(table, labeled1, labels, state=state1)
  _, state2 = strategy.select(jax.random.key(1), ctx2, 4)
  qp = np.asarray(state1.query_prob)
  reward = np.mean((np.argmax(table[labeled1], 1) == labels[labeled1]) / qp[labeled1])
  want = np.zeros(2)
  want[arm1] = 0.05 / 2 * (reward + math.sqrt(math.log(2 / 0.1) / 2) * 2)
  np.testing.assert_allclose(np.asarray(state2.log_weights), want, rtol=1e-5)
  # both arms get pulled over seeds; a three-arm state does not fit the two-arm bandit
  arms = {int(strategy.select(jax.random.key(s), plain, 3)[1].last_arm) for s in range(12)}
  assert arms == {0, 1}
  with pytest.raises(ValueError, match="expert"):
    strategy.select(jax.random.key(0), _context(table, labeled0, labels,
                                                 state=albl.initial_state(3, N)), 3)


def test_three_arm_default_stays_and_bad_experts_raise():
  assert acquisition.get("albl").experts == ("confidence", "coreset", "random")
  assert acquisition.get("albl", experts=["confidence", "coreset"]).experts == (
      "confidence", "coreset")
  for bad in ("confidence", ("confidence", "confidence"), (), ("albl",), ("nope",), (1, 2)):
    with pytest.raises(ValueError):
      acquisition.get("albl", experts=bad)
