"""assljax: active semi-supervised learning in JAX with NTK acquisition strategies.

Subpackages load on first attribute access, so ``import assljax`` stays light (no
TensorFlow, neural-tangents or matplotlib until a function needs them):

    assljax.kernels      finite/infinite-width NTKs, Nyström features, spectral solvers
    assljax.acquisition  the strategy registry (random ... npc, crc, dynamicAL, bilevel)
    assljax.models       model families as pure (params, x) -> logits functions
    assljax.ssl          FixMatch + DARP, MixMatch, Mean Teacher, supervised training
    assljax.data         datasets and the labeled pool
    assljax.loop         the active-learning loop, checkpoints and oracles
    assljax.parallel     the data mesh: sharded training and pool scoring

Every problem of a user's input raises ``assljax.UserInputError`` (a ``ValueError``) with
one sentence naming it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("acquisition", "data", "kernels", "loop", "models", "parallel", "ssl")


def __getattr__(name: str):
  if name in _SUBPACKAGES:
    module = importlib.import_module(f"assljax.{name}")
    globals()[name] = module
    return module
  if name == "UserInputError":
    from assljax._validation import UserInputError
    return UserInputError
  raise AttributeError(f"module 'assljax' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_SUBPACKAGES) + ["UserInputError"])
