"""Label Studio as the human oracle: an import of the pending queries and its JSON export.

The round trip, for a run with ``oracle="human"`` that stopped at its queries:

    assljax query --workdir DIR --format label-studio
        # -> RUN/queries/round_R_label_studio/{tasks.json, label_config.xml, media/}
    # Label Studio: create a project, paste label_config.xml under Settings > Labeling
    # Interface, import tasks.json, label, then Export > JSON (or JSON-MIN)
    assljax label --workdir DIR --labels project-1-at-....json
    assljax run --workdir DIR --resume

Files written by :func:`write_import` (``directory`` is ``round_R_label_studio/``):

    tasks.json        a list with one task per query: ``{"data": {"image" | "audio": URL,
                      "sample_id": int, "round": int}}``. The sample id comes back in the
                      export and is how answers are matched to queries; Label Studio's own
                      task ids are ignored. The sample's source path is left out on
                      purpose: a folder dataset's path names the class.
    label_config.xml  ``<View>`` with an ``<Image name="image" value="$image"/>`` (or
                      ``<Audio name="audio" value="$audio"/>``) and a single-choice
                      ``<Choices name="label">`` with one ``<Choice>`` per class name.
    media/            ``<sample_id>.png`` per image query (the sample as the model sees it,
                      enlarged with nearest-neighbour pixels to at least 128 px, or a copy of
                      the original PNG/JPEG file of a folder dataset), ``<sample_id>.wav``
                      per audio query (a copy of the source WAV file, or the kept 16 kHz
                      waveform written as 16-bit PCM).

How a task refers to its media file:

* embedded (the default): a ``data:image/png;base64,...`` (or ``data:audio/wav;...``) URI,
  so ``tasks.json`` is self-contained and imports into any Label Studio without storage
  settings (1-second clips and small images keep it small: ~45 kB per audio query);
  Label Studio's Image tag shows data URIs; if its audio player does not play them, use
  local files;
* ``local_files_root=ROOT``: ``/data/local-files/?d=<path of the file relative to ROOT>``,
  Label Studio's local file serving. Start Label Studio with
  ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=ROOT``, and add a "Local files" source storage
  whose absolute path is the ``media/`` folder (or a folder above it) to the project,
  without syncing it (the tasks come from ``tasks.json``).

Reading the export (:func:`read_export`) accepts Label Studio's "JSON" export (a list of
tasks with ``data`` and ``annotations``; the legacy ``completions`` too) and its
"JSON-MIN" export (one flat record per annotation). Cancelled (skipped) annotations and
predictions are ignored; every pending query must have exactly one chosen class, and when
several annotators labeled a task they must agree. The file is parsed as JSON data only.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import wave
from typing import Any, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from assljax._validation import UserInputError

CONTROL = "label"          # name of the <Choices> control: `from_name` in the export
TASKS_FILE = "tasks.json"
CONFIG_FILE = "label_config.xml"
MEDIA_DIR = "media"
MIN_IMAGE_SIDE = 128       # PNGs rendered from the pool are enlarged to at least this
AUDIO_SAMPLE_RATE = 16_000  # assljax.data.audio.SAMPLE_RATE; kept waveforms are at 16 kHz
_IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_AUDIO_SUFFIXES = {".wav": "audio/wav"}


def object_name(kind: str) -> str:
  """The object tag's name and data key for a dataset ``kind``: ``"image"`` or ``"audio"``."""
  if kind not in ("image", "audio"):
    raise UserInputError(f"dataset kind must be 'image' or 'audio', got {kind!r}")
  return kind


def labeling_config(class_names: Sequence[str], kind: str) -> str:
  """The labeling interface XML: the sample (Image or Audio) and a single choice of class.

  Args:
    class_names: ``C`` class names, in label order; each becomes a ``<Choice value=...>``.
    kind: ``"image"`` or ``"audio"``.

  Returns:
    The XML text (Label Studio's "Labeling Interface" code).
  """
  name = object_name(kind)
  names = [str(c) for c in class_names]
  if len(names) < 2 or len(set(names)) != len(names) or any(not n.strip() for n in names):
    raise UserInputError(f"class names must be at least 2 distinct non-blank strings, got {names}")
  tag = "Image" if kind == "image" else "Audio"
  extra = ' zoom="true"' if kind == "image" else ""
  lines = ["<View>",
           f'  <{tag} name="{name}" value="${name}"{extra}/>',
           f'  <Choices name="{CONTROL}" toName="{name}" choice="single-radio" '
           f'required="true" showInline="true">']
  lines += [f"    <Choice value={quoteattr(n)}/>" for n in names]
  lines += ["  </Choices>", "</View>", ""]
  return "\n".join(lines)


