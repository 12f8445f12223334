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
|log t_ij| <= |W_ij|. That lets the fast forms multiply a block of consecutive factors
before taking one logarithm: blocks of 16 while max|W| <= 80/16, of 8 while
max|W| <= 80/8, then one logarithm per factor (max|W| <= 80), then the softplus form, which
is stable for any magnitude (``_BLOCKS``, ``form_index``). The products are laid out
[n, H, V] with V minor, so a block's product multiplies whole V-vectors (a reduction over
the minor axis vectorised 3x worse on a CPU), and e^{±W} is computed once per call, not
per chunk.
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

import jax
import jax.numpy as jnp

from crbm_jax.model.crbm import CRBMParams, aux_bias, visible_bias
from crbm_jax.model.sparse_rows import SparseRows, dense, is_sparse
from crbm_jax.types import Array

_BLOCKS = (16, 8, 1)  # factors per logarithm in the product forms, largest first
_LOG_LIMIT = 80.0  # |log t| <= |W| and float32 holds e^±87

# flip_delta(x [n, H], v [n, V], sign [n, V]) -> Σ_j softplus(x_j + s_i W_ij) - softplus(x_j)
FlipDelta = Callable[[Array, Array, Array], Array]


def _flip_delta_softplus(x: Array, W: Array, sign: Array) -> Array:
  """Σ_j softplus(x_j + s_i W_ij) - softplus(x_j): [n, V] (stable for any magnitude)."""
  shifted = x[:, None, :] + sign[:, :, None] * W[None, :, :]
  return jnp.sum(jax.nn.softplus(shifted) - jax.nn.softplus(x)[:, None, :], axis=-1)


def product_form(W: Array, block: int) -> FlipDelta:
  """The same sum as Σ over blocks of log Π_block t_ij; needs max|W| <= 80 / block."""
  pad = (-W.shape[1]) % block  # padded units have W = 0, so t = 1 exactly
  Wt = jnp.pad(W.T, ((0, pad), (0, 0)))                                  # [H', V]
  exp_pos, exp_neg = jnp.exp(Wt), jnp.exp(-Wt)

  def flip_delta(x, v, sign):
    del sign
    xp = jnp.pad(x, ((0, 0), (0, pad)))
    p_on, p_off = jax.nn.sigmoid(xp)[:, :, None], jax.nn.sigmoid(-xp)[:, :, None]
    exp_w = jnp.where(v[:, None, :] > 0, exp_neg[None], exp_pos[None])  # [n, H', V]
    t = (p_off + p_on * exp_w).reshape(x.shape[0], -1, block, W.shape[0])
    return jnp.sum(jnp.log(jnp.prod(t, axis=2)), axis=1)

  return flip_delta


def flip_delta_forms(W: Array) -> List[Callable[[], FlipDelta]]:
  """Builders of every exact form, in ``form_index`` order (for ``lax.switch``)."""
  forms = [lambda b=b: product_form(W, b) for b in _BLOCKS]
  forms.append(lambda: lambda x, v, sign: _flip_delta_softplus(x, W, sign))
  return forms


def form_index(max_w: Array) -> Array:
  """The form for weights with max |W| = ``max_w``: the largest product block that
  cannot overflow float32, else softplus (index len(_BLOCKS))."""
  index = jnp.asarray(len(_BLOCKS))
  for i, block in reversed(list(enumerate(_BLOCKS))):
    index = jnp.where(max_w * block <= _LOG_LIMIT, i, index)
  return index


def finite_max_abs(W: Array) -> Array:
  """max |W| over the finite entries: what picks the exact form. A diverged model (NaN or
  infinite weights) gets a non-finite pseudo-likelihood in every form, so it must not
  push a whole block onto the slowest one (which one NaN would: it compares false)."""
  return jnp.max(jnp.where(jnp.isfinite(W), jnp.abs(W), 0.0))


def per_bit_pll(params: CRBMParams, flip_delta: FlipDelta, v: Array,
                vis_bias: Array) -> Array:
  """log p(v_i | v_\\i, a) for a chunk [n, V], given the visible bias (b + W_a a) [n, V]."""
  x = v @ params.W + params.c                                   # [n, H]
  sign = 1.0 - 2.0 * v                                          # +1: 0 -> 1, -1: 1 -> 0
  return jax.nn.log_sigmoid(-sign * vis_bias - flip_delta(x, v, sign))  # F(ṽ) - F(v)


