"""Meshes for data parallelism: one ``"data"`` axis over devices, JAX's sharding engine.

    mesh = assljax.parallel.data_mesh()            # all devices (or data_mesh(2))
    with assljax.parallel.use_mesh(mesh):          # = jax.set_mesh(mesh)
      idx = strategy(key, ctx, budget)             # pool chunks scored on every device
    trainer = make_trainer(model, fixmatch(), mesh=mesh)   # batch sharded, params replicated

Design:

* **JAX's own mechanism.** The current mesh is the one set with ``jax.set_mesh`` (which
  :func:`use_mesh` is); library code asks :func:`current_data_axis` (the abstract mesh,
  valid inside and outside ``jax.jit``; a jitted function is retraced per mesh). No
  ``pmap``, no process pool: :func:`assljax._chunking.chunked_map` shards the rows of every
  chunk over the data axis with sharding constraints and XLA's SPMD partitioner does the
  rest (including gathers from a pool sharded by :func:`shard_rows`, done as masked local
  gathers plus one all-reduce, so no device holds the whole pool).
* **Per-device loops.** Code whose loops have data-dependent trip counts (the spectral
  solvers' Newton/bisection iterations) runs through :func:`per_device`, a
  ``jax.shard_map`` in which each device iterates on its own rows, with no collective
  inside the loop.
* **Simulated CPU devices and LAPACK.** jaxlib 0.10's CPU LAPACK kernels (``eigh``,
  ``eigvalsh``, ``cholesky``, ``solve``) split a *batch* of matrices over XLA's intra-op
  thread pool and block until every part is done. Several CPU devices run their programs
  on threads of that one pool, so once as many devices as the pool has threads (the
  number of cores) are inside such a kernel together, each waits for parts queued behind
  the others and the process hangs with every thread idle (seen on 2 cores with 2 and 8
  devices: NPC stalled from about 64 candidates per device; a solver variant with two
  independent batched calls per step also stalled on one device). Code that traces batched LAPACK calls asks
  :func:`one_matrix_per_lapack_call` and on CPU maps the calls over the batch, which
  never splits. GPUs (cuSOLVER) and TPUs keep their batched calls.
* **Auto axes.** :func:`data_mesh` builds a 1-D mesh with ``AxisType.Auto`` (GSPMD
  propagation). A mesh without a ``"data"`` axis, or with a ``"data"`` axis of size 1,
  leaves every computation unsharded.
* **Several hosts.** :func:`initialize_distributed` calls ``jax.distributed.initialize()``
  when the environment names a multi-process job (the variables JAX itself reads, see
  there) and does nothing in a single process; :func:`data_mesh` then spans the devices
  of every process. Results sharded over devices of other processes reach the host
  through :func:`to_host` (an all-gather). tests/parallel/test_multi_process.py runs
  two processes of two CPU devices each (gloo collectives) and checks that they select
  and train exactly like one device.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from assljax._validation import UserInputError, check_int

PyTree = Any

DATA_AXIS = "data"

# Environment variables that mark a multi-process JAX job (jax.distributed reads them, or
# detects the cluster from them: SLURM, Open MPI, Cloud TPU pods, Kubernetes).
_DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_CLUSTER_ENV = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES",
                "MEGASCALE_COORDINATOR_ADDRESS")

# True while tracing the body of a sharded chunked_map: nested maps stay unsharded.
_INSIDE_SHARDED = contextvars.ContextVar("assljax_inside_sharded_map", default=False)


def initialize_distributed(*, force: bool = False, **kwargs: Any) -> bool:
  """Joins a multi-process JAX job; a no-op in a single process.

  Call it first thing in every process (before anything touches a device). It calls
  ``jax.distributed.initialize(**kwargs)`` when ``force`` or when the environment names a
  multi-process job: ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID``), or a cluster JAX detects by itself (SLURM, Open MPI, a Cloud TPU pod
  slice: ``TPU_WORKER_HOSTNAMES``). With ``JAX_NUM_PROCESSES=1`` it does nothing.

  Args:
    force: initialize even when no such variable is set (``kwargs`` then usually name
      ``coordinator_address``, ``num_processes`` and ``process_id``).
    **kwargs: passed to ``jax.distributed.initialize``.

  Returns:
    True if ``jax.distributed.initialize`` ran, False if this is a single-process run.
  """
  env = os.environ
  if not force:
    if env.get("JAX_NUM_PROCESSES", "").strip() == "1":
      return False
    if not kwargs and not any(env.get(k) for k in _DISTRIBUTED_ENV + _CLUSTER_ENV):
      return False
  if jax.distributed.is_initialized():
    return True
  # jax reads JAX_COORDINATOR_ADDRESS itself, but not the process count and id
  for var, name in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
    if env.get(var, "").strip() and name not in kwargs:
      try:
        kwargs[name] = int(env[var])
      except ValueError:
        raise UserInputError(f"{var} must be an integer, got {env[var]!r}.") from None
  jax.distributed.initialize(**kwargs)
  return True


def data_mesh(num_devices: int | None = None, *, devices: Sequence[Any] | None = None,
              axis_name: str = DATA_AXIS) -> jax.sharding.Mesh:
  """A 1-D mesh with one data-parallel axis.

  Args:
    num_devices: use the first ``num_devices`` of ``devices`` (None: all of them).
    devices: the devices to span (default ``jax.devices()``: every device of every process).
    axis_name: the axis name (``"data"``, which the library shards over).

  Returns:
    ``jax.sharding.Mesh`` of shape ``(num_devices,)`` with an ``Auto`` axis.
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise UserInputError("data_mesh got an empty list of devices.")
  if num_devices is None:
    num_devices = len(devices)
  num_devices = check_int("num_devices", num_devices, low=1, high=len(devices))
  return jax.sharding.Mesh(np.array(devices[:int(num_devices)]), (axis_name,),
                           axis_types=(jax.sharding.AxisType.Auto,))


