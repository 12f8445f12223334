"""Smoothers beside the CRBM, with one interface (issue 23, part 3).

A smoother maps a data set's observations to [clips, tags] affinities:

    smoother(data: SmootherData, tune: Optional[HeldOutData]) -> Smoothed

``SmootherData`` holds the observations as arrays (binary tags, counts, the clip, track
and user of each observation); ``Smoothed`` holds the [C, V] affinities over
``data.clips`` or, when the smoother cannot run on the data (no users for Dawid-Skene,
no tracks for the track pool), ``affinities=None`` and the reason. A tunable smoother
(the track pool's weight, the factorisation's rank) chooses its setting on ``tune``:
fitted on its training observations, scored by the smoothing criterion
(``criterion.score_affinities``, balanced per-bit log loss) on its held-out observations
of clips that stay in training, the same held-out observations the CRBM's search uses.

Smoothers (``SMOOTHERS``):
  raw_share: the share of the clip's observations that carry the tag (majority vote
    before thresholding; for aggregated counts, whether any player gave it);
  base_rate: each tag's mean share over clips, the same for every clip (no aux: a
    smoother whose affinities do not depend on the clip; reported as the floor);
  track_pool: w x raw share + (1 - w) x mean raw share of the track's clips, w chosen
    by the criterion from 0, 0.1, ..., 1;
  low_rank: the clips x tags share matrix, centred per tag, truncated SVD of rank k
    chosen by the criterion from 1, 2, 4, 8, 16, clipped to [0, 1];
  both mixed with the base rate, (1 - λ) p + λ base rate, λ from PRIORS chosen with the
    setting (a pooled share of 0 for a tag the clip then has costs log 1e-6 under the
    proper scoring rule; the CRBM's affinities are never 0);
  mv, dawid_skene, glad, mace: crowd-kit's aggregators through BinaryRelevance (one
    binary task per tag: did the user give it?), probability of "given"; per-user data
    only; crowd-kit is the optional extra ``[crowd]``.
Raw counts (users per clip and tag) stay the 'raw' labels of Table 3 and the recovery
report; ``raw_share`` is their per-observation form, a probability the criterion can
score.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, NamedTuple, Optional

import numpy as np

from crbm_jax.smoothers import criterion

POOL_WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2).tolist())
RANKS = (1, 2, 4, 8, 16)
PRIORS = (0.0, 0.01, 0.05, 0.2, 0.5)   # weight of the base-rate prior mixed in (chosen)
CROWD = ("mv", "dawid_skene", "glad", "mace")


class SmootherData(NamedTuple):
  """Observations as arrays: X [N, V] binary, clip [N] int into ``clips`` [C] (str),
  track [C] int per clip (-1 unknown) or None, user [N] int or None."""
  X: np.ndarray
  clip: np.ndarray
  clips: np.ndarray
  track: Optional[np.ndarray]
  user: Optional[np.ndarray]


class HeldOutData(NamedTuple):
  """Training observations (SmootherData over the same clips) and held-out ones: X_val
  [N', V] binary tags, clip_val [N'] int."""
  train: SmootherData
  X_val: np.ndarray
  clip_val: np.ndarray


class Smoothed(NamedTuple):
  """A smoother's output: affinities [C, V] (None when not applicable), the reason when
  not applicable, and what it chose ({setting: value, 'criterion': {value: score}})."""
  affinities: Optional[np.ndarray]
  reason: str = ""
  chosen: Optional[dict] = None


def _codes(values) -> tuple[np.ndarray, np.ndarray]:
  names, code = np.unique(np.asarray(values).astype(str), return_inverse=True)
  return names, code.ravel()


def from_observations(obs, index=None, X=None) -> SmootherData:
  """SmootherData of an ``Observations`` (rows ``index``; tags ``X`` instead of
  ``obs.X`` when given, e.g. count-split training tags). Clips are sorted names."""
  index = np.arange(obs.num_observations) if index is None else np.asarray(index)
  X = obs.X[index] if X is None else np.asarray(X)
  clips, clip_code = _codes(obs.clip)
  track = None
  if obs.track is not None and np.any(np.asarray(obs.track).astype(str) != ""):
    tnames, tcode = _codes(obs.track)
    blank = np.asarray(obs.track).astype(str) == ""
    tcode = np.where(blank, -1, tcode)
    track = np.full(len(clips), -1, np.int64)
    track[clip_code] = tcode
  user = None
  if obs.user is not None and np.any(np.asarray(obs.user).astype(str) != ""):
    user = _codes(obs.user)[1][index]
  return SmootherData(np.asarray(X, np.float64), clip_code[index], clips, track, user)


def clip_share(data: SmootherData) -> np.ndarray:
  """[C, V] share of each clip's observations with each tag (0 where it has none)."""
  from scipy import sparse  # pylint: disable=import-outside-toplevel
  c, n_obs = len(data.clips), len(data.clip)
  member = sparse.csr_matrix((np.ones(n_obs), (data.clip, np.arange(n_obs))),
                             shape=(c, n_obs))
  sums = np.asarray(member @ data.X)
  n = np.bincount(data.clip, minlength=c)
  return sums / np.maximum(n, 1)[:, None]


