"""Checks of user-given numbers, shared by the library: one sentence per problem.

Every hyperparameter a user types (learning rates, decays, thresholds, loss weights)
goes through :func:`check_number`, so a NaN, an infinity, a string or a value out of
range fails before any work with a ``ValueError`` naming the field, the bound and the
value, instead of training silently to chance accuracy.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


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
    ValueError: ``value`` is not a real number, not finite, or out of range.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"{name} must be a number, got {value!r}.")
  number = float(value)
  if not math.isfinite(number):
    raise ValueError(f"{name} must be finite, got {value!r}.")
  too_low = low is not None and (number < low if include_low else number <= low)
  too_high = high is not None and (number > high if include_high else number >= high)
  if too_low or too_high:
    raise ValueError(f"{name} must be in {_interval(low, high, include_low, include_high)}, "
                     f"got {value!r}.")
  return number


def _interval(low, high, include_low, include_high) -> str:
  left = "(-inf" if low is None else ("[" if include_low else "(") + f"{low:g}"
  right = "inf)" if high is None else f"{high:g}" + ("]" if include_high else ")")
  return f"{left}, {right}"
