"""The conditional RBM conditioned on real-valued inputs (audio features) as well as on
one-hot auxiliary entities: the autotagger of Mandel, Pascanu, Larochelle & Bengio,
"Autotagging music with conditional restricted Boltzmann machines" (2011).

    p(v, h | x, a) = exp(vᵀWh + vᵀ(b + W_a a + W_xᵀ x) + hᵀ(c + U_xᵀ x)) / Z(x, a)

``x`` [F] are standardised dense features (audio); they shift the visible bias through
``W_x`` [F, V] and, optionally, the hidden bias through ``U_x`` [F, H] (``U_x`` is [F, 0]
when the hidden bias is not conditioned). ``a`` are the package's one-hot auxiliary rows
(``aux`` [N, G] indices into ``W_aux``, -1 absent), handled as in ``model.crbm``.

Given (x, a) the model is an ordinary RBM whose biases differ per observation, so every
conditional of ``model.crbm`` / ``model.gibbs`` applies with the per-row biases
(``row_biases``). Because H is small for an autotagger, the quantities the learners and
the predictors need are also computed EXACTLY by summing over the 2^H hidden states
(``exact_marginals``, ``log_likelihood``):

    p(v_U, h | v_O, x, a) ∝ exp(v_Oᵀ(b' + W_O h) + c'ᵀh) Π_{i∈U} (1 + e^{b'_i + W_i h})

with b', c' the per-row biases, O the observed (clamped) tags and U the rest. Summing out
v_U gives p(h | v_O, x, a) over the 2^H states; p(v_i = 1 | v_O, x, a) = Σ_h p(h | v_O)
σ(b'_i + W_i h) for i ∈ U and v_i exactly for i ∈ O. With O empty this is autotagging,
p(tag | audio); with O the tags someone has given, it is tag completion. ``mean_field``
and ``gibbs_marginals`` are the approximate alternatives (any H).
"""
from __future__ import annotations

import itertools
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.model.crbm import CRBMParams, aux_bias, init_params
from crbm_jax.model.gibbs import sample_hidden
from crbm_jax.model.pseudolikelihood import _flip_delta_softplus
from crbm_jax.types import Array, PRNGKey

MAX_EXACT_HIDDEN = 14  # 2^14 hidden states: exact sums stay cheap below this


class AudioCRBMParams(NamedTuple):
  """Parameters of the feature-conditioned CRBM.

  crbm: the package's CRBMParams (W [V, H], W_aux [A, V], b [V], c [H]).
  W_x: [F, V] feature -> visible-bias weights.
  U_x: [F, H] feature -> hidden-bias weights, or [F, 0] when the hidden bias is not
    conditioned on the features.
  """
  crbm: CRBMParams
  W_x: Array
  U_x: Array


def init_audio_params(rng_key: PRNGKey, num_visible: int, num_hidden: int, num_aux: int,
                      num_features: int, hidden_input: bool = False,
                      weight_scale: float = 0.01, visible_mean: Optional[Array] = None,
                      dtype=jnp.float32) -> AudioCRBMParams:
  """``model.crbm.init_params`` for the tag part (same W for the same key), zero W_x and
  U_x (the model starts as the unconditioned CRBM)."""
  crbm = init_params(rng_key, num_visible, num_hidden, num_aux, weight_scale,
                     visible_mean=visible_mean, dtype=dtype)
  return AudioCRBMParams(crbm, jnp.zeros((num_features, num_visible), dtype),
                         jnp.zeros((num_features, num_hidden if hidden_input else 0), dtype))


def hidden_input_bias(params: AudioCRBMParams, x: Array) -> Array:
  """x U_x: [N, H] (zeros when the hidden bias is not conditioned)."""
  if params.U_x.shape[-1] == 0:
    return jnp.zeros(x.shape[:-1] + params.crbm.c.shape, params.crbm.c.dtype)
  return x @ params.U_x


def row_biases(params: AudioCRBMParams, x: Array, aux: Array,
               aux_term: Optional[Array] = None) -> Tuple[Array, Array]:
  """Per-observation biases (b + W_a a + x W_x [N, V], c + x U_x [N, H]).

  aux_term: [N, V] W_a a if already known (then ``params.crbm.W_aux`` is not read).
  """
  p = params.crbm
  if aux_term is None:
    aux_term = aux_bias(p.W_aux, aux)
  return p.b + aux_term + x @ params.W_x, p.c + hidden_input_bias(params, x)


