"""What did each strategy select? Diagnostics of finished runs in a fixed reference space.

    python experiments/diagnose.py runs/benchmark_digits [runs/OTHER ...] --out DIR

For every (label, seed, round) record with queries, in one space shared by all strategies
(so differences come from the selections, not from each run's model):

* ``classes``: distinct true classes in the queried batch, and the entropy (nats) of the
  batch's class histogram (log C = perfectly balanced);
* ``imbalance``: max / min count over classes of the labeled set *after* the query
  (min clipped at 1);
* ``coverage``: the mean distance from a pool point to its nearest labeled point after
  the query, relative to the same mean for ``random_batches`` uniformly random batches
  of the same size (``< 1``: the strategy covers the pool better than random; the
  k-center radius, a maximum, barely moves with 10 points and is not used);
* ``lambda_min``: the smallest eigenvalue of the reference NTK Gram over labeled ∪ batch
  as a percentile among the same random batches (NPC's objective: 100 = better
  conditioned than every random batch).

The reference space is the infinite-width NTK of a one-hidden-layer ReLU MLP
(``assljax.kernels.Kernel.infinite("mlp")``) on standardized, flattened inputs: fixed,
model-free and full rank, so ``lambda_min`` is never trivially 0. Distances are taken
in the kernel's feature space (``d(x, y)^2 = k(x,x) + k(y,y) - 2 k(x,y)``).

Writes ``diagnostics.md`` and ``diagnostics.json`` (per label: mean ± std over seeds of
each metric, per round and over all rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np


def _load(workdir: str):
  from assljax import data as data_lib
  from assljax.app import experiment
  config = experiment.load_saved_config(workdir)
  ds = config.dataset
  options = ds.get("options", {})
  options = options.to_dict() if hasattr(options, "to_dict") else dict(options)
  dataset = data_lib.load(ds.name, data_dir=ds.get("data_dir"), seed=ds.seed,
                          max_train=ds.get("max_train"), max_test=ds.get("max_test"), **options)
  # the pool the runs saw (a validation split held out for early stopping is not in it)
  dataset, _ = experiment._hold_out_validation(dataset, config.ssl.get("early_stopping"),
                                               seed=ds.seed)
  with open(os.path.join(workdir, "results.json")) as f:
    records = json.load(f)
  return dataset, records, config.al


def _reference_gram(dataset) -> np.ndarray:
  """``(N, N)`` infinite-width MLP NTK of the whole pool, float64."""
  import jax
  from assljax.kernels import Kernel
  x = np.asarray(dataset.train.x, np.float32).reshape(len(dataset.train.y), -1)
  mean, std = x.mean(0), x.std(0) + 1e-6
  kernel = Kernel.infinite("mlp", num_classes=1, depth=1)
  z = (x - mean) / std
  with jax.default_device(jax.devices("cpu")[0]):
    gram = np.asarray(kernel(z, z), np.float64)
  return 0.5 * (gram + gram.T)


def _lambda_min(gram: np.ndarray, idx: np.ndarray) -> float:
  return float(np.linalg.eigvalsh(gram[np.ix_(idx, idx)])[0])


def _radius(sq_dist_to_labeled: np.ndarray) -> float:
  return float(np.mean(np.sqrt(np.maximum(sq_dist_to_labeled, 0.0))))


def _class_entropy(classes: np.ndarray, num_classes: int) -> float:
  counts = np.bincount(classes, minlength=num_classes).astype(np.float64)
  p = counts[counts > 0] / counts.sum()
  return float(-(p * np.log(p)).sum())


def diagnose(workdirs: list[str], *, random_batches: int = 20, seed: int = 0) -> dict:
  """Per-record diagnostics of ``workdirs`` (module docstring); returns a JSON-ready dict."""
  rows = []
  cache: dict = {}
  for workdir in workdirs:
    dataset, records, al = _load(workdir)
    key = (dataset.name, len(dataset.train.y), float(np.asarray(dataset.train.x).sum()))
    if key not in cache:
      cache[key] = _reference_gram(dataset)
    gram = cache[key]
    diag = np.diag(gram)
    y = np.asarray(dataset.train.y)
    num_classes = dataset.num_classes
    rng = np.random.default_rng(seed)
    # labeled set before each round, rebuilt from the records of each run
    by_run = defaultdict(list)
    for record in records:
      by_run[(record["label"], record["seed"])].append(record)
    for (label, run_seed), run in sorted(by_run.items()):
      run.sort(key=lambda r: r["round"])
      queried_all = {i for r in run for i in r["queried_indices"]}
      initial = _initial_labeled(dataset, run, queried_all, al)
      labeled = list(initial)
      for record in run:
        batch = np.asarray(record["queried_indices"], np.int64)
        if batch.size == 0:
          continue
        before = np.asarray(labeled, np.int64)
        after = np.concatenate([before, batch])
        unlabeled = np.setdiff1d(np.arange(len(y)), before)
        sq = lambda idx: np.min(diag[:, None] + diag[None, idx] - 2 * gram[:, idx], axis=1) \
            if idx.size else np.full(len(y), np.inf)
        radius = _radius(sq(after))
        lam = _lambda_min(gram, after)
        random_radius, random_lam = [], []
        for _ in range(random_batches):
          other = rng.choice(unlabeled, batch.size, replace=False)
          both = np.concatenate([before, other])
          random_radius.append(_radius(sq(both)))
          random_lam.append(_lambda_min(gram, both))
        counts = np.bincount(y[after], minlength=num_classes)
        rows.append(dict(
            workdir=workdir, label=label, seed=run_seed, round=record["round"],
            num_labels=int(after.size),
            distinct_classes=int(np.unique(y[batch]).size),
            class_entropy=_class_entropy(y[batch], num_classes),
            imbalance=float(counts.max() / max(counts.min(), 1)),
            coverage=radius / float(np.mean(random_radius)),
            lambda_min_percentile=float(100.0 * np.mean(np.asarray(random_lam) < lam))))
        labeled += [int(i) for i in batch]
  return dict(rows=rows, summary=_summarize(rows), random_batches=random_batches)


def _initial_labeled(dataset, run, queried_all, al) -> list[int]:
  """The initial labels of a run: the pool its seed draws (as the loop does)."""
  from assljax.data.pool import initial_pool
  first = run[0]
  pool = initial_pool(dataset.train.y, al.initial_per_class, key=int(first["seed"]),
                      num_classes=dataset.num_classes,
                      sampling=al.get("initial_sampling", "balanced"),
                      extra=al.get("initial_extra", 0))
  initial = np.flatnonzero(pool.labeled_mask)
  if initial.size != first["num_labels"] or set(initial.tolist()) & queried_all:
    raise ValueError(f"cannot rebuild the initial labels of {first['label']} seed "
                     f"{first['seed']}: was the run made with another initial pool?")
  return [int(i) for i in initial]


METRICS = ("distinct_classes", "class_entropy", "imbalance", "coverage",
           "lambda_min_percentile")


def _summarize(rows: list[dict]) -> dict:
  out: dict = {}
  for label in sorted({r["label"] for r in rows}):
    mine = [r for r in rows if r["label"] == label]
    per_seed = defaultdict(list)
    for r in mine:
      per_seed[r["seed"]].append(r)
    summary = {}
    for metric in METRICS:
      seed_means = [np.mean([r[metric] for r in rs]) for rs in per_seed.values()]
      summary[metric] = dict(mean=float(np.mean(seed_means)),
                             std=float(np.std(seed_means)), seeds=len(seed_means))
    out[label] = summary
  return out


def markdown(result: dict) -> str:
  header = ("| strategy | distinct classes / batch | class entropy (nats) | "
            "labeled max/min | mean distance to labeled vs random | λ_min percentile vs random |")
  lines = [header, "|" + "---|" * 6]
  for label, s in result["summary"].items():
    cells = [f"{s[m]['mean']:.2f} ± {s[m]['std']:.2f}" for m in METRICS]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  lines.append("")
  lines.append(f"Means over rounds, then mean ± std over seeds; random reference: "
               f"{result['random_batches']} uniformly random batches per round.")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--out", required=True)
  parser.add_argument("--random-batches", type=int, default=20)
  args = parser.parse_args(argv)
  try:
    result = diagnose(args.workdirs, random_batches=args.random_batches)
  except (ValueError, OSError) as err:
    print(f"diagnose: error: {err}", file=sys.stderr)
    return 2
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "diagnostics.json"), "w") as f:
    json.dump(result, f, indent=1)
  text = markdown(result)
  with open(os.path.join(args.out, "diagnostics.md"), "w") as f:
    f.write(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
