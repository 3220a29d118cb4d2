"""Bad input through the command line: one clear line, exit code 2, saved state untouched."""

import hashlib
import json
import os
import textwrap

import numpy as np
import pytest
from PIL import Image

from assljax.app.cli import main


def _snapshot(root):
  digest = {}
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        digest[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
  return digest


def _fails(capsys, argv, message):
  code = main(argv)
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2, (argv, err)
  assert len(err) == 1 and err[0].startswith("assljax: error: "), err
  assert message in err[0], (message, err[0])


@pytest.fixture(scope="module")
def done_workdir(tiny_config_path, tmp_path_factory):
  """A finished tiny run (one strategy, one seed)."""
  workdir = str(tmp_path_factory.mktemp("done"))
  assert main(["run", "--config", tiny_config_path, "--workdir", workdir,
               "--config.strategies=random"]) == 0
  return workdir


@pytest.fixture(scope="module")
def waiting_workdir(tiny_config_path, tmp_path_factory):
  """A tiny run with a human oracle, stopped at its first queries."""
  workdir = str(tmp_path_factory.mktemp("waiting"))
  assert main(["run", "--config", tiny_config_path, "--workdir", workdir,
               "--config.strategies=random", "--config.oracle=human"]) == 0
  return workdir


@pytest.fixture(scope="module")
def image_configs(tiny_config_path, tmp_path_factory):
  """Config files pointing at an empty dataset folder and at one with a corrupt image."""
  root = tmp_path_factory.mktemp("images")
  for split in ("train", "test"):
    for cls in ("a", "b"):
      folder = root / "corrupt" / split / cls
      folder.mkdir(parents=True)
      for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
  (root / "corrupt" / "train" / "a" / "0.png").write_bytes(b"not a png at all")
  (root / "empty" / "train").mkdir(parents=True)
  (root / "empty" / "test").mkdir(parents=True)
  paths = {}
  for name in ("empty", "corrupt"):
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(f"""
        import runpy
        import ml_collections

        def get_config(arg=None):
          c = runpy.run_path({tiny_config_path!r})["get_config"]()
          c.dataset.name = "imagefolder"
          c.dataset.max_train = None
          c.dataset.max_test = None
          c.dataset.options = ml_collections.ConfigDict(dict(root={str(root / name)!r}))
          return c
    """))
    paths[name] = str(path)
  return paths


def test_bad_command_lines(capsys, tmp_path):
  _fails(capsys, [], "required")
  _fails(capsys, ["fly"], "invalid choice")
  _fails(capsys, ["run", "--workdir", str(tmp_path)], "run needs --config")
  _fails(capsys, ["run", "--config", "x.py"], "--workdir")
  _fails(capsys, ["query", "--workdir", str(tmp_path), "--config.seeds=[1]"],
         "overrides only apply to `assljax run`")


@pytest.mark.parametrize("extra, message", [
    (["--config.stepz=1"], "unknown config key 'stepz'"),
    (["--config.ssl.steps_per_round=many"], "expects int"),
    (["--config.ssl.steps_per_round"], "needs a value"),
    (["--config.ssl.steps_per_round=0"], "ssl.steps_per_round must be a positive integer"),
    (["--config.checkpoint_every=0"], "checkpoint_every must be a positive integer"),
    (["--config.al.query_size=100000"], "100000"),
    (["--config.al.initial_per_class=1000"], "1000"),
    (["--config.al.budget=5"], "budget"),
    (["--config.strategies=['nope']"], "strategy 'nope'"),
    (["--config.strategies=[]"], "config.strategies is empty"),
    (["--config.strategies=['random', 'random']"], "duplicate labels"),
    (["--config.seeds=[]"], "seeds must be a non-empty list"),
    (["--config.seeds=[0, 0]"], "seeds has duplicates"),
    (["--config.oracle=crowd"], "oracle must be 'simulated' or 'human'"),
    (["--config.dataset.name=imagenet"], "unknown dataset 'imagenet'"),
    (["--config.model.name=transformer"], "unknown model 'transformer'"),
    (["--config.ssl.algorithm=pseudo"], "ssl.algorithm must be one of"),
    (["--config.ssl.compute_dtype=float8"], "compute_dtype"),
    (["--config.al.mode=twice"], "mode must be"),
])
def test_bad_configs_create_nothing(capsys, tmp_path, tiny_config_path, extra, message):
  workdir = tmp_path / "w"
  _fails(capsys, ["run", "--config", tiny_config_path, "--workdir", str(workdir)] + extra, message)
  assert not (workdir / "config.json").exists()


