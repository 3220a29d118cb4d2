"""Oracles: the simulated one, and the human CSV round trip with strict validation."""

import numpy as np
import pytest
from matplotlib import image as mpimg

from assljax.loop import oracle

CLASSES = ("cat", "dog", "bird")


def test_simulated_oracle_returns_ground_truth():
  truth = np.array([2, 0, 1, 1])
  np.testing.assert_array_equal(oracle.SimulatedOracle(truth)(np.array([3, 0])), [1, 2])


def test_query_csv_round_trip_accepts_indices_and_names(tmp_path):
  path = oracle.write_queries(tmp_path / "q.csv", [5, 9, 2], ["a.png", "b.png", "c.png"])
  text = open(path).read().splitlines()
  assert text[0] == "sample_id,source,label" and text[1] == "5,a.png,"
  filled = "\n".join(["sample_id,source,label", "5,a.png,dog", "9,b.png,2", "2,c.png, cat "])
  (tmp_path / "filled.csv").write_text(filled + "\n")
  assert oracle.read_labels(tmp_path / "filled.csv", [5, 9, 2], CLASSES) == {5: 1, 9: 2, 2: 0}


@pytest.mark.parametrize("body, message", [
    ("sample_id,label\n5,0\n9,1\n2,1\n7,0\n", r":5: sample_id 7 is not a pending query"),
    ("sample_id,label\n5,0\n5,1\n", r":3: sample_id 5 is labeled twice"),
    ("sample_id,label\n5,3\n", r":2: label 3 is out of range \[0, 3\)"),
    ("sample_id,label\n5,-1\n", r":2: label -1 is out of range"),
    ("sample_id,label\n5,horse\n", r":2: label 'horse' is neither a class index"),
    ("sample_id,label\nfive,0\n", r":2: sample_id 'five' is not an integer"),
    ("id,label\n5,0\n", r"missing sample_id"),
    ("sample_id,label\n5,0\n9,1\n", r"1 pending queries have no label: 2"),
    ("", r"missing sample_id, label"),
])
def test_bad_label_files_are_rejected_naming_the_line(tmp_path, body, message):
  (tmp_path / "l.csv").write_text(body)
  with pytest.raises(ValueError, match=message):
    oracle.read_labels(tmp_path / "l.csv", [5, 9, 2], CLASSES)


def test_label_file_is_never_evaluated(tmp_path):
  (tmp_path / "l.csv").write_text('sample_id,label\n5,__import__("os").getcwd()\n')
  with pytest.raises(ValueError, match="neither a class index"):
    oracle.read_labels(tmp_path / "l.csv", [5], CLASSES)


def test_missing_and_binary_label_files(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    oracle.read_labels(tmp_path / "none.csv", [1], CLASSES)
  (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00\x01binary")
  with pytest.raises(ValueError, match="UTF-8"):
    oracle.read_labels(tmp_path / "b.csv", [1], CLASSES)


def test_contact_sheet_shows_the_images(tmp_path):
  images = np.zeros((3, 8, 8, 1), np.float32)
  images[1] = 1.0
  path = oracle.write_contact_sheet(tmp_path / "sheet.png", images, [4, 7, 9])
  pixels = mpimg.imread(path)
  assert pixels.shape[0] > 50 and pixels.std() > 0.05
