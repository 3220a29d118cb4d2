"""The embedded default dataset: scikit-learn's bundled 8×8 handwritten digits.

No download and no TensorFlow: 1,797 grayscale images of the digits 0-9 (16 intensity
levels), split into train/test with a stratified, seeded draw (1,437 / 360 for the
default ``test_fraction=0.2``). ``x = pixels / 16`` as ``(n, 8, 8, 1)`` float32;
ids are ``"digits/<split>/<index>"`` with ``index`` the row of ``sklearn.datasets.load_digits``,
so a sample keeps its id whatever the seed or subsample.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np

from assljax._optional import require
from assljax._validation import UserInputError
from assljax.data.dataset import Dataset, Split, stratified_indices, subsample_rng, subsample_split


def load_digits(*, seed: int = 0, max_train: int | None = None, max_test: int | None = None,
                test_fraction: float = 0.2) -> Dataset:
  """The 8×8 digits, split train/test with ``seed``.

  Args:
    seed: drives the stratified train/test split and any subsampling.
    max_train, max_test: optional stratified subsample sizes.
    test_fraction: share of the 1,797 images held out for test (rounded up: 0.2 -> 360).

  Returns:
    A :class:`Dataset` with ``x`` ``(n, 8, 8, 1)`` float32 in [0, 1], 10 classes.
  """
  if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
    raise UserInputError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}.")
  images, target = _digits_arrays()
  x = (images.astype(np.float32) / 16.0)[..., None]
  y = target.astype(np.int32)
  ids = np.arange(y.shape[0])
  n_test = math.ceil(test_fraction * y.shape[0])
  if not 1 <= n_test < y.shape[0]:
    raise UserInputError(f"test_fraction={test_fraction} leaves an empty split of {y.shape[0]} "
                         "digits.")
  test_idx = stratified_indices(y, n_test, subsample_rng(seed, "split"))
  train_idx = np.setdiff1d(ids, test_idx)
  splits = {}
  for split_name, idx in (("train", train_idx), ("test", test_idx)):
    names = np.array([f"digits/{split_name}/{i}" for i in idx])
    splits[split_name] = Split(x[idx], y[idx], names)
  train = subsample_split(splits["train"], max_train, seed=seed, purpose="train")
  test = subsample_split(splits["test"], max_test, seed=seed, purpose="test")
  return Dataset.from_splits("digits", kind="image", train=train, test=test,
                             class_names=[str(c) for c in range(10)])


_ROWS, _COLUMNS = 1797, 8 * 8 + 1  # the bundled CSV: 64 pixel levels, then the label


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
  """``sklearn.datasets.load_digits()``'s ``images`` ``(1797, 8, 8)`` and ``target``.

  Read straight from the CSV that scikit-learn bundles (the file its ``load_digits``
  parses the same way) when it is where scikit-learn keeps it: importing
  ``sklearn.datasets`` costs 1.5-2 s in every process that loads the digits. Anywhere
  else (or without scikit-learn) this is ``load_digits()`` itself.
  """
  spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
  if spec is not None and spec.submodule_search_locations:
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data",
                        "digits.csv.gz")
    if os.path.isfile(path):
      table = np.loadtxt(path, delimiter=",")
      if table.shape == (_ROWS, _COLUMNS):
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
  bunch = require("sklearn.datasets").load_digits()  # heavy, optional at import time
  return bunch.images, bunch.target
