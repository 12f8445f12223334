"""Many conditional RBMs at once: hyperparameter points x auxiliary-group masks on one split.

A *block* is a set of M models trained on the same data split. ``make_block_fit`` returns
a pure function vmapped over the model axis (``axis_name='models'``) in which the data
(train / val / test and the minibatch order) are *not* batched: every model of a block sees
the same minibatches (common random numbers across configurations), so products with the
shared input (``v0 @ W`` and ``v0ᵀ h0`` of the positive phase, ``v @ W`` of the
pseudo-likelihood) become one large matmul over the stacked weights ``[V, M·H]`` instead
of M small ones. Only the negative phase is a batched matmul.

Everything tunable is traced: learning rate, momentum, weight decay, L1 (``HParams``), the
hidden-unit mask (sizes padded to the block's largest) and the auxiliary-group mask (which
of the G groups a model conditions on: ``W_aux`` keeps every group's rows, a masked group's
rows are never touched and stay 0, so the model equals one built without that group).
Blocks of the same shapes therefore never recompile.

Padding is exact: ``W`` is drawn as ``normal(key, (H, V)).T`` and hidden samples as
``uniform(key, (H, B)).T < p``; JAX's counter-based PRNG gives the same numbers for a prefix
of the leading axis whatever its length, so a model with h units padded to H > h (mask 0)
follows the same trajectory as the unpadded model, to float rounding.

The pseudo-likelihood's overflow-safe branch (see ``pseudolikelihood.py``) is chosen from
``max |W|`` over the whole block (``lax.pmax`` over the model axis), so under ``vmap`` it
stays a real branch instead of evaluating all three.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from crbm_jax import model as model_lib
from crbm_jax import pseudolikelihood as pl_lib
from crbm_jax import train as train_lib
from crbm_jax.model import CRBMParams
from crbm_jax.train import Dataset, HParams, TrainConfig
from crbm_jax.types import Array, PRNGKey

AXIS = "models"


class GridPoint(NamedTuple):
  """One hyperparameter configuration."""
  num_hidden: int
  learning_rate: float
  momentum: float
  weight_decay: float
  l1_aux: float
  aux_lr_scale: float = 1.0  # multiplies learning_rate for W_aux (train.HParams)


def expand_grid(num_hidden: Sequence[int], learning_rate: Sequence[float],
                weight_decay: Sequence[float], l1_aux: Sequence[float],
                momentum: Sequence[float] = (0.5,),
                aux_lr_scale: Sequence[float] = (1.0,)) -> list:
  """Cartesian product of the value lists, as GridPoints (hidden sizes outermost)."""
  return [GridPoint(int(h), float(lr), float(m), float(wd), float(l1), float(s))
          for h, lr, wd, l1, m, s in itertools.product(num_hidden, learning_rate,
                                                        weight_decay, l1_aux, momentum,
                                                        aux_lr_scale)]


def stable_hash(obj) -> str:
  """Hex SHA-256 of a JSON-serialisable object (sorted keys): stable across runs."""
  text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def stable_int(obj) -> int:
  """A 31-bit integer from ``stable_hash`` (for ``jax.random.fold_in``)."""
  return int(stable_hash(obj)[:8], 16) & 0x7FFFFFFF


def stack_hparams(points: Sequence[GridPoint]) -> HParams:
  """HParams with a leading model axis [M]."""
  col = lambda name: jnp.asarray([getattr(p, name) for p in points], jnp.float32)
  return HParams(col("learning_rate"), col("momentum"), col("weight_decay"), col("l1_aux"),
                 col("aux_lr_scale"))


def hidden_masks(points: Sequence[GridPoint], num_hidden: int) -> np.ndarray:
  """[M, num_hidden] float32: 1 for the first ``point.num_hidden`` units."""
  sizes = np.array([p.num_hidden for p in points])
  if (sizes > num_hidden).any():
    raise ValueError(f"a point has {sizes.max()} hidden units > the block's {num_hidden}")
  return (np.arange(num_hidden)[None, :] < sizes[:, None]).astype(np.float32)


def init_params_prefix(rng_key: PRNGKey, num_visible: int, num_hidden: int, num_aux: int,
                       weight_scale: float, visible_mean: Array) -> CRBMParams:
  """Like ``model.init_params`` but W = scale·normal(key, (H, V))ᵀ (prefix-stable in H)."""
  params = model_lib.init_params(rng_key, num_visible, 1, num_aux, weight_scale,
                                 visible_mean=visible_mean)
  W = weight_scale * jax.random.normal(rng_key, (num_hidden, num_visible)).T
  return params._replace(W=W, c=jnp.zeros((num_hidden,), W.dtype))


# ---------------------------------------------------------------- pseudo-likelihood
def block_pseudo_likelihood(params: CRBMParams, data: Dataset, chunk_size: int,
                            axis_name: Optional[str] = AXIS,
                            group_mask: Optional[Array] = None) -> Array:
  """Balanced per-bit log pseudo-likelihood (Eq. 3) of ``data``: scalar per model.

  Same value as ``balanced_pseudo_likelihood(pseudo_log_likelihood(...))``; the form
  is chosen by ``max |W|`` over the model axis ``axis_name`` (None: this model only), so
  under vmap it stays one real branch. ``group_mask`` [G]: which auxiliary groups the
  model uses (None: all). Each chunk returns its weighted sums over the 1 bits and the 0
  bits, so the [N, V] per-bit values are never stored.
  """
  if group_mask is None:
    group_mask = jnp.ones(data.aux.shape[-1:], params.W.dtype)
  max_w = jnp.max(jnp.abs(params.W))
  if axis_name is not None:
    max_w = jax.lax.pmax(max_w, axis_name)
  v, aux, weight = pl_lib.chunked(data.v, data.aux, chunk_size, data.weight)

  def sums_with(make_form):
    def run():
      flip_delta = make_form()

      def chunk(xs):
        vc, ac, wc = xs
        vis_bias = params.b + group_aux_bias(params.W_aux, ac, group_mask)
        per_bit = pl_lib.per_bit_pll(params, flip_delta, vc, vis_bias)
        w_ones = (vc > 0) * wc[:, None]
        w_zeros = (vc <= 0) * wc[:, None]
        return jnp.stack([jnp.sum(per_bit * w_ones), jnp.sum(w_ones),
                          jnp.sum(per_bit * w_zeros), jnp.sum(w_zeros)])

      return jnp.sum(jax.lax.map(chunk, (v, aux, weight)), axis=0)
    return run

  sums = jax.lax.switch(pl_lib.form_index(max_w),
                        [sums_with(f) for f in pl_lib.flip_delta_forms(params.W)])
  return 0.5 * (sums[0] / jnp.maximum(sums[1], 1.0) + sums[2] / jnp.maximum(sums[3], 1.0))


# ---------------------------------------------------------------- training
class BlockResult(NamedTuple):
  """Per-model results of a block (leading axis M)."""
  best_val_pl: Array   # [M] balanced validation log PL at the best epoch
  test_pl: Array       # [M] balanced test log PL of the best-epoch parameters
  best_epoch: Array    # [M] int
  val_pl: Array        # [M, E]
  recon_error: Array   # [M, E]
  params: CRBMParams   # [M, ...] best-epoch parameters


def group_aux_bias(W_aux: Array, aux: Array, group_mask: Array) -> Array:
  """``W_a a`` of Eq. 2 for the groups with group_mask 1: [N, V].

  ``aux`` [N, G] is shared by the block (unbatched), so under vmap the gather has one
  index set for every model; the mask is a per-model weight on each group's row.
  """
  if aux.shape[-1] == 0:
    return jnp.zeros(aux.shape[:-1] + (W_aux.shape[-1],), W_aux.dtype)
  present = (aux >= 0) * group_mask[None, :]                           # [N, G]
  rows = jnp.take(W_aux, jnp.maximum(aux, 0), axis=0, mode="clip")      # [N, G, V]
  return jnp.einsum("ng,ngv->nv", present, rows)


class SharedAuxRows(NamedTuple):
  """Distinct W_aux rows of a minibatch (shared by the block), caught up on the L1 prox.

  rows: [U] (U = B x G; unused slots hold num_aux); select: [B, U] how many times
  observation b uses row u (0/1: the groups own disjoint rows); row_group: [U] the group
  of each row; current: [U, V] the rows with every pending soft-threshold applied.
  rows, select and row_group do not depend on the model (unbatched under vmap).
  """
  rows: Array
  select: Array
  row_group: Array
  current: Array


def gather_aux_shared(state, aux) -> SharedAuxRows:
  """The rows the minibatch touches, brought up to date before they are used.

  The indices do not depend on the model, so under vmap ``unique`` runs once and the
  gather moves whole [M, V] slices.
  """
  W_aux = state.params.W_aux
  num_aux = W_aux.shape[0]
  flat = jnp.where(aux >= 0, aux, num_aux).reshape(-1)                    # [B*G]
  rows, inverse = jnp.unique(flat, size=flat.shape[0], fill_value=num_aux,
                             return_inverse=True)
  inverse = inverse.reshape(aux.shape)
  num_rows = rows.shape[0]
  # Absent entries point at an unused slot (rows == num_aux): it reads as 0 and its
  # write-back is dropped, so counting it in ``select`` changes nothing.
  select = jnp.sum(jax.nn.one_hot(inverse, num_rows, dtype=W_aux.dtype), axis=1)
  groups = jnp.broadcast_to(jnp.arange(aux.shape[1]), aux.shape)
  row_group = jnp.zeros((num_rows,), jnp.int32).at[inverse.reshape(-1)].set(
      groups.reshape(-1))
  current = W_aux.at[rows].get(mode="fill", fill_value=0.0)
  pending = state.l1_total - state.l1_applied.at[rows].get(mode="fill", fill_value=0.0)
  return SharedAuxRows(rows, select, row_group,
                       train_lib.soft_threshold(current, pending[:, None]))


def _row_mask(gathered: SharedAuxRows, group_mask: Array) -> Array:
  """[U, 1]: the model's group mask for each gathered row."""
  return group_mask[gathered.row_group][:, None]


