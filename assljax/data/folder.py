"""Users' own images: ``root/<split>/<class>/*.{png,jpg,jpeg}`` read with Pillow.

The layout of ``tfds.folder_dataset.ImageFolder`` (and of ``../shared/data/cifar10``).
Pillow rather than tfds' ImageFolder: no TensorFlow start-up, files in a fixed sorted
order, and every unreadable file named in the error. Decoding runs on a few threads;
``benchmarks/data_loading.py`` compares the throughput with tfds' ImageFolder.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from assljax._validation import UserInputError
from assljax.data.dataset import Dataset, Split, stratified_indices, subsample_rng

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_CHUNK = 256  # images per decoding task

# Pillow modes -> (mode to convert to, divisor to reach [0, 1])
_MODES = {"1": ("L", 255.0), "L": ("L", 255.0), "LA": ("L", 255.0), "P": ("RGB", 255.0),
          "PA": ("RGB", 255.0), "RGB": ("RGB", 255.0), "RGBA": ("RGB", 255.0),
          "RGBX": ("RGB", 255.0), "CMYK": ("RGB", 255.0), "YCbCr": ("RGB", 255.0),
          "LAB": ("RGB", 255.0), "HSV": ("RGB", 255.0), "I;16": ("I;16", 65535.0),
          "I;16L": ("I;16", 65535.0), "I;16B": ("I;16", 65535.0)}


def scan_class_folders(
    root: str, splits: tuple[str, ...], extensions: tuple[str, ...], what: str, *,
    exclude: tuple[str, ...] = (),
) -> tuple[tuple[str, ...], dict[str, tuple[list[str], np.ndarray]]]:
  """Lists ``root/<split>/<class>/<file>`` for each split.

  Args:
    root: the dataset folder.
    splits: split folder names, e.g. ``("train", "test")``.
    extensions: accepted lower-case file suffixes; other files and hidden entries are
      ignored.
    what: how the files are called in messages (``"image"``, ``"WAV"``).
    exclude: sub-folder names that are never classes (``"_background_noise_"`` for audio).

  Returns:
    ``(class_names, files)``: the sorted class folder names (identical in every split),
    and per split ``(paths, labels)`` sorted by class then file name, labels ``(n,)`` int32.

  Raises:
    ValueError: missing root or split, no class folders, class folders that differ
      between splits, or a class folder without a matching file.
  """
  if not isinstance(root, (str, os.PathLike)) or not os.path.isdir(root):
    raise UserInputError(f"dataset folder {root!r} does not exist or is not a directory.")
  root = os.fspath(root)
  present = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
  classes_per_split = {}
  for split in splits:
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
      raise UserInputError(f"dataset folder {root} has no {split!r} split folder (found:"
                           f" {', '.join(present) or 'nothing'}).")
    classes = sorted(e for e in os.listdir(split_dir)
                     if not e.startswith(".") and e not in exclude
                     and os.path.isdir(os.path.join(split_dir, e)))
    if not classes:
      raise UserInputError(f"split folder {split_dir} has no class sub-folders; expected"
                           f" {split_dir}/<class>/<file>.")
    classes_per_split[split] = classes
  reference = classes_per_split[splits[0]]
  for split in splits[1:]:
    if classes_per_split[split] != reference:
      only_first = sorted(set(reference) - set(classes_per_split[split]))
      only_second = sorted(set(classes_per_split[split]) - set(reference))
      raise UserInputError(f"class folders differ between splits {splits[0]!r} and {split!r}: "
                           "only in"
                           f" {splits[0]!r}: {only_first or 'none'}; only in {split!r}:"
                           f" {only_second or 'none'}.")
  if len(reference) < 2:
    raise UserInputError(f"dataset folder {root} has one class folder ({reference[0]!r}); at "
                         "least 2"
                         " are needed.")
  files = {}
  for split in splits:
    paths, labels = [], []
    for label, name in enumerate(reference):
      class_dir = os.path.join(root, split, name)
      names = sorted(f for f in os.listdir(class_dir) if not f.startswith(".")
                     and f.lower().endswith(extensions)
                     and os.path.isfile(os.path.join(class_dir, f)))
      if not names:
        raise UserInputError(f"class folder {class_dir} has no {what} files"
                             f" ({', '.join(extensions)}).")
      paths.extend(os.path.join(class_dir, f) for f in names)
      labels.extend([label] * len(names))
    files[split] = (paths, np.asarray(labels, np.int32))
  return tuple(reference), files


def _read_image(path: str, size: tuple[int, int] | None, gray: bool) -> np.ndarray:
  """One image as float32 ``(H, W, 1 or 3)`` in [0, 1]; ValueError naming ``path``.

  Gray and 16-bit gray images give one channel, colour images three (``gray`` turns
  colour into Pillow's ITU-R 601-2 luma instead).
  """
  from PIL import Image  # heavy, optional at import time

  try:
    with Image.open(path) as image:
      image.load()
      if image.mode not in _MODES:
        raise UserInputError(f"unsupported image mode {image.mode!r}")
      mode, divisor = _MODES[image.mode]
      if gray and mode == "RGB":
        mode = "L"
      if mode == "I;16":
        if image.mode != "I;16":
          image = image.convert("I")  # big-endian 16-bit through the 32-bit integer mode
      elif mode != image.mode:
        image = image.convert(mode)
      if size is not None and image.size != (size[1], size[0]):
        if image.mode == "I;16":
          image = image.convert("I")  # Pillow resizes 32-bit integer images, not I;16
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
      array = np.asarray(image, dtype=np.float32) / divisor
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
    raise UserInputError(f"cannot read image {path}: {err}") from err
  return array[..., None] if array.ndim == 2 else array


def read_images(paths: list[str], *, image_size: tuple[int, int] | None = None,
                channels: int | None = None, num_workers: int | None = None) -> np.ndarray:
  """Decodes image files into ``(n, H, W, C)`` float32 in [0, 1], in the order given.

  Args:
    paths: image files (PNG or JPEG; 8-bit gray/colour/palette, 16-bit gray).
    image_size: ``(H, W)`` to resize every image to (bilinear); None requires all
      images to share the first image's size.
    channels: 1 or 3 to force grayscale (luma) or RGB; None keeps gray images gray
      unless any image has colour, in which case gray images are repeated over 3
      channels.
    num_workers: decoding threads (Pillow releases the GIL while decoding); None uses
      ``min(8, os.cpu_count())``. The result does not depend on it.

  Raises:
    ValueError: naming the first file (in ``paths`` order) that cannot be decoded or
      has a different size.
  """
  if not paths:
    raise UserInputError("no image files to read.")
  if num_workers is None:
    num_workers = min(8, os.cpu_count() or 1)
  gray = channels == 1

  def decode(chunk: list[str]) -> list[np.ndarray]:
    return [_read_image(path, image_size, gray) for path in chunk]

  chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
  if num_workers > 1 and len(chunks) > 1:
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=num_workers)
    decoded = pool.map(decode, chunks)  # in order; a failure surfaces at its chunk
  else:
    pool, decoded = None, map(decode, chunks)
  out = None
  try:
    for c, arrays in enumerate(decoded):
      for k, array in enumerate(arrays):
        i = c * _CHUNK + k
        if out is None:
          depth = 3 if channels == 3 else array.shape[-1]
          out = np.empty((len(paths), *array.shape[:2], depth), np.float32)
        elif array.shape[:2] != out.shape[1:3]:
          raise UserInputError(f"image {paths[i]} is {array.shape[0]}x{array.shape[1]} but earlier"
                               f" images are {out.shape[1]}x{out.shape[2]}; pass image_size=(H, W)"
                               " to resize.")
        if array.shape[-1] > out.shape[-1]:  # first colour image after gray ones
          out = np.repeat(out, 3, axis=-1)
        out[i] = array  # a gray image broadcasts over 3 channels
  finally:
    if pool is not None:
      pool.shutdown(wait=True, cancel_futures=True)
  return out


def _check_options(image_size: Any, channels: Any) -> tuple[tuple[int, int] | None, int | None]:
  if image_size is not None:
    try:
      h, w = (int(d) for d in image_size)
    except (TypeError, ValueError):
      raise UserInputError(f"image_size must be a pair (H, W) of positive integers, got"
                           f" {image_size!r}.") from None
    if h < 1 or w < 1 or any(isinstance(d, bool) or float(d) != int(d) for d in image_size):
      raise UserInputError(f"image_size must be a pair (H, W) of positive integers, got"
                           f" {image_size!r}.")
    image_size = (h, w)
  if channels not in (None, 1, 3) or isinstance(channels, bool):
    raise UserInputError(f"channels must be None, 1 or 3, got {channels!r}.")
  return image_size, channels


def load_imagefolder(*, root: str, seed: int = 0, max_train: int | None = None,
                     max_test: int | None = None, image_size: Any = None, channels: Any = None,
                     train_split: str = "train", test_split: str = "test") -> Dataset:
  """Users' own images: ``root/<split>/<class>/*.{png,jpg,jpeg}``.

  Classes are the sorted sub-folder names, identical in both splits.

  Args:
    root: the folder holding ``train_split`` and ``test_split``.
    seed, max_train, max_test: optional stratified subsample (files are chosen before
      any is decoded, so a small run reads only what it keeps).
    image_size: ``(H, W)`` to resize to (bilinear), or None to require one size.
    channels: 1, 3, or None (gray stays gray unless colour images are present).
    train_split, test_split: sub-folder names of the two splits.

  Returns:
    A :class:`Dataset` of kind ``"image"``, ``x`` ``(n, H, W, C)`` float32 in [0, 1],
    ids the absolute file paths.
  """
  image_size, channels = _check_options(image_size, channels)
  class_names, files = scan_class_folders(root, (train_split, test_split), IMAGE_EXTENSIONS,
                                          "image")
  chosen = {}
  for split_name, purpose, limit in ((train_split, "train", max_train),
                                     (test_split, "test", max_test)):
    paths, labels = files[split_name]
    if limit is not None and limit < len(paths):
      keep = stratified_indices(labels, limit, subsample_rng(seed, purpose))
      paths, labels = [paths[i] for i in keep], labels[keep]
    chosen[split_name] = (paths, labels)
  all_paths = chosen[train_split][0] + chosen[test_split][0]
  x = read_images(all_paths, image_size=image_size, channels=channels)
  n_train = len(chosen[train_split][0])
  splits = []
  for split_name, xs in ((train_split, x[:n_train]), (test_split, x[n_train:])):
    paths, labels = chosen[split_name]
    splits.append(Split(xs, labels, np.array([os.path.abspath(p) for p in paths])))
  return Dataset.from_splits("imagefolder", kind="image", train=splits[0], test=splits[1],
                             class_names=class_names)
