"""The conditional RBM of Eq. 2 (Mandel, Eck & Bengio, ISMIR 2010), as pure functions.

    p(v, h | a) = exp(vᵀ W h + vᵀ W_a a + bᵀ v + cᵀ h) / Z(a)

``a`` is a one-hot code of auxiliary entities (user, artist, track, clip, ...). We never
form it: each observation carries ``aux [G]`` integer row indices into ``W_aux``, one per
auxiliary group, ``-1`` meaning absent, and ``W_aux`` rows are gathered and summed. Note the
paper writes ``W_a`` as [num_visible, num_aux] with a column per entity; we store its
transpose ``W_aux [num_aux, num_visible]`` so an entity's tag biases are one contiguous row.

Shapes: N observations, V visible units (tags), H hidden units, G auxiliary groups. A
block of M models trained together (``crbm_jax.learn.block``) holds ``W_aux`` as
[num_aux, M, V]; ``aux_bias`` accepts any such trailing model axes.
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

  ``W`` is drawn as ``normal(key, (H, V))ᵀ``: JAX's counter-based PRNG gives the same
  numbers for a prefix of the leading axis whatever its length, so a model padded to more
  hidden units (masked to 0) starts exactly where the unpadded model starts.

  Args:
    rng_key: PRNG key.
    visible_mean: [V] optional training-set frequency of each tag (Hinton's guide:
      b_i = log(p_i / (1 - p_i))), clipped to [1e-3, 1 - 1e-3].
  """
  W = weight_scale * jax.random.normal(rng_key, (num_hidden, num_visible), dtype).T
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
    W_aux: [num_aux, *M, V] (M: optional model axes, e.g. a block's [num_aux, M, V]).
    aux: [N, G] int row indices into ``W_aux``; negative entries mean "absent".
  Returns:
    [N, *M, V]; zeros when G == 0.
  """
  if aux.shape[-1] == 0:
    return jnp.zeros(aux.shape[:-1] + W_aux.shape[1:], W_aux.dtype)
  present = (aux >= 0).astype(W_aux.dtype)
  rows = jnp.take(W_aux, jnp.maximum(aux, 0), axis=0, mode="clip")  # [N, G, *M, V]
  present = present.reshape(present.shape + (1,) * (W_aux.ndim - 1))
  return jnp.sum(present * rows, axis=aux.ndim - 1)


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