def shared_aux_bias(gathered: SharedAuxRows, group_mask: Array) -> Array:
  """``W_a a`` from the caught-up rows, groups weighted by the model's mask: [B, V]."""
  # The mask goes on the rows, so ``select`` stays shared by the block and, under vmap,
  # this is one [B, U] x [U, M*V] matmul rather than M small ones (or a per-model gather).
  return gathered.select @ (gathered.current * _row_mask(gathered, group_mask))


def apply_aux_shared(state, gathered: SharedAuxRows, group_mask, dvis, hparams):
  """``train.apply_aux_update`` with shared indices and a per-model group mask.

  Rows of masked-out groups get a zero gradient; being 0 they stay 0 under the prox.
  """
  grad = (gathered.select.T @ dvis) * _row_mask(gathered, group_mask)    # [U, V]
  lr_aux = train_lib.aux_learning_rate(hparams)
  step = lr_aux * hparams.l1_aux
  new_rows = train_lib.soft_threshold(gathered.current + lr_aux * grad, step)
  total = state.l1_total + step
  W_aux = state.params.W_aux.at[gathered.rows].set(new_rows, mode="drop")
  return state._replace(
      params=state.params._replace(W_aux=W_aux), l1_total=total,
      l1_applied=state.l1_applied.at[gathered.rows].set(total, mode="drop"))


