"""Throughput of on-device weak/strong augmentation against a per-image Pillow loop.

Prints one JSON object: environment, then for the weak and the strong augmentation the
jitted JAX throughput (images/s, median of ``--repeats`` timed calls after a warm-up
call whose time is reported as compile time), the throughput of a per-image host
reference in the same run (numpy flip/reflect-pad crop; for strong, the FixMatch
reference RandAugment with Pillow: 2 ops with probability 0.5, levels 1..9, the
reference magnitudes, then numpy Cutout 16), and the speed-up ratio. The strong
augmentation is timed in both layouts (``lax.map`` loop, the CPU default, and
``vmap``, the accelerator default).

    .venv/bin/python benchmarks/augment.py                  # 448 x 32 x 32 x 3
    .venv/bin/python benchmarks/augment.py --batch 3584 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from assljax.ssl import augment as aug

_GREY = 128  # reference fill 0.5 on the uint8 grid


def _pil_op(img: Image.Image, name: str, level: int, sign: int, side: int) -> Image.Image:
  fill = (_GREY,) * 3 if img.mode == "RGB" else _GREY
  if name == "Identity":
    return img
  if name == "AutoContrast":
    return ImageOps.autocontrast(img)
  if name == "Equalize":
    return ImageOps.equalize(img)
  if name == "Rotate":
    return img.rotate(sign * int(level * 30 / 10), fillcolor=fill)
  if name == "Solarize":
    return ImageOps.solarize(img, 256 - int(level * 256 / 10))
  if name in ("Color", "Contrast", "Brightness", "Sharpness"):
    return getattr(ImageEnhance, name)(img).enhance(level * 1.8 / 10 + 0.1)
  if name == "Posterize":
    return ImageOps.posterize(img, 4 - int(level * 4 / 10))
  shear, shift = sign * level * 0.3 / 10, sign * (level * side // 32)
  coeffs = {"ShearX": (1, shear, 0, 0, 1, 0), "ShearY": (1, 0, 0, shear, 1, 0),
            "TranslateX": (1, 0, shift, 0, 1, 0), "TranslateY": (1, 0, 0, 0, 1, shift)}[name]
  return img.transform(img.size, Image.AFFINE, coeffs, fillcolor=fill)


def _weak_reference(image: np.ndarray, pad: int = 4) -> np.ndarray:
  h, w, _ = image.shape
  if random.random() < 0.5:
    image = image[:, ::-1]
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
  i, j = np.random.randint(0, 2 * pad + 1, size=2)
  return padded[i:i + h, j:j + w]


def _strong_reference(image: np.ndarray, cutout: int) -> np.ndarray:
  u8 = _weak_reference(image)
  img = Image.fromarray(np.ascontiguousarray(u8[..., 0] if u8.shape[-1] == 1 else u8))
  for name in np.random.choice(aug.RANDAUGMENT_OPS, 2):
    if random.random() < 0.5:
      img = _pil_op(img, str(name), np.random.randint(1, 10), random.choice((-1, 1)),
                    img.size[0])
  out = np.asarray(img).reshape(u8.shape).copy()
  h, w, _ = out.shape
  cy, cx = np.random.randint(0, h), np.random.randint(0, w)
  out[max(0, cy - cutout // 2):min(h, cy + cutout // 2),
      max(0, cx - cutout // 2):min(w, cx + cutout // 2)] = _GREY
  return out


def _time(fn, repeats: int) -> tuple[float, float]:
  """(first-call seconds, median seconds of ``repeats`` further calls)."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return first, statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=448)
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  random.seed(0)
  np.random.seed(0)
  shape = (args.batch, args.size, args.size, args.channels)
  u8 = rng.integers(0, 256, shape).astype(np.uint8)
  images = jax.device_put(jnp.asarray(u8.astype(np.float32) / 255.0))
  key = jax.random.key(0)
  cutout = args.size // 2

  def run(fn):
    return lambda: jax.block_until_ready(fn(key, images))

  weak_first, weak_s = _time(run(aug.weak_augment), args.repeats)
  default_loop = aug._per_image_loop()
  layouts = {}
  for loop in (True, False):
    fn = lambda k, x, loop=loop: aug._strong(k, x, True, 4, 2, cutout, loop)
    layouts["lax_map" if loop else "vmap"] = _time(run(fn), args.repeats)
  strong_first, strong_s = layouts["lax_map" if default_loop else "vmap"]
  weak_ref_first, weak_ref_s = _time(
      lambda: np.stack([_weak_reference(a) for a in u8]).astype(np.float32) / 255.0,
      args.repeats)
  strong_ref_first, strong_ref_s = _time(
      lambda: np.stack([_strong_reference(a, cutout) for a in u8]).astype(np.float32) / 255.0,
      args.repeats)
  del weak_ref_first, strong_ref_first

  n = args.batch
  device = jax.devices()[0]
  report = {
      "benchmark": "augment",
      "env": {
          "jax": jax.__version__, "backend": jax.default_backend(),
          "device_kind": device.device_kind, "device_count": jax.device_count(),
          "cpu_count": os.cpu_count(), "python": platform.python_version(),
          "pillow": Image.__version__,
      },
      "batch_shape": list(shape),
      "repeats": args.repeats,
      "weak": {
          "jax_images_per_s": n / weak_s,
          "jax_ms_per_batch": 1e3 * weak_s,
          "jax_first_call_s": weak_first,
          "baseline": "per-image numpy flip + reflect-pad random crop",
          "baseline_images_per_s": n / weak_ref_s,
          "speedup": weak_ref_s / weak_s,
      },
      "strong": {
          "layout": "lax_map" if default_loop else "vmap",
          "jax_images_per_s": n / strong_s,
          "jax_ms_per_batch": 1e3 * strong_s,
          "jax_first_call_s": strong_first,
          "baseline": "per-image numpy weak + Pillow RandAugment(2 ops, p=0.5) + Cutout",
          "baseline_images_per_s": n / strong_ref_s,
          "speedup": strong_ref_s / strong_s,
          "by_layout_images_per_s": {k: n / v[1] for k, v in layouts.items()},
          "by_layout_first_call_s": {k: v[0] for k, v in layouts.items()},
      },
  }
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()
