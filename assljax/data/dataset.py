"""The dataset contract every source returns, its checks, subsampling, and ``load``.

    ds = assljax.data.load("digits", seed=0)             # embedded default, no download
    ds = assljax.data.load("cifar10", data_dir=DIR, max_train=5000)
    ds = assljax.data.load("imagefolder", root="../shared/data/cifar10")
    ds.train.x      # (n, H, W, C) float32 in [0, 1]
    ds.train.y      # (n,) int32 in [0, num_classes)
    ds.train.ids    # (n,) str, a stable identifier per sample (file path, "<name>/<split>/<i>")
    ds.mean, ds.std # (C,) float32 statistics of the train inputs, for the model's standardization
    ds.train_waveforms    # audio only: (n, 16000) int16 one-second 16 kHz train clips, or None
    ds.background_noise   # audio only: noise recordings, a tuple of (T,) int16 (may be empty)

Everything here is numpy on the host; heavy libraries (tensorflow, tensorflow-datasets,
scikit-learn, Pillow, scipy) are imported inside the loaders that need them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, NamedTuple

import numpy as np

from assljax._validation import UserInputError

KINDS = ("image", "audio")

# name -> (module in this package, loader function)
_LOADERS = {
    "digits": ("digits", "load_digits"),
    "cifar10": ("tfds_sources", "load_tfds"),
    "cifar100": ("tfds_sources", "load_tfds"),
    "svhn_cropped": ("tfds_sources", "load_tfds"),
    "mnist": ("tfds_sources", "load_tfds"),
    "fashion_mnist": ("tfds_sources", "load_tfds"),
    "speech_commands": ("tfds_sources", "load_tfds"),
    "spoken_digit": ("tfds_sources", "load_tfds"),
    "imagefolder": ("folder", "load_imagefolder"),
    "audiofolder": ("audio", "load_audiofolder"),
}

# Options every loader takes from `load` itself; the rest are the loader's own keywords.
_COMMON = ("data_dir", "seed", "max_train", "max_test")


class Split(NamedTuple):
  """One split of a dataset.

  Attributes:
    x: ``(n, H, W, C)`` float32 inputs in [0, 1].
    y: ``(n,)`` int32 class indices.
    ids: ``(n,)`` str, a stable identifier per sample for the human oracle: the file
      path for folder datasets, ``"<tfds name>/<split>/<index>"`` for tensorflow-datasets
      sources, ``"digits/<split>/<index>"`` for the embedded digits.
  """
  x: np.ndarray
  y: np.ndarray
  ids: np.ndarray

  @property
  def num_examples(self) -> int:
    return int(self.y.shape[0])

  def take(self, indices: Any) -> "Split":
    """The samples at ``indices`` ``(k,)``, in that order."""
    indices = np.asarray(indices, dtype=np.int64)
    return Split(self.x[indices], self.y[indices], self.ids[indices])


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A labeled train/test pair, validated on construction.

  Build one with :meth:`from_splits` (computes the statistics) or :func:`load`.

  Attributes:
    name: the source name (``"digits"``, ``"cifar10"``, ``"imagefolder"``...).
    kind: ``"image"`` or ``"audio"`` (audio is stored as log-mel spectrogram images).
    train, test: :class:`Split`.
    num_classes: ``C``; labels lie in ``[0, C)``.
    class_names: ``C`` strings, ``class_names[y]`` names label ``y``.
    input_shape: ``(H, W, C)`` of one sample.
    mean, std: ``(C,)`` float32 per-channel mean and standard deviation of ``train.x``
      (the standard deviation is floored at ``1e-6`` so that a constant channel does
      not divide by zero).
    train_waveforms: audio datasets only, else None: ``(n_train, 16000)`` int16, the
      one-second 16 kHz clip behind each train spectrogram (same order as ``train``),
      scaled by 32768 (``waveform = int16 / 32768``; :mod:`assljax.data.audio`): the
      training inputs of on-device waveform augmentation
      (:mod:`assljax.ssl.audio_augment`). None when the loader did not keep them.
    background_noise: audio datasets only: the dataset's own noise recordings for
      waveform augmentation (Speech Commands' ``_background_noise_``), a tuple of 1-D
      int16 arrays at 16 kHz, each at least one second, scaled like ``train_waveforms``;
      ``()`` when there are none.
  """
  name: str
  kind: str
  train: Split
  test: Split
  num_classes: int
  class_names: tuple[str, ...]
  input_shape: tuple[int, int, int]
  mean: np.ndarray
  std: np.ndarray
  train_waveforms: np.ndarray | None = None
  background_noise: tuple[np.ndarray, ...] = ()

  def __post_init__(self):
    if self.kind not in KINDS:
      raise UserInputError(f"dataset kind must be one of {KINDS}, got {self.kind!r}.")
    if len(self.class_names) != self.num_classes or self.num_classes < 2:
      raise UserInputError(f"dataset {self.name!r} needs at least 2 classes and one name per "
                           f"class, got num_classes={self.num_classes} and "
                           f"{len(self.class_names)} names.")
    if len(set(self.class_names)) != len(self.class_names):
      raise UserInputError(f"dataset {self.name!r} has duplicate class names {self.class_names}.")
    for split_name, split in (("train", self.train), ("test", self.test)):
      _check_split(split, split_name, self.name, self.input_shape, self.num_classes)
    if self.train_waveforms is not None:
      _check_waveforms(self.train_waveforms, self.train.num_examples, self.name, self.kind)
    shared = np.intersect1d(self.train.ids, self.test.ids)
    if shared.size:
      raise UserInputError(f"dataset {self.name!r} has {shared.size} sample ids in both train and"
                           f" test (first: {shared[0]!r}); ids must identify one sample each.")
    channels = self.input_shape[-1]
    for stat in ("mean", "std"):
      value = getattr(self, stat)
      if value.shape != (channels,) or value.dtype != np.float32:
        raise UserInputError(f"dataset {stat} must be a float32 array of shape ({channels},),"
                             f" got {value.dtype} {value.shape}.")
    _check_background_noise(self.background_noise, self.name, self.kind)

  @classmethod
  def from_splits(cls, name: str, *, kind: str, train: Split, test: Split,
                  class_names: Any, train_waveforms: np.ndarray | None = None,
                  background_noise: Any = ()) -> "Dataset":
    """Builds a dataset, computing ``input_shape``, ``mean`` and ``std`` from ``train``.

    Args:
      name: the source name.
      kind: ``"image"`` or ``"audio"``.
      train, test: :class:`Split` with ``x`` ``(n, H, W, C)`` float32 in [0, 1].
      class_names: one string per class.
      train_waveforms: audio only: ``(n_train, 16000)`` int16 clips, or None.
      background_noise: audio only: a sequence of ``(T,)`` int16 noise recordings.
    """
    class_names = tuple(str(c) for c in class_names)
    x = np.asarray(train.x)
    if x.ndim != 4 or x.shape[0] == 0:
      raise UserInputError(f"dataset {name!r}: train inputs must be a non-empty (n, H, W, C) array,"
                           f" got shape {x.shape}.")
    mean, std = channel_statistics(x)  # NaN or out-of-range inputs are rejected just below
    return cls(name=name, kind=kind, train=train, test=test, num_classes=len(class_names),
               class_names=class_names, input_shape=tuple(int(d) for d in x.shape[1:]),
               mean=mean, std=std, train_waveforms=train_waveforms,
               background_noise=tuple(background_noise))


