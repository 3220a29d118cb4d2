"""Pieces shared by the experiment configs (CRC, NPC, dynamicAL, Bilevel coreset, benchmarks).

Configs import it as ``from assljax.app import common`` (like big_vision's
``big_vision.configs.common``); a config that builds on another one in its folder loads it
with :func:`sibling`.

Config arguments (``--config FILE.py:ARG``) are a comma-separated list of ``key=value``
items and bare flags, e.g. ``"runlocal"``, ``"q=100"``, ``"b=500,runlocal"``,
``"data=/data/cifar10"``. Values are Python literals when they parse as one (``q=100`` is an
int), else strings; a bare word is a flag set to True. Each config declares the keys it
accepts with their defaults; anything else is refused with a ValueError naming the
accepted keys.
"""

from __future__ import annotations

import ast
import os
from typing import Any

import ml_collections

from assljax._validation import UserInputError
from assljax.app import configs as configs_lib
from assljax.app.defaults import base_config
from assljax.ssl import optim

# Reference schedules (DESIGN §5).
FIXMATCH_STEPS = 2 ** 20
CHECKPOINT_EVERY = 10_000
# ALBL as the NPC (§5.2) and dynamicAL (App. E.1) papers describe it: a two-armed bandit over
# least confidence and Coreset (the strategy's default adds DeepAL's random arm).
ALBL_TWO_ARMS = ("confidence", "coreset")


def sibling(config_file: str, name: str) -> Any:
  """The config module ``name`` in the folder of ``config_file`` (pass ``__file__``), e.g.
  ``sibling(__file__, "crc_cifar10").crc_training``: loaded from its path, so the folder
  never goes on ``sys.path``."""
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
  if not os.path.isfile(path):
    raise UserInputError(f"{config_file} builds on {name}.py, which is not in its folder")
  return configs_lib.load_module(path)


def new_config(experiment: str) -> ml_collections.ConfigDict:
  """``defaults.base_config()`` named ``experiment``, with no strategies yet."""
  config = base_config()
  config.experiment = experiment
  config.strategies = []
  config.strategy_options = ml_collections.ConfigDict()
  return config


def parse_arg(arg: str | None, **defaults: Any) -> dict:
  """Parses a config argument against ``defaults`` (the accepted keys and their values).

  ``runlocal`` is always accepted (default False). Returns a dict with every key of
  ``defaults`` plus ``runlocal``, the given items overriding the defaults.

  Raises:
    ValueError: an unknown key, an empty item, a bare word that is not a flag, or a
      value whose type contradicts the default (an int default accepts ints only, a
      string default takes the text as it is).
  """
  values = {"runlocal": False, **defaults}
  if arg is None or not str(arg).strip():
    return values
  for item in str(arg).split(","):
    item = item.strip()
    if not item:
      raise UserInputError(f"config argument {arg!r} has an empty item")
    key, sep, text = item.partition("=")
    key = key.strip()
    if key not in values:
      raise UserInputError(f"unknown config argument {key!r} in {arg!r}; accepted: "
                           f"{', '.join(sorted(values))}")
    default = values[key]
    if not sep:
      if not isinstance(default, bool):
        raise UserInputError(f"config argument {key!r} needs a value ({key}=...)")
      value: Any = True
    else:
      try:
        value = ast.literal_eval(text.strip())
      except (ValueError, SyntaxError):
        value = text.strip()
    if isinstance(default, str):
      value = text.strip()
    elif isinstance(default, float) and type(value) is int:  # noqa: E721
      value = float(value)
    elif default is not None and type(value) is not type(default):  # noqa: E721 (bool != int)
      raise UserInputError(f"config argument {key}={text.strip()} must be of type "
                           f"{type(default).__name__}")
    values[key] = value
  return values


def choose(key: str, value: Any, allowed: tuple) -> Any:
  """``value`` if it is one of ``allowed``, else a ValueError naming them."""
  if value not in allowed:
    raise UserInputError(f"config argument {key}={value!r} must be one of "
                         f"{', '.join(map(str, allowed))}")
  return value


