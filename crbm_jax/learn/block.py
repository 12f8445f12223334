"""The block trainer: many conditional RBMs at once, hyperparameter points x group masks.

A *block* is a set of M models trained on the same data split in one call. It is the CD-k
learner with ``over_models=True`` (``learner.make_learner``): the data (train / val / test
and the minibatch order) are not batched, every model sees the same minibatches and the
same Gibbs noise (common random numbers across configurations: a model's uniforms depend
only on the split's key, the epoch and the step), so the noise is drawn once per block,
and products with the shared input (``v0 @ W`` and ``v0ᵀ h0`` of the data phase, ``v @ W``
of the pseudo-likelihood) become one large matmul over the stacked weights ``[V, M·H]``
instead of M small ones. W_aux is held for the whole block as [A, M, V]
(``lazy_l1``). With one model and the keys ``fit`` derives, a block reproduces ``fit``.

Everything tunable is traced: learning rate, momentum, weight decay, L1, the W_aux step
scale (``HParams``), the hidden-unit mask (sizes padded to the block's largest) and the
auxiliary-group mask (which of the G groups a model conditions on: a masked group's rows
are never touched and stay 0, so the model equals one built without that group). Blocks of
the same shapes therefore never recompile.

Padding is exact: ``W`` is drawn as ``normal(key, (H, V)).T`` and hidden samples as
``uniform(key, (H, B)).T < p`` (``model.gibbs.sample_hidden``); JAX's counter-based PRNG
gives the same numbers for a prefix of the leading axis whatever its length, so a model
with h units padded to H > h (mask 0) follows the same trajectory as the unpadded model,
to float rounding.

The pseudo-likelihood's overflow-safe branch (see ``model/pseudolikelihood.py``) is
chosen from ``max |W|`` over each group of ``FORM_GROUP`` models (``lax.pmax`` over the
model axis, and the split axis when there is one), so under ``vmap`` it stays a real
branch instead of evaluating all four, and one model with large weights slows only its
group (``make_block_evaluate``).

Splits as an axis (``make_split_block_fit``): the block vmapped (or ``lax.map``-ped over
chunks of models) over stacked splits, so one call trains every configuration on every
split. Successive halving over (split, model) (``learn.halving.run_halving``) runs the
same block in rounds with ``learn.search``'s masked freezing.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn.base import Dataset, HParams, TrainConfig
from crbm_jax.learn.engine import AXIS, SPLIT_AXIS, make_scan
from crbm_jax.learn.evaluate import (  # noqa: F401  (re-exported: the block's criterion)
    FORM_GROUP, make_block_evaluate, split_evaluate)
from crbm_jax.learn.learner import cd
from crbm_jax.learn.space import Point, hidden_masks, stack_hparams
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.types import Array

# How a stage of blocks over (split, model) is computed: 'vmap' (one vmap of the whole
# block; ``lax.map`` with one chunk) or 'map' (``lax.map`` over chunks of models).
# Per-split calls and one-model loops are benchmarks only (experiments/bench_grid.py).
METHODS = ("vmap", "map")


class BlockResult(NamedTuple):
  """Per-model results of a block (leading axis M)."""
  best_val_pl: Array   # [M] balanced validation log PL at the best epoch
  test_pl: Array       # [M] balanced test log PL of the best-epoch parameters
  best_epoch: Array    # [M] int
  val_pl: Array        # [M, E]
  recon_error: Array   # [M, E]
  params: CRBMParams   # [M, ...] best-epoch parameters


def make_block_fit(config: TrainConfig, num_aux: int, axis_name: str = AXIS,
                   outer_axes: Tuple[str, ...] = (), learner: Callable = cd):
  """Returns ``block_fn(model_keys, hparams, hidden_mask, group_mask, data_key, train,
  val, test) -> BlockResult``.

  Args of block_fn (M models, H = config.num_hidden, G groups):
    model_keys: [M] keys (initialisation of each model).
    hparams: HParams of [M] arrays.
    hidden_mask: [M, H] 0/1; group_mask: [M, G] 0/1.
    data_key: one key for the minibatch order and the Gibbs noise, shared by the block.
    train: Dataset, N a multiple of config.batch_size (weight 0 = padding); val, test.
  Pure and unjitted; keep the data shapes fixed to avoid recompiling. ``fit`` with key k
  equals the block with ``model_keys = [split(k)[0]]`` and ``data_key = split(k)[1]``.
  ``outer_axes``: names of vmapped axes around the block (the split axis of
  ``make_split_block_fit``), over which the pseudo-likelihood's form is chosen as well,
  so that it stays one real branch. ``learner``: the learner factory (``learn.cd``,
  ``learn.pcd``, ``learn.parallel_tempering``). A use of the engine's scan driver.
  """
  evaluate = make_block_evaluate(config, axis_name, outer_axes)
  run = make_scan(learner(config, num_aux, over_models=True), config, evaluate)

  def block_fn(model_keys, hparams: HParams, hidden_mask, group_mask, data_key,
               train: Dataset, val: Dataset, test: Dataset) -> BlockResult:
    carry, history = run(model_keys, data_key, train, val, hparams, hidden_mask,
                         group_mask)
    best = carry.best
    params = best.params._replace(W_aux=jnp.moveaxis(best.params.W_aux, 1, 0))
    return BlockResult(best.val_pl, evaluate(best.params, test), best.epoch,
                       history.val_pl.T, history.recon_error.T, params)

  return block_fn


def make_split_block_fit(config: TrainConfig, num_aux: int, method: str = "vmap",
                         chunk_size: int = 64, learner: Callable = cd):
  """The block trainer over (split, model): every configuration on every split in one
  call.

  Returns ``fn(model_keys [S, M], hparams [M], hidden_mask [M, H], group_mask [M, G],
  data_keys [S], train, val, test) -> BlockResult`` whose leaves lead with [S, M]; the
  Datasets are stacked splits ([S, N, ...], equal shapes: pad them). Configurations are
  shared by the splits; split s of model m follows exactly the trajectory of the
  one-split block called with ``model_keys[s]`` and ``data_keys[s]`` (to float rounding).

  method:
    'vmap': one vmap over the split axis of the whole [M]-model block (largest
      intermediate arrays: S x M models at once);
    'map': ``lax.map`` over chunks of ``chunk_size`` models, each chunk vmapped over the
      splits (memory bounded by S x chunk_size models; M must be a multiple of
      ``chunk_size``: pad).
  Pure and unjitted (jit at the top).
  """
  if method not in ("vmap", "map"):
    raise ValueError(f"make_split_block_fit: unknown method {method!r}; use 'vmap' or "
                     "'map'")
  block_fn = make_block_fit(config, num_aux, outer_axes=(SPLIT_AXIS,), learner=learner)
  over_splits = jax.vmap(block_fn, in_axes=(0, None, None, None, 0, 0, 0, 0),
                         axis_name=SPLIT_AXIS)
  if method == "vmap":
    return over_splits

  def mapped(model_keys, hparams, hidden_mask, group_mask, data_keys, train, val, test):
    m = hidden_mask.shape[0]
    if m % chunk_size:
      raise ValueError(f"method 'map': {m} models is not a multiple of chunk_size "
                       f"{chunk_size}; pad the block")
    chunks = m // chunk_size
    split = lambda x, axis: jnp.moveaxis(
        x.reshape(x.shape[:axis] + (chunks, chunk_size) + x.shape[axis + 1:]), axis, 0)
    xs = (split(model_keys, 1), jax.tree.map(lambda x: split(x, 0), hparams),
          split(hidden_mask, 0), split(group_mask, 0))
    out = jax.lax.map(lambda c: over_splits(*c, data_keys, train, val, test), xs)
    # [C, S, chunk, ...] -> [S, C * chunk, ...]
    return jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1).reshape(
        (x.shape[1], m) + x.shape[3:]), out)

  return mapped


def model_sharding(mesh: jax.sharding.Mesh):
  """(sharded over the model axis, replicated) NamedShardings for a 1-D mesh."""
  P = jax.sharding.PartitionSpec
  return (jax.sharding.NamedSharding(mesh, P(mesh.axis_names[0])),
          jax.sharding.NamedSharding(mesh, P()))


def run_block(block_fn, model_keys, points: Sequence[Point], group_masks: np.ndarray,
              num_hidden: int, data_key, train: Dataset, val: Dataset, test: Dataset,
              mesh: Optional[jax.sharding.Mesh] = None) -> BlockResult:
  """Calls a jitted ``block_fn`` on one block; with ``mesh``, shards the model axis.

  M (len(points)) must be a multiple of the mesh size when sharding.
  """
  hp = stack_hparams(points)
  masks = jnp.asarray(hidden_masks(points, num_hidden))
  groups = jnp.asarray(group_masks, jnp.float32)
  args = [model_keys, hp, masks, groups]
  data = [data_key, train, val, test]
  if mesh is not None:
    sharded, replicated = model_sharding(mesh)
    args = jax.device_put(args, sharded)
    data = jax.device_put(data, replicated)
  return block_fn(*args, *data)