def from_arrays(x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, name: str = "arrays",
                kind: str = "image", class_names: Any = None) -> Dataset:
  """A :class:`Dataset` from in-memory arrays (ids are ``"<name>/<split>/<index>"``).

  Args:
    x_train, x_test: ``(n, H, W, C)`` inputs in [0, 1] (cast to float32).
    y_train, y_test: ``(n,)`` integer labels in ``[0, C)``.
    name: used in the ids and messages.
    kind: ``"image"`` or ``"audio"``.
    class_names: ``C`` names; default ``"0" .. "C-1"`` with ``C = max(label) + 1``.
  """
  splits = []
  for split_name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
      raise UserInputError(f"{split_name} inputs must be numeric, got dtype {x.dtype}.")
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
      raise UserInputError(f"{split_name} labels must be integers, got dtype {y.dtype}.")
    ids = np.array([f"{name}/{split_name}/{i}" for i in range(y.shape[0] if y.ndim else 0)])
    splits.append(Split(x.astype(np.float32, copy=False), y.astype(np.int32), ids))
  if class_names is None:
    top = max((int(s.y.max()) for s in splits if s.y.size), default=1)
    class_names = [str(c) for c in range(max(top + 1, 2))]
  return Dataset.from_splits(name, kind=kind, train=splits[0], test=splits[1],
                             class_names=class_names)


