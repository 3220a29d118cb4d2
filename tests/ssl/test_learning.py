"""Learning is real: FixMatch beats supervised on digits; WRN-28-2 FixMatch on CIFAR-10."""

import functools
from pathlib import Path

import jax
import numpy as np
import pytest

from assljax import models, ssl
from assljax.ssl import augment

CIFAR10 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


def _digits():
  from sklearn.datasets import load_digits
  d = load_digits()
  return (d.images / 16.0).astype(np.float32)[..., None], d.target.astype(np.int32)


@pytest.mark.compute_bound  # 3x slower on unoptimized programs
def test_fixmatch_beats_supervised_on_digits_with_20_labels():
  x, y = _digits()
  model = models.build("cnn", num_classes=10, input_shape=(8, 8, 1), channels=(16, 32, 32),
                       hidden=64)
  # 8x8 digits: no flips, 1-pixel shifts, 2-pixel cutout.
  weak = functools.partial(augment.weak_augment, flip=False, pad=1)
  strong = functools.partial(augment.strong_augment, flip=False, pad=1, cutout_fraction=0.25)
  steps = 600
  trainers = {name: ssl.make_trainer(model, algorithm, batch_size=16, total_steps=steps,
                                     ema_decay=0.99)
              for name, algorithm in [("supervised", ssl.supervised(weak=weak)),
                                      ("fixmatch", ssl.fixmatch(threshold=0.9, mu=2, weak=weak,
                                                                strong=strong))]}
  accuracy = {name: [] for name in trainers}
  # One run at 20 labels is chaotic (FixMatch may lose a class to confirmation bias, and
  # which run does changes with the CPU's float rounding): three label draws.
  for draw in range(3):
    rng = np.random.default_rng(draw)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), 2, replace=False)
                              for c in range(10)])
    mask = np.zeros(len(y), bool)
    mask[labeled] = True
    data = ssl.make_data(x, y, mask)
    for name, trainer in trainers.items():
      state = trainer.init(jax.random.key(0), data)
      state = trainer.train(state, data, steps, chunk_steps=steps, progress=False)
      accuracy[name].append(ssl.evaluate(model, trainer.eval_variables(state), x[~mask],
                                         y[~mask])["accuracy"])
  # Measured on this stack (draws 0, 1, 2): supervised 0.712 / 0.658 / 0.760, FixMatch
  # 0.779 / 0.814 / 0.882 (another CPU gave 0.853 for draw 0). Assert most of the gap.
  sup, fix = np.asarray(accuracy["supervised"]), np.asarray(accuracy["fixmatch"])
  assert np.all(fix > sup), accuracy
  assert fix.mean() - sup.mean() >= 0.07 and fix.mean() >= 0.78, accuracy


def _cifar_subset(per_class):
  from PIL import Image
  images, labels = [], []
  for label, name in enumerate(CLASSES):
    for path in sorted((CIFAR10 / "train" / name).glob("*.jpg"))[:per_class]:
      images.append(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0)
      labels.append(label)
  return np.stack(images), np.asarray(labels, np.int32)


@pytest.mark.skipif(not CIFAR10.is_dir(),
                    reason=f"CIFAR-10 image folder not found at {CIFAR10} (../shared/data)")
def test_wrn28_2_fixmatch_smoke_on_cifar10():
  x, y = _cifar_subset(per_class=20)
  assert x.shape == (200, 32, 32, 3)
  mask = np.zeros(len(y), bool)
  mask[np.arange(0, 200, 20)] = True  # the first image of each class
  mask[np.arange(1, 200, 20)] = True
  model = models.build("wrn-28-2", num_classes=10, input_shape=(32, 32, 3),
                       input_mean=(0.4914, 0.4822, 0.4465), input_std=(0.2471, 0.2435, 0.2616))
  data = ssl.make_data(x, y, mask)
  trainer = ssl.make_trainer(model, ssl.fixmatch(mu=1), batch_size=8, total_steps=1000)
  state = trainer.init(jax.random.key(0), data)

  @jax.jit
  def labeled_loss(params, batch_stats):
    logits, _ = model.apply_train(params, batch_stats, data.x[mask])
    return ssl.algorithm.cross_entropy(logits, data.labels[mask]).mean()

  before = float(labeled_loss(state.params, state.batch_stats))
  records = []
  state = trainer.train(state, data, 6, chunk_steps=3, progress=False,
                        callback=lambda s, r: records.append(r))
  after = float(labeled_loss(state.params, state.batch_stats))
  assert all(np.isfinite(r["loss"]) for r in records)
  assert 0.0 <= records[-1]["mask_rate"] <= 1.0
  assert after < before - 0.1, (before, after)
