"""Audio as images: WAV reading, resampling, and 32×32 log-mel spectrograms.

Following the Bilevel coreset paper's audio set-up, every clip becomes one
``(32, 32, 1)`` image:

1. mono float waveform in [-1, 1] (integer PCM divided by its full scale; channels averaged),
2. resampled to 16 kHz (``scipy.signal.resample_poly``; e.g. spoken_digit's 8 kHz),
3. zero-padded at the end, or cut after the first second, to exactly 16,000 samples,
4. STFT with a periodic Hann window of 2048 samples, hop 512, ``n_fft // 2`` zeros of
   padding on both sides (librosa's ``center=True``) -> 32 frames × 1025 bins; magnitudes
   are divided by ``sum(window) / 2`` so that a full-scale sine at a bin centre has
   magnitude 1, then squared (power),
5. 32 mel bands from 0 Hz to 8 kHz with the HTK mel scale, ``mel = 2595 log10(1 + f / 700)``
   (``tf.signal.linear_to_mel_weight_matrix``: triangles linear in mel rising to 1 at the
   band centre, no area normalization),
6. decibels ``10 log10(max(power, 1e-10))`` mapped linearly from the fixed range
   ``DB_RANGE = (-100, 10)`` dB to [0, 1] and clipped (so digital silence is 0 and a
   full-scale tone is about 0.91).

The image is ``x[m, t, 0]``: row ``m`` is the mel band (ascending frequency), column
``t`` the frame (ascending time).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from typing import Any

import numpy as np

from assljax.data.dataset import Dataset, Split, stratified_indices, subsample_rng

SAMPLE_RATE = 16_000
NUM_SAMPLES = 16_000  # one second
N_FFT = 2048
HOP_LENGTH = 512
NUM_MEL_BINS = 32
NUM_FRAMES = 1 + NUM_SAMPLES // HOP_LENGTH  # 32, with centre padding
DB_RANGE = (-100.0, 10.0)
POWER_FLOOR = 1e-10
SPECTROGRAM_SHAPE = (NUM_MEL_BINS, NUM_FRAMES, 1)
_BATCH = 256


def read_wav(path: str) -> tuple[np.ndarray, int]:
  """Reads a WAV file as a mono float32 waveform.

  Supports PCM 8/16/24/32-bit and IEEE float 32/64-bit (``scipy.io.wavfile``).

  Args:
    path: the file.

  Returns:
    ``(waveform, sample_rate)``: ``waveform`` ``(n,)`` float32, integer PCM scaled to
    [-1, 1] by its full scale, multi-channel audio averaged over channels.

  Raises:
    ValueError: naming ``path`` when it cannot be parsed, is empty, or holds NaN/inf.
  """
  from scipy.io import wavfile  # heavy, optional at import time

  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", wavfile.WavFileWarning)
      rate, data = wavfile.read(path)
  except Exception as err:  # any parse failure means an unreadable file
    raise ValueError(f"cannot read WAV file {path}: {err}") from err
  data = np.asarray(data)
  if data.dtype == np.uint8:
    wave = (data.astype(np.float32) - 128.0) / 128.0
  elif np.issubdtype(data.dtype, np.integer):
    wave = (data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))).astype(np.float32)
  elif np.issubdtype(data.dtype, np.floating):
    wave = data.astype(np.float32)
  else:
    raise ValueError(f"WAV file {path} has unsupported sample type {data.dtype}.")
  if wave.ndim == 2:
    wave = wave.mean(axis=1, dtype=np.float32)
  if wave.size == 0:
    raise ValueError(f"WAV file {path} has no samples.")
  if not np.isfinite(wave).all():
    raise ValueError(f"WAV file {path} contains NaN or infinite samples.")
  if rate <= 0:
    raise ValueError(f"WAV file {path} declares an invalid sample rate {rate}.")
  return wave, int(rate)


def to_one_second(waveform: Any, sample_rate: int) -> np.ndarray:
  """Resamples ``waveform`` ``(n,)`` to 16 kHz and pads/crops it to ``(16000,)`` float32.

  Resampling is polyphase (``scipy.signal.resample_poly``) by the reduced ratio
  ``16000 / sample_rate``; padding is zeros at the end, cropping keeps the first second.
  """
  wave = np.asarray(waveform, dtype=np.float32)
  if wave.ndim != 1:
    raise ValueError(f"a waveform must be one-dimensional (n,), got shape {wave.shape}.")
  if sample_rate != SAMPLE_RATE:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
      raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}.")
    from scipy import signal  # heavy, optional at import time

    g = math.gcd(SAMPLE_RATE, int(sample_rate))
    wave = signal.resample_poly(wave, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
  if wave.shape[0] >= NUM_SAMPLES:
    return np.ascontiguousarray(wave[:NUM_SAMPLES])
  return np.pad(wave, (0, NUM_SAMPLES - wave.shape[0]))


def mel_weight_matrix() -> np.ndarray:
  """The ``(N_FFT // 2 + 1, 32)`` = ``(1025, 32)`` HTK mel filterbank, 0 Hz to 8 kHz."""
  return _mel_weight_matrix().copy()


@functools.lru_cache(maxsize=1)
def _mel_weight_matrix() -> np.ndarray:
  import tensorflow as tf  # heavy, optional at import time

  return tf.signal.linear_to_mel_weight_matrix(
      num_mel_bins=NUM_MEL_BINS, num_spectrogram_bins=N_FFT // 2 + 1,
      sample_rate=SAMPLE_RATE, lower_edge_hertz=0.0,
      upper_edge_hertz=SAMPLE_RATE / 2).numpy()


def log_mel_spectrogram(waveforms: Any) -> np.ndarray:
  """Scaled log-mel spectrograms of one-second 16 kHz clips (recipe in the module doc).

  Args:
    waveforms: ``(n, 16000)`` float waveforms in [-1, 1] (see :func:`to_one_second`).

  Returns:
    ``(n, 32, 32, 1)`` float32 in [0, 1]: ``[clip, mel band, frame, 0]``.
  """
  import tensorflow as tf  # heavy, optional at import time

  waves = np.asarray(waveforms, dtype=np.float32)
  if waves.ndim != 2 or waves.shape[1] != NUM_SAMPLES:
    raise ValueError(f"waveforms must have shape (n, {NUM_SAMPLES}), got {waves.shape}.")
  if not np.isfinite(waves).all():
    raise ValueError("waveforms contain NaN or infinite samples.")
  mel = tf.constant(_mel_weight_matrix())
  scale = (2.0 / (N_FFT / 2.0)) ** 2  # sum of the periodic Hann window is N_FFT / 2
  lo, hi = DB_RANGE
  out = np.empty((waves.shape[0], *SPECTROGRAM_SHAPE), np.float32)
  for start in range(0, waves.shape[0], _BATCH):
    block = np.pad(waves[start:start + _BATCH], ((0, 0), (N_FFT // 2, N_FFT // 2)))
    stft = tf.signal.stft(block, frame_length=N_FFT, frame_step=HOP_LENGTH, fft_length=N_FFT,
                          window_fn=tf.signal.hann_window, pad_end=False)
    power = tf.math.real(stft * tf.math.conj(stft)) * scale           # (b, frames, bins)
    bands = tf.tensordot(power, mel, axes=[[2], [0]])                  # (b, frames, mels)
    db = 10.0 * np.log10(np.maximum(bands.numpy(), POWER_FLOOR))
    scaled = np.clip((db - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    out[start:start + block.shape[0], :, :, 0] = np.swapaxes(scaled, 1, 2)
  return out


def spectrograms_from_files(paths: list[str]) -> np.ndarray:
  """Reads, resamples, pads and transforms WAV files to ``(n, 32, 32, 1)`` spectrograms."""
  out = np.empty((len(paths), *SPECTROGRAM_SHAPE), np.float32)
  for start in range(0, len(paths), _BATCH):
    waves = [to_one_second(*read_wav(p)) for p in paths[start:start + _BATCH]]
    out[start:start + len(waves)] = log_mel_spectrogram(np.stack(waves))
  return out


def load_audiofolder(*, root: str, seed: int = 0, max_train: int | None = None,
                     max_test: int | None = None, train_split: str = "train",
                     test_split: str = "test") -> Dataset:
  """Users' own audio: ``root/<split>/<class>/*.wav`` as 32×32 log-mel spectrograms.

  Classes are the sorted sub-folder names, identical in both splits. Any sample rate is
  resampled to 16 kHz; clips are padded or cut to one second (module doc).

  Args:
    root: the folder holding ``train_split`` and ``test_split``.
    seed, max_train, max_test: optional stratified subsample (files are chosen before
      any is decoded).
    train_split, test_split: sub-folder names of the two splits.

  Returns:
    A :class:`Dataset` of kind ``"audio"``, ``x`` ``(n, 32, 32, 1)``, ids the absolute
    file paths.
  """
  from assljax.data.folder import scan_class_folders

  class_names, files = scan_class_folders(root, (train_split, test_split), (".wav",), "WAV")
  splits = []
  for split_name, purpose, limit in ((train_split, "train", max_train),
                                     (test_split, "test", max_test)):
    paths, labels = files[split_name]
    if limit is not None and limit < len(paths):
      keep = stratified_indices(labels, limit, subsample_rng(seed, purpose))
      paths, labels = [paths[i] for i in keep], labels[keep]
    x = spectrograms_from_files(paths)
    splits.append(Split(x, labels.astype(np.int32), np.array([os.path.abspath(p) for p in paths])))
  return Dataset.from_splits("audiofolder", kind="audio", train=splits[0], test=splits[1],
                             class_names=class_names)
