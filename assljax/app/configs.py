"""Experiment configs: ``FILE.py[:ARG]`` files with ``get_config(arg)``, and overrides.

A config file is Python that returns an ``ml_collections.ConfigDict`` from
``get_config(arg)``. ``--config.KEY=VALUE`` overrides are type-checked against the
value already there (an int stays an int; a string cannot replace a number), unknown
keys are refused, and the resolved config is saved as JSON in the workdir so that
``--resume`` needs nothing else.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from typing import Any, Sequence

import ml_collections

from assljax._validation import UserInputError


FREE_FORM_SECTIONS = ("options", "hparams")


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads ``path/to/config.py`` or ``path/to/config.py:ARG`` by calling ``get_config``.

  Raises:
    UserInputError: missing file, no ``get_config``, or an error raised while building it.
  """
  path, sep, arg = spec.partition(":")
  if not path.endswith(".py"):
    raise UserInputError(f"config must be a .py file, optionally followed by :ARG; got {spec!r}")
  if not os.path.isfile(path):
    raise UserInputError(f"config file {path} does not exist")
  module = load_module(path)
  if not hasattr(module, "get_config"):
    raise UserInputError(f"config file {path} defines no get_config(arg)")
  try:
    config = module.get_config(arg) if sep else module.get_config()
  except TypeError as e:
    if sep or "argument" not in str(e):
      raise UserInputError(f"{path}: get_config({arg!r}) failed: {e}") from e
    config = module.get_config(None)
  except (ValueError, KeyError) as e:
    raise UserInputError(f"{path}: get_config({arg!r}) failed: {e}") from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserInputError(f"{path}: get_config must return an ml_collections.ConfigDict")
  return config


def load_module(path: str) -> Any:
  """Executes the Python file ``path`` as a fresh module that is registered nowhere.

  Config files import the package's helpers (``from assljax.app import common``) and load
  the configs they build on with :func:`assljax.app.common.sibling`; neither needs the
  config's folder on ``sys.path``, so two folders with same-named files never collide.

  Raises:
    UserInputError: the file raises anything while it executes (its traceback is chained).
  """
  name = "assljax_config_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001 - report any failure of user code in one line
    raise UserInputError(f"config file {path} failed to load: {type(e).__name__}: {e}") from e
  return module


def parse_value(text: str) -> Any:
  """A command-line value: a Python literal (``3``, ``0.1``, ``[1, 2]``, ``None``,
  ``True``) when it parses as one, else the string itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[str]) -> ml_collections.ConfigDict:
  """Applies ``KEY=VALUE`` overrides (dotted keys) in place, with type checks.

  Raises:
    ValueError: malformed override, unknown key, or a value of the wrong type.
  """
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise UserInputError(f"override {item!r} must look like --config.KEY=VALUE")
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts[:-1]):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise UserInputError(f"unknown config key {'.'.join(parts[:depth + 1])!r}")
      node = node[part]
    leaf = parts[-1]
    value = parse_value(text)
    # `options`/`hparams` sections are keyword arguments of a loader, model or strategy:
    # new keys are allowed there (the callee validates them).
    if (isinstance(node, ml_collections.ConfigDict) and len(parts) > 1
        and parts[-2] in FREE_FORM_SECTIONS and leaf not in node):
      node[leaf] = value
      continue
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ""
      raise UserInputError(f"unknown config key {key!r}"
                           + (f"; known here: {known}" if known else ""))
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
      raise UserInputError(f"config key {key!r} is a section; override one of its fields instead")
    if isinstance(current, (list, tuple)) and isinstance(value, (str, int, float)) \
        and not isinstance(value, bool):
      value = [value]
    try:
      node[leaf] = value
    except TypeError:
      raise UserInputError(
          f"config key {key!r} expects {type(current).__name__}, got {text!r}") from None
  return config


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads(text))
