"""The toy results of the report tests: 3 labels x 2 seeds x 4 rounds, numbers by hand."""

from __future__ import annotations

import json

import numpy as np

CLASS_NAMES = ["cat", "dog", "frog", "ship"]
LABELS = ["random", "margin", "npc (zero-shot)"]
STRATEGY = {"random": "random", "margin": "margin", "npc (zero-shot)": "npc"}
SEEDS = (0, 1)
ROUNDS = 4
INITIAL = [1, 1, 1, 1]   # 4 initial labels, one per class; each round queries 2 more.

# ACC[label][seed][round]: test accuracy (fraction).
ACC = {
  "random": [[0.301, 0.405, 0.502, 0.553], [0.305, 0.395, 0.498, 0.557]],
  "margin": [[0.350, 0.450, 0.560, 0.610], [0.340, 0.470, 0.540, 0.630]],
  "npc (zero-shot)": [[0.320, 0.480, 0.600, 0.700], [0.320, 0.460, 0.620, 0.660]],
}
# QUERIED[label][seed][round]: pool indices acquired after that round (none in the last).
QUERIED = {
  "random": [[[0, 1], [2, 3], [4, 5], []], [[10, 11], [12, 13], [14, 15], []]],
  "margin": [[[0, 1], [2, 20], [21, 22], []], [[10, 11], [12, 13], [14, 30], []]],
  "npc (zero-shot)": [[[40, 41], [42, 43], [44, 45], []], [[10, 40], [41, 42], [43, 44], []]],
}


def class_of(index: int) -> int:
  return index % 4


def toy_records(labels=LABELS, seeds=SEEDS) -> list[dict]:
  """Records of `labels` x `seeds` x ROUNDS rounds with the accuracies ACC."""
  records = []
  for li, label in enumerate(labels):
    for seed in seeds:
      hist = list(INITIAL)
      for rnd in range(ROUNDS):
        queried = QUERIED[label][seed % 2][rnd]
        records.append({
          "experiment": "toy_exp", "dataset": "toyset", "strategy": STRATEGY[label],
          "label": label, "seed": seed, "round": rnd, "num_labels": sum(hist),
          "test_accuracy": ACC[label][seed % 2][rnd],
          "per_class_accuracy": [0.5, 0.5, 0.5, 0.5],
          "labeled_class_histogram": list(hist), "queried_indices": list(queried),
          "acquisition_seconds": (1.0 + li + 0.5 * rnd + 0.25 * seed) if queried else 0.0,
          "training_seconds": 10.0 * (li + 1) + rnd,
          "num_classes": 4, "class_names": list(CLASS_NAMES),
        })
        for index in queried:
          hist[class_of(index)] += 1
  return records


def write_results(path, records):
  """Writes `records` as `path`/results.json; returns `path`."""
  path.mkdir(parents=True, exist_ok=True)
  (path / "results.json").write_text(json.dumps(records))
  return path


def rgb_counts(png_path, colors):
  """The image and, per hex color, the number of pixels of exactly that color."""
  import matplotlib.image
  image = matplotlib.image.imread(png_path)
  rgb = np.round(image[..., :3] * 255).astype(np.int64)
  codes = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
  return image, {c: int(np.sum(codes == int(c[1:], 16))) for c in colors}