def positive(key: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise UserInputError(f"config argument {key}={value!r} must be a positive integer")
  return value


def add_strategy(config: ml_collections.ConfigDict, label: str, *, name: str | None = None,
                 mode: str | None = None, kernel: str | None = None, **hparams: Any) -> None:
  """Appends run label ``label`` to ``config.strategies`` with its ``strategy_options``.

  Args:
    label: the run label (directory name, legend entry).
    name: the registry name when it differs from ``label`` (``"passive"`` is ``"random"``).
    mode: overrides ``config.al.mode`` for this label (``"zero_shot"``, ``"single_shot"``).
    kernel: ``"last_layer"``, ``"all_layers"`` or ``"infinite"`` (None: the strategy's own).
    **hparams: the strategy's keyword arguments.
  """
  config.strategies = list(config.strategies) + [label]
  options = {}
  if name is not None and name != label:
    options["name"] = name
  if mode is not None:
    options["mode"] = mode
  if kernel is not None:
    options["kernel"] = kernel
  if hparams:
    options["hparams"] = ml_collections.ConfigDict(hparams)
  if options:
    config.strategy_options[label] = ml_collections.ConfigDict(options)


def set_tfds(config: ml_collections.ConfigDict, name: str) -> None:
  """A tensorflow-datasets source read from tfds' default data directory."""
  config.dataset.name = name
  config.dataset.data_dir = None
  config.dataset.options = ml_collections.ConfigDict()


def set_imagefolder(config: ml_collections.ConfigDict, root: str) -> None:
  """An ImageFolder source ``root/{train,test}/<class>/*`` (defines ``options.root``, so
  ``--config.dataset.options.root=DIR`` can point it elsewhere)."""
  config.dataset.name = "imagefolder"
  config.dataset.data_dir = None
  config.dataset.options = ml_collections.ConfigDict(dict(root=root))


def set_audiofolder(config: ml_collections.ConfigDict, root: str) -> None:
  """An audio folder ``root/{train,test}/<class>/*.wav`` (defines ``options.root``)."""
  config.dataset.name = "audiofolder"
  config.dataset.data_dir = None
  config.dataset.options = ml_collections.ConfigDict(
      dict(root=os.path.abspath(os.path.expanduser(root))))


def cifar10_source(config: ml_collections.ConfigDict, data: str) -> None:
  """``data="tfds"``: tensorflow-datasets ``cifar10``; any other string: the path of an
  ImageFolder ``PATH/{train,test}/<class>/*`` (e.g. a CIFAR-10 copy as image files)."""
  if data == "tfds":
    set_tfds(config, "cifar10")
  else:
    set_imagefolder(config, os.path.abspath(os.path.expanduser(data)))


def fixmatch(config: ml_collections.ConfigDict, *, weight_decay: float | None = None,
             flip: bool = True, darp: bool = False) -> None:
  """FixMatch (optionally + DARP) at the reference settings of DESIGN §5.

  Nesterov SGD lr 0.03, momentum 0.9, weight decay 5e-4 (``weight_decay`` overrides:
  1e-3 on CIFAR-100), EMA 0.999, batch 64 labeled, mu = 7, threshold 0.95, lambda_u = 1,
  2^20 steps per round with the cosine over 2^20 steps, weights re-initialized every
  round. DARP refines pseudo-labels every 10 steps towards the uniform class
  distribution after a warm-up of 40% of the steps (DARP's code warms up for
  ``--warm 200`` epochs; 40% assumes its 500-epoch schedule, which was not re-checked).
  """
  config.ssl.algorithm = "fixmatch_darp" if darp else "fixmatch"
  options = dict(threshold=0.95, lambda_u=1.0)
  if darp:
    options.update(warmup_steps=int(0.4 * FIXMATCH_STEPS), refine_every=10, num_iters=10,
                   target_distribution=None)
  config.ssl.options = ml_collections.ConfigDict(options)
  config.ssl.batch_size = 64
  config.ssl.mu = 7
  config.ssl.lr = optim.RECIPES["sgd"].lr
  config.ssl.weight_decay = optim.RECIPES["sgd"].weight_decay if weight_decay is None \
      else weight_decay
  config.ssl.total_steps = FIXMATCH_STEPS
  config.ssl.steps_per_round = FIXMATCH_STEPS
  config.ssl.ema_decay = 0.999
  config.ssl.reinit = True
  config.ssl.augment = ml_collections.ConfigDict(dict(flip=flip, pad=4, num_ops=2,
                                                      cutout_fraction=0.5))
  config.checkpoint_every = CHECKPOINT_EVERY


# runlocal keeps the median-of-K first round (NPC §5.1) as a code path with at most this K.
RUNLOCAL_TRIALS = 3


def runlocal(config: ml_collections.ConfigDict, *, num_classes: int, rounds: int = 2,
             steps: int = 200, max_train: int = 2000, max_test: int = 500) -> None:
  """Shrinks a full config so that it finishes on 2 CPU cores, keeping its code paths.

  Same dataset, algorithm, strategies, modes, kernels and initial sampling; fewer
  training steps, a stratified subsample of the pool and test split, ``rounds``
  acquisitions, one seed, a small labeled batch, at most ``RUNLOCAL_TRIALS`` initial
  trials. Ramp-ups, warm-ups and early stopping (``ssl.early_stopping``: evaluation every
  ``steps // 4`` steps, patience ``steps // 2``, at most 200 validation samples) are
  scaled to the shorter schedule. Call it last (it reads ``al`` and ``ssl``). Single- and
  zero-shot labels buy ``budget - initial = rounds * query_size`` at once.

  Args:
    num_classes: ``C`` of the dataset (the budget counts ``initial_per_class * C``).
  """
  initial = config.al.initial_per_class * num_classes + config.al.get("initial_extra", 0)
  config.al.budget = initial + rounds * config.al.query_size
  if config.al.get("initial_trials", 1) > RUNLOCAL_TRIALS:
    config.al.initial_trials = RUNLOCAL_TRIALS
  stopping = config.ssl.get("early_stopping")
  if stopping is not None:
    stopping.update(eval_every=max(1, steps // 4), patience=max(1, steps // 2),
                    validation_size=min(int(stopping.validation_size), 200))
  config.dataset.max_train = max(max_train, 2 * config.al.budget)
  config.dataset.max_test = max_test
  config.ssl.batch_size = 16
  if config.ssl.algorithm in ("fixmatch", "fixmatch_darp"):
    config.ssl.mu = 2
  config.ssl.total_steps = steps
  config.ssl.steps_per_round = steps
  options = config.ssl.options
  if "rampup_steps" in options:
    options.rampup_steps = steps
  if "warmup_steps" in options:
    options.warmup_steps = (2 * steps) // 5
  # The reference 0.999 averages over ~1000 steps, longer than a whole runlocal round.
  config.ssl.ema_decay = min(config.ssl.ema_decay, 0.99)
  config.seeds = [0]
  config.checkpoint_every = max(1, steps // 2)
  config.eval_batch_size = 256


def small_wrn(config: ml_collections.ConfigDict) -> None:
  """WRN-10-1 (one block per stage, widths 16/32/64): the WRN code path at CPU cost."""
  config.model.name = "wrn"
  config.model.options = ml_collections.ConfigDict(dict(depth=10, widen_factor=1))

