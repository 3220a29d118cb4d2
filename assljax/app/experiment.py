"""From an experiment config to runs: the application layer behind `assljax run`.

This is the one place that reads a config; everything it calls takes explicit
arguments. A config (``experiments/configs/*.py``, ``get_config(arg)``) has:

    experiment        name written into every record
    dataset           name, data_dir, seed, max_train, max_test, options
    model             name, options
    ssl               algorithm ("fixmatch", "fixmatch_darp", "mixmatch", "mean_teacher",
                      "supervised"), options (the algorithm's keyword arguments),
                      batch_size, mu, optimizer (None = the algorithm's own, or "sgd" =
                      Nesterov SGD with the cosine schedule, or "adam"), lr, weight_decay
                      (None = the reference values of the optimizer), total_steps (length
                      K of the cosine schedule), ema_decay,
                      compute_dtype ("float32" | "bfloat16"), steps_per_round, reinit,
                      augment (flip, pad, num_ops, cutout_fraction, audio: True trains
                      audio datasets on their waveforms with the Bilevel paper's
                      augmentations before the log-mel transform), early_stopping (None
                      or dict(eval_every, patience, validation_size))
    al                initial_per_class, query_size, budget (all labels, initial ones
                      included), mode ("sequential" | "random_init_first" |
                      "single_shot" | "zero_shot"), initial_trials (optional, default 1:
                      train K models in the first trained round, keep the median one),
                      initial_sampling (optional, "balanced" | "iid"), initial_extra
                      (optional, default 0: more initial labels drawn at random)
    strategies        list of run labels, e.g. ["random", "npc", "npc_zero_shot"]
    strategy_options  per label (optional): name (registry name, default the label),
                      mode (overrides al.mode), kernel (None | "last_layer" |
                      "all_layers" | "infinite"), hparams (the strategy's keyword
                      arguments)
    seeds             list of ints; one run per (label, seed)
    oracle            "simulated" | "human"
    checkpoint_every  training steps between checkpoints
    metrics_every     training steps between lines of metrics.jsonl / TensorBoard
                      (optional; None: checkpoint_every)
    eval_batch_size, progress

Layout of a workdir:

    WORKDIR/config.json                    the resolved config (what --resume reads)
    WORKDIR/results.json                   every record of every run (docs/results_schema.md)
    WORKDIR/runs/LABEL/seed_S/             one run: checkpoints/, records.json,
                                           queries/ and labels/ (human oracle)
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from typing import Any, Callable, NamedTuple

import ml_collections

from assljax._validation import UserInputError, check_int, check_positive_int
from assljax.app import configs as configs_lib
from assljax.loop.checkpoint import CheckpointError, Checkpoints
from assljax.loop.oracle import OracleKind, export_queries, labels_path, queries_path
from assljax.loop.round import RunStatus, Status, _write_json, run_loop
from assljax.loop.state import Phase, RunMeta, Schedule

ALGORITHMS = ("fixmatch", "fixmatch_darp", "mixmatch", "mean_teacher", "supervised")
KERNELS = (None, "last_layer", "all_layers", "infinite")


class RunPlan(NamedTuple):
  """What the runs of one label share: strategy, schedule and kernel."""
  strategy: Any
  schedule: Schedule
  kernel_factory: Any


class Prepared(NamedTuple):
  """Everything built from a config before any run starts (so bad input fails early).

  ``validation`` is the ``(x, y)`` split held out of the pool for early stopping
  (``ssl.early_stopping``), or None.
  """
  config: ml_collections.ConfigDict
  dataset: Any
  model: Any
  trainer: Any
  plans: dict
  validation: Any = None


def _plain(value: Any) -> Any:
  return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def _dtype(name: str):
  import jax.numpy as jnp
  dtypes = {"float32": None, "bfloat16": jnp.bfloat16}
  if name not in dtypes:
    raise UserInputError(f"ssl.compute_dtype must be 'float32' or 'bfloat16', got {name!r}")
  return dtypes[name]


def _augmentations(augment: ml_collections.ConfigDict, dataset: Any = None
                   ) -> tuple[Callable, Callable]:
  """The ``(weak, strong)`` callables of ``ssl.augment``.

  Images: flip/crop and RandAugment + Cutout. With ``ssl.augment.audio = True`` (default
  False; audio datasets only) the training inputs are the waveforms
  ``dataset.train_waveforms`` (``run_loop(train_x=...)``) and both callables turn them
  into spectrograms: the paper's waveform augmentations, the log-mel transform, and for
  the strong view RandAugment (``num_ops``) + Cutout (``cutout_fraction``) on the
  spectrogram; ``flip`` and ``pad`` do not apply (:mod:`assljax.ssl.audio_augment`).
  """
  from assljax.ssl import augment as augment_lib
  audio = augment.get("audio", False)
  if not isinstance(audio, bool):
    raise UserInputError(f"ssl.augment.audio must be True or False, got {audio!r}")
  if audio:
    from assljax.ssl import audio_augment
    if dataset is None or dataset.kind != "audio":
      kind = None if dataset is None else dataset.kind
      raise UserInputError(f"ssl.augment.audio needs an audio dataset, got kind {kind!r}")
    if dataset.train_waveforms is None:
      raise UserInputError(f"ssl.augment.audio needs the waveforms of dataset {dataset.name!r}; "
                           f"load it with keep_waveforms=True (the default)")
    return audio_augment.audio_augmentations(
        background_noise=dataset.background_noise, num_ops=int(augment.num_ops),
        cutout_fraction=float(augment.cutout_fraction))
  weak = functools.partial(augment_lib.weak_augment, flip=bool(augment.flip),
                           pad=int(augment.pad))
  strong = functools.partial(augment_lib.strong_augment, flip=bool(augment.flip),
                             pad=int(augment.pad), num_ops=int(augment.num_ops),
                             cutout_fraction=float(augment.cutout_fraction))
  return weak, strong


def build_algorithm(name: str, options: dict, weak: Callable, strong: Callable):
  """The :mod:`assljax.ssl` algorithm ``name`` with ``options`` and the augmentations."""
  from assljax import ssl
  if name not in ALGORITHMS:
    raise UserInputError(f"ssl.algorithm must be one of {', '.join(ALGORITHMS)}, got {name!r}")
  constructor = getattr(ssl, name)
  accepted = inspect.signature(constructor).parameters
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    shown = ", ".join(p for p in accepted if p not in ("weak", "strong"))
    raise UserInputError(f"unknown ssl.options for {name}: {', '.join(unknown)}; "
                         f"accepted: {shown}")
  kwargs = dict(options)
  if "weak" in accepted:
    kwargs["weak"] = weak
  if "strong" in accepted:
    kwargs["strong"] = strong
  try:
    return constructor(**kwargs)
  except ValueError as err:
    raise UserInputError(f"config.ssl.options ({name}): {err}") from None


def check_config(config: ml_collections.ConfigDict) -> None:
  """Structural checks that need no data; raises ValueError naming the field."""
  for section in ("dataset", "model", "ssl", "al", "strategy_options"):
    if section not in config:
      raise UserInputError(f"config has no {section!r} section")
  for field in ("experiment", "strategies", "seeds", "oracle", "checkpoint_every"):
    if field not in config:
      raise UserInputError(f"config has no {field!r} field")
  if not config.strategies:
    raise UserInputError("config.strategies is empty")
  if len(set(config.strategies)) != len(config.strategies):
    raise UserInputError("config.strategies has duplicate labels")
  if not config.seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in config.seeds):
    raise UserInputError(f"config.seeds must be a non-empty list of integers, got {config.seeds!r}")
  if len(set(config.seeds)) != len(config.seeds):
    raise UserInputError("config.seeds has duplicates")
  if config.oracle not in tuple(OracleKind):
    raise UserInputError(f"config.oracle must be 'simulated' or 'human', got {config.oracle!r}")
  for key in ("steps_per_round", "batch_size", "total_steps"):
    value = config.ssl[key]
    check_positive_int(f"config.ssl.{key}", value)
  _check_ssl_numbers(config.ssl)
  _check_early_stopping(config.ssl.get("early_stopping"))
  trials = config.al.get("initial_trials", 1)
  check_positive_int("config.al.initial_trials", trials)
  check_int("config.al.initial_extra", config.al.get("initial_extra", 0), low=0)
  check_positive_int("config.num_devices", config.get("num_devices"), allow_none=True)
  check_positive_int("config.metrics_every", config.get("metrics_every"), allow_none=True)
  check_positive_int("config.checkpoint_every", config.checkpoint_every)
  # Options of labels not in `strategies` are inactive, so that a subset of a config's
  # strategies can be run with --config.strategies=[...].
  from assljax import acquisition
  for label in config.strategies:
    options = config.strategy_options.get(label, ml_collections.ConfigDict())
    extra = sorted(set(options) - {"name", "mode", "kernel", "hparams"})
    if extra:
      raise UserInputError(f"config.strategy_options.{label} has unknown fields: "
                           f"{', '.join(extra)}")
    name = options.get("name", label)
    if name not in acquisition.available():
      raise UserInputError(f"strategy {name!r} (label {label!r}) is not one of "
                           f"{', '.join(acquisition.available())}")
    if options.get("kernel", None) not in KERNELS:
      raise UserInputError(f"config.strategy_options.{label}.kernel must be one of {KERNELS}")


def _check_ssl_numbers(ssl_config: ml_collections.ConfigDict) -> None:
  """Finite, in-range optimizer numbers (the algorithm checks its own options)."""
  from assljax._validation import check_number
  bounds = {"lr": dict(low=0.0, include_low=False), "end_lr": dict(low=0.0),
            "weight_decay": dict(low=0.0), "ema_decay": dict(low=0.0, high=1.0)}
  for key, bound in bounds.items():
    if ssl_config.get(key) is not None:
      check_number(f"config.ssl.{key}", ssl_config.get(key), **bound)


def prepare(config: ml_collections.ConfigDict, *, log: Callable[[str], None] = print) -> Prepared:
  """Loads the dataset and builds the model and trainer shared by all runs."""
  from assljax import data as data_lib
  from assljax import models, ssl

  check_config(config)
  ds_cfg = config.dataset
  dataset = data_lib.load(ds_cfg.name, data_dir=ds_cfg.get("data_dir"), seed=ds_cfg.seed,
                          max_train=ds_cfg.get("max_train"), max_test=ds_cfg.get("max_test"),
                          **_plain(ds_cfg.get("options", {})))
  dataset, validation = _hold_out_validation(dataset, config.ssl.get("early_stopping"),
                                             seed=ds_cfg.seed)
  log(f"dataset {dataset.name}: {len(dataset.train.y)} pool / {len(dataset.test.y)} test "
      f"samples of shape {dataset.input_shape}, {dataset.num_classes} classes"
      + ("" if validation is None else f", {len(validation[1])} held out for validation"))
  model = models.build(config.model.name, num_classes=dataset.num_classes,
                       input_shape=dataset.input_shape, input_mean=dataset.mean,
                       input_std=dataset.std, **_plain(config.model.get("options", {})))
  mesh = _mesh(config.get("num_devices"))
  weak, strong = _augmentations(config.ssl.augment, dataset)
  algorithm = build_algorithm(config.ssl.algorithm, _plain(config.ssl.options), weak, strong)
  trainer = ssl.make_trainer(
      model, algorithm, batch_size=config.ssl.batch_size, total_steps=config.ssl.total_steps,
      mu=config.ssl.get("mu"), lr=config.ssl.get("lr"),
      weight_decay=config.ssl.get("weight_decay"), ema_decay=config.ssl.ema_decay,
      compute_dtype=_dtype(config.ssl.compute_dtype), optimizer=_optimizer(config.ssl),
      mesh=mesh)
  plans = {label: make_plan(config, label, model, dataset) for label in config.strategies}
  return Prepared(config, dataset, model, trainer, plans, validation)


EARLY_STOPPING_KEYS = ("eval_every", "patience", "validation_size")


def _check_early_stopping(options: Any) -> dict | None:
  if options is None:
    return None
  options = _plain(options)
  if not isinstance(options, dict) or set(options) != set(EARLY_STOPPING_KEYS):
    raise UserInputError(f"config.ssl.early_stopping must be None or have exactly the keys "
                         f"{', '.join(EARLY_STOPPING_KEYS)}, got {options!r}")
  for key in EARLY_STOPPING_KEYS:
    value = options[key]
    check_positive_int(f"config.ssl.early_stopping.{key}", value)
  return options


def _hold_out_validation(dataset: Any, options: Any, *, seed: int) -> tuple[Any, Any]:
  """Removes a stratified validation split from the pool when early stopping is on.

  The held-out samples can never be queried; their labels serve only the stopping rule,
  so the test split is never looked at during training (CRC §4.1 stops on validation
  accuracy).
  """
  import dataclasses

  import numpy as np

  from assljax.data.dataset import Split, stratified_indices, subsample_rng
  options = _check_early_stopping(options)
  if options is None:
    return dataset, None
  size, n = options["validation_size"], len(dataset.train.y)
  if size >= n:
    raise UserInputError(f"config.ssl.early_stopping.validation_size={size} leaves no pool "
                         f"out of {n} training samples")
  held = np.sort(stratified_indices(np.asarray(dataset.train.y), size,
                                    subsample_rng(seed, "validation")))
  keep = np.setdiff1d(np.arange(n), held)
  train = Split(*(np.asarray(a)[keep] for a in dataset.train))
  waveforms = getattr(dataset, "train_waveforms", None)
  changes = dict(train=train)
  if waveforms is not None:
    changes["train_waveforms"] = np.asarray(waveforms)[keep]
  validation = (np.asarray(dataset.train.x)[held], np.asarray(dataset.train.y)[held])
  return dataclasses.replace(dataset, **changes), validation


def make_plan(config: ml_collections.ConfigDict, label: str, model: Any, dataset: Any) -> RunPlan:
  from assljax import acquisition
  options = config.strategy_options.get(label, ml_collections.ConfigDict())
  strategy = acquisition.get(options.get("name", label), **_plain(options.get("hparams", {})))
  schedule = Schedule.make(mode=options.get("mode", config.al.mode),
                           initial_per_class=config.al.initial_per_class,
                           query_size=config.al.query_size, budget=config.al.budget,
                           num_classes=dataset.num_classes, pool_size=len(dataset.train.y),
                           initial_sampling=config.al.get("initial_sampling", "balanced"),
                           initial_extra=config.al.get("initial_extra", 0))
  factory = _kernel_factory(options.get("kernel", None), model, dataset,
                            _plain(config.model.get("options", {})))
  return RunPlan(strategy, schedule, factory)


def _mesh(num_devices: int | None):
  """The data mesh over the first ``num_devices`` devices, or None for one device."""
  if num_devices is None:
    return None
  import jax
  from assljax import parallel
  available = len(jax.devices())
  if num_devices > available:
    raise UserInputError(f"config.num_devices is {num_devices} but only {available} "
                         f"{jax.default_backend()} devices are visible")
  return parallel.data_mesh(num_devices)


def _optimizer(ssl_config: ml_collections.ConfigDict):
  """The optimizer ``ssl.optimizer`` names, or None for the algorithm's own recipe."""
  from assljax.ssl import optim
  name = ssl_config.get("optimizer")
  if name is None:
    return None
  if name not in optim.RECIPES:
    raise UserInputError(f"ssl.optimizer must be None, 'sgd' or 'adam', got {name!r}")
  return optim.named(name, total_steps=ssl_config.total_steps, lr=ssl_config.get("lr"),
                     weight_decay=ssl_config.get("weight_decay"),
                     end_lr=ssl_config.get("end_lr"))


