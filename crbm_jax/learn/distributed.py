"""Data-parallel training of ONE model: each minibatch's rows over the devices of a Mesh.

``fit_data_parallel`` trains the model ``learn.fit.make_fit`` trains (the same learner,
fixed epochs, the best epoch by validation pseudo-likelihood) with every minibatch's
rows split over a 1-D ``jax.sharding.Mesh`` axis ``'data'`` that may span several
processes or hosts (``jax.distributed``). Equal to one device, to float summation order:

* **The same minibatches.** Epoch e's order and step keys are ``engine.epoch_minibatches(
  fold_in(data_key, e), N, batch_size)`` on the GLOBAL row count N (train padded to a
  multiple of the batch size, as ``learn.fit`` pads it); every process draws the same
  permutation and only then takes its share. So what a minibatch holds does not depend
  on the number of devices or processes.
* **The same step.** The learner's ``step`` is used unchanged, jitted with the batch
  sharded ``P(None, 'data')`` and the state replicated: XLA's SPMD partitioner turns the
  gradient's sum over the batch (``contrastive_grads``: a mean over the global batch,
  weights normalised by the global weight sum) and the W_aux scatter into per-device work
  plus all-reduces. A jitted function's values do not depend on how its inputs are
  sharded, Gibbs noise included; the partitionable threefry
  (``jax_threefry_partitionable``, JAX's default) lets each device draw only its rows'.
* **Host data per process.** Each process holds the table on the host (every process
  reads it) and puts on its own devices only the rows of its share of each minibatch
  (``jax.make_array_from_callback``): device memory per epoch is N x V / devices.
  Validation rows are split the same way and the pseudo-likelihood's sums are added over
  the devices (``shard_map`` + ``psum``).

Multi-process: call ``initialize(coordinator_address, num_processes, process_id)`` in
every process before anything else touches JAX (on CPU it selects the gloo collectives);
``data_mesh()`` then spans every process's devices. Limits: the batch size must be a
multiple of the device count (checked, one line); the learner's ``init`` runs once per
process on its first local device, with the whole train set put there for it (CD reads
the tags' frequencies, PCD draws its initial chains); W_aux and the other parameters are
replicated on every device, not sharded.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from crbm_jax.learn.base import Batch, Dataset, FitResult, History, HParams, TrainConfig
from crbm_jax.learn.engine import epoch_minibatches
from crbm_jax.learn.learner import cd
from crbm_jax.model.pseudolikelihood import balanced_from_sums, balanced_log_pl_sums
from crbm_jax.types import PRNGKey

AXIS = "data"


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None, *, cpu: bool = False) -> None:
  """``jax.distributed.initialize`` (all None: JAX detects the cluster, e.g. SLURM).

  With ``cpu`` the processes use CPU devices and gloo collectives (what the tests and a
  CPU cluster use); call it before any other use of JAX in the process."""
  if cpu:
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def data_mesh(devices: Optional[Sequence] = None) -> Mesh:
  """A 1-D mesh with axis ``'data'`` over ``devices`` (default: every process's)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.array(devices), (AXIS,))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """ValueError (one line) unless the batch splits evenly over the mesh's devices."""
  if batch_size % mesh.size:
    raise ValueError(f"batch size {batch_size} is not a multiple of the {mesh.size} "
                     "devices the minibatch rows are split over; choose a batch size "
                     "that is (or fewer devices)")


def pad_rows(data: Dataset, multiple: int) -> Dataset:
  """Host (numpy) Dataset padded to a multiple of ``multiple`` rows with weight-0 rows
  (aux -1): the same rows as ``learn.pad_dataset``."""
  v, aux, weight = (np.asarray(x) for x in data)
  pad = (-v.shape[0]) % multiple
  if pad:
    v = np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
    aux = np.concatenate([aux, np.full((pad,) + aux.shape[1:], -1, aux.dtype)])
    weight = np.concatenate([weight, np.zeros(pad, weight.dtype)])
  return Dataset(v, aux.astype(np.int32), weight.astype(np.float32))


def global_array(host: np.ndarray, mesh: Mesh, spec: P) -> jax.Array:
  """A global array over ``mesh`` from a host array every process holds whole: each
  process copies only its devices' blocks."""
  host = np.asarray(host)
  return jax.make_array_from_callback(host.shape, NamedSharding(mesh, spec),
                                      lambda index: host[index])


def replicate(tree, mesh: Mesh):
  """Every leaf of a host pytree replicated on every device of ``mesh``."""
  return jax.tree.map(lambda x: global_array(np.asarray(x), mesh, P()), tree)


def shard_minibatches(train: Dataset, order: np.ndarray, mesh: Mesh) -> Batch:
  """An epoch's minibatches [S, B, ...] as global arrays sharded ``P(None, 'data')``.

  ``train``: host Dataset (every process holds it whole); ``order`` [S, B]: the epoch's
  row numbers. Each process gathers only the rows its devices hold."""
  sharding = NamedSharding(mesh, P(None, AXIS))
  order = np.asarray(order)

  def make(column, dtype):
    shape = order.shape + column.shape[1:]
    return jax.make_array_from_callback(
        shape, sharding, lambda index: np.asarray(column[order[index[:2]]], dtype))

  return Batch(make(train.v, np.float32), make(train.aux, np.int32),
               make(train.weight, np.float32),
               jax.make_array_from_callback(order.shape, sharding,
                                            lambda index: order[index].astype(np.int32)))


def shard_rows(data: Dataset, mesh: Mesh) -> Dataset:
  """A host Dataset padded to a multiple of the device count (weight-0 rows) and sharded
  over its rows (``P('data')``)."""
  data = pad_rows(data, mesh.size)
  return Dataset(global_array(np.asarray(data.v, np.float32), mesh, P(AXIS)),
                 global_array(data.aux, mesh, P(AXIS)),
                 global_array(data.weight, mesh, P(AXIS)))


def make_sharded_evaluate(config: TrainConfig, mesh: Mesh) -> Callable:
  """``evaluate(params, val) -> scalar``: the balanced log pseudo-likelihood of rows
  sharded over ``'data'`` (each device's sums over its rows, added with ``psum``; equal to
  ``balanced_log_pl`` on all rows to float rounding). Pure; jit it."""

  def local(params, val):
    return jax.lax.psum(balanced_log_pl_sums(params, val, config.eval_chunk), AXIS)

  sums = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P())
  return lambda params, val: balanced_from_sums(sums(params, val))


