"""The install extras: the core runs without TensorFlow, a missing extra says what to install."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
import tomllib

import pytest

from assljax import _optional

ROOT = pathlib.Path(__file__).resolve().parent.parent
# what the core install must not pull in (TensorFlow alone is 1.9 GB)
HEAVY = ("tensorflow", "tensorflow-datasets", "neural-tangents", "importlib-resources")


def _name(requirement: str) -> str:
  """``"tensorflow-datasets>=4.9"`` -> ``"tensorflow-datasets"`` (normalized)."""
  for i, ch in enumerate(requirement):
    if not (ch.isalnum() or ch in "-_."):
      requirement = requirement[:i]
      break
  return requirement.lower().replace("_", "-")


def _project() -> dict:
  with open(ROOT / "pyproject.toml", "rb") as f:
    return tomllib.load(f)["project"]


def test_core_has_no_tensorflow_and_extras_cover_the_optional_imports():
  project = _project()
  core = {_name(r) for r in project["dependencies"]}
  assert not core & set(HEAVY), core & set(HEAVY)
  assert "chex" not in core  # nothing imports it; dm-pix brings it
  extras = project["optional-dependencies"]
  for extra, (_, modules) in _optional.EXTRAS.items():
    packages = {_name(r) for r in extras[extra]}
    for module in modules:
      assert _optional._DISTRIBUTIONS[module] in packages, (extra, module)
  # dev = every other extra + the test tools
  dev = extras["dev"]
  selves = [r for r in dev if r.startswith("assljax[")]
  assert len(selves) == 1 and set(selves[0][8:-1].split(",")) == set(extras) - {"dev"}, dev
  assert {"pytest", "pytest-xdist", "hypothesis"} <= {_name(r) for r in dev}


def test_require_names_the_extra_in_one_line(monkeypatch):
  monkeypatch.setitem(sys.modules, "neural_tangents", None)  # as if not installed
  with pytest.raises(_optional.MissingDependencyError) as info:
    _optional.require("neural_tangents.stax", extra="infinite")
  err = info.value
  assert isinstance(err, ModuleNotFoundError)
  assert (err.name, err.extra) == ("neural_tangents", "infinite")
  assert str(err) == ("infinite-width kernels need neural-tangents, which is not installed; "
                      "run: pip install 'assljax[infinite]'")
  # an extra is complete or missing: tfds without TensorFlow names the extra too
  monkeypatch.setitem(sys.modules, "tensorflow", None)
  with pytest.raises(_optional.MissingDependencyError, match=r"need tensorflow, .*'assljax\[tfds\]'"):
    _optional.check("tensorflow_datasets", extra="tfds")
  monkeypatch.setitem(sys.modules, "sklearn", None)
  with pytest.raises(_optional.MissingDependencyError,
                     match=r"^the embedded digits data need scikit-learn, which is not installed; "
                           r"run: pip install scikit-learn$"):
    _optional.require("sklearn.datasets")
  assert _optional.require("json") is sys.modules["json"]
  with pytest.raises(ValueError, match="unknown extra"):
    _optional.require("json", extra="json")


# Runs in a fresh interpreter where TensorFlow, tensorflow-datasets and neural-tangents
# cannot be imported (None in sys.modules: `import` raises ModuleNotFoundError and
# importlib.util.find_spec returns None, exactly as when they are not installed).
_CHILD = textwrap.dedent('''
    import contextlib, io, json, os, sys
    BLOCKED = ("tensorflow", "tensorflow_datasets", "neural_tangents", "tf2jax")
    for name in BLOCKED:
      sys.modules[name] = None

    import numpy as np
    import assljax
    from assljax import data
    from assljax.app import cli
    from assljax.kernels import Kernel

    work, config = sys.argv[1], sys.argv[2]
    out = {}

    def cli_main(*argv):
      err = io.StringIO()
      with contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
      return code, err.getvalue().strip().splitlines()

    def message(fn):
      try:
        fn()
      except ModuleNotFoundError as e:
        return type(e).__name__, str(e)
      return None

    # the core path: digits, training, two strategies (NPC on the closed-form NTK), the report
    out["digits"] = len(data.load("digits", max_train=50, max_test=20).train.y)
    out["run"] = cli_main("run", "--config", config, "--workdir", os.path.join(work, "run"))
    out["report"] = cli_main("report", os.path.join(work, "run"), "--out",
                             os.path.join(work, "report"))
    with open(os.path.join(work, "run", "results.json")) as f:
      records = json.load(f)
    records = records["records"] if isinstance(records, dict) else records
    out["strategies"] = sorted({r["strategy"] for r in records})
    out["report_files"] = sorted(os.listdir(os.path.join(work, "report")))

    # what needs an extra says which one
    out["tfds_cli"] = cli_main("run", "--config", config, "--workdir", os.path.join(work, "tfds"),
                               "--config.dataset.name=cifar10", "--config.dataset.max_train=50")
    out["tfds"] = message(lambda: data.load("cifar10", data_dir=work))
    out["infinite"] = message(lambda: Kernel.infinite("mlp", num_classes=10))
    out["stax"] = message(lambda: assljax.kernels.stax)
    out["audio"] = message(lambda: data.log_mel_spectrogram(np.zeros((1, 16000), np.float32)))
    out["imported"] = sorted(m for m in BLOCKED if sys.modules.get(m) is not None)
    print("RESULT " + json.dumps(out))
''')

_TINY = textwrap.dedent('''
    import ml_collections

    def get_config(arg=None):
      c = ml_collections.ConfigDict()
      c.experiment = "core"
      c.dataset = ml_collections.ConfigDict(dict(
          name="digits", data_dir=None, seed=0, max_train=120, max_test=60,
          options=ml_collections.ConfigDict()))
      c.model = ml_collections.ConfigDict(dict(name="mlp", options=dict(width=16, depth=1)))
      c.ssl = ml_collections.ConfigDict(dict(
          algorithm="fixmatch", options=ml_collections.ConfigDict(dict(threshold=0.7)),
          batch_size=8, mu=2, lr=None, weight_decay=None, total_steps=4, ema_decay=0.9,
          compute_dtype="float32", steps_per_round=4, reinit=True, early_stopping=None,
          augment=ml_collections.ConfigDict(dict(flip=False, pad=1, num_ops=1,
                                                 cutout_fraction=0.25))))
      c.al = ml_collections.ConfigDict(dict(initial_per_class=1, query_size=5, budget=15,
                                            mode="sequential", initial_trials=1,
                                            initial_sampling="balanced", initial_extra=0))
      c.strategies = ["npc", "entropy"]
      c.strategy_options = ml_collections.ConfigDict()
      c.seeds = [0]
      c.oracle = "simulated"
      c.checkpoint_every = 4
      c.eval_batch_size = 64
      c.progress = False
      c.num_devices = None
      return c
''')


def _line(extra: str, uses: str, package: str) -> str:
  return f"{uses} need {package}, which is not installed; run: pip install 'assljax[{extra}]'"


@pytest.mark.slow
def test_core_path_runs_without_tensorflow_and_extras_are_named(tmp_path):
  config = tmp_path / "core.py"
  config.write_text(_TINY)
  proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(config)],
                        capture_output=True, text=True, cwd=tmp_path, timeout=600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
  out = json.loads(lines[-1][len("RESULT "):])

  assert out["digits"] == 50
  assert out["run"] == [0, []], out["run"]
  assert out["report"][0] == 0, out["report"]
  assert out["strategies"] == ["entropy", "npc"]
  assert "learning_curves.png" in out["report_files"], out["report_files"]

  tfds_line = _line("tfds", "tensorflow-datasets sources", "tensorflow-datasets")
  assert out["tfds_cli"] == [2, [f"assljax: error: {tfds_line}"]], out["tfds_cli"]
  assert out["tfds"] == ["MissingDependencyError", tfds_line]
  infinite_line = _line("infinite", "infinite-width kernels", "neural-tangents")
  assert out["infinite"] == ["MissingDependencyError", infinite_line]
  assert out["stax"] == ["MissingDependencyError", infinite_line]
  assert out["audio"] == ["MissingDependencyError",
                          _line("audio", "audio spectrograms", "tensorflow")]
  assert out["imported"] == []
