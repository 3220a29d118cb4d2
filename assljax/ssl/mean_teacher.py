"""Mean Teacher (Tarvainen & Valpola, 2017): consistency with an EMA teacher.

The teacher is the exponential moving average of the student's weights (the trainer's
EMA, with decay ``min(1 - 1/(step + 1), 0.99)`` during the ramp-up and 0.999 after).
For the labeled and unlabeled inputs of a batch, the student and the teacher see two
independent weak augmentations::

    loss = CE(student(x_l), y)
           + consistency * sigmoid_ramp(step) * mean((softmax(student) - softmax(teacher))^2)

with the mean over every input of the batch and every class (the reference's
``softmax_mse_loss / (C * n)``) and ``sigmoid_ramp(t) = exp(-5 (1 - t / L)^2)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from assljax._validation import UserInputError, check_number
from assljax.ssl.algorithm import (
    Algorithm, Augment, check_positive, cross_entropy, default_weak, pseudo_label_metrics,
    sigmoid_rampup)
from assljax.ssl.ema import mean_teacher_decay


def consistency_mse(student_logits: jax.Array, teacher_logits: jax.Array) -> jax.Array:
  """``mean((softmax(s) - softmax(t))^2)`` over rows and classes; no gradient to ``t``."""
  p_s = jax.nn.softmax(student_logits.astype(jnp.float32), axis=-1)
  p_t = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32), axis=-1)
  return jnp.mean((p_s - p_t) ** 2)


def mean_teacher(*, consistency: float = 100.0, rampup_steps: int = 16384, mu: int = 1,
                 ema_during_rampup: float = 0.99, ema_after_rampup: float = 0.999,
                 weak: Augment | None = None) -> Algorithm:
  """Mean Teacher with the DESIGN §5 settings as defaults.

  Args:
    consistency: final weight of the consistency loss (100).
    rampup_steps: length of the sigmoid ramp-up of the weight and of the 0.99 EMA phase.
    mu: unlabeled inputs per labeled input.
    ema_during_rampup, ema_after_rampup: the teacher's EMA decays.
    weak: ``(key, x) -> x``; None for ``assljax.ssl.augment.weak_augment``.
  """
  check_positive("consistency", consistency, allow_zero=True)
  check_positive("rampup_steps", rampup_steps, allow_zero=True)
  check_number("ema_during_rampup", ema_during_rampup, low=0.0, high=1.0)
  check_number("ema_after_rampup", ema_after_rampup, low=0.0, high=1.0)
  if int(mu) < 0:
    raise UserInputError(f"mu must be a non-negative integer, got {mu!r}.")
  weak = weak or default_weak()

  def loss(forward, params, batch_stats, batch, key, step, ctx):
    k_s, k_t = jax.random.split(key)
    b = batch.x_labeled.shape[0]
    x = jnp.concatenate([batch.x_labeled, batch.x_unlabeled], axis=0)
    logits_s, new_stats = forward(params, batch_stats, weak(k_s, x))
    logits_t, _ = forward(ctx.ema_params, ctx.ema_batch_stats, weak(k_t, x))
    loss_x = cross_entropy(logits_s[:b], batch.y_labeled).mean()
    loss_c = consistency_mse(logits_s, logits_t)
    weight = consistency * sigmoid_rampup(step, rampup_steps)
    value = loss_x + weight * loss_c
    metrics = {"loss": value, "loss_x": loss_x, "loss_u": loss_c, "weight_u": weight,
               **pseudo_label_metrics(logits_t[b:].argmax(-1), batch.y_unlabeled)}
    return value, (new_stats, metrics, ctx.algo_state)

  decay = functools.partial(mean_teacher_decay, rampup_steps=rampup_steps,
                            during=ema_during_rampup, after=ema_after_rampup)
  return Algorithm(name="mean_teacher", loss=loss, mu=int(mu), ema_decay=decay)
