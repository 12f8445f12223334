"""Annealed importance sampling (AIS) for the partition function Z(a) of a conditional RBM.

For a conditional RBM, Z depends on the auxiliary row a only through the effective visible
bias b_B(a) = b + W_a a (model.visible_bias), so each distinct aux row is its own problem;
all of them run in one batch. With the hidden units summed out analytically, the
intermediate distributions (Salakhutdinov & Murray 2008, Eq. 12) are

    f_β(v) = exp((1 - β) b_Aᵀv + β b_Bᵀv) Π_j (1 + exp(β (c_j + vᵀW_:j))),   β ∈ [0, 1],

where f_0 is independent Bernoulli visibles with logits b_A (the *base*; by default the
mean-field marginals of p(v | a), one base per aux row) times 2^H, and f_1 = exp(-F(v; a)).
A transition at β is one block Gibbs sweep h ~ σ(β(c + vW)), v ~ σ((1-β) b_A + β(b_B + Wh)).

What the numbers mean (Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal
likelihood"; Burda, Grosse & Salakhutdinov 2015):
  * forward AIS (``ais_log_partition``): w is unbiased for Z/Z_0, so log Ẑ = log Z_0 +
    log mean w is a *stochastic lower bound* on log Z (E[log Ẑ] <= log Z by Jensen) and the
    test log-likelihood -F - log Ẑ errs high (optimistic).
  * reverse AIS (``reverse_ais_log_partition``), started from samples of p(v | a): its
    weight is unbiased for Z_0/Z, so log Z_0 - log mean w_rev is a *stochastic upper bound*
    on log Z, and -F - (that) a conservative log-likelihood. The bound holds only when the
    start samples are exact (tests: enumeration); started from the forward chains' final
    states (the default in ``average_log_likelihood``) it is a diagnostic, not a proof.
The two agreeing within their standard errors says the annealing is long enough.
Standard error of log Ẑ: the delta method, sd(w) / (sqrt(R) mean(w)); effective sample
size (Σw)² / Σw² ∈ [1, R].
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.model.crbm import CRBMParams, free_energy, visible_bias
from crbm_jax.model.gibbs import gibbs_sweep, visible_marginals_mean_field
from crbm_jax.types import Array, PRNGKey


class AISError(ValueError):
  """Bad AIS request (names the argument and the reason)."""


class AISResult(NamedTuple):
  """Per aux row m (M rows, R runs each).

  Attributes:
    log_z: [M] log Z estimate (forward: lower bound in expectation; reverse: upper).
    log_z_stderr: [M] delta-method standard error of ``log_z``.
    ess: [M] effective sample size (Σw)²/Σw² of the R importance weights.
    log_weights: [M, R] log importance weights (forward: log w, reverse: log w_rev).
    log_z_base: [M] exact log Z_0 of the base distribution.
    final_v: [M, R, V] the chains' final visible states.
  """
  log_z: Array
  log_z_stderr: Array
  ess: Array
  log_weights: Array
  log_z_base: Array
  final_v: Array


def beta_schedule(num_betas: int, kind: str = "sigmoid", delta: float = 4.0) -> np.ndarray:
  """[num_betas + 1] inverse temperatures from 0 to 1 (num_betas intermediate steps).

  kind 'linear', or 'sigmoid' (Grosse et al. 2015: σ(δ(2t/T - 1)) rescaled to [0, 1],
  denser at both ends, where the distributions change fastest).
  """
  if num_betas < 1:
    raise AISError(f"num_betas must be >= 1, got {num_betas}")
  t = np.linspace(0.0, 1.0, num_betas + 1)
  if kind == "linear":
    return t
  if kind == "sigmoid":
    s = 1.0 / (1.0 + np.exp(-delta * (2.0 * t - 1.0)))
    return (s - s[0]) / (s[-1] - s[0])
  raise AISError(f"beta schedule kind must be 'linear' or 'sigmoid', got {kind!r}")


def mean_field_base(params: CRBMParams, aux: Array, num_iters: int = 30) -> Array:
  """Base logits b_A [M, V]: logit of the mean-field marginals of p(v | a), clipped."""
  m = visible_marginals_mean_field(params, aux, num_iters=num_iters)
  m = jnp.clip(m, 1e-4, 1 - 1e-4)
  return jnp.log(m) - jnp.log1p(-m)


def _log_f_delta(beta_new, beta_old, v, x, base, vis):
  """log f_new(v) - log f_old(v) given x = c + vW: [M, R]."""
  lin = (beta_new - beta_old) * jnp.sum(v * (vis - base), axis=-1)
  return lin + jnp.sum(jax.nn.softplus(beta_new * x) - jax.nn.softplus(beta_old * x), axis=-1)


def _gibbs(rng_key, params: CRBMParams, beta, x, base, vis):
  """One sweep at β from a state with pre-activation x; returns (v, its new x)."""
  v, _ = gibbs_sweep(rng_key, params, jax.nn.sigmoid(beta * x), vis, beta, base)
  return v, v @ params.W + params.c


def _anneal(rng_key, params, v0, betas_from, betas_to, base, vis):
  """Σ_k log f_{to_k}(v_k) - log f_{from_k}(v_k), a sweep at β_{to_k} after each: [M, R]."""

  def body(carry, xs):
    v, x, log_w = carry
    key, beta_old, beta_new = xs
    log_w = log_w + _log_f_delta(beta_new, beta_old, v, x, base, vis)
    v, x = _gibbs(key, params, beta_new, x, base, vis)
    return (v, x, log_w), None

  keys = jax.random.split(rng_key, betas_from.shape[0])
  x0 = v0 @ params.W + params.c
  (v, _, log_w), _ = jax.lax.scan(body, (v0, x0, jnp.zeros(v0.shape[:2], v0.dtype)),
                                  (keys, betas_from, betas_to))
  return v, log_w


def _summarise(log_w: Array, log_z_base: Array, sign: float, final_v: Array) -> AISResult:
  """log Z = log Z_0 + sign · log mean w, with delta-method stderr and ESS."""
  r = log_w.shape[-1]
  top = jnp.max(log_w, axis=-1, keepdims=True)
  w = jnp.exp(log_w - top)                                    # in (0, 1], max = 1
  mean_w = jnp.mean(w, axis=-1)
  log_mean = jnp.log(mean_w) + top[..., 0]
  stderr = jnp.std(w, axis=-1, ddof=1) / (jnp.sqrt(r) * mean_w) if r > 1 else jnp.full_like(
      mean_w, jnp.inf)
  ess = jnp.sum(w, -1) ** 2 / jnp.sum(w * w, -1)
  return AISResult(log_z=log_z_base + sign * log_mean, log_z_stderr=stderr, ess=ess,
                   log_weights=log_w, log_z_base=log_z_base, final_v=final_v)


def _prepare(params, aux, base_logits):
  vis = visible_bias(params, aux)                  # [M, V]
  base = mean_field_base(params, aux) if base_logits is None else jnp.broadcast_to(
      jnp.asarray(base_logits, vis.dtype), vis.shape)
  num_hidden = params.W.shape[1]
  log_z_base = jnp.sum(jax.nn.softplus(base), axis=-1) + num_hidden * jnp.log(2.0)
  return vis[:, None, :], base[:, None, :], log_z_base


def ais_log_partition(rng_key: PRNGKey, params: CRBMParams, aux: Array, num_runs: int,
                      num_betas: int, base_logits: Optional[Array] = None,
                      schedule: str = "sigmoid") -> AISResult:
  """Forward AIS estimate of log Z(a) for each aux row.

  Args:
    rng_key: PRNG key.
    params: CRBM parameters.
    aux: [M, G] distinct aux rows (-1 = absent).
    num_runs: R independent annealing runs per row (static).
    num_betas: number of intermediate distributions K (static).
    base_logits: [V] or [M, V] base logits b_A; default ``mean_field_base``.
    schedule: 'sigmoid' or 'linear' (``beta_schedule``).
  Returns:
    AISResult; ``log_z`` is a stochastic lower bound on log Z.
  """
  betas = jnp.asarray(beta_schedule(num_betas, schedule), params.W.dtype)
  vis, base, log_z_base = _prepare(params, aux, base_logits)
  key_init, key_run = jax.random.split(rng_key)
  shape = (aux.shape[0], num_runs, params.W.shape[0])
  v0 = jax.random.bernoulli(key_init, jax.nn.sigmoid(base), shape).astype(params.W.dtype)
  v, log_w = _anneal(key_run, params, v0, betas[:-1], betas[1:], base, vis)
  return _summarise(log_w, log_z_base, 1.0, v)


def reverse_ais_log_partition(rng_key: PRNGKey, params: CRBMParams, aux: Array,
                              v_start: Array, num_betas: int,
                              base_logits: Optional[Array] = None,
                              schedule: str = "sigmoid") -> AISResult:
  """Reverse AIS from samples of p(v | a) down to the base: an upper bound on log Z.

  Args:
    aux: [M, G] aux rows.
    v_start: [M, R, V] samples of p(v | a) for each row (exact for a true bound).
  Returns:
    AISResult; ``log_z`` = log Z_0 - log mean w_rev, a stochastic upper bound on log Z
    when ``v_start`` is exact.
  """
  betas = jnp.asarray(beta_schedule(num_betas, schedule), params.W.dtype)
  vis, base, log_z_base = _prepare(params, aux, base_logits)
  v0 = jnp.asarray(v_start, params.W.dtype)
  # Step k = K..1: log w += log f_{k-1}(v) - log f_k(v), then a sweep at β_{k-1}
  # (the block-Gibbs v-chain is reversible, so it is its own reverse kernel). The last
  # sweep (at β_0) does not enter the weight.
  v, log_w = _anneal(rng_key, params, v0, betas[::-1][:-1], betas[::-1][1:], base, vis)
  return _summarise(log_w, log_z_base, -1.0, v)


def exact_log_partition(params: CRBMParams, aux: Array, max_visible: int = 20) -> Array:
  """log Z(a) by enumerating all 2^V visible states (V <= max_visible): [M]."""
  num_visible = params.W.shape[0]
  if num_visible > max_visible:
    raise AISError(f"exact_log_partition enumerates 2^V states; V={num_visible} > "
                   f"max_visible={max_visible}")
  states = ((np.arange(2 ** num_visible)[:, None] >> np.arange(num_visible)[::-1]) & 1)
  states = jnp.asarray(states, params.W.dtype)                     # [S, V]
  vis = visible_bias(params, aux)                         # [M, V]
  hidden = jnp.sum(jax.nn.softplus(states @ params.W + params.c), axis=-1)  # [S]
  return jax.scipy.special.logsumexp(vis @ states.T + hidden[None, :], axis=-1)


def log_likelihood(params: CRBMParams, v: Array, aux: Array, log_z: Array) -> Array:
  """log p(v | a) = -F(v; a) - log Z(a): [N]; ``log_z`` [N] for each observation's row."""
  return -free_energy(params, jnp.asarray(v, params.W.dtype), aux) - log_z


