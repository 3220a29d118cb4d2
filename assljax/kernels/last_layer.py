"""Last-layer NTK in closed form (DESIGN §4).

For logits ``f(x) = h(x) @ W + b`` with ``W: (d, C)``, ``b: (C,)``, the derivative of logit
``c`` is ``e_c ⊗ [h(x), 1]``, so the class block of the NTK restricted to ``(W, b)`` is
``(h(x).h(x') + 1) I_C`` and its trace over classes is ``C (h(x).h(x') + 1)``. No autodiff
is needed: it is the Gram matrix of the features ``sqrt(C) [h(x), 1]``.

    phi = last_layer_features(h, C)          # (n, d + 1); phi @ phi.T = traced NTK
    K = last_layer_ntk(h1, h2, C)            # (n1, n2)
    K = last_layer_ntk(h1, h2, C, trace=False)   # (n1, n2, C, C)

Its rank is at most ``d + 1``: with more points than that, the smallest eigenvalue of a
Gram of these features is zero.

From raw inputs the kernel is ``Kernel.empirical(apply_fn, params,
param_filter="last_layer", embed_fn=embed_fn)``; its feature map (and so every strategy
that scores with the default last-layer NTK) goes through :func:`_embedded_features`
here, the one place that embeds and applies the closed form.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from assljax._chunking import chunked_map
from assljax._compile import jit
from assljax._validation import UserInputError, check_positive_int

_HIGHEST = jax.lax.Precision.HIGHEST


def _check_classes(num_classes: Any) -> int:
  check_positive_int("num_classes", num_classes)
  return num_classes


def _check_features(features: Any, name: str) -> jax.Array:
  features = jnp.asarray(features)
  if features.ndim != 2:
    raise UserInputError(f"{name} must be penultimate features of shape (n, d), got shape "
                         f"{tuple(features.shape)}.")
  if not jnp.issubdtype(features.dtype, jnp.inexact):
    features = features.astype(jnp.float32)
  return features


def last_layer_features(features: jax.Array, num_classes: int) -> jax.Array:
  """Feature map of the traced last-layer NTK.

  Args:
    features: penultimate activations ``h(x)`` ``(n, d)`` (``embed_fn(params, x)``).
    num_classes: ``C``, the number of logits.

  Returns:
    ``sqrt(C) [h(x), 1]`` ``(n, d + 1)``, so that ``phi @ phi.T`` is the class-traced
    NTK of the final dense layer, ``C (h.h' + 1)``.
  """
  num_classes = _check_classes(num_classes)
  features = _check_features(features, "features")
  ones = jnp.ones((features.shape[0], 1), features.dtype)
  scale = jnp.sqrt(jnp.asarray(num_classes, features.dtype))
  return jnp.concatenate([features, ones], axis=1) * scale


def last_layer_ntk(features1: jax.Array, features2: jax.Array | None, num_classes: int, *,
                   trace: bool = True) -> jax.Array:
  """NTK of the final dense layer from penultimate features.

  Args:
    features1: ``h(x1)`` ``(n1, d)``.
    features2: ``h(x2)`` ``(n2, d)``, or ``None`` for ``features1``.
    num_classes: ``C``.
    trace: True for the class-traced kernel, False for the full class blocks.

  Returns:
    ``C (h1 @ h2.T + 1)`` ``(n1, n2)`` if ``trace``, else ``(h1 @ h2.T + 1)`` times the
    identity in each ``(C, C)`` block: ``(n1, n2, C, C)``.
  """
  num_classes = _check_classes(num_classes)
  features1 = _check_features(features1, "features1")
  features2 = features1 if features2 is None else _check_features(features2, "features2")
  if features1.shape[1] != features2.shape[1]:
    raise UserInputError(f"features1 and features2 must have the same width d, got "
                         f"{features1.shape[1]} and {features2.shape[1]}.")
  gram = jnp.dot(features1, features2.T, precision=_HIGHEST) + 1
  if trace:
    return gram * jnp.asarray(num_classes, gram.dtype)
  eye = jnp.eye(num_classes, dtype=gram.dtype)
  return gram[:, :, None, None] * eye[None, None]


@functools.partial(jit, static_argnames=("embed_fn", "num_classes", "chunk_size"))
def _embedded_features(embed_fn: Callable[[Any, jax.Array], jax.Array], params: Any,
                       x: jax.Array, *, num_classes: int, chunk_size: int | None) -> jax.Array:
  """``last_layer_features(embed_fn(params, x), C)`` ``(n, d + 1)``, embedding ``chunk_size``
  samples at a time (:func:`assljax._chunking.chunked_map`).

  ``params`` is an argument, not a constant of the compiled program, so a new set of
  weights reuses the compilation for the same ``embed_fn``.
  """
  h = chunked_map(lambda xc: embed_fn(params, xc), x, chunk_size=chunk_size)
  return last_layer_features(h, num_classes)