def test_bad_config_files(capsys, tmp_path):
  _fails(capsys, ["run", "--config", str(tmp_path / "none.py"), "--workdir", str(tmp_path)],
         "does not exist")
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  _fails(capsys, ["run", "--config", str(tmp_path / "broken.py"), "--workdir", str(tmp_path)],
         "SyntaxError")


def test_bad_dataset_folders(capsys, tmp_path, image_configs):
  for name, message in (("empty", "has no class sub-folders"), ("corrupt", "0.png")):
    _fails(capsys, ["run", "--config", image_configs[name], "--workdir", str(tmp_path / name)],
           message)
    assert not (tmp_path / name / "config.json").exists()


def test_existing_runs_are_never_damaged(capsys, tmp_path, tiny_config_path, done_workdir,
                                         waiting_workdir):
  before = {d: _snapshot(d) for d in (done_workdir, waiting_workdir)}
  _fails(capsys, ["run", "--config", tiny_config_path, "--workdir", done_workdir],
         "already holds a run")
  _fails(capsys, ["run", "--workdir", done_workdir, "--resume", "--config", tiny_config_path],
         "drop --config")
  _fails(capsys, ["run", "--workdir", done_workdir, "--resume", "--config.seeds=[3]"],
         "accepts no config overrides")
  _fails(capsys, ["label", "--workdir", done_workdir, "--labels", "x.csv"],
         "no run in")
  answers = tmp_path / "labels.csv"
  answers.write_text("sample_id,label\n999999,0\n")
  _fails(capsys, ["label", "--workdir", waiting_workdir, "--labels", str(answers)],
         "sample_id 999999 is not a pending query")
  with open(os.path.join(waiting_workdir, "runs", "random", "seed_0", "records.json")) as f:
    assert json.load(f) == []
  pending = _pending(waiting_workdir)
  answers.write_text("sample_id,label\n" + "".join(f"{i},42\n" for i in pending))
  _fails(capsys, ["label", "--workdir", waiting_workdir, "--labels", str(answers)],
         "label 42 is out of range")
  _fails(capsys, ["label", "--workdir", waiting_workdir, "--labels", str(tmp_path / "no.csv")],
         "does not exist")
  _fails(capsys, ["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")], "")
  after = {d: _snapshot(d) for d in (done_workdir, waiting_workdir)}
  assert after == before


def _pending(workdir):
  with open(os.path.join(workdir, "runs", "random", "seed_0", "queries", "round_0.csv")) as f:
    return [int(line.split(",")[0]) for line in f.read().splitlines()[1:]]


def test_resume_problems(capsys, tmp_path, done_workdir):
  _fails(capsys, ["run", "--workdir", str(tmp_path / "missing"), "--resume"], "does not exist")
  _fails(capsys, ["run", "--workdir", str(tmp_path), "--resume"], "no config.json")
  bad = tmp_path / "badjson"
  bad.mkdir()
  (bad / "config.json").write_text("{not json")
  _fails(capsys, ["run", "--workdir", str(bad), "--resume"], "not valid JSON")
  # Every checkpoint unreadable: refuse, and leave the files for a person to inspect.
  import shutil
  broken = tmp_path / "broken"
  shutil.copytree(done_workdir, broken)
  ckpts = broken / "runs" / "random" / "seed_0" / "checkpoints"
  for folder, _, files in os.walk(ckpts):
    for name in files:
      with open(os.path.join(folder, name), "wb") as f:
        f.write(b"garbage")
  before = _snapshot(broken)
  with pytest.warns(RuntimeWarning):
    _fails(capsys, ["run", "--workdir", str(broken), "--resume"], "no readable checkpoint")
  assert _snapshot(broken) == before


def test_query_and_resume_of_a_finished_run(capsys, done_workdir, waiting_workdir):
  assert main(["query", "--workdir", waiting_workdir]) == 0
  out = capsys.readouterr().out
  assert "round_0.csv" in out and "round_0.png" in out
  _fails(capsys, ["query", "--workdir", done_workdir], "no run in")
  assert main(["run", "--workdir", done_workdir, "--resume"]) == 0
  assert "done" in capsys.readouterr().out


