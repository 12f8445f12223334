"""The CRBM autotagger: training observations, cross-validated fits (all folds in one
``vmap``), autotagging and tag completion (JAX; the product's JAX-free parts live in
``crbm_jax.autotag``).

Training observations (``observations``): one per (clip, user) when the tag table names
users (v = the tags that user gave the clip, aux = the user's row), else one per clip
(v = the tags given by >= ``min_verified`` people). At prediction the user is factored
out (aux = -1), as the paper does for smoothing, and the clip's features carry the rest.

Decision rule for balanced accuracy: the CRBM's p(tag | audio) is calibrated to how often
the tag is given (a rare tag has small probabilities), whereas the per-tag SVMs are
trained on balanced examples and Platt-calibrated on them (0.5 is their natural
threshold). A clip is called positive for a tag when its probability is at least the
tag's mean probability over the training clips (a prior shift to balanced classes,
fixed before seeing any test result). ROC-AUC and PR-AUC do not depend on it.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn import discriminative as disc
from crbm_jax.learn.base import TrainConfig
from crbm_jax.model import conditioned as cm

PREDICT_METHODS = ("exact", "mean_field", "gibbs")


@dataclasses.dataclass(frozen=True)
class TaggerConfig:
  """Settings of the CRBM autotagger (defaults fixed before any evaluation; not tuned).

  objective: 'cd' (CD-1, the default), 'pcd' or 'discriminative' (the exact gradient of
    log p(tags | x, a)). On MajorMiner's 5 folds (experiments/bench_audio_crbm.py) CD-1
    and the exact objective gave the same tag-wise ROC-AUC (0.800 ± 0.016) and CD-1 a
    slightly higher held-out log p(tags | audio) (-8.76 vs -8.81 per clip) at ~1/50 of
    the training time (0.5 s vs 28 s compiled), so CD-1 is the default.
  predict: 'exact' (sum over 2^H hidden states), 'mean_field' or 'gibbs'.
  """
  num_hidden: int = 8
  num_epochs: int = 30
  batch_size: int = 100
  objective: str = "cd"
  hidden_input: bool = False
  cd_k: int = 1
  learning_rate: float = 0.05
  momentum: float = 0.5
  weight_decay: float = 1e-4
  weight_decay_x: float = 1e-3
  l1_aux: float = 1e-3
  aux_lr_scale: float = 1.0
  predict: str = "exact"

  def train_config(self) -> TrainConfig:
    return TrainConfig(num_hidden=self.num_hidden, cd_k=self.cd_k,
                       batch_size=self.batch_size, num_epochs=self.num_epochs)

  def hparams(self) -> disc.AudioHParams:
    return disc.make_audio_hparams(self.learning_rate, self.momentum, self.weight_decay,
                                   self.l1_aux, self.aux_lr_scale, self.weight_decay_x)

  def check(self) -> None:
    if self.objective not in disc.OBJECTIVES:
      raise ValueError(f"objective must be one of {disc.OBJECTIVES}, got {self.objective!r}")
    if self.predict not in PREDICT_METHODS:
      raise ValueError(f"predict must be one of {PREDICT_METHODS}, got {self.predict!r}")
    if self.predict == "exact" and self.num_hidden > cm.MAX_EXACT_HIDDEN:
      raise ValueError(f"exact prediction needs num_hidden <= {cm.MAX_EXACT_HIDDEN}")
    if self.num_hidden < 1 or self.num_epochs < 1 or self.batch_size < 1:
      raise ValueError("num_hidden, num_epochs and batch_size must be >= 1")


class Observations(NamedTuple):
  """clip_row [M]: the clip (row of the feature matrix) of each observation; v [M, T];
  aux [M, G] (G = 1: the user's row, or G = 0 without users); num_aux: rows of W_aux;
  users: the user names (None without users)."""
  clip_row: np.ndarray
  v: np.ndarray
  aux: np.ndarray
  num_aux: int
  users: Optional[list]


def clip_observations(raw: np.ndarray, min_verified: int) -> Observations:
  """One observation per clip: the tags at least ``min_verified`` people gave it."""
  n = raw.shape[0]
  return Observations(np.arange(n), (raw >= min_verified).astype(np.float32),
                      np.zeros((n, 0), np.int32), 0, None)


def user_observations(clip_row: np.ndarray, user: np.ndarray, tag_col: np.ndarray,
                      num_tags: int) -> Observations:
  """One observation per (clip, user) from (clip row, user name, tag column) triples."""
  users, ui = np.unique(user, return_inverse=True)
  pair = clip_row.astype(np.int64) * len(users) + ui.ravel()
  pairs, pi = np.unique(pair, return_inverse=True)
  v = np.zeros((pairs.shape[0], num_tags), np.float32)
  v[pi.ravel(), tag_col] = 1.0
  return Observations((pairs // len(users)).astype(np.int64),
                      v, (pairs % len(users)).astype(np.int32).reshape(-1, 1), len(users),
                      users.tolist())


def standardize_on(x: np.ndarray, rows: np.ndarray):
  """(z [N, F] float32 standardised with the statistics of x[rows], mean, std)."""
  mean = x[rows].mean(0)
  std = x[rows].std(0)
  std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
  return ((x - mean) / std).astype(np.float32), mean, std


@functools.lru_cache(maxsize=None)
def _predictor(config: TaggerConfig):
  """(params, x, aux, v, observed, key) -> probabilities, by the configured method
  (jitted; one per configuration)."""
  return jax.jit(_predictor_fn(config))


def _predictor_fn(config: TaggerConfig):
  if config.predict == "exact":
    return lambda p, x, a, v, o, k: cm.exact_marginals(p, x, a, v, o)
  if config.predict == "mean_field":
    return lambda p, x, a, v, o, k: cm.mean_field(p, x, a, v, o)
  return lambda p, x, a, v, o, k: cm.gibbs_marginals(k, p, x, a, v, o, num_samples=200,
                                                     burn_in=50)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Static:
  config: TaggerConfig
  num_aux: int
  num_features: int


def _fit_one(key, static: _Static, v, aux, weight, x_obs):
  config = static.config
  learner = disc.audio_learner(config.train_config(), static.num_aux, static.num_features,
                               config.objective, config.hidden_input)
  data = disc.AudioDataset(v, aux, weight, x_obs)
  return disc.fit(key, learner, config.train_config(), data, config.hparams()).params


_fit_folds = jax.jit(jax.vmap(_fit_one, in_axes=(0, None, 0, 0, 0, 0)),
                     static_argnums=1)
_fit_single = jax.jit(_fit_one, static_argnums=1)


def predict_params(config: TaggerConfig, params: cm.AudioCRBMParams, z: np.ndarray,
                   given: Optional[np.ndarray] = None,
                   observed: Optional[np.ndarray] = None, seed: int = 0) -> np.ndarray:
  """p(tag | audio[, given tags]) [N, T] for standardised features z (user factored
  out); observed [N, T] 1 where ``given`` holds a known tag value (clamped)."""
  n, t = z.shape[0], params.crbm.b.shape[-1]
  aux = jnp.full((n, 1 if params.crbm.W_aux.shape[0] else 0), -1, jnp.int32)
  if observed is None:
    observed = np.zeros((n, t), np.float32)
    given = observed
  fn = _predictor(config)
  return np.asarray(fn(params, jnp.asarray(z, jnp.float32), aux,
                       jnp.asarray(given, jnp.float32), jnp.asarray(observed, jnp.float32),
                       jax.random.key(seed)), np.float64)


class FoldFits(NamedTuple):
  """proba: [K, N, T] each fold's model on every clip; thresholds: [K, T] mean proba
  over the fold's training clips; params: the K models (leading axis); seconds:
  training wall time (compilation included on a first call)."""
  proba: np.ndarray
  thresholds: np.ndarray
  params: cm.AudioCRBMParams
  seconds: float


def cross_validated_fits(x: np.ndarray, obs: Observations, fold_ids: np.ndarray,
                         config: TaggerConfig, seed: int = 0,
                         given: Optional[np.ndarray] = None,
                         observed: Optional[np.ndarray] = None) -> FoldFits:
  """One CRBM per fold, trained on the observations of the other folds' clips (all
  folds in one vmapped, jitted fit), features standardised on the training clips."""
  config.check()
  num_folds = int(fold_ids.max()) + 1
  zs, rows = [], []
  for k in range(num_folds):
    z, _, _ = standardize_on(x, np.flatnonzero(fold_ids != k))
    zs.append(z)
    rows.append(np.flatnonzero(fold_ids[obs.clip_row] != k))
  zs = np.stack(zs)                                                     # [K, N, F]
  # Each fold trains on its own observations only, padded (weight 0) to the largest.
  size = max(r.shape[0] for r in rows)
  take = np.stack([np.pad(r, (0, size - r.shape[0])) for r in rows])    # [K, M']
  weight = np.stack([np.arange(size) < r.shape[0] for r in rows]).astype(np.float32)
  x_obs = np.stack([zs[k][obs.clip_row[take[k]]] for k in range(num_folds)])
  static = _Static(config, obs.num_aux, x.shape[1])
  keys = jax.random.split(jax.random.key(seed), num_folds)
  start = time.perf_counter()
  params = _fit_folds(keys, static, jnp.asarray(obs.v[take]), jnp.asarray(obs.aux[take]),
                      jnp.asarray(weight), jnp.asarray(x_obs))
  jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  proba = np.stack([predict_params(config, jax.tree.map(lambda a: a[k], params), zs[k],
                                   given, observed, seed) for k in range(num_folds)])
  thresholds = np.stack([proba[k][fold_ids != k].mean(0) for k in range(num_folds)])
  return FoldFits(proba, thresholds, params, seconds)


def fit_all(x: np.ndarray, obs: Observations, config: TaggerConfig, seed: int = 0):
  """The final model on every clip: (params, mean, std, thresholds [T], seconds)."""
  config.check()
  z, mean, std = standardize_on(x, np.arange(x.shape[0]))
  static = _Static(config, obs.num_aux, x.shape[1])
  start = time.perf_counter()
  params = _fit_single(jax.random.key(seed), static, jnp.asarray(obs.v),
                       jnp.asarray(obs.aux), jnp.ones(obs.v.shape[:1], jnp.float32),
                       jnp.asarray(z[obs.clip_row]))
  jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  thresholds = predict_params(config, params, z, seed=seed).mean(0)
  return params, mean, std, thresholds, seconds
