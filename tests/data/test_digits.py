"""The embedded default: scikit-learn's 8×8 digits, split with a seed."""

import numpy as np
import pytest

from assljax import data


@pytest.fixture(scope="module")
def reference():
  from sklearn.datasets import load_digits
  bunch = load_digits()
  return bunch.images, bunch.target


def _rows(ids):
  return np.array([int(i.rsplit("/", 1)[1]) for i in ids])


def test_digits_split_matches_sklearn(reference):
  images, target = reference
  ds = data.load("digits", seed=0)
  assert ds.name == "digits" and ds.kind == "image" and ds.num_classes == 10
  assert ds.class_names == tuple("0123456789") and ds.input_shape == (8, 8, 1)
  assert ds.train.x.shape == (1437, 8, 8, 1) and ds.test.x.shape == (360, 8, 8, 1)
  assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int32
  assert ds.train.ids[0].startswith("digits/train/") and ds.test.ids[0].startswith("digits/test/")
  train_rows, test_rows = _rows(ds.train.ids), _rows(ds.test.ids)
  assert np.intersect1d(train_rows, test_rows).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train_rows, test_rows])), np.arange(1797))
  np.testing.assert_array_equal(ds.train.x[..., 0], images[train_rows] / np.float32(16))
  np.testing.assert_array_equal(ds.test.y, target[test_rows])
  assert 0.0 <= ds.train.x.min() and ds.train.x.max() == 1.0
  # stratified: every class holds 20% of its samples in test, to within rounding
  expected = 0.2 * np.bincount(target)
  assert np.all(np.abs(np.bincount(ds.test.y) - expected) < 1.0)
  x64 = images[train_rows].astype(np.float64) / 16
  np.testing.assert_allclose(ds.mean, [x64.mean()], rtol=1e-6)
  np.testing.assert_allclose(ds.std, [x64.std()], rtol=1e-6)


def test_bundled_csv_is_read_as_load_digits_reads_it(reference, monkeypatch):
  from assljax.data import digits

  images, target = digits._digits_arrays()       # the CSV, without importing sklearn
  np.testing.assert_array_equal(images, reference[0])
  np.testing.assert_array_equal(target, reference[1])
  assert images.dtype == reference[0].dtype and images.shape == (1797, 8, 8)
  # where scikit-learn keeps no such file: its load_digits, the same arrays
  monkeypatch.setattr(digits.os.path, "isfile", lambda path: False)
  fallback = digits._digits_arrays()
  np.testing.assert_array_equal(fallback[0], reference[0])
  np.testing.assert_array_equal(fallback[1], reference[1])


def test_digits_determinism_and_subsampling():
  a, b, c = (data.load("digits", seed=s) for s in (4, 4, 5))
  np.testing.assert_array_equal(a.test.ids, b.test.ids)
  np.testing.assert_array_equal(a.train.x, b.train.x)
  assert not np.array_equal(a.test.ids, c.test.ids)
  small = data.load("digits", seed=4, max_train=50, max_test=20)
  assert small.train.x.shape == (50, 8, 8, 1) and small.test.x.shape == (20, 8, 8, 1)
  assert np.bincount(small.train.y).tolist() == [5] * 10
  assert np.bincount(small.test.y).tolist() == [2] * 10
  assert set(small.train.ids) <= set(a.train.ids) and set(small.test.ids) <= set(a.test.ids)
  half = data.load("digits", test_fraction=0.5)
  assert half.test.x.shape[0] == 899
  for bad in (0.0, 1.0, -0.1, "0.2"):
    with pytest.raises(ValueError, match="test_fraction"):
      data.load("digits", test_fraction=bad)
