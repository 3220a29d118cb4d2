"""Checkpoints of the whole loop state: one pytree of arrays plus JSON metadata, via orbax.

Saves are synchronous and atomic (orbax writes to a temporary directory and renames it
on success), so a process killed mid-save leaves the previous checkpoint intact. The
newest checkpoint that fails to restore (truncated, corrupted) is skipped with a
warning in favour of the one before it; only when none is readable does restoring fail.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import jax
import numpy as np

from assljax._validation import UserInputError

PyTree = Any
log = logging.getLogger(__name__)


class CheckpointError(UserInputError):
  """No usable checkpoint where one was expected (a workdir the user pointed at)."""


def _as_saveable(tree: PyTree) -> PyTree:
  # orbax accepts arrays, not numpy scalar types; typed PRNG keys go in as raw key data.
  def convert(leaf):
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      raise TypeError("store PRNG keys as jax.random.key_data(key) in checkpointed state")
    return np.asarray(leaf) if isinstance(leaf, (np.generic, int, float, bool)) else leaf
  return jax.tree_util.tree_map(convert, tree)


class Checkpoints:
  """A directory of numbered checkpoints of ``(state pytree, metadata dict)``.

  Args:
    directory: where checkpoints live (created if missing).
    max_to_keep: how many of the newest checkpoints to keep; at least 2, so a corrupted
      newest one always has a predecessor.
  """

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
    import orbax.checkpoint as ocp

    if max_to_keep < 2:
      raise UserInputError(f"max_to_keep must be at least 2, got {max_to_keep}")
    self.directory = os.path.abspath(os.fspath(directory))
    self._ocp = ocp
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False,
        cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "meta", "extra"))
    # orbax removes unfinished saves' temporary directories in a background thread that
    # only this manager's own save waits for; an instance used just to read (a restore,
    # `awaiting_run`) would leave it running while a later instance saves, and it once
    # deleted that save's temporary directory mid-write (a flaky test). Wait for it here.
    # (A private orbax method, present in 0.12; without it orbax's default stands.)
    await_cleanup = getattr(self._manager, "_maybe_await_cleanup_tmp_directory", None)
    if await_cleanup is not None:
      await_cleanup()

  def steps(self) -> list[int]:
    """Saved checkpoint numbers, ascending."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def save(self, step: int, state: PyTree, meta: dict, *, extra: PyTree = None) -> None:
    """Saves checkpoint ``step``.

    Args:
      step: checkpoint number (increasing).
      state: pytree of arrays, restored against an abstract template.
      meta: JSON-serializable dict.
      extra: optional pytree of arrays whose structure is not known in advance (a
        strategy's memory); restored as nested dicts. ``meta["has_extra"]`` records it.
    """
    ocp = self._ocp
    items = dict(state=ocp.args.StandardSave(_as_saveable(state)),
                 meta=ocp.args.JsonSave({**meta, "has_extra": extra is not None}))
    if extra is not None:
      items["extra"] = ocp.args.StandardSave(_as_saveable(extra))
    log.debug("checkpoint %d: saving to %s", step, self.directory)
    self._manager.save(int(step), args=ocp.args.Composite(**items), force=True)
    self._manager.wait_until_finished()
    log.debug("checkpoint %d: saved", step)

  def restore_meta(self, step: int | None = None) -> tuple[int, dict]:
    """Metadata of checkpoint ``step`` (default: newest readable)."""
    ocp = self._ocp
    for candidate in self._candidates(step):
      try:
        restored = self._manager.restore(candidate,
                                         args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return candidate, dict(restored["meta"])
      except Exception as e:  # noqa: BLE001 - any failure means "unreadable"
        self._warn_skip(candidate, e)
    raise CheckpointError(f"no readable checkpoint in {self.directory}")

  def restore(self, abstract_state: PyTree, step: int | None = None
              ) -> tuple[int, PyTree, dict, PyTree]:
    """``(step, state, meta, extra)`` of the newest readable checkpoint (or of ``step``).

    Args:
      abstract_state: a pytree of ``jax.ShapeDtypeStruct`` (or arrays) with the
        structure of the saved state, e.g. ``jax.eval_shape`` of the initializer.
    """
    ocp = self._ocp
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct,
                                      _as_saveable(abstract_state))
    for candidate in self._candidates(step):
      try:
        restored = self._manager.restore(
            candidate, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                               meta=ocp.args.JsonRestore()))
        meta = dict(restored["meta"])
        extra = None
        if meta.pop("has_extra", False):
          extra = self._manager.restore(
              candidate, args=ocp.args.Composite(extra=ocp.args.StandardRestore()))["extra"]
        return candidate, restored["state"], meta, extra
      except Exception as e:  # noqa: BLE001 - any failure means "unreadable"
        self._warn_skip(candidate, e)
    raise CheckpointError(f"no readable checkpoint in {self.directory}")

  def _candidates(self, step: int | None) -> list[int]:
    steps = self.steps()
    if not steps:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    if step is not None:
      if step not in steps:
        raise CheckpointError(f"checkpoint {step} not found in {self.directory}; have {steps}")
      return [step]
    return steps[::-1]

  def _warn_skip(self, step: int, error: Exception) -> None:
    first_line = str(error).splitlines()[0][:160] if str(error) else ""
    message = (f"checkpoint {step} in {self.directory} is unreadable "
               f"({type(error).__name__}: {first_line}); falling back to the previous one")
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    log.warning(message)

  def close(self) -> None:
    self._manager.close()
