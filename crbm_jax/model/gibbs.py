"""Block Gibbs sampling of the conditional RBM: one tempered sweep, chains, mean field.

Every sampler of the package (``sample_visible``, CD-k, PCD, parallel tempering and AIS)
advances its states with ``gibbs_sweep``, one block sweep of the tempered distribution

    p_β(v, h | a) ∝ exp((1 - β) b_Aᵀv + β (vᵀ(b + W_a a) + vᵀWh + cᵀh)),

whose conditionals are p(h_j = 1 | v) = σ(β x_j) with x = c + vᵀW (``hidden_probs``) and
p(v_i = 1 | h, a) = σ((1 - β) b_A,i + β (b + W_a a + W h)_i). With ``base=None`` the base
bias b_A is the visible bias itself, so only the interactions are tempered (parallel
tempering: every rung keeps the conditioning a); AIS passes its own base. β = 1 is the
model.

Hidden units are sampled prefix-stably (``sample_hidden``): a model padded with masked
hidden units draws the same numbers for its real units as the unpadded model, and every
model of a block that shares a key shares its noise.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import jax
import jax.numpy as jnp

from crbm_jax.model.crbm import CRBMParams, hidden_given_visible, visible_bias
from crbm_jax.types import Array, PRNGKey

Beta = Union[float, Array]


def hidden_probs(params: CRBMParams, v: Array, beta: Beta = 1.0,
                 hidden_mask: Optional[Array] = None) -> Array:
  """p_β(h_j = 1 | v) = σ(β (c_j + Σ_i v_i W_ij)): [..., H]; masked units are 0."""
  x = v @ params.W + params.c
  prob = jax.nn.sigmoid(x if _is_one(beta) else beta * x)
  return prob if hidden_mask is None else prob * hidden_mask


def sample_hidden(rng_key: PRNGKey, h_prob: Array) -> Array:
  """h ~ Bernoulli(h_prob) for h_prob [..., H], prefix-stable in H.

  The uniforms are drawn with the hidden axis leading, [H, ...], and moved last: JAX's
  counter-based PRNG gives the first h rows the same numbers whatever H is.
  """
  u = jax.random.uniform(rng_key, h_prob.shape[-1:] + h_prob.shape[:-1], h_prob.dtype)
  return (jnp.moveaxis(u, 0, -1) < h_prob).astype(h_prob.dtype)


def visible_logits(params: CRBMParams, h: Array, vis_bias: Array, beta: Beta = 1.0,
                   base: Optional[Array] = None) -> Array:
  """Logits of p_β(v | h, a): (1 - β) base + β (vis_bias + h Wᵀ); base None: vis_bias +
  β h Wᵀ (only the interactions tempered)."""
  field = h @ params.W.T
  if _is_one(beta):
    return vis_bias + field
  if base is None:
    return vis_bias + beta * field
  return (1.0 - beta) * base + beta * (vis_bias + field)


def gibbs_sweep(rng_key: PRNGKey, params: CRBMParams, h_prob: Array, vis_bias: Array,
                beta: Beta = 1.0, base: Optional[Array] = None,
                sample: bool = True) -> Tuple[Array, Array]:
  """One block Gibbs sweep of p_β: h ~ Bernoulli(h_prob), then v ~ p_β(v | h, a).

  Args:
    h_prob: [..., H] p_β(h | v) of the current visible state (``hidden_probs``).
    vis_bias: [..., V] the visible bias b + W_a a, fixed along a chain.
    beta: inverse temperature (a float, or an array broadcasting against the states).
    base: base logits b_A (AIS); None tempers the interactions only.
    sample: False returns the visible probabilities in place of a sample (the final
      reconstruction of CD-k, which is then not drawn at all).
  Returns:
    (v [..., V] in {0, 1} (or the probabilities), p_β(v | h, a) [..., V]).
  """
  key_h, key_v = jax.random.split(rng_key)
  h = sample_hidden(key_h, h_prob)
  v_prob = jax.nn.sigmoid(visible_logits(params, h, vis_bias, beta, base))
  if not sample:
    return v_prob, v_prob
  return jax.random.bernoulli(key_v, v_prob).astype(v_prob.dtype), v_prob


def _is_one(beta: Beta) -> bool:
  return isinstance(beta, (int, float)) and beta == 1.0


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
  v, _ = gibbs_sweep(rng_key, params, state.h_prob, vis_bias)
  return GibbsState(v=v, h_prob=hidden_given_visible(params, v))


def run_gibbs(rng_key: PRNGKey, params: CRBMParams, v0: Array, aux: Array,
              num_steps: int) -> GibbsState:
  """``num_steps`` block Gibbs sweeps from ``v0`` with ``lax.scan``."""
  vis_bias = visible_bias(params, aux)

  def body(state, key):
    return gibbs_step(key, params, state, vis_bias), None

  state, _ = jax.lax.scan(body, gibbs_init(params, v0), jax.random.split(rng_key, num_steps))
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
