"""The smoothing criterion: a smoother scored by what it is used for (issue 23, part 1).

Smoothing (Section 4) computes, for each clip, the affinities p(v_i = 1 | a) from the
clip's auxiliary rows (track, clip, ...; no user) with **no tag observed**. The criterion
scores a model by how well those affinities predict the tags of held-out observations of
clips that stay in training (``smoothers.count_split``):

    balanced log likelihood = 1/2 (mean over 1 bits of log p  +  mean over 0 bits of
    log (1 - p)),

the negative of the balanced per-bit log loss, a proper scoring rule, balanced over the 1
and 0 bits as the paper's pseudo-likelihood is (tags are sparse). Higher is better, on
the scale of the balanced log PL (nats per bit). ROC-AUC is reported beside it
(``score_affinities``), never selected on.

The affinities are computed as crbm-smooth computes them, p(v | a) of the model:
  * exactly, by enumerating the 2^H hidden states, when H <= ``exact_max_hidden``
    (default 10: 1024 states);
  * otherwise by block Gibbs sampling from p(v | a) with the chains started, as
    ``model.gibbs.sample_visible`` starts them, from σ(b + W_a a) draws; after
    ``burn_in`` sweeps the criterion averages σ(b + W_a a + W h) over ``num_samples``
    sweeps (the Rao-Blackwellised form of crbm-smooth's mean of v draws: the same
    expectation, less Monte-Carlo noise). The noise is a fixed key, so every model and
    every evaluation sees the same uniforms (common random numbers) and the criterion is
    deterministic.

Seam S1: ``make_smoothing_evaluate(config) -> evaluate(params_block, val) -> [M]`` (pure,
jittable, vmappable over a split axis); ``smoothing_criterion(...)`` returns a cached
hashable partial of it for ``make_evaluate=``. The validation Dataset may hold fractional
v with weights (``aggregate_rows``: the held-out observations of one aux row collapsed
into the share of them with each tag, weight = their number), which gives the same value
as the per-observation form, since the affinities depend on the aux row alone.
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn.base import Dataset
from crbm_jax.learn.learner import BLOCK_PARAM_AXES
from crbm_jax.model.crbm import CRBMParams, aux_bias
from crbm_jax.util.stats import roc_auc

EXACT_MAX_HIDDEN = 10   # exact enumeration up to 2^10 hidden states
NUM_SAMPLES = 48        # Rao-Blackwellised Gibbs sweeps averaged (H > EXACT_MAX_HIDDEN)
BURN_IN = 16            # sweeps discarded first
EXACT_CHUNK = 32        # observations per chunk of the exact enumeration
PROB_FLOOR = 1e-6       # affinities clipped to [floor, 1 - floor] inside the log loss
NAME = "balanced log loss of held-out observations' tags from their aux rows alone"


def _exact_one(params: CRBMParams, beta: jnp.ndarray) -> jnp.ndarray:
  """Exact p(v = 1 | a) [n, V] of one model from β = b + W_a a [n, V] (2^H states)."""
  num_hidden = params.W.shape[1]
  hs = ((jnp.arange(2 ** num_hidden)[:, None] >> jnp.arange(num_hidden)[::-1]) & 1)
  hs = hs.astype(params.W.dtype)                                   # [S, H]
  field = beta[:, None, :] + (hs @ params.W.T)[None]               # [n, S, V]
  log_w = hs @ params.c + jnp.sum(jax.nn.softplus(field), -1)      # [n, S]
  p_h = jax.nn.softmax(log_w, axis=-1)
  return jnp.einsum("ns,nsv->nv", p_h, jax.nn.sigmoid(field))


def _exact(params: CRBMParams, beta: jnp.ndarray) -> jnp.ndarray:
  n = beta.shape[0]
  chunk = min(EXACT_CHUNK, max(n, 1))
  pad = (-n) % chunk
  b = jnp.pad(beta, ((0, pad), (0, 0))).reshape((-1, chunk, beta.shape[1]))
  out = jax.lax.map(lambda x: _exact_one(params, x), b)
  return out.reshape((-1, beta.shape[1]))[:n]


def _sampled(key, params: CRBMParams, beta: jnp.ndarray, num_samples: int,
             burn_in: int) -> jnp.ndarray:
  """Rao-Blackwellised Gibbs estimate of p(v = 1 | a) [n, V] (module docstring)."""
  key_init, key_run = jax.random.split(key)
  v0 = jax.random.bernoulli(key_init, jax.nn.sigmoid(beta)).astype(beta.dtype)

  def sweep(carry, xs):
    v, acc = carry
    k, t = xs
    k_h, k_v = jax.random.split(k)
    h = jax.random.bernoulli(k_h, jax.nn.sigmoid(params.c + v @ params.W)).astype(v.dtype)
    p_v = jax.nn.sigmoid(beta + h @ params.W.T)
    v = jax.random.bernoulli(k_v, p_v).astype(v.dtype)
    acc = acc + jnp.where(t >= burn_in, p_v, 0.0)
    return (v, acc), None

  steps = burn_in + num_samples
  (_, acc), _ = jax.lax.scan(sweep, (v0, jnp.zeros_like(beta)),
                             (jax.random.split(key_run, steps), jnp.arange(steps)))
  return acc / num_samples


def model_affinities(params: CRBMParams, aux, *, num_samples: int = NUM_SAMPLES,
                     burn_in: int = BURN_IN, exact_max_hidden: int = EXACT_MAX_HIDDEN,
                     key=None) -> jnp.ndarray:
  """p(v_i = 1 | a) [N, V] of ONE model (W [V, H], W_aux [A, V]) for aux rows [N, G]:
  exact when H <= ``exact_max_hidden``, else sampled (module docstring). Pure."""
  beta = params.b + aux_bias(params.W_aux, aux)
  if params.W.shape[1] <= exact_max_hidden:
    return _exact(params, beta)
  key = jax.random.key(0) if key is None else key
  return _sampled(key, params, beta, num_samples, burn_in)


def balanced_log_likelihood(p, v, weight) -> jnp.ndarray:
  """1/2 (mean_{v=1} log p + mean_{v=0} log (1-p)); v may be a share in [0, 1] with
  ``weight`` [N] observations (``aggregate_rows``). Scalar, higher is better."""
  p = jnp.clip(p, PROB_FLOOR, 1.0 - PROB_FLOOR)
  w_ones = v * weight[:, None]
  w_zeros = (1.0 - v) * weight[:, None]
  ones = jnp.sum(w_ones * jnp.log(p)) / jnp.maximum(jnp.sum(w_ones), 1e-12)
  zeros = jnp.sum(w_zeros * jnp.log1p(-p)) / jnp.maximum(jnp.sum(w_zeros), 1e-12)
  return 0.5 * (ones + zeros)


def balanced_log_lik_np(p, v, weight=None) -> float:
  """``balanced_log_likelihood`` in numpy float64 (host-side scoring)."""
  p = np.clip(np.asarray(p, np.float64), PROB_FLOOR, 1.0 - PROB_FLOOR)
  v = np.asarray(v, np.float64)
  w = np.ones(len(v)) if weight is None else np.asarray(weight, np.float64)
  w_ones, w_zeros = v * w[:, None], (1.0 - v) * w[:, None]
  ones = np.sum(w_ones * np.log(p)) / max(np.sum(w_ones), 1e-12)
  zeros = np.sum(w_zeros * np.log1p(-p)) / max(np.sum(w_zeros), 1e-12)
  return float(0.5 * (ones + zeros))


def make_smoothing_evaluate(config, num_samples: int = NUM_SAMPLES, burn_in: int = BURN_IN,
                            exact_max_hidden: int = EXACT_MAX_HIDDEN,
                            drop_columns: tuple = ()):
  """Seam S1: ``evaluate(params_block, val) -> [M]`` balanced log likelihood of the val
  tags under each block model's smoothing affinities of the val aux rows (module
  docstring). ``drop_columns``: aux columns set absent first (the user's, when the val
  rows still hold it: smoothing never knows the user). ``config`` (a TrainConfig) is
  unused beyond the hook's signature: the hidden size is read from the parameters."""
  del config

  def one(params: CRBMParams, val: Dataset) -> jnp.ndarray:
    aux = val.aux
    if drop_columns:
      aux = aux.at[:, jnp.asarray(drop_columns)].set(-1)
    p = model_affinities(params, aux, num_samples=num_samples, burn_in=burn_in,
                         exact_max_hidden=exact_max_hidden)
    return balanced_log_likelihood(p, val.v, val.weight)

  def evaluate(params: CRBMParams, val: Dataset) -> jnp.ndarray:
    return jax.vmap(one, in_axes=(BLOCK_PARAM_AXES, None))(params, val)

  return evaluate


