"""Contrastive-divergence (CD-k) training of the conditional RBM with an L1 prox on W_aux.

Design (see STYLE.md): static choices (sizes, CD-k, epochs, batch size) live in a
``TrainConfig`` bound by ``make_fit``; tunable numbers (learning rate, momentum, weight
decay, L1) are a traced ``HParams`` pytree, so a grid over them is a ``vmap`` that never
recompiles. An epoch is a ``lax.scan`` over minibatches; a run is a ``lax.scan`` over
epochs that keeps the parameters of the best epoch by validation pseudo-likelihood.

Updates. ``W, b, c`` follow optax SGD with momentum, plus weight decay on ``W``.
``W_aux`` follows plain SGD followed by the L1 proximal step (soft-threshold by
lr x l1), which produces exact zeros. Applying the prox to every row at every step costs
O(num_aux x V) per minibatch; instead (``l1_mode='lazy'``) only the rows a minibatch touches
are updated, in one gather and one scatter, after first applying the soft-thresholds they
missed since they were last touched. This is exact because soft-thresholds compose
additively, S_s(S_t(x)) = S_{s+t}(x), and an untouched row's plain-SGD update is the prox
alone; a running sum of lr x l1 per step makes it exact under any learning-rate schedule.
Rows are brought up to date (``flush_l1``) at the end of every epoch.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from crbm_jax import model as model_lib
from crbm_jax.model import CRBMParams
from crbm_jax.pseudolikelihood import balanced_pseudo_likelihood, pseudo_log_likelihood
from crbm_jax.types import Array, PRNGKey


class Dataset(NamedTuple):
  """Observations for training or evaluation.

  Attributes:
    v: [N, V] binary tag vectors (float32).
    aux: [N, G] int32 auxiliary row indices, -1 = absent.
    weight: [N] float32 observation weights; 0 marks padding rows.
  """
  v: Array
  aux: Array
  weight: Array


def check_aux_blocks(aux) -> None:
  """Raise ValueError unless each aux column indexes rows no other column uses."""
  aux = np.asarray(aux)
  used = [np.unique(aux[:, g][aux[:, g] >= 0]) for g in range(aux.shape[1])]
  for g in range(len(used)):
    for h in range(g + 1, len(used)):
      both = np.intersect1d(used[g], used[h])
      if both.size:
        raise ValueError(
            f"aux columns {g} and {h} both use W_aux row {int(both[0])}: give each "
            "auxiliary group its own block of rows (see data.observations.Observations)")


def make_dataset(v, aux, weight=None) -> Dataset:
  """Dataset from host arrays; checks that aux groups use disjoint W_aux rows."""
  v = jnp.asarray(v, jnp.float32)
  aux = np.asarray(aux, np.int32).reshape(v.shape[0], -1)
  check_aux_blocks(aux)
  aux = jnp.asarray(aux)
  w = jnp.ones((v.shape[0],), jnp.float32) if weight is None else jnp.asarray(weight, jnp.float32)
  return Dataset(v, aux, w)


class HParams(NamedTuple):
  """Traced hyperparameters (scalars, or leading axes under vmap).

  ``aux_lr_scale`` multiplies the learning rate of ``W_aux`` (None means 1). The minibatch
  gradient of an entity's row is averaged over the whole batch, so a row used by one
  observation of B moves B times slower than a per-observation update would move it; a
  scale of about B restores per-observation steps for rare entities (clips, users). The
  L1 soft-threshold per step is the W_aux step size times ``l1_aux``.
  """
  learning_rate: Array
  momentum: Array
  weight_decay: Array
  l1_aux: Array
  aux_lr_scale: Optional[Array] = None


def make_hparams(learning_rate=0.05, momentum=0.5, weight_decay=1e-4, l1_aux=1e-3,
                 aux_lr_scale=1.0) -> HParams:
  f = lambda x: jnp.asarray(x, jnp.float32)
  return HParams(f(learning_rate), f(momentum), f(weight_decay), f(l1_aux), f(aux_lr_scale))


def aux_learning_rate(hparams: HParams) -> Array:
  """The step size of W_aux: learning_rate x aux_lr_scale."""
  if hparams.aux_lr_scale is None:
    return hparams.learning_rate
  return hparams.learning_rate * hparams.aux_lr_scale


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Static training choices (changing one recompiles).

  Attributes:
    num_hidden: hidden units (after padding, for grids).
    cd_k: Gibbs steps of CD-k.
    batch_size: observations per minibatch.
    num_epochs: passes over the training data.
    sample_last_visible: sample the final visible reconstruction (True) or use its
      probabilities (False, lower-variance, Hinton's practical guide section 3).
    l1_mode: 'lazy' (rows a minibatch touches) or 'dense' (all rows every step).
    weight_scale: std of the initial W.
    eval_chunk: observations per chunk in the pseudo-likelihood.
  """
  num_hidden: int = 100
  cd_k: int = 1
  batch_size: int = 100
  num_epochs: int = 30
  sample_last_visible: bool = False
  l1_mode: str = "lazy"
  weight_scale: float = 0.01
  eval_chunk: int = 256


