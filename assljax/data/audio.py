"""Audio as images: WAV reading, resampling, and 32×32 log-mel spectrograms.

Following the Bilevel coreset paper's audio set-up, every clip becomes one
``(32, 32, 1)`` image:

1. mono float waveform in [-1, 1] (integer PCM divided by its full scale; channels averaged),
2. resampled to 16 kHz (``scipy.signal.resample_poly``; e.g. spoken_digit's 8 kHz),
3. zero-padded at the end, or cut after the first second, to exactly 16,000 samples,
   and rounded to 16 bits, ``round(32768 w) / 32768`` clipped to the int16 range (the
   storage format of the waveforms below, so that a stored clip gives exactly the
   spectrogram of the pool; a no-op for 16-bit PCM at 16 kHz such as Speech Commands,
   and for resampled sources the quantization noise of a 16-bit recording, visible only
   in bands that are otherwise at the -100 dB floor),
4. STFT with a periodic Hann window of 2048 samples, hop 512, ``n_fft // 2`` zeros of
   padding on both sides (librosa's ``center=True``) -> 32 frames × 1025 bins; magnitudes
   are divided by ``sum(window) / 2`` so that a full-scale sine at a bin centre has
   magnitude 1, then squared (power),
5. 32 mel bands from 0 Hz to 8 kHz with the HTK mel scale, ``mel = 1127 ln(1 + f / 700)``
   (``= 2595 log10(1 + f / 700)``; ``tf.signal.linear_to_mel_weight_matrix``, recomputed
   in numpy: triangles linear in mel rising to 1 at the band centre, no area
   normalization, DC bin zeroed),
6. decibels ``10 log10(max(power, 1e-10))`` mapped linearly from the fixed range
   ``DB_RANGE = (-100, 10)`` dB to [0, 1] and clipped (so digital silence is 0 and a
   full-scale tone is about 0.91).

The image is ``x[m, t, 0]``: row ``m`` is the mel band (ascending frequency), column
``t`` the frame (ascending time).

Audio sources also keep what on-device waveform augmentation
(:mod:`assljax.ssl.audio_augment`) needs:

- ``train_waveforms``: the one-second 16 kHz clips of step 3, ``(n, 16000)`` **int16**
  holding ``round(32768 * waveform)`` clipped to ``[-32768, 32767]`` (read back with
  :func:`waveforms_from_int16`). Half the memory of float32 (Speech Commands' 85k train
  clips: 2.7 GB instead of 5.4 GB) and, unlike float16 (relative error 2**-11, noise
  about 66 dB below the signal, visible in the spectrogram), lossless for the 16-bit
  sources. Pass ``keep_waveforms=False`` to a loader to drop them.
- ``background_noise``: the dataset's own noise recordings (Speech Commands'
  ``_background_noise_`` folder), each resampled to 16 kHz, zero-padded to at least one
  second and stored as a 1-D int16 array with the same scale; ``()`` when the dataset has
  none.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from typing import Any

import numpy as np

from assljax._optional import require
from assljax._validation import UserInputError
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
WAVEFORM_SCALE = 32768.0  # int16 storage: waveform = int16 / WAVEFORM_SCALE
BACKGROUND_NOISE_FOLDER = "_background_noise_"
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
    raise UserInputError(f"cannot read WAV file {path}: {err}") from err
  data = np.asarray(data)
  if data.dtype == np.uint8:
    wave = (data.astype(np.float32) - 128.0) / 128.0
  elif np.issubdtype(data.dtype, np.integer):
    wave = (data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))).astype(np.float32)
  elif np.issubdtype(data.dtype, np.floating):
    wave = data.astype(np.float32)
  else:
    raise UserInputError(f"WAV file {path} has unsupported sample type {data.dtype}.")
  if wave.ndim == 2:
    wave = wave.mean(axis=1, dtype=np.float32)
  if wave.size == 0:
    raise UserInputError(f"WAV file {path} has no samples.")
  if not np.isfinite(wave).all():
    raise UserInputError(f"WAV file {path} contains NaN or infinite samples.")
  if rate <= 0:
    raise UserInputError(f"WAV file {path} declares an invalid sample rate {rate}.")
  return wave, int(rate)


def _resample(wave: np.ndarray, sample_rate: int) -> np.ndarray:
  """``wave`` ``(n,)`` float32 resampled from ``sample_rate`` to 16 kHz (polyphase)."""
  if sample_rate == SAMPLE_RATE:
    return wave
  if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
    raise UserInputError(f"sample_rate must be a positive integer, got {sample_rate!r}.")
  from scipy import signal  # heavy, optional at import time

  g = math.gcd(SAMPLE_RATE, int(sample_rate))
  return signal.resample_poly(wave, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)


def to_one_second(waveform: Any, sample_rate: int) -> np.ndarray:
  """Resamples ``waveform`` ``(n,)`` to 16 kHz and pads/crops it to ``(16000,)`` float32.

  Resampling is polyphase (``scipy.signal.resample_poly``) by the reduced ratio
  ``16000 / sample_rate``; padding is zeros at the end, cropping keeps the first second.
  """
  wave = np.asarray(waveform, dtype=np.float32)
  if wave.ndim != 1:
    raise UserInputError(f"a waveform must be one-dimensional (n,), got shape {wave.shape}.")
  wave = _resample(wave, sample_rate)
  if wave.shape[0] >= NUM_SAMPLES:
    return np.ascontiguousarray(wave[:NUM_SAMPLES])
  return np.pad(wave, (0, NUM_SAMPLES - wave.shape[0]))


def check_keep_waveforms(value: Any) -> None:
  """Validates a loader's ``keep_waveforms`` option (a bool)."""
  if not isinstance(value, (bool, np.bool_)):
    raise UserInputError(f"keep_waveforms must be True or False, got {value!r}.")