def row_view(params: AudioCRBMParams, hid_bias: Array) -> CRBMParams:
  """A CRBMParams whose ``c`` is the per-row hidden bias [N, H]: the package's Gibbs
  functions (``hidden_probs``, ``gibbs_sweep``) then sample the conditioned model."""
  return params.crbm._replace(c=hid_bias)


def free_energy(params: AudioCRBMParams, v: Array, x: Array, aux: Array) -> Array:
  """F(v; x, a) = -vᵀb' - Σ_j softplus(c'_j + vᵀW_:j): [N]."""
  vb, hb = row_biases(params, x, aux)
  return -jnp.sum(v * vb, -1) - jnp.sum(jax.nn.softplus(v @ params.crbm.W + hb), -1)


def pseudo_log_likelihood(params: AudioCRBMParams, v: Array, x: Array,
                          aux: Array) -> Array:
  """Exact log p(v_i | v_\\i, x, a) for every bit: [N, V] (Eq. 3 with per-row biases;
  the stable softplus form of ``model.pseudolikelihood``)."""
  vb, hb = row_biases(params, x, aux)
  v = jnp.asarray(v, vb.dtype)
  sign = 1.0 - 2.0 * v
  xh = v @ params.crbm.W + hb
  return jax.nn.log_sigmoid(-sign * vb - _flip_delta_softplus(xh, params.crbm.W, sign))


def hidden_states(num_hidden: int, dtype=jnp.float32) -> Array:
  """[2^H, H] every binary hidden configuration."""
  if num_hidden > MAX_EXACT_HIDDEN:
    raise ValueError(f"exact sums over 2^{num_hidden} hidden states are too large "
                     f"(at most {MAX_EXACT_HIDDEN} hidden units); use mean field or Gibbs")
  return jnp.asarray(np.array(list(itertools.product([0, 1], repeat=num_hidden)),
                              np.float32).reshape(-1, num_hidden), dtype)


def _hidden_log_weights(W: Array, vb: Array, hb: Array, v: Array, observed: Array,
                        hs: Array) -> Tuple[Array, Array]:
  """log of the unnormalised p(h | v_O, x, a) for every state hs [K, H]: [N, K], and the
  visible logits b' + W h [N, K, V]."""
  logits = vb[:, None, :] + (hs @ W.T)[None]                          # [N, K, V]
  clamped = jnp.sum(observed[:, None, :] * v[:, None, :] * logits, -1)
  free = jnp.sum((1.0 - observed)[:, None, :] * jax.nn.softplus(logits), -1)
  return clamped + free + hb @ hs.T, logits


def exact_marginals(params: AudioCRBMParams, x: Array, aux: Array,
                    v: Optional[Array] = None, observed: Optional[Array] = None,
                    chunk_size: int = 256) -> Array:
  """Exact p(v_i = 1 | v_O, x, a) by summing over the 2^H hidden states: [N, V].

  Args:
    x: [N, F] standardised features; aux: [N, G] aux rows (-1 absent: e.g. the user
      factored out, or a clip nobody has tagged).
    v: [N, V] known tag values (read where ``observed``); observed: [N, V] 1 where the
      tag is known (clamped: its output is v exactly). None: nothing is known
      (autotagging).
  """
  vb, hb = row_biases(params, x, aux)
  if observed is None:
    observed = jnp.zeros_like(vb)
    v = jnp.zeros_like(vb)
  observed = jnp.asarray(observed, vb.dtype)
  v = jnp.asarray(v, vb.dtype)
  hs = hidden_states(params.crbm.W.shape[1], vb.dtype)
  W = params.crbm.W

  def chunk(args):
    vb_c, hb_c, v_c, o_c = args
    logw, logits = _hidden_log_weights(W, vb_c, hb_c, v_c, o_c, hs)
    post = jax.nn.softmax(logw, axis=-1)                              # [n, K]
    p = jnp.einsum("nk,nkv->nv", post, jax.nn.sigmoid(logits))
    return jnp.where(o_c > 0, v_c, p)

  return _map_rows(chunk, (vb, hb, v, observed), chunk_size)


def log_partition(params: AudioCRBMParams, vb: Array, hb: Array) -> Array:
  """log Z(x, a) from the per-row biases (exact over the 2^H hidden states): [N]."""
  hs = hidden_states(params.crbm.W.shape[1], vb.dtype)
  logits = vb[:, None, :] + (hs @ params.crbm.W.T)[None]
  return jax.nn.logsumexp(jnp.sum(jax.nn.softplus(logits), -1) + hb @ hs.T, axis=-1)


