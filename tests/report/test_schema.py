"""assljax.report.schema: RoundRecord, loading, validation, and the docs table."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest
from report_toy import toy_records, write_results

from assljax import report
from assljax.report import schema


def test_load_records_dirs_and_files_concatenate(tmp_path):
  records = toy_records()
  a = write_results(tmp_path / "a", [r for r in records if r["label"] != "margin"])
  b = write_results(tmp_path / "b", [r for r in records if r["label"] == "margin"])
  loaded = report.load_records([a, b / "results.json"])
  assert len(loaded) == len(records)
  assert report.load_records(str(a)) == [r for r in records if r["label"] != "margin"]
  got = report.summarize(loaded)
  want = report.summarize(records)
  assert got["curves"] == want["curves"] and got["iou"]["num_seeds"] == want["iou"]["num_seeds"]
  assert got["labels"] == ["random", "npc (zero-shot)", "margin"]
  perm = [0, 2, 1]
  np.testing.assert_allclose(got["iou"]["matrix"],
                             np.array(want["iou"]["matrix"])[perm][:, perm])


def _bad(tmp_path, mutate):
  records = toy_records()
  mutate(records)
  return write_results(tmp_path / "bad", records)


@pytest.mark.parametrize("mutate, message", [
  (lambda rs: rs[3].pop("test_accuracy"), r"record 3 is missing field 'test_accuracy'"),
  (lambda rs: rs[0].update(seed="0"), r"record 0: field 'seed' must be an int"),
  (lambda rs: rs[0].update(seed=True), r"field 'seed' must be an int"),
  (lambda rs: rs[1].update(test_accuracy=61.0), r"'test_accuracy' must be a fraction in \[0, 1\]"),
  (lambda rs: rs[1].update(queried_indices=[1, "2"]), r"'queried_indices' must be a list of ints"),
  (lambda rs: rs[2].update(labeled_class_histogram=[9, 0, 0, 0]), r"sums to 9, but 'num_labels'"),
  (lambda rs: rs[2].update(class_names=["a"]), r"'class_names' has length 1"),
  (lambda rs: rs[5].update(dataset="other"), r"report one dataset at a time"),
  (lambda rs: rs[5].update(strategy="badge"), r"label 'random' names strategy 'badge'"),
  (lambda rs: rs[1].update(queried_indices=[0, 7]), r"queries pool index 0 in rounds 0 and 1"),
])
def test_bad_fields_name_file_and_problem(tmp_path, mutate, message):
  path = _bad(tmp_path, mutate)
  with pytest.raises(ValueError, match=message) as info:
    report.load_records([path])
  if "record" in message:
    assert str(path / "results.json") in str(info.value)


def test_bad_files(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    report.load_records([tmp_path / "nowhere"])
  (tmp_path / "empty_dir").mkdir()
  with pytest.raises(ValueError, match="has no results.json"):
    report.load_records([tmp_path / "empty_dir"])
  bad = tmp_path / "broken.json"
  bad.write_text("[{'not': json}")
  with pytest.raises(ValueError, match="broken.json is not valid JSON"):
    report.load_records(bad)
  bad.write_text('{"records": []}')
  with pytest.raises(ValueError, match="must hold a JSON list of records, got dict"):
    report.load_records(bad)
  bad.write_text("[]")
  with pytest.raises(ValueError, match="holds no records"):
    report.load_records(bad)
  with pytest.raises(ValueError, match="at least one"):
    report.load_records([])
  run = write_results(tmp_path / "run", toy_records())
  with pytest.raises(ValueError, match=r"round 0 appears twice .*pass each workdir once"):
    report.load_records([run, run])
  with pytest.raises(ValueError, match="records is empty"):
    report.summarize([])
  with pytest.raises(ValueError, match="record 0 must be a JSON object"):
    report.summarize([1])
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="not a directory"):
    report.write_report(toy_records(), tmp_path / "file")


# ------------------------------------------------------------------------- RoundRecord


def test_docs_table_is_the_dataclass():
  # docs/results_schema.md shows exactly the fields, types and meanings of RoundRecord.
  docs = pathlib.Path(__file__).parents[2] / "docs" / "results_schema.md"
  lines = docs.read_text(encoding="utf-8").splitlines()
  start = lines.index("| field | type | meaning |")
  end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
  table = "\n".join(lines[start:end]) + "\n"
  assert table == schema.markdown_table(), (
      "docs/results_schema.md is out of date; paste assljax.report.schema.markdown_table():\n"
      + schema.markdown_table())
  assert schema.FIELDS[:4] == ("experiment", "dataset", "strategy", "label")
  assert "| `per_class_accuracy` | list[float] | length C |" in table


def test_round_record_is_validated_once_and_immutable():
  raw = toy_records()[1]
  record = report.RoundRecord.from_mapping(raw, where="here")
  assert record.seed == 0 and record.round == 1 and record.num_labels == 6
  assert record.queried_indices == (2, 3) and record.class_names == tuple(raw["class_names"])
  assert record.as_dict() == raw
  with pytest.raises(dataclasses.FrozenInstanceError):
    record.seed = 3
  # Numbers of float fields become floats; int stays int.
  as_int = report.RoundRecord.from_mapping(dict(raw, training_seconds=3, test_accuracy=1))
  assert isinstance(as_int.training_seconds, float) and isinstance(as_int.test_accuracy, float)
  # Building one directly validates too, and names it.
  fields = {name: raw[name] for name in schema.FIELDS}
  with pytest.raises(ValueError, match=r"RoundRecord: field 'seed' must be an int"):
    report.RoundRecord(**dict(fields, seed=1.0))
  with pytest.raises(ValueError, match=r"here: field 'num_classes' must be >= 1"):
    report.RoundRecord.from_mapping(dict(raw, num_classes=0), where="here")
  # Extra fields are ignored.
  assert report.RoundRecord.from_mapping(dict(raw, note="x")) == record


def test_round_records_and_dicts_summarize_alike(tmp_path):
  records = toy_records()
  run = write_results(tmp_path / "run", records)
  loaded = report.load_round_records(run)
  assert all(isinstance(r, report.RoundRecord) for r in loaded)
  assert [r.as_dict() for r in loaded] == records
  assert report.summarize(loaded) == report.summarize(records)
  assert report.paired_comparison(loaded) == report.paired_comparison(records)
  # Valid records can still contradict each other.
  with pytest.raises(ValueError, match=r"round 0 appears twice \(record 0 and record 8\)"):
    report.summarize(loaded[:1] + loaded[1:8] + loaded[:1])
