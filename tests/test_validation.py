"""The shared checks of user input: what they accept, refuse, and how they say it."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import assljax
from assljax._validation import (UserInputError, check_chunk_size, check_int, check_number,
                                 check_positive_int, is_traced)


def test_user_input_error_is_a_value_error_exported_at_the_top():
  assert assljax.UserInputError is UserInputError
  assert issubclass(UserInputError, ValueError)


@pytest.mark.parametrize("value", [3, np.int32(3), np.int64(3)])
def test_check_int_accepts_python_and_numpy_integers(value):
  got = check_int("n", value, low=1, high=3)
  assert got == 3 and type(got) is int


@pytest.mark.parametrize("value, message", [
    (True, r"n must be an integer in \[0, 5\], got True\."),
    (np.bool_(True), r"n must be an integer in \[0, 5\], got "),
    (3.0, r"n must be an integer in \[0, 5\], got 3\.0\."),
    ("3", r"n must be an integer in \[0, 5\], got '3'\."),
    (None, r"n must be an integer in \[0, 5\], got None\."),
    (-1, r"got -1\."),
    (6, r"got 6\."),
])
def test_check_int_refuses_with_one_sentence(value, message):
  with pytest.raises(UserInputError, match=message):
    check_int("n", value, low=0, high=5)


def test_integer_kinds_are_named():
  for low, high, words in ((1, None, "a positive integer"), (0, None, "a non-negative integer"),
                           (None, None, "an integer"), (2, None, "an integer >= 2"),
                           (None, 4, "an integer <= 4")):
    with pytest.raises(UserInputError, match=f"k must be {words}, got 'x'"):
      check_int("k", "x", low=low, high=high)
  with pytest.raises(UserInputError, match="k must be a positive integer or None, got 0"):
    check_positive_int("k", 0, allow_none=True)
  assert check_positive_int("k", None, allow_none=True) is None
  assert check_chunk_size(None) is None and check_chunk_size(np.int64(7)) == 7
  with pytest.raises(UserInputError, match="chunk_size must be a positive integer or None"):
    check_chunk_size(0)


@pytest.mark.parametrize("value, message", [
    (math.nan, "lr must be finite"), (math.inf, "lr must be finite"),
    (True, "lr must be a number"), ("0.1", "lr must be a number"),
    (0.0, r"lr must be in \(0, 1\], got 0\.0"), (1.5, r"lr must be in \(0, 1\]"),
])
def test_check_number(value, message):
  with pytest.raises(UserInputError, match=message):
    check_number("lr", value, low=0.0, high=1.0, include_low=False)
  assert check_number("lr", np.float32(0.5), low=0.0, high=1.0, include_low=False) == 0.5


def test_is_traced_sees_tracers_in_any_tree():
  x = jnp.ones(3)
  assert not is_traced(x, {"a": np.ones(2)}, None)
  seen = []
  jax.jit(lambda a, b: seen.append((is_traced(a), is_traced({"b": b}), is_traced(x))) or a)(x, x)
  assert seen == [(True, True, False)]