def distinct_rows(aux: np.ndarray):
  """(unique rows [M, G], inverse [N]) of an aux matrix, on the host."""
  aux = np.asarray(aux)
  if aux.shape[1] == 0:
    return aux[:1], np.zeros(aux.shape[0], np.int64)
  rows, inverse = np.unique(aux, axis=0, return_inverse=True)
  return rows, inverse.reshape(-1)


class LogLikelihoodReport(NamedTuple):
  """Average test log-likelihood from AIS (means over the N observations).

  Attributes:
    mean_ll: mean of -F(v; a) - log Ẑ(a) with forward AIS (optimistic in expectation).
    mean_ll_conservative: the same with the reverse-AIS log Z (pessimistic in expectation).
    ais_stderr: standard error of ``mean_ll`` from AIS noise alone.
    data_stderr: standard error of the mean over observations (sd / sqrt N).
    per_bit: ``mean_ll`` / V (comparable with the per-bit pseudo-likelihood).
    min_ess / median_ess: of the forward AIS weights, over distinct aux rows.
    max_gap: largest reverse - forward log Z over aux rows (0 when annealing suffices).
    num_rows: distinct aux rows (separate log Z problems).
  """
  mean_ll: float
  mean_ll_conservative: float
  ais_stderr: float
  data_stderr: float
  per_bit: float
  min_ess: float
  median_ess: float
  max_gap: float
  num_rows: int


