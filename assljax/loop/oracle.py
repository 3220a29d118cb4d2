"""Oracles answer label queries: simulated from ground truth, or a human through CSV files.

The human round trip:

    assljax run ... (oracle="human")      # acquires, writes DIR/queries/round_R.csv, stops
    assljax query --workdir DIR           # (re)writes the CSV and a PNG contact sheet
    # a person fills in the `label` column (class index or class name)
    assljax label --workdir DIR --labels round_R.csv
    assljax run --workdir DIR --resume    # ingests the labels and continues

A label file is data only: it is parsed with :mod:`csv`, never evaluated, and rejected
whole (naming the offending line) if any row is wrong, so a bad file never changes state.

With a labeling tool instead of a spreadsheet, ``assljax query --format label-studio``
writes a Label Studio import and ``assljax label`` accepts the tool's JSON export
(:mod:`assljax.loop.label_studio`; :func:`store_labels` tells the two formats apart).
"""

from __future__ import annotations

import csv
import enum
import os
import shutil
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from assljax._optional import require
from assljax._validation import UserInputError

QUERY_COLUMNS = ("sample_id", "source", "label")


class OracleKind(enum.StrEnum):
  """The oracles a run can name: ground truth, or a person through files."""
  SIMULATED = "simulated"
  HUMAN = "human"


class Oracle(Protocol):
  """Answers the queries of a round, or says that they are not answered yet."""

  def answer(self, round_index: int, pending: Sequence[int]) -> np.ndarray | None:
    """Labels ``(q,)`` int32 of the pool indices ``pending`` ``(q,)`` queried in round
    ``round_index``; None while they are not labeled (the run stops, to resume later)."""


class SimulatedOracle:
  """Answers queries with the ground-truth labels of the pool.

  Args:
    labels: ``(N,)`` int ground-truth labels of the pool.
  """

  def __init__(self, labels: np.ndarray):
    self._labels = np.asarray(labels, dtype=np.int32)

  def __call__(self, indices: np.ndarray) -> np.ndarray:
    """Labels ``(q,)`` int32 of pool ``indices`` ``(q,)``."""
    return self._labels[np.asarray(indices)]

  def answer(self, round_index: int, pending: Sequence[int]) -> np.ndarray:
    del round_index
    return self(np.asarray(pending))


class CsvOracle:
  """A person labels each round's queries through files in the run's directory.

  The first :meth:`answer` of a round writes the queries (:func:`export_queries`) and
  returns None: the run stops. Once ``assljax label`` has stored the validated answers
  in :func:`labels_path`, ``assljax run --resume`` asks again and gets them.

  Args:
    workdir: the run's directory.
    dataset: the run's dataset (pool sample ids, class names, images or audio).
    log: where the line naming the query file goes.
  """

  def __init__(self, workdir: str, dataset: Any, *, log: Callable[[str], None] = print):
    self.workdir, self.dataset, self.log = workdir, dataset, log

  def answer(self, round_index: int, pending: Sequence[int]) -> np.ndarray | None:
    path = labels_path(self.workdir, round_index)
    if not os.path.isfile(path):
      written = export_queries(self.workdir, round_index, list(pending), self.dataset)
      self.log(f"round {round_index}: {len(pending)} queries await labels: {written[0]} "
               f"(fill in the label column, then `assljax label` and `assljax run --resume`)")
      return None
    by_id = read_labels(path, pending, self.dataset.class_names)
    return np.asarray([by_id[i] for i in pending], np.int32)


def labels_path(workdir: str, round_index: int) -> str:
  """Where `assljax label` stores validated human labels for a round."""
  return os.path.join(workdir, "labels", f"round_{round_index}.csv")


def queries_path(workdir: str, round_index: int, suffix: str = ".csv") -> str:
  """Where the queries of a round are written for a person (``suffix``: the file kind)."""
  return os.path.join(workdir, "queries", f"round_{round_index}{suffix}")


def export_queries(workdir: str, round_index: int, pending: list[int], dataset: Any) -> list:
  """Writes the pending queries of a round as CSV, a PNG contact sheet and audio files;
  returns the paths written, the CSV first."""
  sources = [str(dataset.train.ids[i]) for i in pending]
  written = [write_queries(queries_path(workdir, round_index), pending, sources)]
  written.append(write_contact_sheet(
      queries_path(workdir, round_index, ".png"), dataset.train.x[np.asarray(pending)], pending))
  if dataset.kind == "audio":
    written += copy_audio_sources(queries_path(workdir, round_index, "_audio"), pending, sources)
  return written


def write_queries(path: str | os.PathLike, indices: Sequence[int], sources: Sequence[str]) -> str:
  """Writes pending queries as CSV (``sample_id,source,label`` with the label blank).

  Args:
    path: the CSV file to write (parent directories are created).
    indices: ``(q,)`` pool indices being asked about; they are the sample ids.
    sources: ``(q,)`` where each sample came from (file path, or dataset/split/index).
  """
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(QUERY_COLUMNS)
    for index, source in zip(indices, sources):
      writer.writerow([int(index), source, ""])
  os.replace(tmp, path)
  return path


