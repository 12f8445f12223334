"""Learners of the feature-conditioned CRBM (``model.conditioned``): CD-k, PCD and the
discriminative objective, each a ``Learner(init, step, model)``.

All three estimate the gradient of the log-likelihood of the tags through the per-row
biases b' = b + W_a a + x W_x and c' = c + x U_x: one step gets dW, dvis = ∂/∂b' [B, V]
and dhid = ∂/∂c' [B, H], and then

    db = Σ_n dvis_n,  dc = Σ_n dhid_n,  dW_x = xᵀ dvis,  dU_x = xᵀ dhid,

with W_aux's touched rows getting Σ over their observations of dvis (the package's lazy
L1 prox, ``learn.lazy_l1``, exactly as for the plain CRBM). They differ in how the
statistics are estimated:

* ``cd``: the package's CD-k sampler (``contrastive.cd_sampler``) on the conditioned RBM;
* ``pcd``: the package's persistent sampler (``persistent.persistent_sampler``, slot
  mode): each minibatch slot's particles are conditioned on the slot's current (x, a);
* ``discriminative``: the exact gradient of Σ_n w_n log p(v_n | x_n, a_n) (Mandel et al.
  2011's discriminative training), by summing over the 2^H hidden states
  (``conditioned.log_likelihood_from_biases``; H <= ``MAX_EXACT_HIDDEN``).

W, b, c, W_x, U_x follow SGD with momentum (optax); W is decayed by ``weight_decay`` as in
the package and W_x, U_x by their own ``weight_decay_x``. ``fit`` runs epochs of shuffled
minibatches with ``lax.scan`` and keeps the epoch with the best validation objective
(exact mean log p(v | x, a) when a validation set is given).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from crbm_jax.learn import lazy_l1
from crbm_jax.learn.base import Learner, StepInfo, TrainConfig, aux_learning_rate
from crbm_jax.learn.contrastive import cd_sampler, contrastive_grads
from crbm_jax.learn.persistent import persistent_sampler, temperature_ladder
from crbm_jax.model import conditioned as cm
from crbm_jax.model.gibbs import hidden_probs
from crbm_jax.types import Array, PRNGKey

OBJECTIVES = ("discriminative", "cd", "pcd")


class AudioDataset(NamedTuple):
  """Tag observations with their features: v [N, V] binary, aux [N, G] int (-1 absent),
  weight [N] (0: padding), x [N, F] standardised features."""
  v: Array
  aux: Array
  weight: Array
  x: Array


class AudioBatch(NamedTuple):
  """A minibatch (``index`` [B]: its rows in the training set)."""
  v: Array
  aux: Array
  weight: Array
  index: Array
  x: Array


class AudioHParams(NamedTuple):
  """Traced hyperparameters: the package's (``learn.base.HParams``) plus the weight decay
  of the feature weights W_x, U_x."""
  learning_rate: Array
  momentum: Array
  weight_decay: Array
  l1_aux: Array
  aux_lr_scale: Optional[Array] = None
  weight_decay_x: Optional[Array] = None


def make_audio_hparams(learning_rate=0.05, momentum=0.5, weight_decay=1e-4, l1_aux=1e-3,
                       aux_lr_scale=1.0, weight_decay_x=1e-3) -> AudioHParams:
  f = lambda v: jnp.asarray(v, jnp.float32)
  return AudioHParams(f(learning_rate), f(momentum), f(weight_decay), f(l1_aux),
                      f(aux_lr_scale), f(weight_decay_x))


class AudioLearnerState(NamedTuple):
  """params: the model (W_aux rows may lag on the L1 prox); opt_state: optax state of
  (W, b, c, W_x, U_x); l1: lazy-prox bookkeeping; chains: persistent particles (PCD)."""
  params: cm.AudioCRBMParams
  opt_state: Any
  l1: lazy_l1.L1State
  chains: Any


def _optimizer(hparams: AudioHParams) -> optax.GradientTransformation:
  return optax.chain(
      optax.add_decayed_weights(hparams.weight_decay, mask=(True, False, False, False, False)),
      optax.add_decayed_weights(hparams.weight_decay_x, mask=(False, False, False, True, True)),
      optax.sgd(hparams.learning_rate, momentum=hparams.momentum))


def _dense(params: cm.AudioCRBMParams):
  p = params.crbm
  return (p.W, p.b, p.c, params.W_x, params.U_x)


class BiasGrads(NamedTuple):
  """Ascent directions: W [V, H], dvis [B, V] = ∂/∂b', dhid [B, H] = ∂/∂c'."""
  W: Array
  dvis: Array
  dhid: Array


def discriminative_grads(W: Array, v: Array, vb: Array, hb: Array, weight: Array):
  """Exact gradient of Σ_n weight_n log p(v_n | x_n, a_n) in W and the row biases;
  (BiasGrads, objective)."""
  hs = cm.hidden_states(W.shape[1], vb.dtype)
  objective = lambda W, vb, hb: jnp.sum(
      weight * cm.log_likelihood_from_biases(W, v, vb, hb, hs))
  value, (gW, gv, gh) = jax.value_and_grad(objective, argnums=(0, 1, 2))(W, vb, hb)
  return BiasGrads(gW, gv, gh), value


def audio_learner(config: TrainConfig, num_aux: int, num_features: int,
                  objective: str = "discriminative", hidden_input: bool = False,
                  num_chains: Optional[int] = None) -> Learner:
  """A Learner of the feature-conditioned CRBM (module docstring).

  Args:
    config: num_hidden, cd_k (Gibbs sweeps of CD / PCD), batch_size, weight_scale.
    num_aux: rows of W_aux; num_features: F.
    objective: 'discriminative', 'cd' or 'pcd'.
    hidden_input: also condition the hidden bias on the features (U_x).
    num_chains: PCD particles (a multiple of the batch size; default one per slot).
  """
  if objective not in OBJECTIVES:
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
  if objective == "discriminative" and config.num_hidden > cm.MAX_EXACT_HIDDEN:
    raise ValueError(f"the discriminative objective sums over 2^H hidden states: "
                     f"num_hidden must be <= {cm.MAX_EXACT_HIDDEN}, got {config.num_hidden}")
  sampler = None
  if objective == "cd":
    sampler = cd_sampler(config)
  elif objective == "pcd":
    per = 1 if num_chains is None else max(1, num_chains // config.batch_size)
    sampler = persistent_sampler(config, temperature_ladder(1), per, "slot")

  def init(rng_key: PRNGKey, train: AudioDataset, hparams: AudioHParams,
           hidden_mask=None, group_mask=None):
    del hidden_mask, group_mask
    key_params, key_chains = jax.random.split(rng_key)
    mean = (train.weight @ train.v) / jnp.maximum(jnp.sum(train.weight), 1.0)
    params = cm.init_audio_params(key_params, train.v.shape[-1], config.num_hidden,
                                  num_aux, num_features, hidden_input,
                                  config.weight_scale, visible_mean=mean)
    chains = sampler.init(key_chains, train) if sampler is not None else ()
    return AudioLearnerState(params, _optimizer(hparams).init(_dense(params)),
                             lazy_l1.init_l1(num_aux), chains)

  def step(rng_key: PRNGKey, state: AudioLearnerState, batch: AudioBatch,
           hparams: AudioHParams):
    weight = batch.weight / jnp.maximum(jnp.sum(batch.weight), 1.0)
    params, l1 = state.params, state.l1
    W_aux = params.crbm.W_aux
    has_aux = batch.aux.shape[-1] > 0 and num_aux > 0
    group_mask = jnp.ones(batch.aux.shape[-1:], batch.v.dtype)
    if has_aux:
      touched = lazy_l1.touch(W_aux, l1, lazy_l1.plain_input(batch.aux))
      aux_term = lazy_l1.touched_bias(touched, group_mask)
    else:
      aux_term = jnp.zeros_like(batch.v)
    vb, hb = cm.row_biases(params, batch.x, batch.aux, aux_term=aux_term)
    chains = state.chains
    if sampler is None:
      g, _ = discriminative_grads(params.crbm.W, batch.v, vb, hb, weight)
      recon = jnp.zeros(())
    else:
      view = cm.row_view(params, hb)
      mask = jnp.ones(hb.shape[-1:], hb.dtype)
      h0 = hidden_probs(view, batch.v)
      chains, v_neg, h_neg, _ = sampler.negative(rng_key, view, chains, batch, h0, vb,
                                                 mask)
      cg = contrastive_grads(batch.v, h0, v_neg, h_neg, weight)
      g = BiasGrads(cg.W, cg.dvis, weight[:, None] * (h0 - jnp.mean(h_neg, axis=0)))
      recon = cg.recon_error
    grads = (g.W, jnp.sum(g.dvis, 0), jnp.sum(g.dhid, 0), batch.x.T @ g.dvis,
             batch.x.T @ g.dhid if params.U_x.shape[-1] else params.U_x)
    dense = _dense(params)
    updates, opt_state = _optimizer(hparams).update(
        jax.tree.map(jnp.negative, grads), state.opt_state, dense)
    W, b, c, W_x, U_x = optax.apply_updates(dense, updates)
    if has_aux:
      W_aux, l1 = lazy_l1.update(W_aux, l1, touched, group_mask, g.dvis,
                                 aux_learning_rate(hparams), hparams.l1_aux)
    new = cm.AudioCRBMParams(params.crbm._replace(W=W, W_aux=W_aux, b=b, c=c), W_x, U_x)
    return (AudioLearnerState(new, opt_state, l1, chains),
            StepInfo(recon, jnp.zeros(())))

  def model(state: AudioLearnerState, hparams: AudioHParams) -> cm.AudioCRBMParams:
    del hparams
    p = state.params
    return p._replace(crbm=p.crbm._replace(
        W_aux=lazy_l1.caught_up(p.crbm.W_aux, state.l1)))

  return Learner(init, step, model)


class AudioFitResult(NamedTuple):
  params: cm.AudioCRBMParams  # at the best validation epoch (the last without one)
  best_epoch: Array
  best_val: Array              # mean exact log p(v | x, a) on the validation set
  val_history: Array           # [num_epochs]


def make_audio_dataset(v, aux, x, weight=None) -> AudioDataset:
  v = jnp.asarray(v, jnp.float32)
  aux = jnp.asarray(np.asarray(aux, np.int32).reshape(v.shape[0], -1))
  w = jnp.ones(v.shape[:1], jnp.float32) if weight is None else jnp.asarray(weight,
                                                                             jnp.float32)
  return AudioDataset(v, aux, w, jnp.asarray(x, jnp.float32))


def pad_to(data: AudioDataset, multiple: int) -> AudioDataset:
  pad = (-data.v.shape[0]) % multiple
  if pad == 0:
    return data
  p2 = lambda a, fill=0: jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1),
                                 constant_values=fill)
  return AudioDataset(p2(data.v), p2(data.aux, -1), p2(data.weight), p2(data.x))


def mean_log_likelihood(params: cm.AudioCRBMParams, data: AudioDataset) -> Array:
  """Weighted mean exact log p(v | x, a) per observation (needs small H)."""
  ll = cm.log_likelihood(params, data.v, data.x, data.aux)
  return jnp.sum(data.weight * ll) / jnp.maximum(jnp.sum(data.weight), 1.0)


def fit(rng_key: PRNGKey, learner: Learner, config: TrainConfig, train: AudioDataset,
        hparams: AudioHParams, val: Optional[AudioDataset] = None) -> AudioFitResult:
  """``config.num_epochs`` epochs of shuffled minibatches (``lax.scan``); keeps the
  epoch with the best validation mean log-likelihood (the last epoch without ``val``).
  Pure: jit it at the top (``jax.jit(fit, static_argnums=(1, 2))``)."""
  data = pad_to(train, config.batch_size)
  n = data.v.shape[0]
  num_batches = n // config.batch_size
  key_init, key_run = jax.random.split(rng_key)
  state = learner.init(key_init, train, hparams)
  evaluate = ((lambda p: mean_log_likelihood(p, val)) if val is not None
              else (lambda p: jnp.zeros(())))

  def epoch(carry, key):
    state, best, best_val, best_epoch, e = carry
    key_perm, key_steps = jax.random.split(key)
    order = jax.random.permutation(key_perm, n).reshape(num_batches, config.batch_size)

    def one(state, args):
      idx, k = args
      batch = AudioBatch(data.v[idx], data.aux[idx], data.weight[idx], idx, data.x[idx])
      state, _ = learner.step(k, state, batch, hparams)
      return state, None

    state, _ = jax.lax.scan(one, state, (order, jax.random.split(key_steps, num_batches)))
    params = learner.model(state, hparams)
    score = evaluate(params)
    better = (score > best_val) if val is not None else jnp.asarray(True)
    best = jax.tree.map(lambda new, old: jnp.where(better, new, old), params, best)
    return (state, best, jnp.where(better, score, best_val),
            jnp.where(better, e, best_epoch), e + 1), score

  init_params = learner.model(state, hparams)
  carry = (state, init_params, jnp.asarray(-jnp.inf), jnp.asarray(0), jnp.asarray(0))
  (_, best, best_val, best_epoch, _), history = jax.lax.scan(
      epoch, carry, jax.random.split(key_run, config.num_epochs))
  return AudioFitResult(best, best_epoch, best_val, history)
