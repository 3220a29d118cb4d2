"""One FixMatch training step of WRN-28-2: images/s and model-FLOP utilization.

    python benchmarks/train_step.py                  # CPU default: 8 labeled + 56 x 2 views
    python benchmarks/train_step.py --batch 64       # the reference step: 64 + 448 x 2
    python benchmarks/train_step.py --dtype bfloat16 # on a GPU: bf16 compute
    python benchmarks/train_step.py --peer torch     # + the PyTorch peer, same shapes

The PyTorch peer (``benchmarks/_torch_peer.py``) runs in a separate environment, since
PyTorch is never a dependency of assljax:

    python -m venv .venv-torch && .venv-torch/bin/pip install torch numpy

(``--torch-python`` or ``$ASSLJAX_TORCH_PYTHON`` names another interpreter); without it
the peer is skipped with one line on stderr.

Prints one JSON object:

* ``step``: the engine's jitted FixMatch step (on-device batch sampling, weak and strong
  augmentation of every view, one forward/backward over ``B + 2 mu B`` images, Nesterov
  SGD with weight decay, EMA update): median seconds over ``--steps`` timed steps after
  a warm-up step (compilation excluded), images/s (``B + 2 mu B`` images per step).
* ``model_flops_per_step``: 3x the forward FLOPs of WRN-28-2 (forward + backward) times
  the images per step, the forward counted by XLA's cost analysis of one image.
  ``xla_flops_per_step`` is XLA's count of the whole compiled step, for reference.
* ``baseline_grad_step``: measured in the same run, a plain jitted ``value_and_grad``
  of the cross-entropy over the same number of (un-augmented) images, no optimizer,
  compiled with the engine's options (``assljax._compile.jit``): the floor the engine's
  step can approach; ``ratio_step_over_baseline``.
* ``env.compiler_options``: the XLA options of both (on CPU, YNNPACK for dots and
  reductions only; ``assljax/_compile.py``). XLA's defaults, YNNPACK convolutions
  included, are timed by naming the option yourself:
  ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=+individual_convolution``.
* ``matmul_peak``: this machine's measured matrix-multiply rate (``--peak-size``
  square, in the compute dtype), and ``mfu`` = model FLOPs/s over that peak.
* with ``--peer torch``: ``peer`` (the PyTorch step's median seconds, measured after
  ours, the two never at once) and ``ratio_throughput_over_peer`` = ours / theirs in
  images per second for the full step (ours augments every view, theirs does not) and
  for ``baseline_grad_step`` (neither augments; ours has no optimizer either).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_torch_peer.py")


def _median_time(fn, repeats):
  import jax
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def main() -> None:
  import jax
  import jax.numpy as jnp
  import numpy as np

  gpu = jax.default_backend() != "cpu"
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="wrn-28-2")
  parser.add_argument("--batch", type=int, default=64 if gpu else 8,
                      help="labeled images per step (64 in the reference)")
  parser.add_argument("--mu", type=int, default=7)
  parser.add_argument("--steps", type=int, default=5 if gpu else 2, help="timed steps")
  parser.add_argument("--pool", type=int, default=2048, help="synthetic pool size")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--peak-size", type=int, default=8192 if gpu else 1024)
  parser.add_argument("--peer", choices=("torch",), help="also time the PyTorch peer")
  parser.add_argument("--torch-python",
                      default=os.environ.get("ASSLJAX_TORCH_PYTHON", ".venv-torch/bin/python"),
                      help="interpreter of the environment with PyTorch")
  args = parser.parse_args()

  from assljax import _compile, models, ssl
  dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
  compute_dtype = None if args.dtype == "float32" else dtype

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(args.pool, 32, 32, 3)).astype(np.float32)
  y = rng.integers(0, 10, size=args.pool).astype(np.int32)
  mask = np.zeros(args.pool, bool)
  mask[:250] = True
  model = models.build(args.model, num_classes=10, input_shape=(32, 32, 3),
                       input_mean=(0.4914, 0.4822, 0.4465), input_std=(0.2471, 0.2435, 0.2616))
  data = ssl.make_data(x, y, mask)
  trainer = ssl.make_trainer(model, ssl.fixmatch(mu=args.mu), batch_size=args.batch,
                             total_steps=2 ** 20, compute_dtype=compute_dtype)
  images = args.batch * (1 + 2 * args.mu)

  start = time.perf_counter()
  state = trainer.init(jax.random.key(0), data)
  state = trainer.train(state, data, 1, progress=False)  # compiles
  jax.block_until_ready(state)
  first_step_s = time.perf_counter() - start

  holder = {"state": state}

  def one_step():
    holder["state"] = trainer.train(holder["state"], data, 1, progress=False)
    return holder["state"]

  step_s, step_all = _median_time(one_step, args.steps)

  compute_model = model if compute_dtype is None else model.with_compute_dtype(compute_dtype)
  variables = model.init(jax.random.key(1))
  one = jnp.zeros((1, 32, 32, 3), jnp.float32)
  forward = jax.jit(lambda p, s, v: compute_model.apply_train(p, s, v)[0])
  forward_flops = forward.lower(variables.params, variables.batch_stats, one).compile(
  ).cost_analysis()["flops"]
  model_flops = 3.0 * forward_flops * images
  shapes = jax.eval_shape(trainer.train_step, holder["state"], data)[1]
  total = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}
  xla_flops = trainer.step_fn.lower(holder["state"], data, total).compile(
  ).cost_analysis()["flops"]

  # Baseline: plain value_and_grad over the same number of images.
  xb = jnp.asarray(rng.uniform(size=(images, 32, 32, 3)).astype(np.float32))
  yb = jnp.asarray(rng.integers(0, 10, size=images).astype(np.int32))

  @_compile.jit  # compiled like the engine's step
  def grad_step(params, stats):
    def loss(p):
      logits, new_stats = compute_model.apply_train(p, stats, xb)
      return ssl.algorithm.cross_entropy(logits.astype(jnp.float32), yb).mean(), new_stats
    return jax.value_and_grad(loss, has_aux=True)(params)

  jax.block_until_ready(grad_step(*variables))
  base_s, _ = _median_time(lambda: grad_step(*variables), args.steps)

  n = args.peak_size
  a = jnp.asarray(rng.normal(size=(n, n)), dtype)
  b = jnp.asarray(rng.normal(size=(n, n)), dtype)
  matmul = jax.jit(lambda a, b: a @ b)
  jax.block_until_ready(matmul(a, b))
  peak_s, _ = _median_time(lambda: matmul(a, b), 5)
  peak = 2.0 * n ** 3 / peak_s

  result = {
      "env": {"jax": jax.__version__, "backend": jax.default_backend(),
              "devices": [str(d) for d in jax.devices()][:1], "device_count": jax.device_count(),
              "python": platform.python_version(), "machine": platform.machine(),
              "compiler_options": _compile.compiler_options(),
              "XLA_FLAGS": os.environ.get("XLA_FLAGS")},
      "config": {"model": args.model, "labeled_batch": args.batch, "mu": args.mu,
                 "images_per_step": images, "dtype": args.dtype, "timed_steps": args.steps},
      "first_step_s": {"value": round(first_step_s, 3), "units": "s",
                       "note": "init + compilation + one step"},
      "step": {"median_s": round(step_s, 4), "all_s": [round(t, 4) for t in step_all],
               "ms_per_step": round(1e3 * step_s, 2),
               "images_per_s": round(images / step_s, 2)},
      "model_flops_per_step": {"value": model_flops, "units": "FLOP",
                               "forward_flops_per_image": forward_flops},
      "xla_flops_per_step": {"value": xla_flops, "units": "FLOP"},
      "baseline_grad_step": {"median_s": round(base_s, 4),
                             "images_per_s": round(images / base_s, 2)},
      "ratio_step_over_baseline": round(step_s / base_s, 3),
      "matmul_peak": {"value": peak, "units": "FLOP/s", "size": n, "dtype": args.dtype},
      "model_flops_per_s": {"value": model_flops / step_s, "units": "FLOP/s"},
      "mfu": round(model_flops / step_s / peak, 4),
  }
  if args.peer == "torch":
    peer = _torch_peer(args)
    if peer is not None:
      result["peer"] = {**peer, "images_per_s": round(images / peer["median_s"], 2)}
      result["ratio_throughput_over_peer"] = {
          "step": round(peer["median_s"] / step_s, 3),
          "baseline_grad_step": round(peer["median_s"] / base_s, 3)}
  print(json.dumps(result, indent=1))


def _torch_peer(args) -> dict | None:
  """The PyTorch peer's JSON, or None (with one line on stderr) when it cannot run."""
  if args.dtype != "float32" or args.model != "wrn-28-2":
    print("train_step: the PyTorch peer is WRN-28-2 in float32 only; skipped", file=sys.stderr)
    return None
  if not os.path.isfile(args.torch_python):
    print(f"train_step: no PyTorch interpreter at {args.torch_python} (python -m venv "
          f".venv-torch && .venv-torch/bin/pip install torch numpy); peer skipped",
          file=sys.stderr)
    return None
  done = subprocess.run([args.torch_python, _PEER, "--batch", str(args.batch), "--mu",
                         str(args.mu), "--steps", str(args.steps)],
                        capture_output=True, text=True)
  if done.returncode != 0:
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"train_step: the PyTorch peer failed ({last}); skipped", file=sys.stderr)
    return None
  return json.loads(done.stdout)


if __name__ == "__main__":
  main()
