"""The ``results.json`` record: one frozen dataclass, validated once, and its loaders.

``RoundRecord`` is the single description of a record of ``assljax run`` (one strategy,
seed and round): its fields, their types and meanings. ``docs/results_schema.md`` shows
the table :func:`markdown_table` generates from it (a test keeps the two identical).

    records = load_round_records(["runs/npc", "runs/random"])   # list[RoundRecord]
    dicts = load_records("runs/npc")                            # the validated JSON dicts
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import InitVar
from typing import Any

from assljax._validation import UserInputError


def _field(meaning: str):
  return dataclasses.field(metadata={"meaning": meaning})


@dataclasses.dataclass(frozen=True)
class RoundRecord:
  """One record of ``results.json``: the outcome of one (strategy, seed, round).

  Constructing one validates it (types, ranges, lengths against ``num_classes``) and
  raises ``ValueError`` naming ``where`` and the problem; numbers in float fields become
  floats and lists become tuples, so a record is immutable. Fields a results file has
  beyond these are ignored. ``C`` is ``num_classes``.
  """

  experiment: str = _field('config name (e.g. `"npc_cifar10"`, `"demo"`)')
  dataset: str = _field("dataset name")
  strategy: str = _field('acquisition strategy registry name (e.g. `"npc"`, `"random"`)')
  label: str = _field("legend label; `strategy` unless the config names variants "
                      '(e.g. `"npc (zero-shot)"`)')
  seed: int = _field("seed of this run")
  round: int = _field("0, 1, ...")
  num_labels: int = _field("labeled samples used for training in this round")
  test_accuracy: float = _field("EMA-model accuracy on the test split, in [0, 1]")
  per_class_accuracy: tuple[float, ...] = _field("length C")
  labeled_class_histogram: tuple[int, ...] = _field(
      "length C, labels per class in the training set of this round")
  queried_indices: tuple[int, ...] = _field("pool indices acquired after this round's "
                                            "evaluation")
  acquisition_seconds: float = _field("wall time of the acquisition (0.0 when none)")
  training_seconds: float = _field("wall time of this round's training")
  num_classes: int = _field("C")
  class_names: tuple[str, ...] = _field("length C")
  where: InitVar[str] = "RoundRecord"

  def __post_init__(self, where: str) -> None:
    for f in dataclasses.fields(self):
      kind = _KINDS[f.name]
      value = getattr(self, f.name)
      if kind in ("str", "int", "float"):
        ok = _CHECKS[kind](value)
      else:
        ok = isinstance(value, (list, tuple)) and all(_CHECKS[kind[5:-1]](v) for v in value)
      if not ok:
        raise UserInputError(f"{where}: field {f.name!r} must be {_EXPECTED[kind]}, "
                             f"got {value!r:.80}.")
      if kind == "float":
        object.__setattr__(self, f.name, float(value))
      elif kind.startswith("list"):
        object.__setattr__(self, f.name, tuple(float(v) if kind == "list[float]" else v
                                               for v in value))
    self._check_values(where)

  def _check_values(self, where: str) -> None:
    if self.label == "":
      raise UserInputError(f"{where}: field 'label' must not be empty.")
    for name in ("round", "num_labels"):
      if getattr(self, name) < 0:
        raise UserInputError(f"{where}: field {name!r} must be >= 0, got {getattr(self, name)}.")
    if self.num_classes < 1:
      raise UserInputError(f"{where}: field 'num_classes' must be >= 1, got {self.num_classes}.")
    accuracy = self.test_accuracy
    if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
      raise UserInputError(f"{where}: field 'test_accuracy' must be a fraction in [0, 1], "
                           f"got {accuracy}.")
    for name in ("acquisition_seconds", "training_seconds"):
      value = getattr(self, name)
      if not (math.isfinite(value) and value >= 0.0):
        raise UserInputError(f"{where}: field {name!r} must be finite and >= 0, got {value}.")
    for name in ("per_class_accuracy", "labeled_class_histogram", "class_names"):
      if len(getattr(self, name)) != self.num_classes:
        raise UserInputError(f"{where}: field {name!r} has length {len(getattr(self, name))}, "
                             f"expected num_classes = {self.num_classes}.")
    histogram = self.labeled_class_histogram
    if min(histogram) < 0:
      raise UserInputError(f"{where}: field 'labeled_class_histogram' has a negative count.")
    if sum(histogram) != self.num_labels:
      raise UserInputError(f"{where}: field 'labeled_class_histogram' sums to {sum(histogram)}, "
                           f"but 'num_labels' is {self.num_labels}.")
    queried = self.queried_indices
    if queried and min(queried) < 0:
      raise UserInputError(f"{where}: field 'queried_indices' has a negative index.")
    if len(set(queried)) != len(queried):
      raise UserInputError(f"{where}: field 'queried_indices' repeats an index.")

  @classmethod
  def from_mapping(cls, record: Any, *, where: str = "record") -> RoundRecord:
    """Validates a JSON object (dict) and returns it as a record.

    Args:
      record: a mapping with at least the fields of :class:`RoundRecord`.
      where: how error messages name the record (e.g. ``"runs/x/results.json, record 3"``).

    Raises:
      ValueError: naming ``where`` when ``record`` is not a mapping, misses a field, or a
        field has the wrong type or value.
    """
    if not isinstance(record, Mapping):
      raise UserInputError(f"{where} must be a JSON object, got {type(record).__name__}.")
    for name in FIELDS:
      if name not in record:
        raise UserInputError(f"{where} is missing field {name!r}.")
    return cls(**{name: record[name] for name in FIELDS}, where=where)

  def as_dict(self) -> dict:
    """The record as a JSON-ready dict (lists for the list fields)."""
    return {name: list(v) if isinstance(v, tuple) else v
            for name, v in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))}


def _kind(annotation: Any) -> str:
  """The schema type of an annotation: str, int, float or list[...] of one of them."""
  if typing.get_origin(annotation) is tuple:
    element, _ = typing.get_args(annotation)
    return f"list[{element.__name__}]"
  return annotation.__name__


_HINTS = typing.get_type_hints(RoundRecord)
# field name -> schema type ("int", "list[float]", ...), in the order of the dataclass.
_KINDS = {f.name: _kind(_HINTS[f.name]) for f in dataclasses.fields(RoundRecord)}
FIELDS: tuple[str, ...] = tuple(_KINDS)
_CHECKS = {
  "str": lambda v: isinstance(v, str),
  "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
  "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
_EXPECTED = {"str": "a string", "int": "an int", "float": "a number",
             "list[float]": "a list of numbers", "list[int]": "a list of ints",
             "list[str]": "a list of strings"}


def markdown_table() -> str:
  """The field table of ``docs/results_schema.md``, generated from :class:`RoundRecord`."""
  lines = ["| field | type | meaning |", "| --- | --- | --- |"]
  for f in dataclasses.fields(RoundRecord):
    lines.append(f"| `{f.name}` | {_KINDS[f.name]} | {f.metadata['meaning']} |")
  return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ collections


def check_collection(records: Sequence[RoundRecord], sources: Sequence[str]) -> None:
  """Cross-record checks: one dataset and class list, unique runs and rounds.

  Raises:
    ValueError: naming the two sources that contradict each other.
  """
  first = records[0]
  for record, source in zip(records, sources):
    for name in ("dataset", "num_classes", "class_names"):
      value, expected = getattr(record, name), getattr(first, name)
      if value != expected:
        if isinstance(value, tuple):   # name them as JSON lists, as the file has them
          value, expected = list(value), list(expected)
        raise UserInputError(f"{source} has {name} {value!r:.60} but {sources[0]} has "
                             f"{expected!r:.60}; report one dataset at a time.")
  strategy_of: dict[str, tuple[str, str]] = {}
  round_seen: dict[tuple, str] = {}
  count_seen: dict[tuple, tuple[int, str]] = {}
  queried_seen: dict[tuple, dict[int, int]] = {}
  for record, source in zip(records, sources):
    label, seed, rnd = record.label, record.seed, record.round
    strategy, where = strategy_of.setdefault(label, (record.strategy, source))
    if strategy != record.strategy:
      raise UserInputError(f"label {label!r} names strategy {record.strategy!r} in {source} "
                           f"but {strategy!r} in {where}; give each variant its own label.")
    key = (label, seed, rnd)
    if key in round_seen:
      raise UserInputError(f"label {label!r}, seed {seed}, round {rnd} appears twice "
                           f"({round_seen[key]} and {source}); pass each workdir once.")
    round_seen[key] = source
    count_key = (label, seed, record.num_labels)
    if count_key in count_seen:
      other_round, other = count_seen[count_key]
      raise UserInputError(f"label {label!r}, seed {seed} reports {record.num_labels} labels in "
                           f"two rounds ({other_round} in {other} and {rnd} in {source}).")
    count_seen[count_key] = (rnd, source)
    run = queried_seen.setdefault((label, seed), {})
    for index in record.queried_indices:
      if index in run:
        raise UserInputError(f"label {label!r}, seed {seed} queries pool index {index} in rounds "
                             f"{run[index]} and {rnd} ({source}).")
      run[index] = rnd


def as_round_records(records: Any) -> list[RoundRecord]:
  """Validates a list of records (dicts or :class:`RoundRecord`) as one collection.

  ``RoundRecord`` items were validated when built and are taken as they are; dicts are
  validated here. Then :func:`check_collection` runs over all of them.

  Raises:
    ValueError: when ``records`` is not a non-empty list, a record is invalid, or the
      records contradict each other.
  """
  if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
    raise UserInputError(f"records must be a list of result records, got {type(records).__name__}.")
  if not records:
    raise UserInputError("records is empty; there is nothing to report.")
  out = [r if isinstance(r, RoundRecord) else RoundRecord.from_mapping(r, where=f"record {i}")
         for i, r in enumerate(records)]
  check_collection(out, [f"record {i}" for i in range(len(out))])
  return out


# ----------------------------------------------------------------------------- loading


def _read(paths: Any) -> tuple[list[dict], list[RoundRecord]]:
  """The raw dicts and the validated records of ``paths`` (see :func:`load_records`)."""
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  if isinstance(paths, bytes) or not isinstance(paths, Sequence) or not paths:
    raise UserInputError("load_records needs at least one workdir or results.json path.")
  raw_records: list[dict] = []
  records: list[RoundRecord] = []
  sources: list[str] = []
  for raw in paths:
    if not isinstance(raw, (str, os.PathLike)):
      raise UserInputError(f"paths must be strings or path-likes, got {type(raw).__name__}.")
    path = pathlib.Path(raw)
    if path.is_dir():
      file = path / "results.json"
      if not file.is_file():
        raise UserInputError(f"{path} has no results.json (expected a workdir written by "
                             "`assljax run` or a results.json file).")
    elif path.is_file():
      file = path
    else:
      raise UserInputError(f"{path} does not exist.")
    try:
      data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise UserInputError(f"{file} is not valid JSON ({e}).") from None
    if not isinstance(data, list):
      raise UserInputError(f"{file} must hold a JSON list of records, got {type(data).__name__}.")
    if not data:
      raise UserInputError(f"{file} holds no records.")
    for i, record in enumerate(data):
      where = f"{file}, record {i}"
      records.append(RoundRecord.from_mapping(record, where=where))
      raw_records.append(record)
      sources.append(where)
  check_collection(records, sources)
  return raw_records, records


def load_records(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[dict]:
  """Loads and validates the records of one or more runs, concatenated in order.

  Args:
    paths: a workdir containing ``results.json``, a ``results.json`` file, or a list of
      either. Records keep the order of ``paths`` and of each file.

  Returns:
    The records as read, a list of dicts with (at least) the fields of
    ``docs/results_schema.md``. :func:`load_round_records` returns them as
    :class:`RoundRecord` instead, which the report functions take without validating again.

  Raises:
    ValueError: naming the file and the problem when a path is missing, a file is not
      JSON or not a list of records, a field is missing or has the wrong type or value,
      or the records contradict each other (two datasets, the same round twice).
  """
  return _read(paths)[0]


def load_round_records(paths: str | os.PathLike | Sequence[str | os.PathLike]
                       ) -> list[RoundRecord]:
  """Like :func:`load_records`, but returns validated :class:`RoundRecord` instances."""
  return _read(paths)[1]

