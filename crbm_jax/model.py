"""The conditional RBM of Eq. 2 (Mandel, Eck & Bengio, ISMIR 2010), as pure functions.

    p(v, h | a) = exp(vᵀ W h + vᵀ W_a a + bᵀ v + cᵀ h) / Z(a)

``a`` is a one-hot code of auxiliary entities (user, artist, track, clip, ...). We never
form it: each observation carries ``aux [G]`` integer row indices into ``W_aux``, one per
auxiliary group, ``-1`` meaning absent, and ``W_aux`` rows are gathered and summed. Note the
paper writes ``W_a`` as [num_visible, num_aux] with a column per entity; we store its
transpose ``W_aux [num_aux, num_visible]`` so an entity's tag biases are one contiguous row.

Shapes: N observations, V visible units (tags), H hidden units, G auxiliary groups.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from crbm_jax.types import Array, PRNGKey


class CRBMParams(NamedTuple):
  """Parameters of a conditional RBM.

  Attributes:
    W: [V, H] visible-hidden weights.
    W_aux: [num_aux, V] auxiliary biases, one row per auxiliary entity (Wᵀ_a in Eq. 2).
    b: [V] visible biases.
    c: [H] hidden biases.
  """
  W: Array
  W_aux: Array
  b: Array
  c: Array


def init_params(rng_key: PRNGKey, num_visible: int, num_hidden: int, num_aux: int,
                weight_scale: float = 0.01, visible_mean: Optional[Array] = None,
                dtype=jnp.float32) -> CRBMParams:
  """Small random ``W``, zero ``W_aux`` and ``c``; ``b`` = logit of the mean of each tag.

  Args:
    rng_key: PRNG key.
    visible_mean: [V] optional training-set frequency of each tag (Hinton's guide:
      b_i = log(p_i / (1 - p_i))), clipped to [1e-3, 1 - 1e-3].
  """
  W = weight_scale * jax.random.normal(rng_key, (num_visible, num_hidden), dtype)
  if visible_mean is None:
    b = jnp.zeros((num_visible,), dtype)
  else:
    p = jnp.clip(jnp.asarray(visible_mean, dtype), 1e-3, 1 - 1e-3)
    b = jnp.log(p) - jnp.log1p(-p)
  return CRBMParams(W=W, W_aux=jnp.zeros((num_aux, num_visible), dtype), b=b,
                    c=jnp.zeros((num_hidden,), dtype))


def aux_bias(W_aux: Array, aux: Array) -> Array:
  """Sum of the auxiliary rows of each observation, ``W_a a`` of Eq. 2.

  Args:
    W_aux: [num_aux, V].
    aux: [N, G] int row indices into ``W_aux``; negative entries mean "absent".
  Returns:
    [N, V]; zeros when G == 0.
  """
  if aux.shape[-1] == 0:
    return jnp.zeros(aux.shape[:-1] + (W_aux.shape[-1],), W_aux.dtype)
  present = aux >= 0
  rows = jnp.take(W_aux, jnp.where(present, aux, 0), axis=0)  # [N, G, V]
  return jnp.sum(jnp.where(present[..., None], rows, 0.0), axis=-2)


def visible_bias(params: CRBMParams, aux: Array) -> Array:
  """Effective visible bias ``b + W_a a``: [N, V]."""
  return params.b + aux_bias(params.W_aux, aux)


def hidden_preactivation(params: CRBMParams, v: Array) -> Array:
  """``c + vᵀ W``: [N, H]."""
  return v @ params.W + params.c


def hidden_given_visible(params: CRBMParams, v: Array) -> Array:
  """p(h_j = 1 | v) = σ(c_j + Σ_i v_i W_ij): [N, H]. (The auxiliary input acts on v only.)"""
  return jax.nn.sigmoid(hidden_preactivation(params, v))


def visible_given_hidden(params: CRBMParams, h: Array, aux: Array) -> Array:
  """p(v_i = 1 | h, a) = σ(b_i + (W_a a)_i + Σ_j W_ij h_j): [N, V]."""
  return jax.nn.sigmoid(h @ params.W.T + visible_bias(params, aux))


def energy(params: CRBMParams, v: Array, h: Array, aux: Array) -> Array:
  """E(v, h; a) = -(vᵀWh + vᵀW_a a + bᵀv + cᵀh), so p(v, h | a) ∝ exp(-E): [N]."""
  interaction = jnp.sum((v @ params.W) * h, axis=-1)
  return -(interaction + jnp.sum(v * visible_bias(params, aux), axis=-1) + h @ params.c)


def free_energy(params: CRBMParams, v: Array, aux: Array) -> Array:
  """F(v; a) = -vᵀ(b + W_a a) - Σ_j softplus(c_j + vᵀW_:j), so p(v | a) ∝ exp(-F): [N]."""
  visible_term = jnp.sum(v * visible_bias(params, aux), axis=-1)
  return -visible_term - jnp.sum(jax.nn.softplus(hidden_preactivation(params, v)), axis=-1)


class GibbsState(NamedTuple):
  """State of a block Gibbs chain: the visible sample and its hidden probabilities."""
  v: Array        # [N, V]
  h_prob: Array   # [N, H]  p(h | v)


def gibbs_init(params: CRBMParams, v: Array) -> GibbsState:
  return GibbsState(v=v, h_prob=hidden_given_visible(params, v))


def gibbs_step(rng_key: PRNGKey, params: CRBMParams, state: GibbsState,
               vis_bias: Array) -> GibbsState:
  """One block Gibbs sweep h ~ p(h|v), v ~ p(v|h,a).

  Args:
    vis_bias: [N, V] precomputed ``visible_bias(params, aux)`` (fixed along a chain).
  """
  key_h, key_v = jax.random.split(rng_key)
  h = jax.random.bernoulli(key_h, state.h_prob).astype(state.v.dtype)
  v_prob = jax.nn.sigmoid(h @ params.W.T + vis_bias)
  v = jax.random.bernoulli(key_v, v_prob).astype(state.v.dtype)
  return GibbsState(v=v, h_prob=hidden_given_visible(params, v))


def run_gibbs(rng_key: PRNGKey, params: CRBMParams, v0: Array, aux: Array,
              num_steps: int) -> GibbsState:
  """``num_steps`` block Gibbs sweeps from ``v0`` with ``lax.scan``."""
  vis_bias = visible_bias(params, aux)
  keys = jax.random.split(rng_key, num_steps)

  def body(state, key):
    return gibbs_step(key, params, state, vis_bias), None

  state, _ = jax.lax.scan(body, gibbs_init(params, v0), keys)
  return state


def sample_visible(rng_key: PRNGKey, params: CRBMParams, aux: Array, num_samples: int,
                   burn_in: int = 100, thin: int = 1) -> Array:
  """Draw ``num_samples`` visible vectors from p(v | a) for each aux row.

  Each aux row runs one chain, started from ``σ(b + W_a a)`` samples, that is
  burned in for ``burn_in`` sweeps and then recorded every ``thin`` sweeps.

  Args:
    aux: [M, G] auxiliary rows to condition on (use -1 to leave a group out, e.g. to
      factor out the user).
  Returns:
    [num_samples, M, V] samples in {0, 1}.
  """
  key_init, key_burn, key_run = jax.random.split(rng_key, 3)
  vis_bias = visible_bias(params, aux)
  v0 = jax.random.bernoulli(key_init, jax.nn.sigmoid(vis_bias)).astype(params.W.dtype)

  def sweep(state, key):
    return gibbs_step(key, params, state, vis_bias), None

  state, _ = jax.lax.scan(sweep, gibbs_init(params, v0), jax.random.split(key_burn, burn_in))

  def record(state, key):
    state, _ = jax.lax.scan(sweep, state, jax.random.split(key, thin))
    return state, state.v

  _, samples = jax.lax.scan(record, state, jax.random.split(key_run, num_samples))
  return samples


def visible_marginals_mean_field(params: CRBMParams, aux: Array, num_iters: int = 50,
                                 damping: float = 0.5) -> Array:
  """Mean-field (naive variational) estimate of p(v_i = 1 | a): [M, V].

  Fixed point of m_v = σ(b + W_a a + W σ(c + Wᵀ m_v)); a deterministic alternative to
  averaging ``sample_visible`` draws.
  """
  vis_bias = visible_bias(params, aux)
  m0 = jax.nn.sigmoid(vis_bias)

  def body(m, _):
    m_new = jax.nn.sigmoid(vis_bias + hidden_given_visible(params, m) @ params.W.T)
    return damping * m + (1 - damping) * m_new, None

  m, _ = jax.lax.scan(body, m0, None, length=num_iters)
  return m
