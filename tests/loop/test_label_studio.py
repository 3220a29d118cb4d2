"""Label Studio import (tasks, labeling config, media) and export parsing, with strict refusals.

``label_studio_export.json`` holds real exports (JSON and JSON-MIN) that Label Studio 1.23.2
produced from this module's files; the bad exports below are that file with one thing
changed.
"""

import base64
import copy
import io
import json
import os
import pathlib
import wave
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from assljax.loop import label_studio, oracle

DIGITS = tuple(str(i) for i in range(10))
EXPORTS = json.loads((pathlib.Path(__file__).parent / "label_studio_export.json").read_text())
PENDING = [144, 15, 197, 95, 5]          # the sample ids of the exported tasks
ANSWERS = {144: 6, 15: 6, 197: 6, 95: 0, 5: 4}


def _write(tmp_path, document, name="export.json"):
  path = tmp_path / name
  path.write_text(json.dumps(document))
  return path


def test_labeling_config_has_the_sample_and_one_choice_per_class():
  root = ET.fromstring(label_studio.labeling_config(["cat", "dog & co", 'say "hi"'], "image"))
  image, choices = list(root)
  assert root.tag == "View" and image.tag == "Image"
  assert image.attrib["name"] == "image" and image.attrib["value"] == "$image"
  assert choices.tag == "Choices" and choices.attrib["name"] == "label"
  assert choices.attrib["toName"] == "image" and choices.attrib["choice"] == "single-radio"
  assert [c.attrib["value"] for c in choices] == ["cat", "dog & co", 'say "hi"']
  audio = ET.fromstring(label_studio.labeling_config(["yes", "no"], "audio"))
  assert audio[0].tag == "Audio" and audio[0].attrib["value"] == "$audio"
  assert audio[1].attrib["toName"] == "audio"
  with pytest.raises(ValueError, match="distinct"):
    label_studio.labeling_config(["a", "a"], "image")
  with pytest.raises(ValueError, match="kind"):
    label_studio.labeling_config(["a", "b"], "video")


def test_image_import_embeds_enlarged_pngs(tmp_path):
  images = np.zeros((2, 8, 8, 1), np.float32)
  images[1, :, :4] = 1.0
  written = label_studio.write_import(tmp_path / "q", [7, 3], ["digits/train/7", "x"],
                                      class_names=DIGITS, kind="image", round_index=2,
                                      images=images)
  assert [os.path.basename(p) for p in written] == ["tasks.json", "label_config.xml", "media"]
  tasks = json.loads(pathlib.Path(written[0]).read_text())
  assert [t["data"]["sample_id"] for t in tasks] == [7, 3]
  assert all(t["data"]["round"] == 2 and set(t["data"]) == {"image", "sample_id", "round"}
             for t in tasks)
  prefix = "data:image/png;base64,"
  assert tasks[1]["data"]["image"].startswith(prefix)
  png = Image.open(io.BytesIO(base64.b64decode(tasks[1]["data"]["image"][len(prefix):])))
  pixels = np.asarray(png)
  assert pixels.shape == (128, 128)                         # 8 px enlarged 16 times
  assert pixels[:, :64].min() == 255 and pixels[:, 64:].max() == 0
  assert sorted(os.listdir(written[2])) == ["3.png", "7.png"]


def test_local_files_urls_and_copied_originals(tmp_path):
  original = tmp_path / "data" / "cat" / "a.jpg"
  original.parent.mkdir(parents=True)
  Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(original)
  images = np.zeros((2, 4, 4, 3), np.float32)
  written = label_studio.write_import(
      tmp_path / "run" / "q", [4, 9], [str(original), "cifar10/train/9"], class_names=("a", "b"),
      kind="image", round_index=0, images=images, local_files_root=tmp_path)
  tasks = json.loads(pathlib.Path(written[0]).read_text())
  assert tasks[0]["data"]["image"] == "/data/local-files/?d=run/q/media/4.jpg"
  assert tasks[1]["data"]["image"] == "/data/local-files/?d=run/q/media/9.png"
  assert (tmp_path / "run" / "q" / "media" / "4.jpg").read_bytes() == original.read_bytes()
  with pytest.raises(ValueError, match="not under the local files root"):
    label_studio.write_import(tmp_path / "elsewhere", [4], ["x"], class_names=("a", "b"),
                              kind="image", round_index=0, images=images[:1],
                              local_files_root=tmp_path / "run")
  assert not (tmp_path / "elsewhere").exists()