def update_aux_shared(state, aux, group_mask, dvis, hparams):
  """Lazy-prox update of the rows ``aux`` touches (equal to the dense prox)."""
  return apply_aux_shared(state, gather_aux_shared(state, aux), group_mask, dvis, hparams)


def _cd_step(rng_key, state, v0, aux, weight, hparams, config: TrainConfig, mask,
             group_mask):
  """One CD-k update (as ``train.cd_step``) with prefix-stable hidden sampling."""
  params = state.params
  wn = weight / jnp.maximum(jnp.sum(weight), 1.0)
  has_aux = aux.shape[-1] > 0
  if has_aux:  # catch the touched rows up on the prox first (exact lazy L1)
    gathered = gather_aux_shared(state, aux)
    vis_bias = params.b + shared_aux_bias(gathered, group_mask)
  else:
    vis_bias = params.b + group_aux_bias(params.W_aux, aux, group_mask)
  h0 = jax.nn.sigmoid(v0 @ params.W + params.c) * mask
  h_prob, v = h0, v0
  num_hidden, batch = params.W.shape[1], v0.shape[0]
  for step, key in enumerate(jax.random.split(rng_key, config.cd_k)):
    key_h, key_v = jax.random.split(key)
    h = (jax.random.uniform(key_h, (num_hidden, batch)).T < h_prob).astype(v0.dtype)
    v_prob = jax.nn.sigmoid(h @ params.W.T + vis_bias)
    if step == config.cd_k - 1 and not config.sample_last_visible:
      v = v_prob
    else:
      v = jax.random.bernoulli(key_v, v_prob).astype(v0.dtype)
    h_prob = jax.nn.sigmoid(v @ params.W + params.c) * mask
  # Positive phase with the shared (unbatched) v0: one matmul over stacked models.
  grad_W = (v0 * wn[:, None]).T @ h0 - (v * wn[:, None]).T @ h_prob
  dvis = (v0 - v) * wn[:, None]
  grads = (-grad_W, -jnp.sum(dvis, axis=0), -(wn @ (h0 - h_prob)))
  dense = (params.W, params.b, params.c)
  updates, opt_state = train_lib.make_optimizer(hparams).update(grads, state.opt_state, dense)
  W, b, c = optax.apply_updates(dense, updates)
  state = state._replace(params=params._replace(W=W * mask, b=b, c=c * mask),
                         opt_state=opt_state)
  if has_aux:
    state = apply_aux_shared(state, gathered, group_mask, dvis, hparams)
  return state, jnp.sum(wn[:, None] * (v0 - v) ** 2) / v0.shape[-1]