def _kernel_factory(kind: str | None, model: Any, dataset: Any, model_options: dict):
  if kind is None:
    return None
  from assljax.kernels import Kernel
  num_classes = dataset.num_classes
  if kind == "infinite":
    # The twin must see the same architecture options and input standardization as the
    # finite model, or the two kernels describe different networks.
    kernel = Kernel.infinite(model.name, num_classes=num_classes, input_mean=dataset.mean,
                             input_std=dataset.std, **model_options)
    return lambda apply_fn, params, embed_fn: kernel
  param_filter = "last_layer" if kind == "last_layer" else "all"
  return lambda apply_fn, params, embed_fn: Kernel.empirical(
      apply_fn, params, param_filter=param_filter, embed_fn=embed_fn, num_classes=num_classes)


def training_inputs(config: ml_collections.ConfigDict, dataset: Any) -> Any:
  """What training samples from: the pool's waveforms when audio augmentations are on
  (``ssl.augment.audio``; they turn waveforms into spectrograms), else None (the pool)."""
  if not config.ssl.augment.get("audio", False):
    return None
  waveforms = getattr(dataset, "train_waveforms", None)
  if waveforms is None:
    raise UserInputError(f"ssl.augment.audio needs an audio dataset with waveforms; "
                         f"{dataset.name} has none")
  return waveforms


