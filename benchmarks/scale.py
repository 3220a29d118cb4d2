"""Pool scoring on 1, 2, 4, 8 devices: peak memory per device and the overhead of sharding.

    python benchmarks/scale.py                         # 1,000,000-sample pool, 1/2/4/8 devices
    python benchmarks/scale.py --quick                 # smoke run (65,536 samples)
    python benchmarks/scale.py --candidates 1000000    # NPC's default m = N_U candidates
    python benchmarks/scale.py --devices 1 --platform gpu   # one real accelerator

Prints one JSON object. Each device count runs in its own subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=D`` (CPU) and scores a synthetic pool
of ``--pool`` feature vectors (``--dim`` floats each, row-sharded over a
``parallel.data_mesh(D)``) with the two pool-wide hot paths:

* ``npc``: :func:`assljax.kernels.batch_min_eigenvalues` on ``--candidates`` random
  candidate batches of ``Q = --query`` pool rows with ``l = --labeled`` labeled rows
  (the feature-space solver, smallest positive eigenvalue: NPC with
  ``positive_only=True``), candidates as index sets into the sharded pool;
* ``coreset``: the initial nearest-labeled distances
  (:func:`assljax.acquisition.coreset.min_sq_distances`) and ``--picks`` greedy k-center
  picks (:func:`k_center_greedy`) over the whole pool.

Figures per device count:

* ``per_device_bytes``: what the compiled SPMD executable reserves *per device*
  (``compiled.memory_analysis()``: arguments + outputs + temporaries; the program one
  device runs). This is the peak-memory figure; it must fall as devices grow.
* ``process_peak_rss_bytes``: the subprocess's peak resident memory (``VmHWM``). With
  simulated devices every device lives in this one process, so this is the *sum* over
  devices plus the JAX runtime: it does not fall, and is reported only for context.
* ``seconds``: median warm wall time (``block_until_ready``), ``first_call_s`` including
  compilation. Simulated devices share this machine's cores, so ``overhead_vs_1`` (the
  ratio to one device) measures the partitioning overhead, not a speed-up.
* ``selection``: the NPC best candidate (``best_score`` its λ, equal up to rounding) and
  the first coreset picks, identical for every device count
  (``same_selection_as_1_device``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see benchmarks/spectral.py

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def _peak_rss() -> int | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024
  except OSError:
    return None
  return None


def _child(spec: dict) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  from assljax import parallel
  from assljax.acquisition.coreset import k_center_greedy, min_sq_distances
  from assljax.kernels.spectral import batch_min_eigenvalues

  devices = spec["devices"]
  mesh = parallel.data_mesh(devices)
  n, d, l, q, m = spec["pool"], spec["dim"], spec["labeled"], spec["query"], spec["candidates"]
  k_pool, k_lab, k_idx = jax.random.split(jax.random.key(spec["seed"]), 3)
  rows = parallel.row_sharding(mesh)
  rep = parallel.replicated(mesh)
  # the pool is generated directly in its sharded layout (no device holds all of it)
  pool = jax.jit(lambda k: jax.random.normal(k, (n, d), jnp.float32), out_shardings=rows)(k_pool)
  labeled = jax.device_put(jax.random.normal(k_lab, (l, d), jnp.float32), rep)
  index = jax.jit(lambda k: jax.random.randint(k, (m, q), 0, n, jnp.int32),
                  out_shardings=rows)(k_idx)
  rss_before = _peak_rss()
  out: dict = {"devices": devices, "jax_devices": jax.device_count()}

  def npc(phi_l, phi_u, idx):
    return batch_min_eigenvalues(phi_L=phi_l, phi_G=phi_u, index=idx, positive_only=True,
                                 chunk_size=spec["chunk"], method="features")

  def coreset(features, centers):
    min_d = min_sq_distances(features, centers, chunk_size=spec["chunk"])
    return k_center_greedy(features, min_d, spec["picks"])

  cases = {
      "npc": (npc, (labeled, pool, index), (rep, rows, rows), rows),
      "coreset": (coreset, (pool, labeled), (rows, rep), rep),
  }
  with parallel.use_mesh(mesh):
    for name, (fn, args, in_sh, out_sh) in cases.items():
      if name not in spec["cases"]:
        continue
      jitted = jax.jit(fn, in_shardings=in_sh, out_shardings=out_sh)
      t0 = time.perf_counter()
      compiled = jitted.lower(*args).compile()
      result = jax.block_until_ready(compiled(*args))
      first = time.perf_counter() - t0
      times = []
      for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
      mem = compiled.memory_analysis()
      host = np.asarray(result)
      # NPC: the best candidate (its score varies in the last bits with the device count)
      selection = int(np.argmax(host)) if name == "npc" else host[:8].tolist()
      out[name] = {
          "per_device_bytes": int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                                  + mem.temp_size_in_bytes),
          "argument_bytes": int(mem.argument_size_in_bytes),
          "output_bytes": int(mem.output_size_in_bytes),
          "temp_bytes": int(mem.temp_size_in_bytes),
          "seconds": statistics.median(times),
          "best_seconds": min(times),
          "first_call_s": first,
          "selection": selection,
          **({"best_score": float(np.max(host))} if name == "npc" else {}),
      }
  out["process_peak_rss_bytes"] = _peak_rss()
  out["process_rss_before_scoring_bytes"] = rss_before
  return out


def _run_child(spec: dict) -> dict:
  env = dict(os.environ)
  if spec["platform"] == "cpu":
    flag = f"--xla_force_host_platform_device_count={spec['devices']}"
    env["XLA_FLAGS"] = " ".join(
        [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f] + [flag])
    env["JAX_PLATFORMS"] = "cpu"
  cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
  try:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=spec["timeout"])
  except subprocess.TimeoutExpired:
    return {"devices": spec["devices"], "error": f"timed out after {spec['timeout']} s"}
  if proc.returncode != 0:
    raise RuntimeError(f"child for {spec['devices']} devices failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _env(platform_name: str) -> dict:
  import jax
  return {"jax": jax.__version__, "platform": platform_name, "python": platform.python_version(),
          "machine": platform.machine(), "cpu_count": os.cpu_count(),
          "load_average": os.getloadavg()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--pool", type=int, default=1_000_000)
  parser.add_argument("--dim", type=int, default=32)
  parser.add_argument("--labeled", type=int, default=100)
  parser.add_argument("--query", type=int, default=20)
  parser.add_argument("--candidates", type=int, default=20_000)
  parser.add_argument("--picks", type=int, default=100)
  parser.add_argument("--chunk", type=int, default=256, help="rows per device per step")
  parser.add_argument("--devices", default="1,2,4,8")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--platform", default="cpu", choices=("cpu", "gpu", "tpu"),
                      help="cpu: simulated devices; gpu/tpu: the real ones (devices <= count)")
  parser.add_argument("--cases", default="npc,coreset")
  parser.add_argument("--timeout", type=int, default=600, help="seconds per device count")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--child")
  args = parser.parse_args()
  if args.child:
    print(json.dumps(_child(json.loads(args.child))))
    return
  if args.quick:
    args.pool, args.candidates, args.picks, args.repeats = 65_536, 2_048, 20, 2
  counts = [int(c) for c in args.devices.split(",")]
  base = {k: getattr(args, k) for k in ("pool", "dim", "labeled", "query", "candidates",
                                       "picks", "chunk", "repeats", "seed", "platform",
                                       "timeout")}
  base["cases"] = args.cases.split(",")
  # the pool must split evenly: round it down to a multiple of every device count
  lcm = 1
  for c in counts:
    import math
    lcm = lcm * c // math.gcd(lcm, c)
  base["pool"] -= base["pool"] % lcm
  base["candidates"] -= base["candidates"] % lcm
  runs = {c: _run_child({**base, "devices": c}) for c in counts}
  one = runs[counts[0]]
  result = {"benchmark": "scale", "env": _env(args.platform), "config": base,
            "units": {"per_device_bytes": "bytes (compiled.memory_analysis, per device)",
                      "process_peak_rss_bytes": "bytes (VmHWM of the subprocess, all "
                                                "simulated devices together)",
                      "seconds": "s (median warm wall time)"},
            "baseline_devices": counts[0], "runs": {}}
  for c, run in runs.items():
    if "error" in run or "error" in one:
      result["runs"][str(c)] = run
      continue
    entry = {"process_peak_rss_bytes": run["process_peak_rss_bytes"]}
    for name in base["cases"]:
      r = run[name]
      entry[name] = {**r,
                     "memory_ratio_vs_1": r["per_device_bytes"] / one[name]["per_device_bytes"],
                     "overhead_vs_1": r["seconds"] / one[name]["seconds"],
                     "same_selection_as_1_device": r["selection"] == one[name]["selection"]}
    result["runs"][str(c)] = entry
  ordered = [runs[c] for c in sorted(counts) if "error" not in runs[c]]
  result["per_device_memory_falls"] = {
      name: all(a[name]["per_device_bytes"] > b[name]["per_device_bytes"]
                for a, b in zip(ordered, ordered[1:])) for name in base["cases"]}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
