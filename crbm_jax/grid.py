"""Many conditional RBMs at once: hyperparameter points x auxiliary-group masks on one split.

A *block* is a set of M models trained on the same data split. ``make_block_fit`` returns
a pure function vmapped over the model axis (``axis_name='models'``) in which the data
(train / val / test and the minibatch order) are *not* batched: every model of a block sees
the same minibatches and the same Gibbs noise (common random numbers across
configurations: a model's uniforms depend only on the split's key, the epoch and the step),
so the noise is drawn once per block instead of once per model, and products with the
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
stays a real branch instead of evaluating all four.
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
                            group_mask: Optional[Array] = None,
                            aux_bias: Optional[Array] = None) -> Array:
  """Balanced per-bit log pseudo-likelihood (Eq. 3) of ``data``: scalar per model.

  Same value as ``balanced_pseudo_likelihood(pseudo_log_likelihood(...))``; the form
  is chosen by ``max |W|`` over the model axis ``axis_name`` (None: this model only), so
  under vmap it stays one real branch. ``group_mask`` [G]: which auxiliary groups the
  model uses (None: all). ``aux_bias`` [N, V]: W_a a of each observation, if already
  computed (then ``params.W_aux`` is not used). Each chunk returns its weighted sums over
  the 1 bits and the 0 bits, so the [N, V] per-bit values are never stored.
  """
  if group_mask is None:
    group_mask = jnp.ones(data.aux.shape[-1:], params.W.dtype)
  max_w = jnp.max(jnp.abs(params.W))
  if axis_name is not None:
    max_w = jax.lax.pmax(max_w, axis_name)
  v, weight = (pl_lib.chunk_rows(x, chunk_size) for x in (data.v, data.weight))
  aux = pl_lib.chunk_rows(data.aux, chunk_size, -1)
  bias = None if aux_bias is None else pl_lib.chunk_rows(aux_bias, chunk_size)

  def sums_with(make_form):
    def run():
      flip_delta = make_form()

      def chunk(xs):
        vc, ac, wc, bc = xs
        if bc is None:
          bc = group_aux_bias(params.W_aux, ac, group_mask)
        vis_bias = params.b + bc
        per_bit = pl_lib.per_bit_pll(params, flip_delta, vc, vis_bias)
        w_ones = (vc > 0) * wc[:, None]
        w_zeros = (vc <= 0) * wc[:, None]
        return jnp.stack([jnp.sum(per_bit * w_ones), jnp.sum(w_ones),
                          jnp.sum(per_bit * w_zeros), jnp.sum(w_zeros)])

      return jnp.sum(jax.lax.map(chunk, (v, aux, weight, bias)), axis=0)
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


class AuxState(NamedTuple):
  """The block's auxiliary biases and lazy-L1 bookkeeping, with the model axis SECOND.

  Laid out [A, M, V], an entity's row for all M models is one contiguous [M·V] slice, so
  a minibatch's rows are gathered and scattered as whole slices and its products with the
  shared one-hot selection are single [B, U] x [U, M·V] matmuls with no transposes.
  """
  W_aux: Array       # [A, M, V]
  l1_total: Array    # [M]: Σ over steps of the W_aux step size x l1
  l1_applied: Array  # [A, M]: l1_total when each row was last brought up to date


class DenseState(NamedTuple):
  """One model's W, b, c (``params.W_aux`` is an empty [0, V]) and optimiser state."""
  params: CRBMParams
  opt_state: optax.OptState


class SharedAuxRows(NamedTuple):
  """Distinct W_aux rows of a minibatch (indices shared by the block), caught up on the
  L1 prox.

  rows: [U] (U = B x G; unused slots hold num_aux); select: [B, U] how many times
  observation b uses row u (0/1: the groups own disjoint rows); row_group: [U] the group
  of each row; current: [U, M, V] the rows with every pending soft-threshold applied.
  """
  rows: Array
  select: Array
  row_group: Array
  current: Array


def init_aux_state(num_aux: int, num_models: int, num_visible: int,
                   dtype=jnp.float32) -> AuxState:
  return AuxState(jnp.zeros((num_aux, num_models, num_visible), dtype),
                  jnp.zeros((num_models,), dtype), jnp.zeros((num_aux, num_models), dtype))


def gather_aux_shared(aux_state: AuxState, aux: Array) -> SharedAuxRows:
  """The rows the minibatch ``aux`` [B, G] touches, brought up to date before use."""
  W_aux = aux_state.W_aux
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
  current = W_aux.at[rows].get(mode="fill", fill_value=0.0)               # [U, M, V]
  applied = aux_state.l1_applied.at[rows].get(mode="fill", fill_value=0.0)
  pending = aux_state.l1_total[None, :] - applied                        # [U, M]
  return SharedAuxRows(rows, select, row_group,
                       train_lib.soft_threshold(current, pending[..., None]))