def mask_groups(aux: Array, group_mask: Array) -> Array:
  """aux [N, G] with the columns of masked-out groups set to -1 (absent)."""
  return jnp.where(group_mask[None, :] > 0, aux, -1)


def make_block_fit(config: TrainConfig, num_aux: int, axis_name: str = AXIS):
  """Returns ``block_fn(model_keys, hparams, hidden_mask, group_mask, data_key, train,
  val, test) -> BlockResult``.

  Args of block_fn (M models, H = config.num_hidden, G groups):
    model_keys: [M] keys (initialisation and Gibbs noise of each model).
    hparams: HParams of [M] arrays.
    hidden_mask: [M, H] 0/1; group_mask: [M, G] 0/1.
    data_key: one key for the minibatch order, shared by the block.
    train: Dataset, N a multiple of config.batch_size (weight 0 = padding); val, test.
  Pure and unjitted; keep the data shapes fixed to avoid recompiling.
  """

  def fit_one(model_key, hparams, mask, group_mask, data_key, train, val, test):
    key_init, key_train = jax.random.split(model_key)
    num_visible = train.v.shape[-1]
    mean = (train.weight @ train.v) / jnp.maximum(jnp.sum(train.weight), 1.0)
    params = init_params_prefix(key_init, num_visible, config.num_hidden, num_aux,
                                config.weight_scale, mean)
    params = params._replace(W=params.W * mask)
    state = train_lib.init_state(params, hparams)
    evaluate = lambda p, d: block_pseudo_likelihood(p, d, config.eval_chunk, axis_name,
                                                    group_mask)
    n = train.v.shape[0]
    num_batches = n // config.batch_size

    def epoch_body(carry, epoch):
      state, best_params, best_pl, best_epoch = carry
      order = jax.random.permutation(jax.random.fold_in(data_key, epoch), n)
      order = order[: num_batches * config.batch_size].reshape(num_batches, -1)
      keys = jax.random.split(jax.random.fold_in(key_train, epoch), num_batches)

      def step(state, xs):
        key, idx = xs
        return _cd_step(key, state, train.v[idx], train.aux[idx], train.weight[idx],
                        hparams, config, mask, group_mask)

      state, recon = jax.lax.scan(step, state, (keys, order))
      state = train_lib.flush_l1(state)
      val_pl = evaluate(state.params, val)
      best = train_lib.keep_best(train_lib.BestEpoch(best_params, best_pl, best_epoch),
                                 state.params, val_pl, epoch)
      return (state,) + tuple(best), (jnp.mean(recon), val_pl)

    carry = (state,) + tuple(train_lib.init_best(params))
    (_, best_params, best_pl, best_epoch), (recon, val_pl) = jax.lax.scan(
        epoch_body, carry, jnp.arange(config.num_epochs))
    return BlockResult(best_pl, evaluate(best_params, test), best_epoch, val_pl, recon,
                       best_params)

  return jax.vmap(fit_one, in_axes=(0, 0, 0, 0, None, None, None, None),
                  axis_name=axis_name)


def model_sharding(mesh: jax.sharding.Mesh):
  """(sharded over the model axis, replicated) NamedShardings for a 1-D mesh."""
  P = jax.sharding.PartitionSpec
  return (jax.sharding.NamedSharding(mesh, P(mesh.axis_names[0])),
          jax.sharding.NamedSharding(mesh, P()))


def run_block(block_fn, model_keys, points: Sequence[GridPoint], group_masks: np.ndarray,
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
