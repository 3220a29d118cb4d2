"""Spectral solvers vs ``jax.vmap(jnp.linalg.eigvalsh)``, and one whole NPC round.

    python benchmarks/spectral.py                 # the issue's sizes (a few minutes on CPU)
    python benchmarks/spectral.py --quick         # small smoke run
    python benchmarks/spectral.py --m 2000 --subset 32 --pool 100000
    python benchmarks/spectral.py --sections small   # only NPC's l = 100, g = 20 regime

The baseline's batched ``eigvalsh`` may split its batch over the cores, the solvers' loops
do not; ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``
(recorded in the JSON's ``env``) times both sides on one thread.

Prints one JSON object. Every timing is the median of ``--repeats`` (5) warm runs (after a
first call that includes compilation, reported separately), with ``block_until_ready``;
``*_best_s`` is the fastest of those runs, and ``speedup_*_best`` the ratio of bests, the
steadier figure on a machine shared with other jobs (the JSON records the load average).
Errors are measured against float64 ``numpy.linalg.eigvalsh`` of the assembled matrices,
relative to their largest eigenvalue.

Sections (``--sections``, default all; ``bordered``, ``small``, ``features``, ``npc``):

* ``bordered_l{L}_g{G}``: an RBF-kernel Gram (full rank) with ``l = --l`` labeled rows,
  ``m = --m`` candidates of ``g = --g``; :func:`bordered_min_eigenvalues` (plain and
  positive-only) vs ``jax.vmap(jnp.linalg.eigvalsh)`` on the assembled
  ``(l + g) x (l + g)`` matrices. Assembling all ``m`` of them would need
  ``m (l + g)^2`` floats (4 GB at the default sizes), so the baseline is timed on the
  first ``--subset`` candidates and extrapolated linearly to ``m`` (eigvalsh of
  independent matrices costs the same per matrix); the JSON says so.
* ``bordered_l100_g20``: NPC's CIFAR-10 regime, the baseline on all ``m`` matrices.
  The plain solve's steps visit only unfinished candidates, one at a time on CPU
  (``kernels/spectral/_roots.py``), so no chunk waits for its slowest row.
* ``features_d{D}``: Grams ``Φ Φᵀ`` of ``d = --d`` features (rank ``d < l + g``),
  positive-only (the plain value is exactly 0): :func:`feature_min_eigenvalues` vs the
  same baseline (extrapolated from ``--subset``) and vs the bordered solver on blocks.
* ``npc_round``: ``assljax.acquisition.get("npc")`` on a ``--pool``-sample pool of
  ``--d``-dimensional features (``embed_fn = identity``, a linear head), 100 labeled,
  ``Q = 20``, default ``num_candidates`` (= unlabeled count; NPC bounds every candidate
  and solves the few whose bound can win exactly, ``NPC.best`` through
  :func:`assljax.kernels.argmax_min_eigenvalue`), run in a subprocess: wall seconds of
  the first call (compiles the candidate sampler, the feature map and the one search
  program) and of a second call with another key (warm), and the subprocess's peak
  resident memory (``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` would include the
  forking parent's peak), next to the peak of the same subprocess just before the
  acquisition (JAX runtime + pool). ``--npc-candidates`` overrides ``num_candidates``
  (e.g. 100000 to show that many candidates stream in bounded memory).
"""

from __future__ import annotations

import os

# LAPACK (behind both the eigvalsh baseline and the solvers' small factorizations) runs on
# OpenBLAS, whose worker threads spin and stall by up to 100x when the cores are shared
# with other jobs. One BLAS thread per process keeps both sides of every ratio honest;
# export OPENBLAS_NUM_THREADS to override. Must be set before numpy/jax load OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _timeit(fn, repeats, name=None, sink=None):
  """``(output, first_call_s, median_s)``; with ``sink``/``name`` also records
  ``sink[name + "_best_s"]`` (the fastest run: on a shared machine the least disturbed)."""
  import jax

  t0 = time.perf_counter()
  out = jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  if sink is not None:
    sink[f"{name}_best_s"] = min(times)
  return out, first, statistics.median(times)


def _ref64(mats, positive_only, rtol):
  vals, lmax = [], []
  for a in mats:
    a = np.asarray(a, np.float64)
    ev = np.linalg.eigvalsh(a)
    lmax.append(np.abs(ev).max())
    if positive_only:
      pos = ev[ev > rtol * np.linalg.norm(a)]
      vals.append(pos[0] if pos.size else 0.0)
    else:
      vals.append(ev[0])
  return np.array(vals), np.array(lmax)