def waveforms_to_int16(waveforms: Any) -> np.ndarray:
  """float waveforms in [-1, 1] -> int16 ``round(32768 w)`` clipped to the int16 range.

  Any shape; the storage format of ``Dataset.train_waveforms`` and ``Dataset.background_noise``.
  """
  w = np.asarray(waveforms, np.float32)
  return np.clip(np.rint(w * np.float32(WAVEFORM_SCALE)), -32768, 32767).astype(np.int16)


def waveforms_from_int16(waveforms: Any) -> np.ndarray:
  """int16 storage -> float32 waveforms ``w / 32768`` in [-1, 1), same shape."""
  return np.asarray(waveforms).astype(np.float32) / np.float32(WAVEFORM_SCALE)


def mel_weight_matrix() -> np.ndarray:
  """The ``(N_FFT // 2 + 1, 32)`` = ``(1025, 32)`` HTK mel filterbank, 0 Hz to 8 kHz."""
  return _mel_weight_matrix().copy()


@functools.lru_cache(maxsize=1)
def _mel_weight_matrix() -> np.ndarray:
  """``tf.signal.linear_to_mel_weight_matrix`` (HTK) in float64 numpy, cast to float32.

  No TensorFlow, so that the on-device transform (:mod:`assljax.ssl.audio_augment`) can
  build it on an accelerator image. HTK's ``mel = 1127 ln(1 + f / 700)``; the DC bin is
  zeroed as in TensorFlow.
  """
  to_mel = lambda f: 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)
  bins = N_FFT // 2 + 1
  bin_mel = to_mel(np.linspace(0.0, SAMPLE_RATE / 2.0, bins))[1:, None]   # DC excluded
  edges = np.linspace(to_mel(0.0), to_mel(SAMPLE_RATE / 2.0), NUM_MEL_BINS + 2)
  lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
  weights = np.maximum(0.0, np.minimum((bin_mel - lower) / (center - lower),
                                       (upper - bin_mel) / (upper - center)))
  return np.pad(weights, ((1, 0), (0, 0))).astype(np.float32)


def log_mel_spectrogram(waveforms: Any) -> np.ndarray:
  """Scaled log-mel spectrograms of one-second 16 kHz clips (recipe in the module doc).

  Args:
    waveforms: ``(n, 16000)`` float waveforms in [-1, 1] (see :func:`to_one_second`).

  Returns:
    ``(n, 32, 32, 1)`` float32 in [0, 1]: ``[clip, mel band, frame, 0]``.
  """
  tf = require("tensorflow", extra="audio")  # heavy, optional at import time

  waves = np.asarray(waveforms, dtype=np.float32)
  if waves.ndim != 2 or waves.shape[1] != NUM_SAMPLES:
    raise UserInputError(f"waveforms must have shape (n, {NUM_SAMPLES}), got {waves.shape}.")
  if not np.isfinite(waves).all():
    raise UserInputError("waveforms contain NaN or infinite samples.")
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
  return _read_clips(paths, keep_waveforms=False)[0]


def _read_clips(paths: list[str], *, keep_waveforms: bool
                ) -> tuple[np.ndarray, np.ndarray | None]:
  """Spectrograms ``(n, 32, 32, 1)`` and, if asked, int16 clips ``(n, 16000)`` of WAV files."""
  out = np.empty((len(paths), *SPECTROGRAM_SHAPE), np.float32)
  waves_out = np.empty((len(paths), NUM_SAMPLES), np.int16) if keep_waveforms else None
  for start in range(0, len(paths), _BATCH):
    stored = clips_to_int16([to_one_second(*read_wav(p)) for p in paths[start:start + _BATCH]])
    out[start:start + len(stored)] = log_mel_spectrogram(waveforms_from_int16(stored))
    if waves_out is not None:
      waves_out[start:start + len(stored)] = stored
  return out, waves_out


