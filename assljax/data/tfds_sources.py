"""tensorflow-datasets sources: cifar10, cifar100, svhn_cropped, mnist, fashion_mnist,
speech_commands, spoken_digit.

Read offline with ``tfds.builder(name, data_dir=...).as_dataset(split, shuffle_files=False)``
(which reads the TFRecord files ``tfds build`` writes by default, unlike
``tfds.data_source``, which needs ArrayRecord); nothing is ever downloaded here. A dataset
that is not prepared in ``data_dir`` raises a ``ValueError`` that says what to run.

Ids are ``"<name>/<tfds split>/<index>"`` with ``index`` the position in the unshuffled
tfds split. Images become float32 ``pixels / 255``. Audio (integer PCM divided by
32768, float audio as is) is resampled to 16 kHz and turned into ``(32, 32, 1)`` log-mel
spectrograms (:mod:`assljax.data.audio`). spoken_digit (free-spoken-digit-dataset, one
tfds split "train", 8 kHz) is split as its authors prescribe: recordings numbered 0-4 of
every speaker and digit (``"<digit>_<speaker>_<n>.wav"``) form the test set, 5-49 train.

Audio sources keep (``keep_waveforms=True``, the default) the train split's one-second
16 kHz clips as ``train_waveforms`` ``(n, 16000)`` int16 and the dataset's background
noise (:mod:`assljax.data.audio`). tfds' speech_commands has no separate noise feature:
its builder cuts the ``_background_noise_`` recordings of the train archive into
one-second pieces with a hop of half a second and labels them ``_silence_`` (the
``running_tap`` recording goes to the validation split). Those ``_silence_`` examples of
the train split, all of them whatever ``max_train`` keeps, are the background noise;
they stay in the pool as their class too. spoken_digit has no noise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from assljax._optional import require
from assljax._validation import UserInputError
from assljax.data.dataset import Dataset, Split, stratified_indices, subsample_rng

_BATCH = 1024


class _Source(NamedTuple):
  kind: str                       # "image" | "audio"
  feature: str                    # the input feature's key
  folder_loader: str              # the folder source to suggest when tfds data is missing
  noise_class: str | None = None  # audio: the class whose train examples are background noise


_SOURCES = {
    "cifar10": _Source("image", "image", "imagefolder"),
    "cifar100": _Source("image", "image", "imagefolder"),
    "svhn_cropped": _Source("image", "image", "imagefolder"),
    "mnist": _Source("image", "image", "imagefolder"),
    "fashion_mnist": _Source("image", "image", "imagefolder"),
    "speech_commands": _Source("audio", "audio", "audiofolder", "_silence_"),
    "spoken_digit": _Source("audio", "audio", "audiofolder"),
}

_FSDD_TEST_RECORDINGS = 5  # recordings 0-4 of each (speaker, digit) are the official test set


def _open(builder: Any, name: str, split: str, data_dir: str | None, folder_loader: str) -> Any:
  """``builder.as_dataset(split)`` with a ValueError that says how to prepare missing data."""
  known = list(builder.info.splits.keys())
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except AssertionError as err:  # tfds: "could not find data in <data_dir>"
    where = data_dir
    if where is None:
      where = getattr(builder, "data_dir_root", "~/tensorflow_datasets")
    raise UserInputError(
        f"tensorflow-datasets source {name!r} is not prepared in {where}; on a machine with"
        f" network access run `tfds build {name} --data_dir {where}` and copy that folder here,"
        f" or load your own files with load({folder_loader!r}, root=...).") from err
  except (KeyError, ValueError) as err:
    if known and split not in known:
      raise UserInputError(f"tensorflow-datasets source {name!r} has no split {split!r};"
                           f" available: {', '.join(known)}.") from err
    # the split string comes from the config (e.g. a malformed slice "train[:x]")
    raise UserInputError(f"tensorflow-datasets source {name!r} cannot read split "
                         f"{split!r}: {err}") from err
  return ds


def _labels_and_names(ds: Any, label_key: str, name_key: str | None) -> tuple[np.ndarray, list]:
  """One pass over ``ds`` for the labels (and file names), as host arrays."""
  tfds = require("tensorflow_datasets", extra="tfds")

  keys = (label_key,) if name_key is None else (label_key, name_key)
  labels, names = [], []
  for batch in tfds.as_numpy(ds.map(lambda ex: tuple(ex[k] for k in keys)).batch(_BATCH * 4)):
    labels.append(batch[0])
    if name_key is not None:
      names.extend(n.decode() if isinstance(n, bytes) else str(n) for n in batch[1])
  return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64), names


def _read_images(ds: Any, feature: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
  tfds = require("tensorflow_datasets", extra="tfds")

  xs, ys = [], []
  for x, y in tfds.as_numpy(ds.map(lambda ex: (ex[feature], ex[label_key])).batch(_BATCH)):
    xs.append(x)
    ys.append(y)
  if not xs:
    return np.zeros((0,), np.uint8), np.zeros((0,), np.int64)
  return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def _read_audio(ds: Any, feature: str, label_key: str, sample_rate: int,
                keep: np.ndarray | None, *, keep_waveforms: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
  """Spectrograms, labels, tfds indices (and int16 clips) of the examples where ``keep``.

  ``keep`` is a mask over the split (None: all); the clips are ``(n, 16000)`` int16 when
  ``keep_waveforms``, else None.
  """
  tf = require("tensorflow", extra="tfds")
  tfds = require("tensorflow_datasets", extra="tfds")

  from assljax.data import audio

  ds = ds.enumerate().map(lambda i, ex: (i, ex[feature], ex[label_key]))
  if keep is not None:
    keep_t = tf.constant(keep)
    ds = ds.filter(lambda i, wave, label: tf.gather(keep_t, i))
  chunks, wave_chunks, labels, indices, pending = [], [], [], [], []

  def flush():
    stored = audio.clips_to_int16(pending)
    chunks.append(audio.log_mel_spectrogram(audio.waveforms_from_int16(stored)))
    if keep_waveforms:
      wave_chunks.append(stored)
    pending.clear()

  for i, wave, label in tfds.as_numpy(ds):
    wave = np.asarray(wave)
    if np.issubdtype(wave.dtype, np.integer):
      wave = wave.astype(np.float32) / 32768.0
    pending.append(audio.to_one_second(wave, sample_rate))
    labels.append(label)
    indices.append(i)
    if len(pending) == audio._BATCH:
      flush()
  if pending:
    flush()
  x = np.concatenate(chunks) if chunks else np.zeros((0, *audio.SPECTROGRAM_SHAPE), np.float32)
  waves = None
  if keep_waveforms:
    waves = (np.concatenate(wave_chunks) if wave_chunks
             else np.zeros((0, audio.NUM_SAMPLES), np.int16))
  return x, np.asarray(labels, np.int64), np.asarray(indices, np.int64), waves


def _fsdd_is_test(filenames: list[str]) -> np.ndarray:
  is_test = np.zeros(len(filenames), bool)
  for k, filename in enumerate(filenames):
    parts = filename.rsplit(".", 1)[0].split("_")
    if len(parts) != 3 or not parts[2].isdigit():
      raise UserInputError(f"spoken_digit file name {filename!r} does not follow"
                           " '<digit>_<speaker>_<recording>.wav'; cannot derive the test split.")
    is_test[k] = int(parts[2]) < _FSDD_TEST_RECORDINGS
  return is_test


def _mask(indices: np.ndarray, size: int) -> np.ndarray:
  mask = np.zeros(size, bool)
  mask[indices] = True
  return mask


def _choose(labels: np.ndarray, eligible: np.ndarray, limit: int | None, seed: int,
            purpose: str) -> np.ndarray:
  """Indices (ascending) among ``eligible`` to keep: a stratified subsample of ``limit``."""
  candidates = np.flatnonzero(eligible)
  if limit is None or limit >= candidates.size:
    return candidates
  return candidates[stratified_indices(labels[candidates], limit, subsample_rng(seed, purpose))]


def load_tfds(name: str, *, data_dir: str | None = None, seed: int = 0,
              max_train: int | None = None, max_test: int | None = None,
              train_split: str = "train", test_split: str | None = None,
              label_key: str = "label", keep_waveforms: bool = True) -> Dataset:
  """A tensorflow-datasets source, prepared beforehand in ``data_dir``.

  Args:
    name: one of cifar10, cifar100, svhn_cropped, mnist, fashion_mnist, speech_commands,
      spoken_digit.
    data_dir: the tfds data directory (None: tfds' default, ``~/tensorflow_datasets``).
    seed, max_train, max_test: optional deterministic stratified subsample.
    train_split, test_split: tfds split names (default ``"train"`` and ``"test"``;
      spoken_digit's default test split is the official recordings 0-4 of ``"train"``).
    label_key: the class-label feature (e.g. ``"coarse_label"`` for cifar100).
    keep_waveforms: audio sources: keep the train clips as ``train_waveforms``
      ``(n, 16000)`` int16 and the background noise (module doc); image sources have
      neither.

  Returns:
    A :class:`Dataset`: images ``(n, H, W, C)`` float32 in [0, 1]; audio ``(n, 32, 32, 1)``.
  """
  if name not in _SOURCES:
    raise UserInputError(f"unknown tensorflow-datasets source {name!r}; available:"
                         f" {', '.join(_SOURCES)}.")
  tfds = require("tensorflow_datasets", extra="tfds")  # heavy, optional at import time

  source = _SOURCES[name]
  builder = tfds.builder(name, data_dir=data_dir)
  features = builder.info.features
  if label_key not in features or not isinstance(features[label_key], tfds.features.ClassLabel):
    labels_available = sorted(k for k in features
                              if isinstance(features[k], tfds.features.ClassLabel))
    raise UserInputError(f"{name!r} has no class-label feature {label_key!r}; available:"
                         f" {', '.join(labels_available)}.")
  class_names = features[label_key].names
  fsdd_split = name == "spoken_digit" and test_split is None
  test_split = "test" if test_split is None else test_split
  if not fsdd_split and test_split == train_split:
    raise UserInputError(f"train_split and test_split are both {train_split!r}.")
  splits, train_waves, noise = [], None, ()
  if source.kind == "image":
    for split, purpose, limit in ((train_split, "train", max_train),
                                  (test_split, "test", max_test)):
      ds = _open(builder, name, split, data_dir, source.folder_loader)
      x, y = _read_images(ds, source.feature, label_key)
      if y.size == 0:
        raise UserInputError(f"tensorflow-datasets source {name!r} split {split!r} is empty.")
      keep = _choose(y, np.ones(y.size, bool), limit, seed, purpose)
      x = x[keep].astype(np.float32)
      x /= np.float32(255.0)  # in place: one float32 copy of the split
      ids = np.array([f"{name}/{split}/{i}" for i in keep])
      splits.append(Split(x, y[keep].astype(np.int32), ids))
  else:
    from assljax.data import audio

    audio.check_keep_waveforms(keep_waveforms)
    sample_rate = int(features[source.feature].sample_rate)
    plans = []  # (tfds split, dataset, mask of examples to keep or None, labels if read)
    if fsdd_split:
      ds = _open(builder, name, train_split, data_dir, source.folder_loader)
      y, filenames = _labels_and_names(ds, label_key, "audio/filename")
      is_test = _fsdd_is_test(filenames)
      plans = [(train_split, ds, _mask(_choose(y, ~is_test, max_train, seed, "train"), y.size), y),
               (train_split, ds, _mask(_choose(y, is_test, max_test, seed, "test"), y.size), y)]
    else:
      for split, purpose, limit in ((train_split, "train", max_train),
                                    (test_split, "test", max_test)):
        ds = _open(builder, name, split, data_dir, source.folder_loader)
        mask, y = None, None
        if limit is not None:
          y, _ = _labels_and_names(ds, label_key, None)
          mask = _mask(_choose(y, np.ones(y.size, bool), limit, seed, purpose), y.size)
        plans.append((split, ds, mask, y))
    for (split, ds, mask, _), purpose in zip(plans, ("train", "test")):
      x, y, idx, waves = _read_audio(ds, source.feature, label_key, sample_rate, mask,
                                     keep_waveforms=bool(keep_waveforms) and purpose == "train")
      if y.size == 0:
        raise UserInputError(f"tensorflow-datasets source {name!r} split {split!r} has no examples"
                             " for this split.")
      splits.append(Split(x, y.astype(np.int32), np.array([f"{name}/{split}/{i}" for i in idx])))
      train_waves = waves if purpose == "train" else train_waves
    if keep_waveforms and source.noise_class in class_names:
      noise = _noise_clips(plans[0], splits[0], train_waves,
                           class_names.index(source.noise_class), source.feature, label_key,
                           sample_rate)
  return Dataset.from_splits(name, kind=source.kind, train=splits[0], test=splits[1],
                             class_names=class_names, train_waveforms=train_waves,
                             background_noise=noise)


def _noise_clips(plan: tuple, train: Split, train_waves: np.ndarray, noise_label: int,
                 feature: str, label_key: str, sample_rate: int) -> tuple[np.ndarray, ...]:
  """The int16 clips of every train example labeled ``noise_label`` (module doc)."""
  _, ds, mask, y_all = plan
  if mask is None:  # the whole split was read: take them from its clips
    return tuple(train_waves[train.y == noise_label])
  chosen = np.asarray(y_all) == noise_label
  if not chosen.any():
    return ()
  *_, waves = _read_audio(ds, feature, label_key, sample_rate, chosen, keep_waveforms=True)
  return tuple(waves)
