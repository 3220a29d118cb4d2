"""Smallest (positive) eigenvalues of many Gram matrices that share a labeled block.

NPC and CRC score a candidate batch ``G`` by the smallest eigenvalue of the Gram matrix
over ``labeled ∪ G``::

    M = [[K_LL, K_LG],        K_LL (l, l) is the same for every candidate,
         [K_GL, K_GG]]        K_LG (l, g) and K_GG (g, g) change per candidate.

One dense eigendecomposition per candidate costs O((l + g)^3). The solvers here do the
O(l^3) work once and then O(l g^2) per iteration per candidate (DESIGN §4):

* :func:`bordered_min_eigenvalues` eigendecomposes ``K_LL = Q diag(Λ) Qᵀ`` once; with
  ``Z = Qᵀ K_LG`` the Haynsworth inertia formula counts the eigenvalues of ``M`` below
  ``x`` as ``#{Λ_i < x} + #{eig S(x) < 0}`` with the g x g Schur complement
  ``S(x) = K_GG - x I - Zᵀ diag(1 / (Λ - x)) Z``. Every evaluated ``x`` tightens a
  bracket by that count; the next ``x`` is a safeguarded Newton step on the eigenvalue of
  ``S`` that decides the count, with the nearest pole ``Λ_p`` modelled exactly (as in
  LAPACK's secular-equation solver), else bisection: typically 4-6 steps of
  O(l g^2 + g^3). A singular ``K_LL`` is fine: the count is exact whatever ``Λ`` is.
  Next to a pole ``S(x)`` is too ill-conditioned to count with in float32 (an interior
  eigenvalue just below a pole was once returned as the pole), so a count whose sign
  may be rounding is redone with the nearest poles kept unreduced.
* :func:`feature_min_eigenvalues` handles Grams ``M = Φ Φᵀ`` given by features
  ``Φ = [Φ_L; Φ_G]`` of dimension ``d``: the non-zero spectrum of ``Φ Φᵀ`` is that of
  the ``d x d`` matrix ``Φ_Lᵀ Φ_L + Φ_Gᵀ Φ_G``, a rank-g update of a fixed matrix, whose
  inertia is counted the same way (with ``S(x) = -I - Yᵀ diag(1 / (Λ - x)) Y``,
  ``Y = Qᵀ Φ_Gᵀ``). With ``d < l + g`` (last-layer NTK) it costs O(d g^2) per step.
* :func:`min_eigenvalues` is the dense reference for independent matrices
  (``eigvalsh``, chunked), and the fallback for small ``l``.
* :func:`batch_min_eigenvalues` takes either Gram blocks or features (optionally as
  index sets into a pool) and picks the cheapest of the three exact methods.
* :func:`argmax_min_eigenvalue` takes the same inputs and returns the candidate with the
  largest value (NPC's pick) from certified upper bounds and a few exact solves.

Positive-only tolerance. With ``positive_only=True`` the solvers return the smallest
eigenvalue **strictly greater than** ``rtol * ||M||_F``, where ``||M||_F`` is the
Frobenius norm of the assembled matrix ``M`` (for a PSD ``M``,
``λ_max(M) <= ||M||_F <= sqrt(rank M) * λ_max(M)``), and exactly ``0`` when no
eigenvalue exceeds it. ``rtol=None`` uses :func:`default_rtol` of the dtype. Every
solver uses this same definition, so their answers agree.

Accuracy: like ``eigvalsh``, each returned eigenvalue is within a few ``eps * λ_max(M)``
of the exact eigenvalue of the (rounded) input (measured below ``5e-7 λ_max`` in
float32); the iteration stops once its bracket is ``4 eps`` times the largest diagonal
entry or eigenvalue of the blocks wide. Inputs are scaled by a power of two internally,
so badly scaled Grams neither overflow nor lose precision.

Class blocks: every solver accepts full class-block Grams, where each entry is a
``C x C`` block (the NTK with ``trace_axes=()``): ``K_LL (l, l, C, C)``,
``K_LG (m, l, g, C, C)``, ``K_GG (m, g, g, C, C)`` (and ``class_blocks=True`` for
:func:`min_eigenvalues`); they are assembled into ``(l + g) C``-square matrices whose row
``i * C + a`` belongs to sample ``i``, class ``a``. Features may likewise carry a class
axis, ``(l, C, d)`` and ``(m, g, C, d)``.

Candidates are streamed through :func:`assljax._chunking.chunked_map` (``lax.map``),
``chunk_size`` at a time, so memory is ``O(chunk_size * l * g)`` beyond the inputs.
Results for a candidate do not depend on the chunking (per-candidate iterations stop
independently). Everything is jitted; inputs keep their floating dtype (float32 by
default, float64 under ``jax_enable_x64``); integer inputs become float32.

Non-finite entries raise ``ValueError`` before any scoring when the inputs are concrete
arrays; when a solver is itself traced inside an outer ``jax.jit`` (so it cannot raise),
candidates with non-finite entries score NaN.

JAX's batched ``eigh`` is a loop on CPU (and slow above n = 32 on GPU), which is why
the hot paths only ever call it on the tiny ``g x g`` Schur complements.

Layout (private modules, bottom up)::

    _inputs.py    validation, class blocks and index sets, power-of-two scaling
    _inertia.py   Schur complement, checked and pole-deflated inertia counts
    _roots.py     safeguarded rational Newton / bisection on the count
    _solvers.py   Method, choose_method and SOLVERS = {Method: plan}: dense, bordered, features
    _driver.py    candidate sources, chunking, per-device dispatch, argmax search (jitted)
    _api.py       min_eigenvalues, bordered_/feature_/batch_min_eigenvalues,
                  argmax_min_eigenvalue
"""

from __future__ import annotations

from assljax.kernels.spectral._api import (DEFAULT_CHUNK_SIZE, argmax_min_eigenvalue,
                                           batch_min_eigenvalues, bordered_min_eigenvalues,
                                           feature_min_eigenvalues, min_eigenvalues)
from assljax.kernels.spectral._driver import Argmax
from assljax.kernels.spectral._inputs import default_rtol
from assljax.kernels.spectral._solvers import Method, choose_method

__all__ = [
    "Argmax",
    "DEFAULT_CHUNK_SIZE",
    "Method",
    "argmax_min_eigenvalue",
    "batch_min_eigenvalues",
    "bordered_min_eigenvalues",
    "choose_method",
    "default_rtol",
    "feature_min_eigenvalues",
    "min_eigenvalues",
]