@functools.lru_cache(maxsize=None)
def smoothing_criterion(num_samples: int = NUM_SAMPLES, burn_in: int = BURN_IN,
                        exact_max_hidden: int = EXACT_MAX_HIDDEN, drop_columns: tuple = ()):
  """The hashable ``make_evaluate`` for the engine (one object per setting, so compiled
  searches are cached on it)."""
  return functools.partial(make_smoothing_evaluate, num_samples=int(num_samples),
                           burn_in=int(burn_in), exact_max_hidden=int(exact_max_hidden),
                           drop_columns=tuple(int(c) for c in drop_columns))


def criterion_for_groups(groups, factor_out=("user",)):
  """``smoothing_criterion()`` for val rows whose columns are ``groups``: the factored-out
  groups' columns (the user) are dropped before the affinities are computed."""
  return smoothing_criterion(drop_columns=tuple(
      g for g, name in enumerate(groups) if name in factor_out))


def aggregate_rows(X, aux) -> Dataset:
  """Held-out observations collapsed by aux row: v = share of the row's observations with
  each tag, weight = their number (the criterion's value is unchanged; fewer rows)."""
  X, aux = np.asarray(X, np.float32), np.asarray(aux, np.int32)
  if aux.shape[1] == 0:
    rows, inverse = np.zeros((1, 0), np.int32), np.zeros(len(X), np.int64)
  else:
    rows, inverse = np.unique(aux, axis=0, return_inverse=True)
  inverse = np.asarray(inverse).ravel()
  n = np.bincount(inverse, minlength=len(rows)).astype(np.float32)
  sums = np.zeros((len(rows), X.shape[1]), np.float32)
  np.add.at(sums, inverse, X)
  return Dataset(jnp.asarray(sums / np.maximum(n, 1.0)[:, None]), jnp.asarray(rows),
                 jnp.asarray(n))


class Score(NamedTuple):
  """A smoother's affinities scored against held-out observations."""
  balanced_log_lik: float   # the criterion (higher is better)
  auc: float                # ROC-AUC over every (observation, tag) entry
  mean_tag_auc: float       # ROC-AUC per tag, averaged over tags with both classes


def score_affinities(affinities, X_val, weight: Optional[np.ndarray] = None) -> Score:
  """The criterion and ROC-AUC of affinities [N, V] against held-out binary tags [N, V]
  (one row per held-out observation)."""
  p, X = np.asarray(affinities, np.float64), np.asarray(X_val, np.float64)
  w = np.ones(len(X)) if weight is None else np.asarray(weight, np.float64)
  ll = balanced_log_lik_np(p, X, w)
  per_tag = [roc_auc(p[:, i], X[:, i]) for i in range(X.shape[1])]
  per_tag = [a for a in per_tag if np.isfinite(a)]
  return Score(ll, roc_auc(p, X), float(np.mean(per_tag)) if per_tag else float("nan"))