class TrainState(NamedTuple):
  params: CRBMParams
  opt_state: optax.OptState
  l1_total: Array     # scalar: Σ over steps of lr x l1 so far
  l1_applied: Array   # [num_aux]: l1_total when each row was last brought up to date


class StepInfo(NamedTuple):
  recon_error: Array  # mean squared reconstruction error per bit of the minibatch


class History(NamedTuple):
  recon_error: Array  # [num_epochs]
  val_pl: Array       # [num_epochs] balanced validation log pseudo-likelihood


class FitResult(NamedTuple):
  params: CRBMParams  # parameters at the best validation epoch
  best_epoch: Array   # int scalar (0-based)
  best_val_pl: Array
  history: History


def make_optimizer(hparams: HParams) -> optax.GradientTransformation:
  # Built inside the traced function from traced scalars: the state's structure does not
  # depend on the values, so changing them never recompiles.
  return optax.chain(
      optax.add_decayed_weights(hparams.weight_decay, mask=(True, False, False)),
      optax.sgd(hparams.learning_rate, momentum=hparams.momentum))


def ascend(params: CRBMParams, opt_state, grads, hparams: HParams,
           hidden_mask: Optional[Array] = None):
  """One optimiser step UP the log-likelihood gradient ``grads = (dW, db, dc)`` of W, b,
  c (optax minimises, so it is given the negatives); padded hidden units stay 0.
  Returns (params, opt_state)."""
  dense = (params.W, params.b, params.c)
  updates, opt_state = make_optimizer(hparams).update(
      jax.tree.map(jnp.negative, tuple(grads)), opt_state, dense)
  W, b, c = optax.apply_updates(dense, updates)
  if hidden_mask is not None:
    W, c = W * hidden_mask, c * hidden_mask
  return params._replace(W=W, b=b, c=c), opt_state


def soft_threshold(x: Array, t: Array) -> Array:
  """Proximal operator of t·|x|: sign(x)·max(|x| - t, 0) (exact zeros)."""
  return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0)


def flush_l1(state: TrainState) -> TrainState:
  """Apply every pending soft-threshold so ``W_aux`` equals its dense-prox value."""
  pending = (state.l1_total - state.l1_applied)[:, None]
  W_aux = soft_threshold(state.params.W_aux, pending)
  return state._replace(params=state.params._replace(W_aux=W_aux),
                        l1_applied=jnp.full_like(state.l1_applied, state.l1_total))


def init_state(params: CRBMParams, hparams: HParams) -> TrainState:
  dense = (params.W, params.b, params.c)
  return TrainState(params=params, opt_state=make_optimizer(hparams).init(dense),
                    l1_total=jnp.zeros((), params.W.dtype),
                    l1_applied=jnp.zeros((params.W_aux.shape[0],), params.W.dtype))


def negative_phase(rng_key, params, v0, h0_prob, vis_bias, config: TrainConfig):
  """k block-Gibbs sweeps from the data; returns (v_k, p(h | v_k))."""
  keys = jax.random.split(rng_key, config.cd_k)
  h_prob, v = h0_prob, v0
  for step in range(config.cd_k):  # k is small and static: unrolled
    key_h, key_v = jax.random.split(keys[step])
    h = jax.random.bernoulli(key_h, h_prob).astype(v0.dtype)
    v_prob = jax.nn.sigmoid(h @ params.W.T + vis_bias)
    last = step == config.cd_k - 1
    if last and not config.sample_last_visible:
      v = v_prob
    else:
      v = jax.random.bernoulli(key_v, v_prob).astype(v0.dtype)
    h_prob = jax.nn.sigmoid(v @ params.W + params.c)
  return v, h_prob