def use_mesh(mesh: jax.sharding.Mesh | None):
  """Context manager making ``mesh`` the current mesh (``jax.set_mesh``); None: no-op.

  Pool-wide computations (everything that streams through ``chunked_map``) inside the
  ``with`` block split their rows over ``mesh``'s ``"data"`` axis.
  """
  if mesh is None:
    return contextlib.nullcontext()
  if not isinstance(mesh, jax.sharding.Mesh):
    raise UserInputError(f"mesh must be a jax.sharding.Mesh or None, got {type(mesh).__name__}.")
  return jax.set_mesh(mesh)


def mesh_data_size(mesh: Any) -> int:
  """Size of ``mesh``'s ``"data"`` axis (1 when ``mesh`` is None or has no such axis)."""
  if mesh is None or getattr(mesh, "empty", False):
    return 1
  return int(dict(mesh.shape).get(DATA_AXIS, 1))


def current_data_axis() -> tuple[str, int] | None:
  """``("data", size)`` of the current mesh when it shards data (size > 1), else None.

  Reads the abstract mesh set by ``jax.set_mesh`` / :func:`use_mesh` (works while
  tracing). Returns None inside the body of a sharded :func:`chunked_map`, so nested
  maps do not reshard what is already spread over the devices, and when the data axis
  is not an ``Auto`` axis.
  """
  if _INSIDE_SHARDED.get():
    return None
  return _auto_data_axis()


def _auto_data_axis() -> tuple[str, int] | None:
  mesh = jax.sharding.get_abstract_mesh()
  size = mesh_data_size(mesh)
  if size <= 1:
    return None
  axis_type = dict(zip(mesh.axis_names, mesh.axis_types))[DATA_AXIS]
  if axis_type != jax.sharding.AxisType.Auto:
    return None
  return DATA_AXIS, size


def one_matrix_per_lapack_call() -> bool:
  """Whether batched LAPACK calls being traced should take one matrix per call.

  True on the CPU platform (that of the current mesh's devices, else the default
  backend), where jaxlib 0.10's batch-splitting LAPACK kernels can deadlock XLA's
  intra-op thread pool (module doc): with several simulated devices, and on one device
  when independent batched calls can run at once. One matrix per call never splits and
  measured no slower on CPU. False on GPU and TPU, whose batched solvers are the fast
  path.
  """
  device = getattr(jax.sharding.get_abstract_mesh(), "abstract_device", None)
  platform = getattr(device, "platform", None) or jax.default_backend()
  return platform == "cpu"


def data_parallelism() -> int:
  """Number of devices the current data axis spans (1 without a data mesh)."""
  found = current_data_axis()
  return 1 if found is None else found[1]


@contextlib.contextmanager
def _inside_sharded() -> Iterator[None]:
  token = _INSIDE_SHARDED.set(True)
  try:
    yield
  finally:
    _INSIDE_SHARDED.reset(token)


def constrain_rows(tree: PyTree, *, axis: int = 0) -> PyTree:
  """Inside ``jax.jit``: shards axis ``axis`` of every leaf over the current data axis.

  Leaves whose axis is not divisible by the data-axis size (and scalars) are left alone;
  without a data mesh this is the identity.
  """
  found = current_data_axis()
  if found is None:
    return tree
  size = found[1]

  def one(a):
    if getattr(a, "ndim", 0) <= axis or a.shape[axis] % size:
      return a
    return _constrain(a, axis)

  return jax.tree_util.tree_map(one, tree)