def _row_mask(gathered: SharedAuxRows, group_masks: Array) -> Array:
  """[U, M, 1]: each model's group mask for each gathered row."""
  return group_masks[:, gathered.row_group].T[..., None]


def _flat_matmul(lhs: Array, rows: Array) -> Array:
  """lhs [P, U] x rows [U, M, V] -> [P, M, V], as one [P, U] x [U, M·V] matmul."""
  return (lhs @ rows.reshape(rows.shape[0], -1)).reshape((lhs.shape[0],) + rows.shape[1:])


def shared_aux_bias(gathered: SharedAuxRows, group_masks: Array) -> Array:
  """``W_a a`` of each observation for each model, groups masked per model: [B, M, V]."""
  return _flat_matmul(gathered.select, gathered.current * _row_mask(gathered, group_masks))


def apply_aux_shared(aux_state: AuxState, gathered: SharedAuxRows, group_masks: Array,
                     dvis: Array, hparams: HParams) -> AuxState:
  """SGD + this step's soft-threshold on the gathered rows (``train.apply_aux_update``
  for the block). dvis: [B, M, V]. Rows of a model's masked-out groups get a zero
  gradient; being 0 they stay 0 under the prox."""
  grad = _flat_matmul(gathered.select.T, dvis) * _row_mask(gathered, group_masks)
  lr_aux = train_lib.aux_learning_rate(hparams)                            # [M]
  step = lr_aux * hparams.l1_aux                                           # [M]
  new_rows = train_lib.soft_threshold(gathered.current + lr_aux[:, None] * grad,
                                      step[:, None])
  total = aux_state.l1_total + step
  applied = jnp.broadcast_to(total, gathered.rows.shape + total.shape)
  return AuxState(aux_state.W_aux.at[gathered.rows].set(new_rows, mode="drop"), total,
                  aux_state.l1_applied.at[gathered.rows].set(applied, mode="drop"))


def flush_aux(aux_state: AuxState) -> AuxState:
  """Apply every pending soft-threshold (``train.flush_l1`` for the block)."""
  pending = (aux_state.l1_total[None, :] - aux_state.l1_applied)[..., None]
  return AuxState(train_lib.soft_threshold(aux_state.W_aux, pending), aux_state.l1_total,
                  jnp.broadcast_to(aux_state.l1_total, aux_state.l1_applied.shape))


def block_aux_bias(W_aux: Array, aux: Array, group_masks: Array) -> Array:
  """``W_a a`` [N, M, V] of every observation of ``aux`` [N, G] (W_aux [A, M, V])."""
  if aux.shape[-1] == 0:
    return jnp.zeros(aux.shape[:1] + W_aux.shape[1:], W_aux.dtype)
  present = (aux >= 0).astype(W_aux.dtype)                               # [N, G]
  rows = jnp.take(W_aux, jnp.maximum(aux, 0), axis=0, mode="clip")       # [N, G, M, V]
  return jnp.einsum("ng,mg,ngmv->nmv", present, group_masks, rows)


def _dense_step(rng_key, state: DenseState, v0, aux_bias, weight, hparams,
                config: TrainConfig, mask):
  """One model's CD-k update of W, b, c (as ``train.cd_step``), with prefix-stable hidden
  sampling. aux_bias: [B, V] = W_a a. Returns (state, dvis [B, V], reconstruction error).
  """
  params = state.params
  wn = weight / jnp.maximum(jnp.sum(weight), 1.0)
  vis_bias = params.b + aux_bias
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
  grads = (grad_W, jnp.sum(dvis, axis=0), wn @ (h0 - h_prob))
  state = DenseState(*train_lib.ascend(params, state.opt_state, grads, hparams, mask))
  return state, dvis, jnp.sum(wn[:, None] * (v0 - v) ** 2) / v0.shape[-1]


def block_cd_step(rng_key, dense: DenseState, aux_state: AuxState, v0, aux, weight,
                  hparams: HParams, config: TrainConfig, masks, group_masks):
  """One CD-k step of every model of a block on the shared minibatch (v0 [B, V], aux
  [B, G], weight [B]); ``dense``/``hparams``/``masks`` [M, H]/``group_masks`` [M, G] have
  a leading model axis. The W_aux rows are caught up on the lazy prox before use (exact).
  Returns (dense, aux_state, reconstruction error [M])."""
  num_models = masks.shape[0]
  has_aux = aux.shape[-1] > 0
  if has_aux:
    gathered = gather_aux_shared(aux_state, aux)
    aux_bias = shared_aux_bias(gathered, group_masks)                    # [B, M, V]
  else:
    aux_bias = jnp.zeros((v0.shape[0], num_models, v0.shape[1]), v0.dtype)
  step = jax.vmap(lambda st, bias, hp, mask: _dense_step(rng_key, st, v0, bias, weight, hp,
                                                         config, mask),
                  in_axes=(0, 1, 0, 0), out_axes=(0, 1, 0))
  dense, dvis, recon = step(dense, aux_bias, hparams, masks)
  if has_aux:
    aux_state = apply_aux_shared(aux_state, gathered, group_masks, dvis, hparams)
  return dense, aux_state, recon


