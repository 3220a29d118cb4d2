"""Checkpoints: round trips, extra items, and fallback past unreadable checkpoints."""

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax.loop.checkpoint import CheckpointError, Checkpoints


def _state(value: float):
  return {"w": jnp.full((3,), value), "step": jnp.asarray(int(value), jnp.int32),
          "mask": np.array([True, False, value > 1])}


def _corrupt(directory: str, step: int) -> None:
  for root, _, files in os.walk(os.path.join(directory, str(step))):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"\x00garbage")


def test_round_trip_state_meta_and_extra(tmp_path):
  ckpt = Checkpoints(tmp_path)
  ckpt.save(0, _state(1.0), {"phase": "train", "records": [{"a": 1.5}]})
  ckpt.save(1, _state(2.0), {"phase": "acquire"}, extra={"value": {"arm": jnp.asarray(1)}})
  assert ckpt.steps() == [0, 1]
  step, state, meta, extra = ckpt.restore(_state(0.0))
  assert step == 1 and meta == {"phase": "acquire"}
  np.testing.assert_array_equal(state["w"], np.full((3,), 2.0))
  np.testing.assert_array_equal(state["mask"], [True, False, True])
  assert int(extra["value"]["arm"]) == 1
  step, state, meta, extra = ckpt.restore(_state(0.0), step=0)
  assert meta["records"] == [{"a": 1.5}] and extra is None
  assert float(state["w"][0]) == 1.0


def test_corrupted_latest_falls_back_with_warning(tmp_path):
  ckpt = Checkpoints(tmp_path)
  for i in range(3):
    ckpt.save(i, _state(float(i)), {"i": i})
  _corrupt(str(tmp_path), 2)
  with pytest.warns(RuntimeWarning, match="checkpoint 2 .* unreadable"):
    step, state, meta, _ = Checkpoints(tmp_path).restore(_state(0.0))
  assert step == 1 and meta == {"i": 1} and float(state["w"][0]) == 1.0
  with pytest.warns(RuntimeWarning):
    assert Checkpoints(tmp_path).restore_meta() == (1, {"i": 1, "has_extra": False})


def test_truncated_files_fall_back(tmp_path):
  ckpt = Checkpoints(tmp_path)
  ckpt.save(0, _state(1.0), {"i": 0})
  ckpt.save(1, _state(2.0), {"i": 1})
  for root, _, files in os.walk(os.path.join(tmp_path, "1")):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
  with pytest.warns(RuntimeWarning):
    step, _, meta, _ = Checkpoints(tmp_path).restore(_state(0.0))
  assert (step, meta) == (0, {"i": 0})


def test_no_readable_checkpoint_raises(tmp_path):
  with pytest.raises(CheckpointError, match="no checkpoint"):
    Checkpoints(tmp_path).restore(_state(0.0))
  ckpt = Checkpoints(tmp_path)
  ckpt.save(0, _state(1.0), {})
  _corrupt(str(tmp_path), 0)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
      Checkpoints(tmp_path).restore(_state(0.0))


def test_unfinished_save_is_ignored(tmp_path):
  ckpt = Checkpoints(tmp_path)
  ckpt.save(0, _state(1.0), {"i": 0})
  # What a process killed mid-save leaves behind: orbax's temporary directory.
  os.makedirs(os.path.join(tmp_path, "1.orbax-checkpoint-tmp-123", "state"))
  restored = Checkpoints(tmp_path)
  assert restored.steps() == [0]
  assert restored.restore(_state(0.0))[2] == {"i": 0}


def test_keeps_at_most_max_to_keep(tmp_path):
  ckpt = Checkpoints(tmp_path, max_to_keep=2)
  for i in range(4):
    ckpt.save(i, _state(float(i)), {})
  assert ckpt.steps() == [2, 3]
  with pytest.raises(ValueError, match="at least 2"):
    Checkpoints(tmp_path, max_to_keep=1)


def test_prng_keys_must_be_raw(tmp_path):
  with pytest.raises(TypeError, match="key_data"):
    Checkpoints(tmp_path).save(0, {"k": jax.random.key(0)}, {})


def test_unfinished_saves_are_removed_before_the_constructor_returns(tmp_path):
  """orbax removes unfinished saves' temporary directories in a thread; a reader's thread
  left running once deleted a later writer's save in progress. The constructor waits."""
  stale = tmp_path / "7.orbax-checkpoint-tmp"
  (stale / "state.orbax-checkpoint-tmp").mkdir(parents=True)
  ckpt = Checkpoints(tmp_path)
  assert not stale.exists()
  ckpt.save(0, _state(1.0), {})
  assert ckpt.steps() == [0]