def make_segment(learner, config: TrainConfig, num_rows: int) -> Callable:
  """Pure ``segment_fn(data_key, epoch, start, state, batches, hparams) -> (state,
  StepInfo summed over the steps)``: steps ``start`` .. ``start + K`` of an epoch over the
  pre-gathered minibatches [K, B, ...], with the step keys ``engine.run_epoch`` uses (the
  permutation ``epoch_minibatches`` also draws is unused here and left out by XLA; the
  host drew the same one to gather ``batches``). A whole epoch is one segment or several:
  the same steps with the same keys."""

  def segment_fn(data_key, epoch, start, state, batches: Batch, hparams: HParams):
    keys, _ = epoch_minibatches(jax.random.fold_in(data_key, epoch), num_rows,
                                config.batch_size)
    keys = jax.lax.dynamic_slice_in_dim(keys, start, batches.v.shape[0])
    state, info = jax.lax.scan(lambda s, xs: learner.step(xs[0], s, xs[1], hparams),
                               state, (keys, batches))
    return state, jax.tree.map(lambda x: jnp.sum(x, axis=0), info)

  return segment_fn


def fit_data_parallel(rng_key: PRNGKey, train: Dataset, val: Optional[Dataset],
                      config: TrainConfig, hparams: HParams, num_aux: int,
                      mesh: Optional[Mesh] = None, learner=None,
                      log: Optional[Callable[[str], None]] = None,
                      on_epoch: Optional[Callable[[int], None]] = None,
                      steps_per_call: Optional[int] = None) -> FitResult:
  """``learn.fit.make_fit(config, num_aux, learner)(rng_key, hparams, train, val)`` with
  each minibatch's rows split over ``mesh`` (default ``data_mesh()``, every process's
  devices). Same key, same data: the same model to float summation order.

  Args:
    train, val: host Datasets (numpy; every process passes the whole of them).
    learner: default CD-k (``learn.cd``).
    log: called with one line per evaluation (None: quiet).
    on_epoch: called with the epoch (0-based) once its training has finished (timing).
    steps_per_call: minibatches per jitted call (None: a whole epoch). The host gathers
      the next call's minibatches while the devices train on the current ones, so the
      devices hold two calls' rows: 2 x steps x batch x tags / devices floats (at most
      two programs compile: the full segments and the epoch's remainder).
  Returns:
    FitResult with host (numpy) arrays: the best epoch's parameters by validation
    (without ``val``: the last epoch's), its epoch and score, the history.
  """
  mesh = data_mesh() if mesh is None else mesh
  check_batch_size(config.batch_size, mesh)
  learner = learner if learner is not None else cd(config, num_aux)
  train = pad_rows(train, config.batch_size)
  n = train.v.shape[0]
  key_init, key_data = jax.random.split(rng_key)

  # Initial state: the same computation on each process's first local device, then
  # replicated over the mesh.
  local = jax.local_devices()[0]
  host_train = Dataset(*(jax.device_put(np.asarray(x, t), local) for x, t in
                         zip(train, (np.float32, np.int32, np.float32))))
  state = jax.device_get(jax.jit(learner.init)(jax.device_put(key_init, local),
                                               host_train, hparams))
  del host_train
  state, hp = replicate(state, mesh), replicate(hparams, mesh)
  typed = jnp.issubdtype(key_data.dtype, jax.dtypes.prng_key)
  impl = jax.random.key_impl(key_data) if typed else None
  raw_key = replicate(jax.random.key_data(key_data) if typed else key_data, mesh)
  wrap = (lambda k: jax.random.wrap_key_data(k, impl=impl)) if typed else (lambda k: k)

  replicated = NamedSharding(mesh, P())
  segment_fn = make_segment(learner, config, n)
  run_segment = jax.jit(lambda k, e, a, s, b, h: segment_fn(wrap(k), e, a, s, b, h),
                        out_shardings=replicated, donate_argnums=(3,))
  model_fn = jax.jit(learner.model, out_shardings=replicated)
  # (on this process's first device: its input is committed there)
  order_fn = jax.jit(lambda k, e: epoch_minibatches(jax.random.fold_in(k, e), n,
                                                    config.batch_size)[1])
  local_key = jax.device_put(key_data, local)
  evaluate = None
  if val is not None:
    evaluate = jax.jit(make_sharded_evaluate(config, mesh), out_shardings=replicated)
    val = shard_rows(val, mesh)

  steps = n // config.batch_size
  per_call = max(1, steps if not steps_per_call else min(int(steps_per_call), steps))
  segments = [(e, a, min(a + per_call, steps)) for e in range(config.num_epochs)
              for a in range(0, steps, per_call)]
  orders = {}

  def gather(segment):
    epoch, a, b = segment
    if epoch not in orders:
      orders.clear()
      orders[epoch] = np.asarray(order_fn(local_key, epoch))
    return shard_minibatches(train, orders[epoch][a:b], mesh)

  every = max(1, int(config.eval_every))
  recon = np.full(config.num_epochs, np.nan, np.float32)
  val_hist = np.full(config.num_epochs, np.nan, np.float32)
  # As ``engine.make_scan``: with validation the initial model is kept until an epoch
  # scores better; without, the last epoch's.
  best_params = None if evaluate is None else jax.device_get(model_fn(state, hp))
  best_pl, best_epoch = -np.inf, -1
  batches = gather(segments[0]) if segments else None
  recon_sum, t0 = 0.0, time.perf_counter()
  for i, (epoch, a, b) in enumerate(segments):
    state, info = run_segment(raw_key, jnp.int32(epoch), jnp.int32(a), state, batches, hp)
    # the next segment's rows are gathered and sent while the devices train (async)
    batches = gather(segments[i + 1]) if i + 1 < len(segments) else None
    recon_sum += float(info.recon_error)  # (waits for the segment)
    if b < steps:
      continue
    recon[epoch] = recon_sum / steps
    recon_sum = 0.0
    if on_epoch is not None:
      on_epoch(epoch)
    last = epoch == config.num_epochs - 1
    if evaluate is not None and ((epoch + 1) % every == 0 or last):
      params = model_fn(state, hp)
      score = float(evaluate(params, val))
      val_hist[epoch] = score
      if score > best_pl:  # (NaN never counts, as in engine.keep_best)
        best_params, best_pl, best_epoch = jax.device_get(params), score, epoch
      if log is not None:
        log(f"epoch {epoch + 1}/{config.num_epochs}: validation PL {score:.5f}, "
            f"recon {recon[epoch]:.5f}, {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
  if evaluate is None:
    best_params = jax.device_get(model_fn(state, hp))
    best_pl, best_epoch = np.nan, config.num_epochs - 1
  return FitResult(best_params, np.int32(best_epoch), np.float32(best_pl),
                   History(recon, val_hist))