def _data_uri(path: str, mime: str) -> str:
  with open(path, "rb") as f:
    return f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")


def _local_files_url(path: str, root: str) -> str:
  from urllib.parse import quote
  relative = os.path.relpath(os.path.abspath(path), root)
  if relative == os.pardir or relative.startswith(os.pardir + os.sep):
    raise UserInputError(f"{path} is not under the local files root {root}; choose a root that "
                         "contains the workdir")
  return "/data/local-files/?d=" + quote(relative.replace(os.sep, "/"), safe="/")


def _write_png(path: str, image: np.ndarray) -> None:
  from PIL import Image
  image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise UserInputError(f"query images must be (H, W, 1) or (H, W, 3), got shape {image.shape}")
  pixels = np.round(image * 255.0).astype(np.uint8)
  scale = max(1, math.ceil(MIN_IMAGE_SIDE / max(pixels.shape[:2])))
  pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def _write_wav(path: str, samples: np.ndarray) -> None:
  samples = np.asarray(samples)
  if samples.ndim != 1 or samples.dtype != np.int16:
    raise UserInputError(f"audio waveforms must be 1-D int16, got {samples.dtype} {samples.shape}")
  with wave.open(path, "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(AUDIO_SAMPLE_RATE)
    f.writeframes(samples.astype("<i2").tobytes())


def _media_file(directory: str, index: int, source: str, kind: str, image: Any,
                waveform: Any) -> tuple[str, str]:
  """Writes one query's media file; returns ``(path, mime type)``."""
  suffixes = _IMAGE_SUFFIXES if kind == "image" else _AUDIO_SUFFIXES
  suffix = os.path.splitext(source)[1].lower()
  if suffix in suffixes and os.path.isfile(source):
    target = os.path.join(directory, f"{index}{suffix}")
    shutil.copyfile(source, target)
    return target, suffixes[suffix]
  if kind == "image":
    target = os.path.join(directory, f"{index}.png")
    _write_png(target, image)
    return target, "image/png"
  if waveform is None:
    raise UserInputError(f"audio query {index} has no WAV file ({source!r}) and the dataset kept "
                         "no "
                         "waveforms; export it with --format csv")
  target = os.path.join(directory, f"{index}.wav")
  _write_wav(target, waveform)
  return target, "audio/wav"


def write_import(directory: str | os.PathLike, indices: Sequence[int], sources: Sequence[str], *,
                 class_names: Sequence[str], kind: str, round_index: int, images: Any = None,
                 waveforms: Any = None, local_files_root: str | None = None) -> list[str]:
  """Writes a Label Studio import of the queries: tasks, labeling config and media files.

  Args:
    directory: the folder to (re)write; created if needed, its old ``media/`` replaced.
    indices: ``(q,)`` pool indices of the queries (the sample ids).
    sources: ``(q,)`` where each sample came from; an existing PNG/JPEG (image) or WAV
      (audio) file is copied, anything else is rendered from ``images``/``waveforms``.
    class_names: ``C`` class names (the choices).
    kind: ``"image"`` or ``"audio"``.
    round_index: the round the queries belong to (stored in each task, checked on export).
    images: ``(q, H, W, C)`` float in [0, 1], the query samples (images; unused for audio).
    waveforms: ``(q, 16000)`` int16 16 kHz clips of audio queries, or None.
    local_files_root: None to embed the media as base64 data URIs, else the
      ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` the tasks' ``/data/local-files/`` URLs
      are relative to (it must contain ``directory``).

  Returns:
    The paths of ``tasks.json`` and ``label_config.xml``, then the media folder.
  """
  name = object_name(kind)
  config = labeling_config(class_names, kind)
  indices = [int(i) for i in indices]
  if len(sources) != len(indices):
    raise UserInputError(f"got {len(indices)} query indices but {len(sources)} sources")
  directory = os.path.abspath(os.fspath(directory))
  root = None
  if local_files_root is not None:
    root = os.path.abspath(os.fspath(local_files_root))
    if not os.path.isdir(root):
      raise UserInputError(f"local files root {local_files_root} is not a directory")
    _local_files_url(directory, root)   # fail before writing anything
  media = os.path.join(directory, MEDIA_DIR)
  staging = media + ".tmp"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  tasks = []
  for position, (index, source) in enumerate(zip(indices, sources)):
    image = None if images is None else images[position]
    clip = None if waveforms is None else waveforms[position]
    path, mime = _media_file(staging, index, str(source), kind, image, clip)
    final = os.path.join(media, os.path.basename(path))
    url = _data_uri(path, mime) if root is None else _local_files_url(final, root)
    tasks.append({"data": {name: url, "sample_id": index, "round": int(round_index)}})
  shutil.rmtree(media, ignore_errors=True)
  os.replace(staging, media)
  written = []
  for file_name, text in ((TASKS_FILE, json.dumps(tasks, indent=1) + "\n"), (CONFIG_FILE, config)):
    path = os.path.join(directory, file_name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(path + ".tmp", path)
    written.append(path)
  return written + [media]


# ------------------------------------------------------------------------------ export


def looks_like_export(path: str | os.PathLike) -> bool:
  """True when ``path`` is a JSON file (``.json``, or text starting with ``[`` or ``{``)."""
  path = os.fspath(path)
  if path.lower().endswith(".json"):
    return True
  try:
    with open(path, "rb") as f:
      head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
  except OSError:
    return False
  return head[:1] in (b"[", b"{")


def _sample_id(value: Any) -> int | None:
  if isinstance(value, bool):
    return None
  if isinstance(value, int):
    return value
  if isinstance(value, float) and value.is_integer():
    return int(value)
  if isinstance(value, str) and value.strip().lstrip("-").isdigit():
    return int(value.strip())
  return None


def _choices_of_value(value: Any) -> list | None:
  """The chosen class names in a result's ``value`` (full export) or a JSON-MIN cell."""
  if isinstance(value, str):
    return [value]
  if isinstance(value, dict) and isinstance(value.get("choices"), list):
    return list(value["choices"])
  if isinstance(value, list):
    out = []
    for item in value:
      chosen = _choices_of_value(item)
      if chosen is None:
        return None
      out += chosen
    return out
  return None


def _annotations_full(task: dict, where: str) -> list[list]:
  """Chosen classes of each non-cancelled annotation of a full-export task."""
  given = task.get("annotations", task.get("completions"))
  if given is None:
    given = []
  if not isinstance(given, list):
    raise UserInputError(f"{where}: 'annotations' is not a list")
  answers = []
  for annotation in given:
    if not isinstance(annotation, dict):
      raise UserInputError(f"{where}: an annotation is not a JSON object")
    if annotation.get("was_cancelled") or annotation.get("skipped"):
      continue
    results = annotation.get("result") or []
    if not isinstance(results, list):
      raise UserInputError(f"{where}: an annotation's 'result' is not a list")
    chosen = []
    for result in results:
      if not isinstance(result, dict) or result.get("from_name") != CONTROL:
        continue
      value = (result.get("value") or {})
      choices = value.get("choices") if isinstance(value, dict) else None
      if not isinstance(choices, list):
        raise UserInputError(f"{where}: the {CONTROL!r} result has no list of choices")
      chosen += choices
    answers.append(chosen)
  return answers


def _tasks(document: Any, path: str) -> list[tuple[str, dict, list[list]]]:
  """``(where, data, [chosen classes per annotation])`` per task of either export format."""
  if isinstance(document, dict):
    document = [document]
  if not isinstance(document, list):
    raise UserInputError(f"{path}: a Label Studio export is a JSON list of tasks, "
                         f"got {type(document).__name__}")
  merged: dict[Any, tuple[str, dict, list[list]]] = {}
  out = []
  for position, task in enumerate(document):
    if not isinstance(task, dict):
      raise UserInputError(f"{path}: item {position} is not a JSON object")
    task_id = task.get("id", f"#{position}")
    where = f"{path}: task {task_id}"
    if isinstance(task.get("data"), dict):        # "JSON": the full task format
      out.append((where, task["data"], _annotations_full(task, where)))
      continue
    # "JSON-MIN": the task's data at top level, one record per annotation, the chosen
    # class under the control's name (a string, or {"choices": [...]} for several).
    if CONTROL in task:
      chosen = _choices_of_value(task[CONTROL])
      if chosen is None:
        raise UserInputError(f"{where}: {CONTROL!r} is neither a class name nor a list of choices")
      given = [chosen]
    else:
      given = []
    key = task.get("id", ("position", position))
    if key in merged and "id" in task:
      merged[key][2].extend(given)
    else:
      merged[key] = (where, task, given)
      out.append(merged[key])
  return out


def read_export(path: str | os.PathLike, pending: Sequence[int], class_names: Sequence[str], *,
                round_index: int | None = None) -> dict[int, int]:
  """Parses and validates a Label Studio JSON (or JSON-MIN) export for the pending queries.

  Args:
    path: the exported file.
    pending: ``(q,)`` the sample ids waiting for labels.
    class_names: ``C`` class names; a chosen value must be one of them exactly.
    round_index: when given, a task's ``round`` (written by :func:`write_import`) must match.

  Returns:
    ``{sample_id: label}`` for exactly the pending ids.

  Raises:
    ValueError: naming the file and task of the first problem: not a JSON list of tasks, a
      task without ``sample_id``, an id that is not pending or appears in two tasks, a task
      of another round, an annotation with no or several choices, a class name not in the
      dataset, annotators who disagree, or pending queries left unlabeled.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserInputError(f"label file {path} does not exist")
  try:
    with open(path, encoding="utf-8-sig") as f:
      document = json.load(f)
  except UnicodeDecodeError:
    raise UserInputError(f"{path}: not a UTF-8 text JSON file") from None
  except json.JSONDecodeError as e:
    raise UserInputError(f"{path}: not valid JSON ({e})") from None
  pending_set = {int(i) for i in pending}
  by_name = {str(name): i for i, name in enumerate(class_names)}
  answers: dict[int, int] = {}
  seen: dict[int, str] = {}
  for where, data, given in _tasks(document, path):
    sample_id = _sample_id(data.get("sample_id"))
    if sample_id is None:
      raise UserInputError(f"{where} has no integer data.sample_id; import the tasks.json that "
                           "`assljax query --format label-studio` wrote")
    where = f"{where} (sample_id {sample_id})"
    if sample_id not in pending_set:
      raise UserInputError(f"{where} is not a pending query")
    if sample_id in seen:
      raise UserInputError(f"{where} appears twice (also {seen[sample_id].split(': ', 1)[-1]}); "
                           "was tasks.json imported twice?")
    seen[sample_id] = where
    task_round = data.get("round")
    if round_index is not None and task_round is not None and task_round != round_index:
      raise UserInputError(f"{where} belongs to round {task_round}, but round {round_index} "
                           "is waiting for labels")
    labels = set()
    for chosen in given:
      if not chosen:
        continue
      if len(chosen) > 1:
        raise UserInputError(f"{where} has {len(chosen)} choices ({', '.join(map(str, chosen))}); "
                             "choose exactly one class")
      name = chosen[0]
      if not isinstance(name, str) or name not in by_name:
        raise UserInputError(f"{where}: {name!r} is not a class of the dataset "
                             f"({', '.join(map(str, class_names))})")
      labels.add(by_name[name])
    if len(labels) > 1:
      names = ", ".join(str(class_names[i]) for i in sorted(labels))
      raise UserInputError(f"{where}: annotators disagree ({names}); keep one annotation")
    if labels:
      answers[sample_id] = labels.pop()
  unanswered = sorted(pending_set - set(answers))
  if unanswered:
    shown = ", ".join(map(str, unanswered[:10])) + (" ..." if len(unanswered) > 10 else "")
    raise UserInputError(f"{path}: {len(unanswered)} pending queries have no chosen class: {shown}")
  return answers