@functools.partial(jax.jit, static_argnames=("num_runs", "num_betas", "schedule"))
def _forward_and_reverse(key, params, chunk, num_runs, num_betas, schedule):
  """Forward AIS, then reverse AIS from its final states, on a chunk of distinct rows;
  jitted once per shape (the parameters are an argument, not constants: models of the
  same shape share the program)."""
  key_f, key_r = jax.random.split(key)
  fwd = ais_log_partition(key_f, params, chunk, num_runs, num_betas, schedule=schedule)
  rev = reverse_ais_log_partition(key_r, params, chunk, fwd.final_v, num_betas,
                                  schedule=schedule)
  return fwd.log_z, fwd.log_z_stderr, fwd.ess, rev.log_z


def average_log_likelihood(rng_key: PRNGKey, params: CRBMParams, v, aux, num_runs: int = 32,
                           num_betas: int = 1000, row_chunk: int = 256,
                           schedule: str = "sigmoid", weights=None) -> LogLikelihoodReport:
  """Host-level driver: AIS (forward, then reverse from its final states) per distinct row.

  Args:
    v: [N, V] test observations; aux: [N, G]; weights: optional [N] (0 = skip).
    row_chunk: distinct aux rows per jitted call (memory ~ row_chunk x R x V).
  """
  v = np.asarray(v, np.float32)
  aux = np.asarray(aux, np.int32).reshape(v.shape[0], -1)
  w = np.ones(v.shape[0]) if weights is None else np.asarray(weights, np.float64)
  keep = w > 0
  v, aux, w = v[keep], aux[keep], w[keep]
  rows, inverse = distinct_rows(aux)

  params = jax.tree_util.tree_map(jnp.asarray, params)
  outs = []
  for i, start in enumerate(range(0, len(rows), row_chunk)):
    chunk = rows[start:start + row_chunk]
    pad = row_chunk - len(chunk) if len(rows) > row_chunk else 0
    padded = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk
    res = [np.asarray(x)[:len(chunk)] for x in _forward_and_reverse(
        jax.random.fold_in(rng_key, i), params, jnp.asarray(padded), num_runs, num_betas,
        schedule)]
    outs.append(res)
  log_z, se, ess, log_z_rev = (np.concatenate(x) for x in zip(*outs))
  neg_f = -np.asarray(free_energy(params, jnp.asarray(v), jnp.asarray(aux)),
                      np.float64)
  wn = w / w.sum()
  ll = neg_f - log_z[inverse]
  ll_rev = neg_f - log_z_rev[inverse]
  mean_ll = float(wn @ ll)
  # Each distinct row's log Ẑ error is shared by its observations: Var = Σ_m (Σ_{n∈m} wn)² se².
  row_weight = np.bincount(inverse, weights=wn, minlength=len(rows))
  ais_se = float(np.sqrt(np.sum((row_weight * se) ** 2)))
  data_se = float(np.sqrt(wn @ (ll - mean_ll) ** 2 / max(len(ll) - 1, 1)))
  return LogLikelihoodReport(
      mean_ll=mean_ll, mean_ll_conservative=float(wn @ ll_rev), ais_stderr=ais_se,
      data_stderr=data_se, per_bit=mean_ll / v.shape[1], min_ess=float(ess.min()),
      median_ess=float(np.median(ess)), max_gap=float(np.max(log_z_rev - log_z)),
      num_rows=len(rows))