def channel_statistics(x: np.ndarray, *, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation ``(C,)`` float32 of ``x`` ``(n, H, W, C)``.

  Accumulates in float64 over chunks of ``chunk`` samples (bounded memory); the standard
  deviation is floored at ``1e-6``.
  """
  count = 0
  total = np.zeros(x.shape[-1], np.float64)
  squares = np.zeros(x.shape[-1], np.float64)
  for start in range(0, x.shape[0], chunk):
    block = x[start:start + chunk].astype(np.float64)
    total += block.sum(axis=(0, 1, 2))
    squares += np.square(block).sum(axis=(0, 1, 2))
    count += block.shape[0] * block.shape[1] * block.shape[2]
  mean = total / count
  var = np.maximum(squares / count - np.square(mean), 0.0)
  return mean.astype(np.float32), np.maximum(np.sqrt(var), 1e-6).astype(np.float32)


def _check_range(x: np.ndarray, what: str) -> None:
  lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
  if np.isnan(lo) or np.isnan(hi):
    raise UserInputError(f"dataset {what} inputs contain NaN.")
  if lo < 0.0 or hi > 1.0:
    raise UserInputError(f"dataset {what} inputs must lie in [0, 1], found values in [{lo}, {hi}].")


def _check_waveforms(waves: Any, n: int, name: str, kind: str) -> None:
  from assljax.data.audio import NUM_SAMPLES  # light module; imported here against a cycle

  if kind != "audio":
    raise UserInputError(f"dataset {name!r} has train waveforms but is of kind {kind!r}, not"
                         " 'audio'.")
  shape = (n, NUM_SAMPLES)
  if not isinstance(waves, np.ndarray) or waves.dtype != np.int16 or waves.shape != shape:
    raise UserInputError(f"dataset {name!r} train waveforms must be an int16 array of shape"
                         f" {shape}, got {getattr(waves, 'dtype', type(waves))}"
                         f" {getattr(waves, 'shape', None)}.")


def _check_background_noise(noise: Any, name: str, kind: str) -> None:
  from assljax.data.audio import NUM_SAMPLES

  if not isinstance(noise, tuple):
    raise UserInputError(f"dataset {name!r} background_noise must be a tuple of arrays, got"
                         f" {type(noise).__name__}.")
  if noise and kind != "audio":
    raise UserInputError(f"dataset {name!r} has background noise but is of kind {kind!r}.")
  for k, clip in enumerate(noise):
    if (not isinstance(clip, np.ndarray) or clip.dtype != np.int16 or clip.ndim != 1
        or clip.shape[0] < NUM_SAMPLES):
      raise UserInputError(f"dataset {name!r} background noise clip {k} must be a 1-D int16 array"
                           f" of at least {NUM_SAMPLES} samples, got"
                           f" {getattr(clip, 'dtype', type(clip))} {getattr(clip, 'shape', None)}.")


def _check_split(split: Split, split_name: str, name: str, input_shape: tuple[int, ...],
                 num_classes: int) -> None:
  x, y, ids = split
  where = f"{name!r} {split_name}"
  if not isinstance(x, np.ndarray) or x.dtype != np.float32:
    raise UserInputError(f"dataset {where} inputs must be a float32 numpy array, got"
                         f" {getattr(x, 'dtype', type(x))}.")
  if x.ndim != 4 or x.shape[1:] != tuple(input_shape):
    dims = ", ".join(map(str, input_shape))
    raise UserInputError(f"dataset {where} inputs must have shape (n, {dims}), got {x.shape}.")
  if x.shape[0] == 0:
    raise UserInputError(f"dataset {where} split is empty.")
  if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.shape != (x.shape[0],):
    raise UserInputError(f"dataset {where} labels must be int32 of shape ({x.shape[0]},), got"
                         f" {getattr(y, 'dtype', type(y))} {getattr(y, 'shape', None)}.")
  if not isinstance(ids, np.ndarray) or ids.shape != (x.shape[0],) or ids.dtype.kind != "U":
    raise UserInputError(f"dataset {where} ids must be a str array of shape ({x.shape[0]},).")
  if y.min() < 0 or y.max() >= num_classes:
    raise UserInputError(f"dataset {where} labels must lie in [0, {num_classes}), found values in"
                     f" [{y.min()}, {y.max()}].")
  if np.unique(ids).size != ids.size:
    raise UserInputError(f"dataset {where} has duplicate sample ids.")
  _check_range(x, where)


def check_max_examples(value: Any, what: str) -> int | None:
  """Validates a ``max_train``/``max_test`` option: None or a positive integer."""
  if value is None:
    return None
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
    raise UserInputError(f"{what} must be a positive integer or None, got {value!r}.")
  return int(value)


def stratified_indices(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
  """``n`` indices into ``y`` ``(N,)`` drawn without replacement, stratified by class.

  Each class gets ``n * count_c / N`` samples rounded by largest remainder (ties broken
  at random), drawn uniformly within the class. Returns them sorted ascending,
  ``(min(n, N),)`` int64; all of ``range(N)`` when ``n >= N``.
  """
  y = np.asarray(y)
  total = y.shape[0]
  if n >= total:
    return np.arange(total, dtype=np.int64)
  classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
  exact = n * counts / total
  quota = np.floor(exact).astype(np.int64)
  remainder = n - int(quota.sum())
  order = np.lexsort((rng.permutation(classes.size), -(exact - quota)))
  quota[order[:remainder]] += 1
  chosen = []
  for c in range(classes.size):
    members = np.flatnonzero(inverse == c)
    chosen.append(rng.choice(members, size=int(quota[c]), replace=False))
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def subsample_rng(seed: int, purpose: str) -> np.random.Generator:
  """A numpy generator for one purpose (``"train"``, ``"test"``, ``"split"``) of ``seed``."""
  salt = int.from_bytes(purpose.encode(), "little") % (2**32)
  return np.random.default_rng(np.random.SeedSequence([int(seed) % (2**32), salt]))


def subsample_split(split: Split, max_examples: int | None, *, seed: int,
                    purpose: str) -> Split:
  """A deterministic stratified subsample of at most ``max_examples`` samples of ``split``."""
  if max_examples is None or max_examples >= split.num_examples:
    return split
  return split.take(stratified_indices(split.y, max_examples, subsample_rng(seed, purpose)))


def available() -> tuple[str, ...]:
  """Names accepted by :func:`load`."""
  return tuple(_LOADERS)


def load(name: str, *, data_dir: str | None = None, seed: int = 0, max_train: int | None = None,
         max_test: int | None = None, **options: Any) -> Dataset:
  """Loads a dataset by name.

  Args:
    name: ``"digits"`` (embedded: scikit-learn's 8×8 digits, split with ``seed``);
      ``"cifar10"``, ``"cifar100"``, ``"svhn_cropped"``, ``"mnist"``, ``"fashion_mnist"``,
      ``"speech_commands"``, ``"spoken_digit"`` (tensorflow-datasets, prepared in
      ``data_dir``; never downloaded here); ``"imagefolder"`` (``root=``, layout
      ``root/<split>/<class>/*.{png,jpg}``, optional ``image_size=(H, W)``);
      ``"audiofolder"`` (``root=``, layout ``root/<split>/<class>/*.wav``).
    data_dir: the tensorflow-datasets data directory (tfds sources only).
    seed: drives the digits train/test split and the subsampling.
    max_train, max_test: keep at most this many samples of a split, a deterministic
      stratified subsample for ``seed`` (None keeps all).
    **options: the source's own keyword options (see each loader).

  Returns:
    A validated :class:`Dataset`; audio sources give ``(32, 32, 1)`` log-mel
    spectrograms (see :mod:`assljax.data.audio`).
  """
  if name not in _LOADERS:
    raise UserInputError(f"unknown dataset {name!r}; available: {', '.join(_LOADERS)}.")
  if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
    raise UserInputError(f"seed must be an integer, got {seed!r}.")
  max_train = check_max_examples(max_train, "max_train")
  max_test = check_max_examples(max_test, "max_test")
  module_name, function_name = _LOADERS[name]
  loader = getattr(importlib.import_module(f"assljax.data.{module_name}"), function_name)
  accepted = [p for p in inspect.signature(loader).parameters if p not in ("name", *_COMMON)]
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise UserInputError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; it accepts:"
                         f" {', '.join(accepted) or 'none'}.")
  common = dict(seed=int(seed), max_train=max_train, max_test=max_test)
  if "data_dir" in inspect.signature(loader).parameters:
    common["data_dir"] = data_dir
  elif data_dir is not None:
    raise UserInputError(f"data_dir applies to tensorflow-datasets sources, not {name!r}.")
  if "name" in inspect.signature(loader).parameters:
    return loader(name, **common, **options)
  return loader(**common, **options)