def test_audio_import_writes_playable_wavs(tmp_path):
  clips = (np.sin(np.arange(2 * 16000) / 10.0) * 8000).astype(np.int16).reshape(2, 16000)
  source = tmp_path / "clip.wav"
  with wave.open(str(source), "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(8000)
    f.writeframes(b"\0\0" * 800)
  written = label_studio.write_import(tmp_path / "q", [1, 2], [str(source), "speech/train/2"],
                                      class_names=("yes", "no"), kind="audio", round_index=0,
                                      waveforms=clips)
  tasks = json.loads(pathlib.Path(written[0]).read_text())
  assert all(t["data"]["audio"].startswith("data:audio/wav;base64,") for t in tasks)
  assert (tmp_path / "q" / "media" / "1.wav").read_bytes() == source.read_bytes()
  with wave.open(str(tmp_path / "q" / "media" / "2.wav")) as f:
    assert (f.getframerate(), f.getnchannels(), f.getnframes()) == (16000, 1, 16000)
    np.testing.assert_array_equal(np.frombuffer(f.readframes(16000), "<i2"), clips[1])
  assert "<Audio" in pathlib.Path(written[1]).read_text()
  with pytest.raises(ValueError, match="no WAV file"):
    label_studio.write_import(tmp_path / "r", [2], ["speech/train/2"], class_names=("yes", "no"),
                              kind="audio", round_index=0, waveforms=None)


@pytest.mark.parametrize("kind", ["JSON", "JSON_MIN"])
def test_real_exports_are_read(tmp_path, kind):
  path = _write(tmp_path, EXPORTS[kind])
  assert label_studio.read_export(path, PENDING, DIGITS, round_index=0) == ANSWERS


def _full():
  return copy.deepcopy(EXPORTS["JSON"])


def _set_choices(export, task, choices):
  export[task]["annotations"][-1]["result"][0]["value"]["choices"] = choices
  return export


def _unknown_id():
  export = _full()
  export[0]["data"]["sample_id"] = 999
  return export


def _unannotated():
  export = _full()
  export[3]["annotations"] = []
  return export


def _only_cancelled():
  export = _full()
  export[2]["annotations"] = export[2]["annotations"][:1]
  return export


def _disagree():
  export = _full()
  export[1]["annotations"][1]["result"][0]["value"]["choices"] = ["7"]
  return export


def _duplicate():
  export = _full()
  export.append(copy.deepcopy(export[0]))
  export[-1]["id"] = 6
  return export


def _no_sample_id():
  export = _full()
  del export[4]["data"]["sample_id"]
  return export


def _other_round():
  export = _full()
  export[0]["data"]["round"] = 1
  return export


def _min_two_choices():
  export = copy.deepcopy(EXPORTS["JSON_MIN"])
  export[0]["label"] = {"choices": ["6", "8"]}
  return export


def _min_unknown_class():
  export = copy.deepcopy(EXPORTS["JSON_MIN"])
  export[-1]["label"] = "four"
  return export


@pytest.mark.parametrize("make, message", [
    (_unknown_id, r"task 1 \(sample_id 999\) is not a pending query"),
    (_unannotated, r"1 pending queries have no chosen class: 95"),
    (_only_cancelled, r"1 pending queries have no chosen class: 197"),
    (lambda: _set_choices(_full(), 0, []), r"1 pending queries have no chosen class: 144"),
    (lambda: _set_choices(_full(), 3, ["0", "3"]), r"task 4 \(sample_id 95\) has 2 choices"),
    (lambda: _set_choices(_full(), 4, ["horse"]), r"'horse' is not a class of the dataset"),
    (_disagree, r"task 2 \(sample_id 15\): annotators disagree \(6, 7\)"),
    (_duplicate, r"task 6 \(sample_id 144\) appears twice"),
    (_no_sample_id, r"task 5 has no integer data.sample_id"),
    (_other_round, r"belongs to round 1, but round 0 is waiting"),
    (_min_two_choices, r"task 1 \(sample_id 144\) has 2 choices \(6, 8\)"),
    (_min_unknown_class, r"'four' is not a class"),
    (lambda: {"tasks": 3}, r"has no integer data.sample_id"),
    (lambda: 7, r"a Label Studio export is a JSON list of tasks"),
    (lambda: [3], r"item 0 is not a JSON object"),
])
def test_bad_exports_are_refused_naming_the_task(tmp_path, make, message):
  with pytest.raises(ValueError, match=message):
    label_studio.read_export(_write(tmp_path, make()), PENDING, DIGITS, round_index=0)


def test_unreadable_exports(tmp_path):
  (tmp_path / "a.json").write_text("[{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    label_studio.read_export(tmp_path / "a.json", PENDING, DIGITS)
  (tmp_path / "b.json").write_bytes(b"\xff\xfe[\x00")
  with pytest.raises(ValueError, match="UTF-8"):
    label_studio.read_export(tmp_path / "b.json", PENDING, DIGITS)
  with pytest.raises(ValueError, match="does not exist"):
    label_studio.read_export(tmp_path / "none.json", PENDING, DIGITS)


def test_format_detection(tmp_path):
  (tmp_path / "labels.csv").write_text("sample_id,label\n1,0\n")
  (tmp_path / "export").write_text('\n  [{"data": {}}]')
  (tmp_path / "x.JSON").write_text("")
  assert not label_studio.looks_like_export(tmp_path / "labels.csv")
  assert label_studio.looks_like_export(tmp_path / "export")
  assert label_studio.looks_like_export(tmp_path / "x.JSON")


def test_store_labels_converts_exports_and_writes_nothing_on_error(tmp_path):
  target = tmp_path / "labels" / "round_0.csv"
  bad = _write(tmp_path, _set_choices(_full(), 4, ["horse"]), "bad.json")
  with pytest.raises(ValueError, match="horse"):
    oracle.store_labels(bad, target, PENDING, DIGITS, round_index=0)
  assert not (tmp_path / "labels").exists() or not os.listdir(tmp_path / "labels")
  good = _write(tmp_path, EXPORTS["JSON"], "good.json")
  assert oracle.store_labels(good, target, PENDING, DIGITS, round_index=0) == str(target)
  assert target.read_text().splitlines() == ["sample_id,label", "144,6", "15,6", "197,6",
                                             "95,0", "5,4"]
  assert oracle.read_labels(target, PENDING, DIGITS) == ANSWERS
  assert (tmp_path / "labels" / "round_0.label_studio.json").read_bytes() == good.read_bytes()
  # class names that a CSV cannot carry back are refused rather than stored wrongly
  names = (" x",) + DIGITS[1:]
  export = _set_choices(_full(), 3, [" x"])
  with pytest.raises(ValueError, match="do not survive a CSV round trip"):
    oracle.store_labels(_write(tmp_path, export, "blank.json"), tmp_path / "l2" / "r.csv",
                        PENDING, names)
  assert not (tmp_path / "l2" / "r.csv").exists()
