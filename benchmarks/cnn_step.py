"""The small CNNs' training step in the CPU experiments: reshape max pooling vs reduce_window.

    python benchmarks/cnn_step.py                    # the digits benchmark (embedded data)
    python benchmarks/cnn_step.py --config experiments/configs/benchmark_cifar10.py:data=../shared/data/cifar10
    python benchmarks/cnn_step.py --config experiments/configs/benchmark_fsdd.py:data=../shared/data/fsdd

Builds the experiment's data, model and trainer exactly as ``assljax run`` does
(``experiment.prepare``), then times its jitted training step (the config's algorithm,
batch, augmentations and optimizer) twice in one process: with the models' max pooling
(:func:`assljax.models._pooling.max_pool`, a reshape and a max) and, as the baseline, with
``nnx.max_pool`` (``lax.reduce_window``, whose gradient is ``select_and_scatter``) patched
back in. Prints one JSON object: each variant's median milliseconds per step over
``--repeats`` chunks of ``--steps`` steps (compilation excluded), and
``speedup = baseline / ours``. The two runs start from the same state and see the same
batches; their first losses are printed as a check that they train the same model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _time_steps(config, steps: int, repeats: int) -> dict:
  import jax
  import numpy as np

  from assljax import ssl
  from assljax.app import experiment

  prepared = experiment.prepare(config, log=lambda _: None)
  train = prepared.dataset.train
  labeled_mask = np.zeros(train.y.size, bool)
  labeled_mask[np.random.default_rng(0).choice(train.y.size, 20, replace=False)] = True
  data = ssl.make_data(train.x, train.y, labeled_mask)
  trainer = prepared.trainer
  state = trainer.init(jax.random.key(0), data)
  records = []
  state = trainer.train(state, data, 2, progress=False,
                        callback=lambda _, record: records.append(record))  # compiles
  jax.block_until_ready(state)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    state = trainer.train(state, data, steps, progress=False)
    jax.block_until_ready(state)
    times.append((time.perf_counter() - start) / steps)
  return {"ms_per_step": round(1e3 * statistics.median(times), 2),
          "all_ms": [round(1e3 * t, 2) for t in times],
          "first_loss": float(records[0]["loss"]) if records else None}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="experiments/configs/benchmark_digits.py",
                      help="an experiment config whose model is a small CNN")
  parser.add_argument("--steps", type=int, default=20, help="steps per timed chunk")
  parser.add_argument("--repeats", type=int, default=5, help="timed chunks (median)")
  args = parser.parse_args()

  from flax import nnx

  from assljax.app import configs
  from assljax.models import cnn, vgg

  config = configs.load_config(args.config)
  if config.model.name not in ("cnn", "tutorial_cnn", "vgg11", "vgg11_torchvision"):
    raise SystemExit(f"cnn_step: {args.config} trains {config.model.name!r}, not a model "
                     f"with max pooling (cnn, tutorial_cnn, vgg11)")
  config.strategies = list(config.strategies)[:1]
  config.seeds = [0]

  ours = _time_steps(config, args.steps, args.repeats)

  def reduce_window_max_pool(x, size=2, *, padding="VALID"):
    return nnx.max_pool(x, window_shape=(size, size), strides=(size, size), padding=padding)

  patched = {module: module.max_pool for module in (cnn, vgg)}
  for module in patched:
    module.max_pool = reduce_window_max_pool
  try:
    baseline = _time_steps(config, args.steps, args.repeats)
  finally:
    for module, function in patched.items():
      module.max_pool = function

  import jax
  print(json.dumps({
      "env": {"jax": jax.__version__, "backend": jax.default_backend()},
      "config": {"spec": args.config, "model": config.model.name,
                 "model_options": config.model.options.to_dict(),
                 "algorithm": config.ssl.algorithm, "batch_size": config.ssl.batch_size,
                 "mu": config.ssl.mu, "steps": args.steps, "repeats": args.repeats},
      "ours_reshape_max_pool": ours,
      "baseline_reduce_window_max_pool": baseline,
      "speedup": round(baseline["ms_per_step"] / ours["ms_per_step"], 3),
  }, indent=1))


if __name__ == "__main__":
  main()