def update_aux_dense(state, aux, dvis, hparams):
  num_aux = state.params.W_aux.shape[0]
  idx = jnp.where(aux >= 0, aux, num_aux)
  grad = jnp.zeros_like(state.params.W_aux).at[idx].add(
      jnp.broadcast_to(dvis[:, None, :], idx.shape + dvis.shape[-1:]), mode="drop")
  lr_aux = aux_learning_rate(hparams)
  step = lr_aux * hparams.l1_aux
  W_aux = soft_threshold(state.params.W_aux + lr_aux * grad, step)
  total = state.l1_total + step
  return state._replace(params=state.params._replace(W_aux=W_aux), l1_total=total,
                        l1_applied=jnp.full_like(state.l1_applied, total))


class AuxRows(NamedTuple):
  """The W_aux rows a minibatch touches, brought up to date (lazy mode), per group.

  Attributes:
    rows: [G, B] distinct row indices of each group (unused slots hold num_aux, out of
      range).
    inverse: [G, B] position in ``rows[g]`` of each observation's group-g entry.
    current: [G, B, V] those rows with every pending soft-threshold applied (0 when out
      of range or absent).
  """
  rows: Array
  inverse: Array
  current: Array


def gather_aux_rows(state: TrainState, aux: Array) -> AuxRows:
  """Distinct rows of each group in a minibatch, with the soft-thresholds they missed.

  Requires each aux column to index its own block of rows (as ``Observations`` builds
  them), so that no row is touched through two groups; ``make_dataset`` checks this.
  Distinct rows are found per group (sorting B entries G times is cheaper than sorting
  B x G entries once on a CPU).
  """
  W_aux = state.params.W_aux
  num_aux = W_aux.shape[0]
  rows, inverse = [], []
  for g in range(aux.shape[-1]):
    col = jnp.where(aux[:, g] >= 0, aux[:, g], num_aux)
    r, inv = jnp.unique(col, size=col.shape[0], fill_value=num_aux, return_inverse=True)
    rows.append(r)
    inverse.append(inv.reshape(-1))
  rows, inverse = jnp.stack(rows), jnp.stack(inverse)
  current = W_aux.at[rows].get(mode="fill", fill_value=0.0)             # [G, B, V]
  pending = state.l1_total - state.l1_applied.at[rows].get(mode="fill", fill_value=0.0)
  return AuxRows(rows, inverse, soft_threshold(current, pending[..., None]))


def aux_rows_bias(gathered: AuxRows) -> Array:
  """``W_a a`` of each observation from the gathered rows: [B, V]."""
  num_slots = gathered.current.shape[1]
  # A one-hot [G, B, U] times the rows [G, U, V]: a batched matmul is much faster than a
  # gather of B x G x V elements on XLA's CPU backend (S size: 21 -> 17 ms per epoch;
  # M size: 221 -> 145 ms).
  select = jax.nn.one_hot(gathered.inverse, num_slots, dtype=gathered.current.dtype)
  return jnp.einsum("gbu,guv->bv", select, gathered.current)


def apply_aux_update(state: TrainState, gathered: AuxRows, dvis: Array,
                     hparams: HParams) -> TrainState:
  """SGD + this step's soft-threshold on the gathered rows, written back in one scatter."""
  num_groups, batch = gathered.rows.shape
  grad = jnp.stack([jax.ops.segment_sum(dvis, gathered.inverse[g], num_segments=batch)
                    for g in range(num_groups)])                         # [G, B, V]
  lr_aux = aux_learning_rate(hparams)
  step = lr_aux * hparams.l1_aux
  new_rows = soft_threshold(gathered.current + lr_aux * grad, step)
  total = state.l1_total + step
  rows = gathered.rows.reshape(-1)
  W_aux = state.params.W_aux.at[rows].set(new_rows.reshape(rows.shape[0], -1), mode="drop")
  applied = state.l1_applied.at[rows].set(total, mode="drop")
  return state._replace(params=state.params._replace(W_aux=W_aux), l1_total=total,
                        l1_applied=applied)