def run_dir(workdir: str, label: str, seed: int) -> str:
  return os.path.join(workdir, "runs", label, f"seed_{seed}")


def runs(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """``(label, seed)`` of every run, in execution order."""
  return [(label, int(seed)) for label in config.strategies for seed in config.seeds]


def collect_results(workdir: str, config: ml_collections.ConfigDict) -> list[dict]:
  """Concatenates the records of every run into ``WORKDIR/results.json``."""
  records = []
  for label, seed in runs(config):
    path = os.path.join(run_dir(workdir, label, seed), "records.json")
    if os.path.isfile(path):
      with open(path) as f:
        records += json.load(f)
  _write_json(os.path.join(workdir, "results.json"), records)
  return records


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(configs_lib.to_json(config))
  os.replace(tmp, path)


def load_saved_config(workdir: str) -> ml_collections.ConfigDict:
  if not os.path.isdir(workdir):
    raise UserInputError(f"workdir {workdir} does not exist")
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise UserInputError(f"{workdir} holds no assljax run (no config.json); start one with "
                         f"`assljax run --config FILE --workdir {workdir}`")
  try:
    with open(path) as f:
      return configs_lib.from_json(f.read())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserInputError(f"{path} is not valid JSON ({e})") from None


def run_experiment(prepared: Prepared, workdir: str, *, log: Callable[[str], None] = print
                   ) -> RunStatus:
  """Runs or resumes every (label, seed) of the experiment in ``workdir``, in order.

  Stops early when a run waits for human labels. Returns the status of the last run
  touched, with the records of all runs.
  """
  from assljax import parallel
  config, dataset, model, trainer, plans, validation = prepared
  with parallel.use_mesh(trainer.mesh):  # acquisitions split pool scoring over the mesh
    return _run_all(config, dataset, model, trainer, plans, workdir, log, validation)


def _early_stopping(config: ml_collections.ConfigDict, validation: Any):
  from assljax.loop.round import EarlyStopping
  options = _check_early_stopping(config.ssl.get("early_stopping"))
  if options is None:
    return None
  return EarlyStopping(options["eval_every"], options["patience"], *validation)


def _run_all(config, dataset, model, trainer, plans, workdir, log, validation=None
             ) -> RunStatus:
  status = RunStatus(Status.DONE, [], [])
  for label, seed in runs(config):
    plan = plans[label]
    status = run_loop(
        workdir=run_dir(workdir, label, seed), dataset=dataset, model=model, trainer=trainer,
        strategy=plan.strategy, schedule=plan.schedule, seed=seed,
        train_steps=config.ssl.steps_per_round, reinit=config.ssl.reinit, oracle=config.oracle,
        checkpoint_every=config.checkpoint_every, kernel_factory=plan.kernel_factory,
        experiment=config.experiment, label=label, eval_batch_size=config.eval_batch_size,
        progress=config.progress, log=log,
        on_checkpoint=lambda _: collect_results(workdir, config),
        train_x=training_inputs(config, dataset),
        initial_trials=int(config.al.get("initial_trials", 1)),
        early_stopping=_early_stopping(config, validation),
        metrics_every=config.get("metrics_every"))
    if status.status == Status.AWAITING_LABELS:
      return status._replace(records=collect_results(workdir, config))
  return status._replace(records=collect_results(workdir, config))


def awaiting_run(workdir: str, config: ml_collections.ConfigDict) -> tuple[str, int, list]:
  """``(run directory, round, pending indices)`` of the run waiting for human labels."""
  for label, seed in runs(config):
    directory = run_dir(workdir, label, seed)
    if not os.path.isdir(os.path.join(directory, "checkpoints")):
      break
    try:
      _, saved = Checkpoints(os.path.join(directory, "checkpoints")).restore_meta()
    except CheckpointError:
      break
    meta = RunMeta.from_json(saved)
    if meta.phase == Phase.LABEL:
      round_index = max([r["round"] for r in meta.records], default=-1) + 1
      return directory, round_index, list(meta.pending)
    if meta.phase != Phase.DONE:
      break
  raise UserInputError(f"no run in {workdir} is waiting for labels")


def export_pending(prepared: Prepared, workdir: str, *, fmt: str = "csv",
                   local_files_root: str | None = None) -> list[str]:
  """`assljax query`: (re)writes the pending queries for a person to label.

  ``fmt="csv"``: the CSV and the contact sheet (and audio files) of
  :func:`~assljax.loop.oracle.export_queries`. ``fmt="label-studio"``: a Label Studio
  import in ``RUN/queries/round_R_label_studio/`` (:mod:`assljax.loop.label_studio`: tasks,
  labeling config, media), whose tasks embed the media as data URIs, or refer to them by
  ``/data/local-files/`` URLs relative to ``local_files_root``.
  """
  from assljax.loop import label_studio
  formats = ("csv", "label-studio")
  if fmt not in formats:
    raise UserInputError(f"query format must be one of {', '.join(formats)}, got {fmt!r}")
  if fmt == "csv" and local_files_root is not None:
    raise UserInputError("--local-files-root applies to --format label-studio only")
  directory, round_index, pending = awaiting_run(workdir, prepared.config)
  if fmt == "csv":
    return export_queries(directory, round_index, pending, prepared.dataset)
  import numpy as np
  dataset, rows = prepared.dataset, np.asarray(pending, np.int64)
  waveforms = getattr(dataset, "train_waveforms", None)
  return label_studio.write_import(
      queries_path(directory, round_index, "_label_studio"), pending,
      [str(dataset.train.ids[i]) for i in pending], class_names=dataset.class_names,
      kind=dataset.kind, round_index=round_index,
      images=np.asarray(dataset.train.x)[rows] if dataset.kind == "image" else None,
      waveforms=None if waveforms is None else np.asarray(waveforms)[rows],
      local_files_root=local_files_root)


def ingest_labels(prepared: Prepared, workdir: str, labels_file: str) -> str:
  """`assljax label`: validates human labels and stores them for `run --resume`.

  A CSV (``sample_id,label``) or a Label Studio JSON / JSON-MIN export
  (:func:`~assljax.loop.oracle.store_labels`); nothing is written unless the whole file is
  valid.
  """
  from assljax.loop import oracle as oracle_lib
  directory, round_index, pending = awaiting_run(workdir, prepared.config)
  return oracle_lib.store_labels(labels_file, labels_path(directory, round_index), pending,
                                 prepared.dataset.class_names, round_index=round_index)
