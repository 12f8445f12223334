"""Early stopping and validation search over a block of models, by masked freezing.

One mechanism serves ``crbm-fit`` (early stopping of one model, and its ``--search``), the
smoothing models of Section 4, and the adaptive (successive-halving) Table 2 search:

* A block of M models (``learn.cd(..., over_models=True)``) trains in *rounds* of
  ``StopRule.eval_every`` epochs; after each round every model's balanced validation
  pseudo-likelihood is measured and a per-model ``Tracker`` decides whether it goes on.
* A model that stops is *frozen*, not removed: its learning rate is multiplied by its
  ``active`` flag (0), so SGD, momentum, weight decay and the W_aux step and L1 prox all
  leave it exactly where it is (``W + 0 = W``), and the parameters of its best epoch are
  kept aside (``fit.BestEpoch``). Shapes never change, so nothing recompiles.
* Why a model stops (``REASONS``): no improvement larger than ``tol`` for ``patience``
  evaluations (converged); the epoch budget (max_epochs); a non-finite validation PL or a
  fall of more than ``diverge_margin`` below its best (diverged); the host's ``keep`` mask
  (halved: successive halving, or a time budget).

``make_round`` is a pure function of (key, carry, data, hparams, keep): jit it, or vmap
it over a leading split axis (Table 2). ``run_search`` is the host driver for one split:
it adds successive halving, a wall-clock budget and progress, and *compacts* the block:
when the active models fit in a smaller power-of-two bucket, only those models (padded
with frozen ones) are trained, gathered from and scattered back to the full block. The
Gibbs noise and minibatches are shared by every model of a block and depend only on the
data key and the epoch (``learn.block``), so a model's trajectory does not depend on which
other models share its bucket: compaction changes the cost, not the result (to float
rounding). At most log2(M) + 1 bucket sizes are ever compiled.

``select_model`` runs the search over a ``SearchSpace`` (random configurations of a grid;
batch size, being static, gets one block per value) and returns the best by validation PL.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn.base import Dataset, HParams, TrainConfig, pad_dataset
from crbm_jax.learn.block import (GridPoint, hidden_masks, make_block_evaluate,
                                  stack_hparams)
from crbm_jax.learn.fit import BestEpoch, keep_best, run_epoch
from crbm_jax.learn.learner import BLOCK_PARAM_AXES, BLOCK_STATE_AXES, cd
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.types import Array, PRNGKey

AXIS = "models"
# run_search compacts by default when models x training rows x hidden units reach this.
# On the 2-core CPU the bucket compilations cost more than the frozen models' training
# they save at every size we measured: 16 models x 900 rows x 16 units 13.9 s vs 7.0 s;
# crbm-fit's default on MajorMiner (128 models x 1,416 rows x 128 units) 58.6 s vs 37.4 s;
# 128 models x 3,600 rows x 128 units 57.3 s vs 56.4 s. Compaction is for long runs
# (many epochs, most models stopped early) and accelerators.
COMPACT_MIN_WORK = 1_000_000_000
REASONS = ("running", "converged", "max_epochs", "diverged", "halved", "budget")
RUNNING, CONVERGED, MAX_EPOCHS, DIVERGED, HALVED, BUDGET = range(len(REASONS))


class DivergenceError(ValueError):
  """Training diverged: the validation pseudo-likelihood became non-finite or fell far
  below its best. The message says which value to lower."""


class StopRule(NamedTuple):
  """When a model stops (static: part of the compiled round).

  patience: evaluations without an improvement larger than ``tol`` before it stops.
  tol: the improvement (balanced log PL, nats per bit) that counts.
  max_epochs: the epoch budget.
  eval_every: epochs per round (between validation evaluations).
  diverge_margin: a validation PL this far below the model's best (or non-finite) means
    it diverged.
  """
  patience: int = 8
  tol: float = 1e-4
  max_epochs: int = 300
  eval_every: int = 1
  diverge_margin: float = 0.5


class Tracker(NamedTuple):
  """Per-model stopping state ([*M] arrays)."""
  stale: Array    # int: evaluations since the last improvement > tol
  active: Array   # bool
  reason: Array   # int index into REASONS
  epochs: Array   # int: epochs trained
  start: Array    # float: the validation PL of the initial model (divergence reference)


def init_tracker(shape, start=None) -> Tracker:
  start = jnp.full(shape, -jnp.inf) if start is None else jnp.asarray(start, jnp.float32)
  return Tracker(jnp.zeros(shape, jnp.int32), jnp.ones(shape, bool),
                 jnp.full(shape, RUNNING, jnp.int32), jnp.zeros(shape, jnp.int32), start)


def update_tracker(tracker: Tracker, best_before: Array, val_pl: Array, epochs_done: Array,
                   rule: StopRule, keep: Optional[Array] = None) -> Tracker:
  """The tracker after an evaluation (pure).

  Args:
    best_before: [*M] each model's best validation PL before this evaluation.
    val_pl: [*M] this evaluation's validation PL.
    epochs_done: epochs trained so far (scalar).
    keep: [*M] bool, the host's decision (False stops an active model as 'halved').
  """
  active = tracker.active
  improved = val_pl > best_before + rule.tol
  stale = jnp.where(active, jnp.where(improved, 0, tracker.stale + 1), tracker.stale)
  reference = jnp.maximum(best_before, jnp.where(jnp.isfinite(tracker.start),
                                                 tracker.start, -jnp.inf))
  diverged = ~jnp.isfinite(val_pl) | (val_pl < reference - rule.diverge_margin)
  stops = [(diverged, DIVERGED), (stale >= rule.patience, CONVERGED),
           (jnp.broadcast_to(epochs_done >= rule.max_epochs, active.shape), MAX_EPOCHS)]
  if keep is not None:
    stops.append((~keep, HALVED))
  reason, stopped = tracker.reason, jnp.zeros_like(active)
  for cond, code in stops:
    now = active & ~stopped & cond
    reason = jnp.where(now, code, reason)
    stopped = stopped | now
  epochs = jnp.where(active, epochs_done, tracker.epochs)
  return Tracker(stale, active & ~stopped, reason, epochs, tracker.start)


def stop_models(tracker: Tracker, mask, code: int) -> Tracker:
  """Host decision: the active models where ``mask`` stop, for reason ``code``."""
  now = tracker.active & jnp.asarray(mask)
  return tracker._replace(active=tracker.active & ~now,
                          reason=jnp.where(now, code, tracker.reason))


def tree_axes_map(fn, tree, axes):
  """``fn(leaf, axis)`` over a pytree whose model axes are given by a prefix tree."""
  return jax.tree.map(lambda ax, sub: jax.tree.map(lambda x: fn(x, ax), sub), axes, tree)


@functools.partial(jax.jit, static_argnums=1)
def take_models(tree, axes, index):
  """The models ``index`` [K] of a block pytree (each leaf along its model axis; ``axes``
  a hashable prefix tree of ints). Jitted: one compiled gather per bucket size."""
  return tree_axes_map(lambda x, ax: jnp.take(x, index, axis=ax), tree, axes)


@functools.partial(jax.jit, static_argnums=1)
def put_models(tree, axes, index, part):
  """``tree`` with models ``index`` replaced by ``part`` (``take_models``'s inverse)."""
  def put(x, y, ax):
    return x.at[(slice(None),) * ax + (index,)].set(y)
  return jax.tree.map(lambda ax, sub, new: jax.tree.map(lambda a, b: put(a, b, ax), sub,
                                                        new), axes, tree, part)


class SearchCarry(NamedTuple):
  """What a round carries (leading model axis M; ``epoch`` is shared)."""
  state: object       # LearnerState of the block
  best: BestEpoch     # best-epoch parameters / PL / epoch of each model
  tracker: Tracker
  epoch: Array        # int scalar: epochs trained so far


CARRY_AXES = SearchCarry(BLOCK_STATE_AXES, BestEpoch(BLOCK_PARAM_AXES, 0, 0),
                         Tracker(0, 0, 0, 0, 0), None)
HPARAM_AXES = 0


class RoundInfo(NamedTuple):
  recon_error: Array  # [eval_every, M]
  val_pl: Array       # [M]


def _freeze_hparams(hparams: HParams, active: Array) -> HParams:
  return hparams._replace(learning_rate=hparams.learning_rate * active.astype(
      hparams.learning_rate.dtype))


def make_round(learner, config: TrainConfig, evaluate_fn: Callable, rule: StopRule):
  """Returns pure ``round_fn(data_key, carry, train, val, hparams, keep) -> (carry,
  RoundInfo)``: ``rule.eval_every`` epochs of the block with stopped models frozen, then
  one validation evaluation, best-epoch bookkeeping and the tracker update.

  ``learner`` is a block learner (``cd(config, num_aux, over_models=True)``);
  ``evaluate_fn(params, val) -> [M]``; ``keep`` [M] bool (host decisions). Epoch e draws
  its minibatches and noise from ``fold_in(data_key, e)``, as ``fit.run_epochs`` does.
  """
  def round_fn(data_key: PRNGKey, carry: SearchCarry, train: Dataset, val: Dataset,
               hparams: HParams, keep: Array):
    frozen = _freeze_hparams(hparams, carry.tracker.active)

    def body(state, epoch):
      state, info = run_epoch(jax.random.fold_in(data_key, epoch), learner, state, train,
                              frozen, config.batch_size)
      return state, info.recon_error

    epochs = carry.epoch + jnp.arange(rule.eval_every)
    state, recon = jax.lax.scan(body, carry.state, epochs)
    epoch = carry.epoch + rule.eval_every
    params = learner.model(state, hparams)
    val_pl = evaluate_fn(params, val)
    active = carry.tracker.active
    tracker = update_tracker(carry.tracker, carry.best.val_pl, val_pl, epoch, rule, keep)
    sound = active & (tracker.reason != DIVERGED) & jnp.isfinite(val_pl)
    best = keep_best(carry.best, params, jnp.where(sound, val_pl, -jnp.inf), epoch - 1,
                     learner.model_axes)
    # A stopped model's W is zeroed in the training state (its best parameters are kept
    # in ``best``): a diverged model's non-finite W would otherwise reach the block-wide
    # max |W| that picks the pseudo-likelihood's overflow-safe form.
    W = jnp.where(tracker.active[:, None, None], state.params.W, 0.0)
    state = state._replace(params=state.params._replace(W=W))
    return (SearchCarry(state, best, tracker, epoch),
            RoundInfo(recon, jnp.where(active, val_pl, jnp.nan)))

  return round_fn


def init_carry(learner, evaluate_fn, model_keys, train: Dataset, val: Dataset,
               hparams: HParams, hidden_mask, group_mask) -> SearchCarry:
  """The block's initial state; the initial models' validation PL is the reference a
  diverging model falls below."""
  state = learner.init(model_keys, train, hparams, hidden_mask, group_mask)
  m = hidden_mask.shape[0]
  initial = learner.model(state, hparams)
  best = BestEpoch(initial, jnp.full((m,), -jnp.inf), jnp.full((m,), -1, jnp.int32))
  return SearchCarry(state, best, init_tracker((m,), evaluate_fn(initial, val)),
                     jnp.asarray(0, jnp.int32))


# -- host side --------------------------------------------------------------------------

class Halving(NamedTuple):
  """Successive halving: at epochs ``first_rung x eta^k`` keep the best ``1/eta`` of the
  models still in the race (ranked by best validation PL so far; converged models keep
  their place and score). ``min_models``: never halve below this many."""
  eta: float = 2.0
  first_rung: int = 4
  min_models: int = 1


def halving_rungs(halving: Halving, max_epochs: int) -> list:
  """The epochs at which successive halving cuts: first_rung x eta^k below max_epochs."""
  rungs, r = [], float(halving.first_rung)
  while r < max_epochs:
    rungs.append(int(round(r)))
    r *= halving.eta
  return rungs


def halving_keep(scores: np.ndarray, alive: np.ndarray, active: np.ndarray,
                 fraction: float, min_models: int = 1) -> np.ndarray:
  """Host-side: a [M] keep mask that stops the active models outside the best
  ``fraction`` of the ``alive`` ones by ``scores`` (higher is better)."""
  scores = np.where(alive & np.isfinite(scores), scores, -np.inf)
  n_keep = max(int(math.ceil(alive.sum() * fraction)), min_models)
  order = np.argsort(-scores, kind="stable")
  keep = np.zeros(scores.shape, bool)
  keep[order[:n_keep]] = True
  return keep | ~active


def bucket_size(count: int, total: int) -> int:
  """The power-of-two bucket (at most ``total``) that holds ``count`` active models."""
  size = 1
  while size < count:
    size *= 2
  return min(size, total)


@functools.lru_cache(maxsize=64)
def compiled_search(config: TrainConfig, num_aux: int, rule: StopRule, num_models: int,
                    make_evaluate: Callable = make_block_evaluate):
  """(learner, jitted round_fn, jitted init) for a static setting, cached so that repeated
  searches on data of the same shapes (the sparsity experiment's draws, the splits of a
  fit) compile once. ``make_evaluate(config) -> evaluate_fn(params, val) -> [M]`` is the
  validation criterion (higher is better; hashable)."""
  learner = cd(config, num_aux, over_models=True)
  evaluate = make_evaluate(config)
  round_fn = jax.jit(make_round(learner, config, evaluate, rule))
  init = jax.jit(lambda keys, tr, va, hp, hm, gm: init_carry(
      learner, evaluate, keys, tr, va, hp, hm, gm))  # keys: [num_models] model keys
  return learner, round_fn, init


class SearchResult(NamedTuple):
  """A search's outcome per model ([M] unless said)."""
  best_val_pl: np.ndarray
  best_epoch: np.ndarray        # 0-based epoch of the best evaluation, -1 if none
  epochs: np.ndarray            # epochs trained
  reason: List[str]             # why each stopped
  params: CRBMParams            # best-epoch parameters, model axes as the block learner's
  val_history: np.ndarray       # [M, R] validation PL per round (NaN once stopped)
  recon_history: np.ndarray     # [M, R * eval_every] reconstruction error per epoch
  eval_epochs: np.ndarray       # [R] epoch (0-based) of each evaluation
  seconds: float
  rounds: int
  buckets: tuple                # the bucket sizes used
  param_index: Optional[np.ndarray] = None  # [M] model -> index in params, -1 = not kept
                                            # (learn.plan's chunked search); None: identity


def run_search(rng_key: PRNGKey, train: Dataset, val: Dataset, num_aux: int,
               config: TrainConfig, hparams: HParams, hidden_mask, group_mask,
               rule: StopRule = StopRule(), *, halving: Optional[Halving] = None,
               seconds: Optional[float] = None, compact: Optional[bool] = None,
               progress: Optional[Callable[[int, int, float], None]] = None,
               make_evaluate: Callable = make_block_evaluate,
               model_keys=None) -> SearchResult:
  """Trains a block of M models with early stopping (host loop over jitted rounds).

  Args:
    rng_key: split into the models' initial keys and the shared data key, as
      ``block``'s callers do (model m's key: ``split(model_key, M)[m]``).
    train: padded to a multiple of ``config.batch_size`` here; val: validation Dataset.
    hparams: HParams of [M] arrays; hidden_mask [M, H]; group_mask [M, G].
    halving: successive halving (None: every model runs until its own rule stops it).
    seconds: wall-clock budget; when spent, the models still running stop ('budget').
    compact: train only the active models' power-of-two bucket (module docstring); None
      decides by size: compact when the block has at least ``COMPACT_MIN_WORK`` model x
      training-row units, below which the extra compilations cost more than they save.
    progress: called as ``progress(epoch, active, best)`` after each round.
    make_evaluate: the validation criterion's factory (``compiled_search``).
    model_keys: [M] the models' initial keys (default ``split(split(rng_key)[0], M)``;
      ``learn.plan`` passes a slice of a larger block's keys when it trains in chunks).
  """
  start = time.perf_counter()
  train = pad_dataset(train, config.batch_size)
  m = hidden_mask.shape[0]
  if compact is None:
    compact = m * train.v.shape[0] * config.num_hidden >= COMPACT_MIN_WORK
  _, round_fn, init = compiled_search(config, num_aux, rule, m, make_evaluate)
  key_models, key_data = jax.random.split(rng_key)
  if model_keys is None:
    model_keys = jax.random.split(key_models, m)
  carry = init(model_keys, train, val, hparams, jnp.asarray(hidden_mask),
               jnp.asarray(group_mask))
  rungs = [] if halving is None else halving_rungs(halving, rule.max_epochs)
  val_hist, recon_hist, eval_epochs, buckets = [], [], [], set()
  alive = np.ones(m, bool)        # not diverged and not halved: still in the race
  keep_all = jnp.ones(m, bool)
  rounds = 0
  while True:
    active = np.asarray(carry.tracker.active)
    if not active.any():
      break
    if seconds is not None and rounds > 0 and time.perf_counter() - start > seconds:
      carry = carry._replace(tracker=stop_models(carry.tracker, active, BUDGET))
      break
    idx = np.flatnonzero(active)
    size = bucket_size(len(idx), m) if compact else m
    buckets.add(size)
    if size < m:
      index = np.concatenate([idx, np.flatnonzero(~active)[: size - len(idx)]])
      part = take_models(carry._replace(epoch=None), CARRY_AXES, jnp.asarray(index))
      new, info = round_fn(key_data, part._replace(epoch=carry.epoch), train, val,
                           take_models(hparams, HPARAM_AXES, jnp.asarray(index)),
                           keep_all[: size])
      carry = put_models(carry._replace(epoch=None), CARRY_AXES, jnp.asarray(index),
                         new._replace(epoch=None))._replace(epoch=new.epoch)
      val_pl = np.full(m, np.nan)
      val_pl[idx] = np.asarray(info.val_pl)[: len(idx)]
      recon = np.full((rule.eval_every, m), np.nan)
      recon[:, idx] = np.asarray(info.recon_error)[:, : len(idx)]
    else:
      carry, info = round_fn(key_data, carry, train, val, hparams, keep_all)
      val_pl, recon = np.asarray(info.val_pl), np.asarray(info.recon_error)
    rounds += 1
    epoch = int(carry.epoch)
    val_hist.append(val_pl)
    recon_hist.append(recon)
    eval_epochs.append(epoch - 1)
    reason = np.asarray(carry.tracker.reason)
    alive &= reason != DIVERGED
    if rungs and epoch >= rungs[0]:
      while rungs and epoch >= rungs[0]:
        rungs.pop(0)
      active = np.asarray(carry.tracker.active)
      keep = halving_keep(np.asarray(carry.best.val_pl), alive, active,
                          1.0 / halving.eta, halving.min_models)
      carry = carry._replace(tracker=stop_models(carry.tracker, ~keep, HALVED))
      alive &= keep
    if progress is not None:
      scores = np.asarray(carry.best.val_pl)
      progress(epoch, int(np.asarray(carry.tracker.active).sum()),
               float(scores[np.isfinite(scores)].max()) if np.isfinite(scores).any()
               else float("nan"))
  best = jax.device_get(carry.best)
  tracker = jax.device_get(carry.tracker)
  return SearchResult(
      best_val_pl=np.asarray(best.val_pl), best_epoch=np.asarray(best.epoch),
      epochs=np.asarray(tracker.epochs), reason=[REASONS[int(r)] for r in tracker.reason],
      params=best.params,
      val_history=np.stack(val_hist, 1) if val_hist else np.zeros((m, 0)),
      recon_history=(np.concatenate(recon_hist, 0).T if recon_hist
                     else np.zeros((m, 0))),
      eval_epochs=np.asarray(eval_epochs), seconds=time.perf_counter() - start,
      rounds=rounds, buckets=tuple(sorted(buckets)))


def model_params(params: CRBMParams, index: int) -> CRBMParams:
  """One model's parameters out of a block's (W_aux [A, M, V] -> [A, V])."""
  return tree_axes_map(lambda x, ax: jnp.take(x, index, axis=ax), params, BLOCK_PARAM_AXES)


# -- the search space and model selection ------------------------------------------------

class SearchSpace(NamedTuple):
  """Values to search (each a sequence). ``batch_size`` is static: one block per value.
  ``conditioned``: True trains with the auxiliary groups, False without (an unconditional
  RBM in the same block, for the honest comparison)."""
  num_hidden: Sequence[int] = (25, 50, 100)
  learning_rate: Sequence[float] = (0.02, 0.05, 0.1, 0.2)
  l1_aux: Sequence[float] = (0.0, 1e-4, 1e-3)
  aux_lr_scale: Sequence[float] = (1.0, 10.0, 30.0, 100.0)
  weight_decay: Sequence[float] = (0.0, 1e-4, 1e-3)
  batch_size: Sequence[int] = (100,)
  momentum: Sequence[float] = (0.5,)
  conditioned: Sequence[bool] = (True,)

  def size(self) -> int:
    return int(np.prod([len(v) for v in self]))


SPACE_FIELDS = SearchSpace._fields


def sample_configs(space: SearchSpace, num_configs: Optional[int], seed: int) -> List[dict]:
  """``num_configs`` distinct points of the grid (all of it when None or larger),
  drawn without replacement by a seeded permutation; sorted by batch size."""
  grid = [dict(zip(SPACE_FIELDS, values))
          for values in itertools.product(*[getattr(space, f) for f in SPACE_FIELDS])]
  if num_configs is not None and num_configs < len(grid):
    order = np.random.default_rng(seed).permutation(len(grid))[:num_configs]
    grid = [grid[i] for i in sorted(order)]
  return sorted(grid, key=lambda c: c["batch_size"])


class Selection(NamedTuple):
  """The outcome of ``select_model``.

  config: the chosen configuration (a dict of SPACE_FIELDS); params: its best-epoch
  parameters (one model); val_pl, best_epoch: its validation PL and epoch; table: one
  dict per configuration tried (its values, best_val_pl, best_epoch, epochs, stopped);
  results: batch size -> (configs, SearchResult) for callers that want more (curves).
  """
  config: dict
  params: CRBMParams
  val_pl: float
  best_epoch: int
  table: List[dict]
  results: Dict[int, tuple]
  seconds: float


def select_model(rng_key: PRNGKey, train: Dataset, val: Dataset, num_aux: int,
                 space: SearchSpace = SearchSpace(), *, rule: StopRule = StopRule(),
                 num_configs: Optional[int] = 48, seconds: Optional[float] = None,
                 halving: Optional[Halving] = Halving(), base: Optional[TrainConfig] = None,
                 group_mask: Optional[np.ndarray] = None, seed: int = 0,
                 progress: Optional[Callable[[str], None]] = None,
                 only_conditioned: bool = True,
                 configs: Optional[List[dict]] = None,
                 compact: Optional[bool] = None,
                 make_evaluate: Callable = make_block_evaluate,
                 models_per_chunk: Optional[int] = None) -> Selection:
  """Validation search: the configuration with the best validation PL.

  Args:
    train, val: Datasets (val: held-out observations of entities seen in training, so
      the auxiliary rows are what is judged).
    space, num_configs, seed: what to try (``sample_configs``).
    rule: the early-stopping rule of every model; halving: successive halving rungs.
    seconds: the wall-clock budget of the whole search, shared among batch sizes.
    base: static settings other than num_hidden / batch_size (cd_k, weight_scale, ...).
    group_mask: [G] the conditioned models' auxiliary groups (default all).
    only_conditioned: choose among conditioned configurations only (the unconditional
      ones, if the space has them, are for comparison).
    configs: the configurations to try (dicts of SPACE_FIELDS), instead of sampling
      ``space``.
    compact, make_evaluate: passed to ``run_search``.
    models_per_chunk: train at most this many models at once (``learn.plan``'s memory
      plan; only the best parameters of each chunk are kept).
  Raises:
    DivergenceError: every configuration diverged.
  """
  start = time.perf_counter()
  base = base or TrainConfig()
  configs = sample_configs(space, num_configs, seed) if configs is None else sorted(
      configs, key=lambda c: c["batch_size"])
  num_groups = train.aux.shape[-1]
  gm = np.ones(num_groups, np.float32) if group_mask is None else np.asarray(group_mask,
                                                                             np.float32)
  by_batch: Dict[int, list] = {}
  for c in configs:
    by_batch.setdefault(int(c["batch_size"]), []).append(c)
  table, results = [], {}
  for i, (batch, cs) in enumerate(sorted(by_batch.items())):
    remaining = None
    if seconds is not None:
      left = seconds - (time.perf_counter() - start)
      remaining = max(left / (len(by_batch) - i), 1e-3)
    points = [GridPoint(int(c["num_hidden"]), float(c["learning_rate"]),
                        float(c["momentum"]), float(c["weight_decay"]), float(c["l1_aux"]),
                        float(c["aux_lr_scale"])) for c in cs]
    num_hidden = max(p.num_hidden for p in points)
    config = dataclasses.replace(base, num_hidden=num_hidden, batch_size=batch)
    groups = np.stack([gm if c["conditioned"] else np.zeros_like(gm) for c in cs])
    report = None
    if progress is not None:
      report = lambda e, a, b, batch=batch, n=len(cs): progress(
          f"batch {batch}: epoch {e}, {a}/{n} models training, best val PL {b:.4f}")
    run = run_search
    if models_per_chunk is not None and models_per_chunk < len(cs):
      from crbm_jax.learn import plan  # pylint: disable=import-outside-toplevel
      run = functools.partial(plan.run_search_chunked, models_per_chunk=models_per_chunk,
                              conditioned=np.array([bool(c["conditioned"]) for c in cs]))
    result = run(jax.random.fold_in(rng_key, batch), train, val, num_aux, config,
                 stack_hparams(points), hidden_masks(points, num_hidden), groups,
                 rule, halving=halving, seconds=remaining, progress=report,
                 compact=compact, make_evaluate=make_evaluate)
    results[batch] = (cs, result)
    for j, c in enumerate(cs):
      table.append(dict(c, best_val_pl=float(result.best_val_pl[j]),
                        best_epoch=int(result.best_epoch[j]),
                        epochs=int(result.epochs[j]), stopped=result.reason[j]))
  candidates = [k for k, row in enumerate(table)
                if np.isfinite(row["best_val_pl"]) and row["best_epoch"] >= 0
                and (row["conditioned"] or not only_conditioned)]
  if not candidates:
    lrs = sorted({c["learning_rate"] for c in configs})
    raise DivergenceError(
        f"every configuration of the search diverged or never improved on its start "
        f"(learning rates {lrs}); lower the learning rates or the aux_lr_scale values")
  row = table[max(candidates, key=lambda k: table[k]["best_val_pl"])]
  return Selection({f: row[f] for f in SPACE_FIELDS}, row_params(results, row),
                   row["best_val_pl"], row["best_epoch"], table, results,
                   time.perf_counter() - start)


def row_index(results: Dict[int, tuple], row: dict):
  """(SearchResult, model index) of a search-table row."""
  cs, result = results[int(row["batch_size"])]
  return result, next(j for j, c in enumerate(cs)
                      if all(c[f] == row[f] for f in SPACE_FIELDS))


def row_params(results: Dict[int, tuple], row: dict) -> CRBMParams:
  """The best-epoch parameters of a search-table row, hidden padding removed."""
  result, j = row_index(results, row)
  if result.param_index is not None:
    j = int(result.param_index[j])
    if j < 0:
      raise ValueError("row_params: this row's parameters were not kept (chunked search)")
  params = jax.device_get(model_params(result.params, j))
  h = int(row["num_hidden"])
  return params._replace(W=params.W[:, :h], c=params.c[:h])
