"""One process of the two-process job in test_multi_process.py (not collected by pytest).

Run with ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES=2``, ``JAX_PROCESS_ID`` and two
simulated CPU devices per process. Prints one JSON line: for each strategy the indices it
selects on the 4-device mesh spanning both processes and, in process 0 only, without a
mesh (its first device alone), and the same for 4 FixMatch steps.
"""

import json

import numpy as np

from assljax import parallel

assert parallel.initialize_distributed(), "the multi-process environment is not set"

import jax  # noqa: E402

from assljax import acquisition, ssl  # noqa: E402
from mlp_pool import mlp_context  # noqa: E402  (this file's folder)

N, C, BUDGET = 64, 3, 6
# one per way results leave the devices: a device-side top-k (entropy), host-side scores
# gathered from both processes (NPC)
STRATEGIES = {
    "entropy": {"chunk_size": 4},
    "npc": {"num_candidates": 40, "chunk_size": 4},
}


def _jitter(key, x):
  return x + 0.05 * jax.random.normal(key, x.shape)


def main():
  model, ctx = mlp_context(N, C)
  x, labels, mask = np.asarray(ctx.x), np.asarray(ctx.labels), np.asarray(ctx.labeled_mask)
  mesh = parallel.data_mesh()
  # collectives need both processes; the one-device reference only one of them
  runs = (("mesh", mesh), ("alone", None)) if jax.process_index() == 0 else (("mesh", mesh),)
  out = {"process": jax.process_index(), "devices": jax.device_count(),
         "local_devices": jax.local_device_count(), "mesh_devices": mesh.size}
  for name, hparams in STRATEGIES.items():
    picks = {}
    for tag, m in runs:
      with parallel.use_mesh(m):
        picks[tag] = np.asarray(
            acquisition.get(name, **hparams)(jax.random.key(3), ctx, BUDGET)).tolist()
    out[name] = picks

  alg = ssl.fixmatch(mu=2, weak=_jitter, strong=_jitter, threshold=0.3)
  for tag, m in runs:
    trainer = ssl.make_trainer(model, alg, batch_size=8, total_steps=10, mesh=m)
    data = trainer.place(ssl.make_data(x, labels, mask))
    records = []
    trainer.train(trainer.init(jax.random.key(0), data), data, 4, chunk_steps=2,
                  progress=False, eval_every=4, eval_data=(x, labels),
                  callback=lambda s, r: records.append(r))
    out[f"train_{tag}"] = {"loss": [float(r["loss"]) for r in records],
                           "accuracy": float(records[-1]["eval"]["accuracy"])}
  print(json.dumps(out), flush=True)


if __name__ == "__main__":
  main()
