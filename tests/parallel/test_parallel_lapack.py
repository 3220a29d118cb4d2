"""Spectral scoring on simulated CPU devices: no batched LAPACK call, no hang.

jaxlib 0.10's CPU LAPACK kernels split a batch of matrices over XLA's intra-op thread
pool and block until the parts are done; simulated devices run on threads of that same
pool, so batched ``eigh``/``eigvalsh`` on every device at once deadlocked NPC scoring
(2 cores, 2 devices, 64+ candidates per device). On CPU the solvers now take one matrix
per LAPACK call (``parallel.one_matrix_per_lapack_call``). These tests check that in
the compiled programs, and run the configuration that used to hang in a subprocess with
a time limit.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import parallel
from assljax.kernels.spectral import batch_min_eigenvalues, min_eigenvalues

L, G, D_FEAT, POOL, M = 12, 5, 24, 64, 32   # d > l + g: every solver iterates

_LAPACK_CALL = re.compile(r'custom_call_target="lapack_[^"]*".*?num_batch_dims="([0-9]+)"')


def _lapack_batch_dims(hlo: str) -> list[int]:
  """Batch dimensions of every LAPACK custom call in a compiled HLO module (0: one matrix)."""
  return [int(n) for n in _LAPACK_CALL.findall(hlo)]


def _inputs():
  rng = np.random.default_rng(0)
  phi_l = jnp.asarray(rng.normal(size=(L, D_FEAT)), jnp.float32)
  phi_u = jnp.asarray(rng.normal(size=(POOL, D_FEAT)), jnp.float32)
  index = jnp.asarray(np.stack([rng.choice(POOL, G, replace=False) for _ in range(M)]),
                      jnp.int32)
  return phi_l, phi_u, index


def test_one_matrix_per_lapack_call_on_cpu_with_or_without_a_mesh():
  seen = {}

  def probe(tag):
    def fn(x):
      seen[tag] = parallel.one_matrix_per_lapack_call()
      return x
    return fn

  x = jnp.ones((8,))
  jax.jit(probe("no mesh"))(x)
  with parallel.use_mesh(parallel.data_mesh(2)):
    jax.jit(probe("2 devices"))(x)
    jax.jit(lambda x: parallel.per_device(probe("per_device body"), x, rows=(True,)))(x)
  assert seen == {"no mesh": True, "2 devices": True, "per_device body": True}
  assert jax.default_backend() == "cpu"   # (on GPU/TPU the answer is False)


# every per-candidate LAPACK call site: eigh/eigvalsh (the k-th eigenvalue, shared by
# the features and bordered solvers), cholesky/solve/eigh (the smallest), eigvalsh (dense)
@pytest.mark.parametrize("method, positive_only", [("features", True), ("bordered", False),
                                                   ("dense", True)])
def test_compiled_solvers_call_lapack_one_matrix_at_a_time_on_cpu(method, positive_only):
  phi_l, phi_u, index = _inputs()

  def hlo(mesh):
    fn = lambda a, b, i: batch_min_eigenvalues(phi_L=a, phi_G=b, index=i, method=method,
                                               positive_only=positive_only, chunk_size=4)
    with parallel.use_mesh(mesh):
      return jax.jit(fn).lower(phi_l, phi_u, index).compile().as_text()

  for devices in (None, 2):
    dims = _lapack_batch_dims(hlo(devices and parallel.data_mesh(devices)))
    # the labeled block's own eigh plus the per-candidate calls, all on one matrix
    assert dims and set(dims) == {0}, (devices, dims)


def test_dense_min_eigenvalues_on_a_mesh_match_one_device_and_float64():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(32, 6, 6)).astype(np.float32)
  K = jnp.asarray(a @ np.swapaxes(a, 1, 2))
  ref = min_eigenvalues(K, chunk_size=4)
  with parallel.use_mesh(parallel.data_mesh(8)):
    got = min_eigenvalues(K, chunk_size=4)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
  ev = np.linalg.eigvalsh(np.asarray(K, np.float64))
  np.testing.assert_array_less(np.abs(np.asarray(got) - ev[:, 0]), 1e-5 * ev[:, -1])


_CHILD = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from assljax import parallel
    sys.path.insert(0, sys.argv[2])
    from test_parallel_lapack import _hang_case
    with parallel.use_mesh(parallel.data_mesh(int(sys.argv[1]))):
      print(json.dumps(np.asarray(_hang_case()).tolist()))
""")


def _hang_case(per_device: int = 128):
  """Scores of 512 candidates (Q = 20, l = 100, d = 32), ``per_device`` per chunk."""
  rng = np.random.default_rng(0)
  phi_l = jnp.asarray(rng.normal(size=(100, 32)), jnp.float32)
  phi_u = jnp.asarray(rng.normal(size=(4096, 32)), jnp.float32)
  index = jnp.asarray(rng.integers(0, 4096, size=(4 * per_device, 20)), jnp.int32)
  fn = lambda a, b, i: batch_min_eigenvalues(phi_L=a, phi_G=b, index=i, method="features",
                                             positive_only=True, chunk_size=per_device)
  return jax.jit(fn)(phi_l, phi_u, index)


def test_npc_scoring_that_used_to_hang_finishes_on_2_devices():
  # 2 simulated devices on a pool of 2 threads is the configuration that deadlocked; it
  # runs in a subprocess so that a regression fails here instead of hanging the suite
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  try:
    proc = subprocess.run([sys.executable, "-c", _CHILD, "2", os.path.dirname(__file__)],
                          env=env, capture_output=True, text=True, timeout=240)
  except subprocess.TimeoutExpired:
    pytest.fail("spectral scoring on 2 simulated devices hung (> 240 s)")
  assert proc.returncode == 0, proc.stderr[-2000:]
  got = np.asarray(json.loads(proc.stdout.strip().splitlines()[-1]))
  ref = np.asarray(_hang_case())          # this process, no mesh: one device
  np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)
  assert int(np.argmax(got)) == int(np.argmax(ref))
