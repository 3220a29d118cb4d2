"""Waveform augmentation and the JAX log-mel transform against float64 numpy references."""

import dataclasses
import functools
import glob
import os
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from assljax import data, models, ssl
from assljax.data import audio
from assljax.ssl import audio_augment as aa

RATE, N = 16_000, 16_000
FSDD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "fsdd")


def _reference_log_mel(waves):
  """float64 numpy: centred STFT, periodic Hann, HTK triangles (linear in mel), fixed dB range."""
  n_fft, hop = 2048, 512
  to_mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)
  edges = np.linspace(to_mel(0.0), to_mel(RATE / 2), 34)
  mel_of_bin = to_mel(np.arange(n_fft // 2 + 1) * RATE / n_fft)[:, None]
  weights = np.maximum(0.0, np.minimum((mel_of_bin - edges[None, :-2]) / (edges[1:-1] - edges[:-2]),
                                       (edges[2:] - mel_of_bin) / (edges[2:] - edges[1:-1])))
  window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
  out = []
  for wave in np.asarray(waves, np.float64):
    padded = np.pad(wave, (n_fft // 2, n_fft // 2))
    frames = np.stack([padded[t * hop:t * hop + n_fft] for t in range(32)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 / (window.sum() / 2.0) ** 2
    db = 10.0 * np.log10(np.maximum(power @ weights, 1e-10))
    out.append(np.clip((db + 100.0) / 110.0, 0.0, 1.0).T[:, :, None])
  return np.stack(out)


def _sines():
  t = np.arange(N) / RATE
  rng = np.random.default_rng(0)
  waves = [0.5 * np.sin(2 * np.pi * f * t) for f in (100.0, 440.0, 3000.0, 7900.0)]
  waves.append(0.9 * np.sin(2 * np.pi * 1000 * t) * np.linspace(0, 1, N))   # a ramp
  waves.append(np.concatenate([0.3 * rng.standard_normal(6000), np.zeros(N - 6000)]))
  return np.stack(waves).astype(np.float32)


def _fsdd_clips(count=6):
  paths = sorted(glob.glob(os.path.join(FSDD, "train", "*", "*.wav")))
  if not paths:
    pytest.skip(f"real audio data not found at {os.path.abspath(FSDD)} (../shared/data/fsdd)")
  chosen = paths[::max(1, len(paths) // count)][:count]
  clips = np.stack([data.to_one_second(*data.read_wav(p)) for p in chosen])
  return audio.waveforms_to_int16(clips)


# ---------------------------------------------------------------------------- log-mel


def test_log_mel_matches_float64_reference_on_sines_and_noise():
  waves = _sines()
  got = np.asarray(aa.log_mel_spectrogram(waves))
  assert got.shape == (6, 32, 32, 1) and got.dtype == np.float32
  np.testing.assert_allclose(got, _reference_log_mel(waves), atol=1e-4)
  # and the host pipeline that made the pool (TensorFlow STFT)
  np.testing.assert_allclose(got, data.log_mel_spectrogram(waves), atol=1e-4)
  np.testing.assert_array_equal(np.asarray(aa.log_mel_spectrogram(np.zeros((2, N)))), 0.0)


def test_log_mel_of_stored_fsdd_clips_equals_the_pool():
  stored = _fsdd_clips()                                   # int16, as train_waveforms
  got = np.asarray(aa.log_mel_spectrogram(stored))
  floats = audio.waveforms_from_int16(stored)
  np.testing.assert_allclose(got, _reference_log_mel(floats), atol=1e-4)
  np.testing.assert_allclose(got, data.log_mel_spectrogram(floats), atol=1e-4)
  np.testing.assert_array_equal(got, np.asarray(aa.log_mel_spectrogram(floats)))


def test_loaded_fsdd_pool_matches_its_waveforms():
  if not os.path.isdir(FSDD):
    pytest.skip(f"real audio data not found at {os.path.abspath(FSDD)} (../shared/data/fsdd)")
  ds = data.load("audiofolder", root=FSDD, max_train=20, max_test=10, seed=0)
  assert ds.train_waveforms.shape == (20, N) and ds.background_noise == ()
  np.testing.assert_allclose(np.asarray(aa.log_mel_spectrogram(ds.train_waveforms)),
                             ds.train.x, atol=1e-4)


# -------------------------------------------------------------------- per-clip ops


def _wave(seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(N) / RATE
  return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(N)).astype(np.float32)


def test_amplitude():
  x = _wave()
  np.testing.assert_allclose(np.asarray(aa.amplitude(jnp.asarray(x), 1.17)),
                             x.astype(np.float64) * 1.17, rtol=1e-6)


@pytest.mark.parametrize("factor", [0.8, 0.93, 1.0, 1.2, 1.137])
def test_speed_is_linear_interpolation_of_the_time_axis(factor):
  x = _wave()
  factor = np.float32(factor)
  got = np.asarray(jax.jit(aa.speed)(jnp.asarray(x), factor))
  n = np.arange(N, dtype=np.float64)
  expected = np.interp(n * np.float64(factor), n, x.astype(np.float64), right=0.0)
  # positions are float32 products: up to 2**-24 * 19200 samples of error, times the slope
  slope = np.abs(np.diff(x)).max()
  np.testing.assert_allclose(got, expected, atol=2e-3 * slope + 1e-6)
  if factor == 1.0:
    np.testing.assert_array_equal(got, x)
  if factor > 1:  # content shortened: zeros after sample (N - 1) / factor
    assert np.all(got[int(np.floor((N - 1) / factor)) + 1:] == 0.0)


@pytest.mark.parametrize("shift", [0, 1, 3999, -4000, -7, 16_000, -20_000])
def test_time_shift_with_zero_fill(shift):
  x = _wave()
  expected = np.zeros(N, np.float32)
  if shift >= 0:
    expected[shift:] = x[:max(N - shift, 0)]
  else:
    expected[:max(N + shift, 0)] = x[-shift:]
  np.testing.assert_array_equal(np.asarray(aa.time_shift(jnp.asarray(x), shift)), expected)


def test_ops_are_batched_per_clip_and_speed_then_shift_is_one_warp():
  x = np.stack([_wave(s) for s in range(3)])
  factors, shifts = np.float32([0.85, 1.0, 1.19]), np.int32([-1234, 0, 3999])
  batch_speed = np.asarray(aa.speed(jnp.asarray(x), factors))
  batch_shift = np.asarray(aa.time_shift(jnp.asarray(x), shifts))
  for i in range(3):
    np.testing.assert_array_equal(batch_speed[i], np.asarray(aa.speed(jnp.asarray(x[i]),
                                                                      factors[i])))
    np.testing.assert_array_equal(batch_shift[i], np.asarray(aa.time_shift(jnp.asarray(x[i]),
                                                                           shifts[i])))
  np.testing.assert_array_equal(np.asarray(aa._warp(jnp.asarray(x), factors, shifts)),
                                np.asarray(aa.time_shift(jnp.asarray(batch_speed), shifts)))
  np.testing.assert_allclose(np.asarray(aa.amplitude(jnp.asarray(x), factors)),
                             x * factors[:, None], rtol=1e-7)


@pytest.mark.parametrize("snr_db", [0.0, 7.5, 40.0])
def test_noise_is_mixed_at_the_requested_snr(snr_db):
  x = _wave()
  noise = np.random.default_rng(1).uniform(-0.5, 0.5, N).astype(np.float32)
  y = np.asarray(aa.add_noise(jnp.asarray(x), jnp.asarray(noise), snr_db), np.float64)
  added = y - x
  achieved = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(added ** 2))
  assert abs(achieved - snr_db) < 1e-3
  # the added signal is a multiple of the noise
  gain = added @ noise / (noise.astype(np.float64) @ noise)
  np.testing.assert_allclose(added, gain * noise, atol=1e-6)
  # silent noise or a silent clip: nothing is added
  np.testing.assert_array_equal(np.asarray(aa.add_noise(jnp.asarray(x), jnp.zeros(N), snr_db)), x)
  np.testing.assert_array_equal(
      np.asarray(aa.add_noise(jnp.zeros(N), jnp.asarray(noise), snr_db)), 0.0)


def test_noise_windows_are_uniform_over_all_windows():
  rng = np.random.default_rng(0)
  clips = (rng.integers(-3000, 3000, N).astype(np.int16),           # 1 window
           rng.integers(-3000, 3000, N + 3).astype(np.int16),       # 4 windows
           rng.uniform(-0.1, 0.1, 9000).astype(np.float32))          # short: padded, 1 window
  bank = aa.noise_bank(clips)
  assert aa.noise_bank(()) is None
  windows = np.stack([clips[0], *[clips[1][s:s + N] for s in range(4)],
                      np.pad(audio.waveforms_to_int16(clips[2]), (0, N - 9000))])
  draws = np.asarray(jax.jit(jax.vmap(lambda k: aa.sample_noise(k, bank)))(
      jax.random.split(jax.random.PRNGKey(0), 3000)))
  which = np.array([np.flatnonzero(np.all(windows == np.rint(d * 32768), axis=1))[0]
                    for d in draws])
  counts = np.bincount(which, minlength=6) / 3000
  np.testing.assert_allclose(counts, 1 / 6, atol=0.03)
  # The batch path (augment_waveforms draws one random word per clip for its window): on a
  # constant clip with every other operation an identity, what is added is a multiple of
  # the drawn window.
  n = 1200
  out = np.asarray(aa.augment_waveforms(
      jax.random.PRNGKey(1), np.full((n, N), 0.1, np.float32), noise=bank, probability=1.0,
      amplitude_range=(1.0, 1.0), speed_range=(1.0, 1.0), max_shift_ms=0.0,
      snr_range_db=(10.0, 10.0)), np.float64) - np.float64(np.float32(0.1))
  unit = windows / np.linalg.norm(windows, axis=1, keepdims=True)
  cosine = (out / np.linalg.norm(out, axis=1, keepdims=True)) @ unit.T
  assert (cosine.max(axis=1) > 0.999).all()
  counts = np.bincount(cosine.argmax(axis=1), minlength=6) / n
  np.testing.assert_allclose(counts, 1 / 6, atol=0.04)  # 3.7 binomial standard deviations


# ------------------------------------------------------------------------ composed


def test_probability_zero_and_one():
  stored = _fsdd_clips(4) if os.path.isdir(FSDD) else audio.waveforms_to_int16(_sines()[:4])
  key = jax.random.PRNGKey(3)
  unchanged = aa.augment_waveforms(key, stored, probability=0.0)
  np.testing.assert_array_equal(np.asarray(unchanged), audio.waveforms_from_int16(stored))
  # probability 1 with degenerate ranges: exactly amplitude 1.1, speed 0.9, shift +100 ms,
  # noise at 10 dB: the composition of the numpy references
  bank = aa.noise_bank((np.full(N, 1000, np.int16),))
  got = np.asarray(aa.augment_waveforms(
      key, stored, noise=bank, probability=1.0, amplitude_range=(1.1, 1.1),
      speed_range=(0.9, 0.9), max_shift_ms=0.0, snr_range_db=(10.0, 10.0)), np.float64)
  n = np.arange(N, dtype=np.float64)
  for clip, out in zip(audio.waveforms_from_int16(stored).astype(np.float64), got):
    x = clip * np.float32(1.1)
    x = np.interp(n * np.float64(np.float32(0.9)), n, x, right=0.0)
    noise = np.full(N, 1000 / 32768)
    x = x + np.sqrt(np.mean(x ** 2) / (np.mean(noise ** 2) * 10.0)) * noise
    # float32 interpolation positions (see the speed test)
    np.testing.assert_allclose(out, x, atol=3e-3 * np.abs(np.diff(x)).max() + 1e-6)


def test_each_op_is_applied_with_probability_one_half():
  # an impulse of 0.5 at sample 8000: amplitude scales it, the time shift moves it
  x = np.zeros((300, N), np.float32)
  x[:, 8000] = 0.5
  out = np.asarray(aa.augment_waveforms(jax.random.PRNGKey(0), x, speed_range=(1.0, 1.0)))
  where = np.argmax(np.abs(out), axis=1)
  value = out[np.arange(300), where]
  assert np.all(np.count_nonzero(out, axis=1) == 1)
  scaled, moved = ~np.isclose(value, 0.5, rtol=0, atol=1e-7), where != 8000
  for applied in (scaled, moved):
    assert 0.4 < applied.mean() < 0.6
  assert abs(np.mean(scaled & moved) - 0.25) < 0.07          # independently
  assert np.all((value >= 0.4 - 1e-6) & (value <= 0.6 + 1e-6))   # factors in [0.8, 1.2]
  assert np.all(np.abs(where - 8000) <= 4000)                # at most 250 ms
  assert np.abs(where - 8000).max() > 3000                   # and spread over the range


def test_weak_and_strong_views():
  rng = np.random.default_rng(0)
  stored = audio.waveforms_to_int16(_sines())
  noise = (rng.integers(-2000, 2000, 3 * N).astype(np.int16),)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # noise present: no warning
    weak, strong = aa.audio_augmentations(background_noise=noise, num_ops=0, cutout_fraction=0.25)
  key = jax.random.PRNGKey(0)
  w = jax.jit(weak)(key, stored)
  assert w.shape == (6, 32, 32, 1) and w.dtype == jnp.float32
  assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0
  # same key, same view (op by op and fused, equal up to float32 rounding)
  np.testing.assert_allclose(np.asarray(w), np.asarray(weak(key, stored)), rtol=0, atol=1e-6)
  assert not np.array_equal(np.asarray(w), np.asarray(weak(jax.random.PRNGKey(1), stored)))
  s = strong(key, stored)
  assert s.shape == (6, 32, 32, 1) and float(s.min()) >= 0.0 and float(s.max()) <= 1.0
  # the strong view = a weak view (first half of the key) + the image stage
  bank = aa.noise_bank(noise)
  k_wave, _ = jax.random.split(key)
  plain = aa.audio_strong(key, stored, noise=bank, num_ops=0, cutout_fraction=0.0)
  np.testing.assert_array_equal(np.asarray(plain), np.asarray(aa.audio_weak(k_wave, stored,
                                                                            noise=bank)))
  # the weak view is the log-mel of the augmented waveforms
  np.testing.assert_allclose(
      np.asarray(aa.audio_weak(key, stored, noise=bank)),
      _reference_log_mel(np.asarray(aa.augment_waveforms(key, stored, noise=bank))), atol=1e-4)


def test_no_background_noise_warns_once_at_build_time():
  with pytest.warns(UserWarning, match="no background noise"):
    weak, _ = aa.audio_augmentations(background_noise=())
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for k in range(3):
      weak(jax.random.PRNGKey(k), np.zeros((2, N), np.int16))


def test_bad_input_raises_value_error():
  key = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match=r"shape \(n, 16000\)"):
    aa.audio_weak(key, np.zeros((2, 8000), np.float32))
  with pytest.raises(ValueError, match="int16 .* or floating point"):
    aa.log_mel_spectrogram(np.zeros((2, N), np.int32))
  with pytest.raises(ValueError, match="probability must lie in"):
    aa.augment_waveforms(key, np.zeros((1, N)), probability=1.5)
  with pytest.raises(ValueError, match="speed_range must satisfy 0 < low <= high"):
    aa.augment_waveforms(key, np.zeros((1, N)), speed_range=(1.2, 0.8))
  with pytest.raises(ValueError, match="max_shift_ms"):
    aa.augment_waveforms(key, np.zeros((1, N)), max_shift_ms=-1.0)
  with pytest.raises(ValueError, match="unknown audio augmentation option"):
    aa.audio_augmentations(background_noise=(np.zeros(N, np.int16),), pitch=2)
  with pytest.raises(ValueError, match="noise clip 0 must be a non-empty 1-D"):
    aa.noise_bank((np.zeros((2, N), np.int16),))


# ----------------------------------------------------------------------- integration


def _audio_dataset(waveforms=True):
  rng = np.random.default_rng(0)
  stored = audio.waveforms_to_int16(0.3 * rng.standard_normal((8, N)))
  x = np.asarray(aa.log_mel_spectrogram(stored))
  ds = data.from_arrays(x, np.arange(8) % 2, x[:2], [0, 1], kind="audio")
  return dataclasses.replace(ds, train_waveforms=stored if waveforms else None), stored


def test_experiment_augmentations_read_the_audio_option():
  from assljax.app.experiment import _augmentations

  ds, stored = _audio_dataset()
  cfg = ml_collections.ConfigDict(dict(flip=True, pad=4, num_ops=2, cutout_fraction=0.5))
  weak, _ = _augmentations(cfg, ds)            # default: the image augmentations
  assert weak.func is ssl.augment.weak_augment
  cfg.audio = True
  with pytest.warns(UserWarning, match="no background noise"):
    weak, strong = _augmentations(cfg, ds)
  assert weak(jax.random.PRNGKey(0), stored).shape == (8, 32, 32, 1)
  assert strong.keywords["num_ops"] == 2 and strong.keywords["cutout_fraction"] == 0.5
  with pytest.raises(ValueError, match="needs the waveforms"):
    _augmentations(cfg, _audio_dataset(waveforms=False)[0])
  image = data.from_arrays(ds.train.x, ds.train.y, ds.test.x, ds.test.y)
  with pytest.raises(ValueError, match="needs an audio dataset"):
    _augmentations(cfg, image)
  cfg = ml_collections.ConfigDict(dict(flip=True, pad=4, num_ops=2, cutout_fraction=0.5,
                                       audio="yes"))
  with pytest.raises(ValueError, match="must be True or False"):
    _augmentations(cfg, ds)


def test_fixmatch_trains_on_waveforms_and_evaluates_on_spectrograms():
  ds, stored = _audio_dataset()
  model = models.build("mlp", num_classes=2, input_shape=(32, 32, 1), input_mean=ds.mean,
                       input_std=ds.std, width=8, depth=1)
  bank = aa.noise_bank((np.random.default_rng(1).integers(-500, 500, 2 * N).astype(np.int16),))
  weak = functools.partial(aa.audio_weak, noise=bank)
  strong = functools.partial(aa.audio_strong, noise=bank, num_ops=0, cutout_fraction=0.25)
  trainer = ssl.make_trainer(model, ssl.fixmatch(weak=weak, strong=strong), batch_size=2,
                             total_steps=4, mu=1)
  labeled = np.zeros(8, bool)
  labeled[:2] = True
  train_data = ssl.make_data(stored, ds.train.y, labeled)    # the training inputs: int16 clips
  state = trainer.init(jax.random.PRNGKey(0), train_data)
  state = trainer.train(state, train_data, 2, progress=False)
  assert int(state.step) == 2
  assert all(np.isfinite(np.asarray(leaf)).all()
             for leaf in jax.tree_util.tree_leaves(state.params))
  result = ssl.evaluate(model, trainer.eval_variables(state), ds.test.x, ds.test.y)
  assert 0.0 <= result["accuracy"] <= 1.0