def _assemble(k_ll, k_lg, k_gg):
  import jax.numpy as jnp

  m = k_lg.shape[0]
  top = jnp.concatenate([jnp.broadcast_to(k_ll, (m,) + k_ll.shape), k_lg], axis=2)
  bottom = jnp.concatenate([jnp.swapaxes(k_lg, 1, 2), k_gg], axis=2)
  return jnp.concatenate([top, bottom], axis=1)


def _rbf_blocks(l, g, m, dim, seed):
  import jax
  import jax.numpy as jnp

  key_l, key_g = jax.random.split(jax.random.key(seed))
  x_l = jax.random.normal(key_l, (l, dim))
  x_g = jax.random.normal(key_g, (m, g, dim))

  @jax.jit
  def blocks(x_l, x_g):
    sq = lambda a, b: jnp.sum((a[..., :, None, :] - b[..., None, :, :]) ** 2, axis=-1)
    k = lambda a, b: jnp.exp(-0.5 * sq(a, b) / dim)
    return k(x_l, x_l), jax.vmap(lambda xg: k(x_l, xg))(x_g), jax.vmap(lambda xg: k(xg, xg))(x_g)

  return jax.block_until_ready(blocks(x_l, x_g))


def _baseline(mats_fn, count, repeats, sink):
  """vmap(eigvalsh) over ``count`` assembled matrices: (mats, values, first_s, median_s);
  records ``sink["baseline_best_s"]`` (not extrapolated)."""
  import jax
  import jax.numpy as jnp

  mats = jax.block_until_ready(mats_fn(count))
  f = jax.jit(jax.vmap(jnp.linalg.eigvalsh))
  vals, first, med = _timeit(lambda: f(mats), repeats, "baseline", sink)
  return mats, vals, first, med


def bench_bordered(l, g, m, subset, repeats, seed=0):
  import jax.numpy as jnp
  from assljax.kernels import bordered_min_eigenvalues
  from assljax.kernels.spectral import default_rtol

  k_ll, k_lg, k_gg = _rbf_blocks(l, g, m, 64, seed)
  rtol = default_rtol(jnp.float32)
  out = {"l": l, "g": g, "m": m, "dtype": "float32", "kernel": "RBF on 64-d Gaussian data"}
  results = {}
  for positive_only in (False, True):
    key = "positive_only" if positive_only else "plain"
    vals, first, med = _timeit(
        lambda: bordered_min_eigenvalues(k_ll, k_lg, k_gg, positive_only=positive_only),
        repeats, f"bordered_{key}", out)
    results[positive_only] = np.asarray(vals)
    out[f"bordered_{key}_s"] = med
    out[f"bordered_{key}_first_call_s"] = first
  count = min(subset, m)
  mats, base_vals, base_first, base_med = _baseline(
      lambda c: _assemble(k_ll, k_lg[:c], k_gg[:c]), count, repeats, out)
  scale = m / count
  out["baseline"] = "jax.jit(jax.vmap(jnp.linalg.eigvalsh)) on assembled matrices"
  out["baseline_timed_on"] = count
  out["baseline_extrapolated"] = count < m
  out["baseline_s_timed"] = base_med
  out["baseline_s"] = base_med * scale
  out["baseline_best_s"] *= scale
  mats64 = np.asarray(mats, np.float64)
  for positive_only in (False, True):
    key = "positive_only" if positive_only else "plain"
    ref, lmax = _ref64(mats64, positive_only, rtol)
    err = np.abs(results[positive_only][:count] - ref) / lmax
    out[f"bordered_{key}_max_error_rel_lambda_max"] = float(err.max())
    out[f"speedup_{key}"] = out["baseline_s"] / out[f"bordered_{key}_s"]
    out[f"speedup_{key}_best"] = out["baseline_best_s"] / out[f"bordered_{key}_best_s"]
  ev = np.asarray(base_vals, np.float64)
  ref, lmax = _ref64(mats64, False, rtol)
  out["baseline_max_error_rel_lambda_max"] = float((np.abs(ev[:, 0] - ref) / lmax).max())
  return out


