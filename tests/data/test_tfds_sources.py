"""tensorflow-datasets sources, offline through tfds.testing.mock_data (no network, no files)."""

import numpy as np
import pytest

from assljax import data

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")

IMAGE_SOURCES = {  # name -> (input shape, number of classes)
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "svhn_cropped": ((32, 32, 3), 10),
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
}


@pytest.mark.parametrize("name", sorted(IMAGE_SOURCES))
def test_image_source_through_mock_data(name, tmp_path):
  shape, classes = IMAGE_SOURCES[name]
  with tfds.testing.mock_data(num_examples=24):
    ds = data.load(name, data_dir=str(tmp_path))
    # (tfds.load(..., batch_size=-1) aborts TensorFlow under mock_data: iterate instead)
    reference = {}
    for split in ("train", "test"):
      rows = list(tfds.as_numpy(tfds.load(name, split=split, data_dir=str(tmp_path))))
      reference[split] = {k: np.stack([r[k] for r in rows]) for k in ("image", "label")}
    small = data.load(name, data_dir=str(tmp_path), max_train=8, max_test=5, seed=2)
    again = data.load(name, data_dir=str(tmp_path), max_train=8, max_test=5, seed=2)
  info = tfds.builder(name).info
  assert ds.name == name and ds.kind == "image" and ds.num_classes == classes
  assert ds.class_names == tuple(info.features["label"].names)
  assert ds.input_shape == shape
  for split_name, split in (("train", ds.train), ("test", ds.test)):
    assert split.x.shape == (24, *shape) and split.x.dtype == np.float32
    assert split.y.dtype == np.int32
    np.testing.assert_array_equal(split.x * 255.0,
                                  reference[split_name]["image"].astype(np.float32))
    np.testing.assert_array_equal(split.y, reference[split_name]["label"])
    assert split.ids.tolist() == [f"{name}/{split_name}/{i}" for i in range(24)]
  # subsampling: a deterministic subset of the full rows, with their ids
  assert small.train.x.shape == (8, *shape) and small.test.x.shape == (5, *shape)
  np.testing.assert_array_equal(small.train.ids, again.train.ids)
  index = [int(i.rsplit("/", 1)[1]) for i in small.train.ids]
  assert index == sorted(set(index))
  np.testing.assert_array_equal(small.train.x, ds.train.x[index])
  np.testing.assert_array_equal(small.train.y, ds.train.y[index])


def test_cifar100_coarse_labels_and_option_errors(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    ds = data.load("cifar100", data_dir=str(tmp_path), label_key="coarse_label")
    assert ds.num_classes == 20 and ds.train.y.max() < 20
    with pytest.raises(ValueError, match="no class-label feature 'fine'.*coarse_label, label"):
      data.load("cifar100", data_dir=str(tmp_path), label_key="fine")
    with pytest.raises(ValueError, match="train_split and test_split are both 'train'"):
      data.load("cifar10", data_dir=str(tmp_path), test_split="train")
    with pytest.raises(ValueError, match="unknown option.*shuffle"):
      data.load("cifar10", data_dir=str(tmp_path), shuffle=True)


@pytest.mark.parametrize("name", sorted(IMAGE_SOURCES) + ["speech_commands", "spoken_digit"])
def test_unprepared_source_says_what_to_run(name, tmp_path):
  folder = "audiofolder" if name in ("speech_commands", "spoken_digit") else "imagefolder"
  message = (f"'{name}' is not prepared in {tmp_path}; on a machine with network access run"
             f" `tfds build {name} --data_dir {tmp_path}`.*load\\('{folder}', root=...\\)")
  with pytest.raises(ValueError, match=message):
    data.load(name, data_dir=str(tmp_path))


def _tone(freq, rate, n):
  return 0.4 * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def _audio_mock(examples):
  """An ``as_dataset_fn`` yielding ``examples[name][split]`` with the builder's own dtypes."""

  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **_):
    del decoders, read_config, shuffle_files
    features = self.info.features
    spec = {"audio": tf.TensorSpec((None,), features["audio"].dtype),
            "label": tf.TensorSpec((), tf.int64)}
    if "audio/filename" in features:
      spec["audio/filename"] = tf.TensorSpec((), tf.string)
    rows = examples[self.name][str(split)]
    return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=spec)

  return as_dataset


