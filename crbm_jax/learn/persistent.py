"""Persistent contrastive divergence (PCD) and parallel tempering (PT) samplers and learners.

``pcd(config, num_aux, ...)`` and ``parallel_tempering(config, num_aux, ...)`` are
``Learner``s built by ``learner.make_learner`` with the same initialisation, optimiser,
lazy L1 prox on ``W_aux`` and best-epoch selection as CD-k; only the negative phase (the
``Sampler``) differs.

PCD (Tieleman 2008): the negative statistics come from fantasy particles that persist
across parameter updates instead of chains restarted at the data. PT (Desjardins et al.
2010): each particle is a ladder of ``num_temperatures`` chains at inverse temperatures
1 = β_0 > ... > β_{T-1} = ``min_beta`` that swap states between neighbours (Metropolis);
statistics come from the β = 1 chain. Tempering scales the interactions only,

    p_β(v, h | a) ∝ exp(vᵀ(b + W_a a) + β (vᵀWh + cᵀh)),

so the hottest chain is close to independent tags with the model's own biases (it mixes at
once) and every rung of the ladder has the same conditioning a (``model.gibbs``).

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

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn.base import Dataset, Learner, TrainConfig
from crbm_jax.learn.contrastive import Sampler
from crbm_jax.learn.learner import make_learner
from crbm_jax.model.gibbs import gibbs_sweep, hidden_probs
from crbm_jax.types import Array, PRNGKey

CHAIN_MODES = ("slot", "example")


class PersistentError(ValueError):
  """Bad persistent-chain configuration (names the argument and the reason)."""


def temperature_ladder(num_temperatures: int, min_beta: float = 0.0) -> np.ndarray:
  """[T] inverse temperatures, 1 down to ``min_beta``, evenly spaced."""
  if num_temperatures < 1:
    raise PersistentError(f"num_temperatures must be >= 1, got {num_temperatures}")
  if not 0.0 <= min_beta < 1.0:
    raise PersistentError(f"min_beta must be in [0, 1), got {min_beta}")
  return np.linspace(1.0, min_beta, num_temperatures) if num_temperatures > 1 else np.ones(1)


def _as_rungs(beta: Array, ndim: int) -> Array:
  """[T] inverse temperatures shaped to broadcast against chains [T, ...] of rank ndim."""
  return jnp.reshape(beta, (-1,) + (1,) * (ndim - 1)) if jnp.ndim(beta) else beta


def tempered_gibbs(rng_key: PRNGKey, params, v: Array, vis_bias: Array, beta: Array,
                   hidden_mask: Optional[Array] = None) -> Array:
  """One block-Gibbs sweep of p_β at every rung: v [T, c, S, V], vis_bias [S, V], beta [T]."""
  beta = _as_rungs(beta, v.ndim)
  v_new, _ = gibbs_sweep(rng_key, params, hidden_probs(params, v, beta, hidden_mask),
                         vis_bias, beta)
  return v_new


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
                   num_sweeps: int, hidden_mask: Optional[Array] = None):
  """``num_sweeps`` sweeps at every rung, each followed (T > 1) by even then odd swaps.

  Returns (chains, swap acceptance rate).
  """
  accepted, attempted = jnp.zeros(()), 0
  for key in jax.random.split(rng_key, num_sweeps):  # static and small: unrolled
    key_g, key_even, key_odd = jax.random.split(key, 3)
    chains = tempered_gibbs(key_g, params, chains, vis_bias, betas, hidden_mask)
    if chains.shape[0] > 1:
      for offset, k in ((0, key_even), (1, key_odd)):
        chains, acc, att = swap_neighbours(k, params, chains, betas, offset)
        accepted, attempted = accepted + acc, attempted + att
  return chains, accepted / max(attempted, 1)


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


def persistent_sampler(config: TrainConfig, betas: np.ndarray, per_column: int = 1,
                       chain_mode: str = "slot") -> Sampler:
  """Particles [T, c, S, V] advanced ``config.cd_k`` sweeps (and swaps, T > 1) per step;
  the β = 1 rung gives the negative statistics."""
  num_t = len(betas)

  def init(rng_key, train: Dataset):
    return init_chains(rng_key, train, num_t, per_column, config.batch_size, chain_mode)

  def negative(rng_key, params, chains, batch, h0, vis_bias, hidden_mask):
    del h0
    slots = jnp.arange(batch.v.shape[0]) if chain_mode == "slot" else batch.index
    particles, swap_rate = advance_chains(rng_key, params, chains[:, :, slots], vis_bias,
                                          jnp.asarray(betas, vis_bias.dtype), config.cd_k,
                                          hidden_mask)
    v_neg = particles[0]                                                # [c, B, V]
    return (chains.at[:, :, slots].set(particles), v_neg,
            hidden_probs(params, v_neg, hidden_mask=hidden_mask), swap_rate)

  return Sampler(init, negative)


def _chains_per_column(config: TrainConfig, num_chains: Optional[int], chain_mode: str) -> int:
  if chain_mode not in CHAIN_MODES:
    raise PersistentError(f"chain_mode must be one of {CHAIN_MODES}, got {chain_mode!r}")
  if num_chains is None:
    return 1
  base = config.batch_size if chain_mode == "slot" else 1
  if num_chains < 1 or (chain_mode == "slot" and num_chains % base):
    raise PersistentError(
        f"num_chains={num_chains} must be a positive multiple of batch_size="
        f"{config.batch_size} in slot mode")
  return num_chains // base


def pcd(config: TrainConfig, num_aux: int, num_chains: Optional[int] = None,
        chain_mode: str = "slot", over_models: bool = False) -> Learner:
  """Persistent contrastive divergence.

  Args:
    config: as for CD-k; ``cd_k`` = Gibbs sweeps of the particles per update.
    num_chains: particles, a multiple of ``config.batch_size`` in slot mode (default: one
      per minibatch slot), or per observation in example mode (default 1).
    chain_mode: 'slot' or 'example' (module docstring).
  """
  sampler = persistent_sampler(config, temperature_ladder(1),
                               _chains_per_column(config, num_chains, chain_mode), chain_mode)
  return make_learner(config, num_aux, sampler, over_models=over_models)


def parallel_tempering(config: TrainConfig, num_aux: int, num_temperatures: int = 5,
                       min_beta: float = 0.0, num_chains: Optional[int] = None,
                       chain_mode: str = "slot", over_models: bool = False) -> Learner:
  """Persistent chains on a ladder of ``num_temperatures`` inverse temperatures from 1
  down to ``min_beta``, with neighbour swaps (see ``pcd`` for the other arguments)."""
  sampler = persistent_sampler(config, temperature_ladder(num_temperatures, min_beta),
                               _chains_per_column(config, num_chains, chain_mode), chain_mode)
  return make_learner(config, num_aux, sampler, over_models=over_models)
