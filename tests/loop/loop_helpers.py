"""Helpers shared by the loop tests (a module with a unique name: several test folders
have a ``conftest.py``, so ``from conftest import ...`` would depend on collection order)."""

TIMING_FIELDS = ("acquisition_seconds", "training_seconds")


def without_timings(records):
  """``records`` without their wall-clock fields (which differ between two runs)."""
  return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]
