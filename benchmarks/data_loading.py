"""Data loading throughput: assljax's Pillow ImageFolder vs tfds.folder_dataset.ImageFolder,
and the TensorFlow log-mel spectrogram vs a plain numpy STFT + mel filterbank.

    .venv/bin/python benchmarks/data_loading.py                 # CIFAR-10 test split, 1,024 clips
    .venv/bin/python benchmarks/data_loading.py --split train --clips 8192 --repeats 5

Prints one JSON object. Needs ../shared/data/cifar10 (or --root) for the image part.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_seconds(fn, repeats):
  fn()  # warm-up (imports, file cache)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _numpy_log_mel(waves, mel):
  """Baseline: the same recipe with numpy's rfft in float32, one matrix product per batch."""
  n_fft, hop = 2048, 512
  window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
  padded = np.pad(waves, ((0, 0), (n_fft // 2, n_fft // 2)))
  frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop]
  power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 / (n_fft / 4) ** 2
  db = 10 * np.log10(np.maximum(power @ mel, 1e-10))
  return np.clip((db + 100) / 110, 0, 1).swapaxes(1, 2)[..., None].astype(np.float32)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
  parser.add_argument("--split", default="test", help="image folder split to read")
  parser.add_argument("--clips", type=int, default=1024, help="one-second clips to transform")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  import jax
  import tensorflow as tf
  import tensorflow_datasets as tfds

  from assljax.data import audio, folder

  result = {
      "env": {"python": platform.python_version(), "jax": jax.__version__,
              "tensorflow": tf.__version__, "tensorflow_datasets": tfds.__version__,
              "backend": jax.default_backend(), "device_count": jax.device_count(),
              "cpu_count": os.cpu_count()},
      "repeats": args.repeats, "statistic": "median",
  }

  if os.path.isdir(os.path.join(args.root, args.split)):
    _, files = folder.scan_class_folders(args.root, (args.split,), folder.IMAGE_EXTENSIONS, "image")
    paths = files[args.split][0]
    ours = _median_seconds(lambda: folder.read_images(paths), args.repeats)

    def tfds_folder():
      builder = tfds.folder_dataset.ImageFolder(args.root)
      batch = builder.as_dataset(split=args.split, shuffle_files=False, batch_size=-1)
      return batch["image"].numpy().astype(np.float32) / 255.0  # same output: float32 in [0, 1]

    baseline = _median_seconds(tfds_folder, args.repeats)
    # what the tfds route costs before its first image: importing TensorFlow + tfds
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow, tensorflow_datasets"], check=True,
                   capture_output=True)
    import_s = time.perf_counter() - start
    result["imagefolder"] = {
        "root": args.root, "split": args.split, "images": len(paths),
        "assljax_pillow_s": round(ours, 3), "tfds_imagefolder_s": round(baseline, 3),
        "assljax_images_per_s": round(len(paths) / ours, 1),
        "tfds_images_per_s": round(len(paths) / baseline, 1),
        "speedup_vs_tfds": round(baseline / ours, 3),
        "tfds_import_s_fresh_process": round(import_s, 3),
        "speedup_vs_tfds_including_import": round((baseline + import_s) / ours, 3)}
  else:
    result["imagefolder"] = {"skipped": f"no folder {os.path.join(args.root, args.split)}"}

  rng = np.random.default_rng(0)
  waves = (0.1 * rng.standard_normal((args.clips, audio.NUM_SAMPLES))).astype(np.float32)
  mel = audio.mel_weight_matrix()
  ours = _median_seconds(lambda: audio.log_mel_spectrogram(waves), args.repeats)
  baseline = _median_seconds(lambda: _numpy_log_mel(waves[:256], mel), args.repeats)
  baseline *= args.clips / 256  # the numpy baseline on a 256-clip slice, scaled (memory)
  ours_64, numpy_64 = audio.log_mel_spectrogram(waves[:64]), _numpy_log_mel(waves[:64], mel)
  agree = float(np.abs(ours_64 - numpy_64).max())
  result["log_mel"] = {
      "clips": args.clips, "assljax_tf_signal_s": round(ours, 3),
      "numpy_rfft_s_scaled": round(baseline, 3),
      "assljax_clips_per_s": round(args.clips / ours, 1),
      "numpy_clips_per_s": round(args.clips / baseline, 1),
      "speedup_vs_numpy": round(baseline / ours, 3),
      "max_abs_difference_in_unit_scale": agree}
  print(json.dumps(result))


if __name__ == "__main__":
  main()
