"""Two processes, two simulated CPU devices each: one 4-device mesh over both.

``parallel.initialize_distributed`` joins the job from the environment variables a
multi-host launch sets (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``); cross-process collectives on CPU go through gloo. Both processes must
select exactly what one device selects and train to the same losses, which exercises what
a multi-host GPU/TPU job does (global arrays, results sharded over devices other processes
own, gathered with ``parallel.to_host``) without a cluster.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

CHILD = os.path.join(os.path.dirname(__file__), "multi_process_child.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_two_processes() -> list[dict]:
  port = _free_port()
  procs = []
  for pid in range(2):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs.append(subprocess.Popen([sys.executable, CHILD], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
  outs = []
  try:
    for p in procs:
      stdout, stderr = p.communicate(timeout=420)
      assert p.returncode == 0, stderr[-3000:]
      outs.append(json.loads(stdout.strip().splitlines()[-1]))
  except subprocess.TimeoutExpired:
    pytest.fail("the two-process job did not finish in 420 s")
  finally:
    for p in procs:
      p.kill()
  return outs


# one test (not a fixture shared by several): pytest-xdist would start the job per worker
def test_two_processes_on_one_mesh_select_and_train_like_one_device():
  first, second = _run_two_processes()
  assert (first["process"], second["process"]) == (0, 1)
  for r in (first, second):
    assert (r["devices"], r["local_devices"], r["mesh_devices"]) == (4, 2, 4)
  for name in ("entropy", "npc"):
    assert len(set(first[name]["mesh"])) == 6, name
    assert first[name]["mesh"] == first[name]["alone"], name
    assert second[name]["mesh"] == first[name]["mesh"], name
  np.testing.assert_allclose(first["train_mesh"]["loss"], first["train_alone"]["loss"],
                             rtol=1e-5)
  assert first["train_mesh"]["accuracy"] == first["train_alone"]["accuracy"]
  assert second["train_mesh"] == first["train_mesh"]
