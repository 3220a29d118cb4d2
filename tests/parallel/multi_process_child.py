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
import jax.numpy as jnp  # noqa: E402

from assljax import acquisition, models, ssl  # noqa: E402

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
  model = models.build("mlp", num_classes=C, input_shape=(5,), width=12, depth=1)
  variables = model.init(jax.random.key(0))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(0)
  mask = np.zeros(N, bool)
  mask[rng.choice(N, 7, replace=False)] = True
  labels = np.where(mask, rng.integers(0, C, N), 0).astype(np.int32)
  x = rng.normal(size=(N, 5)).astype(np.float32)
  ctx = acquisition.Context(apply_fn=apply_fn, params=variables.params, x=jnp.asarray(x),
                            labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                            num_classes=C, embed_fn=embed_fn)
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