def raw_share(data: SmootherData, tune=None) -> Smoothed:
  del tune
  return Smoothed(clip_share(data))


def base_rate(data: SmootherData, tune=None) -> Smoothed:
  del tune
  share = clip_share(data)
  seen = np.bincount(data.clip, minlength=len(data.clips)) > 0
  rate = share[seen].mean(0) if seen.any() else np.zeros(share.shape[1])
  return Smoothed(np.tile(rate, (len(data.clips), 1)))


def _with_prior(data: SmootherData, p: np.ndarray, prior: float) -> np.ndarray:
  """(1 - prior) p + prior x the tags' base rate: a smoother that says 0 for a tag the
  clip's neighbours never got is infinitely wrong under a proper scoring rule."""
  return (1.0 - prior) * p + prior * base_rate(data).affinities


def _pool(data: SmootherData, weight: float) -> np.ndarray:
  share = clip_share(data)
  seen = np.bincount(data.clip, minlength=len(data.clips)) > 0
  track = np.where(data.track >= 0, data.track, -1 - np.arange(len(data.clips)))
  _, tcode = np.unique(track, return_inverse=True)
  tcode = tcode.ravel()
  sums = np.zeros((tcode.max() + 1, share.shape[1]))
  np.add.at(sums, tcode[seen], share[seen])
  n = np.bincount(tcode[seen], minlength=tcode.max() + 1)
  mean = sums / np.maximum(n, 1)[:, None]
  return weight * share + (1.0 - weight) * mean[tcode]


_SVD_CACHE: list = []   # [(data, (centre, u, s, vt))]: the last data's decomposition


def _svd(data: SmootherData):
  """(centre [V], u, s, vt) of the centred clip-share matrix, computed once per data:
  the rank search fits every rank on the same data (the same decomposition each time)."""
  if _SVD_CACHE and _SVD_CACHE[0][0] is data:
    return _SVD_CACHE[0][1]
  share = clip_share(data)
  centre = share.mean(0)
  u, s, vt = np.linalg.svd(share - centre, full_matrices=False)
  _SVD_CACHE[:] = [(data, (centre, u, s, vt))]
  return centre, u, s, vt


def _low_rank(data: SmootherData, rank: int) -> np.ndarray:
  centre, u, s, vt = _svd(data)
  k = min(rank, len(s))
  return np.clip(centre + (u[:, :k] * s[:k]) @ vt[:k], 0.0, 1.0)


def _choose(fit: Callable[[SmootherData, object], np.ndarray], values, tune: HeldOutData,
            name: str) -> tuple[object, dict]:
  """The setting (and the weight of the base-rate prior, from PRIORS) with the best
  criterion on the held-out observations."""
  scores = {}
  base = base_rate(tune.train).affinities[tune.clip_val]
  for v in values:
    p = fit(tune.train, v)[tune.clip_val]
    for prior in PRIORS:
      q = (1.0 - prior) * p + prior * base
      scores[(v, prior)] = criterion.balanced_log_lik_np(q, tune.X_val)
  best = max(scores, key=lambda k: scores[k])
  return best, {name: best[0], "prior": best[1],
                "criterion": {f"{k[0]}/{k[1]}": round(s, 6) for k, s in scores.items()}}


