"""Contrastive learning of W, b, c: the gradient, the optimiser step, the CD-k sampler.

Every learner estimates the log-likelihood gradient as data statistics minus the
statistics of negative particles; they differ only in where the particles come from (a
``Sampler``): CD-k restarts k Gibbs sweeps at the data (Hinton 2002), PCD and parallel
tempering keep persistent chains (``crbm_jax.learn.persistent``).

Updates. ``W, b, c`` follow optax SGD with momentum, plus weight decay on ``W``; W_aux
follows plain SGD with a lazy L1 prox (``crbm_jax.learn.lazy_l1``).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax

from crbm_jax.learn.base import HParams, TrainConfig
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.model.gibbs import gibbs_sweep, hidden_probs
from crbm_jax.types import Array


def make_optimizer(hparams: HParams) -> optax.GradientTransformation:
  # Built inside the traced function from traced scalars: the state's structure does not
  # depend on the values, so changing them never recompiles.
  return optax.chain(
      optax.add_decayed_weights(hparams.weight_decay, mask=(True, False, False)),
      optax.sgd(hparams.learning_rate, momentum=hparams.momentum))


def init_optimizer(params: CRBMParams, hparams: HParams) -> optax.OptState:
  return make_optimizer(hparams).init((params.W, params.b, params.c))


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


class Gradients(NamedTuple):
  """A minibatch's contrastive statistics (ascent directions).

  W, b, c: the log-likelihood gradient estimates of W [V, H], b [V], c [H].
  dvis: [B, V] each observation's share of the visible-bias gradient (W_aux's gradient
    flows through it); recon_error: mean squared data − particle difference per bit.
  """
  W: Array
  b: Array
  c: Array
  dvis: Array
  recon_error: Array


def contrastive_grads(v0: Array, h0: Array, v_neg: Array, h_neg: Array,
                      weight: Array) -> Gradients:
  """Data statistics minus the mean over C negative particles per observation.

  Args:
    v0: [B, V] data; h0: [B, H] p(h | v0).
    v_neg: [C, B, V] negative particles (CD-k: C = 1); h_neg: [C, B, H] p(h | v_neg).
    weight: [B] observation weights normalised to sum to 1 (padding 0).
  """
  num_visible, num_chains = v0.shape[-1], v_neg.shape[0]
  w = weight[:, None]
  neg_w = v_neg * (-w / num_chains)
  # Both phases in ONE product: [V, B + C·B] x [B + C·B, H] (data rows weighted +w,
  # particles -w/C), one matmul instead of two and a subtraction.
  grad_W = jnp.concatenate([v0 * w, neg_w.reshape(-1, num_visible)]).T @ jnp.concatenate(
      [h0, h_neg.reshape(-1, h_neg.shape[-1])])
  v_neg_mean = jnp.mean(v_neg, axis=0)
  dvis = (v0 - v_neg_mean) * w
  return Gradients(grad_W, jnp.sum(dvis, axis=0), weight @ (h0 - jnp.mean(h_neg, axis=0)),
                   dvis, jnp.sum(w * (v0 - v_neg_mean) ** 2) / num_visible)


class Sampler(NamedTuple):
  """Where a learner's negative particles come from.

  init: (rng_key, train: Dataset) -> chains (a pytree; () when nothing persists).
  negative: (rng_key, params, chains, batch, h0, vis_bias, hidden_mask) ->
    (chains, v_neg [C, B, V], h_neg [C, B, H], swap_rate).
  """
  init: Callable[..., Any]
  negative: Callable[..., Tuple[Any, Array, Array, Array]]


def cd_sampler(config: TrainConfig) -> Sampler:
  """CD-k: ``config.cd_k`` block Gibbs sweeps started at the data; the last visible
  reconstruction is its probabilities unless ``config.sample_last_visible``."""

  def init(rng_key, train):
    del rng_key, train
    return ()

  def negative(rng_key, params, chains, batch, h0, vis_bias, hidden_mask):
    h_prob, v = h0, batch.v
    for step, key in enumerate(jax.random.split(rng_key, config.cd_k)):  # small: unrolled
      last = step == config.cd_k - 1
      v, _ = gibbs_sweep(key, params, h_prob, vis_bias,
                         sample=config.sample_last_visible or not last)
      h_prob = hidden_probs(params, v, hidden_mask=hidden_mask)
    return chains, v[None], h_prob[None], jnp.zeros((), v.dtype)

  return Sampler(init, negative)
