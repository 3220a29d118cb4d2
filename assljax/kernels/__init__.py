"""Neural tangent kernels (finite and infinite width), Nyström features, spectral solvers.

Contracts (DESIGN §3); shapes: n samples, C classes, l labeled, g group size,
m candidates.

    ntk_fn = empirical_ntk_fn(apply_fn, *, trace_axes=(-1,), param_filter=None,
                              chunk_size=None)
    K = ntk_fn(params, x1, x2)          # (n1, n2), or (n1, n2, C, C) with trace_axes=()
    kernel_fn = infinite_ntk_fn("wrn-28-2" | "cnn" | "mlp" | stax triple, ...)
    K = kernel_fn(x1, x2)               # (n1, n2)
    kernel = Kernel.empirical(apply_fn, params, param_filter="last_layer")
    kernel = Kernel.infinite("wrn-28-2")
    phi = kernel.feature_map()                     # x -> (n, d), or None (no finite map)
    K_LL, K_LU, K_GG = kernel.gram_blocks(x_l, x_pool, index)   # (l,l), (l,N), (m,g,g)
    phi = nystrom_features(kernel, landmarks)      # phi(x) -> (n, m)
    lam = min_eigenvalues(K)                       # (..., n, n) -> (...,)
    lam = bordered_min_eigenvalues(K_LL, K_LG, K_GG)   # (l,l), (m,l,g), (m,g,g) -> (m,)
    lam = batch_min_eigenvalues(K_LL, K_LU, K_GG, index=index)  # or phi_L=, phi_G=
    best = argmax_min_eigenvalue(K_LL, K_LU, K_GG, index=index)  # .index .value .num_solved
    stax                                # neural_tangents.stax through the compat shim

Names resolve on first use, so importing this package pulls in neither
neural-tangents nor TensorFlow.
"""

from __future__ import annotations

import importlib

# public name -> module (relative to this package) that defines it
_EXPORTS = {
    "empirical_ntk_fn": "empirical",
    "select_params": "empirical",
    "last_layer_ntk": "last_layer",
    "last_layer_features": "last_layer",
    "infinite_ntk_fn": "infinite",
    "stax_twin": "infinite",
    "Kernel": "kernel",
    "nystrom_features": "nystrom",
    "min_eigenvalues": "spectral",
    "bordered_min_eigenvalues": "spectral",
    "feature_min_eigenvalues": "spectral",
    "batch_min_eigenvalues": "spectral",
    "argmax_min_eigenvalue": "spectral",
}


def __getattr__(name: str):
  if name == "stax":
    from assljax.kernels import _compat
    _compat.import_neural_tangents()
    value = importlib.import_module("neural_tangents.stax")
  elif name in _EXPORTS:
    module = importlib.import_module(f"assljax.kernels.{_EXPORTS[name]}")
    value = getattr(module, name)
  else:
    raise AttributeError(f"module 'assljax.kernels' has no attribute {name!r}")
  globals()[name] = value
  return value


def __dir__():
  return sorted(list(globals()) + list(_EXPORTS) + ["stax"])


__all__ = sorted(list(_EXPORTS) + ["stax"])
