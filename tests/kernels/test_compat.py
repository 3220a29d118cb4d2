"""The neural-tangents shim: imports, stax kernels, empirical implementations, no-TF path."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from assljax.kernels._compat import import_neural_tangents

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_X = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [0.0, 1.0, 1.0]]


def _stax_value(nt):
  stax = nt.stax
  _, _, kernel_fn = stax.serial(stax.Dense(16, W_std=1.5, b_std=0.1), stax.Relu(),
                                stax.Dense(1))
  return np.asarray(kernel_fn(jnp.asarray(_X), None, "ntk"))


def test_neural_tangents_imports_and_is_reexported():
  nt = import_neural_tangents()
  import assljax.kernels
  assert assljax.kernels.stax is nt.stax
  assert hasattr(nt, "empirical_ntk_fn") and hasattr(nt, "NtkImplementation")


def test_stax_kernel_is_a_valid_kernel():
  k = _stax_value(import_neural_tangents())
  assert k.shape == (3, 3)
  np.testing.assert_allclose(k, k.T, rtol=1e-6)
  assert np.linalg.eigvalsh(k).min() > 0


def test_empirical_implementations_agree_with_jacrev():
  nt = import_neural_tangents()
  stax = nt.stax
  init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(2))
  _, params = init_fn(jax.random.key(0), (-1, 3))
  x = jnp.asarray(_X)
  jac = jax.jacrev(lambda p: apply_fn(p, x))(params)
  flat = jnp.concatenate([l.reshape(3, 2, -1) for l in jax.tree_util.tree_leaves(jac)], -1)
  ref = np.asarray(jnp.einsum("icp,jcp->ij", flat, flat) / 2)  # NT's trace is a mean
  for impl in (nt.NtkImplementation.JACOBIAN_CONTRACTION,
               nt.NtkImplementation.NTK_VECTOR_PRODUCTS):
    k = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl)
    np.testing.assert_allclose(k(x, None, params), ref, rtol=1e-5, atol=1e-6)


def test_stub_path_without_tensorflow_in_a_subprocess():
  code = (
      "import sys, json\n"
      "sys.modules['tensorflow'] = None\n"
      "from assljax.kernels._compat import import_neural_tangents, tensorflow_importable\n"
      "assert not tensorflow_importable()\n"
      "nt = import_neural_tangents()\n"
      "import jax.numpy as jnp\n"
      "stax = nt.stax\n"
      "_, _, kfn = stax.serial(stax.Dense(16, W_std=1.5, b_std=0.1), stax.Relu(), "
      "stax.Dense(1))\n"
      f"k = kfn(jnp.asarray({_X!r}), None, 'ntk')\n"
      "exp = sys.modules['neural_tangents.experimental']\n"
      "print(json.dumps({'k': k.tolist(), 'stub': 'TensorFlow is not importable' in exp.__doc__,"
      " 'tf': sys.modules.get('tensorflow') is not None}))\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=_REPO, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["stub"] and not result["tf"]
  np.testing.assert_allclose(result["k"], _stax_value(import_neural_tangents()), rtol=1e-6)
