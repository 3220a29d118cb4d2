"""Plain supervised training on the labeled set (weakly augmented), the baseline."""

from __future__ import annotations

from assljax.ssl.algorithm import Algorithm, Augment, cross_entropy, default_weak


def supervised(*, weak: Augment | None = None) -> Algorithm:
  """Cross-entropy on weakly augmented labeled batches; no unlabeled data (``mu = 0``).

  Args:
    weak: ``(key, x) -> x`` augmentation of the labeled inputs; None for
      ``assljax.ssl.augment.weak_augment`` (flip + 4-px reflect-pad crop).
  """
  weak = weak or default_weak()

  def loss(forward, params, batch_stats, batch, key, step, ctx):
    del step
    x = weak(key, batch.x_labeled)
    logits, new_stats = forward(params, batch_stats, x)
    value = cross_entropy(logits, batch.y_labeled).mean()
    acc = (logits.argmax(-1) == batch.y_labeled).mean()
    return value, (new_stats, {"loss": value, "loss_x": value, "accuracy_x": acc},
                   ctx.algo_state)

  return Algorithm(name="supervised", loss=loss, mu=0)