def update_aux_lazy(state, aux, dvis, hparams):
  """Lazy-prox update of the rows ``aux`` touches (equal to ``update_aux_dense``)."""
  return apply_aux_update(state, gather_aux_rows(state, aux), dvis, hparams)


def cd_step(rng_key: PRNGKey, state: TrainState, batch: Dataset, hparams: HParams,
            config: TrainConfig, hidden_mask: Optional[Array] = None):
  """One CD-k minibatch update. Returns (TrainState, StepInfo).

  Args:
    batch: a minibatch (``weight`` normalises the gradient; padding rows have weight 0).
    hidden_mask: optional [H] 0/1 mask of hidden units in use (for padded grids).
  """
  params = state.params
  v0, aux = batch.v, batch.aux
  wn = batch.weight / jnp.maximum(jnp.sum(batch.weight), 1.0)          # [B]
  lazy = config.l1_mode == "lazy" and aux.shape[-1] > 0
  if lazy:
    # Bring the touched rows up to date first, so the visible bias is the one the dense
    # prox would give.
    gathered = gather_aux_rows(state, aux)
    vis_bias = params.b + aux_rows_bias(gathered)
  else:
    vis_bias = model_lib.visible_bias(params, aux)
  h0_prob = jax.nn.sigmoid(v0 @ params.W + params.c)
  if hidden_mask is not None:
    h0_prob = h0_prob * hidden_mask
  vk, hk_prob = negative_phase(rng_key, params, v0, h0_prob, vis_bias, config)
  if hidden_mask is not None:
    hk_prob = hk_prob * hidden_mask
  # Both outer products in one matmul: [v0; vk]ᵀ diag([wn; -wn]) [h0; hk].
  stacked_v = jnp.concatenate([v0 * wn[:, None], -vk * wn[:, None]], axis=0)
  grad_W = stacked_v.T @ jnp.concatenate([h0_prob, hk_prob], axis=0)
  dvis = (v0 - vk) * wn[:, None]                                         # [B, V]
  grad_b = jnp.sum(dvis, axis=0)
  grad_c = wn @ (h0_prob - hk_prob)
  params, opt_state = ascend(params, state.opt_state, (grad_W, grad_b, grad_c), hparams,
                             hidden_mask)
  state = state._replace(params=params, opt_state=opt_state)
  if lazy:
    state = apply_aux_update(state, gathered, dvis, hparams)
  elif aux.shape[-1] > 0:
    state = update_aux_dense(state, aux, dvis, hparams)
  recon = jnp.sum(wn[:, None] * (v0 - vk) ** 2) / v0.shape[-1]
  return state, StepInfo(recon_error=recon)


def epoch_minibatches(rng_key: PRNGKey, n: int, batch_size: int):
  """Per-step keys [S] and a shuffled order [S, batch_size] of rows (S = n // batch_size)."""
  num_batches = n // batch_size
  key_perm, key_steps = jax.random.split(rng_key)
  order = jax.random.permutation(key_perm, n)[: num_batches * batch_size]
  return jax.random.split(key_steps, num_batches), order.reshape(num_batches, batch_size)


class BestEpoch(NamedTuple):
  """The parameters of the best epoch so far by validation pseudo-likelihood."""
  params: CRBMParams
  val_pl: Array
  epoch: Array


def init_best(params: CRBMParams) -> BestEpoch:
  return BestEpoch(params, jnp.asarray(-jnp.inf, jnp.float32), jnp.asarray(-1, jnp.int32))


def keep_best(best: BestEpoch, params: CRBMParams, val_pl: Array, epoch: Array) -> BestEpoch:
  better = val_pl > best.val_pl
  return BestEpoch(jax.tree.map(lambda new, old: jnp.where(better, new, old), params,
                                best.params),
                   jnp.where(better, val_pl, best.val_pl), jnp.where(better, epoch, best.epoch))


