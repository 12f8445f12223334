"""Persistent contrastive divergence (PCD) and parallel tempering (PT) for the conditional RBM.

Same contract as ``train.make_fit``: ``make_fit_persistent(config, num_aux, method=...)``
returns ``fit_fn(rng_key, hparams, train, val, hidden_mask=None) -> train.FitResult``, with
the same initialisation, optimiser, lazy/dense L1 prox on ``W_aux`` and best-epoch
selection by validation pseudo-likelihood; only the negative phase differs.

PCD (Tieleman 2008): the negative statistics come from fantasy particles that persist
across parameter updates instead of chains restarted at the data. PT (Desjardins et al.
2010): each particle is a ladder of ``num_temperatures`` chains at inverse temperatures
1 = β_0 > ... > β_{T-1} = ``min_beta`` that swap states between neighbours (Metropolis);
statistics come from the β = 1 chain. Tempering scales the interactions only,

    p_β(v, h | a) ∝ exp(vᵀ(b + W_a a) + β (vᵀWh + cᵀh)),

so the hottest chain is close to independent tags with the model's own biases (it mixes at
once) and every rung of the ladder has the same conditioning a.

A conditional RBM needs an aux row for each chain. ``chain_mode='slot'`` (default) keeps
``num_chains`` (a multiple c of the batch size) particles, c per minibatch slot, advanced
every step and conditioned on the aux row of the observation currently in that slot: the
visible bias of a particle changes from step to step, and one block-Gibbs sweep moves the
particle towards the new p(v | a) (the aux term acts on v only, so the sweep adapts to it
at once). ``chain_mode='example'`` keeps c particles per training observation, always
conditioned on that observation's aux row (a consistent target, but each particle is
advanced once per epoch only, so it lags the parameters more).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax import model as model_lib
from crbm_jax import train as train_lib
from crbm_jax.pseudolikelihood import balanced_pseudo_likelihood, pseudo_log_likelihood
from crbm_jax.train import Dataset, FitResult, HParams, TrainConfig, TrainState
from crbm_jax.types import Array, PRNGKey

METHODS = ("pcd", "pt")
CHAIN_MODES = ("slot", "example")


class PersistentError(ValueError):
  """Bad persistent-chain configuration (names the argument and the reason)."""


class PersistentState(NamedTuple):
  train: TrainState
  chains: Array   # [T, c, S, V] binary particles: T temperatures, S slots or observations


class PersistentInfo(NamedTuple):
  recon_error: Array  # mean squared difference data vs β=1 particles, per bit
  swap_rate: Array    # PT: fraction of attempted swaps accepted (0 for PCD)


def temperature_ladder(num_temperatures: int, min_beta: float = 0.0) -> np.ndarray:
  """[T] inverse temperatures, 1 down to ``min_beta``, evenly spaced."""
  if num_temperatures < 1:
    raise PersistentError(f"num_temperatures must be >= 1, got {num_temperatures}")
  if not 0.0 <= min_beta < 1.0:
    raise PersistentError(f"min_beta must be in [0, 1), got {min_beta}")
  return np.linspace(1.0, min_beta, num_temperatures) if num_temperatures > 1 else np.ones(1)


def tempered_gibbs(rng_key: PRNGKey, params, v: Array, vis_bias: Array, beta: Array) -> Array:
  """One block-Gibbs sweep of p_β: v [T, c, S, V], vis_bias [S, V], beta [T] or scalar."""
  beta = jnp.reshape(beta, (-1,) + (1,) * (v.ndim - 1)) if jnp.ndim(beta) else beta
  key_h, key_v = jax.random.split(rng_key)
  h = jax.random.bernoulli(key_h, jax.nn.sigmoid(beta * (v @ params.W + params.c)))
  logits = vis_bias + beta * (h.astype(v.dtype) @ params.W.T)
  return jax.random.bernoulli(key_v, jax.nn.sigmoid(logits)).astype(v.dtype)


def _tempered_log_f_hidden(params, v, beta):
  """Σ_j softplus(β x_j): the part of log p_β(v) that depends on β; [..., S]."""
  return jnp.sum(jax.nn.softplus(beta * (v @ params.W + params.c)), axis=-1)


def swap_neighbours(rng_key: PRNGKey, params, chains: Array, betas: Array, offset: int):
  """Metropolis swaps between rungs (t, t+1), t = offset, offset+2, ... .

  Args:
    chains: [T, c, S, V]; betas: [T]. The vᵀ(b + W_a a) term is the same at every rung, so
      only the tempered hidden term enters the acceptance ratio.
  Returns:
    (chains, number accepted, number attempted).
  """
  num_t = chains.shape[0]
  lo = np.arange(offset, num_t - 1, 2)
  if len(lo) == 0:
    return chains, jnp.zeros(()), 0
  hi = lo + 1
  b_lo, b_hi = betas[lo][:, None, None, None], betas[hi][:, None, None, None]
  v_lo, v_hi = chains[lo], chains[hi]
  log_ratio = (_tempered_log_f_hidden(params, v_hi, b_lo) +
               _tempered_log_f_hidden(params, v_lo, b_hi) -
               _tempered_log_f_hidden(params, v_lo, b_lo) -
               _tempered_log_f_hidden(params, v_hi, b_hi))          # [P, c, S]
  accept = jnp.log(jax.random.uniform(rng_key, log_ratio.shape)) < log_ratio
  a = accept[..., None]
  chains = chains.at[lo].set(jnp.where(a, v_hi, v_lo)).at[hi].set(jnp.where(a, v_lo, v_hi))
  return chains, jnp.sum(accept), accept.size


def advance_chains(rng_key: PRNGKey, params, chains: Array, vis_bias: Array, betas: Array,
                   num_sweeps: int):
  """``num_sweeps`` sweeps at every rung, each followed (T > 1) by even then odd swaps.

  Returns (chains, swap acceptance rate).
  """
  accepted, attempted = jnp.zeros(()), 0
  for key in jax.random.split(rng_key, num_sweeps):  # static and small: unrolled
    key_g, key_even, key_odd = jax.random.split(key, 3)
    chains = tempered_gibbs(key_g, params, chains, vis_bias, betas)
    if chains.shape[0] > 1:
      for offset, k in ((0, key_even), (1, key_odd)):
        chains, acc, att = swap_neighbours(k, params, chains, betas, offset)
        accepted, attempted = accepted + acc, attempted + att
  return chains, accepted / max(attempted, 1)


def persistent_step(rng_key: PRNGKey, state: PersistentState, batch: Dataset, slots: Array,
                    hparams: HParams, config: TrainConfig, betas: Array,
                    hidden_mask: Optional[Array] = None):
  """One minibatch update with persistent particles ``state.chains[:, :, slots]``.

  Args:
    slots: [B] which particle columns this minibatch uses (arange(B) in slot mode, the
      observations' row numbers in example mode).
  Returns:
    (PersistentState, PersistentInfo).
  """
  ts = state.train
  params = ts.params
  v0, aux = batch.v, batch.aux
  wn = batch.weight / jnp.maximum(jnp.sum(batch.weight), 1.0)
  vis_bias = model_lib.visible_bias(params, aux)
  chains, swap_rate = advance_chains(rng_key, params, state.chains[:, :, slots], vis_bias,
                                     betas, config.cd_k)
  v_neg = chains[0]                                                    # [c, B, V]
  num_c = v_neg.shape[0]
  h0 = jax.nn.sigmoid(v0 @ params.W + params.c)
  h_neg = jax.nn.sigmoid(v_neg @ params.W + params.c)
  if hidden_mask is not None:
    h0, h_neg = h0 * hidden_mask, h_neg * hidden_mask
  neg_w = (wn / num_c)[None, :, None]
  stacked_v = jnp.concatenate([v0 * wn[:, None], (-v_neg * neg_w).reshape(-1, v0.shape[1])])
  grad_W = stacked_v.T @ jnp.concatenate([h0, h_neg.reshape(-1, h0.shape[1])])
  v_neg_mean = jnp.mean(v_neg, axis=0)
  dvis = (v0 - v_neg_mean) * wn[:, None]
  grad_b = jnp.sum(dvis, axis=0)
  grad_c = wn @ (h0 - jnp.mean(h_neg, axis=0))
  params, opt_state = train_lib.ascend(params, ts.opt_state, (grad_W, grad_b, grad_c),
                                      hparams, hidden_mask)
  ts = ts._replace(params=params, opt_state=opt_state)
  if aux.shape[-1] > 0:
    update = train_lib.update_aux_lazy if config.l1_mode == "lazy" else train_lib.update_aux_dense
    ts = update(ts, aux, dvis, hparams)
  recon = jnp.sum(wn[:, None] * (v0 - v_neg_mean) ** 2) / v0.shape[-1]
  new_chains = state.chains.at[:, :, slots].set(chains)
  return PersistentState(ts, new_chains), PersistentInfo(recon, swap_rate)


def init_chains(rng_key: PRNGKey, train: Dataset, num_temperatures: int, per_column: int,
                columns: int, chain_mode: str = "slot") -> Array:
  """Particles [T, c, S, V] started at training observations (random rows in slot mode,
  each observation's own row in example mode, S = N)."""
  n = train.v.shape[0]
  if chain_mode == "slot":
    pick = jax.random.randint(rng_key, (num_temperatures, per_column, columns), 0, n)
  else:
    pick = jnp.broadcast_to(jnp.arange(n), (num_temperatures, per_column, n))
  return train.v[pick]


def run_epoch_persistent(rng_key: PRNGKey, state: PersistentState, data: Dataset,
                         hparams: HParams, config: TrainConfig, betas: Array,
                         chain_mode: str = "slot", hidden_mask: Optional[Array] = None):
  """One shuffled pass (N a multiple of batch_size). Returns (state, PersistentInfo [steps])."""

  def body(state, xs):
    key, idx = xs
    batch = Dataset(data.v[idx], data.aux[idx], data.weight[idx])
    slots = jnp.arange(config.batch_size) if chain_mode == "slot" else idx
    return persistent_step(key, state, batch, slots, hparams, config, betas, hidden_mask)

  state, info = jax.lax.scan(body, state, train_lib.epoch_minibatches(
      rng_key, data.v.shape[0], config.batch_size))
  return state._replace(train=train_lib.flush_l1(state.train)), info


def make_fit_persistent(config: TrainConfig, num_aux: int, method: str = "pcd",
                        num_chains: Optional[int] = None, num_temperatures: int = 5,
                        min_beta: float = 0.0, chain_mode: str = "slot"):
  """Returns ``fit_fn(rng_key, hparams, train, val, hidden_mask=None) -> FitResult``.

  Args:
    config: as for ``train.make_fit``; ``cd_k`` = Gibbs sweeps per update.
    method: 'pcd' or 'pt'.
    num_chains: particles per temperature, a multiple of ``config.batch_size``
      (default: one per minibatch slot), or per observation in example mode (default 1).
    num_temperatures, min_beta: the PT ladder (ignored for 'pcd').
    chain_mode: 'slot' or 'example' (module docstring).
  """
  if method not in METHODS:
    raise PersistentError(f"method must be one of {METHODS}, got {method!r}")
  if chain_mode not in CHAIN_MODES:
    raise PersistentError(f"chain_mode must be one of {CHAIN_MODES}, got {chain_mode!r}")
  per_column = 1
  if num_chains is not None:
    base = config.batch_size if chain_mode == "slot" else 1
    if num_chains < 1 or (chain_mode == "slot" and num_chains % base):
      raise PersistentError(
          f"num_chains={num_chains} must be a positive multiple of batch_size="
          f"{config.batch_size} in slot mode")
    per_column = num_chains // base
  num_t = num_temperatures if method == "pt" else 1
  betas_np = temperature_ladder(num_t, min_beta)

  def fit_fn(rng_key: PRNGKey, hparams: HParams, train: Dataset, val: Dataset,
             hidden_mask: Optional[Array] = None) -> FitResult:
    key_init, key_chain, key_train = jax.random.split(rng_key, 3)
    num_visible = train.v.shape[1]
    betas = jnp.asarray(betas_np, train.v.dtype)
    mean = (train.weight @ train.v) / jnp.maximum(jnp.sum(train.weight), 1.0)
    params = model_lib.init_params(key_init, num_visible, config.num_hidden, num_aux,
                                   config.weight_scale, visible_mean=mean)
    if hidden_mask is not None:
      params = params._replace(W=params.W * hidden_mask)
    chains = init_chains(key_chain, train, num_t, per_column, config.batch_size, chain_mode)
    state = PersistentState(train_lib.init_state(params, hparams), chains)

    def evaluate(p):
      per_bit = pseudo_log_likelihood(p, val.v, val.aux, config.eval_chunk)
      return balanced_pseudo_likelihood(per_bit, val.v, val.weight)

    def epoch_fn(key, state):
      state, info = run_epoch_persistent(key, state, train, hparams, config, betas,
                                         chain_mode, hidden_mask)
      return state, jnp.mean(info.recon_error)

    _, best, history = train_lib.run_epochs_keep_best(
        key_train, state, config.num_epochs, epoch_fn, evaluate, lambda s: s.train.params)
    return FitResult(best.params, best.epoch, best.val_pl, history)

  return fit_fn