def bench_features(l, g, m, d, subset, repeats, seed=1):
  import jax
  import jax.numpy as jnp
  from assljax.kernels import batch_min_eigenvalues, feature_min_eigenvalues
  from assljax.kernels.spectral import default_rtol

  key_l, key_g = jax.random.split(jax.random.key(seed))
  decay = 1.0 / jnp.sqrt(1.0 + jnp.arange(d))                  # a decaying spectrum
  phi_l = jax.random.normal(key_l, (l, d)) * decay[None, :]
  phi_g = jax.random.normal(key_g, (m, g, d)) * decay[None, None, :]
  rtol = default_rtol(jnp.float32)
  out = {"l": l, "g": g, "m": m, "d": d, "dtype": "float32", "positive_only": True}
  vals, first, med = _timeit(lambda: feature_min_eigenvalues(phi_l, phi_g), repeats,
                             "features", out)
  out["features_s"] = med
  out["features_first_call_s"] = first
  plain, _, plain_med = _timeit(
      lambda: feature_min_eigenvalues(phi_l, phi_g, positive_only=False), repeats)
  out["features_plain_s"] = plain_med
  out["features_plain_all_zero"] = bool(np.all(np.asarray(plain) == 0))
  blocks = jax.jit(lambda a, b: (a @ a.T, jnp.einsum("ld,mgd->mlg", a, b),
                                 jnp.einsum("mgd,mhd->mgh", b, b)))(phi_l, phi_g)
  _, _, bord_med = _timeit(
      lambda: batch_min_eigenvalues(*blocks, method="bordered"), repeats,
      "bordered_on_blocks", out)
  out["bordered_on_blocks_s"] = bord_med
  count = min(subset, m)
  mats, _, _, base_med = _baseline(
      lambda c: _assemble(blocks[0], blocks[1][:c], blocks[2][:c]), count, repeats, out)
  out["baseline_timed_on"] = count
  out["baseline_extrapolated"] = count < m
  out["baseline_s"] = base_med * m / count
  out["baseline_best_s"] *= m / count
  out["speedup_vs_baseline"] = out["baseline_s"] / med
  out["speedup_vs_baseline_best"] = out["baseline_best_s"] / out["features_best_s"]
  out["speedup_vs_bordered"] = bord_med / med
  ref, lmax = _ref64(np.asarray(mats, np.float64), True, rtol)
  out["features_max_error_rel_lambda_max"] = float(
      (np.abs(np.asarray(vals)[:count] - ref) / lmax).max())
  return out


def bench_small(l, g, m, repeats, seed=2):
  """NPC's CIFAR-10 regime: the baseline runs on every candidate."""
  import jax
  import jax.numpy as jnp
  from assljax.kernels import batch_min_eigenvalues, bordered_min_eigenvalues
  from assljax.kernels.spectral import choose_method, default_rtol

  k_ll, k_lg, k_gg = _rbf_blocks(l, g, m, 64, seed)
  out = {"l": l, "g": g, "m": m, "dtype": "float32", "kernel": "RBF on 64-d Gaussian data",
         "auto_method": choose_method(l=l, g=g)}
  vals, first, med = _timeit(
      lambda: bordered_min_eigenvalues(k_ll, k_lg, k_gg, positive_only=False), repeats,
      "bordered_plain", out)
  out["bordered_plain_s"] = med
  out["bordered_plain_first_call_s"] = first
  _, _, dense_med = _timeit(
      lambda: batch_min_eigenvalues(k_ll, k_lg, k_gg, method="dense", positive_only=False),
      repeats, "dense_method", out)
  out["dense_method_s"] = dense_med
  mats, base_vals, _, base_med = _baseline(
      lambda c: _assemble(k_ll, k_lg[:c], k_gg[:c]), m, repeats, out)
  out["baseline_s"] = base_med
  out["baseline_extrapolated"] = False
  out["speedup_plain"] = base_med / med
  out["speedup_plain_best"] = out["baseline_best_s"] / out["bordered_plain_best_s"]
  ref, lmax = _ref64(np.asarray(mats, np.float64), False, default_rtol(jnp.float32))
  out["bordered_plain_max_error_rel_lambda_max"] = float(
      (np.abs(np.asarray(vals) - ref) / lmax).max())
  out["baseline_max_error_rel_lambda_max"] = float(
      (np.abs(np.asarray(base_vals, np.float64)[:, 0] - ref) / lmax).max())
  return out