def read_labels(path: str | os.PathLike, pending: Sequence[int],
                class_names: Sequence[str]) -> dict[int, int]:
  """Parses and validates a label CSV for the pending queries.

  The file needs a header with ``sample_id`` and ``label`` columns (others are ignored);
  a label is a class index or a class name. Every pending id must be labeled exactly once.

  Returns:
    ``{sample_id: label}`` for exactly the pending ids.

  Raises:
    ValueError: naming the file and line of the first problem (unknown id, duplicate,
      label out of range or unknown name, missing column, missing labels).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserInputError(f"label file {path} does not exist")
  pending_set = {int(i) for i in pending}
  by_name = {name: i for i, name in enumerate(class_names)}
  num_classes = len(class_names)
  answers: dict[int, int] = {}
  try:
    with open(path, newline="", encoding="utf-8") as f:
      reader = csv.DictReader(f)
      header = reader.fieldnames or []
      missing = [c for c in ("sample_id", "label") if c not in header]
      if missing:
        raise UserInputError(f"{path}: header must have columns sample_id and label; "
                             f"missing {', '.join(missing)}")
      for row in reader:
        line = reader.line_num
        raw_id, raw_label = (row.get("sample_id") or "").strip(), (row.get("label") or "").strip()
        try:
          sample_id = int(raw_id)
        except ValueError:
          raise UserInputError(f"{path}:{line}: sample_id {raw_id!r} is not an integer") from None
        if sample_id not in pending_set:
          raise UserInputError(f"{path}:{line}: sample_id {sample_id} is not a pending query")
        if sample_id in answers:
          raise UserInputError(f"{path}:{line}: sample_id {sample_id} is labeled twice")
        if raw_label in by_name:
          label = by_name[raw_label]
        else:
          try:
            label = int(raw_label)
          except ValueError:
            raise UserInputError(
                f"{path}:{line}: label {raw_label!r} is neither a class index nor one of "
                f"{', '.join(class_names)}") from None
          if not 0 <= label < num_classes:
            raise UserInputError(f"{path}:{line}: label {label} is out of range [0, {num_classes})")
        answers[sample_id] = label
  except UnicodeDecodeError:
    raise UserInputError(f"{path}: not a UTF-8 text CSV file") from None
  except csv.Error as e:
    raise UserInputError(f"{path}: malformed CSV ({e})") from None
  unanswered = sorted(pending_set - set(answers))
  if unanswered:
    shown = ", ".join(map(str, unanswered[:10])) + (" ..." if len(unanswered) > 10 else "")
    raise UserInputError(f"{path}: {len(unanswered)} pending queries have no label: {shown}")
  return answers


def write_contact_sheet(path: str | os.PathLike, images: np.ndarray, indices: Sequence[int], *,
                        columns: int = 10) -> str:
  """Saves a PNG grid of query images ``(q, H, W, C)`` in [0, 1], titled by sample id."""
  matplotlib = require("matplotlib")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  q = len(indices)
  columns = max(1, min(columns, q))
  rows = -(-q // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, image, index in zip(axes.ravel(), images, indices):
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if image.shape[-1] == 1:
      ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
      ax.imshow(image, interpolation="nearest")
    ax.set_title(str(int(index)), fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return os.fspath(path)


def copy_audio_sources(directory: str | os.PathLike, indices: Sequence[int],
                       sources: Sequence[str]) -> list[str]:
  """Copies the WAV files behind audio queries to ``directory/<sample_id>.wav``."""
  os.makedirs(directory, exist_ok=True)
  written = []
  for index, source in zip(indices, sources):
    if source.lower().endswith(".wav") and os.path.isfile(source):
      target = os.path.join(os.fspath(directory), f"{int(index)}.wav")
      shutil.copyfile(source, target)
      written.append(target)
  return written


def write_labels(path: str | os.PathLike, answers: Sequence[tuple[int, str]]) -> str:
  """Writes ``(sample_id, label)`` rows as a label CSV (``sample_id,label``), atomically."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(("sample_id", "label"))
    for sample_id, label in answers:
      writer.writerow([int(sample_id), label])
  os.replace(tmp, path)
  return path


def _copy_atomically(source: str, target: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
  with open(source, "rb") as src, open(target + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
  os.replace(target + ".tmp", target)


def store_labels(labels_file: str | os.PathLike, target: str | os.PathLike,
                 pending: Sequence[int], class_names: Sequence[str], *,
                 round_index: int | None = None) -> str:
  """Validates a file of human labels and stores it as the label CSV ``target``.

  ``labels_file`` is a CSV (:func:`read_labels`), copied as it is, or a Label Studio JSON or
  JSON-MIN export (a ``.json`` name, or content starting with ``[`` or ``{``;
  :func:`assljax.loop.label_studio.read_export`), stored as the equivalent CSV of class
  names, with a copy of the export beside it (``round_R.label_studio.json``).

  Returns:
    ``target``.

  Raises:
    ValueError: naming the first problem; then nothing is written.
  """
  from assljax.loop import label_studio
  labels_file, target = os.fspath(labels_file), os.fspath(target)
  if not label_studio.looks_like_export(labels_file):
    read_labels(labels_file, pending, class_names)
    _copy_atomically(labels_file, target)
    return target
  answers = label_studio.read_export(labels_file, pending, class_names, round_index=round_index)
  staged = write_labels(target + ".staged", [(i, class_names[answers[i]]) for i in pending])
  try:
    survives = read_labels(staged, pending, class_names) == answers
  except ValueError:
    survives = False
  if not survives:   # e.g. a class name with surrounding blanks, which read_labels strips
    os.remove(staged)
    raise UserInputError("the dataset's class names do not survive a CSV round trip; label "
                         "with a CSV of class indices instead")
  _copy_atomically(labels_file, os.path.splitext(target)[0] + ".label_studio.json")
  os.replace(staged, target)
  return target