def _label_studio_export(tasks_json, choose):
  """A Label Studio JSON export of ``tasks.json`` in the shape Label Studio 1.23.2 writes
  (tests/loop/label_studio_export.json), each task annotated with ``choose(sample_id)``."""
  with open(tasks_json) as f:
    tasks = json.load(f)
  export = []
  for task_id, task in enumerate(tasks, start=1):
    chosen = choose(task["data"]["sample_id"])
    result = [{"from_name": "label", "to_name": "image", "type": "choices",
               "value": {"choices": chosen}}]
    export.append({"id": task_id, "data": task["data"], "predictions": [], "drafts": [],
                   "annotations": [] if chosen is None else [
                       {"id": task_id, "completed_by": 1, "result": result,
                        "was_cancelled": False, "ground_truth": False, "task": task_id}]})
  return export


def test_label_studio_round_trip(capsys, tmp_path, waiting_workdir):
  import shutil
  workdir = str(tmp_path / "w")
  shutil.copytree(waiting_workdir, workdir)
  assert main(["query", "--workdir", workdir, "--format", "label-studio"]) == 0
  printed = capsys.readouterr().out.split()
  assert [os.path.basename(p) for p in printed] == ["tasks.json", "label_config.xml", "media"]
  assert "round_0_label_studio" in printed[0]
  _fails(capsys, ["query", "--workdir", workdir, "--local-files-root", str(tmp_path)],
         "applies to --format label-studio only")
  (tmp_path / "other").mkdir()
  _fails(capsys, ["query", "--workdir", workdir, "--format", "label-studio",
                  "--local-files-root", str(tmp_path / "other")], "not under the local")
  pending = _pending(workdir)
  before = _snapshot(workdir)
  export = tmp_path / "project-1.json"
  for choose, message in (
      (lambda i: ["4"] if i == pending[0] else None, "4 pending queries have no chosen class"),
      (lambda i: ["4", "5"], "has 2 choices (4, 5)"),
      (lambda i: ["four"], "'four' is not a class of the dataset"),
  ):
    export.write_text(json.dumps(_label_studio_export(printed[0], choose)))
    _fails(capsys, ["label", "--workdir", workdir, "--labels", str(export)], message)
  unknown = _label_studio_export(printed[0], lambda i: ["1"])
  unknown[0]["data"]["sample_id"] = 999999
  (tmp_path / "unknown").write_text(json.dumps(unknown))   # no .json: detected by content
  _fails(capsys, ["label", "--workdir", workdir, "--labels", str(tmp_path / "unknown")],
         "(sample_id 999999) is not a pending query")
  assert _snapshot(workdir) == before
  export.write_text(json.dumps(_label_studio_export(printed[0], lambda i: [str(i % 10)])))
  assert main(["label", "--workdir", workdir, "--labels", str(export)]) == 0
  stored = os.path.join(workdir, "runs", "random", "seed_0", "labels", "round_0.csv")
  with open(stored) as f:
    assert f.read().split() == ["sample_id,label"] + [f"{i},{i % 10}" for i in pending]
  assert main(["run", "--workdir", workdir, "--resume"]) == 0
  with open(os.path.join(workdir, "results.json")) as f:
    record = json.load(f)[0]
  assert record["queried_indices"] == pending


def test_debug_shows_the_traceback_of_an_input_error(capsys, tmp_path):
  import assljax
  with pytest.raises(assljax.UserInputError, match="does not exist"):
    main(["run", "--config", str(tmp_path / "none.py"), "--workdir", str(tmp_path), "--debug"])


@pytest.mark.parametrize("bug", [ZeroDivisionError("division by zero"),
                                 ValueError("operands could not be broadcast")])
def test_a_bug_is_not_reported_as_bad_input(monkeypatch, tmp_path, bug):
  # Only UserInputError (and missing extras, unreadable files) become one line and exit 2;
  # a plain ValueError from numpy or a ZeroDivisionError is a bug with its traceback.
  from assljax.app import cli

  def failing_cells(args, overrides):
    raise bug

  monkeypatch.setattr(cli, "_cells", failing_cells)
  with pytest.raises(type(bug), match=str(bug)):
    main(["cells", "--config", str(tmp_path / "any.py")])
