"""experiments/diagnose.py on a finished tiny run: every metric against a brute-force
recomputation from the records, the pool and the reference kernel."""

import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from assljax.app import configs, experiment

try:  # the reference kernel is an infinite-width NTK (through the compat shim)
  from assljax.kernels._compat import import_neural_tangents
  import_neural_tangents()
except ImportError:
  pytest.skip("neural-tangents is not installed (assljax[infinite])", allow_module_level=True)
ROOT = Path(os.path.abspath(__file__)).parents[2]

TINY = textwrap.dedent('''
    import ml_collections

    def get_config(arg=None):
      c = ml_collections.ConfigDict()
      c.experiment = "tiny"
      c.dataset = ml_collections.ConfigDict(dict(
          name="digits", data_dir=None, seed=0, max_train=150, max_test=50,
          options=ml_collections.ConfigDict()))
      c.model = ml_collections.ConfigDict(dict(name="mlp", options=dict(width=16, depth=1)))
      c.ssl = ml_collections.ConfigDict(dict(
          algorithm="supervised", options=ml_collections.ConfigDict(), batch_size=8, mu=None,
          lr=None, weight_decay=None, total_steps=4, ema_decay=0.9, compute_dtype="float32",
          steps_per_round=4, reinit=True, early_stopping=None,
          augment=ml_collections.ConfigDict(dict(flip=False, pad=0, num_ops=0,
                                                 cutout_fraction=0.0))))
      c.al = ml_collections.ConfigDict(dict(initial_per_class=1, query_size=5, budget=20,
                                            mode="sequential", initial_trials=1,
                                            initial_sampling="balanced", initial_extra=0))
      c.strategies = ["random", "coreset"]
      c.strategy_options = ml_collections.ConfigDict()
      c.seeds = [0, 1]
      c.oracle = "simulated"
      c.checkpoint_every = 4
      c.eval_batch_size = 64
      c.progress = False
      return c
''')


def _diagnose_module():
  spec = importlib.util.spec_from_file_location("diagnose", ROOT / "experiments" / "diagnose.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_diagnostics_match_a_brute_force_recomputation(tmp_path):
  path = tmp_path / "tiny.py"
  path.write_text(TINY)
  config = configs.load_config(str(path))
  workdir = str(tmp_path / "run")
  experiment.save_config(workdir, config)
  prepared = experiment.prepare(config, log=lambda _: None)
  records = experiment.run_experiment(prepared, workdir, log=lambda _: None).records
  diagnose = _diagnose_module()
  result = diagnose.diagnose([workdir], random_batches=8)
  rows = result["rows"]
  assert len(rows) == 2 * 2 * 2  # labels x seeds x rounds with a query
  dataset = prepared.dataset
  gram = diagnose._reference_gram(dataset)
  y = dataset.train.y
  for row in rows:
    run = sorted((r for r in records if r["label"] == row["label"] and r["seed"] == row["seed"]),
                 key=lambda r: r["round"])
    from assljax.data.pool import initial_pool
    labeled = list(np.flatnonzero(initial_pool(y, 1, key=row["seed"], num_classes=10)
                                  .labeled_mask))
    for r in run[:row["round"]]:
      labeled += r["queried_indices"]
    batch = np.asarray(run[row["round"]]["queried_indices"])
    after = np.concatenate([labeled, batch]).astype(int)
    assert row["num_labels"] == after.size
    assert row["distinct_classes"] == np.unique(y[batch]).size
    counts = np.bincount(y[batch], minlength=10)
    p = counts[counts > 0] / batch.size
    assert row["class_entropy"] == pytest.approx(-(p * np.log(p)).sum())
    full = np.bincount(y[after], minlength=10)
    assert row["imbalance"] == pytest.approx(full.max() / max(full.min(), 1))
    assert 0.0 <= row["lambda_min_percentile"] <= 100.0 and row["coverage"] > 0
    # λ_min of the chosen Gram, in float64, is what the percentile ranks
    lam = np.linalg.eigvalsh(gram[np.ix_(after, after)])[0]
    assert lam == pytest.approx(diagnose._lambda_min(gram, after))
  summary = result["summary"]
  assert set(summary) == {"random", "coreset"}
  assert summary["random"]["distinct_classes"]["seeds"] == 2
  text = diagnose.markdown(result)
  assert "| coreset |" in text and "| random |" in text
  json.dumps(result)  # JSON-ready