def chunk_rows(x: Array, chunk_size: int, fill=0) -> Array:
  """[N, ...] padded with ``fill`` rows to a multiple of ``chunk_size`` and split into
  [C, chunk_size, ...] (for ``lax.map``; aux rows are padded with -1, i.e. absent). A
  ``SparseRows`` is chunked as sparse (empty rows padded; ``dense`` of a chunk)."""
  if is_sparse(x):
    return SparseRows(chunk_rows(x.indices, chunk_size, x.num_tags), x.num_tags)
  pad = (-x.shape[0]) % chunk_size
  x = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1), constant_values=fill)
  return x.reshape((x.shape[0] // chunk_size, chunk_size) + x.shape[1:])  # G may be 0


def pseudo_log_likelihood(params: CRBMParams, v: Array, aux: Array,
                          chunk_size: int = 64) -> Array:
  """Exact log p(v_i | v_\\i, a) for every bit of every observation (Eq. 3).

  Args:
    params: CRBM parameters.
    v: [N, V] binary observations (or a ``SparseRows``, made dense a chunk at a time).
    aux: [N, G] auxiliary row indices (-1 = absent).
    chunk_size: observations per fused chunk (memory ~ chunk_size x V x H floats).
  Returns:
    [N, V] per-bit log conditional probabilities.
  """
  v = v if is_sparse(v) else jnp.asarray(v, params.W.dtype)
  n = v.shape[0]
  chunk_size = min(chunk_size, max(n, 1))
  v_chunks, aux_chunks = chunk_rows(v, chunk_size), chunk_rows(aux, chunk_size, -1)

  def run(make_form):
    def fn():
      flip_delta = make_form()
      return jax.lax.map(
          lambda xs: per_bit_pll(params, flip_delta, dense(xs[0], params.W.dtype)
                                 if is_sparse(xs[0]) else xs[0],
                                 visible_bias(params, xs[1])),
          (v_chunks, aux_chunks))
    return fn

  forms = [run(f) for f in flip_delta_forms(params.W)]
  out = jax.lax.switch(form_index(finite_max_abs(params.W)), forms)
  return out.reshape(-1, v.shape[1])[:n]


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


def balanced_log_pl_sums(params: CRBMParams, data, chunk_size: int,
                         axis_name: Optional[str] = None,
                         vis_aux_bias: Optional[Array] = None) -> Array:
  """[4]: weighted sums of log PL over the 1 bits, the 1 bits' weight, the same over the
  0 bits (they add over disjoint row sets; ``balanced_from_sums`` gives the figure).

  Each chunk of ``chunk_size`` observations returns its weighted sums over the 1 bits and
  over the 0 bits, so the [N, V] per-bit values are never stored (the evaluation of every
  training epoch). Under ``vmap`` over models with ``axis_name``, the exact form is chosen
  from ``max |W|`` over the whole model axis (``lax.pmax``), so it stays one real branch
  instead of evaluating all four.

  Args:
    data: a ``crbm_jax.learn.Dataset`` (v [N, V], aux [N, G], weight [N]).
    vis_aux_bias: [N, V] W_a a of each observation, if already computed (then
      ``params.W_aux`` is not read).
  """
  chunk_size = min(chunk_size, max(data.v.shape[0], 1))
  max_w = finite_max_abs(params.W)
  if axis_name is not None:
    max_w = jax.lax.pmax(max_w, axis_name)
  v, weight = (chunk_rows(x, chunk_size) for x in (data.v, data.weight))
  aux = chunk_rows(data.aux, chunk_size, -1)
  bias = None if vis_aux_bias is None else chunk_rows(vis_aux_bias, chunk_size)

  def sums_with(make_form):
    def run():
      flip_delta = make_form()

      def chunk(xs):
        vc, ac, wc, bc = xs
        vc = dense(vc, wc.dtype) if is_sparse(vc) else vc  # a sparse chunk made dense
        vis = params.b + (aux_bias(params.W_aux, ac) if bc is None else bc)
        per_bit = per_bit_pll(params, flip_delta, vc, vis)
        w_ones = (vc > 0) * wc[:, None]
        w_zeros = (vc <= 0) * wc[:, None]
        return jnp.stack([jnp.sum(per_bit * w_ones), jnp.sum(w_ones),
                          jnp.sum(per_bit * w_zeros), jnp.sum(w_zeros)])

      return jnp.sum(jax.lax.map(chunk, (v, aux, weight, bias)), axis=0)
    return run

  return jax.lax.switch(form_index(max_w), [sums_with(f) for f in flip_delta_forms(params.W)])


def balanced_from_sums(sums: Array) -> Array:
  """The balanced log PL from ``balanced_log_pl_sums``'s [..., 4] (sums add over rows)."""
  return 0.5 * (sums[..., 0] / jnp.maximum(sums[..., 1], 1.0)
                + sums[..., 2] / jnp.maximum(sums[..., 3], 1.0))


def balanced_log_pl(params: CRBMParams, data, chunk_size: int,
                    axis_name: Optional[str] = None,
                    vis_aux_bias: Optional[Array] = None) -> Array:
  """``balanced_pseudo_likelihood(pseudo_log_likelihood(...))`` of a Dataset, fused: scalar
  (``balanced_from_sums`` of ``balanced_log_pl_sums``, whose docstring says more)."""
  return balanced_from_sums(balanced_log_pl_sums(params, data, chunk_size, axis_name,
                                                 vis_aux_bias))


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


def factored_baseline(train_v: Array, test_v: Array) -> Array:
  """Per-bit log-likelihood [N, V] of ``test_v`` under the factored model fitted (add-one)
  on ``train_v``: the baseline row of Tables 2 and of every PL comparison."""
  return factored_log_likelihood(fit_factored(train_v), test_v)


def factored_baseline_pl(train_v: Array, test_v: Array) -> float:
  """The baseline's balanced per-bit log pseudo-likelihood on ``test_v`` (the paper's
  figure; the factored model's PL is its likelihood)."""
  test_v = jnp.asarray(test_v, jnp.float32)
  return float(balanced_pseudo_likelihood(factored_baseline(train_v, test_v), test_v))
