"""Visible marginals p(v_i = 1 | a): the smoothed tag affinities of Section 4.

"For each clip, we drew 1000 samples from the RBM conditioned on that sample's auxiliary
information, but with no user indicated." A clip's auxiliary row keeps its own track /
clip / artist / album entities and sets the factored-out groups (the user) to -1
(``crbm_jax.data.aux_rows``), so their auxiliary biases are simply not added (the model
is additive in W_a a, Eq. 2).

Three estimates of the affinity p(v_i = 1 | a):
  * ``method='sample'``: the mean of ``sample_visible`` draws (the paper's procedure);
    each clip runs its own chain with key ``fold_in(rng_key, clip_index)``, so a clip's
    affinities do not depend on the batch it was computed in.
  * ``method='mean_field'``: ``visible_marginals_mean_field`` (deterministic, an
    approximation: it ignores correlations between visible units).
  * ``exact_visible_marginals``: exact by enumerating the 2^H hidden states (H <= 16).
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.model.crbm import CRBMParams
from crbm_jax.model.gibbs import sample_visible, visible_marginals_mean_field
from crbm_jax.types import PRNGKey

METHODS = ("sample", "mean_field")
MAX_EXACT_HIDDEN = 16


class SmoothingError(ValueError):
  """Bad request to the smoothing functions (says what to change)."""


@functools.partial(jax.jit, static_argnames=("num_samples", "burn_in", "thin"))
def _sampled_batch(rng_key, params, aux, index, num_samples, burn_in, thin):
  def one(i, row):
    samples = sample_visible(jax.random.fold_in(rng_key, i), params, row[None],
                                       num_samples, burn_in, thin)
    return jnp.mean(samples[:, 0], axis=0)
  return jax.vmap(one)(index, aux)


@functools.partial(jax.jit, static_argnames=("num_iters",))
def _mean_field_batch(params, aux, num_iters, damping):
  return visible_marginals_mean_field(params, aux, num_iters, damping)


def smooth_affinities(rng_key: PRNGKey, params: CRBMParams, aux_rows, num_samples: int = 1000,
                      method: str = "sample", burn_in: int = 100, thin: int = 1,
                      batch: int = 64, mean_field_iters: int = 200,
                      damping: float = 0.5, first_index: int = 0) -> np.ndarray:
  """Affinities p(v_i = 1 | a) for each auxiliary row.

  Memory is bounded by ``batch`` clips at a time (num_samples x batch x V floats for
  'sample'); the last batch is padded so one compilation serves every batch.

  Args:
    rng_key: PRNG key (unused by 'mean_field').
    params: CRBM parameters.
    aux_rows: [M, G] int auxiliary rows (see ``clip_aux_rows``).
    num_samples: draws per clip recorded after ``burn_in`` sweeps, every ``thin``.
    method: 'sample' (mean of draws, the paper) or 'mean_field'.
    first_index: the index of the first row among all rows: row j draws with
      ``fold_in(rng_key, first_index + j)``, so calls on consecutive slices of the rows
      give what one call on all of them gives.
  Returns:
    [M, V] float32 numpy array of affinities in [0, 1].
  """
  if method not in METHODS:
    raise SmoothingError(f"unknown smoothing method {method!r}; choose from {list(METHODS)}")
  if num_samples < 1 or burn_in < 0 or thin < 1 or batch < 1:
    raise SmoothingError("need num_samples >= 1, burn_in >= 0, thin >= 1 and batch >= 1")
  aux_rows = np.asarray(aux_rows, np.int32)
  if aux_rows.ndim != 2:
    raise SmoothingError(f"aux_rows must be [M, G], got shape {aux_rows.shape}")
  num_aux = params.W_aux.shape[0]
  if aux_rows.size and aux_rows.max() >= num_aux:
    raise SmoothingError(f"aux_rows holds row {aux_rows.max()} but the model has only "
                         f"{num_aux} auxiliary rows")
  m, v = aux_rows.shape[0], params.W.shape[0]
  out = np.empty((m, v), np.float32)
  batch = max(1, min(batch, m))
  for start in range(0, m, batch):
    stop = min(start + batch, m)
    chunk = np.full((batch, aux_rows.shape[1]), -1, np.int32)
    chunk[: stop - start] = aux_rows[start:stop]
    if method == "sample":
      index = jnp.arange(first_index + start, first_index + start + batch)
      res = _sampled_batch(rng_key, params, jnp.asarray(chunk), index, num_samples,
                           burn_in, thin)
    else:
      res = _mean_field_batch(params, jnp.asarray(chunk), mean_field_iters,
                              jnp.asarray(damping, params.W.dtype))
    out[start:stop] = np.asarray(res)[: stop - start]
  return out


EXACT_BLOCK = 1 << 22  # elements of exact_visible_marginals' [rows, 2^H, V] temporaries


def exact_visible_marginals(params: CRBMParams, aux_rows) -> np.ndarray:
  """Exact p(v_i = 1 | a) by enumerating the 2^H hidden states (H <= 16), in float64.

  Summing v out of Eq. 2: p(h | a) ∝ exp(cᵀh) Π_i (1 + exp(β_i + (W h)_i)), with
  β = b + W_a a, and p(v_i = 1 | a) = Σ_h p(h | a) σ(β_i + (W h)_i).

  Returns:
    [M, V] float64 numpy array.
  """
  W = np.asarray(params.W, np.float64)
  num_hidden = W.shape[1]
  if num_hidden > MAX_EXACT_HIDDEN:
    raise SmoothingError(f"exact marginals enumerate 2^H hidden states; H = {num_hidden} "
                         f"> {MAX_EXACT_HIDDEN}")
  b, c = np.asarray(params.b, np.float64), np.asarray(params.c, np.float64)
  W_aux = np.asarray(params.W_aux, np.float64)
  aux_rows = np.asarray(aux_rows, np.int64)
  present = aux_rows >= 0
  beta = np.tile(b, (aux_rows.shape[0], 1))
  for g in range(aux_rows.shape[1]):
    rows = aux_rows[:, g]
    beta[present[:, g]] += W_aux[rows[present[:, g]]]
  hs = ((np.arange(2 ** num_hidden)[:, None] >> np.arange(num_hidden)[::-1]) & 1)
  hs = hs.astype(np.float64)                                    # [S, H]
  hw, hc = hs @ W.T, hs @ c                                     # [S, V], [S]
  out = np.empty_like(beta)
  # rows a block at a time, so the [rows, S, V] temporaries stay near EXACT_BLOCK
  # elements (every row is computed alone: the result does not depend on the block)
  step = max(1, EXACT_BLOCK // max(hw.size, 1))
  for start in range(0, beta.shape[0], step):
    field = beta[start:start + step, None, :] + hw[None]        # [m, S, V]
    log_w = hc + np.logaddexp(0.0, field).sum(-1)               # [m, S]
    log_w -= log_w.max(axis=1, keepdims=True)
    p_h = np.exp(log_w)
    p_h /= p_h.sum(axis=1, keepdims=True)
    out[start:start + step] = np.einsum("ms,msv->mv", p_h, 1.0 / (1.0 + np.exp(-field)))
  return out


class SmoothingComparison(NamedTuple):
  """Sampled vs mean-field affinities (and exact ones when H is small)."""
  sampled: np.ndarray                 # [M, V]
  mean_field: np.ndarray              # [M, V]
  mean_abs_diff: float                # mean |sampled - mean_field|
  max_abs_diff: float
  correlation: float                  # Pearson correlation over all M x V entries
  exact: Optional[np.ndarray] = None  # [M, V] when H <= max_exact_hidden
  sampled_vs_exact: Optional[float] = None     # mean |sampled - exact|
  mean_field_vs_exact: Optional[float] = None  # mean |mean_field - exact|


def compare_smoothing_methods(rng_key: PRNGKey, params: CRBMParams, aux_rows,
                              num_samples: int = 1000, burn_in: int = 100, thin: int = 1,
                              batch: int = 64, max_exact_hidden: int = 12
                              ) -> SmoothingComparison:
  """Compares the sampled (paper) and mean-field affinities on the same aux rows.

  Mean field is an approximation; sampling is exact up to Monte-Carlo error and
  burn-in. When the model has at most ``max_exact_hidden`` hidden units both are also
  compared with ``exact_visible_marginals``.
  """
  sampled = smooth_affinities(rng_key, params, aux_rows, num_samples, "sample", burn_in,
                              thin, batch)
  mean_field = smooth_affinities(rng_key, params, aux_rows, method="mean_field",
                                 batch=batch)
  diff = np.abs(sampled.astype(np.float64) - mean_field)
  if sampled.size > 1 and sampled.std() > 0 and mean_field.std() > 0:
    corr = float(np.corrcoef(sampled.ravel(), mean_field.ravel())[0, 1])
  else:
    corr = float("nan")
  exact = s_vs_e = mf_vs_e = None
  if params.W.shape[1] <= max_exact_hidden:
    exact = exact_visible_marginals(params, aux_rows)
    s_vs_e = float(np.mean(np.abs(sampled - exact)))
    mf_vs_e = float(np.mean(np.abs(mean_field - exact)))
  return SmoothingComparison(sampled, mean_field, float(diff.mean()) if diff.size else 0.0,
                             float(diff.max()) if diff.size else 0.0, corr, exact,
                             s_vs_e, mf_vs_e)


def aux_effect(params: CRBMParams, aux_rows, groups, skip=("user",), rng_key=None,
               num_samples: int = 200, burn_in: int = 100, batch: int = 64,
               max_exact_hidden: int = 12, clip_chunk: int = 4096) -> dict:
  """How much the smoothed affinities depend on each auxiliary group's rows.

  For each group g (not in ``skip``, with a row in some clip): the mean over clips and
  tags of |p(v_i=1 | a) - p(v_i=1 | a without g's row)|, and the same with every row
  removed ('all'). Exact marginals (``exact_visible_marginals``) when the model has at
  most ``max_exact_hidden`` hidden units; otherwise sampled as crbm-smooth samples
  (``smooth_affinities``, ``num_samples`` draws per clip), every variant with the same
  key, so the chains of a clip share their uniforms (common random numbers) and the
  difference is not swamped by Monte-Carlo noise; 'noise' is then the same measure
  between two independent keys of the full rows (the floor under which a group's effect
  is not resolved). Mean field is not used: its affinities are not calibrated across
  tags (docs/smoothing.md).

  Memory is bounded: the clips are taken ``clip_chunk`` at a time (a multiple of
  ``batch``) and only sums are kept, so a table of a million clips never holds clips x
  tags; each clip draws from its own key (``first_index``), so the figures do not depend
  on the chunk size (up to the order of float64 summation).

  Args:
    aux_rows: [C, G] the clips' rows (-1 absent); groups: [G] names.
  Returns:
    {group or 'all': float, 'relative': 'all' / mean affinity, 'method': str,
     'rows_present': {group: share of clips}, 'noise': float (0 when exact)}.
  """
  aux_rows = np.asarray(aux_rows, np.int32)
  num_clips = aux_rows.shape[0]
  num_hidden = int(np.asarray(params.W).shape[1])
  key = jax.random.key(0) if rng_key is None else rng_key
  exact = num_hidden <= max_exact_hidden
  if exact:
    fn, method = (lambda rows, k, first: exact_visible_marginals(params, rows)), "exact"
  else:
    fn = lambda rows, k, first: smooth_affinities(
        k, params, rows, num_samples=num_samples, burn_in=burn_in, batch=batch,
        first_index=first)
    method = f"sampled ({num_samples} draws per clip, common random numbers)"
  variants = {name: g for g, name in enumerate(groups)
              if name not in skip and np.any(aux_rows[:, g] >= 0)}
  sums = dict.fromkeys(["full", "noise", "all", *variants], 0.0)
  # whole batches per chunk; a short chunk is padded to the width one call on every clip
  # would use, so each clip is computed in the same place of the same program
  per_chunk = max(1, int(clip_chunk) // batch) * batch
  width = min(batch, num_clips)
  for start in range(0, num_clips, per_chunk):
    rows = aux_rows[start:start + per_chunk]
    n = len(rows)
    if n < width:
      rows = np.concatenate([rows, np.full((width - n, rows.shape[1]), -1, np.int32)])
    full = np.asarray(fn(rows, key, start), np.float64)[:n]
    sums["full"] += float(full.sum())
    if not exact:
      other = np.asarray(fn(rows, jax.random.fold_in(key, 1), start), np.float64)[:n]
      sums["noise"] += float(np.abs(full - other).sum())
    for name, g in [*variants.items(), ("all", None)]:
      without = rows.copy()
      if g is None:
        without[:] = -1
      else:
        without[:, g] = -1
      sums[name] += float(np.abs(full - np.asarray(fn(without, key, start),
                                                   np.float64)[:n]).sum())
  entries = max(num_clips * int(np.asarray(params.W).shape[0]), 1)
  out = {"method": method, "rows_present": {}, "noise": sums["noise"] / entries}
  for name, g in variants.items():
    out[name] = sums[name] / entries
    out["rows_present"][name] = float(np.mean(aux_rows[:, g] >= 0))
  out["all"] = sums["all"] / entries
  # The same change relative to the mean affinity: with many rare tags most entries are
  # near 0, so the absolute mean understates how much the rows move the common ones.
  out["relative"] = out["all"] / max(sums["full"] / entries, 1e-12)
  return out
