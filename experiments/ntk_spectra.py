"""Finite- and infinite-width NTK spectra of the bundled 8x8 digits (what `make demo` runs).

    .venv/bin/python experiments/ntk_spectra.py --out demo_output [--n 500] [--model mlp]

Loads scikit-learn's bundled digits (no download; ``x`` is ``(n, 8, 8, 1)`` float32 in
``[0, 1]`` = pixels / 16), builds the project model at initialization and computes three
class-traced kernels on ``n`` samples:

* the empirical NTK of the last layer (closed form, ``C (h.h' + 1)``),
* the empirical NTK of all parameters (autodiff, chunked),
* the infinite-width NTK of the model's neural-tangents twin.

For each it prints the largest and smallest eigenvalues, the effective rank
``exp(entropy(lambda / sum lambda))`` and the kernel-target alignment with the one-hot
labels (plain and centered), then saves ``ntk_spectra.png`` (eigenvalue decay, log scale)
and ``ntk_spectra.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUM_CLASSES = 10


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):  # one clear line, exit code 2
    print(f"ntk_spectra: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``n`` random digits: ``x`` ``(n, 8, 8, 1)`` float32 in [0, 1], ``y`` ``(n,)`` int."""
  from sklearn.datasets import load_digits as sklearn_digits

  data = sklearn_digits()
  order = np.random.default_rng(seed).permutation(len(data.target))[:n]
  x = (data.images[order] / 16.0).astype(np.float32)[..., None]
  return x, data.target[order].astype(np.int32)


def spectrum_summary(k: np.ndarray, y: np.ndarray) -> dict:
  """Eigenvalues (descending), effective rank and kernel-target alignments of ``k``."""
  k = np.asarray(k, np.float64)
  k = 0.5 * (k + k.T)
  lam = np.linalg.eigvalsh(k)[::-1]
  pos = np.clip(lam, 0, None)
  p = pos / pos.sum()
  p = p[p > 0]
  onehot = np.eye(NUM_CLASSES)[y]
  target = onehot @ onehot.T

  def alignment(a, b):
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))

  center = np.eye(len(y)) - 1.0 / len(y)
  return {
      "eigenvalues": lam,
      "top": lam[:5].tolist(),
      "bottom": lam[-3:].tolist(),
      "effective_rank": float(np.exp(-np.sum(p * np.log(p)))),
      "alignment": alignment(k, target),
      "centered_alignment": alignment(center @ k @ center, center @ target @ center),
  }


def main(argv: list[str] | None = None) -> int:
  parser = _Parser(description="NTK spectra of the bundled 8x8 digits.")
  parser.add_argument("--out", default="demo_output", help="output folder (created)")
  parser.add_argument("--n", type=int, default=500, help="number of digits (10..1797)")
  parser.add_argument("--model", default="mlp", choices=("mlp", "cnn"),
                      help="project model at initialization (default mlp)")
  parser.add_argument("--seed", type=int, default=0, help="sample and initialization seed")
  args = parser.parse_args(argv)
  if not 10 <= args.n <= 1797:
    parser.error(f"--n must be between 10 and 1797 (the digits set), got {args.n}")
  try:
    os.makedirs(args.out, exist_ok=True)
  except OSError as e:
    parser.error(f"cannot create --out {args.out!r}: {e.strerror}")

  import jax

  from assljax import models
  from assljax.kernels import Kernel

  start = time.perf_counter()
  x, y = load_digits(args.n, args.seed)
  if args.model == "mlp":
    model = models.build("mlp", num_classes=NUM_CLASSES, input_shape=(8, 8, 1), width=128,
                         depth=2)
    twin = dict(depth=2)
  else:
    model = models.build("cnn", num_classes=NUM_CLASSES, input_shape=(8, 8, 1),
                         channels=(16, 32, 32), hidden=64)
    twin = dict(channels=(16, 32, 32), hidden=64)
  variables = model.init(jax.random.key(args.seed))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  kernels = {
      "empirical NTK, last layer (closed form)": Kernel.empirical(
          apply_fn, variables.params, param_filter="last_layer", embed_fn=embed_fn),
      "empirical NTK, all parameters": Kernel.empirical(
          apply_fn, variables.params, chunk_size=125),
      f"infinite-width NTK ({args.model} twin)": Kernel.infinite(
          args.model, num_classes=NUM_CLASSES, chunk_size=250, **twin),
  }
  print(f"digits: n={args.n}, model={args.model} "
        f"({models.count_params(variables.params)} parameters, at initialization)")
  summaries = {}
  for name, kernel in kernels.items():
    t0 = time.perf_counter()
    k = np.asarray(kernel(x))
    summary = spectrum_summary(k, y)
    summary["seconds"] = time.perf_counter() - t0
    summaries[name] = summary
    print(f"\n{name}  [{summary['seconds']:.1f} s]")
    print("  top eigenvalues:    " + "  ".join(f"{v:.4g}" for v in summary["top"]))
    print("  bottom eigenvalues: " + "  ".join(f"{v:.4g}" for v in summary["bottom"]))
    print(f"  effective rank:     {summary['effective_rank']:.2f}")
    print(f"  kernel-target alignment: {summary['alignment']:.4f} "
          f"(centered {summary['centered_alignment']:.4f})")

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  for name, s in summaries.items():
    lam = s["eigenvalues"]
    rel = np.clip(lam / lam[0], 1e-12, None)
    ax.semilogy(np.arange(1, len(rel) + 1), rel, label=name)
  ax.set_xlabel("eigenvalue index")
  ax.set_ylabel("eigenvalue / largest (clipped at 1e-12)")
  ax.set_title(f"NTK spectra, {args.n} digits, {args.model} at initialization")
  ax.legend(fontsize=8)
  fig.tight_layout()
  png = os.path.join(args.out, "ntk_spectra.png")
  fig.savefig(png, dpi=120)
  plt.close(fig)
  with open(os.path.join(args.out, "ntk_spectra.json"), "w") as f:
    json.dump({name: {k: v for k, v in s.items() if k != "eigenvalues"}
               for name, s in summaries.items()}, f, indent=1)
  print(f"\nsaved {png} and ntk_spectra.json ({time.perf_counter() - start:.1f} s in all)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
