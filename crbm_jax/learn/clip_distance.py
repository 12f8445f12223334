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

Training is the CD-k learner (``learner.make_learner``: same optimiser, initialisation,
W_aux step scale and lazy L1 prox) with one change, the auxiliary input: each
observation's clip column becomes the P clips of its track with kernel weights, so the
gradient reaches W_clip[j] through the mixing weights (``lazy_l1.AuxInput``). ℓ is
``HParams.kernel_length``; the learner's ``model`` is ``effective_params``.

``make_distance_fit`` takes the neighbour table (``NeighbourTable``: the rows, the
distances and the normalisation flag) as a traced argument of the fit instead of closing
over it, so the sum and the normalised kernel, and any table of the same shape, share one
compiled program (a closed-over table is baked into the program as constants).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import jax.numpy as jnp
import numpy as np

from crbm_jax.learn import lazy_l1
from crbm_jax.learn.base import Learner, TrainConfig
from crbm_jax.learn.contrastive import cd_sampler
from crbm_jax.learn.engine import StopRule
from crbm_jax.learn.fit import make_fit
from crbm_jax.learn.learner import make_learner
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.types import Array


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
      rows; ℓ = inf is then their mean) instead of K(0) = 1 for the clip itself. A Python
      bool, or a traced bool scalar (``NeighbourTable``).
  """
  rows: Union[np.ndarray, Array]
  dist: Union[np.ndarray, Array]
  offset: int
  column: int
  normalize: Union[bool, Array] = False


class NeighbourTable(NamedTuple):
  """The traced part of ``ClipNeighbours``: rows [E, P], dist [E, P], normalize (bool
  scalar). Passed to ``make_distance_fit``'s fit as an argument, never closed over."""
  rows: Array
  dist: Array
  normalize: Array


def neighbour_table(nb: ClipNeighbours) -> NeighbourTable:
  """``nb``'s arrays and flag as a pytree of device arrays (an argument of a jitted fit)."""
  return NeighbourTable(jnp.asarray(nb.rows), jnp.asarray(nb.dist),
                        jnp.asarray(nb.normalize, bool))


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


def kernel_weights(dist: Array, rows: Array, length: Array,
                   normalize: Union[bool, Array] = False) -> Array:
  """K(d) = exp(-d / ℓ) with K(0) = 1 for any ℓ >= 0, and 0 for padding rows: [..., P].

  ``normalize`` (a bool, or a traced bool scalar) divides by the sum over the last axis
  (the clips of one track).
  """
  k = jnp.where(dist > 0, jnp.exp(-dist / jnp.maximum(length, 1e-12)), 1.0)
  k = jnp.where(rows >= 0, k, 0.0)
  static = isinstance(normalize, (bool, np.bool_))  # a Python flag picks the branch here
  if static and not normalize:
    return k
  normalized = k / jnp.maximum(jnp.sum(k, axis=-1, keepdims=True), 1e-12)
  return normalized if static else jnp.where(normalize, normalized, k)


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


def aux_input(aux: Array, length: Array, nb: ClipNeighbours) -> lazy_l1.AuxInput:
  """The weighted AuxInput of observations ``aux`` [B, G]: the other groups as they are,
  the clip column replaced by the P clips of its track with kernel weights."""
  rows, dist = expand_aux(aux, nb)
  group = np.concatenate([np.delete(np.arange(aux.shape[-1]), nb.column),
                          np.full(nb.rows.shape[1], nb.column)])
  return lazy_l1.AuxInput(rows, expanded_weights(rows, dist, length, nb), group)


def distance_aware(config: TrainConfig, num_aux: int, nb: ClipNeighbours) -> Learner:
  """The CD-k learner of the distance-aware clip model (ℓ = ``hparams.kernel_length``,
  traced: a grid over it never recompiles). Its ``model`` (and so ``fit``'s result) is the
  equivalent ordinary CRBM, ``effective_params``."""
  return make_learner(
      config, num_aux, cd_sampler(config),
      aux_input=lambda aux, hparams: aux_input(aux, hparams.kernel_length, nb),
      view=lambda params, hparams: effective_params(params, nb, hparams.kernel_length))


def make_distance_fit(config: TrainConfig, num_aux: int, offset: int, column: int,
                      rule: Optional[StopRule] = None):
  """``fit_fn(rng_key, hparams, train, val, table: NeighbourTable) -> FitResult``, the
  ``make_fit`` of ``distance_aware`` with the neighbour table a traced argument: jitted
  once, it serves every kernel (sum or normalised), every ℓ and every table of the same
  shape. ``offset`` / ``column``: the clip group's first W_aux row and aux column
  (``ClipNeighbours.offset`` / ``.column``, static)."""

  def fit_fn(rng_key, hparams, train, val, table: NeighbourTable):
    nb = ClipNeighbours(table.rows, table.dist, offset, column, table.normalize)
    learner = distance_aware(config, num_aux, nb)
    return make_fit(config, num_aux, learner, rule)(rng_key, hparams, train, val)

  return fit_fn
