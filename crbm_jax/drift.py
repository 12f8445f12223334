"""A clip model that knows how far apart clips are (the paper's future work, Sec. 5).

In the paper's model each clip has its own auxiliary row, learned from its own few
observations. Here the clip term of clip i borrows from the other clips j of its track,
with weights that decay with their separation d_ij:

    clip term of i = Σ_j K(d_ij) W_clip[j],   K(d) = exp(-d / ℓ),  K(0) = 1,

so a clip with few tags is smoothed mostly by its neighbours. The mixing is a sparse
matrix applied to the clip group's W_aux rows; the model stays a conditional RBM (Eq. 2)
with a real-valued auxiliary vector a_j = K(d_ij) over the track's clips, and
``effective_params`` turns it into an ordinary ``CRBMParams`` for the pseudo-likelihood,
AIS, sampling and mean field. ℓ → 0 gives back the track+clip model exactly; ℓ is traced
(a grid over it never recompiles) and chosen on validation data. Distances are in units of
the track's length (start / track_duration) when durations are known, else in seconds.

Training is CD-k as in ``train.cd_step`` (same optimiser and initialisation); the
gradient reaches W_clip[j] through the mixing weights, and the L1 prox on W_aux is applied
to every row at every step (the weighted analogue of ``train.update_aux_dense``).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax import model as model_lib
from crbm_jax import train as train_lib
from crbm_jax.model import CRBMParams
from crbm_jax.pseudolikelihood import balanced_pseudo_likelihood, pseudo_log_likelihood
from crbm_jax.train import Dataset, FitResult, HParams, TrainConfig
from crbm_jax.types import Array, PRNGKey


class DriftError(ValueError):
  """Bad input to the drift model (names the data and the reason)."""


class ClipNeighbours(NamedTuple):
  """The clips of each clip's track.

  Attributes:
    rows: [E, P] int32 global W_aux rows of the track's clips (itself first), -1 = pad.
    dist: [E, P] float32 separation from the clip to each (0 for itself).
    offset: first W_aux row of the clip group (clip entity e is row offset + e).
    column: which aux column holds the clip row.
    normalize: divide the weights by their sum (a weighted average of the track's clip
      rows; ℓ = inf is then their mean) instead of K(0) = 1 for the clip itself.
  """
  rows: np.ndarray
  dist: np.ndarray
  offset: int
  column: int
  normalize: bool = False


def clip_neighbours(obs, group: str = "clip", normalize: bool = False) -> ClipNeighbours:
  """Builds the neighbour table from ``Observations`` with track, start (and durations)."""
  if group not in obs.groups:
    raise DriftError(f"the observations have no {group!r} group (groups: {list(obs.groups)})")
  if obs.track is None or obs.start is None:
    raise DriftError("the drift model needs each observation's track and start time; "
                     "the tag table has no 'track' or 'start' column")
  col = obs.groups.index(group)
  offset = int(obs.offsets[col])
  num_clips = len(obs.entity_names[col])
  ent = obs.aux[:, col] - offset
  present = obs.aux[:, col] >= 0
  first = np.full(num_clips, -1)
  idx = np.flatnonzero(present)
  ents, at = np.unique(ent[idx], return_index=True)
  first[ents] = idx[at]                                # first observation of each clip
  if np.any(first < 0):
    raise DriftError("some clip entity has no observation to give its track and start")
  track = obs.track[first].astype(str)
  start = obs.start[first].astype(np.float64)
  dur = (obs.track_duration[first].astype(np.float64) if obs.track_duration is not None
         else np.full(num_clips, np.nan))
  if np.any(~np.isfinite(start)):
    raise DriftError(f"{int(np.sum(~np.isfinite(start)))} clips have no start time")
  pos = np.where(np.isfinite(dur) & (dur > 0), start / np.where(dur > 0, dur, 1.0), start)
  tracks, code = np.unique(track, return_inverse=True)
  members = [np.flatnonzero(code == t) for t in range(len(tracks))]
  width = max(len(m) for m in members)
  rows = np.full((num_clips, width), -1, np.int32)
  dist = np.zeros((num_clips, width), np.float32)
  for m in members:
    for i in m:
      order = np.concatenate([[i], m[m != i]])
      rows[i, :len(order)] = offset + order
      dist[i, :len(order)] = np.abs(pos[order] - pos[i])
  return ClipNeighbours(rows, dist, offset, col, normalize)


def kernel_weights(dist: Array, rows: Array, length: Array, normalize: bool = False) -> Array:
  """K(d) = exp(-d / ℓ) with K(0) = 1 for any ℓ >= 0, and 0 for padding rows: [..., P].

  ``normalize`` divides by the sum over the last axis (the clips of one track).
  """
  k = jnp.where(dist > 0, jnp.exp(-dist / jnp.maximum(length, 1e-12)), 1.0)
  k = jnp.where(rows >= 0, k, 0.0)
  if normalize:
    k = k / jnp.maximum(jnp.sum(k, axis=-1, keepdims=True), 1e-12)
  return k


def expanded_weights(rows: Array, dist: Array, length: Array, nb: ClipNeighbours) -> Array:
  """Weights [N, G-1+P] of ``expand_aux``'s columns: 1 (present) for the other groups,
  the kernel (normalised per ``nb.normalize``) for the P clip columns."""
  p = nb.rows.shape[1]
  other = jnp.where(rows[:, :-p] >= 0, 1.0, 0.0).astype(dist.dtype)
  clip = kernel_weights(dist[:, -p:], rows[:, -p:], length, nb.normalize)
  return jnp.concatenate([other, clip], axis=1)


def expand_aux(aux: Array, nb: ClipNeighbours):
  """Weighted aux of each observation: (rows [N, G-1+P], dist [N, G-1+P]).

  The clip column is replaced by its track's clips; other columns keep distance 0.
  """
  nb_rows, nb_dist = jnp.asarray(nb.rows), jnp.asarray(nb.dist)
  clip = aux[:, nb.column]
  e = jnp.where(clip >= 0, clip - nb.offset, 0)
  c_rows = jnp.where((clip >= 0)[:, None], nb_rows[e], -1)
  c_dist = jnp.where((clip >= 0)[:, None], nb_dist[e], 0.0)
  others = jnp.concatenate([aux[:, :nb.column], aux[:, nb.column + 1:]], axis=1)
  rows = jnp.concatenate([others, c_rows], axis=1)
  dist = jnp.concatenate([jnp.zeros(others.shape, c_dist.dtype), c_dist], axis=1)
  return rows, dist


def weighted_aux_bias(W_aux: Array, rows: Array, weight: Array) -> Array:
  """Σ_p weight_p W_aux[rows_p]: [N, V]."""
  gathered = jnp.take(W_aux, jnp.maximum(rows, 0), axis=0)
  return jnp.einsum("np,npv->nv", weight, gathered)


def effective_params(params: CRBMParams, nb: ClipNeighbours, length: Array) -> CRBMParams:
  """The equivalent ordinary CRBM: clip rows of W_aux replaced by their kernel mixtures."""
  rows = jnp.asarray(nb.rows)
  weight = kernel_weights(jnp.asarray(nb.dist), rows, length, nb.normalize)
  mixed = weighted_aux_bias(params.W_aux, rows, weight)
  return params._replace(W_aux=params.W_aux.at[nb.offset:nb.offset + rows.shape[0]].set(mixed))


def drift_step(rng_key: PRNGKey, state: train_lib.TrainState, batch: Dataset, hparams: HParams,
               length: Array, nb: ClipNeighbours, config: TrainConfig,
               hidden_mask: Optional[Array] = None):
  """One CD-k update of the drift model. Returns (TrainState, recon error)."""
  params = state.params
  v0 = batch.v
  wn = batch.weight / jnp.maximum(jnp.sum(batch.weight), 1.0)
  rows, dist = expand_aux(batch.aux, nb)
  weight = expanded_weights(rows, dist, length, nb)                  # [B, P']
  vis_bias = params.b + weighted_aux_bias(params.W_aux, rows, weight)
  h0 = jax.nn.sigmoid(v0 @ params.W + params.c)
  if hidden_mask is not None:
    h0 = h0 * hidden_mask
  vk, hk = train_lib.negative_phase(rng_key, params, v0, h0, vis_bias, config)
  if hidden_mask is not None:
    hk = hk * hidden_mask
  stacked_v = jnp.concatenate([v0 * wn[:, None], -vk * wn[:, None]], axis=0)
  grad_W = stacked_v.T @ jnp.concatenate([h0, hk], axis=0)
  dvis = (v0 - vk) * wn[:, None]
  # W_aux is computed from the pre-step params: ascend() leaves it unchanged.
  new, opt_state = train_lib.ascend(params, state.opt_state,
                                    (grad_W, jnp.sum(dvis, 0), wn @ (h0 - hk)), hparams,
                                    hidden_mask)
  num_aux = params.W_aux.shape[0]
  contrib = weight[:, :, None] * dvis[:, None, :]                    # [B, P', V]
  grad_aux = jnp.zeros_like(params.W_aux).at[jnp.where(rows >= 0, rows, num_aux)].add(
      contrib, mode="drop")
  W_aux = train_lib.soft_threshold(params.W_aux + hparams.learning_rate * grad_aux,
                                   hparams.learning_rate * hparams.l1_aux)
  state = state._replace(params=new._replace(W_aux=W_aux), opt_state=opt_state)
  return state, jnp.sum(wn[:, None] * (v0 - vk) ** 2) / v0.shape[-1]


def run_epoch_drift(rng_key: PRNGKey, state: train_lib.TrainState, data: Dataset,
                    hparams: HParams, length: Array, nb: ClipNeighbours, config: TrainConfig,
                    hidden_mask: Optional[Array] = None):
  """One shuffled pass (N a multiple of batch_size). Returns (state, recon error [steps])."""
  def body(state, xs):
    key, idx = xs
    batch = Dataset(data.v[idx], data.aux[idx], data.weight[idx])
    return drift_step(key, state, batch, hparams, length, nb, config, hidden_mask)

  return jax.lax.scan(body, state, train_lib.epoch_minibatches(rng_key, data.v.shape[0],
                                                               config.batch_size))


def make_fit_drift(config: TrainConfig, num_aux: int, nb: ClipNeighbours):
  """Returns ``fit_fn(rng_key, hparams, train, val, hidden_mask=None, *, length)``.

  ``length`` (ℓ, traced) is the kernel length in the units of ``nb.dist``. The result's
  ``params`` are the raw drift parameters; use ``effective_params(params, nb, length)``
  to evaluate them as an ordinary CRBM. Validation PL uses the effective parameters.
  """

  def fit_fn(rng_key: PRNGKey, hparams: HParams, train: Dataset, val: Dataset,
             hidden_mask: Optional[Array] = None, *, length) -> FitResult:
    key_init, key_train = jax.random.split(rng_key)
    num_visible = train.v.shape[1]
    mean = (train.weight @ train.v) / jnp.maximum(jnp.sum(train.weight), 1.0)
    params = model_lib.init_params(key_init, num_visible, config.num_hidden, num_aux,
                                   config.weight_scale, visible_mean=mean)
    if hidden_mask is not None:
      params = params._replace(W=params.W * hidden_mask)
    state = train_lib.init_state(params, hparams)
    def evaluate(p):
      eff = effective_params(p, nb, length)
      per_bit = pseudo_log_likelihood(eff, val.v, val.aux, config.eval_chunk)
      return balanced_pseudo_likelihood(per_bit, val.v, val.weight)

    def epoch_fn(key, state):
      state, recon = run_epoch_drift(key, state, train, hparams, length, nb, config,
                                     hidden_mask)
      return state, jnp.mean(recon)

    _, best, history = train_lib.run_epochs_keep_best(key_train, state, config.num_epochs,
                                                      epoch_fn, evaluate)
    return FitResult(best.params, best.epoch, best.val_pl, history)

  return fit_fn


def clip_aux_rows(obs, factor_out=("user",)):
  """One aux row per clip entity with the ``factor_out`` groups absent.

  Returns (clip names [C] str, aux [C, G] int32), in clip-entity order.
  """
  col = obs.groups.index("clip")
  names = obs.entity_names[col]
  offset = int(obs.offsets[col])
  aux = np.full((len(names), len(obs.groups)), -1, np.int32)
  ent = obs.aux[:, col] - offset
  for g, name in enumerate(obs.groups):
    if name not in factor_out:
      aux[ent, g] = obs.aux[:, g]
  return np.asarray(names, str), aux


def truth_recovery(affinity: np.ndarray, truth: np.ndarray, seen: np.ndarray) -> dict:
  """ROC-AUC of affinities [C, V] against the true tags [C, V] (bool).

  Returns dict with 'auc_all' (every clip-tag pair) and 'auc_hidden' (only pairs never
  reported in the training observations, ``seen`` False: true tags every training
  observation of the clip missed against false tags), and the number of hidden positives.
  """
  from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel
  affinity, truth, seen = (np.asarray(x) for x in (affinity, truth, seen))
  if affinity.shape != truth.shape or truth.shape != seen.shape:
    raise DriftError(f"affinity {affinity.shape}, truth {truth.shape} and seen {seen.shape} "
                     "must have the same [clips, tags] shape")
  hidden = ~seen
  return {"auc_all": float(roc_auc_score(truth.ravel(), affinity.ravel())),
          "auc_hidden": float(roc_auc_score(truth[hidden], affinity[hidden])),
          "hidden_positives": int(np.sum(truth & hidden))}
