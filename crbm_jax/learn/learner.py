"""The one learner step, and the CD-k learner.

``make_learner(config, num_aux, sampler, ...)`` assembles a ``Learner(init, step, model)``
(``crbm_jax.learn.base``) from a negative-phase ``Sampler``; CD-k, PCD, parallel tempering
and the distance-aware clip model are constructors of it. One step is:

  1. the W_aux rows the minibatch touches, caught up on the lazy L1 prox, and each
     observation's auxiliary bias W_a a (``lazy_l1``);
  2. per model: the data phase p(h | v), the sampler's negative particles, the contrastive
     gradient and the optimiser step on W, b, c;
  3. SGD + prox on the touched rows of W_aux.

With ``over_models=True`` the same learner trains a block of M models on shared
minibatches: step 2 is ``vmap``-ped over the model axis while the key, the minibatch and
the touched-row indices stay shared (common random numbers: every model sees the same
Gibbs noise, drawn once, and the data phase becomes one matmul over the stacked weights),
and W_aux is held as [A, M, V] so steps 1 and 3 gather, multiply and scatter whole [M·V]
slices (``lazy_l1``). Its ``init`` takes [M] keys, HParams of [M] arrays, hidden masks
[M, H] and group masks [M, G].
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from crbm_jax.learn import lazy_l1
from crbm_jax.learn.base import (HParams, Learner, StepInfo, TrainConfig, aux_learning_rate,
                                 visible_mean)
from crbm_jax.learn.contrastive import (Sampler, ascend, cd_sampler, contrastive_grads,
                                        init_optimizer)
from crbm_jax.model.crbm import CRBMParams, init_params
from crbm_jax.model.gibbs import hidden_probs
from crbm_jax.types import Array

# Axis of the model in each leaf of a block's parameters and state (W_aux is [A, M, V]).
BLOCK_PARAM_AXES = CRBMParams(W=0, W_aux=1, b=0, c=0)


class LearnerState(NamedTuple):
  """What the next step needs.

  params: the parameters; W_aux rows may lag on the L1 prox (``Learner.model`` catches
    them up). opt_state: optax state of (W, b, c). l1: lazy-prox bookkeeping.
  chains: the sampler's persistent state (() for CD-k).
  hidden_mask: [H] 1 for the hidden units in use (padded grids); group_mask: [G] 1 for
    the auxiliary groups the model conditions on.
  """
  params: CRBMParams
  opt_state: Any
  l1: lazy_l1.L1State
  chains: Any
  hidden_mask: Array
  group_mask: Array


BLOCK_STATE_AXES = LearnerState(BLOCK_PARAM_AXES, 0, lazy_l1.L1State(0, 1), 0, 0, 0)
AuxInputFn = Callable[[Array, HParams], lazy_l1.AuxInput]
ModelView = Callable[[CRBMParams, HParams], CRBMParams]


def make_learner(config: TrainConfig, num_aux: int, sampler: Sampler,
                 aux_input: Optional[AuxInputFn] = None, view: Optional[ModelView] = None,
                 over_models: bool = False) -> Learner:
  """A Learner from a negative-phase sampler.

  Args:
    config: static settings (hidden units, CD-k, initial weight scale).
    num_aux: rows of W_aux.
    sampler: where the negative particles come from.
    aux_input: (aux [B, G], hparams) -> AuxInput, how observations use W_aux rows
      (default: each column's row, weight 1).
    view: (params, hparams) -> the equivalent ordinary CRBM (default: params).
    over_models: train a block of models on shared minibatches (module docstring).
  """
  aux_input = aux_input or (lambda aux, hparams: lazy_l1.plain_input(aux))

  def init_one(rng_key, train, hparams, hidden_mask=None, group_mask=None):
    key_params, key_chains = jax.random.split(rng_key)
    params = init_params(key_params, train.v.shape[-1], config.num_hidden, num_aux,
                         config.weight_scale, visible_mean=visible_mean(train))
    if hidden_mask is None:
      hidden_mask = jnp.ones((config.num_hidden,), params.W.dtype)
    if group_mask is None:
      group_mask = jnp.ones(train.aux.shape[-1:], params.W.dtype)
    params = params._replace(W=params.W * hidden_mask)
    return LearnerState(params, init_optimizer(params, hparams), lazy_l1.init_l1(num_aux),
                        sampler.init(key_chains, train), hidden_mask, group_mask)

  def dense_step(rng_key, batch, weight, params, opt_state, chains, bias, hparams,
                 hidden_mask):
    """One model's negative phase and W, b, c update; bias [B, V] = W_a a."""
    vis_bias = params.b + bias
    h0 = hidden_probs(params, batch.v, hidden_mask=hidden_mask)
    chains, v_neg, h_neg, swap_rate = sampler.negative(rng_key, params, chains, batch, h0,
                                                       vis_bias, hidden_mask)
    g = contrastive_grads(batch.v, h0, v_neg, h_neg, weight)
    params, opt_state = ascend(params, opt_state, (g.W, g.b, g.c), hparams, hidden_mask)
    return params, opt_state, chains, g.dvis, StepInfo(g.recon_error, swap_rate)

  per_model = jax.vmap(dense_step, in_axes=(None, None, None, 0, 0, 0, 1, 0, 0),
                       out_axes=(0, 0, 0, 1, 0)) if over_models else dense_step

  def step(rng_key, state: LearnerState, batch, hparams: HParams):
    weight = batch.weight / jnp.maximum(jnp.sum(batch.weight), 1.0)
    W_aux, l1 = state.params.W_aux, state.l1
    has_aux = batch.aux.shape[-1] > 0 and num_aux > 0
    if has_aux:
      touched = lazy_l1.touch(W_aux, l1, aux_input(batch.aux, hparams))
      bias = lazy_l1.touched_bias(touched, state.group_mask)        # [B, *M, V]
    else:
      bias = jnp.zeros(batch.v.shape[:1] + state.params.b.shape, batch.v.dtype)
    params, opt_state, chains, dvis, info = per_model(
        rng_key, batch, weight, state.params._replace(W_aux=None), state.opt_state,
        state.chains, bias, hparams, state.hidden_mask)
    if has_aux:
      W_aux, l1 = lazy_l1.update(W_aux, l1, touched, state.group_mask, dvis,
                                 aux_learning_rate(hparams), hparams.l1_aux)
    return state._replace(params=params._replace(W_aux=W_aux), opt_state=opt_state, l1=l1,
                          chains=chains), info

  def model(state: LearnerState, hparams: HParams) -> CRBMParams:
    params = state.params._replace(W_aux=lazy_l1.caught_up(state.params.W_aux, state.l1))
    return params if view is None else view(params, hparams)

  if not over_models:
    return Learner(init_one, step, model)
  init = jax.vmap(init_one, in_axes=(0, None, 0, 0, 0), out_axes=BLOCK_STATE_AXES)
  return Learner(init, step, model, BLOCK_PARAM_AXES)


def cd(config: TrainConfig, num_aux: int, over_models: bool = False) -> Learner:
  """Contrastive divergence (CD-k, ``config.cd_k`` sweeps from the data)."""
  return make_learner(config, num_aux, cd_sampler(config), over_models=over_models)
