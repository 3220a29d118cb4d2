"""ImageFolder: files the tests write (PNG, JPG, gray, 16-bit) and ../shared/data/cifar10."""

import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from assljax import data

SHARED_CIFAR10 = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")


def _tf_decode_jpeg(path):
  """An independent JPEG decoder (TensorFlow's libjpeg-turbo, accurate integer IDCT)."""
  import tensorflow as tf

  return tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3,
                           dct_method="INTEGER_ACCURATE").numpy()


def _write_tree(root, *, per_class=(3, 2), size=(6, 5), ext="png", seed=0):
  """root/{train,test}/{cat,dog}/k.ext with random RGB pixels; returns {path: uint8 array}."""
  rng = np.random.default_rng(seed)
  written = {}
  for split, count in zip(("train", "test"), per_class):
    for name in ("cat", "dog"):
      folder = root / split / name
      folder.mkdir(parents=True, exist_ok=True)
      for k in range(count):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        path = folder / f"{k}.{ext}"
        Image.fromarray(pixels).save(path)
        written[str(path)] = pixels
  return written


def test_png_folder_is_exact(tmp_path):
  written = _write_tree(tmp_path)
  (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
  (tmp_path / "train" / "cat" / ".hidden.png").write_bytes(b"ignored")
  ds = data.load("imagefolder", root=str(tmp_path))
  assert ds.name == "imagefolder" and ds.kind == "image" and ds.class_names == ("cat", "dog")
  assert ds.input_shape == (6, 5, 3) and ds.num_classes == 2
  assert ds.train.x.shape == (6, 6, 5, 3) and ds.test.x.shape == (4, 6, 5, 3)
  assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int32
  np.testing.assert_array_equal(ds.train.y, [0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(ds.test.y, [0, 0, 1, 1])
  for split in (ds.train, ds.test):
    for x, path in zip(split.x, split.ids):
      assert os.path.isabs(path)
      np.testing.assert_array_equal(x, written[path].astype(np.float32) / 255.0)
  # per-channel statistics of the train inputs, float64 reference
  ref = np.stack([written[p] for p in ds.train.ids]).astype(np.float64) / 255.0
  np.testing.assert_allclose(ds.mean, ref.mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(ds.std, ref.std(axis=(0, 1, 2)), rtol=1e-5)


def test_jpg_folder_matches_tensorflow_decoder(tmp_path):
  _write_tree(tmp_path, ext="jpg")
  (tmp_path / "test" / "dog" / "1.jpg").rename(tmp_path / "test" / "dog" / "1.JPEG")
  ds = data.load("imagefolder", root=str(tmp_path))
  assert ds.test.ids[-1].endswith("1.JPEG")
  for split in (ds.train, ds.test):
    for x, path in zip(split.x, split.ids):
      np.testing.assert_array_equal(x * 255.0, _tf_decode_jpeg(path).astype(np.float32))


def test_gray_16bit_and_mixed_channels(tmp_path):
  rng = np.random.default_rng(1)
  gray = {}
  for split in ("train", "test"):
    for name in ("a", "b"):
      (tmp_path / split / name).mkdir(parents=True)
      g = rng.integers(0, 256, (4, 4), dtype=np.uint8)
      Image.fromarray(g).save(tmp_path / split / name / "g.png")
      gray[(split, name)] = g
  ds = data.load("imagefolder", root=str(tmp_path))
  assert ds.input_shape == (4, 4, 1)
  np.testing.assert_array_equal(ds.train.x[0, :, :, 0], gray[("train", "a")] / np.float32(255))
  # 16-bit gray PNGs are scaled by 65535
  deep = (rng.integers(0, 65536, (4, 4))).astype(np.uint16)
  Image.fromarray(deep).save(tmp_path / "train" / "a" / "h.png")
  ds = data.load("imagefolder", root=str(tmp_path))
  np.testing.assert_allclose(ds.train.x[1, :, :, 0], deep / 65535.0, rtol=1e-6)
  # one colour image makes every image RGB, gray ones repeated over the channels
  colour = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
  Image.fromarray(colour).save(tmp_path / "test" / "b" / "rgb.png")
  ds = data.load("imagefolder", root=str(tmp_path))
  assert ds.input_shape == (4, 4, 3)
  np.testing.assert_array_equal(ds.train.x[0], np.repeat(gray[("train", "a")][..., None], 3, -1)
                                / np.float32(255))
  np.testing.assert_array_equal(ds.test.x[2], colour / np.float32(255))
  # channels=1 turns colour into ITU-R 601-2 luma (L = 299/1000 R + 587/1000 G + 114/1000 B)
  ds = data.load("imagefolder", root=str(tmp_path), channels=1)
  luma = colour.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(ds.test.x[2, :, :, 0] * 255.0, luma, atol=1.0)


def test_image_size_resizes_and_mismatch_is_named(tmp_path):
  _write_tree(tmp_path, size=(6, 5))
  odd = tmp_path / "test" / "dog" / "9.png"
  ramp = np.tile(np.linspace(0, 255, 12).astype(np.uint8)[None, :, None], (8, 1, 3))
  Image.fromarray(ramp).save(odd)
  with pytest.raises(ValueError, match=r"image .*9\.png is 8x12 but earlier images are 6x5"):
    data.load("imagefolder", root=str(tmp_path))
  ds = data.load("imagefolder", root=str(tmp_path), image_size=(4, 6))
  assert ds.input_shape == (4, 6, 3) and ds.test.ids[-1].endswith("9.png")
  resized = ds.test.x[-1]
  # a horizontal ramp stays a (strictly increasing) ramp, constant down each column
  assert np.all(np.diff(resized[0, :, 0]) > 0)
  np.testing.assert_allclose(resized, np.broadcast_to(resized[:1], resized.shape), atol=1e-6)
  constant = tmp_path / "train" / "cat" / "9.png"
  Image.fromarray(np.full((7, 3, 3), 77, np.uint8)).save(constant)
  ds = data.load("imagefolder", root=str(tmp_path), image_size=(4, 6))
  np.testing.assert_allclose(ds.train.x[3], 77 / 255.0, atol=1e-6)


def test_subsample_is_stratified_and_deterministic(tmp_path):
  _write_tree(tmp_path, per_class=(10, 6))
  a = data.load("imagefolder", root=str(tmp_path), max_train=4, max_test=2, seed=5)
  b = data.load("imagefolder", root=str(tmp_path), max_train=4, max_test=2, seed=5)
  full = data.load("imagefolder", root=str(tmp_path))
  np.testing.assert_array_equal(a.train.ids, b.train.ids)
  np.testing.assert_array_equal(a.train.x, b.train.x)
  assert np.bincount(a.train.y).tolist() == [2, 2] and np.bincount(a.test.y).tolist() == [1, 1]
  position = {p: i for i, p in enumerate(full.train.ids)}
  for x, y, path in zip(*a.train):
    np.testing.assert_array_equal(x, full.train.x[position[path]])
    assert y == full.train.y[position[path]]
  seeds = {tuple(data.load("imagefolder", root=str(tmp_path), max_train=4, seed=s).train.ids)
           for s in range(6)}
  assert len(seeds) > 1


def test_folder_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    data.load("imagefolder", root=str(tmp_path / "nowhere"))
  (tmp_path / "train").mkdir()
  with pytest.raises(ValueError, match="has no class sub-folders"):
    data.load("imagefolder", root=str(tmp_path))
  _write_tree(tmp_path)
  with pytest.raises(ValueError, match="has no 'val' split folder \\(found: test, train\\)"):
    data.load("imagefolder", root=str(tmp_path), test_split="val")
  (tmp_path / "train" / "emu").mkdir()
  with pytest.raises(ValueError, match=r"class folders differ.*only in 'train': \['emu'\]"):
    data.load("imagefolder", root=str(tmp_path))
  (tmp_path / "test" / "emu").mkdir()
  with pytest.raises(ValueError, match=r"class folder .*emu has no image files"):
    data.load("imagefolder", root=str(tmp_path))
  for split in ("train", "test"):
    (tmp_path / split / "emu").rmdir()
  bad = tmp_path / "train" / "dog" / "broken.png"
  bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
  with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
    data.load("imagefolder", root=str(tmp_path))
  bad.unlink()
  jpg = tmp_path / "test" / "cat" / "cut.jpg"
  Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 9).save(jpg)
  jpg.write_bytes(jpg.read_bytes()[:200])
  with pytest.raises(ValueError, match=r"cannot read image .*cut\.jpg"):
    data.load("imagefolder", root=str(tmp_path))
  jpg.unlink()
  for bad_size in [(0, 4), (4,), "big", (2.5, 3), (True, 2)]:
    with pytest.raises(ValueError, match="image_size"):
      data.load("imagefolder", root=str(tmp_path), image_size=bad_size)
  with pytest.raises(ValueError, match="channels"):
    data.load("imagefolder", root=str(tmp_path), channels=2)
  with pytest.raises(ValueError, match="unknown option.*size"):
    data.load("imagefolder", root=str(tmp_path), size=(4, 4))
  with pytest.raises(ValueError, match="data_dir applies to tensorflow-datasets"):
    data.load("imagefolder", root=str(tmp_path), data_dir="/tmp")


def test_one_class_folder_is_rejected(tmp_path):
  for split in ("train", "test"):
    (tmp_path / split / "only").mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / split / "only" / "0.png")
  with pytest.raises(ValueError, match="one class folder"):
    data.load("imagefolder", root=str(tmp_path))


@pytest.mark.skipif(not SHARED_CIFAR10.is_dir(),
                    reason=f"shared CIFAR-10 image folder not found at {SHARED_CIFAR10}")
def test_shared_cifar10_folder():
  ds = data.load("imagefolder", root=str(SHARED_CIFAR10), max_train=200, max_test=2000, seed=0)
  assert ds.class_names == CIFAR10_CLASSES
  assert ds.input_shape == (32, 32, 3)
  assert ds.train.x.shape == (200, 32, 32, 3)
  assert np.bincount(ds.train.y).tolist() == [20] * 10
  assert ds.test.x.shape == (2000, 32, 32, 3)
  assert np.bincount(ds.test.y).tolist() == [200] * 10
  for k in np.linspace(0, 1999, 25).astype(int):
    path = ds.test.ids[k]
    assert os.path.basename(os.path.dirname(path)) == CIFAR10_CLASSES[ds.test.y[k]]
    np.testing.assert_array_equal(ds.test.x[k] * 255.0, _tf_decode_jpeg(path).astype(np.float32))
  for x, path in zip(ds.train.x[:10], ds.train.ids[:10]):
    np.testing.assert_array_equal(x * 255.0, _tf_decode_jpeg(path).astype(np.float32))
  assert 0.3 < float(ds.mean.mean()) < 0.6 and 0.15 < float(ds.std.mean()) < 0.35


def test_threaded_decoding_is_order_preserving(tmp_path, monkeypatch):
  from assljax.data import folder

  written = _write_tree(tmp_path, per_class=(7, 2), size=(3, 4))
  paths = sorted(written)
  monkeypatch.setattr(folder, "_CHUNK", 2)  # many small tasks
  serial = data.read_images(paths, num_workers=1)
  threaded = data.read_images(paths, num_workers=3)
  np.testing.assert_array_equal(serial, threaded)
  np.testing.assert_array_equal(threaded, np.stack([written[p] for p in paths]) / np.float32(255))
  for name in (paths[9], paths[3]):
    pathlib.Path(name).write_bytes(b"not an image")
  with pytest.raises(ValueError, match=f"cannot read image {re.escape(paths[3])}"):
    data.read_images(paths, num_workers=3)