def _peak_rss_mb() -> float:
  """Peak resident memory of this process in MB: ``VmHWM`` (reset by ``exec``, unlike
  ``ru_maxrss``, which Linux carries over from the forking parent), else ``ru_maxrss``."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def npc_child(pool, d, labeled, budget, seed, num_candidates=None):
  """Runs in a subprocess; prints the measurement JSON."""
  import jax
  import jax.numpy as jnp
  from assljax.acquisition import Context, get

  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(pool, d)).astype(np.float32))
  mask = np.zeros(pool, bool)
  mask[rng.choice(pool, labeled, replace=False)] = True
  C = 10
  params = {"head": {"kernel": jnp.asarray(rng.normal(size=(d, C)).astype(np.float32)),
                     "bias": jnp.zeros(C)}}
  ctx = Context(apply_fn=lambda p, v: v @ p["head"]["kernel"] + p["head"]["bias"][None, :],
                params=params, x=x, labeled_mask=jnp.asarray(mask),
                labels=jnp.asarray(rng.integers(0, C, pool), jnp.int32), num_classes=C,
                embed_fn=_identity)
  jax.block_until_ready(ctx.x)
  rss_before = _peak_rss_mb()
  strategy = get("npc", num_candidates=num_candidates)
  t0 = time.perf_counter()
  idx = jax.block_until_ready(strategy(jax.random.key(0), ctx, budget))
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(strategy(jax.random.key(1), ctx, budget))
  second = time.perf_counter() - t0
  rss_after = _peak_rss_mb()
  from assljax.kernels.spectral import choose_method

  print(json.dumps({
      "pool": pool, "feature_dim": d, "kernel_feature_dim": d + 1, "labeled": labeled,
      "budget_Q": budget, "num_candidates": num_candidates or pool - labeled,
      "solver_method": choose_method(l=labeled, g=budget, d=d + 1),
      "first_call_s": first, "second_call_s": second,
      "peak_rss_mb": rss_after, "peak_rss_before_acquisition_mb": rss_before,
      "selected_distinct": int(len(np.unique(np.asarray(idx)))),
  }))


def _identity(params, x):
  del params
  return x


def bench_npc(pool, d, labeled, budget, num_candidates=None):
  cmd = [sys.executable, os.path.abspath(__file__), "--npc-child", "--pool", str(pool),
         "--d", str(d), "--labeled", str(labeled), "--budget", str(budget)]
  if num_candidates:
    cmd += ["--npc-candidates", str(num_candidates)]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  out["memory_note"] = ("peak resident set (VmHWM) of the subprocess, including the JAX "
                        "runtime and the pool; peak_rss_before_acquisition_mb is the same "
                        "process right before calling the strategy")
  return out


# --sections: bordered_l{L}_g{G}, bordered_l100_g20, features_d{D}, npc_round
SECTIONS = ("bordered", "small", "features", "npc")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
  parser.add_argument("--m", type=int, default=1000)
  parser.add_argument("--l", type=int, default=1000)
  parser.add_argument("--g", type=int, default=10)
  parser.add_argument("--d", type=int, default=128)
  parser.add_argument("--subset", type=int, default=8,
                      help="candidates the large-matrix baseline is timed on")
  parser.add_argument("--pool", type=int, default=50000)
  parser.add_argument("--labeled", type=int, default=100)
  parser.add_argument("--budget", type=int, default=20)
  parser.add_argument("--npc-candidates", type=int, default=None,
                      help="num_candidates for the NPC round (default: unlabeled count)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--sections", default=",".join(SECTIONS),
                      help="comma-separated subset of: " + ", ".join(SECTIONS))
  parser.add_argument("--npc-child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.npc_child:
    npc_child(args.pool, args.d, args.labeled, args.budget, seed=3,
              num_candidates=args.npc_candidates)
    return
  if args.quick:
    args.m, args.l, args.pool, args.subset, args.repeats = 100, 200, 5000, 8, 2
  sections = [name.strip() for name in args.sections.split(",") if name.strip()]
  unknown = sorted(set(sections) - set(SECTIONS))
  if unknown or not sections:
    parser.error(f"--sections: unknown {', '.join(unknown) or '(none given)'}; "
                 f"choose from {', '.join(SECTIONS)}")

  import jax

  load_start = os.getloadavg()
  result = {
      "env": {"jax": jax.__version__, "backend": jax.default_backend(),
              "devices": [str(dev) for dev in jax.devices()],
              "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
              "python": platform.python_version(), "machine": platform.machine(),
              "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
              "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
              "loadavg_1_5_15_at_start": load_start},
      "units": "seconds unless named otherwise; errors are |value - float64 eigvalsh| / "
               "lambda_max of the assembled matrix",
  }
  if "bordered" in sections:
    result[f"bordered_l{args.l}_g{args.g}"] = bench_bordered(args.l, args.g, args.m,
                                                             args.subset, args.repeats)
  if "small" in sections:
    result["bordered_l100_g20"] = bench_small(100, 20, args.m, args.repeats)
  if "features" in sections:
    result[f"features_d{args.d}"] = bench_features(args.l, args.g, args.m, args.d,
                                                   args.subset, args.repeats)
  if "npc" in sections:
    result["npc_round"] = bench_npc(args.pool, args.d, args.labeled, args.budget,
                                    args.npc_candidates)
  result["env"]["loadavg_1_5_15_at_end"] = os.getloadavg()
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
