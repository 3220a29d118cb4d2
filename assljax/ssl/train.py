"""The shared semi-supervised training engine: data on device, jitted chunks of steps.

    data = make_data(x_pool, labels, labeled_mask)             # device arrays, fixed shapes
    trainer = make_trainer(model, fixmatch(), batch_size=64, total_steps=2**20)
    state = trainer.init(key, data)                             # or variables=... to continue
    state = trainer.train(state, data, 10_000, chunk_steps=1000, callback=save,
                          eval_every=5000, eval_data=(x_test, y_test))
    result = evaluate(model, trainer.eval_variables(state), x_test, y_test)

Design:

* **One pytree.** :class:`TrainState` (a NamedTuple of arrays: step, params, BatchNorm
  statistics, optimizer state, EMA params and statistics, the algorithm's state such as
  DARP's matrices, and the base PRNG key) is everything training needs; orbax saves and
  restores it as is.
* **Explicit keys.** Step ``t`` uses ``jax.random.fold_in(state.key, t)`` for batch
  sampling and augmentation, so a run resumed from any chunk boundary (or split into
  chunks differently) is bit-identical to an uninterrupted one.
* **Data on device, sampled on device.** :class:`SSLData` holds the pool, its labels,
  and the labeled and unlabeled sets as index arrays *padded to a fixed capacity* plus a
  count. Batches are drawn uniformly with replacement from the first ``count`` entries,
  so a growing labeled set changes values, not shapes: the jitted chunk is compiled once
  per trainer and reused for every active-learning round (with the default capacity,
  the pool size, it never recompiles).
* **Chunks.** ``train`` runs chunks of steps. On accelerators a chunk is one jitted
  ``lax.fori_loop`` over a traced number of steps (so any chunk length reuses the same
  executable); on CPU, where XLA runs convolutions inside loop bodies about 7x slower
  (measured on this stack), it is a Python loop dispatching one jitted step at a time.
  Either way the state is donated. Between chunks ``train`` updates a tqdm bar,
  evaluates every ``eval_every`` steps and calls ``callback(state, record)`` (where the
  loop checkpoints).
* **Data parallel on a mesh.** ``make_trainer(..., mesh=assljax.parallel.data_mesh())``
  jits the step with ``in_shardings``/``out_shardings``: the state (parameters, optimizer,
  EMA, BatchNorm statistics) and the data are replicated, every sampled batch is sharded
  over the ``"data"`` axis, and XLA's SPMD partitioner inserts the all-reduces (gradients,
  and BatchNorm's batch means, which stay means over the *global* batch). The program
  computes the same function as on one device; results agree up to floating-point
  reassociation of those sums (about 1e-6 relative per step in float32, growing slowly
  with the number of steps).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from assljax import parallel
from assljax._chunking import chunked_map
from assljax._compile import jit
from assljax._validation import UserInputError, check_number
from assljax.models.core import Model, Variables
from assljax.ssl import optim
from assljax.ssl.algorithm import Algorithm, Batch, LossContext
from assljax.ssl.ema import ema_update

PyTree = Any

# The chunk metric holding the first step whose loss, metrics or parameters were not
# finite (+inf when none was).
NONFINITE_KEY = "first_nonfinite_step"
_NONFINITE_POLL = 32


class TrainingDiverged(UserInputError):
  """Training produced a non-finite loss or parameters at ``step`` (0-based, absolute).

  A :class:`~assljax.UserInputError`: the cause is in the run's settings (learning rate,
  loss weights, data), and the command line reports it in one line.

  :meth:`Trainer.train` raises it at the end of the chunk where it happened (a device
  loop stops at that step; a host loop within a few dozen steps), *before* the chunk's
  callback, so a checkpoint written by the callback never holds non-finite weights.
  """

  def __init__(self, step: int, message: str | None = None):
    self.step = int(step)
    super().__init__(message or f"training diverged: non-finite loss or parameters at "
                                f"step {self.step}")


def _all_finite(tree: PyTree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(leaf.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


class SSLData(NamedTuple):
  """The training data of one round, as device arrays of fixed shapes.

  Attributes:
    x: ``(N, *input_shape)`` float32 pool inputs (images in [0, 1]).
    labels: ``(N,)`` int32 labels, meaningful where labeled.
    labeled_idx: ``(L_cap,)`` int32 pool indices of the labeled set, padded.
    num_labeled: ``()`` int32, valid entries of ``labeled_idx``.
    unlabeled_idx: ``(U_cap,)`` int32 pool indices of the unlabeled set, padded.
    num_unlabeled: ``()`` int32, valid entries of ``unlabeled_idx``.
    truth: ``(N,)`` int32 true labels of the whole pool (``-1`` where unknown) for the
      pseudo-label accuracy metrics, or None; never used by a loss.
  """
  x: jax.Array
  labels: jax.Array
  labeled_idx: jax.Array
  num_labeled: jax.Array
  unlabeled_idx: jax.Array
  num_unlabeled: jax.Array
  truth: jax.Array | None = None


def _padded(indices: np.ndarray, capacity: int, what: str) -> np.ndarray:
  if indices.size > capacity:
    raise ValueError(f"{indices.size} {what} indices do not fit the capacity {capacity}.")
  out = np.zeros((capacity,), np.int32)
  out[:indices.size] = indices
  return out


def make_data(x: Any, labels: Any, labeled_mask: Any, *, unlabeled: str = "all",
              labeled_capacity: int | None = None, num_classes: int | None = None,
              truth: Any = None) -> SSLData:
  """Builds :class:`SSLData` from a pool and its labeled mask, on the default device.

  Args:
    x: ``(N, *input_shape)`` pool inputs.
    labels: ``(N,)`` integer labels, read where ``labeled_mask`` is True.
    labeled_mask: ``(N,)`` bool.
    unlabeled: ``"all"`` uses the whole pool as unlabeled data (FixMatch's convention:
      the labeled inputs are also unlabeled inputs), ``"rest"`` only the unlabeled part.
    labeled_capacity: length of the padded labeled index array; keep it fixed across
      rounds to reuse the compiled step (default ``N``, which always fits).
    num_classes: if given, labeled labels are checked to lie in ``[0, num_classes)``.
    truth: ``(N,)`` true labels of the pool for training metrics only (a simulated
      oracle's ground truth; ``-1`` where unknown), or None.

  Returns:
    An :class:`SSLData`. With ``unlabeled="all"`` the unlabeled index array is
    ``arange(N)``; with ``"rest"`` it is padded to ``N``.
  """
  x = jnp.asarray(x)
  labels_np = np.asarray(labels)
  mask = np.asarray(labeled_mask)
  n = x.shape[0]
  if labels_np.shape != (n,) or mask.shape != (n,):
    raise UserInputError(f"labels and labeled_mask must have shape ({n},), got "
                         f"{labels_np.shape} and {mask.shape}.")
  if mask.dtype != bool:
    raise UserInputError(f"labeled_mask must be boolean, got dtype {mask.dtype}.")
  if unlabeled not in ("all", "rest"):
    raise UserInputError(f"unlabeled must be 'all' or 'rest', got {unlabeled!r}.")
  labeled = np.flatnonzero(mask).astype(np.int32)
  if labeled.size == 0:
    raise UserInputError("the labeled set is empty; training needs at least one label.")
  if num_classes is not None:
    lab = labels_np[labeled]
    if lab.min() < 0 or lab.max() >= num_classes:
      raise UserInputError(f"labeled labels must lie in [0, {num_classes}), got "
                       f"[{lab.min()}, {lab.max()}].")
  rest = np.arange(n, dtype=np.int32) if unlabeled == "all" else np.flatnonzero(~mask)
  if rest.size == 0:
    raise UserInputError("the unlabeled set is empty; use unlabeled='all' or more pool data.")
  capacity = n if labeled_capacity is None else int(labeled_capacity)
  if truth is not None:
    truth = np.asarray(truth)
    if truth.shape != (n,):
      raise UserInputError(f"truth must have shape ({n},), got {truth.shape}.")
    truth = jnp.asarray(truth.astype(np.int32))
  return SSLData(
      x=x, labels=jnp.asarray(labels_np.astype(np.int32)),
      labeled_idx=jnp.asarray(_padded(labeled, capacity, "labeled")),
      num_labeled=jnp.asarray(labeled.size, jnp.int32),
      unlabeled_idx=jnp.asarray(_padded(rest.astype(np.int32), n, "unlabeled")),
      num_unlabeled=jnp.asarray(rest.size, jnp.int32), truth=truth)


class TrainState(NamedTuple):
  """Everything training needs, one pytree of arrays (orbax-ready).

  Attributes:
    step: ``()`` int32, steps taken.
    params, batch_stats: the model's variables (pure dicts).
    opt_state: the optax state.
    ema_params, ema_batch_stats: exponential moving averages (evaluation weights).
    algo_state: the algorithm's state (``()`` or e.g. a ``DarpState``).
    key: ``(2,)`` uint32 base PRNG key; step ``t`` uses ``fold_in(key, t)``.
  """
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree
  ema_params: PyTree
  ema_batch_stats: PyTree
  algo_state: PyTree
  key: jax.Array


def _raw_key(key: jax.Array) -> jax.Array:
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  if key.shape != (2,) or key.dtype != jnp.uint32:
    raise UserInputError(f"key must be a PRNG key (jax.random.key or PRNGKey), got "
                         f"shape {key.shape} dtype {key.dtype}.")
  return key


def sample_batch(key: jax.Array, data: SSLData, batch_size: int,
                 unlabeled_batch_size: int) -> Batch:
  """Draws a :class:`~assljax.ssl.algorithm.Batch` uniformly with replacement, on device.

  ``batch_size`` labeled inputs from the first ``num_labeled`` entries of
  ``labeled_idx`` and ``unlabeled_batch_size`` from the unlabeled set.
  """
  k_l, k_u = jax.random.split(key)
  pos = jax.random.randint(k_l, (batch_size,), 0, data.num_labeled)
  idx = data.labeled_idx[pos]
  rows = jax.random.randint(k_u, (unlabeled_batch_size,), 0, data.num_unlabeled)
  pool_rows = data.unlabeled_idx[rows]
  return Batch(x_labeled=data.x[idx], y_labeled=data.labels[idx],
               x_unlabeled=data.x[pool_rows], unlabeled_rows=rows,
               y_unlabeled=None if data.truth is None else data.truth[pool_rows])


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
  """Trains one model with one algorithm; build with :func:`make_trainer`."""
  model: Model
  algorithm: Algorithm
  batch_size: int
  unlabeled_batch_size: int
  optimizer: optax.GradientTransformation
  ema_decay: float
  compute_dtype: Any
  device_loop: bool
  train_step: Callable = dataclasses.field(repr=False)
  step_fn: Callable = dataclasses.field(repr=False)
  loop_fn: Callable = dataclasses.field(repr=False)
  cache: dict = dataclasses.field(default_factory=dict, repr=False)
  mesh: jax.sharding.Mesh | None = dataclasses.field(default=None, repr=False)

  def place(self, tree: PyTree) -> PyTree:
    """``tree`` replicated over the trainer's mesh (unchanged without a mesh).

    A state or data already placed is returned as is (no copy); place the round's
    :class:`SSLData` once to avoid a copy per chunk.
    """
    return tree if self.mesh is None else parallel.replicate(tree, self.mesh)

  def run_chunk(self, state: TrainState, data: SSLData, num_steps: int
                ) -> tuple[TrainState, dict]:
    """Runs ``num_steps`` steps (state donated); returns the state and the metric means.

    With ``device_loop`` the steps run in one jitted ``lax.fori_loop`` over a traced
    trip count; otherwise (the default on CPU, where XLA runs convolutions inside loop
    bodies several times slower) a Python loop dispatches one jitted step at a time.
    Either way each executable is compiled once, whatever ``num_steps``.
    """
    state, data = self.place(state), self.place(data)
    # the metrics' names and shapes, traced once per data structure (pseudo-label
    # accuracy exists only when the data carry the truth)
    key = ("metrics", data.truth is None)
    if key not in self.cache:
      self.cache[key] = jax.eval_shape(self.train_step, state, data)[1]
    total = self.place({k: jnp.full(v.shape, jnp.inf if k == NONFINITE_KEY else 0, v.dtype)
                        for k, v in self.cache[key].items()})
    if self.device_loop:
      state, total = self.loop_fn(state, data, jnp.asarray(num_steps, jnp.int32), total)
    else:
      for done in range(int(num_steps)):
        state, total = self.step_fn(state, data, total)
        # One host sync every few dozen steps: cheap next to a step, and a diverged run
        # stops within a few steps instead of at the end of the chunk.
        if (done + 1) % _NONFINITE_POLL == 0 and not np.isinf(float(total[NONFINITE_KEY])):
          break
    scale = 1.0 / max(int(num_steps), 1)
    return state, {k: v if k == NONFINITE_KEY else v * scale for k, v in total.items()}

  def init(self, key: jax.Array, data: SSLData, *, variables: Variables | None = None
           ) -> TrainState:
    """A fresh training state.

    Args:
      key: PRNG key; splits into the initialization key and the base training key.
      data: the round's :class:`SSLData` (sizes the algorithm's per-row state).
      variables: start from these weights (continue training, dynamicAL's setting) instead
        of a fresh initialization; the optimizer state, the EMA (set to ``variables``),
        the algorithm state and the step restart either way.
    """
    k_init, k_train = jax.random.split(_raw_key(key))
    if variables is None:
      variables = self.model.init(k_init)
    # Fresh buffers throughout: the state is donated to the jitted chunks, and must not
    # alias the caller's arrays (a previous round's weights) or itself (params vs EMA).
    copy = lambda t: jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), t)
    params, stats = copy(variables.params), copy(variables.batch_stats)
    return self.place(TrainState(
        step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats,
        opt_state=copy(self.optimizer.init(params)), ema_params=copy(params),
        ema_batch_stats=copy(stats),
        algo_state=copy(self.algorithm.init_state(int(data.unlabeled_idx.shape[0]),
                                                  self.model.num_classes)),
        key=k_train))

  def variables(self, state: TrainState) -> Variables:
    """The raw (non-averaged) weights of ``state``."""
    return Variables(state.params, state.batch_stats)

  def eval_variables(self, state: TrainState) -> Variables:
    """The EMA weights of ``state``, the ones to evaluate and to acquire with."""
    return Variables(state.ema_params, state.ema_batch_stats)

  def train(self, state: TrainState, data: SSLData, num_steps: int, *,
            chunk_steps: int = 1000, callback: Callable[[TrainState, dict], Any] | None = None,
            eval_every: int | None = None, eval_data: tuple[Any, Any] | None = None,
            eval_batch_size: int = 1024, progress: bool = True,
            description: str | None = None,
            should_stop: Callable[[dict], bool] | None = None) -> TrainState:
    """Runs ``num_steps`` steps from ``state.step``; returns the new state.

    ``state`` is donated: its buffers are reused, so keep only the returned state.
    Chunks end at multiples of ``chunk_steps`` and of ``eval_every`` (absolute step
    numbers), and at the last step.

    Args:
      state: from :meth:`init` or a restored checkpoint.
      data: the :class:`SSLData` (same shapes as at ``init``).
      num_steps: steps to run.
      chunk_steps: steps per jitted call; the callback runs after each chunk.
      callback: ``callback(state, record)`` after every chunk; ``record`` holds
        ``step``, the chunk means of the algorithm's metrics (and ``learning_rate``),
        ``steps_per_second`` (wall clock of the chunk, host side), and ``eval`` (the
        :func:`evaluate` result of the EMA weights) when an evaluation ran. The next
        chunk donates ``state``: save it synchronously (or copy it) inside the callback.
      eval_every: evaluate every this many steps (and at the end) if ``eval_data``.
      eval_data: ``(x, y)`` to evaluate on.
      eval_batch_size: chunk size of the evaluation.
      progress: show a tqdm progress bar.
      description: the bar's label (default: the algorithm's name).
      should_stop: ``should_stop(record) -> bool`` after every chunk's callback; True
        ends training there (early stopping on the evaluation in ``record``).

    Raises:
      TrainingDiverged: a step produced a non-finite loss, metric or parameter; raised
        before that chunk's callback, with the step number.
    """
    if num_steps < 0:
      raise UserInputError(f"num_steps must be >= 0, got {num_steps!r}.")
    if chunk_steps < 1:
      raise UserInputError(f"chunk_steps must be a positive integer, got {chunk_steps!r}.")
    if eval_every is not None and eval_every < 1:
      raise UserInputError(f"eval_every must be a positive integer or None, got {eval_every!r}.")
    from tqdm.auto import tqdm

    start = int(state.step)
    end = start + int(num_steps)
    current = start
    bar = tqdm(total=int(num_steps), disable=not progress,
               desc=description or self.algorithm.name, dynamic_ncols=True)
    try:
      while current < end:
        stop = min(end, (current // chunk_steps + 1) * chunk_steps)
        if eval_every:
          stop = min(stop, (current // eval_every + 1) * eval_every)
        started = time.perf_counter()
        state, metrics = self.run_chunk(state, data, stop - current)
        first_bad = float(metrics.pop(NONFINITE_KEY))
        if not np.isinf(first_bad):
          raise TrainingDiverged(int(first_bad))
        record = {"step": stop, **{k: float(v) for k, v in metrics.items()},
                  "steps_per_second": (stop - current) / max(time.perf_counter() - started,
                                                             1e-9)}
        if eval_data is not None and eval_every and (stop % eval_every == 0 or stop == end):
          with parallel.use_mesh(self.mesh):
            record["eval"] = evaluate(self.model, self.eval_variables(state), eval_data[0],
                                      eval_data[1], batch_size=eval_batch_size)
        bar.update(stop - current)
        postfix = {"loss": f"{record.get('loss', float('nan')):.4f}"}
        if "eval" in record:
          postfix["acc"] = f"{record['eval']['accuracy']:.4f}"
        bar.set_postfix(postfix)
        current = stop
        if callback is not None:
          callback(state, record)
        if should_stop is not None and should_stop(record):
          break
    finally:
      bar.close()
    return state


def make_trainer(model: Model, algorithm: Algorithm, *, batch_size: int = 64,
                 total_steps: int = 2 ** 20, mu: int | None = None, lr: float | None = None,
                 weight_decay: float | None = None, momentum: float = 0.9,
                 nesterov: bool = True, optimizer: optax.GradientTransformation | None = None,
                 ema_decay: float = 0.999, compute_dtype: Any = None,
                 device_loop: bool | None = None,
                 mesh: jax.sharding.Mesh | None = None,
                 lr_schedule: Callable[[jax.Array], jax.Array] | None = None) -> Trainer:
  """Builds a :class:`Trainer` (and its jitted chunk function).

  Args:
    model: from :func:`assljax.models.build`.
    algorithm: e.g. ``fixmatch()``, ``fixmatch_darp()``, ``mixmatch()``,
      ``mean_teacher()``, ``supervised()``.
    batch_size: labeled inputs per step ``B`` (64 in the references).
    total_steps: ``K`` of the cosine schedule ``lr cos(7 pi k / 16K)`` (2^20 in
      FixMatch); steps past ``K`` keep the final rate.
    mu: unlabeled inputs per labeled input; None = the algorithm's (7 for FixMatch).
    lr, weight_decay: None = the algorithm's reference values (SGD 0.03 / 5e-4, or
      MixMatch's Adam 2e-3 / 0.02); weight decay acts on kernels only.
    momentum, nesterov: SGD momentum (ignored by Adam).
    optimizer: an optax transformation replacing the recipe above entirely.
    ema_decay: decay of the evaluation EMA (0.999); Mean Teacher uses its own schedule.
    compute_dtype: e.g. ``jnp.bfloat16`` to run forward and backward passes in bfloat16
      (on GPU, via ``model.with_compute_dtype``); the weights, gradients, optimizer
      state, EMA and BatchNorm statistics stay float32 and losses are taken in float32.
    device_loop: run each chunk as one jitted ``lax.fori_loop`` (True) or as a Python
      loop of jitted steps (False); None = True except on CPU. Both give the same
      result for a given choice whatever the chunking; they may differ in the last bits
      from each other (different XLA programs).
    mesh: a mesh with a ``"data"`` axis (:func:`assljax.parallel.data_mesh`) to train data
      parallel: the labeled and unlabeled batches are sharded over ``"data"`` (their sizes
      ``batch_size`` and ``mu * batch_size`` must be multiples of its size), the state and
      data replicated, and evaluations during ``train`` run under the mesh. None: one
      device (the default device), as before.
    lr_schedule: ``step -> learning rate`` of ``optimizer``, reported as the
      ``learning_rate`` metric; None: the built-in recipe's own schedule (none is
      reported for a custom ``optimizer`` without it).

  Returns:
    A :class:`Trainer`.
  """
  if batch_size < 1:
    raise UserInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
  ema_decay = check_number("ema_decay", ema_decay, low=0.0, high=1.0)
  mu = algorithm.mu if mu is None else int(mu)
  if mu < 0 or (algorithm.mu > 0 and mu == 0):
    raise UserInputError(f"mu must be a positive integer for {algorithm.name}, got {mu!r}.")
  if optimizer is None:
    lr = algorithm.lr if lr is None else float(lr)
    weight_decay = algorithm.weight_decay if weight_decay is None else float(weight_decay)
    if algorithm.optimizer == "adam":
      optimizer = optim.adam(lr, weight_decay=weight_decay)
      lr_schedule = optim.adam_schedule(lr)
    else:
      optimizer = optim.sgd(lr, total_steps=total_steps, momentum=momentum,
                            nesterov=nesterov, weight_decay=weight_decay)
      lr_schedule = optim.fixmatch_schedule(lr, total_steps)
  unlabeled_batch_size = mu * batch_size
  if mesh is not None:
    if not isinstance(mesh, jax.sharding.Mesh) or parallel.DATA_AXIS not in mesh.axis_names:
      raise UserInputError(f"mesh must be a jax.sharding.Mesh with a {parallel.DATA_AXIS!r} axis, "
                           f"got {mesh!r}.")
    size = parallel.mesh_data_size(mesh)
    if batch_size % size or unlabeled_batch_size % size:
      raise UserInputError(f"batch sizes {batch_size} (labeled) and {unlabeled_batch_size} "
                           f"(unlabeled) must be multiples of the {size} devices of the data axis.")
    batch_sharding = parallel.row_sharding(mesh)
    state_sharding = parallel.replicated(mesh)

  compute_model = model if compute_dtype is None else model.with_compute_dtype(compute_dtype)

  def forward(params, batch_stats, x):
    logits, new_stats = compute_model.apply_train(params, batch_stats, x)
    return logits.astype(jnp.float32), new_stats

  def train_step(state: TrainState, data: SSLData):
    key = jax.random.fold_in(state.key, state.step)
    k_batch, k_loss = jax.random.split(key)
    batch = sample_batch(k_batch, data, batch_size, unlabeled_batch_size)
    if mesh is not None:  # data parallel: every device takes its share of the rows
      batch = jax.tree_util.tree_map(
          lambda a: jax.lax.with_sharding_constraint(a, batch_sharding), batch)
    ctx = LossContext(state.ema_params, state.ema_batch_stats, state.algo_state,
                      data.num_unlabeled)

    def loss_fn(params):
      return algorithm.loss(forward, params, state.batch_stats, batch, k_loss, state.step, ctx)

    (_, (new_stats, metrics, algo_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = (algorithm.ema_decay(state.step) if algorithm.ema_decay is not None
             else ema_decay)
    new_state = TrainState(
        step=state.step + 1, params=params, batch_stats=new_stats, opt_state=opt_state,
        ema_params=ema_update(state.ema_params, params, decay),
        ema_batch_stats=ema_update(state.ema_batch_stats, new_stats, decay),
        algo_state=algo_state, key=state.key)
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    if lr_schedule is not None:
      metrics["learning_rate"] = jnp.asarray(lr_schedule(state.step), jnp.float32)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in metrics.values()]
                               + [_all_finite(params)]))
    metrics[NONFINITE_KEY] = jnp.where(finite, jnp.inf, state.step.astype(jnp.float32))
    return new_state, metrics

  def accumulate(state: TrainState, data: SSLData, total: dict):
    state, metrics = train_step(state, data)
    return state, {k: (jnp.minimum if k == NONFINITE_KEY else jnp.add)(total[k], metrics[k])
                   for k in total}

  def device_loop_fn(state: TrainState, data: SSLData, num_steps: jax.Array, total: dict):
    # Stops at the first step whose loss or parameters are not finite.
    def cond(carry):
      return (carry[0] < num_steps) & jnp.isinf(carry[2][NONFINITE_KEY])

    def body(carry):
      i, state, total = carry
      state, total = accumulate(state, data, total)
      return i + 1, state, total

    _, state, total = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), state, total))
    return state, total

  if device_loop is None:
    device_loop = jax.default_backend() != "cpu"
  if mesh is None:
    step_fn = jit(accumulate, donate_argnums=(0, 2))
    loop_fn = jit(device_loop_fn, donate_argnums=(0, 3))
  else:  # replicated state and data in and out; the batch is sharded inside the step
    rep = state_sharding
    step_fn = jit(accumulate, in_shardings=(rep, rep, rep), out_shardings=(rep, rep),
                      donate_argnums=(0, 2))
    loop_fn = jit(device_loop_fn, in_shardings=(rep, rep, rep, rep),
                      out_shardings=(rep, rep), donate_argnums=(0, 3))
  return Trainer(model=model, algorithm=algorithm, batch_size=int(batch_size),
                 unlabeled_batch_size=unlabeled_batch_size, optimizer=optimizer,
                 ema_decay=float(ema_decay), compute_dtype=compute_dtype,
                 device_loop=bool(device_loop), train_step=train_step,
                 step_fn=step_fn, loop_fn=loop_fn, mesh=mesh)


@functools.lru_cache(maxsize=32)
def _eval_fn(model: Model, batch_size: int):

  def counts(params, batch_stats, x, y):
    preds = chunked_map(lambda xb: model.apply(params, batch_stats, xb).argmax(-1), x,
                        chunk_size=batch_size)
    correct = (preds == y).astype(jnp.float32)
    hits = jnp.zeros((model.num_classes,), jnp.float32).at[y].add(correct)
    totals = jnp.zeros((model.num_classes,), jnp.float32).at[y].add(1.0)
    return correct.sum(), hits, totals

  return jit(counts)


def evaluate(model: Model, variables: Variables, x: Any, y: Any, *,
             batch_size: int = 1024) -> dict:
  """Eval-mode accuracy of ``variables`` on ``(x, y)``, streamed in chunks.

  Args:
    model: the :class:`~assljax.models.Model`.
    variables: ``Variables(params, batch_stats)`` (e.g. ``trainer.eval_variables(state)``).
    x: ``(n, *input_shape)`` inputs; y: ``(n,)`` int labels in ``[0, C)``.
    batch_size: inputs per chunk.

  Returns:
    ``{"accuracy": float, "per_class_accuracy": (C,) float64 numpy array}``, NaN for
    classes absent from ``y``.
  """
  y = np.asarray(y)
  if y.ndim != 1 or y.shape[0] != np.shape(x)[0]:
    raise UserInputError(f"y must have shape ({np.shape(x)[0]},), got {y.shape}.")
  if y.size == 0:
    raise UserInputError("evaluate got no examples.")
  if y.min() < 0 or y.max() >= model.num_classes:
    raise UserInputError(f"labels must lie in [0, {model.num_classes}), got [{y.min()}, "
                         f"{y.max()}].")
  correct, hits, totals = _eval_fn(model, int(batch_size))(
      variables.params, variables.batch_stats, jnp.asarray(x), jnp.asarray(y, jnp.int32))
  hits, totals = np.asarray(hits, np.float64), np.asarray(totals, np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_class = np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)
  return {"accuracy": float(correct) / y.size, "per_class_accuracy": per_class}