def _clips(waves, rate):
  """The one-second 16 kHz clips rounded to 16 bits, as the sources store them (int16)."""
  clips = np.stack([data.to_one_second(np.asarray(w, np.float32) / 32768.0, rate) for w in waves])
  return np.clip(np.rint(clips.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)


def _expected(waves, rate):
  return data.log_mel_spectrogram(_clips(waves, rate).astype(np.float32) / 32768.0)


def test_speech_commands_through_mock_data(tmp_path):
  rng = np.random.default_rng(0)
  rows = {}
  for split, n in (("train", 14), ("test", 6)):
    lengths = rng.integers(4000, 20_000, n)  # shorter and longer than one second
    waves = [np.round(32767 * _tone(300 + 200 * k, 16_000, lengths[k])).astype(np.int16)
             for k in range(n)]
    # label 10 is _silence_: tfds' one-second pieces of the _background_noise_ recordings
    rows[split] = [{"audio": wave, "label": 10 if (split, k) == ("train", 3) else k % 12}
                   for k, wave in enumerate(waves)]
  with tfds.testing.mock_data(as_dataset_fn=_audio_mock({"speech_commands": rows})):
    ds = data.load("speech_commands", data_dir=str(tmp_path))
    small = data.load("speech_commands", data_dir=str(tmp_path), max_train=4, max_test=3, seed=1)
    bare = data.load("speech_commands", data_dir=str(tmp_path), max_train=4, keep_waveforms=False)
  assert ds.kind == "audio" and ds.input_shape == (32, 32, 1) and ds.num_classes == 12
  assert ds.class_names[:3] == ("down", "go", "left") and ds.class_names[-1] == "_unknown_"
  for split_name, split in (("train", ds.train), ("test", ds.test)):
    waves = [r["audio"] for r in rows[split_name]]
    np.testing.assert_allclose(split.x, _expected(waves, 16_000), atol=1e-6)
    np.testing.assert_array_equal(split.y, [r["label"] for r in rows[split_name]])
    assert split.ids.tolist() == [f"speech_commands/{split_name}/{i}" for i in range(len(waves))]
  # the two-pass subsample decodes only the chosen clips, and they equal the full rows
  index = [int(i.rsplit("/", 1)[1]) for i in small.train.ids]
  assert len(index) == 4
  np.testing.assert_allclose(small.train.x, ds.train.x[index], atol=1e-6)
  np.testing.assert_array_equal(small.train.y, ds.train.y[index])
  assert small.test.x.shape == (3, 32, 32, 1)
  # the train clips are kept as int16 (exact for 16-bit sources); the _silence_ train
  # examples are the background noise, all of them even when the subsample drops some
  clips = _clips([r["audio"] for r in rows["train"]], 16_000)
  np.testing.assert_array_equal(ds.train_waveforms, clips)
  np.testing.assert_array_equal(small.train_waveforms, clips[index])
  for noise in (ds.background_noise, small.background_noise):
    assert len(noise) == 2 and all(n.dtype == np.int16 for n in noise)
    np.testing.assert_array_equal(np.stack(noise), clips[[3, 10]])
  assert not (set(index) >= {3, 10})  # the subsample lacks a noise clip, the noise does not
  assert bare.train_waveforms is None and bare.background_noise == ()


def test_spoken_digit_official_split_and_resampling(tmp_path):
  train_rows = []
  for k in range(20):
    digit, recording = k % 10, (k // 10) * 7  # recordings 0 (test) and 7 (train)
    wave = np.round(32767 * _tone(200 + 150 * digit, 8000, 3000 + 100 * k)).astype(np.int64)
    train_rows.append({"audio": wave, "label": digit,
                       "audio/filename": f"{digit}_theo_{recording}.wav"})
  mock = _audio_mock({"spoken_digit": {"train": train_rows}})
  with tfds.testing.mock_data(as_dataset_fn=mock):
    ds = data.load("spoken_digit", data_dir=str(tmp_path))
    small = data.load("spoken_digit", data_dir=str(tmp_path), max_train=5, max_test=5)
  assert ds.num_classes == 10 and ds.class_names == tuple(str(d) for d in range(10))
  assert ds.test.ids.tolist() == [f"spoken_digit/train/{i}" for i in range(10)]
  assert ds.train.ids.tolist() == [f"spoken_digit/train/{i}" for i in range(10, 20)]
  np.testing.assert_allclose(ds.test.x, _expected([r["audio"] for r in train_rows[:10]], 8000),
                             atol=1e-6)
  np.testing.assert_allclose(ds.train.x, _expected([r["audio"] for r in train_rows[10:]], 8000),
                             atol=1e-6)
  np.testing.assert_array_equal(ds.train_waveforms,
                                _clips([r["audio"] for r in train_rows[10:]], 8000))
  assert ds.background_noise == ()  # spoken_digit has no noise recordings
  assert set(small.train.ids) <= set(ds.train.ids) and set(small.test.ids) <= set(ds.test.ids)
  assert len(small.train.ids) == 5 and len(small.test.ids) == 5
  bad_rows = [dict(r, **{"audio/filename": "recording.wav"}) for r in train_rows]
  with tfds.testing.mock_data(as_dataset_fn=_audio_mock({"spoken_digit": {"train": bad_rows}})):
    with pytest.raises(ValueError, match="'recording.wav' does not follow"):
      data.load("spoken_digit", data_dir=str(tmp_path))


def test_real_prepared_tfrecords_without_mocks(tmp_path, monkeypatch):
  """A genuinely prepared cifar10 (TFRecord files + dataset_info.json), read with no mock."""
  import importlib.resources
  import importlib.resources.abc
  import sys

  # tensorflow-datasets 4.9.10 needs the `importlib_resources` backport to prepare any dataset
  # on Python >= 3.9 (tensorflow/datasets#11212); the standard library module has the same API.
  if "importlib_resources" not in sys.modules:
    try:
      import importlib_resources  # noqa: F401
    except ImportError:
      monkeypatch.setitem(sys.modules, "importlib_resources", importlib.resources)
  rng = np.random.default_rng(0)
  features = tfds.builder("cifar10").info.features
  rows = {split: [(k, {"id": f"{split}_{k}", "label": k % 10,
                       "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)})
                  for k in range(n)] for split, n in (("train", 20), ("test", 7))}
  tfds.dataset_builders.store_as_tfds_dataset(
      name="cifar10", version=str(tfds.builder("cifar10").version), features=features,
      split_datasets=rows, data_dir=str(tmp_path), disable_shuffling=True)
  ds = data.load("cifar10", data_dir=str(tmp_path))
  for split_name, split in (("train", ds.train), ("test", ds.test)):
    expected = np.stack([r["image"] for _, r in rows[split_name]]).astype(np.float32) / 255.0
    np.testing.assert_array_equal(split.x, expected)
    np.testing.assert_array_equal(split.y, [r["label"] for _, r in rows[split_name]])
    assert split.ids[-1] == f"cifar10/{split_name}/{len(rows[split_name]) - 1}"
  small = data.load("cifar10", data_dir=str(tmp_path), max_train=10, seed=4)
  assert np.bincount(small.train.y).tolist() == [1] * 10
  index = [int(i.rsplit("/", 1)[1]) for i in small.train.ids]
  np.testing.assert_array_equal(small.train.x, ds.train.x[index])
  with pytest.raises(ValueError,
                     match="'cifar10' has no split 'validation'; available: train, test"):
    data.load("cifar10", data_dir=str(tmp_path), test_split="validation")
