"""The paper configs in experiments/configs: runlocal variants, arguments, one round each.

* Every config's full setting is the reference scale, and its ``runlocal`` variant keeps
  every code path of the full one (same data source, algorithm, strategies, modes,
  kernels and initial sampling) while shrinking steps, pool, rounds, initial trials and
  seeds. That the full settings are the papers' protocols is checked against
  ``experiments/configs/paper_tables.py`` in ``test_paper_tables.py`` (CRC, NPC,
  dynamicAL) and below (Bilevel coreset).
* Every config's ``runlocal`` variant runs one acquisition round in-process
  (``experiment.prepare`` + ``run_experiment``) on mock tensorflow-datasets data
  (balanced random images; tones for audio) or on ``../shared/data/cifar10``; the
  records are checked against the schedule and the simulated oracle. Over the file,
  every strategy named by some config runs at least once, as do the zero-shot,
  single-shot and random-init-first modes and the all-layer and last-layer kernels.

For time, the runs share compiled trainers between configs whose data, model and SSL
sections are identical, train 2 steps per round on batches of 8 and switch RandAugment
and Cutout off (the augmentations have their own tests in tests/ssl). The dynamicAL
protocols (500 initial labels, queries of 250) run with 50 initial labels and queries of
25, and the bilevel coreset picks 2 of its 10 samples greedily (8 at random): the same
code paths at a tenth of the per-sample gradients and kernel evaluations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from assljax.app import configs, experiment

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")

ROOT = Path(os.path.abspath(__file__)).parents[2]
CONFIG_DIR = ROOT / "experiments" / "configs"
# ../shared/data/cifar10 relative to the repository root, as the configs resolve it
SHARED_CIFAR10 = Path(os.path.normpath(ROOT / ".." / "shared" / "data" / "cifar10"))
CONFIGS = ("crc_cifar10", "crc_cifar100", "crc_svhn", "crc_ablation_layers",
           "crc_ablation_group", "npc_cifar10", "npc_cifar100", "npc_shots",
           "dynamical_cifar10", "dynamical_svhn", "dynamical_rounds",
           "bilevel_speech_commands", "bilevel_spoken_digit")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn_cropped": 10, "speech_commands": 12,
               "spoken_digit": 10, "imagefolder": 10}


# bilevel_speech_commands has no default data source; here it runs on tfds (12 classes)
NEEDS_DATA = {"bilevel_speech_commands": "data=tfds"}


def load(name: str, arg: str | None = None):
  if name in NEEDS_DATA and "data=" not in (arg or ""):
    arg = ",".join(filter(None, [NEEDS_DATA[name], arg]))
  spec = str(CONFIG_DIR / f"{name}.py") + ("" if arg is None else f":{arg}")
  return configs.load_config(spec)


def options(config, label: str) -> dict:
  value = config.strategy_options.get(label, {})
  return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def registry_name(config, label: str) -> str:
  return options(config, label).get("name", label)


def initial_labels(config) -> int:
  return (config.al.initial_per_class * NUM_CLASSES[config.dataset.name]
          + config.al.get("initial_extra", 0))


# ------------------------------------------------------------------ full vs runlocal


@pytest.mark.parametrize("name", CONFIGS)
def test_full_config_is_the_reference_scale_and_runlocal_keeps_its_code_paths(name):
  full, local = load(name), load(name, "runlocal")
  experiment.check_config(full)
  experiment.check_config(local)
  # Full scale: tfds default data directory, the whole pool, several seeds.
  assert full.dataset.data_dir is None and full.dataset.max_train is None
  assert full.dataset.max_test is None and len(full.seeds) >= 3
  assert full.ssl.steps_per_round >= 1000 and full.ssl.total_steps >= full.ssl.steps_per_round
  assert full.oracle == "simulated"
  # runlocal: same data source, algorithm, strategies, modes, kernels, schedule shape.
  assert local.dataset.name == full.dataset.name
  assert local.dataset.options.to_dict() == full.dataset.options.to_dict()
  assert local.ssl.algorithm == full.ssl.algorithm and local.ssl.reinit == full.ssl.reinit
  assert local.ssl.augment.to_dict() == full.ssl.augment.to_dict()
  assert sorted(local.ssl.options.keys()) == sorted(full.ssl.options.keys())
  assert list(local.strategies) == list(full.strategies)
  for label in full.strategies:
    f, lo = options(full, label), options(local, label)
    assert {k: f.get(k) for k in ("name", "mode", "kernel")} == \
        {k: lo.get(k) for k in ("name", "mode", "kernel")}
    assert sorted(lo.get("hparams", {})) == sorted(f.get("hparams", {}))
  assert local.al.mode == full.al.mode
  assert local.al.initial_per_class == full.al.initial_per_class
  assert local.al.initial_sampling == full.al.initial_sampling
  assert local.al.query_size == full.al.query_size
  # ... and shrinks: at most 2 queries and 3 initial trials, one seed, a bounded pool, far
  # fewer steps.
  full_queries = (full.al.budget - initial_labels(full)) // full.al.query_size
  assert local.al.budget == initial_labels(local) + min(2, full_queries) * local.al.query_size
  assert local.al.initial_trials == min(full.al.initial_trials, 3)
  assert local.seeds == [0]
  assert local.dataset.max_train >= 2 * local.al.budget and local.dataset.max_test <= 1000
  assert local.ssl.steps_per_round <= 200 and local.ssl.total_steps == local.ssl.steps_per_round
  if (local.model.name, local.model.options.to_dict()) != \
      (full.model.name, full.model.options.to_dict()):
    if full.model.name == "vgg11_torchvision":  # the VGG-11 stack at CPU cost
      assert local.model.name == "vgg11"
    else:  # the WRN code path at CPU cost
      assert full.model.name.startswith("wrn-28-") or (
          full.model.name == "wrn" and full.model.options.depth == 28)
      assert (local.model.name, local.model.options.to_dict()) == \
          ("wrn", {"depth": 10, "widen_factor": 1})


def test_runlocal_scales_early_stopping():
  full, local = load("crc_cifar10", "train=crc"), load("crc_cifar10", "train=crc,runlocal")
  assert full.ssl.early_stopping.to_dict() == dict(eval_every=1024, patience=50 * 1024,
                                                   validation_size=5000)
  assert local.ssl.early_stopping.to_dict() == dict(eval_every=50, patience=100,
                                                    validation_size=200)
  assert load("crc_cifar10", "runlocal").ssl.get("early_stopping") is None


# ----------------------------------- the protocols (CRC, NPC, dynamicAL, Bilevel:
# test_paper_tables.py)


# ------------------------------------------------------------------------ arguments


def test_arguments_are_parsed_and_bad_ones_refused():
  with pytest.raises(ValueError, match="unknown config argument 'b'.*accepted: data, q, "
                                       "runlocal, train"):
    load("crc_cifar10", "b=3")
  with pytest.raises(ValueError, match="q=75 must be one of 50, 100"):
    load("crc_cifar10", "q=75")
  with pytest.raises(ValueError, match="q=x must be of type int"):
    load("crc_cifar10", "q=x")
  with pytest.raises(ValueError, match="q=True must be of type int"):
    load("crc_cifar10", "q=True")
  with pytest.raises(ValueError, match="config argument 'data' needs a value"):
    load("crc_cifar10", "data")
  with pytest.raises(ValueError, match="train='fixmatch' must be one of reference, crc"):
    load("crc_svhn", "train=fixmatch")
  with pytest.raises(ValueError, match="first='trained' must be one of random, untrained"):
    load("crc_ablation_layers", "first=trained")
  with pytest.raises(ValueError, match="b=300 must be one of 100, 250, 500, 1000"):
    load("dynamical_rounds", "b=300")
  with pytest.raises(ValueError, match="b=1000 must be one of 250, 500"):
    load("dynamical_cifar10", "b=1000")
  with pytest.raises(ValueError, match="q=40 must be one of 30, 50"):
    load("npc_shots", "q=40")
  with pytest.raises(ValueError, match="bilevel_speech_commands needs data=PATH"):
    configs.load_config(str(CONFIG_DIR / "bilevel_speech_commands.py"))
  folder = load("bilevel_speech_commands", "data=/data/sc35")
  assert (folder.dataset.name, folder.dataset.options.root) == ("audiofolder", "/data/sc35")
  assert (folder.al.initial_per_class, folder.al.initial_extra) == (1, 15)  # 35 + 15 = 50
  tfds_sc = load("bilevel_speech_commands", "data=tfds")
  assert (tfds_sc.dataset.name, tfds_sc.al.initial_extra, tfds_sc.al.budget) == (
      "speech_commands", 38, 200)  # 12 classes + 38 = 50
  combined = load("dynamical_cifar10", "b=500,runlocal")
  assert combined.al.query_size == 500 and combined.seeds == [0]


def test_imagefolder_argument_takes_a_path_and_can_be_overridden(tmp_path):
  config = load("dynamical_cifar10", f"data={SHARED_CIFAR10}")
  assert config.dataset.name == "imagefolder" and config.dataset.data_dir is None
  assert config.dataset.options.to_dict() == {"root": str(SHARED_CIFAR10)}
  other = load("npc_cifar10", f"data={tmp_path}")
  assert other.dataset.options.root == str(tmp_path)
  # The key exists, so the usual command-line override can point it elsewhere.
  configs.apply_overrides(config, [f"dataset.options.root={tmp_path}"])
  assert config.dataset.options.root == str(tmp_path)
  # `options` are the loader's keyword arguments: on a tfds config the new key is
  # accepted by the override and refused by the tfds loader, not silently ignored.
  tfds_config = load("dynamical_cifar10")
  configs.apply_overrides(tfds_config, [f"dataset.options.root={tmp_path}"])
  from assljax import data
  with pytest.raises(ValueError, match="root"):
    data.load(tfds_config.dataset.name, **tfds_config.dataset.options.to_dict())


# ----------------------------------------------------------------- mock tfds sources


def _tone(freq, rate, n):
  return 0.4 * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def _rows(name: str, split: str, sizes: dict) -> tuple[list, dict]:
  """Deterministic examples of tfds ``name``/``split`` with balanced labels (``k % C``)."""
  n = sizes[name][split]
  rng = np.random.default_rng([len(name), n])
  if name in ("speech_commands", "spoken_digit"):
    rate = 16_000 if name == "speech_commands" else 8_000
    rows = []
    for k in range(n):
      label = k % NUM_CLASSES[name]
      wave = np.round(32767 * _tone(200 + 90 * label + rng.uniform(0, 20), rate,
                                    int(rate * rng.uniform(0.5, 1.0)))).astype(np.int64)
      row = {"audio": wave, "label": label}
      if name == "spoken_digit":  # recordings 0-4 are the official test split
        row["audio/filename"] = f"{label}_mock_{k // 10 + (0 if split == 'test' else 5)}.wav"
      rows.append(row)
    spec = {"audio": tf.TensorSpec((None,), tf.int64), "label": tf.TensorSpec((), tf.int64)}
    if name == "spoken_digit":
      spec["audio/filename"] = tf.TensorSpec((), tf.string)
    return rows, spec
  rows = [{"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
           "label": k % NUM_CLASSES[name]} for k in range(n)]
  spec = {"image": tf.TensorSpec((32, 32, 3), tf.uint8), "label": tf.TensorSpec((), tf.int64)}
  return rows, spec


def mock_tfds(sizes: dict):
  """``tfds.testing.mock_data`` serving :func:`_rows` (spoken_digit: its single ``train``
  split holds both the train and the test recordings)."""

  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **_):
    del decoders, read_config, shuffle_files
    split = str(split)
    if self.name == "spoken_digit":
      train, spec = _rows(self.name, "train", sizes)
      test, _ = _rows(self.name, "test", sizes)
      rows = test + train
    else:
      rows, spec = _rows(self.name, split, sizes)
    return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=spec)

  return tfds.testing.mock_data(as_dataset_fn=as_dataset)


# ------------------------------------------------------------- one round per config

# config, argument, labels to run (over the file: every strategy named by some config),
# mock split sizes (None: the shared ImageFolder when present, else mock cifar10)
RUNS = [
    # The CRC runs on 120 samples share one trainer (identical data, model and SSL
    # sections); the small pool also keeps the all-layer NTK of every unlabeled sample,
    # this file's costliest step, cheap. crc_g10 (100 initial labels, Q = 100) needs 240.
    ("crc_cifar10", "runlocal", ["crc", "egl"], {"cifar10": dict(train=120, test=20)}),
    ("crc_ablation_layers", "runlocal", ["crc_all_layers", "crc_last_layer"],
     {"cifar10": dict(train=120, test=20)}),
    ("crc_ablation_layers", "first=untrained,runlocal", ["crc_last_layer"],
     {"cifar10": dict(train=120, test=20)}),
    ("crc_ablation_group", "runlocal", ["crc_g10"], {"cifar10": dict(train=240, test=20)}),
    ("crc_cifar100", "runlocal", ["random"], {"cifar100": dict(train=300, test=100)}),
    ("crc_svhn", "runlocal", ["crc"], {"svhn_cropped": dict(train=160, test=20)}),
    ("npc_cifar10", "runlocal", ["npc"], {"cifar10": dict(train=120, test=20)}),
    ("npc_shots", "runlocal", ["npc_zero_shot", "badge_single_shot"],
     {"cifar10": dict(train=120, test=20)}),
    ("npc_cifar100", "runlocal", ["albl"], {"cifar100": dict(train=320, test=100)}),
    ("dynamical_cifar10", f"data={SHARED_CIFAR10},runlocal",
     ["dynamicAL", "coreset", "confidence", "margin", "entropy"], None),
    ("dynamical_rounds", f"data={SHARED_CIFAR10},runlocal", ["dynamicAL"], None),
    ("dynamical_svhn", "runlocal", ["random"], {"svhn_cropped": dict(train=100, test=20)}),
    ("bilevel_speech_commands", "data=tfds,runlocal", ["bilevel"],
     {"speech_commands": dict(train=120, test=12)}),
    ("bilevel_spoken_digit", "runlocal", ["uniform", "consistency"],
     {"spoken_digit": dict(train=30, test=10)}),
]
RUN_IDS = [name + "".join(f":{a}" for a in arg.split(",")
                         if a != "runlocal" and not a.startswith("data=/"))
           for name, arg, *_ in RUNS]
STEPS = 2


def test_runs_cover_every_config_strategy_mode_and_kernel():
  assert sorted({name for name, *_ in RUNS}) == sorted(CONFIGS)
  named, run = set(), set()
  for name, arg, labels, _ in RUNS:
    config = load(name, arg)
    named |= {registry_name(config, label) for label in config.strategies}
    run |= {registry_name(config, label) for label in labels}
    run |= {options(config, label).get("mode", config.al.mode) for label in labels}
    run |= {options(config, label).get("kernel") for label in labels}
  assert named <= run
  assert {"zero_shot", "single_shot", "random_init_first", "all_layers", "last_layer"} <= run


def for_test(config, labels: list[str], *, sizes):
  """One seed, one acquisition (budget = initial + Q), tiny training, only ``labels``."""
  config = configs.from_json(configs.to_json(config))
  config.strategy_options = {k: v for k, v in config.strategy_options.items() if k in labels}
  config.strategies = list(labels)
  config.seeds = [0]
  config.ssl.steps_per_round = config.ssl.total_steps = STEPS
  config.ssl.batch_size = 8
  if config.ssl.algorithm in ("fixmatch", "fixmatch_darp"):
    config.ssl.mu = 1
  if config.ssl.algorithm == "fixmatch_darp":  # refine at every step: DARP's solver runs
    config.ssl.options.update(warmup_steps=0, refine_every=1)
  config.ssl.augment.num_ops = 0
  config.ssl.augment.cutout_fraction = 0.0
  config.checkpoint_every = STEPS
  config.eval_batch_size = 64
  config.progress = False
  if "bilevel" in config.strategy_options:
    config.strategy_options.bilevel.hparams.update(
        landmarks=16, augmentations=1, inner_steps=10, inner_batch_size=8, cg_steps=5,
        random_fraction=0.8, chunk_size=8, outer_size=16)
  if config.ssl.algorithm == "supervised":  # dynamicAL's protocols, at a tenth of the size
    config.al.initial_per_class, config.al.query_size = 5, 25
  config.al.budget = initial_labels(config) + config.al.query_size
  if sizes is None and not SHARED_CIFAR10.is_dir():
    config.dataset.name = "cifar10"  # no shared copy here: the same protocol on mock tfds
    config.dataset.options = {}
  if config.dataset.name == "imagefolder":
    config.dataset.max_train, config.dataset.max_test = 100, 50  # stratified subsamples
  return config


_PREPARED = {}


def _prepare(config, sizes):
  """``experiment.prepare``, reusing the model, trainer and data of an earlier config whose
  data, model and SSL sections are identical (one compilation per group)."""
  sections = ml_collections.ConfigDict({k: config[k] for k in ("dataset", "model", "ssl")})
  key = (configs.to_json(sections), repr(sizes))
  if key in _PREPARED:
    prepared = _PREPARED[key]
    plans = {label: experiment.make_plan(config, label, prepared.model, prepared.dataset)
             for label in config.strategies}
    return prepared._replace(config=config, plans=plans)
  if config.dataset.name == "imagefolder":
    prepared = experiment.prepare(config, log=lambda _: None)
  else:
    with mock_tfds(sizes or {"cifar10": dict(train=100, test=20)}):
      prepared = experiment.prepare(config, log=lambda _: None)
  _PREPARED[key] = prepared
  return prepared


@pytest.mark.slow
@pytest.mark.parametrize("name, arg, labels, sizes", RUNS, ids=RUN_IDS)
def test_runlocal_runs_one_round(name, arg, labels, sizes, tmp_path):
  from assljax.data.pool import initial_pool

  full = load(name, arg)
  experiment.check_config(full)
  config = for_test(full, labels, sizes=sizes)
  prepared = _prepare(config, sizes)
  dataset = prepared.dataset
  status = experiment.run_experiment(prepared, str(tmp_path), log=lambda _: None)
  assert status.status == "done"

  y = dataset.train.y
  c = dataset.num_classes
  initial = np.flatnonzero(initial_pool(y, config.al.initial_per_class, key=0, num_classes=c,
                                        sampling=config.al.initial_sampling,
                                        extra=config.al.initial_extra).labeled_mask)
  assert initial.size == initial_labels(config)
  q = config.al.query_size
  for label in labels:
    records = sorted((r for r in status.records if r["label"] == label),
                     key=lambda r: r["round"])
    assert [r["round"] for r in records] == [0, 1]
    first, last = records
    assert {r["strategy"] for r in records} == {registry_name(config, label)}
    assert {r["experiment"] for r in records} == {config.experiment}
    queried = np.asarray(first["queried_indices"])
    assert queried.shape == (q,) and np.unique(queried).size == q
    assert not np.isin(queried, initial).any() and queried.max() < y.size
    assert last["queried_indices"] == []
    assert (first["num_labels"], last["num_labels"]) == (initial.size, initial.size + q)
    # The simulated oracle answered with the ground truth of the queried samples.
    assert first["labeled_class_histogram"] == np.bincount(y[initial], minlength=c).tolist()
    assert last["labeled_class_histogram"] == np.bincount(
        np.concatenate([y[initial], y[queried]]), minlength=c).tolist()
    for r in records:
      assert 0.0 <= r["test_accuracy"] <= 1.0 and len(r["per_class_accuracy"]) == c
    if options(config, label).get("mode", config.al.mode) in ("zero_shot", "random_init_first"):
      assert first["training_seconds"] == 0.0  # acquired with the untrained network
    else:
      assert first["training_seconds"] > 0.0
  with open(os.path.join(tmp_path, "results.json")) as f:
    assert json.load(f) == status.records
