"""What every learner shares: data, hyperparameters, static settings, the interface.

Design (STYLE.md): a learner is a pair of pure functions in the style of blackjax and
optax, ``Learner(init, step, model)``:

    state = learner.init(rng_key, train, hparams, hidden_mask=None, group_mask=None)
    state, info = learner.step(rng_key, state, batch, hparams)
    params = learner.model(state, hparams)   # the ordinary CRBM this state represents

Static choices (sizes, CD-k, epochs, batch size) live in a ``TrainConfig`` bound when the
learner is built; tunable numbers (learning rate, momentum, weight decay, L1, the W_aux
step scale, the drift kernel's length) are a traced ``HParams`` pytree, so a grid over them
is a ``vmap`` that never recompiles. ``from_config`` turns the one training-config schema
(``crbm_jax/configs/training.py``) into both.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax.numpy as jnp
import numpy as np

from crbm_jax.model.crbm import CRBMParams
from crbm_jax.model.sparse_rows import SparseRows, column_sums, dense_rows, pad_rows
from crbm_jax.types import Array


class Dataset(NamedTuple):
  """Observations for training or evaluation.

  Attributes:
    v: [N, V] binary tag vectors (float32), or a ``SparseRows`` (the tags of each row as
      padded column indices, made dense a minibatch or a chunk at a time: ``batch_rows``).
    aux: [N, G] int32 auxiliary row indices, -1 = absent.
    weight: [N] float32 observation weights; 0 marks padding rows.
  """
  v: Array
  aux: Array
  weight: Array


class Batch(NamedTuple):
  """A minibatch: its rows of the training Dataset and their row numbers ``index`` [B]
  (persistent chains kept per observation are found by them)."""
  v: Array
  aux: Array
  weight: Array
  index: Array


class HParams(NamedTuple):
  """Traced hyperparameters (scalars, or leading axes under vmap).

  ``aux_lr_scale`` multiplies the learning rate of ``W_aux`` (None means 1). The minibatch
  gradient of an entity's row is averaged over the whole batch, so a row used by one
  observation of B moves B times slower than a per-observation update would move it; a
  scale of about B restores per-observation steps for rare entities (clips, users). The
  L1 soft-threshold per step is the W_aux step size times ``l1_aux``. ``kernel_length`` is
  the distance-aware clip model's ℓ (ignored by the other learners).
  """
  learning_rate: Array
  momentum: Array
  weight_decay: Array
  l1_aux: Array
  aux_lr_scale: Optional[Array] = None
  kernel_length: Optional[Array] = None


def make_hparams(learning_rate=0.05, momentum=0.5, weight_decay=1e-4, l1_aux=1e-3,
                 aux_lr_scale=1.0, kernel_length=None) -> HParams:
  f = lambda x: None if x is None else jnp.asarray(x, jnp.float32)
  return HParams(f(learning_rate), f(momentum), f(weight_decay), f(l1_aux), f(aux_lr_scale),
                 f(kernel_length))


def aux_learning_rate(hparams: HParams) -> Array:
  """The step size of W_aux: learning_rate x aux_lr_scale."""
  if hparams.aux_lr_scale is None:
    return hparams.learning_rate
  return hparams.learning_rate * hparams.aux_lr_scale


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Static training choices (changing one recompiles).

  Attributes:
    num_hidden: hidden units (after padding, for grids).
    cd_k: Gibbs sweeps per update (CD-k; PCD / PT: sweeps of the persistent chains).
    batch_size: observations per minibatch.
    num_epochs: passes over the training data.
    sample_last_visible: sample the final visible reconstruction of CD-k (True) or use
      its probabilities (False, lower-variance, Hinton's practical guide section 3).
    weight_scale: std of the initial W.
    eval_chunk: observations per chunk in the pseudo-likelihood.
    eval_every: validate every ``eval_every`` epochs and after the last one (best-epoch
      selection among those epochs; 1 = every epoch, the paper's protocol).
  """
  num_hidden: int = 100
  cd_k: int = 1
  batch_size: int = 100
  num_epochs: int = 30
  sample_last_visible: bool = False
  weight_scale: float = 0.01
  eval_chunk: int = 64
  eval_every: int = 1


TRAIN_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
HPARAM_FIELDS = ("learning_rate", "momentum", "weight_decay", "l1_aux", "aux_lr_scale")


def from_config(cfg) -> Tuple[TrainConfig, HParams]:
  """(TrainConfig, HParams) from a training config (``crbm_jax/configs/training.py``: a
  ConfigDict or any mapping with its fields). New objects; ``cfg`` is not changed."""
  get = cfg.get if hasattr(cfg, "get") else lambda k, d=None: getattr(cfg, k, d)
  defaults = TrainConfig()
  static = {k: type(getattr(defaults, k))(get(k, getattr(defaults, k)))
            for k in TRAIN_CONFIG_FIELDS}
  tuned = {k: get(k) for k in HPARAM_FIELDS if get(k) is not None}
  return TrainConfig(**static), make_hparams(**tuned)


class StepInfo(NamedTuple):
  """What one step reports (means over the minibatch)."""
  recon_error: Array  # squared difference data vs negative particles, per bit
  swap_rate: Array    # parallel tempering: fraction of attempted swaps accepted (else 0)