def run_epochs_keep_best(rng_key: PRNGKey, state, num_epochs: int, epoch_fn, evaluate_fn,
                         params_of=lambda state: state.params):
  """A ``lax.scan`` over epochs that keeps the best-validation parameters.

  Args:
    epoch_fn: (key, state) -> (state, mean reconstruction error); key = fold_in(rng_key, e).
    evaluate_fn: params -> balanced validation log pseudo-likelihood.
    params_of: state -> CRBMParams.
  Returns:
    (final state, BestEpoch, History).
  """

  def body(carry, epoch):
    state, best = carry
    state, recon = epoch_fn(jax.random.fold_in(rng_key, epoch), state)
    params = params_of(state)
    val_pl = evaluate_fn(params)
    return (state, keep_best(best, params, val_pl, epoch)), (recon, val_pl)

  (state, best), (recon, val_pl) = jax.lax.scan(
      body, (state, init_best(params_of(state))), jnp.arange(num_epochs))
  return state, best, History(recon, val_pl)


def run_epoch(rng_key: PRNGKey, state: TrainState, data: Dataset, hparams: HParams,
              config: TrainConfig, hidden_mask: Optional[Array] = None):
  """One shuffled pass over ``data`` (N a multiple of batch_size; pad with weight 0).

  Returns (TrainState with W_aux flushed, mean reconstruction error).
  """
  def body(state, xs):
    key, idx = xs
    batch = Dataset(data.v[idx], data.aux[idx], data.weight[idx])
    return cd_step(key, state, batch, hparams, config, hidden_mask)

  state, info = jax.lax.scan(body, state,
                             epoch_minibatches(rng_key, data.v.shape[0], config.batch_size))
  return flush_l1(state), jnp.mean(info.recon_error)


def pad_dataset(data: Dataset, multiple: int) -> Dataset:
  """Pad N up to a multiple of ``multiple`` with weight-0 rows."""
  n = data.v.shape[0]
  pad = (-n) % multiple
  if pad == 0:
    return data
  return Dataset(jnp.pad(data.v, ((0, pad), (0, 0))),
                 jnp.pad(data.aux, ((0, pad), (0, 0)), constant_values=-1),
                 jnp.pad(data.weight, (0, pad)))


def make_fit(config: TrainConfig, num_aux: int):
  """Returns ``fit_fn(rng_key, hparams, train, val, hidden_mask=None) -> FitResult``.

  ``fit_fn`` is pure and unjitted: jit it, or vmap it over hparams / keys / data splits
  of equal shape. ``train.v.shape[0]`` must be a multiple of ``config.batch_size``
  (see ``pad_dataset``).
  """

  def fit_fn(rng_key: PRNGKey, hparams: HParams, train: Dataset, val: Dataset,
             hidden_mask: Optional[Array] = None) -> FitResult:
    key_init, key_train = jax.random.split(rng_key)
    num_visible = train.v.shape[-1]
    mean = (train.weight @ train.v) / jnp.maximum(jnp.sum(train.weight), 1.0)
    params = model_lib.init_params(key_init, num_visible, config.num_hidden, num_aux,
                                   config.weight_scale, visible_mean=mean)
    if hidden_mask is not None:
      params = params._replace(W=params.W * hidden_mask)
    state = init_state(params, hparams)

    def evaluate(p):
      per_bit = pseudo_log_likelihood(p, val.v, val.aux, config.eval_chunk)
      return balanced_pseudo_likelihood(per_bit, val.v, val.weight)

    epoch_fn = lambda key, state: run_epoch(key, state, train, hparams, config, hidden_mask)
    _, best, history = run_epochs_keep_best(key_train, state, config.num_epochs, epoch_fn,
                                            evaluate)
    return FitResult(best.params, best.epoch, best.val_pl, history)

  return fit_fn


def fit(rng_key: PRNGKey, train: Dataset, val: Dataset, config: TrainConfig,
        hparams: Optional[HParams] = None, num_aux: Optional[int] = None) -> FitResult:
  """Convenience wrapper: pads, jits and runs ``make_fit(config, num_aux)``.

  Args:
    num_aux: rows of W_aux (default: 1 + the largest index in train/val aux).
  """
  hparams = make_hparams() if hparams is None else hparams
  if num_aux is None:
    top = max(int(jnp.max(train.aux, initial=-1)), int(jnp.max(val.aux, initial=-1)))
    num_aux = top + 1
  fit_fn = jax.jit(make_fit(config, num_aux))
  return fit_fn(rng_key, hparams, pad_dataset(train, config.batch_size), val)
