"""Exact per-bit pseudo-likelihood of Eq. 3 and the factored (independent-tag) baseline.

For every observation v and bit i,

    log p(v_i | v_\\i, a) = log σ(F(ṽ⁽ⁱ⁾; a) - F(v; a)),

where ṽ⁽ⁱ⁾ is v with bit i flipped and F the free energy. Flipping bit i changes the
visible term by s_i (b + W_a a)_i with s_i = 1 - 2 v_i, and shifts every hidden
pre-activation x_j = c_j + vᵀW_:j by s_i W_ij, so

    F(ṽ) - F(v) = -s_i (b + W_a a)_i - Σ_j [softplus(x_j + s_i W_ij) - softplus(x_j)].

Everything is computed for all N x V flips at once (chunked over observations so memory
stays at chunk x V x H inside one fused reduction), with no sampling: this is not the
one-random-bit estimate of scikit-learn's ``BernoulliRBM.score_samples``.

The softplus difference has the exact closed form log t_ij with
t_ij = σ(-x_j) + σ(x_j) e^{s_i W_ij}, a convex combination of 1 and e^{s_i W_ij}, so
|log t_ij| <= |W_ij|. That lets the fast path multiply ``_BLOCK`` consecutive factors
before taking one logarithm (no float32 overflow or underflow while max|W| <= 80/_BLOCK),
which makes the exact pseudo-likelihood about 6x faster on a CPU than evaluating two
softplus per (n, i, j). Larger weights fall back to one logarithm per factor (max|W| <= 80)
and then to the softplus form, which is stable for any magnitude.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from crbm_jax.model import CRBMParams, visible_bias
from crbm_jax.types import Array

_BLOCK = 8
_LOG_LIMIT = 80.0  # |log t| <= |W| and float32 holds e^±87


def _flip_delta_softplus(x: Array, W: Array, sign: Array) -> Array:
  """Σ_j softplus(x_j + s_i W_ij) - softplus(x_j): [n, V] (stable for any magnitude)."""
  shifted = x[:, None, :] + sign[:, :, None] * W[None, :, :]
  return jnp.sum(jax.nn.softplus(shifted) - jax.nn.softplus(x)[:, None, :], axis=-1)


def _flip_delta_product(x: Array, W: Array, v: Array, block: int) -> Array:
  """Same as ``_flip_delta_softplus`` as Σ log Π_block t_ij; needs max|W| <= 80 / block."""
  num_hidden = W.shape[1]
  pad = (-num_hidden) % block  # padded units have W = 0, so t = 1 exactly
  W = jnp.pad(W, ((0, 0), (0, pad)))
  x = jnp.pad(x, ((0, 0), (0, pad)))
  p_on, p_off = jax.nn.sigmoid(x)[:, None, :], jax.nn.sigmoid(-x)[:, None, :]  # [n, 1, H]
  exp_w = jnp.where(v[:, :, None] > 0, jnp.exp(-W)[None], jnp.exp(W)[None])   # [n, V, H]
  t = p_off + p_on * exp_w
  t = t.reshape(t.shape[0], t.shape[1], -1, block)
  return jnp.sum(jnp.log(jnp.prod(t, axis=-1)), axis=-1)


def _pll_chunk(params: CRBMParams, v: Array, aux: Array) -> Array:
  vis_bias = visible_bias(params, aux)                          # [n, V]
  x = v @ params.W + params.c                                   # [n, H]
  sign = 1.0 - 2.0 * v                                          # +1: 0 -> 1, -1: 1 -> 0
  max_w = jnp.max(jnp.abs(params.W))
  branch = jnp.where(max_w <= _LOG_LIMIT / _BLOCK, 0, jnp.where(max_w <= _LOG_LIMIT, 1, 2))
  delta_hidden = jax.lax.switch(branch, [
      lambda: _flip_delta_product(x, params.W, v, _BLOCK),
      lambda: _flip_delta_product(x, params.W, v, 1),
      lambda: _flip_delta_softplus(x, params.W, sign)])
  delta_free_energy = -sign * vis_bias - delta_hidden          # F(ṽ) - F(v)
  return jax.nn.log_sigmoid(delta_free_energy)


def pseudo_log_likelihood(params: CRBMParams, v: Array, aux: Array,
                          chunk_size: int = 64) -> Array:
  """Exact log p(v_i | v_\\i, a) for every bit of every observation (Eq. 3).

  Args:
    params: CRBM parameters.
    v: [N, V] binary observations.
    aux: [N, G] auxiliary row indices (-1 = absent).
    chunk_size: observations per fused chunk (memory ~ chunk_size x V x H floats).
  Returns:
    [N, V] per-bit log conditional probabilities.
  """
  v = jnp.asarray(v, params.W.dtype)
  n = v.shape[0]
  if n <= chunk_size:
    return _pll_chunk(params, v, aux)
  num_chunks = -(-n // chunk_size)
  pad = num_chunks * chunk_size - n
  v_pad = jnp.pad(v, ((0, pad), (0, 0)))
  aux_pad = jnp.pad(aux, ((0, pad), (0, 0)), constant_values=-1)
  out = jax.lax.map(
      lambda xs: _pll_chunk(params, xs[0], xs[1]),
      (v_pad.reshape(num_chunks, chunk_size, -1),
       aux_pad.reshape(num_chunks, chunk_size, aux.shape[-1])))
  return out.reshape(num_chunks * chunk_size, -1)[:n]


def balanced_pseudo_likelihood(per_bit: Array, v: Array,
                               weights: Optional[Array] = None) -> Array:
  """The paper's figure: mean log PL over the 1 bits and over the 0 bits, averaged.

  Args:
    per_bit: [N, V] output of ``pseudo_log_likelihood`` (or of the baseline).
    v: [N, V] the observations.
    weights: optional [N] observation weights (0 excludes an observation, e.g. padding).
  Returns:
    scalar.
  """
  ones = jnp.asarray(v) > 0
  w = jnp.ones(per_bit.shape[:1], per_bit.dtype) if weights is None else weights
  w_ones = ones * w[:, None]
  w_zeros = (~ones) * w[:, None]
  mean_ones = jnp.sum(per_bit * w_ones) / jnp.maximum(jnp.sum(w_ones), 1.0)
  mean_zeros = jnp.sum(per_bit * w_zeros) / jnp.maximum(jnp.sum(w_zeros), 1.0)
  return 0.5 * (mean_ones + mean_zeros)


class FactoredModel(NamedTuple):
  """Independent Bernoulli per tag: log p_i and log(1 - p_i), each [V]."""
  log_p: Array
  log_1mp: Array


def fit_factored(v: Array, weights: Optional[Array] = None,
                 pseudo_count: float = 1.0) -> FactoredModel:
  """Estimate each tag's probability from training data with add-α smoothing.

  p_i = (Σ_n w_n v_ni + α) / (Σ_n w_n + 2α), α = ``pseudo_count`` (Laplace's rule for
  α = 1), so a tag never seen in training still gets a finite log-probability.
  """
  v = jnp.asarray(v, jnp.float32)
  w = jnp.ones(v.shape[:1], v.dtype) if weights is None else weights
  p = (w @ v + pseudo_count) / (jnp.sum(w) + 2 * pseudo_count)
  return FactoredModel(log_p=jnp.log(p), log_1mp=jnp.log1p(-p))


def factored_log_likelihood(model: FactoredModel, v: Array) -> Array:
  """Per-bit log p(v_i) under the factored model (= its pseudo-likelihood): [N, V]."""
  v = jnp.asarray(v, model.log_p.dtype)
  return v * model.log_p + (1.0 - v) * model.log_1mp