class Learner(NamedTuple):
  """A learning algorithm as pure functions (module docstring).

  init: (rng_key, train: Dataset, hparams, hidden_mask=None, group_mask=None) -> state.
  step: (rng_key, state, batch: Batch, hparams) -> (state, StepInfo).
  model: (state, hparams) -> CRBMParams, the ordinary conditional RBM the state
    represents (every pending L1 step applied; the drift model's kernel mixed in).
  model_axes: None for one model; for a block, the axis of the model in each leaf of
    ``model``'s output (``CRBMParams(W=0, W_aux=1, b=0, c=0)``).
  """
  init: Callable[..., Any]
  step: Callable[..., Tuple[Any, StepInfo]]
  model: Callable[..., CRBMParams]
  model_axes: Optional[CRBMParams] = None


class History(NamedTuple):
  recon_error: Array  # [num_epochs]
  val_pl: Array       # [num_epochs] balanced validation log pseudo-likelihood


class FitResult(NamedTuple):
  params: CRBMParams  # parameters at the best validation epoch
  best_epoch: Array   # int scalar (0-based)
  best_val_pl: Array
  history: History


def check_aux_blocks(aux) -> None:
  """Raise ValueError unless each aux column indexes rows no other column uses."""
  aux = np.asarray(aux)
  used = [np.unique(aux[:, g][aux[:, g] >= 0]) for g in range(aux.shape[1])]
  for g in range(len(used)):
    for h in range(g + 1, len(used)):
      both = np.intersect1d(used[g], used[h])
      if both.size:
        raise ValueError(
            f"aux columns {g} and {h} both use W_aux row {int(both[0])}: give each "
            "auxiliary group its own block of rows (see data.observations.Observations)")


def make_dataset(v, aux, weight=None) -> Dataset:
  """Dataset from host arrays; checks that aux groups use disjoint W_aux rows."""
  v = jnp.asarray(v, jnp.float32)
  aux = np.asarray(aux, np.int32).reshape(v.shape[0], -1)
  check_aux_blocks(aux)
  w = jnp.ones((v.shape[0],), jnp.float32) if weight is None else jnp.asarray(weight, jnp.float32)
  return Dataset(v, jnp.asarray(aux), w)


def make_sparse_dataset(v: SparseRows, aux, weight=None) -> Dataset:
  """Dataset whose ``v`` stays sparse (``SparseRows``, host or device indices [N, K]);
  checks the aux groups as ``make_dataset`` does."""
  n = v.shape[0]
  aux = np.asarray(aux, np.int32).reshape(n, -1)
  check_aux_blocks(aux)
  w = jnp.ones((n,), jnp.float32) if weight is None else jnp.asarray(weight, jnp.float32)
  return Dataset(SparseRows(jnp.asarray(v.indices, jnp.int32), v.num_tags),
                 jnp.asarray(aux), w)


def batch_rows(data: Dataset, rows) -> Batch:
  """The minibatch of ``rows`` of a Dataset, its ``v`` dense (float32 [B, V]) whether
  the Dataset's ``v`` is a dense array or a ``SparseRows`` (made dense here, inside the
  caller's jit): the one way the engine takes a minibatch."""
  return Batch(dense_rows(data.v, rows), data.aux[rows], data.weight[rows], rows)


def pad_dataset(data: Dataset, multiple: int) -> Dataset:
  """Pad N up to a multiple of ``multiple`` with weight-0 rows."""
  n = data.v.shape[0]
  pad = (-n) % multiple
  if pad == 0:
    return data
  return Dataset(pad_rows(data.v, pad),
                 jnp.pad(data.aux, ((0, pad), (0, 0)), constant_values=-1),
                 jnp.pad(data.weight, (0, pad)))


def visible_mean(data: Dataset) -> Array:
  """[V] weighted frequency of each tag (the initial visible biases' target)."""
  return column_sums(data.weight, data.v) / jnp.maximum(jnp.sum(data.weight), 1.0)


# name: (test, what it must be); each takes a float known to be finite.
HPARAM_RANGES = {
    "learning_rate": (lambda v: v > 0, "> 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "l1_aux": (lambda v: v >= 0, ">= 0"),
    "aux_lr_scale": (lambda v: v > 0, "> 0"),
}


def check_hparams(*, prefix: str = "--", error=None, **values) -> None:
  """Raises (one line) unless every given training hyperparameter is a finite number in
  its range: learning_rate > 0, 0 <= momentum < 1, weight_decay >= 0, l1_aux >= 0,
  aux_lr_scale > 0. None values are skipped; ``prefix`` is put before names in the
  message ('--' for flags, '' for estimator arguments); ``error``: the exception type
  (default ValueError; the command-line tools pass their CLIError)."""
  error = error or ValueError
  for name, value in values.items():
    if name not in HPARAM_RANGES:
      raise TypeError(f"check_hparams: unknown hyperparameter {name!r}")
    if value is None:
      continue
    ok, what = HPARAM_RANGES[name]
    try:
      v = float(value)
    except (TypeError, ValueError):
      raise error(f"{prefix}{name} {value!r} is not a number; it must be {what}") from None
    if not np.isfinite(v):
      raise error(f"{prefix}{name} is {value!r}; it must be a finite number {what}")
    if not ok(v):
      raise error(f"{prefix}{name} is {value!r}; it must be {what}")
