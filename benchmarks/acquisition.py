"""Acquisition strategies at pool scale: seconds and peak memory, streamed vs dense.

    python benchmarks/acquisition.py                       # default sizes (CPU: minutes)
    python benchmarks/acquisition.py --pool 50000          # the issue's full WRN pool
    python benchmarks/acquisition.py --features-pool 1000000 --chunk-sizes 256,4096

Prints one JSON object with three parts, every measurement in its own subprocess (so
``maxrss_mb``, the peak resident set size from ``getrusage``, belongs to that run alone):

1. ``wrn``: every strategy on a CIFAR-sized pool (``--pool`` random 32x32x3 images,
   WRN-28-2 at initialization, ``--labeled`` labeled, budget ``--budget``), and on a
   smaller pool (``--pool-small``, same labeled set). Each child times a first call
   (compilation included) and a second, steady-state call per pool size.
   ``extrapolated_50k_s`` fits the steady time as ``a + b * unlabeled`` through the two
   sizes (every strategy here is linear in the pool at fixed budget) and evaluates it at
   a 50,000 pool -- an extrapolation, not a measurement, unless ``--pool 50000``.
   ``pool_only`` is the same process without a strategy (JAX, the model, the pool).
2. ``features``: the feature-based strategies on ``--features-pool`` samples of
   ``--feature-dim``-d features with a linear head (uncertainty via the head, BADGE,
   coreset), for each of ``--chunk-sizes``: peak memory stays at the pool's own
   footprint plus O(n (d + C)) and does not grow with the chunk size (no n x n or
   n x C d array). ``pool_only`` holds just the feature pool.
3. ``dense_baseline``: at ``--dense-pool`` samples (where the dense forms still fit),
   the naive dense form of each feature strategy -- coreset with the full n x n
   distance matrix, BADGE with the explicit n x (C d) gradient embeddings, uncertainty
   in one unchunked pass -- against the streamed implementation in the same run, with
   time and memory ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)

STRATEGIES = ("random", "entropy", "margin", "confidence", "egl", "badge", "coreset", "albl",
              "dynamicAL", "bilevel")
FEATURE_STRATEGIES = ("entropy", "badge", "coreset")


def _maxrss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn):
  import jax
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return time.perf_counter() - start, out


# ------------------------------------------------------------------------------ children


def _child_wrn(spec: dict) -> dict:
  import dataclasses

  import jax
  import jax.numpy as jnp
  import numpy as np

  import assljax
  from assljax import acquisition

  n, n_small, n_lab, budget = spec["pool"], spec["pool_small"], spec["labeled"], spec["budget"]
  model = assljax.models.build("wrn-28-2", num_classes=10, input_shape=(32, 32, 3))
  variables = model.init(jax.random.key(0))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  x = jax.random.uniform(jax.random.key(1), (n, 32, 32, 3), jnp.float32)
  mask = np.zeros(n, bool)
  mask[:n_lab] = True
  labels = np.where(mask, np.arange(n) % 10, 0).astype(np.int32)
  ctx = acquisition.Context(apply_fn=apply_fn, params=variables.params, x=x,
                            labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                            num_classes=10, embed_fn=embed_fn)
  # the smaller pool: the same labeled set, fewer unlabeled samples
  small = dataclasses.replace(ctx, x=x[:n_small], labeled_mask=ctx.labeled_mask[:n_small],
                              labels=ctx.labels[:n_small])
  name = spec["strategy"]
  if name is None:
    jax.block_until_ready(apply_fn(variables.params, x[:spec["chunk_size"]]))
    return {"maxrss_mb": _maxrss_mb()}
  strategy = acquisition.get(name, **spec["hyperparameters"])
  out = {}
  for label, c in (("small", small), ("large", ctx)):
    first, idx = _timed(lambda: strategy(jax.random.key(2), c, budget))
    steady, idx2 = _timed(lambda: strategy(jax.random.key(2), c, budget))
    assert np.array_equal(np.asarray(idx), np.asarray(idx2))
    out[f"first_call_s_{label}"] = first
    out[f"steady_s_{label}"] = steady
  out["maxrss_mb"] = _maxrss_mb()
  return out


def _feature_context(n: int, d: int, num_classes: int, n_lab: int):
  import jax
  import jax.numpy as jnp
  import numpy as np

  from assljax import acquisition

  # numpy writes float32 directly (no RNG temporaries); the host copy is freed after
  # the transfer, so the pool's own peak is about twice its size
  host = np.random.default_rng(1).standard_normal((n, d), dtype=np.float32)
  x = jax.block_until_ready(jnp.asarray(host))
  del host
  head = {"kernel": jax.random.normal(jax.random.key(2), (d, num_classes)) / np.sqrt(d),
          "bias": jnp.zeros((num_classes,))}
  mask = np.zeros(n, bool)
  mask[np.random.default_rng(0).choice(n, n_lab, replace=False)] = True
  labels = np.where(mask, np.arange(n) % num_classes, 0).astype(np.int32)
  return acquisition.Context(
      apply_fn=_linear_head, params={"head": head}, x=x, labeled_mask=jnp.asarray(mask),
      labels=jnp.asarray(labels), num_classes=num_classes, embed_fn=_identity_features)


def _linear_head(params, x):
  return x @ params["head"]["kernel"] + params["head"]["bias"][None, :]


def _identity_features(params, x):
  del params
  return x


def _child_features(spec: dict) -> dict:
  import jax
  import numpy as np

  from assljax import acquisition

  ctx = _feature_context(spec["n"], spec["d"], spec["num_classes"], spec["labeled"])
  jax.block_until_ready(ctx.x)
  name = spec["strategy"]
  if name is None:
    return {"maxrss_mb": _maxrss_mb()}
  strategy = acquisition.get(name, chunk_size=spec["chunk_size"])
  first, idx = _timed(lambda: strategy(jax.random.key(3), ctx, spec["budget"]))
  steady, idx2 = _timed(lambda: strategy(jax.random.key(3), ctx, spec["budget"]))
  assert np.array_equal(np.asarray(idx), np.asarray(idx2))
  return {"first_call_s": first, "steady_s": steady, "maxrss_mb": _maxrss_mb()}


def _dense_entropy(params, x, k):
  """Entropy of every row in one unchunked pass, then top-k."""
  import jax
  import jax.numpy as jnp
  logp = jax.nn.log_softmax(_linear_head(params, x), axis=-1)
  return jax.lax.top_k(-jnp.sum(jnp.exp(logp) * logp, axis=-1), k)[1]


def _dense_k_center(x, labeled_mask, k):
  """k-center greedy with the full n x n distance matrix."""
  import jax
  import jax.numpy as jnp
  sq = jnp.sum(x * x, 1)
  d = jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0))   # n x n
  min_d = jnp.min(jnp.where(labeled_mask[None, :], d, jnp.inf), axis=1)

  def body(t, carry):
    picks, min_d = carry
    c = jnp.argmax(jnp.where(labeled_mask, -jnp.inf, min_d))
    return picks.at[t].set(c), jnp.minimum(min_d, d[:, c]).at[c].set(-jnp.inf)

  return jax.lax.fori_loop(0, k, body, (jnp.zeros((k,), jnp.int32), min_d))[0]


def _dense_kmeans_pp(key, h, w, b, k):
  """BADGE with the explicit n x (d C) gradient embeddings."""
  import jax
  import jax.numpy as jnp
  p = jax.nn.softmax(h @ w + b[None, :], axis=-1)
  a = p - jax.nn.one_hot(jnp.argmax(p, -1), p.shape[-1])
  g = (h[:, :, None] * a[:, None, :]).reshape(h.shape[0], -1)        # explicit n x (d C)
  first = jnp.argmax(jnp.sum(g * g, 1))
  min_d = jnp.sum((g - g[first][None, :]) ** 2, 1)

  def body(t, carry):
    picks, chosen, min_d = carry
    logits = jnp.where(chosen | (min_d <= 0), -jnp.inf, jnp.log(jnp.maximum(min_d, 1e-30)))
    c = jax.random.categorical(jax.random.fold_in(key, t), logits)
    return (picks.at[t].set(c), chosen.at[c].set(True),
            jnp.minimum(min_d, jnp.sum((g - g[c][None, :]) ** 2, 1)))

  init = (jnp.zeros((k,), jnp.int32).at[0].set(first),
          jnp.zeros((h.shape[0],), bool).at[first].set(True), min_d)
  return jax.lax.fori_loop(1, k, body, init)[0]


_DENSE_JIT = {}


def _dense_select(name: str, ctx, key, budget: int):
  """The naive dense forms: full matrices, no chunking (each jitted once)."""
  import jax
  import numpy as np

  if not _DENSE_JIT:
    _DENSE_JIT.update(entropy=jax.jit(_dense_entropy, static_argnums=(2,)),
                      coreset=jax.jit(_dense_k_center, static_argnums=(2,)),
                      badge=jax.jit(_dense_kmeans_pp, static_argnums=(4,)))
  unl = ctx.unlabeled_indices()
  if name == "entropy":
    return unl[np.asarray(_DENSE_JIT["entropy"](ctx.params, ctx.x[unl], budget))]
  if name == "coreset":
    return np.asarray(_DENSE_JIT["coreset"](ctx.x, ctx.labeled_mask, budget))
  if name == "badge":
    head = ctx.params["head"]
    return unl[np.asarray(_DENSE_JIT["badge"](key, ctx.x[unl], head["kernel"], head["bias"],
                                              budget))]
  raise ValueError(f"no dense baseline for {name!r}")


def _child_dense(spec: dict) -> dict:
  import jax
  import numpy as np

  ctx = _feature_context(spec["n"], spec["d"], spec["num_classes"], spec["labeled"])
  jax.block_until_ready(ctx.x)
  first, idx = _timed(lambda: _dense_select(spec["strategy"], ctx, jax.random.key(3),
                                            spec["budget"]))
  steady, _ = _timed(lambda: _dense_select(spec["strategy"], ctx, jax.random.key(3),
                                           spec["budget"]))
  out = {"first_call_s": first, "steady_s": steady, "maxrss_mb": _maxrss_mb()}
  if spec["strategy"] == "coreset":
    from assljax import acquisition
    streamed = acquisition.get("coreset", chunk_size=256)(jax.random.key(3), ctx, spec["budget"])
    out["same_indices_as_streamed"] = bool(np.array_equal(np.asarray(streamed), idx))
  return out


# ------------------------------------------------------------------------------- parent


def _run_child(kind: str, spec: dict, timeout: float) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps({"kind": kind, **spec})]
  env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
  except subprocess.TimeoutExpired:
    return {"error": f"timed out after {timeout:.0f} s"}
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not lines:
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
  return json.loads(lines[-1])


def _env() -> dict:
  import jax
  return {"jax": jax.__version__, "backend": jax.default_backend(),
          "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
          "python": platform.python_version(),
          "load_average_1min": os.getloadavg()[0]}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--child", help=argparse.SUPPRESS)
  parser.add_argument("--pool", type=int, default=380, help="WRN pool size (issue: 50000)")
  parser.add_argument("--pool-small", type=int, default=300,
                      help="second, smaller WRN pool for the linear fit in the pool size")
  parser.add_argument("--labeled", type=int, default=250)
  parser.add_argument("--budget", type=int, default=50)
  parser.add_argument("--chunk-size", type=int, default=128, help="WRN forward chunk")
  parser.add_argument("--dynamic-chunk", type=int, default=16,
                      help="per-sample gradient chunk (egl all / dynamicAL)")
  parser.add_argument("--bilevel-landmarks", type=int, default=64)
  parser.add_argument("--bilevel-augmentations", type=int, default=2)
  parser.add_argument("--bilevel-outer-size", type=int, default=None)
  parser.add_argument("--features-pool", type=int, default=1_000_000)
  parser.add_argument("--feature-dim", type=int, default=128)
  parser.add_argument("--num-classes", type=int, default=10)
  parser.add_argument("--chunk-sizes", default="256,4096",
                      help="comma-separated chunk sizes for the feature pool")
  parser.add_argument("--dense-pool", type=int, default=16384)
  parser.add_argument("--skip", default="", help="comma-separated parts to skip: "
                      "wrn,features,dense")
  parser.add_argument("--timeout", type=float, default=1800.0, help="per subprocess, seconds")
  args = parser.parse_args(argv)

  if args.child:
    spec = json.loads(args.child)
    kind = spec.pop("kind")
    out = {"wrn": _child_wrn, "features": _child_features, "dense": _child_dense}[kind](spec)
    print(json.dumps(out))
    return

  skip = {s for s in args.skip.split(",") if s}
  result = {"env": _env(), "units": {"*_s": "seconds", "maxrss_mb": "MiB (peak RSS)"}}

  if "wrn" not in skip:
    base = dict(pool=args.pool, pool_small=args.pool_small, labeled=args.labeled,
                budget=args.budget, chunk_size=args.chunk_size)
    n_u, n_u_small = args.pool - args.labeled, args.pool_small - args.labeled
    hyper = {name: {"chunk_size": args.chunk_size} for name in STRATEGIES}
    hyper["random"] = {}
    hyper["dynamicAL"] = {"chunk_size": args.dynamic_chunk}
    hyper["bilevel"] = {"chunk_size": args.chunk_size, "landmarks": args.bilevel_landmarks,
                        "augmentations": args.bilevel_augmentations,
                        "outer_size": args.bilevel_outer_size}
    part = {"model": "wrn-28-2 (1.47 M params, at initialization)",
            "pool": args.pool, "pool_small": args.pool_small, "labeled": args.labeled,
            "budget": args.budget, "input": "32x32x3", "hyperparameters": hyper,
            "extrapolation": ("steady seconds fitted as a + b * unlabeled through the two "
                              "pool sizes, evaluated at 49,750 unlabeled (50,000 pool); "
                              "null when the fit is not increasing"),
            "pool_only": _run_child("wrn", {**base, "strategy": None}, args.timeout),
            "strategies": {}}
    for name in STRATEGIES:
      r = _run_child("wrn", {**base, "strategy": name, "hyperparameters": hyper[name]},
                     args.timeout)
      if "steady_s_large" in r:
        slope = (r["steady_s_large"] - r["steady_s_small"]) / (n_u - n_u_small)
        r["seconds_per_unlabeled_sample"] = slope
        r["extrapolated_50k_s"] = (r["steady_s_large"] + slope * (50_000 - args.pool)
                                   if slope > 0 else None)
      part["strategies"][name] = r
    result["wrn"] = part

  if "features" not in skip:
    base = dict(n=args.features_pool, d=args.feature_dim, num_classes=args.num_classes,
                labeled=250, budget=args.budget)
    pool_mb = args.features_pool * args.feature_dim * 4 / 2**20
    part = {**base, "pool_array_mb": pool_mb,
            "pool_only": _run_child("features", {**base, "strategy": None}, args.timeout),
            "by_chunk_size": {}}
    for chunk in [int(c) for c in args.chunk_sizes.split(",") if c]:
      part["by_chunk_size"][str(chunk)] = {
          name: _run_child("features", {**base, "strategy": name, "chunk_size": chunk},
                           args.timeout) for name in FEATURE_STRATEGIES}
    result["features"] = part

  if "dense" not in skip:
    base = dict(n=args.dense_pool, d=args.feature_dim, num_classes=args.num_classes,
                labeled=250, budget=args.budget)
    part = {**base, "pool_only": _run_child("features", {**base, "strategy": None},
                                            args.timeout), "strategies": {}}
    for name in FEATURE_STRATEGIES:
      dense = _run_child("dense", {**base, "strategy": name}, args.timeout)
      streamed = _run_child("features", {**base, "strategy": name, "chunk_size": 256},
                            args.timeout)
      entry = {"dense": dense, "streamed": streamed}
      if "steady_s" in dense and "steady_s" in streamed:
        entry["speedup_steady"] = dense["steady_s"] / streamed["steady_s"]
        entry["memory_ratio_dense_over_streamed"] = dense["maxrss_mb"] / streamed["maxrss_mb"]
      part["strategies"][name] = entry
    result["dense_baseline"] = part

  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
