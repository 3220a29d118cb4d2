"""The Dataset/Split contract, its checks, stratified subsampling, and load()'s dispatch."""

import dataclasses

import numpy as np
import pytest

from assljax import data
from assljax.data import dataset as dataset_lib


def _arrays(n_train=12, n_test=6, shape=(3, 2, 2), classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((n_train, *shape), np.float32), np.arange(n_train) % classes,
          rng.random((n_test, *shape), np.float32), np.arange(n_test) % classes)


def test_from_arrays_builds_a_checked_dataset():
  xt, yt, xs, ys = _arrays()
  ds = data.from_arrays(xt, yt, xs, ys, name="toy", class_names=["a", "b", "c"])
  assert ds.name == "toy" and ds.kind == "image" and ds.num_classes == 3
  assert ds.input_shape == (3, 2, 2) and ds.class_names == ("a", "b", "c")
  assert ds.train.ids[4] == "toy/train/4" and ds.test.ids[0] == "toy/test/0"
  assert ds.train.y.dtype == np.int32 and ds.train.num_examples == 12
  ref = xt.astype(np.float64)
  np.testing.assert_allclose(ds.mean, ref.mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(ds.std, ref.std(axis=(0, 1, 2)), rtol=1e-5)
  assert ds.mean.dtype == np.float32 and ds.mean.shape == (2,)
  with pytest.raises(dataclasses.FrozenInstanceError):
    ds.name = "other"
  sub = ds.train.take([5, 1])
  np.testing.assert_array_equal(sub.x, xt[[5, 1]])
  assert sub.ids.tolist() == ["toy/train/5", "toy/train/1"]


def test_channel_statistics_chunked_matches_float64():
  rng = np.random.default_rng(3)
  x = rng.random((37, 4, 5, 3)).astype(np.float32) * np.array([1.0, 0.5, 0.01], np.float32)
  mean, std = data.channel_statistics(x, chunk=8)
  np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(std, x.astype(np.float64).std(axis=(0, 1, 2)), rtol=1e-5)
  _, std = data.channel_statistics(np.full((4, 2, 2, 1), 0.5, np.float32))
  assert std[0] == np.float32(1e-6)  # a constant channel is floored, not zero


@pytest.mark.parametrize("mutate, message", [
    (lambda a: (np.where(np.arange(12)[:, None, None, None] == 3, np.nan, a[0]), *a[1:]),
     "train inputs contain NaN"),
    (lambda a: (a[0] * 2.0, *a[1:]), r"must lie in \[0, 1\]"),
    (lambda a: (a[0] - 1.0, *a[1:]), r"must lie in \[0, 1\]"),
    (lambda a: (a[0], a[1], a[2][:, :2], a[3]), "must have shape"),
    (lambda a: (a[0], a[1], a[2][:0], a[3][:0]), "'arrays' test split is empty"),
    (lambda a: (a[0], a[1] + 5, a[2], a[3]), r"labels must lie in \[0, 3\)"),
    (lambda a: (a[0], a[1].astype(float), a[2], a[3]), "must be integers"),
    (lambda a: (a[0], a[1][:3], a[2], a[3]), r"labels must be int32 of shape \(12,\)"),
])
def test_from_arrays_rejects_bad_input(mutate, message):
  args = mutate(_arrays())
  with pytest.raises(ValueError, match=message):
    data.from_arrays(*args, class_names=["a", "b", "c"])


def test_dataset_rejects_inconsistent_fields():
  xt, yt, xs, ys = _arrays()
  ds = data.from_arrays(xt, yt, xs, ys, class_names=["a", "b", "c"])
  with pytest.raises(ValueError, match="kind must be one of"):
    dataclasses.replace(ds, kind="video")
  with pytest.raises(ValueError, match="one name per class"):
    dataclasses.replace(ds, class_names=("a", "b"))
  with pytest.raises(ValueError, match="duplicate class names"):
    dataclasses.replace(ds, class_names=("a", "a", "b"))
  with pytest.raises(ValueError, match="in both train and test"):
    dataclasses.replace(ds, test=ds.test._replace(ids=ds.train.ids[:6]))
  with pytest.raises(ValueError, match="duplicate sample ids"):
    dataclasses.replace(ds, train=ds.train._replace(ids=np.array(["x"] * 12)))
  with pytest.raises(ValueError, match="float32 numpy array"):
    dataclasses.replace(ds, train=ds.train._replace(x=ds.train.x.astype(np.float64)))
  with pytest.raises(ValueError, match=r"mean must be a float32 array of shape \(2,\)"):
    dataclasses.replace(ds, mean=np.zeros(3, np.float32))


def test_stratified_indices_quotas_and_determinism():
  y = np.repeat(np.arange(4), [50, 30, 15, 5])  # unbalanced
  rng = dataset_lib.subsample_rng(0, "train")
  idx = data.stratified_indices(y, 20, rng)
  assert idx.shape == (20,) and np.all(np.diff(idx) > 0)
  assert np.bincount(y[idx], minlength=4).tolist() == [10, 6, 3, 1]  # exact proportions
  again = data.stratified_indices(y, 20, dataset_lib.subsample_rng(0, "train"))
  np.testing.assert_array_equal(idx, again)
  other = data.stratified_indices(y, 20, dataset_lib.subsample_rng(1, "train"))
  assert not np.array_equal(idx, other)
  # largest remainder: 7 of (50, 30, 15, 5) -> exact (3.5, 2.1, 1.05, .35) -> (4, 2, 1, 0)
  counts = np.bincount(y[data.stratified_indices(y, 7, rng)], minlength=4)
  assert counts.tolist() == [4, 2, 1, 0]
  np.testing.assert_array_equal(data.stratified_indices(y, 1000, rng), np.arange(100))
  # brute force: every class sampled uniformly -> each member is chosen ~ quota / size
  hits = np.zeros(100)
  for s in range(300):
    hits[data.stratified_indices(y, 20, dataset_lib.subsample_rng(s, "t"))] += 1
  np.testing.assert_allclose(hits[:50].mean(), 300 * 10 / 50)
  assert hits[:50].min() > 20 and hits[:50].max() < 105


def test_load_dispatch_errors():
  assert set(data.available()) == {"digits", "cifar10", "cifar100", "svhn_cropped", "mnist",
                                   "fashion_mnist", "speech_commands", "spoken_digit",
                                   "imagefolder", "audiofolder"}
  with pytest.raises(ValueError, match="unknown dataset 'imagenet'; available: digits"):
    data.load("imagenet")
  for bad in (0, -3, 1.5, True, "10"):
    with pytest.raises(ValueError, match="max_train must be a positive integer or None"):
      data.load("digits", max_train=bad)
    with pytest.raises(ValueError, match="max_test must be a positive integer or None"):
      data.load("digits", max_test=bad)
  with pytest.raises(ValueError, match="seed must be an integer"):
    data.load("digits", seed=0.5)
  with pytest.raises(ValueError, match="unknown option.*root for dataset 'digits'; it accepts:"
                                       " test_fraction"):
    data.load("digits", root="/tmp")
  with pytest.raises(ValueError, match="data_dir applies to tensorflow-datasets sources"):
    data.load("digits", data_dir="/tmp")
