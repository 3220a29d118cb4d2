"""Checks of user input, shared by the whole library: one sentence per problem.

Every problem a user can cause (a hyperparameter out of range, a path that names nothing,
a malformed labels file) raises :class:`UserInputError`, a ``ValueError`` whose message is
one sentence naming the field, what it must be and what it got. The ``assljax`` command
line turns exactly these (and a missing optional dependency or an unreadable file) into
one line and exit code 2; any other exception is a bug and surfaces with its traceback.

Numbers a user types (learning rates, decays, thresholds, loss weights) go through
:func:`check_number`, counts and sizes through :func:`check_int`, so a NaN, an infinity,
a string, a ``bool`` or a value out of range fails before any work instead of training
silently to chance accuracy.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


class UserInputError(ValueError):
  """Bad input from the user: the message is one sentence naming the problem.

  A ``ValueError``, so code written against the library's documented ``ValueError``s
  keeps working; the command line prints it as one line and exits with code 2.
  """


def check_number(name: str, value: Any, *, low: float | None = None,
                 high: float | None = None, include_low: bool = True,
                 include_high: bool = True) -> float:
  """``value`` as a float if it is a finite real number within the bounds.

  Args:
    name: what the user calls it (``"ssl.lr"``, ``"threshold"``), used in the message.
    value: the number to check; ``bool`` is refused (``True`` is not a learning rate).
    low, high: bounds, None for unbounded.
    include_low, include_high: whether each bound itself is allowed.

  Raises:
    UserInputError: ``value`` is not a real number, not finite, or out of range.
  """
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
    raise UserInputError(f"{name} must be a number, got {value!r}.")
  number = float(value)
  if not math.isfinite(number):
    raise UserInputError(f"{name} must be finite, got {value!r}.")
  too_low = low is not None and (number < low if include_low else number <= low)
  too_high = high is not None and (number > high if include_high else number >= high)
  if too_low or too_high:
    raise UserInputError(f"{name} must be in {_interval(low, high, include_low, include_high)}, "
                         f"got {value!r}.")
  return number


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None,
              allow_none: bool = False) -> int | None:
  """``value`` as a Python int if it is an integer (Python or NumPy) within ``[low, high]``.

  Args:
    name: what the user calls it, used in the message.
    value: the number to check; ``bool`` and integral floats (``3.0``) are refused.
    low, high: inclusive bounds, None for unbounded.
    allow_none: whether ``None`` is accepted (and returned).

  Raises:
    UserInputError: ``value`` is not an integer or is out of range.
  """
  if value is None and allow_none:
    return None
  integral = (isinstance(value, (int, np.integer))
              and not isinstance(value, (bool, np.bool_)))
  if not integral or (low is not None and value < low) or (high is not None and value > high):
    raise UserInputError(f"{name} must be {_integer_kind(low, high)}"
                         f"{' or None' if allow_none else ''}, got {value!r}.")
  return int(value)


def check_positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
  """:func:`check_int` with ``low=1``."""
  return check_int(name, value, low=1, allow_none=allow_none)


def check_chunk_size(chunk_size: Any) -> int | None:
  """A ``chunk_size`` option: a positive integer, or None for "all at once"."""
  return check_positive_int("chunk_size", chunk_size, allow_none=True)


def is_traced(*trees: Any) -> bool:
  """Whether any leaf of ``trees`` is a tracer (value checks are skipped under ``jit``)."""
  import jax  # here, so that the light modules using the checks (report, CLI) stay light
  return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def _integer_kind(low: int | None, high: int | None) -> str:
  if high is None:
    if low == 1:
      return "a positive integer"
    if low == 0:
      return "a non-negative integer"
    return "an integer" if low is None else f"an integer >= {low}"
  return f"an integer <= {high}" if low is None else f"an integer in [{low}, {high}]"


def _interval(low, high, include_low, include_high) -> str:
  left = "(-inf" if low is None else ("[" if include_low else "(") + f"{low:g}"
  right = "inf)" if high is None else f"{high:g}" + ("]" if include_high else ")")
  return f"{left}, {right}"
