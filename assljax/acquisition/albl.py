"""ALBL: active learning by learning (Hsu & Lin, AAAI 2015), batch form.

    strategy = assljax.acquisition.get("albl", experts=("confidence", "coreset", "random"))
    idx, state = strategy.select(key, ctx, budget)   # keep `state`, pass it as ctx.state
    idx = strategy(key, ctx, budget)                 # same indices, state dropped

An EXP3.P/EXP4.P-style bandit chooses, every round, which expert strategy queries the
whole batch; its weights learn from an importance-weighted accuracy reward. This is the
batch adaptation used as the ALBL baseline in deep active learning (DeepAL's
``ActiveLearningByLearning`` over least confidence and core-set, with uniform random
sampling appended as a third expert). Two arms or three:

* ``experts=("confidence", "coreset")``: the two arms the NPC and dynamicAL papers name
  (least confidence and core-set), ``K = 2``, ``pmin = 1/20``.
* ``experts=("confidence", "coreset", "random")`` (the default): DeepAL's code, which
  appends uniform random sampling to the list it is given, ``K = 3``, ``pmin = 1/30``.

With ``K`` experts, log-weights ``v`` and ``pmin`` (default ``1 / (10 K)``):

    arm probabilities   q = (1 - K pmin) softmax(v) + pmin
    choose expert       s ~ q;  it selects the batch;  every queried sample i records
                        a_i = q_s (samples labeled otherwise have a_i = 1)
    next round reward   r = mean over labeled i of [f(x_i) = y_i] / a_i    (IW-ACC,
                        f the retrained model of the next round)
    update (s only)     v_s += pmin / 2 * (r + sqrt(log(K / delta) / K) / q_s)

Model outputs are checked (ValueError on NaN/inf) by the chosen expert, or, when that
is ``random``, by ALBL itself. The reward and update for a round happen at the start of
the next round, when the queried labels and the retrained model are known. The state
(:class:`ALBLState`) is a NamedTuple of fixed-shape arrays -- log-weights, per-sample
query probabilities, the last expert and its probability -- so it is part of the loop
pytree and checkpoints with orbax. ``ctx.state = None`` starts a fresh bandit (uniform weights).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import UserInputError, check_chunk_size, check_number
from assljax.acquisition.base import (Context, check_request, check_selection, get, register)
from assljax.acquisition.uncertainty import pool_logits

PyTree = Any


class ALBLState(NamedTuple):
  """ALBL's bandit, carried across rounds.

  Attributes:
    log_weights: ``(K,)`` float32, log of the expert weights.
    query_prob: ``(N,)`` float32, probability of the expert that queried each sample
      (1 for samples ALBL did not query).
    last_arm: ``()`` int32, the expert chosen last round (-1 before the first round).
    last_prob: ``()`` float32, its probability.
  """
  log_weights: jax.Array
  query_prob: jax.Array
  last_arm: jax.Array
  last_prob: jax.Array


def initial_state(num_experts: int, pool_size: int) -> ALBLState:
  """A fresh bandit: uniform weights, no query yet."""
  return ALBLState(jnp.zeros((num_experts,), jnp.float32), jnp.ones((pool_size,), jnp.float32),
                   jnp.asarray(-1, jnp.int32), jnp.asarray(1.0, jnp.float32))


def as_state(state: Any) -> ALBLState:
  """An :class:`ALBLState` from itself, a dict of its fields (e.g. restored by orbax)
  or a sequence in field order."""
  if isinstance(state, ALBLState):
    fields = state
  elif isinstance(state, dict):
    missing = set(ALBLState._fields) - set(state)
    if missing:
      raise UserInputError(f"albl state is missing fields {sorted(missing)}")
    fields = ALBLState(**{k: state[k] for k in ALBLState._fields})
  elif isinstance(state, (list, tuple)) and len(state) == len(ALBLState._fields):
    fields = ALBLState(*state)
  else:
    raise UserInputError(f"albl state must be an ALBLState (or its dict), got "
                         f"{type(state).__name__}")
  return ALBLState(jnp.asarray(fields.log_weights, jnp.float32),
                   jnp.asarray(fields.query_prob, jnp.float32),
                   jnp.asarray(fields.last_arm, jnp.int32),
                   jnp.asarray(fields.last_prob, jnp.float32))


def arm_probabilities(log_weights: jax.Array, pmin: float) -> jax.Array:
  """``(1 - K pmin) softmax(log_weights) + pmin``, ``(K,)``."""
  k = log_weights.shape[0]
  return (1.0 - k * pmin) * jax.nn.softmax(log_weights) + pmin


def bandit_update(state: ALBLState, reward: float, *, pmin: float, delta: float) -> ALBLState:
  """Credits ``reward`` to last round's expert: ``v_s += pmin/2 (r + c / q_s)``.

  ``c = sqrt(log(K / delta) / K)``; a no-op before the first round (``last_arm = -1``).
  """
  k = state.log_weights.shape[0]
  s = state.last_arm
  bonus = math.sqrt(math.log(k / delta) / k) / state.last_prob
  step = pmin / 2.0 * (jnp.asarray(reward, jnp.float32) + bonus)
  log_w = jnp.where((jnp.arange(k) == s) & (s >= 0), state.log_weights + step,
                    state.log_weights)
  return state._replace(log_weights=log_w.astype(jnp.float32))


def importance_weighted_accuracy(ctx: Context, query_prob: jax.Array, *,
                                 chunk_size: int | None) -> float:
  """IW-ACC: mean over labeled samples of ``[argmax f(x) = y] / query_prob``."""
  lab = ctx.labeled_indices()
  if lab.size == 0:
    return 0.0
  logits = pool_logits(ctx, lab, chunk_size=chunk_size)
  correct = np.asarray(jnp.argmax(logits, axis=-1)) == np.asarray(ctx.labels)[lab]
  return float(np.mean(correct / np.asarray(query_prob)[lab]))


class ALBL:
  """Batch ALBL over expert strategies (any registered stateless strategy names).

  Args:
    experts: strategy names the bandit chooses from (each built with ``get(name)``;
      ``chunk_size`` is passed to those that take it); ``("confidence", "coreset")`` for
      the two-arm form of the NPC / dynamicAL papers, the default adds ``"random"``.
    pmin: minimum probability of each expert, ``0 < pmin <= 1 / K``; default ``1/(10K)``.
    delta: confidence parameter of the exploration bonus, ``delta > 0``.
    chunk_size: pool rows per forward pass (experts and the reward).
  """
  name = "albl"

  def __init__(self, *, experts: tuple[str, ...] = ("confidence", "coreset", "random"),
               pmin: float | None = None, delta: float = 0.1, chunk_size: int | None = 256):
    if isinstance(experts, str) or not all(isinstance(e, str) for e in experts):
      raise UserInputError(f"albl experts must be a sequence of strategy names, got {experts!r}")
    experts = tuple(experts)
    if not experts or len(set(experts)) != len(experts):
      raise UserInputError(f"albl experts must be distinct strategy names, got {experts!r}")
    if "albl" in experts:
      raise UserInputError("albl cannot be its own expert")
    self.experts = experts
    self.chunk_size = check_chunk_size(chunk_size)
    self._strategies = []
    for name in experts:
      try:
        self._strategies.append(get(name, chunk_size=self.chunk_size))
      except ValueError:
        self._strategies.append(get(name))
    k = len(experts)
    self.pmin = 1.0 / (10.0 * k) if pmin is None else check_number(
        "albl pmin", pmin, low=0.0, high=1.0 / k, include_low=False)
    self.delta = check_number("albl delta", delta, low=0.0, include_low=False)

  def __repr__(self) -> str:
    return (f"ALBL(experts={self.experts!r}, pmin={self.pmin!r}, delta={self.delta!r}, "
            f"chunk_size={self.chunk_size!r})")

  def _state_for(self, ctx: Context) -> ALBLState:
    if ctx.state is None:
      return initial_state(len(self.experts), ctx.pool_size)
    state = as_state(ctx.state)
    if state.log_weights.shape != (len(self.experts),):
      raise UserInputError(f"albl state has {state.log_weights.shape[0]} expert weights but the "
                           f"strategy has {len(self.experts)} experts")
    if state.query_prob.shape != (ctx.pool_size,):
      raise UserInputError(f"albl state covers a pool of {state.query_prob.shape[0]} samples, "
                           f"the context has {ctx.pool_size}")
    return state

  def select(self, key: jax.Array, ctx: Context, budget: int) -> tuple[jax.Array, ALBLState]:
    """``(indices (budget,) int32, new state)``; see the module docstring."""
    check_request(ctx, budget)
    state = self._state_for(ctx)
    if int(state.last_arm) >= 0:
      reward = importance_weighted_accuracy(ctx, state.query_prob, chunk_size=self.chunk_size)
      state = bandit_update(state, reward, pmin=self.pmin, delta=self.delta)
    probs = arm_probabilities(state.log_weights, self.pmin)
    arm = int(jax.random.categorical(jax.random.fold_in(key, 0), jnp.log(probs)))
    expert_ctx = ctx if ctx.state is None else _without_state(ctx)
    idx = self._strategies[arm](jax.random.fold_in(key, 1), expert_ctx, budget)
    idx = check_selection(idx, ctx, budget, self.name)
    if self.experts[arm] == "random":
      # random never looks at the model; still refuse to go on with a broken one
      pool_logits(ctx, ctx.unlabeled_indices(), chunk_size=self.chunk_size)
    p = probs[arm]
    state = ALBLState(state.log_weights, state.query_prob.at[idx].set(p),
                      jnp.asarray(arm, jnp.int32), jnp.asarray(p, jnp.float32))
    return idx, state

  def __call__(self, key: jax.Array, ctx: Context, budget: int) -> jax.Array:
    return self.select(key, ctx, budget)[0]


def _without_state(ctx: Context) -> Context:
  return dataclasses.replace(ctx, state=None)


@register("albl")
def _albl(*, experts: tuple[str, ...] = ("confidence", "coreset", "random"),
          pmin: float | None = None, delta: float = 0.1,
          chunk_size: int | None = 256) -> ALBL:
  return ALBL(experts=experts, pmin=pmin, delta=delta, chunk_size=chunk_size)