def _constrain(a: jax.Array, axis: int) -> jax.Array:
  """``with_sharding_constraint`` splitting ``axis`` of ``a`` over the current data axis."""
  spec = jax.sharding.PartitionSpec(*([None] * axis), DATA_AXIS)
  if not isinstance(a, jax.core.Tracer):  # eager: needs the concrete mesh
    mesh = jax.sharding.get_mesh()
    if isinstance(mesh, jax.sharding.Mesh) and not mesh.empty:
      return jax.lax.with_sharding_constraint(a, jax.sharding.NamedSharding(mesh, spec))
  return jax.lax.with_sharding_constraint(a, spec)


def per_device(fn, *args: jax.Array, rows: Sequence[bool]) -> PyTree:
  """``fn(*args)`` with each device of the current data axis running it on its own rows.

  Inside ``jax.jit`` under a data mesh (:func:`use_mesh`): ``jax.shard_map`` over
  ``"data"``, splitting the leading axis of the arguments flagged in ``rows`` (the rest
  replicated); every output is split by rows. ``fn`` must be row-wise in the flagged
  arguments and must not close over traced arrays (pass them as arguments). Used for
  loops whose trip count depends on the data, so that each device iterates on its own
  rows. Without a data mesh, or when a flagged leading axis is not divisible by the
  number of devices, this is ``fn(*args)``.
  """
  found = _auto_data_axis()
  if found is None or len(rows) != len(args):
    return fn(*args)
  size = found[1]
  if any(r and (np.ndim(a) == 0 or np.shape(a)[0] % size) for a, r in zip(args, rows)):
    return fn(*args)
  P = jax.sharding.PartitionSpec
  specs = tuple(P(DATA_AXIS) if r else P() for r in rows)
  return jax.shard_map(fn, in_specs=specs, out_specs=P(DATA_AXIS), check_vma=False)(*args)


def to_host(x: Any) -> np.ndarray:
  """``x`` as a numpy array in this process, with the rows other processes hold.

  On a mesh over several processes a row-sharded result is not fully addressable from
  any one of them (``np.asarray`` raises), so it is all-gathered first. Every process
  must call this for such an array (it is a collective); otherwise it is ``np.asarray``.
  """
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def _resolve_mesh(mesh: jax.sharding.Mesh | None) -> jax.sharding.Mesh:
  if mesh is None:
    mesh = jax.sharding.get_mesh()
    if getattr(mesh, "empty", True) or not isinstance(mesh, jax.sharding.Mesh):
      raise UserInputError("no mesh given and none is set; pass mesh= or use "
                           "assljax.parallel.use_mesh(mesh).")
  if not isinstance(mesh, jax.sharding.Mesh):
    raise UserInputError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
  return mesh


def replicated(mesh: jax.sharding.Mesh | None = None) -> jax.sharding.NamedSharding:
  """The fully replicated ``NamedSharding`` of ``mesh`` (default: the current mesh)."""
  return jax.sharding.NamedSharding(_resolve_mesh(mesh), jax.sharding.PartitionSpec())


def row_sharding(mesh: jax.sharding.Mesh | None = None) -> jax.sharding.NamedSharding:
  """``NamedSharding`` splitting the leading axis over ``"data"`` (rest replicated)."""
  mesh = _resolve_mesh(mesh)
  if DATA_AXIS not in mesh.axis_names:
    raise UserInputError(f"mesh has no {DATA_AXIS!r} axis (axes {mesh.axis_names}).")
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(DATA_AXIS))


def replicate(tree: PyTree, mesh: jax.sharding.Mesh | None = None) -> PyTree:
  """``tree`` with every array leaf copied to all devices of ``mesh`` (replicated)."""
  return jax.device_put(tree, replicated(mesh))


def shard_rows(tree: PyTree, mesh: jax.sharding.Mesh | None = None) -> PyTree:
  """``tree`` with every leaf's leading axis split over the ``"data"`` axis of ``mesh``.

  Each device then holds ``n / D`` rows of a pool ``(n, ...)``. ``n`` must be divisible by
  the data-axis size ``D`` (pad the pool, or take ``D`` dividing ``n``): an uneven split
  raises a ValueError.
  """
  sharding = row_sharding(mesh)
  size = mesh_data_size(sharding.mesh)
  for leaf in jax.tree_util.tree_leaves(tree):
    shape = np.shape(leaf)
    if not shape or shape[0] % size:
      raise UserInputError(f"shard_rows needs a leading axis divisible by the {size} devices of "
                           f"the data axis, got shape {tuple(shape)}.")
  return jax.device_put(tree, sharding)
