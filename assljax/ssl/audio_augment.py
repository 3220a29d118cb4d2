"""On-device waveform augmentation for audio, and the log-mel transform in JAX.

The Bilevel coreset paper (§3) augments keyword-spotting clips on the *waveform*, before
the log-mel transform, with four operations applied independently, each with
probability 0.5, in this order (amplitude is computed last, which gives the same clip:
it is linear, and the noise level follows the signal's through the SNR):

1. amplitude: multiply by ``a ~ U[0.8, 1.2]`` (no clipping; the dB scale of the
   spectrogram handles peaks above 1),
2. speed: play ``s ~ U[0.8, 1.2]`` times as fast, ``y[n] = x(s n)`` with ``x(t)`` the
   linear interpolation of the samples (``numpy.interp``) and zero beyond the last sample,
   then cut/padded to one second. Pitch changes with speed (sox's ``speed``, not
   ``tempo``); no anti-aliasing filter (content above ``8 kHz / s`` folds back),
3. time shift: ``y[n] = x[n - d]`` with zero fill, ``d = round(16 t)`` samples for
   ``t ~ U[-250, 250]`` ms (positive ``d`` delays the clip),
4. background noise: add a one-second window of the dataset's own noise recordings
   (Speech Commands' ``_background_noise_``), drawn uniformly among all windows of all
   recordings, scaled so that ``10 log10(mean(x^2) / mean(noise^2)) = r`` dB for
   ``r ~ U[0, 40]`` (powers over the whole second, zero padding included; a silent clip
   or a silent noise window adds nothing). Without recordings this operation is skipped
   (:func:`audio_augmentations` warns once when it builds the callables).

Then :func:`log_mel_spectrogram` turns the clips into the same ``(32, 32, 1)`` images as
the pool's (:mod:`assljax.data.audio`, equal to float32 tolerance), so that the model
sees the same features in training and evaluation.

The SSL algorithms see their training inputs only through ``weak(key, x)`` and
``strong(key, x)``; with waveforms as the training inputs (``Dataset.train_waveforms``,
``(n, 16000)`` int16), :func:`audio_weak` and :func:`audio_strong` turn them into
spectrograms::

    weak, strong = audio_augmentations(background_noise=ds.background_noise)
    spectrograms = weak(key, waveforms)        # (n, 16000) int16 or float -> (n, 32, 32, 1)

The strong view (FixMatch, DARP) is the weak view followed by the image strong
augmentation on the spectrogram (:func:`assljax.ssl.augment.strong_augment` without flip
or crop: RandAugment's ops and Cutout, which on a spectrogram masks a time-frequency
patch like SpecAugment). FixMatch needs a strong view that distorts much more than the
weak one (its pseudo-labels come from the weak view); the paper's four waveform
operations alone would make both views samples of the same distribution.
``num_ops=0, cutout_fraction=0`` reduces it to the waveform operations alone.

Everything is jittable and batched over clips, each clip drawn independently (its own
row of one ``jax.random.bits`` draw per batch); the same key gives the same output.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from assljax._validation import UserInputError, check_int, check_number
from assljax.data import audio as _audio

SAMPLE_RATE = _audio.SAMPLE_RATE          # 16 kHz
NUM_SAMPLES = _audio.NUM_SAMPLES          # one second
#: Each operation is applied independently with this probability (paper: 0.5).
APPLY_PROBABILITY = 0.5
AMPLITUDE_RANGE = (0.8, 1.2)
SPEED_RANGE = (0.8, 1.2)
MAX_SHIFT_MS = 250.0
SNR_RANGE_DB = (0.0, 40.0)


# ------------------------------------------------------------------------ log-mel


@functools.lru_cache(maxsize=1)
def _constants() -> tuple[np.ndarray, np.ndarray]:
  n_fft = _audio.N_FFT
  window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)   # periodic Hann
  scale = 2.0 / window.sum()   # a full-scale sine at a bin centre has magnitude 1
  return (window * scale).astype(np.float32), _audio.mel_weight_matrix()


def _to_float(waveforms: jax.Array) -> jax.Array:
  if waveforms.dtype == jnp.int16:
    return waveforms.astype(jnp.float32) / jnp.float32(_audio.WAVEFORM_SCALE)
  return waveforms.astype(jnp.float32)


def _check_waveforms(waveforms: Any) -> jax.Array:
  waveforms = jnp.asarray(waveforms)
  if waveforms.ndim != 2 or waveforms.shape[1] != NUM_SAMPLES:
    raise UserInputError(f"waveforms must have shape (n, {NUM_SAMPLES}), got "
                         f"{tuple(waveforms.shape)}.")
  if waveforms.dtype != jnp.int16 and not jnp.issubdtype(waveforms.dtype, jnp.floating):
    raise UserInputError(f"waveforms must be int16 (scaled by 32768) or floating point, got dtype "
                         f"{waveforms.dtype}.")
  return waveforms


@jax.jit
def _log_mel(waves: jax.Array) -> jax.Array:
  n_fft, hop = _audio.N_FFT, _audio.HOP_LENGTH
  window, mel = _constants()
  n = waves.shape[0]
  frames_needed = _audio.NUM_FRAMES + n_fft // hop - 1          # 35 hops of 512
  total = frames_needed * hop
  padded = jnp.pad(_to_float(waves), ((0, 0), (n_fft // 2, total - NUM_SAMPLES - n_fft // 2)))
  hops = padded.reshape(n, frames_needed, hop)
  # frame t = samples [512 t, 512 t + 2048): hops t .. t+3
  frames = jnp.concatenate([hops[:, j:j + _audio.NUM_FRAMES] for j in range(n_fft // hop)],
                           axis=-1)                               # (n, 32, 2048)
  spectrum = jnp.fft.rfft(frames * jnp.asarray(window)[None, None, :], axis=-1)
  power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)  # (n, frames, 1025)
  # (frames, mels) order: XLA:CPU runs "->nmf" 10x slower; HIGHEST: no TF32 on GPUs
  bands = jnp.einsum("nfb,bm->nfm", power, jnp.asarray(mel),
                     precision=jax.lax.Precision.HIGHEST)
  lo, hi = _audio.DB_RANGE
  db = 10.0 * jnp.log10(jnp.maximum(bands, _audio.POWER_FLOOR))
  return jnp.swapaxes(jnp.clip((db - lo) / (hi - lo), 0.0, 1.0), 1, 2)[..., None]


def log_mel_spectrogram(waveforms: jax.Array) -> jax.Array:
  """The pool's 32×32 log-mel spectrograms (:mod:`assljax.data.audio`), on device.

  Centred STFT (periodic Hann window of 2048, hop 512), power scaled so a full-scale sine
  at a bin centre has power 1, HTK mel filterbank (the same matrix), ``10 log10`` floored
  at ``1e-10`` mapped from ``[-100, 10]`` dB to ``[0, 1]``. Equals
  :func:`assljax.data.audio.log_mel_spectrogram` to float32 tolerance. Jitted.

  Args:
    waveforms: ``(n, 16000)`` one-second 16 kHz clips: float in [-1, 1], or int16 storage
      (``Dataset.train_waveforms``, divided by 32768).

  Returns:
    ``(n, 32, 32, 1)`` float32 in [0, 1]: ``[clip, mel band, frame, 0]``.
  """
  return _log_mel(_check_waveforms(waveforms))


# ------------------------------------------------------------------------- ops
#
# Each operation takes clips (..., N) and one parameter per clip (...): a single clip
# (N,) with scalar parameters, or a batch (n, N) with (n,) parameters. Batched here
# rather than vmapped: vmapped gathers come out with the batch as the minor dimension,
# and reductions over them then run about 5x slower on CPU.


def amplitude(waveform: jax.Array, factor) -> jax.Array:
  """``waveform * factor`` (no clipping): ``(..., N)`` float, ``factor`` ``(...)``."""
  factor = jnp.asarray(factor, waveform.dtype)
  return waveform * factor[..., None]


def _warp(waveform: jax.Array, factor: jax.Array, shift: jax.Array) -> jax.Array:
  """``time_shift(speed(waveform, factor), shift)`` in one gather (bit-identical).

  ``y[n] = x(factor * (n - shift))`` where ``0 <= n - shift < N``, with the interpolation
  of :func:`speed`; ``factor = 1, shift = 0`` returns ``waveform``. Chained gathers make
  XLA recompute the first inside the second (6x slower on CPU), hence one.
  """
  n = waveform.shape[-1]
  shift = jnp.asarray(shift, jnp.int32)
  m = jnp.arange(n, dtype=jnp.int32).reshape((1,) * shift.ndim + (n,)) - shift[..., None]
  t = m.astype(jnp.float32) * jnp.asarray(factor, jnp.float32)[..., None]
  base = jnp.floor(t)
  frac = (t - base).astype(waveform.dtype)
  i0 = jnp.clip(base.astype(jnp.int32), 0, n - 1)
  i1 = jnp.clip(i0 + 1, 0, n - 1)
  y = (jnp.take_along_axis(waveform, i0, axis=-1) * (1 - frac)
       + jnp.take_along_axis(waveform, i1, axis=-1) * frac)
  return jnp.where((m >= 0) & (m < n) & (t <= n - 1), y, jnp.zeros_like(y))


def speed(waveform: jax.Array, factor) -> jax.Array:
  """Plays ``waveform`` ``(..., N)`` ``factor`` ``(...)`` times as fast, keeping length ``N``.

  ``y[n] = x(factor * n)`` for ``n = 0 .. N-1``, with ``x(t)`` the linear interpolation
  of the samples ``x[0..N-1]`` and 0 for ``t > N - 1``: ``numpy.interp(factor * n,
  arange(N), x, right=0)``. A factor above 1 shortens the content (zeros at the end),
  below 1 lengthens it (the end is cut). Positions ``factor * n`` are float32 (error up
  to ``2**-24 * factor * N``, about 1e-3 samples at 16000 samples). Returns ``(..., N)``.
  """
  factor = jnp.asarray(factor, jnp.float32)
  return _warp(waveform, factor, jnp.zeros(factor.shape, jnp.int32))


def time_shift(waveform: jax.Array, shift) -> jax.Array:
  """``y[n] = x[n - shift]`` with zeros where ``n - shift`` falls outside the clip.

  ``waveform``: ``(..., N)``; ``shift``: ``(...)`` integer samples (positive delays).
  Returns ``(..., N)``.
  """
  shift = jnp.asarray(shift, jnp.int32)
  return _warp(waveform, jnp.ones(shift.shape, jnp.float32), shift)


def add_noise(waveform: jax.Array, noise: jax.Array, snr_db) -> jax.Array:
  """``x + g * noise`` with ``g`` such that the signal-to-noise ratio is ``snr_db``.

  ``10 log10(mean(x^2) / mean((g noise)^2)) = snr_db``, powers over the whole clip; ``g =
  0`` when ``mean(noise^2) = 0`` (and a silent ``x`` gets no noise). ``waveform``,
  ``noise``: ``(..., N)`` float; ``snr_db``: ``(...)``. Returns ``(..., N)``.
  """
  p_signal = jnp.mean(jnp.square(waveform), axis=-1)
  p_noise = jnp.mean(jnp.square(noise), axis=-1)
  target = p_noise * jnp.power(10.0, jnp.asarray(snr_db, jnp.float32) / 10.0)
  audible = p_noise > 0
  gain = jnp.where(audible, jnp.sqrt(p_signal / jnp.where(audible, target, 1.0)), 0.0)
  return waveform + gain.astype(waveform.dtype)[..., None] * noise


# ------------------------------------------------------------------- noise bank


class NoiseBank(NamedTuple):
  """Background-noise recordings on device, for drawing one-second windows.

  Attributes:
    samples: ``(T,)`` int16, the recordings concatenated (scaled by 32768).
    offsets: ``(k,)`` int32, where recording ``i`` starts in ``samples``.
    cumulative: ``(k,)`` int32, the number of one-second windows in recordings
      ``0..i`` (a recording of ``T_i >= 16000`` samples has ``T_i - 15999``).
  """
  samples: jax.Array
  offsets: jax.Array
  cumulative: jax.Array


def noise_bank(clips: Any) -> NoiseBank | None:
  """A :class:`NoiseBank` from ``Dataset.background_noise``, or None when it is empty.

  Args:
    clips: a sequence of 1-D recordings at 16 kHz, int16 (scaled by 32768) or float in
      [-1, 1]; shorter than one second ones are zero-padded to one second.
  """
  clips = [np.asarray(c) for c in clips]
  if not clips:
    return None
  stored = []
  for k, clip in enumerate(clips):
    if clip.ndim != 1 or clip.size == 0:
      raise UserInputError(f"background noise clip {k} must be a non-empty 1-D array, got shape "
                           f"{clip.shape}.")
    if clip.dtype != np.int16:
      if not np.issubdtype(clip.dtype, np.floating) or not np.isfinite(clip).all():
        raise UserInputError(f"background noise clip {k} must be int16 or finite floats, got "
                             f"dtype {clip.dtype}.")
      clip = _audio.waveforms_to_int16(clip)
    stored.append(np.pad(clip, (0, max(0, NUM_SAMPLES - clip.size))))
  lengths = np.array([c.size for c in stored], np.int64)
  if lengths.sum() >= 2**31:
    raise UserInputError(f"background noise holds {lengths.sum()} samples; at most 2**31 - 1 fit.")
  offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  return NoiseBank(samples=jnp.asarray(np.concatenate(stored)),
                   offsets=jnp.asarray(offsets, jnp.int32),
                   cumulative=jnp.asarray(np.cumsum(lengths - NUM_SAMPLES + 1), jnp.int32))


def sample_noise(key: jax.Array, bank: NoiseBank) -> jax.Array:
  """A one-second window ``(16000,)`` float32, uniform among all windows of ``bank``."""
  return _noise_windows(key[None], bank)[0]


def _noise_windows(keys: jax.Array, bank: NoiseBank) -> jax.Array:
  """One window per key: ``(k,)`` keys -> ``(k, 16000)`` float32 (:func:`sample_noise`)."""
  return _windows_at(jax.vmap(lambda k: jax.random.randint(k, (), 0, bank.cumulative[-1]))(
      keys), bank)


def _windows_at(u: jax.Array, bank: NoiseBank) -> jax.Array:
  """The windows numbered ``u`` ``(k,)`` (in ``0 .. windows - 1``) -> ``(k, 16000)``."""
  clip = jnp.searchsorted(bank.cumulative, u, side="right")
  before = jnp.where(clip > 0, bank.cumulative[jnp.maximum(clip - 1, 0)], 0)
  start = bank.offsets[clip] + (u - before)
  window = bank.samples[start[:, None] + jnp.arange(NUM_SAMPLES, dtype=jnp.int32)[None, :]]
  return window.astype(jnp.float32) / jnp.float32(_audio.WAVEFORM_SCALE)


# ------------------------------------------------------------------- composition


class _Options(NamedTuple):
  probability: float
  amplitude_range: tuple[float, float]
  speed_range: tuple[float, float]
  max_shift_ms: float
  snr_range_db: tuple[float, float]


def _options(probability, amplitude_range, speed_range, max_shift_ms, snr_range_db) -> _Options:
  if not 0.0 <= float(probability) <= 1.0:
    raise UserInputError(f"probability must lie in [0, 1], got {probability!r}.")
  pairs = {}
  for name, value, positive in (("amplitude_range", amplitude_range, True),
                                ("speed_range", speed_range, True),
                                ("snr_range_db", snr_range_db, False)):
    try:
      lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
      raise UserInputError(
          f"{name} must be a pair (low, high) of numbers, got {value!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi) or (positive and lo <= 0):
      bound = "0 < low <= high" if positive else "finite low <= high"
      raise UserInputError(f"{name} must satisfy {bound}, got {value!r}.")
    pairs[name] = (lo, hi)
  if not 0.0 <= float(max_shift_ms) < 1000.0 * NUM_SAMPLES / SAMPLE_RATE:
    raise UserInputError(f"max_shift_ms must lie in [0, 1000), got {max_shift_ms!r}.")
  return _Options(float(probability), pairs["amplitude_range"], pairs["speed_range"],
                  float(max_shift_ms), pairs["snr_range_db"])


# Every random number of a batch comes from one jax.random.bits draw (one uint32 word
# each): XLA:CPU compiles every threefry call site on its own (0.2-0.5 s apiece), as in
# assljax.ssl.augment.
_DRAW_WORDS = 9   # four coins, amplitude, speed, shift, SNR, noise window


def _unit(words: jax.Array) -> jax.Array:
  """Uniform floats in ``[0, 1)`` (24 bits) from uint32 words."""
  return (words >> 8).astype(jnp.float32) * jnp.float32(2.0 ** -24)


def _draw(words: jax.Array, opts: _Options) -> dict:
  """One clip's random parameters from ``(_DRAW_WORDS,)`` words, identities where an
  operation is not applied."""
  apply = _unit(words[:4]) < opts.probability
  uniform = lambda w, lo_hi: lo_hi[0] + (lo_hi[1] - lo_hi[0]) * _unit(w)
  max_shift = opts.max_shift_ms * SAMPLE_RATE / 1000.0
  shift = jnp.round(uniform(words[6], (-max_shift, max_shift))).astype(jnp.int32)
  return dict(gain=jnp.where(apply[0], uniform(words[4], opts.amplitude_range), 1.0),
              factor=jnp.where(apply[1], uniform(words[5], opts.speed_range), 1.0),
              shift=jnp.where(apply[2], shift, 0), noise=apply[3],
              snr=uniform(words[7], opts.snr_range_db), noise_word=words[8])


@functools.partial(jax.jit, static_argnums=(3,))
def _augment(key: jax.Array, waves: jax.Array, bank: NoiseBank | None,
             opts: _Options) -> jax.Array:
  draws = jax.vmap(lambda w: _draw(w, opts))(jax.random.bits(key, (waves.shape[0],
                                                                   _DRAW_WORDS)))
  waves = _warp(_to_float(waves), draws["factor"], draws["shift"])
  if bank is not None:
    # a silent window where the operation is off adds exactly 0 (cheaper than a select
    # between two copies of the clips); window numbers are uniform to within
    # windows / 2^32
    u = (draws["noise_word"] % bank.cumulative[-1].astype(jnp.uint32)).astype(jnp.int32)
    noise = _windows_at(u, bank) * draws["noise"][:, None]
    waves = add_noise(waves, noise, draws["snr"])
  # Amplitude last: it is linear, and noise at a given SNR scales with the signal, so
  # this equals applying it first (to float rounding) and lets XLA fuse one pass less.
  return amplitude(waves, draws["gain"])


def augment_waveforms(key: jax.Array, waveforms: jax.Array, *, noise: NoiseBank | None = None,
                      probability: float = APPLY_PROBABILITY,
                      amplitude_range: tuple[float, float] = AMPLITUDE_RANGE,
                      speed_range: tuple[float, float] = SPEED_RANGE,
                      max_shift_ms: float = MAX_SHIFT_MS,
                      snr_range_db: tuple[float, float] = SNR_RANGE_DB) -> jax.Array:
  """The paper's four waveform operations (module doc), each with ``probability``.

  Per clip, independently: amplitude ``U[amplitude_range]``, speed ``U[speed_range]``,
  time shift ``U[-max_shift_ms, max_shift_ms]`` ms rounded to samples, background noise
  from ``noise`` at ``U[snr_range_db]`` dB (skipped when ``noise`` is None). Jitted
  (options static); callable inside ``jax.jit``.

  Args:
    key: PRNG key; the same key gives the same output.
    waveforms: ``(n, 16000)`` one-second 16 kHz clips, int16 (scaled by 32768) or float.
    noise: from :func:`noise_bank`, or None.

  Returns:
    ``(n, 16000)`` float32 waveforms.
  """
  opts = _options(probability, amplitude_range, speed_range, max_shift_ms, snr_range_db)
  return _augment(key, _check_waveforms(waveforms), noise, opts)


def audio_weak(key: jax.Array, waveforms: jax.Array, *, noise: NoiseBank | None = None,
               **options: Any) -> jax.Array:
  """Weak view of audio: :func:`augment_waveforms`, then :func:`log_mel_spectrogram`.

  Args:
    key: PRNG key.
    waveforms: ``(n, 16000)`` int16 (scaled by 32768) or float clips.
    noise: from :func:`noise_bank`, or None to skip the noise operation.
    **options: the keyword options of :func:`augment_waveforms`.

  Returns:
    ``(n, 32, 32, 1)`` float32 spectrograms in [0, 1].
  """
  return log_mel_spectrogram(augment_waveforms(key, waveforms, noise=noise, **options))


def audio_strong(key: jax.Array, waveforms: jax.Array, *, noise: NoiseBank | None = None,
                 num_ops: int = 2, cutout_fraction: float = 0.5, **options: Any) -> jax.Array:
  """Strong view of audio: :func:`audio_weak`, then RandAugment and Cutout on the image.

  The image stage is :func:`assljax.ssl.augment.strong_augment` with ``flip=False, pad=0``
  (no time reversal, no extra crop); module doc for why.

  Args:
    key: PRNG key.
    waveforms: ``(n, 16000)`` int16 (scaled by 32768) or float clips.
    noise: from :func:`noise_bank`, or None.
    num_ops, cutout_fraction: of ``strong_augment`` (0 and 0: waveform operations only).
    **options: the keyword options of :func:`augment_waveforms`.

  Returns:
    ``(n, 32, 32, 1)`` float32 spectrograms in [0, 1].
  """
  from assljax.ssl.augment import strong_augment

  k_wave, k_image = jax.random.split(key)
  spectrograms = audio_weak(k_wave, waveforms, noise=noise, **options)
  if num_ops == 0 and cutout_fraction == 0:
    return spectrograms
  return strong_augment(k_image, spectrograms, flip=False, pad=0, num_ops=num_ops,
                        cutout_fraction=cutout_fraction)


def audio_augmentations(*, background_noise: Any = (), num_ops: int = 2,
                        cutout_fraction: float = 0.5, **options: Any
                        ) -> tuple[Callable, Callable]:
  """``(weak, strong)`` callables ``(key, waveforms (n, 16000)) -> (n, 32, 32, 1)``.

  The ``weak``/``strong`` arguments of the SSL algorithms when the training inputs are
  waveforms (:func:`audio_weak`, :func:`audio_strong`). Checks the options and builds the
  noise bank once (a device array the callables close over: under ``jax.jit`` it becomes
  a constant of the compiled step, 2 bytes per sample), and warns once here, not per
  step, when there is no background noise.

  Args:
    background_noise: ``Dataset.background_noise`` (a sequence of 1-D recordings).
    num_ops, cutout_fraction: the strong view's image stage (:func:`audio_strong`).
    **options: the keyword options of :func:`augment_waveforms` (``probability``,
      ``amplitude_range``, ``speed_range``, ``max_shift_ms``, ``snr_range_db``).
  """
  unknown = sorted(set(options) - set(_Options._fields))
  if unknown:
    raise UserInputError(f"unknown audio augmentation option(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(_Options._fields)}.")
  defaults = dict(probability=APPLY_PROBABILITY, amplitude_range=AMPLITUDE_RANGE,
                  speed_range=SPEED_RANGE, max_shift_ms=MAX_SHIFT_MS, snr_range_db=SNR_RANGE_DB)
  _options(**{**defaults, **options})
  check_int("num_ops", num_ops, low=0)
  check_number("cutout_fraction", cutout_fraction, low=0.0, high=1.0)
  bank = noise_bank(background_noise)
  if bank is None:
    warnings.warn("the dataset has no background noise recordings; the background-noise "
                  "augmentation is skipped", stacklevel=2)
  weak = functools.partial(audio_weak, noise=bank, **options)
  strong = functools.partial(audio_strong, noise=bank, num_ops=num_ops,
                             cutout_fraction=cutout_fraction, **options)
  return weak, strong


__all__ = [
    "AMPLITUDE_RANGE", "APPLY_PROBABILITY", "MAX_SHIFT_MS", "NoiseBank", "SNR_RANGE_DB",
    "SPEED_RANGE", "add_noise", "amplitude", "audio_augmentations", "audio_strong",
    "audio_weak", "augment_waveforms", "log_mel_spectrogram", "noise_bank", "sample_noise",
    "speed", "time_shift",
]