def log_likelihood_from_biases(W: Array, v: Array, vb: Array, hb: Array,
                               hs: Array) -> Array:
  """Exact log p(v | x, a) [N] given the per-row biases: -F(v) - log Z (differentiable
  in W and the biases; the discriminative objective)."""
  neg_free = jnp.sum(v * vb, -1) + jnp.sum(jax.nn.softplus(v @ W + hb), -1)
  logits = vb[:, None, :] + (hs @ W.T)[None]
  log_z = jax.nn.logsumexp(jnp.sum(jax.nn.softplus(logits), -1) + hb @ hs.T, axis=-1)
  return neg_free - log_z


def log_likelihood(params: AudioCRBMParams, v: Array, x: Array, aux: Array) -> Array:
  """Exact log p(v | x, a): [N]."""
  vb, hb = row_biases(params, x, aux)
  hs = hidden_states(params.crbm.W.shape[1], vb.dtype)
  return log_likelihood_from_biases(params.crbm.W, jnp.asarray(v, vb.dtype), vb, hb, hs)


def mean_field(params: AudioCRBMParams, x: Array, aux: Array, v: Optional[Array] = None,
               observed: Optional[Array] = None, num_iters: int = 50,
               damping: float = 0.5) -> Array:
  """Mean-field estimate of p(v_i = 1 | v_O, x, a): [N, V]; observed bits are clamped
  to v at every iteration (fixed point of m = σ(b' + W σ(c' + Wᵀ m)) on the rest)."""
  vb, hb = row_biases(params, x, aux)
  W = params.crbm.W
  if observed is None:
    observed, v = jnp.zeros_like(vb), jnp.zeros_like(vb)
  observed, v = jnp.asarray(observed, vb.dtype), jnp.asarray(v, vb.dtype)
  clamp = lambda m: jnp.where(observed > 0, v, m)

  def body(m, _):
    m_new = clamp(jax.nn.sigmoid(vb + jax.nn.sigmoid(m @ W + hb) @ W.T))
    return damping * m + (1 - damping) * m_new, None

  m, _ = jax.lax.scan(body, clamp(jax.nn.sigmoid(vb)), None, length=num_iters)
  return m


def gibbs_marginals(rng_key: PRNGKey, params: AudioCRBMParams, x: Array, aux: Array,
                    v: Optional[Array] = None, observed: Optional[Array] = None,
                    num_samples: int = 100, burn_in: int = 50) -> Array:
  """Monte-Carlo estimate of p(v_i = 1 | v_O, x, a): [N, V], the mean of the Rao-
  Blackwellised p(v | h) over ``num_samples`` block-Gibbs sweeps after ``burn_in``, one
  chain per row, observed bits clamped."""
  vb, hb = row_biases(params, x, aux)
  W = params.crbm.W
  if observed is None:
    observed, v = jnp.zeros_like(vb), jnp.zeros_like(vb)
  observed, v = jnp.asarray(observed, vb.dtype), jnp.asarray(v, vb.dtype)
  key_init, key_run = jax.random.split(rng_key)
  v0 = jnp.where(observed > 0, v,
                 jax.random.bernoulli(key_init, jax.nn.sigmoid(vb)).astype(vb.dtype))

  def sweep(state, key):
    vs, total = state
    key_h, key_v = jax.random.split(key)
    h = sample_hidden(key_h, jax.nn.sigmoid(vs @ W + hb))
    p = jax.nn.sigmoid(vb + h @ W.T)
    vs = jnp.where(observed > 0, v, jax.random.bernoulli(key_v, p).astype(vb.dtype))
    return (vs, total + p), None

  keys = jax.random.split(key_run, burn_in + num_samples)
  (vs, _), _ = jax.lax.scan(sweep, (v0, jnp.zeros_like(vb)), keys[:burn_in])
  (_, total), _ = jax.lax.scan(sweep, (vs, jnp.zeros_like(vb)), keys[burn_in:])
  return jnp.where(observed > 0, v, total / num_samples)


def _map_rows(fn, arrays, chunk_size: int) -> Array:
  """fn over row chunks of the [N, ...] arrays with ``lax.map``; [N, V]."""
  n = arrays[0].shape[0]
  chunk_size = max(1, min(chunk_size, n))
  pad = (-n) % chunk_size
  padded = [jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1)) for a in arrays]
  split = [a.reshape((-1, chunk_size) + a.shape[1:]) for a in padded]
  out = jax.lax.map(fn, tuple(split))
  return out.reshape((-1,) + out.shape[2:])[:n]