def clips_to_int16(clips: list[np.ndarray]) -> np.ndarray:
  """One-second clips (:func:`to_one_second`) -> ``(n, 16000)`` int16 (step 3 of the doc)."""
  return waveforms_to_int16(np.stack(clips))


def read_background_noise(folder: str) -> tuple[np.ndarray, ...]:
  """The noise recordings ``folder/*.wav`` (sorted by name) for waveform augmentation.

  Each file is read as mono (:func:`read_wav`), resampled to 16 kHz, zero-padded at the
  end to at least one second (longer recordings are kept whole) and stored as int16
  (:func:`waveforms_to_int16`).

  Args:
    folder: a directory holding WAV files (e.g. Speech Commands' ``_background_noise_``).

  Returns:
    A tuple of ``(T_i,)`` int16 arrays, ``T_i >= 16000``, one per file.

  Raises:
    ValueError: when ``folder`` is not a directory, holds no WAV file, or a file cannot be
      read (naming it).
  """
  if not os.path.isdir(folder):
    raise UserInputError(f"background noise folder {folder!r} does not exist or is not a "
                         "directory.")
  names = sorted(f for f in os.listdir(folder) if not f.startswith(".")
                 and f.lower().endswith(".wav") and os.path.isfile(os.path.join(folder, f)))
  if not names:
    raise UserInputError(f"background noise folder {folder} has no WAV files.")
  clips = []
  for name in names:
    wave = _resample(*read_wav(os.path.join(folder, name)))
    if wave.shape[0] < NUM_SAMPLES:
      wave = np.pad(wave, (0, NUM_SAMPLES - wave.shape[0]))
    clips.append(waveforms_to_int16(wave))
  return tuple(clips)


def load_audiofolder(*, root: str, seed: int = 0, max_train: int | None = None,
                     max_test: int | None = None, train_split: str = "train",
                     test_split: str = "test", keep_waveforms: bool = True,
                     noise_dir: str | None = None) -> Dataset:
  """Users' own audio: ``root/<split>/<class>/*.wav`` as 32×32 log-mel spectrograms.

  Classes are the sorted sub-folder names, identical in both splits; a sub-folder named
  ``_background_noise_`` is never a class. Any sample rate is resampled to 16 kHz; clips
  are padded or cut to one second (module doc).

  Background noise for waveform augmentation is read from ``noise_dir`` when given,
  else from ``root/_background_noise_`` or ``root/<train_split>/_background_noise_``
  (Speech Commands' layout), whichever exists first; a dataset without one has
  ``background_noise == ()``.

  Args:
    root: the folder holding ``train_split`` and ``test_split``.
    seed, max_train, max_test: optional stratified subsample (files are chosen before
      any is decoded).
    train_split, test_split: sub-folder names of the two splits.
    keep_waveforms: keep the train clips as ``train_waveforms`` ``(n, 16000)`` int16 and
      read the background noise (module doc); False keeps spectrograms only.
    noise_dir: a folder of noise WAV files to use as ``background_noise`` (e.g. Speech
      Commands' ``_background_noise_`` for another dataset, as the Bilevel paper does for
      Free Spoken Digit); only read when ``keep_waveforms``.

  Returns:
    A :class:`Dataset` of kind ``"audio"``, ``x`` ``(n, 32, 32, 1)``, ids the absolute
    file paths.
  """
  from assljax.data.folder import scan_class_folders

  check_keep_waveforms(keep_waveforms)
  class_names, files = scan_class_folders(root, (train_split, test_split), (".wav",), "WAV",
                                          exclude=(BACKGROUND_NOISE_FOLDER,))
  splits, waves = [], None
  for split_name, purpose, limit in ((train_split, "train", max_train),
                                     (test_split, "test", max_test)):
    paths, labels = files[split_name]
    if limit is not None and limit < len(paths):
      keep = stratified_indices(labels, limit, subsample_rng(seed, purpose))
      paths, labels = [paths[i] for i in keep], labels[keep]
    x, split_waves = _read_clips(paths, keep_waveforms=bool(keep_waveforms) and purpose == "train")
    waves = split_waves if purpose == "train" else waves
    splits.append(Split(x, labels.astype(np.int32), np.array([os.path.abspath(p) for p in paths])))
  noise = ()
  if keep_waveforms:
    candidates = ([noise_dir] if noise_dir is not None else
                  [os.path.join(root, BACKGROUND_NOISE_FOLDER),
                   os.path.join(root, train_split, BACKGROUND_NOISE_FOLDER)])
    found = [c for c in candidates if noise_dir is not None or os.path.isdir(c)]
    if found:
      noise = read_background_noise(found[0])
  return Dataset.from_splits("audiofolder", kind="audio", train=splits[0], test=splits[1],
                             class_names=class_names, train_waveforms=waves,
                             background_noise=noise)
