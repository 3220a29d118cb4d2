"""Empirical NTK benchmark: ours vs neural-tangents, closed-form last layer, chunked memory.

    .venv/bin/python benchmarks/ntk.py                   # default sizes (a few minutes on CPU)
    .venv/bin/python benchmarks/ntk.py --wrn-n 64 --nvp-n 64 --reps 3  # the issue's sizes
    .venv/bin/python benchmarks/ntk.py --n 256 --wrn-n 256 --nvp-n 256  # on a GPU

Prints one JSON object. For each model (the CNN and WRN-28-2 with eval-mode BatchNorm,
CIFAR-shaped inputs ``(N, 32, 32, 3)``, 10 classes, parameters at initialization):

* ``ours_s``: the traced all-parameter NTK ``(N, N)`` from ``empirical_ntk_fn``;
  ``nt_jacobian_contraction_s`` / ``nt_ntk_vector_products_s``: neural-tangents'
  ``empirical_ntk_fn`` on the same pure function and parameters; ``ratio_vs_best_nt`` is
  ours divided by the faster of the two (target <= 1). Programs are compiled ahead of time
  (compile time reported separately), all with the package's XLA options
  (``assljax._compile.jit``: on CPU, convolutions in XLA's Eigen kernels; ``env``
  shows them). Ours and JACOBIAN_CONTRACTION are timed alternately, ``--reps`` calls
  each, and the medians reported (alternating keeps load drift on a shared machine from
  favouring either); other figures are the median of
  ``--reps`` calls (NTK_VECTOR_PRODUCTS: one call), each ``block_until_ready``.
  NTK_VECTOR_PRODUCTS costs O(N^2 C) network passes, so on CPU it is measured at
  ``N = --nvp-n`` and compared with ours at that same N.
* ``last_layer``: the closed form (``param_filter="last_layer"``, no ``embed_fn``) against
  the all-parameter autodiff NTK at the same N (target >= 50x).
* ``memory``: XLA's compiled scratch ("temp") allocation, from
  ``jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``, for ours
  without and with ``chunk_size`` and for both neural-tangents implementations. This is
  the scratch peak of XLA's static buffer assignment for the program, beyond its inputs
  and outputs; it is not process RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from assljax import _compile, models  # noqa: E402
from assljax.kernels import empirical_ntk_fn  # noqa: E402
from assljax.kernels._compat import import_neural_tangents  # noqa: E402

NUM_CLASSES = 10
INPUT_SHAPE = (32, 32, 3)


def _median_time(fn, reps: int, *, warm_up: bool = True) -> float:
  if warm_up:  # compiles on first use; callers pass AOT-compiled functions with False
    jax.block_until_ready(fn())
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _interleaved_median_times(fns: dict, reps: int) -> dict:
  """Median wall times of several AOT-compiled calls, alternating between them so that load
  drift on a shared machine hits all of them alike."""
  times = {name: [] for name in fns}
  for _ in range(reps):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(ts) for name, ts in times.items()}


def _compiled(fn, *args):
  # ours and neural-tangents' with the same XLA options: the package's (assljax/_compile.py)
  start = time.perf_counter()
  compiled = _compile.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start


def _temp_bytes(compiled) -> int | None:
  stats = compiled.memory_analysis()
  return None if stats is None else int(stats.temp_size_in_bytes)


def _rel_diff(a, b) -> float:
  return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def bench_model(name: str, n: int, nvp_n: int, chunk_size: int, reps: int) -> dict:
  nt = import_neural_tangents()
  model = models.build(name, num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
  variables = model.init(jax.random.key(0))
  apply_fn, _ = model.bind(variables.batch_stats)  # eval-mode BatchNorm
  params = variables.params
  x = jax.random.uniform(jax.random.key(1), (n,) + INPUT_SHAPE)
  out = {"model": name, "n": n, "num_params": models.count_params(params),
         "num_classes": NUM_CLASSES}

  ours = empirical_ntk_fn(apply_fn)
  ours_c, out["ours_compile_s"] = _compiled(ours, params, x)
  k_ours = ours_c(params, x)

  def nt_fn(impl, trace_axes=(-1,)):
    f = nt.empirical_ntk_fn(apply_fn, trace_axes=trace_axes, vmap_axes=0, implementation=impl)
    return lambda p, a: f(a, None, p)

  jc = nt.NtkImplementation.JACOBIAN_CONTRACTION
  jc_c, out["nt_jacobian_contraction_compile_s"] = _compiled(nt_fn(jc), params, x)
  medians = _interleaved_median_times(
      {"ours": lambda: ours_c(params, x), "jc": lambda: jc_c(params, x)}, reps)
  out["ours_s"], out["nt_jacobian_contraction_s"] = medians["ours"], medians["jc"]
  # neural-tangents traces with a mean over classes, ours with a sum: compare C * theirs
  out["max_rel_diff_vs_nt"] = _rel_diff(NUM_CLASSES * jc_c(params, x), k_ours)

  nvp = nt.NtkImplementation.NTK_VECTOR_PRODUCTS
  xs = x[:nvp_n]
  nvp_c, out["nt_ntk_vector_products_compile_s"] = _compiled(nt_fn(nvp), params, xs)
  out["nt_ntk_vector_products_n"] = int(xs.shape[0])
  out["nt_ntk_vector_products_s"] = _median_time(lambda: nvp_c(params, xs), 1, warm_up=False)
  if xs.shape[0] == n:
    ours_at_nvp_n = out["ours_s"]
  else:
    ours_small, _ = _compiled(ours, params, xs)
    ours_at_nvp_n = _median_time(lambda: ours_small(params, xs), reps, warm_up=False)
  out["ours_s_at_nvp_n"] = ours_at_nvp_n
  out["ratio_vs_jacobian_contraction"] = out["ours_s"] / out["nt_jacobian_contraction_s"]
  out["ratio_vs_ntk_vector_products_at_nvp_n"] = ours_at_nvp_n / out["nt_ntk_vector_products_s"]
  out["ratio_vs_best_nt"] = max(out["ratio_vs_jacobian_contraction"],
                                out["ratio_vs_ntk_vector_products_at_nvp_n"])

  # last layer: closed form (eager path, as users call it) vs all-parameter autodiff
  last = empirical_ntk_fn(apply_fn, param_filter="last_layer")
  out["last_layer_s"] = _median_time(lambda: last(params, x), reps)
  out["last_layer_speedup_vs_all_params"] = out["ours_s"] / out["last_layer_s"]

  # memory: compiled scratch bytes without / with chunk_size, and neural-tangents'
  out["memory"] = {
      "unit": "bytes (XLA temp allocation of the compiled program)",
      "ours_unchunked": _temp_bytes(ours_c),
      "nt_jacobian_contraction": _temp_bytes(jc_c),
      f"nt_ntk_vector_products_n{xs.shape[0]}": _temp_bytes(nvp_c),
      "jacobian_bytes_all_samples": n * NUM_CLASSES * out["num_params"] * 4,
  }
  if chunk_size < n:
    chunked_c, _ = _compiled(empirical_ntk_fn(apply_fn, chunk_size=chunk_size), params, x)
    out["chunked_max_rel_diff"] = _rel_diff(chunked_c(params, x), k_ours)
    out["memory"][f"ours_chunk_size_{chunk_size}"] = _temp_bytes(chunked_c)
    out["memory"][f"jacobian_bytes_two_chunks_of_{chunk_size}"] = (
        2 * chunk_size * NUM_CLASSES * out["num_params"] * 4)
  else:
    out["memory"]["ours_chunked"] = f"not measured: chunk_size {chunk_size} >= N = {n}"
  return out


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=64, help="samples for the CNN (default 64)")
  parser.add_argument("--wrn-n", type=int, default=8,
                      help="samples for WRN-28-2 (default 8 on CPU; the issue's size is 64)")
  parser.add_argument("--nvp-n", type=int, default=8,
                      help="samples for neural-tangents' NTK_VECTOR_PRODUCTS (default 8)")
  parser.add_argument("--chunk-size", type=int, default=16,
                      help="chunk_size for the memory row (default 16; skipped when >= N)")
  parser.add_argument("--reps", type=int, default=2, help="timed calls per figure (median)")
  parser.add_argument("--models", default="cnn,wrn-28-2",
                      help="comma-separated subset of cnn,wrn-28-2")
  args = parser.parse_args(argv)
  names = [m for m in args.models.split(",") if m]
  if any(m not in ("cnn", "wrn-28-2") for m in names) or not names:
    print("error: --models takes a comma-separated subset of cnn,wrn-28-2", file=sys.stderr)
    return 2
  if min(args.n, args.wrn_n, args.nvp_n, args.reps, args.chunk_size) < 1:
    print("error: --n, --wrn-n, --nvp-n, --chunk-size and --reps must be positive",
          file=sys.stderr)
    return 2
  results = {
      "benchmark": "empirical NTK (traced over classes)",
      "env": {"jax": jax.__version__, "backend": jax.default_backend(),
              "devices": [str(d) for d in jax.devices()][:1], "device_count": jax.device_count(),
              "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "compiler_options": _compile.compiler_options(),
              "XLA_FLAGS": os.environ.get("XLA_FLAGS")},
      "units": "seconds (median wall time) unless stated",
      "reps": args.reps,
      "models": [],
  }
  for name in names:
    n = args.n if name == "cnn" else args.wrn_n
    results["models"].append(
        bench_model(name, n, min(args.nvp_n, n), args.chunk_size, args.reps))
  print(json.dumps(results, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