def mask_groups(aux: Array, group_mask: Array) -> Array:
  """aux [N, G] with the columns of masked-out groups set to -1 (absent)."""
  return jnp.where(group_mask[None, :] > 0, aux, -1)


_MODEL_AXES = CRBMParams(W=0, W_aux=1, b=0, c=0)  # block params with W_aux [A, M, V]
_BEST_AXES = train_lib.BestEpoch(_MODEL_AXES, 0, 0)
_init_best = jax.vmap(train_lib.init_best, in_axes=(_MODEL_AXES,), out_axes=_BEST_AXES)
_keep_best = jax.vmap(train_lib.keep_best, in_axes=(_BEST_AXES, _MODEL_AXES, 0, None),
                      out_axes=_BEST_AXES)


def make_block_fit(config: TrainConfig, num_aux: int, axis_name: str = AXIS):
  """Returns ``block_fn(model_keys, hparams, hidden_mask, group_mask, data_key, train,
  val, test) -> BlockResult``.

  Args of block_fn (M models, H = config.num_hidden, G groups):
    model_keys: [M] keys (initialisation of each model's W).
    hparams: HParams of [M] arrays.
    hidden_mask: [M, H] 0/1; group_mask: [M, G] 0/1.
    data_key: one key for the minibatch order and the Gibbs noise, shared by the block.
    train: Dataset, N a multiple of config.batch_size (weight 0 = padding); val, test.
  Pure and unjitted; keep the data shapes fixed to avoid recompiling. Per-model work
  (initialisation, the W/b/c update, the pseudo-likelihood) is ``vmap``-ped over the
  model axis ``axis_name``; W_aux is handled for the whole block (``AuxState``).
  """

  def evaluate(params, data, group_masks):
    bias = block_aux_bias(params.W_aux, data.aux, group_masks)             # [N, M, V]
    pl = lambda p, gm, b: block_pseudo_likelihood(p, data, config.eval_chunk, axis_name,
                                                  gm, aux_bias=b)
    no_aux = params._replace(W_aux=jnp.zeros((0,) + params.W_aux.shape[1:]))
    return jax.vmap(pl, in_axes=(_MODEL_AXES, 0, 1), axis_name=axis_name)(
        no_aux, group_masks, bias)

  def block_fn(model_keys, hparams, masks, group_masks, data_key, train, val, test):
    order_root, noise_root = jax.random.split(data_key)
    num_models, num_visible = masks.shape[0], train.v.shape[-1]
    mean = (train.weight @ train.v) / jnp.maximum(jnp.sum(train.weight), 1.0)

    def init_one(key, hp, mask):
      params = init_params_prefix(key, num_visible, config.num_hidden, 0,
                                  config.weight_scale, mean)
      params = params._replace(W=params.W * mask)
      return DenseState(params, train_lib.init_state(params, hp).opt_state)

    dense = jax.vmap(init_one)(model_keys, hparams, masks)
    aux_state = init_aux_state(num_aux, num_models, num_visible, train.v.dtype)
    block_params = lambda d, a: d.params._replace(W_aux=a.W_aux)
    n = train.v.shape[0]
    num_batches = n // config.batch_size

    def epoch_body(carry, epoch):
      dense, aux_state, best = carry
      order = jax.random.permutation(jax.random.fold_in(order_root, epoch), n)
      order = order[: num_batches * config.batch_size].reshape(num_batches, -1)
      keys = jax.random.split(jax.random.fold_in(noise_root, epoch), num_batches)

      def step(carry, xs):
        key, idx = xs
        dense, aux_state, recon = block_cd_step(
            key, *carry, train.v[idx], train.aux[idx], train.weight[idx], hparams, config,
            masks, group_masks)
        return (dense, aux_state), recon

      (dense, aux_state), recon = jax.lax.scan(step, (dense, aux_state), (keys, order))
      aux_state = flush_aux(aux_state)
      params = block_params(dense, aux_state)
      val_pl = evaluate(params, val, group_masks)
      best = _keep_best(best, params, val_pl, epoch)
      return (dense, aux_state, best), (jnp.mean(recon, axis=0), val_pl)

    best = _init_best(block_params(dense, aux_state))
    (_, _, best), (recon, val_pl) = jax.lax.scan(epoch_body, (dense, aux_state, best),
                                                 jnp.arange(config.num_epochs))
    params = best.params._replace(W_aux=jnp.moveaxis(best.params.W_aux, 1, 0))
    return BlockResult(best.val_pl, evaluate(best.params, test, group_masks), best.epoch,
                       val_pl.T, recon.T, params)

  return block_fn


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
