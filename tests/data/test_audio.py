"""Audio: WAV reading, resampling, and the 32×32 log-mel spectrogram against numpy references."""

import os
import wave

import numpy as np
import pytest

from assljax import data
from assljax.data import audio

RATE = 16_000


def _htk_mel(f):
  return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _band_edges_mel():
  return np.linspace(_htk_mel(0.0), _htk_mel(RATE / 2), audio.NUM_MEL_BINS + 2)


def _band_center_hz(m):
  return 700.0 * (10.0 ** (_band_edges_mel()[m + 1] / 2595.0) - 1.0)


def _reference_log_mel(wave_1s):
  """float64 numpy: centred STFT, periodic Hann, HTK triangles (linear in mel), fixed dB range."""
  n_fft, hop = 2048, 512
  padded = np.pad(np.asarray(wave_1s, np.float64), (n_fft // 2, n_fft // 2))
  window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
  frames = np.stack([padded[t * hop:t * hop + n_fft] for t in range(32)])
  power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 / (window.sum() / 2.0) ** 2
  mel_of_bin = _htk_mel(np.arange(n_fft // 2 + 1) * RATE / n_fft)[:, None]
  edges = _band_edges_mel()
  lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
  weights = np.maximum(0.0, np.minimum((mel_of_bin - lower) / (center - lower),
                                       (upper - mel_of_bin) / (upper - center)))
  bands = power @ weights                                   # (frames, mels)
  db = 10.0 * np.log10(np.maximum(bands, 1e-10))
  return np.clip((db + 100.0) / 110.0, 0.0, 1.0).T          # (mels, frames)


def _tone(freq, amplitude=0.5, rate=RATE, seconds=1.0):
  t = np.arange(int(rate * seconds)) / rate
  return (amplitude * np.sin(2.0 * np.pi * freq * t)).astype(np.float32)


def _write_pcm16(path, samples, rate=RATE, channels=1):
  ints = np.clip(np.round(np.asarray(samples) * 32767), -32768, 32767).astype("<i2")
  with wave.open(str(path), "wb") as w:
    w.setnchannels(channels)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(ints.tobytes())


def test_spectrogram_shape_and_constants():
  assert audio.NUM_FRAMES == 32 and audio.SPECTROGRAM_SHAPE == (32, 32, 1)
  x = data.log_mel_spectrogram(np.zeros((3, 16_000), np.float32))
  assert x.shape == (3, 32, 32, 1) and x.dtype == np.float32
  np.testing.assert_array_equal(x, 0.0)  # digital silence sits at the floor of the dB range


def test_spectrogram_matches_numpy_reference():
  rng = np.random.default_rng(0)
  waves = np.stack([
      _tone(440.0) + 0.05 * rng.standard_normal(RATE).astype(np.float32),
      _tone(3000.0, 0.9) * np.linspace(0, 1, RATE, dtype=np.float32),
      np.concatenate([0.3 * rng.standard_normal(6000), np.zeros(10_000)]).astype(np.float32),
  ])
  got = data.log_mel_spectrogram(waves)
  for i in range(waves.shape[0]):
    np.testing.assert_allclose(got[i, :, :, 0], _reference_log_mel(waves[i]), atol=2e-4)


@pytest.mark.parametrize("band", [2, 9, 17, 30])
def test_pure_tone_peaks_in_its_htk_band(band):
  freq = _band_center_hz(band)
  x = data.log_mel_spectrogram(_tone(freq)[None])[0, :, :, 0]
  middle = x[:, 4:28]  # frames away from the zero padding at the edges
  assert np.all(np.argmax(middle, axis=0) == band)
  # a half-scale tone: ~ -6 dB at its band, well above the -100 dB floor
  assert abs(middle[band].mean() - (100.0 - 6.0) / 110.0) < 0.03


def test_mel_matrix_is_htk_tensorflow():
  w = data.mel_weight_matrix()
  assert w.shape == (1025, 32)
  peaks = np.argmax(w, axis=0) * RATE / 2048
  centers = np.array([_band_center_hz(m) for m in range(32)])
  assert np.all(np.abs(peaks - centers) <= RATE / 2048)  # peak within one FFT bin of HTK centre


def test_to_one_second_pads_crops_and_resamples():
  short = np.arange(10, dtype=np.float32)
  out = data.to_one_second(short, RATE)
  assert out.shape == (16_000,) and np.all(out[:10] == short) and np.all(out[10:] == 0)
  long = np.arange(20_000, dtype=np.float32)
  np.testing.assert_array_equal(data.to_one_second(long, RATE), long[:16_000])
  # an 8 kHz recording of a 440 Hz tone resamples to the same tone at 16 kHz
  up = data.to_one_second(_tone(440.0, rate=8000, seconds=1.0), 8000)
  np.testing.assert_allclose(up[400:15_600], _tone(440.0)[400:15_600], atol=2e-3)
  # 44.1 kHz down to 16 kHz
  down = data.to_one_second(_tone(1000.0, rate=44_100, seconds=1.5), 44_100)
  np.testing.assert_allclose(down[400:15_600], _tone(1000.0)[400:15_600], atol=2e-3)
  with pytest.raises(ValueError, match="one-dimensional"):
    data.to_one_second(np.zeros((2, 5)), RATE)
  with pytest.raises(ValueError, match="sample_rate"):
    data.to_one_second(short, 0)
  with pytest.raises(ValueError, match=r"\(n, 16000\)"):
    data.log_mel_spectrogram(np.zeros((2, 100)))
  with pytest.raises(ValueError, match="NaN"):
    data.log_mel_spectrogram(np.full((1, 16_000), np.nan))


def test_read_wav_formats(tmp_path):
  from scipy.io import wavfile

  # 8-bit unsigned PCM: 128 is zero
  with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
    w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000)
    w.writeframes(bytes([128, 192, 0, 255]))
  x, rate = data.read_wav(str(tmp_path / "u8.wav"))
  assert rate == 8000
  np.testing.assert_allclose(x, [0.0, 0.5, -1.0, 127 / 128])
  # 16-bit PCM
  with wave.open(str(tmp_path / "s16.wav"), "wb") as w:
    w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
    w.writeframes(np.array([0, 16384, -32768], "<i2").tobytes())
  np.testing.assert_allclose(data.read_wav(str(tmp_path / "s16.wav"))[0], [0.0, 0.5, -1.0])
  # 24-bit PCM, little-endian three-byte samples
  values = [0, 2 ** 22, -2 ** 23]
  raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
  with wave.open(str(tmp_path / "s24.wav"), "wb") as w:
    w.setnchannels(1), w.setsampwidth(3), w.setframerate(RATE)
    w.writeframes(raw)
  np.testing.assert_allclose(data.read_wav(str(tmp_path / "s24.wav"))[0], [0.0, 0.5, -1.0])
  # 32-bit PCM and IEEE float
  wavfile.write(tmp_path / "s32.wav", RATE, np.array([0, 2 ** 30, -2 ** 31], np.int32))
  np.testing.assert_allclose(data.read_wav(str(tmp_path / "s32.wav"))[0], [0.0, 0.5, -1.0])
  wavfile.write(tmp_path / "f32.wav", 22_050, np.array([0.25, -0.75], np.float32))
  x, rate = data.read_wav(str(tmp_path / "f32.wav"))
  assert rate == 22_050 and x.dtype == np.float32
  np.testing.assert_allclose(x, [0.25, -0.75])
  # stereo is averaged
  _write_pcm16(tmp_path / "st.wav", np.array([0.5, -0.5, 0.25, 0.25]), channels=2)
  np.testing.assert_allclose(data.read_wav(str(tmp_path / "st.wav"))[0], [0.0, 0.25], atol=1e-4)


def test_read_wav_errors_name_the_file(tmp_path):
  from scipy.io import wavfile

  junk = tmp_path / "junk.wav"
  junk.write_bytes(os.urandom(200))
  with pytest.raises(ValueError, match="cannot read WAV file .*junk.wav"):
    data.read_wav(str(junk))
  nan = tmp_path / "nan.wav"
  wavfile.write(nan, RATE, np.array([0.1, np.nan], np.float32))
  with pytest.raises(ValueError, match="nan.wav contains NaN"):
    data.read_wav(str(nan))
  empty = tmp_path / "empty.wav"
  _write_pcm16(empty, np.zeros(0))
  with pytest.raises(ValueError, match="empty.wav has no samples"):
    data.read_wav(str(empty))


def _audio_tree(root, rate_for=lambda split, c, k: RATE):
  """root/<split>/<class>/k.wav: class 'high' holds tones of band 20 (< 4 kHz), 'low' of band 5."""
  bands = {"high": 20, "low": 5}
  for split, count in (("train", 3), ("test", 2)):
    for name, band in bands.items():
      folder = root / split / name
      folder.mkdir(parents=True)
      for k in range(count):
        rate = rate_for(split, name, k)
        _write_pcm16(folder / f"{k}.wav", _tone(_band_center_hz(band), 0.5, rate, 0.8), rate)
  return bands


def test_audiofolder_loads_spectrograms(tmp_path):
  # one training clip of each class is recorded at 8 kHz and must be resampled
  bands = _audio_tree(tmp_path, lambda split, c, k: 8000 if (split, k) == ("train", 0) else RATE)
  ds = data.load("audiofolder", root=str(tmp_path))
  assert ds.kind == "audio" and ds.class_names == ("high", "low") and ds.input_shape == (32, 32, 1)
  assert ds.train.x.shape == (6, 32, 32, 1) and ds.test.x.shape == (4, 32, 32, 1)
  np.testing.assert_array_equal(ds.train.y, [0, 0, 0, 1, 1, 1])
  assert ds.train.ids[0] == os.path.abspath(tmp_path / "train" / "high" / "0.wav")
  for split in (ds.train, ds.test):
    for x, y in zip(split.x, split.y):
      peak = np.argmax(x[:, 4:20, 0], axis=0)  # 0.8 s of tone: frames 4..19 are inside it
      assert np.all(peak == bands[ds.class_names[y]])
      assert np.all(x[:, 27:, 0] == 0.0)        # zero padding after 0.8 s is digital silence
  # the 8 kHz clip and a 16 kHz clip of the same tone give nearly the same image below 4 kHz
  # (mel bands 0-22; above, the 8 kHz file holds only its -88 dB quantization noise)
  np.testing.assert_allclose(ds.train.x[0, :23, 4:20], ds.train.x[1, :23, 4:20], atol=0.02)
  small = data.load("audiofolder", root=str(tmp_path), max_train=2, seed=3)
  assert sorted(small.train.y.tolist()) == [0, 1]
  assert set(small.train.ids) <= set(ds.train.ids)


def test_audiofolder_errors(tmp_path):
  _audio_tree(tmp_path)
  (tmp_path / "train" / "low" / "1.wav").write_bytes(b"RIFF-not-really")
  with pytest.raises(ValueError, match=r"cannot read WAV file .*low.1\.wav"):
    data.load("audiofolder", root=str(tmp_path))
  with pytest.raises(ValueError, match="has no 'valid' split folder"):
    data.load("audiofolder", root=str(tmp_path), test_split="valid")
  empty = tmp_path / "empty"
  (empty / "train" / "a").mkdir(parents=True)
  (empty / "train" / "b").mkdir(parents=True)
  (empty / "test" / "a").mkdir(parents=True)
  (empty / "test" / "b").mkdir(parents=True)
  with pytest.raises(ValueError, match="has no WAV files"):
    data.load("audiofolder", root=str(empty))


def test_mel_matrix_matches_tensorflow():
  tf = pytest.importorskip("tensorflow")
  expected = tf.signal.linear_to_mel_weight_matrix(
      num_mel_bins=32, num_spectrogram_bins=1025, sample_rate=RATE, lower_edge_hertz=0.0,
      upper_edge_hertz=RATE / 2).numpy()
  got = data.mel_weight_matrix()
  assert got.dtype == np.float32 and got.shape == (1025, 32)
  np.testing.assert_allclose(got, expected, atol=1e-5)   # TensorFlow computes it in float32
  assert np.all(got[0] == 0.0)                            # DC bin excluded, as in HTK


def test_int16_storage_round_trip():
  w = np.array([0.0, 0.5, -1.0, 1.0, 1.5, -2.0, 1e-5, 3.1e-5], np.float32)
  q = audio.waveforms_to_int16(w)
  assert q.dtype == np.int16
  np.testing.assert_array_equal(q, [0, 16384, -32768, 32767, 32767, -32768, 0, 1])
  np.testing.assert_array_equal(audio.waveforms_from_int16(q), q.astype(np.float64) / 32768)
  # 16-bit PCM survives exactly
  pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
  np.testing.assert_array_equal(audio.waveforms_to_int16(audio.waveforms_from_int16(pcm)), pcm)


def test_audiofolder_keeps_waveforms_and_background_noise(tmp_path):
  _audio_tree(tmp_path, lambda split, c, k: 8000 if (split, k) == ("train", 0) else RATE)
  rng = np.random.default_rng(0)
  noise_dir = tmp_path / "train" / "_background_noise_"   # Speech Commands' layout
  noise_dir.mkdir()
  long_noise, short_noise = 0.1 * rng.standard_normal(40_000), 0.2 * rng.standard_normal(9_000)
  _write_pcm16(noise_dir / "b_long.wav", long_noise)
  _write_pcm16(noise_dir / "a_short.wav", short_noise, rate=8000)   # resampled to 18,000
  ds = data.load("audiofolder", root=str(tmp_path))
  assert ds.class_names == ("high", "low")  # the noise folder is not a class
  paths = [str(tmp_path / "train" / c / f"{k}.wav") for c in ("high", "low") for k in range(3)]
  clips = np.stack([data.to_one_second(*data.read_wav(p)) for p in paths])
  expected = np.clip(np.rint(clips.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
  assert ds.train_waveforms.dtype == np.int16
  np.testing.assert_array_equal(ds.train_waveforms, expected)
  # the pool's spectrograms are those of the stored clips
  np.testing.assert_allclose(
      ds.train.x, data.log_mel_spectrogram(audio.waveforms_from_int16(expected)), atol=1e-6)
  # noise: sorted by name, resampled to 16 kHz, padded to >= 1 s, int16
  short, long_ = ds.background_noise
  assert short.dtype == long_.dtype == np.int16
  assert short.shape == (18_000,) and long_.shape == (40_000,)
  np.testing.assert_allclose(long_ / 32768, np.round(long_noise * 32767) / 32767, atol=1e-4)
  # noise at the root, or given explicitly; none: an empty tuple; keep_waveforms=False: neither
  noise_dir.rename(tmp_path / "_background_noise_")
  at_root = data.load("audiofolder", root=str(tmp_path))
  assert [n.shape for n in at_root.background_noise] == [(18_000,), (40_000,)]
  elsewhere = tmp_path / "noises"
  (tmp_path / "_background_noise_").rename(elsewhere)
  assert data.load("audiofolder", root=str(tmp_path)).background_noise == ()
  given = data.load("audiofolder", root=str(tmp_path), noise_dir=str(elsewhere), max_train=2)
  assert len(given.background_noise) == 2 and given.train_waveforms.shape == (2, 16_000)
  bare = data.load("audiofolder", root=str(tmp_path), noise_dir=str(elsewhere),
                   keep_waveforms=False)
  assert bare.train_waveforms is None and bare.background_noise == ()
  np.testing.assert_array_equal(bare.train.x, ds.train.x)
  with pytest.raises(ValueError, match="background noise folder .*missing"):
    data.load("audiofolder", root=str(tmp_path), noise_dir=str(tmp_path / "missing"))
  (tmp_path / "quiet").mkdir()
  with pytest.raises(ValueError, match="quiet has no WAV files"):
    data.load("audiofolder", root=str(tmp_path), noise_dir=str(tmp_path / "quiet"))
  with pytest.raises(ValueError, match="keep_waveforms must be True or False"):
    data.load("audiofolder", root=str(tmp_path), keep_waveforms="yes")


def test_dataset_checks_waveforms_and_noise():
  import dataclasses

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, 32, 32, 1)).astype(np.float32)
  ds = data.from_arrays(x, [0, 1, 0, 1], x[:2], [0, 1], kind="audio")
  waves = rng.integers(-100, 100, (4, 16_000)).astype(np.int16)
  ok = dataclasses.replace(ds, train_waveforms=waves, background_noise=(waves[0],))
  assert ok.train_waveforms is waves and len(ok.background_noise) == 1
  with pytest.raises(ValueError, match=r"train waveforms must be an int16 array of shape \(4"):
    dataclasses.replace(ds, train_waveforms=waves.astype(np.float32))
  with pytest.raises(ValueError, match="train waveforms must be"):
    dataclasses.replace(ds, train_waveforms=waves[:3])
  with pytest.raises(ValueError, match="noise clip 0 must be a 1-D int16 array"):
    dataclasses.replace(ds, background_noise=(waves[0, :100],))
  with pytest.raises(ValueError, match="background_noise must be a tuple"):
    dataclasses.replace(ds, background_noise=[waves[0]])
  image = data.from_arrays(x, [0, 1, 0, 1], x[:2], [0, 1])
  with pytest.raises(ValueError, match="kind 'image'"):
    dataclasses.replace(image, train_waveforms=waves)
  with pytest.raises(ValueError, match="kind 'image'"):
    dataclasses.replace(image, background_noise=(waves[0],))