def track_pool(data: SmootherData, tune: Optional[HeldOutData] = None) -> Smoothed:
  if data.track is None or not np.any(data.track >= 0):
    return Smoothed(None, "the data set has no tracks")
  if tune is None:
    return Smoothed(None, "needs held-out observations to choose its weight")
  (w, prior), chosen = _choose(_pool, POOL_WEIGHTS, tune, "weight")
  return Smoothed(_with_prior(data, _pool(data, w), prior), chosen=chosen)


def low_rank(data: SmootherData, tune: Optional[HeldOutData] = None) -> Smoothed:
  if tune is None:
    return Smoothed(None, "needs held-out observations to choose its rank")
  ranks = [r for r in RANKS if r <= min(len(data.clips), data.X.shape[1])]
  (k, prior), chosen = _choose(_low_rank, ranks, tune, "rank")
  return Smoothed(_with_prior(data, _low_rank(data, k), prior), chosen=chosen)


def crowdkit_available() -> bool:
  try:
    import crowdkit.aggregation  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return False
  return True


def _aggregator(name: str):
  from crowdkit import aggregation as ag  # pylint: disable=import-outside-toplevel
  return {"mv": lambda: ag.MajorityVote(), "dawid_skene": lambda: ag.DawidSkene(n_iter=50),
          "glad": lambda: ag.GLAD(n_iter=50, silent=True),
          "mace": lambda: ag.MACE(n_restarts=1, n_iter=50, random_state=0)}[name]()


def crowd_aggregate(name: str, data: SmootherData) -> np.ndarray:
  """P(tag given) per clip from crowd-kit's ``name`` aggregator, per tag (BinaryRelevance:
  each tag one binary task, a user's observation of a clip answering yes or no)."""
  import pandas as pd  # pylint: disable=import-outside-toplevel
  from crowdkit.aggregation import BinaryRelevance  # pylint: disable=import-outside-toplevel
  v = data.X.shape[1]
  tags = [np.flatnonzero(row > 0).tolist() for row in data.X]
  df = pd.DataFrame({"task": data.clip, "worker": data.user, "label": tags})
  br = BinaryRelevance(_aggregator(name))
  br.fit(df)
  out = np.zeros((len(data.clips), v))
  for t, agg in br.aggregators_.items():
    probas = getattr(agg, "probas_", None)
    yes = [c for c in getattr(probas, "columns", []) if c is True or c == 1]
    if yes:  # the posterior (or vote share) of "given"
      col = probas[yes[0]]
    else:  # hard labels only
      col = agg.labels_.astype(float)
    out[np.asarray(col.index, np.int64), int(t)] = np.asarray(col, np.float64)
  return out


def make_crowd(name: str):
  def smoother(data: SmootherData, tune=None) -> Smoothed:
    del tune
    if data.user is None:
      return Smoothed(None, "no per-user observations (aggregated counts)")
    if not crowdkit_available():
      return Smoothed(None, "crowd-kit is not installed (pip install -e '.[crowd]')")
    return Smoothed(crowd_aggregate(name, data))
  smoother.__name__ = name
  return smoother


SMOOTHERS: Dict[str, Callable] = {
    "raw_share": raw_share, "base_rate": base_rate, "track_pool": track_pool,
    "low_rank": low_rank, **{n: make_crowd(n) for n in CROWD}}


def held_out_data(obs, held) -> HeldOutData:
  """HeldOutData of ``obs`` and its ``count_split.HeldOut`` (same rows and groups)."""
  train = from_observations(obs, held.train_rows, held.X_train)
  full = from_observations(obs)
  return HeldOutData(train, np.asarray(held.X_val, np.float64), full.clip[held.val_rows])


def run_all(obs, tune: Optional[HeldOutData], names=None, log=None) -> Dict[str, Smoothed]:
  """Every smoother of ``names`` (default all) on ``obs``; timings in ``chosen``."""
  data = from_observations(obs)
  out = {}
  for name in names or SMOOTHERS:
    start = time.monotonic()
    res = SMOOTHERS[name](data, tune)
    chosen = dict(res.chosen or {}, seconds=round(time.monotonic() - start, 3))
    out[name] = res._replace(chosen=chosen)
    if log is not None:
      log(f"smoother {name}: " + (f"{chosen['seconds']:.1f} s" if res.affinities is not None
                                  else f"not applicable ({res.reason})"))
  return out
