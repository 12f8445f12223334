"""The training engine: one round, two drivers.

Every way this package trains a model is a use of this module:

* **The round** (``make_round``): a pure function of ``(data_key, carry, train, val,
  hparams, keep)`` that trains a block of models for a few epochs, with stopped models
  *frozen* (their learning rate times their ``active`` flag, 0: SGD, momentum, weight
  decay, the W_aux step and the L1 prox all leave them where they are), then evaluates
  the validation criterion once, keeps each model's best-epoch parameters and updates the
  per-model stopping ``Tracker``. Shapes never change, so nothing recompiles; it is
  vmappable over models (the block learner) and over a leading split axis.
* **The scan driver** (``make_scan``): no host decisions; the whole run is one
  ``lax.scan`` of rounds inside one jitted call. Fixed-epoch training (``learn.fit``,
  the block fits of ``learn.block`` and Table 2's exhaustive stages), optionally with a
  ``StopRule`` applied in-graph (frozen models cost compute, not correctness).
* **The host driver** (``run_host``): one Python loop over jitted rounds for everything
  decided between rounds: early stopping, successive halving (``Halving``), a wall-clock
  budget and *compaction* (the models still training, padded with frozen ones to a
  power-of-two bucket, gathered into a smaller block; at most log2(M) + 1 shapes
  compile). It serves ``crbm-fit``'s search (``learn.search.run_search``), Table 2's
  adaptive search (``learn.halving.run_halving``), the smoothing selection and the
  estimator.

A driver takes a ``Learner`` factory (``learn.cd``, ``learn.pcd``,
``learn.parallel_tempering``: ``factory(config, num_aux, over_models=True)``), a stop
rule, an optional split axis and the validation criterion as a factory
``make_evaluate(config) -> evaluate_fn(params_block, val) -> [M]`` (higher is better,
pure, vmappable over a split axis, hashable: compiled drivers are cached on it).

Common random numbers: epoch e of every model draws its minibatches and Gibbs noise from
``fold_in(data_key, e)`` (``run_epoch``), shared by a block, so a model's trajectory does
not depend on its block mates, on freezing or on compaction (to float rounding).
"""
from __future__ import annotations

import functools
import math
import time
from typing import Callable, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn.base import (Dataset, History, HParams, Learner, TrainConfig,
                                 batch_rows)
from crbm_jax.learn.evaluate import AXIS, SPLIT_AXIS, make_block_evaluate, split_evaluate
from crbm_jax.learn.learner import BLOCK_PARAM_AXES, BLOCK_STATE_AXES, cd
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.types import Array, PRNGKey

INT32_MAX = 2 ** 31 - 1
REASONS = ("running", "converged", "max_epochs", "diverged", "halved", "budget")
RUNNING, CONVERGED, MAX_EPOCHS, DIVERGED, HALVED, BUDGET = range(len(REASONS))


class DivergenceError(ValueError):
  """Training diverged: the validation pseudo-likelihood became non-finite or fell far
  below its best. The message says which value to lower."""


# -- one epoch ----------------------------------------------------------------------------

def epoch_minibatches(rng_key: PRNGKey, n: int, batch_size: int):
  """Per-step keys [S] and a shuffled order [S, batch_size] of rows (S = n // batch_size)."""
  num_batches = n // batch_size
  key_perm, key_steps = jax.random.split(rng_key)
  order = jax.random.permutation(key_perm, n)[: num_batches * batch_size]
  return jax.random.split(key_steps, num_batches), order.reshape(num_batches, batch_size)


def run_epoch(rng_key: PRNGKey, learner: Learner, state, data: Dataset, hparams: HParams,
              batch_size: int):
  """One shuffled pass over ``data`` (N a multiple of batch_size; pad with weight 0).

  Returns (state, StepInfo averaged over the epoch's steps).
  """
  def body(state, xs):
    key, idx = xs
    batch = batch_rows(data, idx)
    return learner.step(key, state, batch, hparams)

  state, info = jax.lax.scan(body, state,
                             epoch_minibatches(rng_key, data.v.shape[0], batch_size))
  return state, jax.tree.map(lambda x: jnp.mean(x, axis=0), info)


# -- the best epoch and the stopping rule -------------------------------------------------

class BestEpoch(NamedTuple):
  """The parameters of the best epoch so far by the validation criterion."""
  params: CRBMParams
  val_pl: Array
  epoch: Array


def _per_model(flag: Array, axis: Optional[int], ndim: int) -> Array:
  """A [*M] flag shaped to broadcast against a leaf whose model axis is ``axis``."""
  if axis is None or flag.ndim == 0:
    return flag
  return flag.reshape((1,) * axis + flag.shape + (1,) * (ndim - axis - 1))


def keep_best(best: BestEpoch, params: CRBMParams, val_pl: Array, epoch: Array,
              model_axes: Optional[CRBMParams] = None) -> BestEpoch:
  """``best`` updated where ``val_pl`` improves (per model of a block)."""
  better = val_pl > best.val_pl
  axes = model_axes if model_axes is not None else jax.tree.map(lambda _: None, params)
  kept = jax.tree.map(lambda new, old, ax: jnp.where(_per_model(better, ax, new.ndim), new,
                                                     old), params, best.params, axes)
  return BestEpoch(kept, jnp.where(better, val_pl, best.val_pl),
                   jnp.where(better, epoch, best.epoch))


class _StopFields(NamedTuple):
  patience: int = 8
  tol: float = 1e-4
  num_epochs: int = 300
  eval_every: int = 1
  diverge_margin: float = 0.5


class StopRule(_StopFields):
  """When a model stops (static: part of the compiled round).

  patience: evaluations without an improvement larger than ``tol`` before it stops.
  tol: the improvement (of the validation criterion) that counts.
  num_epochs: the epoch budget (the one spelling of epochs).
  eval_every: epochs per round (between validation evaluations).
  diverge_margin: a validation score this far below the model's best (or non-finite)
    means it diverged.
  """
  __slots__ = ()

  def __new__(cls, patience: int = 8, tol: float = 1e-4, num_epochs: int = 300,
              eval_every: int = 1, diverge_margin: float = 0.5):
    return super().__new__(cls, patience, tol, num_epochs, eval_every, diverge_margin)


class Tracker(NamedTuple):
  """Per-model stopping state ([*M] arrays)."""
  stale: Array    # int: evaluations since the last improvement > tol
  active: Array   # bool
  reason: Array   # int index into REASONS
  epochs: Array   # int: epochs trained
  start: Array    # float: the validation score of the initial model (divergence reference)


def init_tracker(shape, start=None) -> Tracker:
  start = jnp.full(shape, -jnp.inf) if start is None else jnp.asarray(start, jnp.float32)
  return Tracker(jnp.zeros(shape, jnp.int32), jnp.ones(shape, bool),
                 jnp.full(shape, RUNNING, jnp.int32), jnp.zeros(shape, jnp.int32), start)


def update_tracker(tracker: Tracker, best_before: Array, val_pl: Array, epochs_done: Array,
                   rule: StopRule, keep: Optional[Array] = None) -> Tracker:
  """The tracker after an evaluation (pure).

  Args:
    best_before: [*M] each model's best validation score before this evaluation.
    val_pl: [*M] this evaluation's validation score.
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
           (jnp.broadcast_to(epochs_done >= rule.num_epochs, active.shape), MAX_EPOCHS)]
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


# -- the round ----------------------------------------------------------------------------

class Carry(NamedTuple):
  """What a round carries (leading model axis M; ``epoch`` is shared)."""
  state: object       # LearnerState of the block
  best: BestEpoch     # best-epoch parameters / score / epoch of each model
  tracker: Tracker
  epoch: Array        # int scalar: epochs trained so far


CARRY_AXES = Carry(BLOCK_STATE_AXES, BestEpoch(BLOCK_PARAM_AXES, 0, 0),
                   Tracker(0, 0, 0, 0, 0), None)
HPARAM_AXES = 0


class RoundInfo(NamedTuple):
  recon_error: Array  # [epochs, *M]
  val_pl: Array       # [*M] (NaN for models that were not training)


def make_round(learner: Learner, config: TrainConfig, evaluate_fn: Optional[Callable],
               rule: Optional[StopRule], epochs: Optional[int] = None):
  """Returns pure ``round_fn(data_key, carry, train, val, hparams, keep) -> (carry,
  RoundInfo)``: ``epochs`` (default ``rule.eval_every``) epochs of the block with
  stopped models frozen, then one validation evaluation, best-epoch bookkeeping and the
  tracker update.

  ``learner``: a block learner (``cd(config, num_aux, over_models=True)``) or a
  one-model learner; ``evaluate_fn(params, val) -> [*M]`` (None: no validation, the
  score is NaN); ``rule`` None: no model ever stops (fixed-epoch training; the best epoch
  is the best score, NaN never counting); ``keep`` [*M] bool (host decisions). Epoch e
  draws its minibatches and noise from ``fold_in(data_key, e)``.
  """
  epochs = rule.eval_every if epochs is None else epochs
  train_fn = make_train(learner, config, rule, epochs)
  finish = make_finish(learner, evaluate_fn, rule)

  def round_fn(data_key: PRNGKey, carry: Carry, train: Dataset, val: Dataset,
               hparams: HParams, keep: Array):
    carry, recon = train_fn(data_key, carry, train, hparams)
    carry, val_pl = finish(carry, carry.epoch + epochs, val, hparams, keep)
    return carry, RoundInfo(recon, val_pl)

  return round_fn


def make_train(learner: Learner, config: TrainConfig, rule: Optional[StopRule],
               epochs: int):
  """Returns pure ``train_fn(data_key, carry, train, hparams) -> (carry, recon [epochs,
  *M])``: the training part of a round (``make_round``): ``epochs`` epochs from
  ``carry.epoch`` with the stopped models frozen; only ``carry.state`` changes."""

  def train_fn(data_key: PRNGKey, carry: Carry, train: Dataset, hparams: HParams):
    frozen = frozen_hparams(hparams, carry.tracker.active, rule)

    def body(state, epoch):
      state, info = run_epoch(jax.random.fold_in(data_key, epoch), learner, state, train,
                              frozen, config.batch_size)
      return state, info.recon_error

    state, recon = jax.lax.scan(body, carry.state, carry.epoch + jnp.arange(epochs))
    return carry._replace(state=state), recon

  return train_fn


def frozen_hparams(hparams: HParams, active: Array, rule: Optional[StopRule]) -> HParams:
  """The hyperparameters with the stopped models' learning rate 0 (frozen)."""
  if rule is None:
    return hparams
  return hparams._replace(learning_rate=hparams.learning_rate * active.astype(
      hparams.learning_rate.dtype))


def make_finish(learner: Learner, evaluate_fn: Optional[Callable],
                rule: Optional[StopRule]):
  """Returns pure ``finish(carry, epoch, val, hparams, keep) -> (carry, val_pl)``: the end
  of a round whose training is done (``carry.state`` trained, ``carry.best``,
  ``carry.tracker`` and ``carry.epoch`` as at the round's start; ``epoch`` the epochs
  trained after it): one validation evaluation (``make_score``), then ``make_settle``."""
  return _finish_of(make_score(learner, evaluate_fn), make_settle(learner, rule))


def _finish_of(score, settle):
  """``finish(carry, epoch, val, hparams, keep)``: ``score`` then ``settle`` (pure
  functions, or their jitted programs)."""

  def finish(carry: Carry, epoch: Array, val: Dataset, hparams: HParams, keep: Array):
    return settle(carry, epoch, score(carry.state, hparams, val), hparams, keep)

  return finish


def make_score(learner: Learner, evaluate_fn: Optional[Callable]):
  """Returns pure ``score(state, hparams, val) -> [*M]`` (None without a criterion): the
  validation criterion of the models a learner state holds. The host driver compiles it
  on its own, once per shape: the initial models' reference and every round's evaluation
  share that program."""
  if evaluate_fn is None:
    return lambda state, hparams, val: None
  return lambda state, hparams, val: evaluate_fn(learner.model(state, hparams), val)


def make_settle(learner: Learner, rule: Optional[StopRule]):
  """Returns pure ``settle(carry, epoch, val_pl, hparams, keep) -> (carry, val_pl)``: the
  bookkeeping after an evaluation (``val_pl`` [*M]; None: no criterion, NaN): the
  best-epoch parameters, the tracker update (``make_round``), and the stopped models' W
  zeroed. The returned ``val_pl`` is NaN for the models that were not training."""
  axes = learner.model_axes
  w_axis = None if axes is None else axes.W

  def settle(carry: Carry, epoch: Array, val_pl: Optional[Array], hparams: HParams,
             keep: Array):
    active = carry.tracker.active
    state = carry.state
    params = learner.model(state, hparams)
    shape = carry.best.val_pl.shape
    val_pl = jnp.full(shape, jnp.nan) if val_pl is None else val_pl
    if rule is None:
      tracker = carry.tracker._replace(epochs=jnp.full(shape, epoch, jnp.int32))
      best = keep_best(carry.best, params, val_pl, epoch - 1, axes)
      return Carry(state, best, tracker, epoch), val_pl
    tracker = update_tracker(carry.tracker, carry.best.val_pl, val_pl, epoch, rule, keep)
    sound = active & (tracker.reason != DIVERGED) & jnp.isfinite(val_pl)
    best = keep_best(carry.best, params, jnp.where(sound, val_pl, -jnp.inf), epoch - 1,
                     axes)
    # A stopped model's W is zeroed in the training state (its best parameters are kept
    # in ``best``): a diverged model's non-finite W would otherwise reach the block-wide
    # max |W| that picks the pseudo-likelihood's overflow-safe form.
    W = state.params.W
    W = jnp.where(_per_model(tracker.active, w_axis, W.ndim), W, 0.0)
    state = state._replace(params=state.params._replace(W=W))
    return (Carry(state, best, tracker, epoch), jnp.where(active, val_pl, jnp.nan))

  return settle


def make_segment(learner: Learner, config: TrainConfig, rule: Optional[StopRule]):
  """Returns pure ``segment(data_key, state, active, train, hparams, epoch, start, stop)
  -> (state, recon_sum)``: steps ``start`` to ``stop`` (traced: one compiled program
  serves every length) of epoch ``epoch``'s minibatches, the same steps with the same keys
  as ``run_epoch`` takes, so an epoch cut into segments trains exactly as one whole
  epoch. ``recon_sum``: the reconstruction error summed over the steps. The host driver
  uses it to stop within a time budget in the middle of an epoch."""

  def segment(data_key, state, active, train: Dataset, hparams: HParams, epoch, start,
              stop):
    frozen = frozen_hparams(hparams, active, rule)
    keys, order = epoch_minibatches(jax.random.fold_in(data_key, epoch),
                                    train.v.shape[0], config.batch_size)

    def body(s, acc):
      state, total = acc
      batch = batch_rows(train, order[s])
      state, info = learner.step(keys[s], state, batch, frozen)
      return state, total + info.recon_error

    probe = batch_rows(train, order[0])
    shape = jax.eval_shape(lambda st: learner.step(keys[0], st, probe, frozen)[1],
                           state).recon_error
    return jax.lax.fori_loop(start, stop, body,
                             (state, jnp.zeros(shape.shape, shape.dtype)))

  return segment


def init_carry(learner: Learner, evaluate_fn: Optional[Callable], model_keys,
               train: Dataset, val: Optional[Dataset], hparams: HParams, hidden_mask=None,
               group_mask=None, reference: bool = True) -> Carry:
  """The block's initial state; with ``reference``, the initial models' validation score
  is the level a diverging model falls below."""
  state = learner.init(model_keys, train, hparams, hidden_mask, group_mask)
  initial = learner.model(state, hparams)
  shape = initial.b.shape[:-1]                                             # () or (M,)
  # float32, not weakly typed: the round returns a strong float32 score, and a weak one
  # here made the host driver compile its round twice (once for the initial carry).
  best = BestEpoch(initial, jnp.full(shape, -jnp.inf, jnp.float32),
                  jnp.full(shape, -1, jnp.int32))
  start = evaluate_fn(initial, val) if reference and evaluate_fn is not None else None
  return Carry(state, best, init_tracker(shape, start), jnp.asarray(0, jnp.int32))


# -- the scan driver: the whole run in one call -------------------------------------------

def make_scan(learner: Learner, config: TrainConfig, evaluate_fn: Optional[Callable],
              rule: Optional[StopRule] = None):
  """Returns pure ``run_fn(model_keys, data_key, train, val, hparams, hidden_mask=None,
  group_mask=None) -> (Carry, History)``: ``config.num_epochs`` epochs in rounds of
  ``config.eval_every`` (validation after each round and after the last epoch), no host
  decision; jit it, vmap it over splits.

  ``rule`` None trains every model for every epoch (the paper's fixed-epoch protocol,
  best epoch by validation); a ``StopRule`` (its num_epochs / eval_every replaced by the
  config's) stops models in-graph by freezing them. Without ``evaluate_fn`` the last
  epoch is kept. History: recon_error and val_pl [E, *M], val_pl NaN at the epochs not
  evaluated.
  """
  num_epochs = config.num_epochs
  every = max(1, int(config.eval_every))
  rounds, rest = divmod(num_epochs, every)
  if rule is not None:
    rule = rule._replace(num_epochs=num_epochs, eval_every=every)
  full_round = make_round(learner, config, evaluate_fn, rule, every)
  last_round = make_round(learner, config, evaluate_fn, rule, rest) if rest else None

  def history(infos: RoundInfo, n: int) -> History:
    """[R, n, *M] recon and [R, *M] scores -> per-epoch [R * n, *M] arrays."""
    r = infos.val_pl.shape[0]
    val = jnp.full((r, n) + infos.val_pl.shape[1:], jnp.nan)
    val = val.at[:, n - 1].set(infos.val_pl)
    flat = lambda x: x.reshape((r * n,) + x.shape[2:])
    return History(flat(infos.recon_error), flat(val))

  def run_fn(model_keys, data_key, train: Dataset, val: Optional[Dataset],
             hparams: HParams, hidden_mask=None, group_mask=None):
    carry = init_carry(learner, evaluate_fn, model_keys, train, val, hparams, hidden_mask,
                       group_mask, reference=rule is not None)
    keep = jnp.ones(carry.best.val_pl.shape, bool)
    parts = []
    if rounds:
      carry, infos = jax.lax.scan(
          lambda c, _: full_round(data_key, c, train, val, hparams, keep), carry, None,
          length=rounds)
      parts.append(history(infos, every))
    if last_round is not None:
      carry, info = last_round(data_key, carry, train, val, hparams, keep)
      parts.append(history(jax.tree.map(lambda x: x[None], info), rest))
    hist = History(*(jnp.concatenate(x, 0) for x in zip(*parts))) if parts else History(
        jnp.zeros((0,) + keep.shape), jnp.zeros((0,) + keep.shape))
    if evaluate_fn is None and num_epochs > 0:  # no validation: the last epoch is kept
      shape = keep.shape
      carry = carry._replace(best=BestEpoch(learner.model(carry.state, hparams),
                                            jnp.full(shape, jnp.nan),
                                            jnp.full(shape, num_epochs - 1, jnp.int32)))
    return carry, hist

  return run_fn


# -- the host driver: decisions between rounds --------------------------------------------

class Halving(NamedTuple):
  """Successive halving: at epochs ``first_rung x eta^k`` keep the best ``1/eta`` of the
  models still in the race (ranked by best validation score so far, averaged over the
  splits; converged models keep their place and score). ``min_models``: never halve
  below this many."""
  eta: float = 2.0
  first_rung: int = 4
  min_models: int = 1


def halving_rungs(halving: Halving, num_epochs: int) -> list:
  """The epochs at which successive halving cuts: first_rung x eta^k below num_epochs."""
  rungs, r = [], float(halving.first_rung)
  while r < num_epochs:
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


def tree_axes_map(fn, tree, axes):
  """``fn(leaf, axis)`` over a pytree whose model axes are given by a prefix tree."""
  return jax.tree.map(lambda ax, sub: jax.tree.map(lambda x: fn(x, ax), sub), axes, tree)


@functools.partial(jax.jit, static_argnums=1)
def take_models(tree, axes, index):
  """The models ``index`` [K] of a block pytree (each leaf along its model axis; ``axes``
  a hashable prefix tree of ints). Jitted: one compiled gather per bucket size."""
  return tree_axes_map(lambda x, ax: jnp.take(x, index, axis=ax), tree, axes)


@functools.lru_cache(maxsize=64)
def compiled_score(learner_factory: Callable, config: TrainConfig, num_aux: int,
                   make_evaluate: Callable, split_axis: bool):
  """``score(state, hparams, val)`` (``make_score``) jitted for a static setting (without
  a criterion it returns None and compiles nothing): one program per shape serves the
  initial models' reference and every round's evaluation, of ``compiled_host`` and of
  ``compiled_segments`` (the criterion, the costliest part of a round to compile,
  compiles once, not once inside the init and again inside the round)."""
  evaluate = make_evaluate(config)
  score = make_score(learner_factory(config, num_aux, over_models=True), evaluate)
  if evaluate is None:
    return score
  if split_axis:
    score = jax.vmap(score, in_axes=(0, None, 0), axis_name=SPLIT_AXIS)
  return jax.jit(score)


def _with_reference(start_fn, score):
  """``init``: the initial carry (``start_fn``) with the initial models' validation
  score as the divergence reference (``init_carry``), computed by ``score``."""

  def init(model_keys, train, val, hparams, hidden_mask, group_mask):
    carry = start_fn(model_keys, train, hparams, hidden_mask, group_mask)
    reference = score(carry.state, hparams, val)
    if reference is None:   # no criterion: the reference stays -inf (``init_tracker``)
      return carry
    return carry._replace(tracker=carry.tracker._replace(start=reference))

  return init


@functools.lru_cache(maxsize=64)
def compiled_host(learner_factory: Callable, config: TrainConfig, num_aux: int,
                  rule: StopRule, make_evaluate: Callable, split_axis: bool):
  """(init, round, take) for a static setting, cached so that repeated searches on data
  of the same shapes (a fit's splits, the sparsity draws, cross-validation) compile
  once. With ``split_axis`` every function is vmapped over a leading split axis
  (``SPLIT_AXIS``; ``make_evaluate`` should then reduce over it too).

  ``init`` and ``round`` have the signatures of ``init_carry`` (less the learner and
  criterion) and ``make_round`` and compute the same, but each is a few jitted programs
  called in turn: the learner's init, the training epochs (``make_train``), the
  criterion (``compiled_score``, shared) and the bookkeeping (``make_settle``)."""
  learner = learner_factory(config, num_aux, over_models=True)
  epochs = rule.eval_every
  train_fn = make_train(learner, config, rule, epochs)
  settle = make_settle(learner, rule)
  settle_round = lambda c, v, hp, k: settle(c, c.epoch + epochs, v, hp, k)
  start = lambda k, tr, hp, hm, gm: init_carry(learner, None, k, tr, None, hp, hm, gm)
  take = lambda c, i: take_models(c, CARRY_AXES, i)
  if split_axis:
    start = jax.vmap(start, in_axes=(0, 0, None, None, None), axis_name=SPLIT_AXIS)
    train_fn = jax.vmap(train_fn, in_axes=(0, 0, 0, None), axis_name=SPLIT_AXIS)
    settle_round = jax.vmap(settle_round, in_axes=(0, 0, None, None), axis_name=SPLIT_AXIS)
    take = jax.vmap(take, in_axes=(0, None))
  score = compiled_score(learner_factory, config, num_aux, make_evaluate, split_axis)
  train_fn, settle_round = jax.jit(train_fn), jax.jit(settle_round)

  def round_fn(data_key, carry: Carry, train: Dataset, val: Dataset, hparams: HParams,
               keep: Array):
    carry, recon = train_fn(data_key, carry, train, hparams)
    carry, val_pl = settle_round(carry, score(carry.state, hparams, val), hparams, keep)
    return carry, RoundInfo(recon, val_pl)

  return _with_reference(jax.jit(start), score), round_fn, jax.jit(take)


@functools.lru_cache(maxsize=64)
def compiled_segments(learner_factory: Callable, config: TrainConfig, num_aux: int,
                      rule: StopRule, make_evaluate: Callable, split_axis: bool):
  """(segment, finish) for a static setting (``make_segment``, ``make_finish``): the
  round of ``compiled_host`` in pieces, for a host driver with a time budget. The
  segment donates the training state and the finish's bookkeeping the carry (no second
  copy of W_aux while they run); the finish's criterion is ``compiled_score``'s."""
  learner = learner_factory(config, num_aux, over_models=True)
  segment = make_segment(learner, config, rule)
  settle = make_settle(learner, rule)
  if split_axis:
    segment = jax.vmap(segment, in_axes=(0, 0, 0, 0, None, None, None, None),
                       axis_name=SPLIT_AXIS)
    settle = jax.vmap(settle, in_axes=(0, None, 0, None, None), axis_name=SPLIT_AXIS)
  score = compiled_score(learner_factory, config, num_aux, make_evaluate, split_axis)
  return (jax.jit(segment, donate_argnums=(1,)),
          _finish_of(score, jax.jit(settle, donate_argnums=(0,))))


# The host driver with a time budget trains in segments of an epoch's steps, each sized
# from the measured time of a step to last about this long (at most), so that the budget
# is overrun by at most one segment and one evaluation. The first segment of a run is one
# step (it compiles); a segment is at most ``SEGMENT_GROWTH`` times the one before.
SEGMENT_SECONDS = 10.0
# Without a budget the host driver trains in segments too (whole epochs: the same models)
# when the block's W_aux has at least this many elements, for the donation's memory.
SEGMENT_MIN_ELEMENTS = 100_000_000
SEGMENT_SHARE = 0.1   # ... and at most this share of the budget
SEGMENT_GROWTH = 16
# A spent budget does not cut a round whose steps left would take less than this (the
# measured step time x steps): on small data the round is finished, not cut after a step.
CUT_SLACK_SECONDS = 1.0
CUT_SLACK_SHARE = 0.05  # ... and less than this share of the budget


class Pace:
  """The host driver's measured costs (seconds): a training step, the last evaluation
  (``finish``) and the setup (``init``: compile and the initial evaluation)."""

  def __init__(self, seconds: float):
    self.target = max(min(SEGMENT_SECONDS, SEGMENT_SHARE * seconds), 1e-6)
    self.step: Optional[float] = None
    self.last_steps = 0
    self.evaluation: Optional[float] = None
    self.setup = 0.0

  def next_steps(self, left: int) -> int:
    """Steps of the next segment (at most ``left``)."""
    if self.step is None:
      n = 1
    else:
      n = int(self.target // max(self.step, 1e-9))
      n = min(max(n, 1), max(self.last_steps, 1) * SEGMENT_GROWTH)
    self.last_steps = min(n, left)
    return self.last_steps

  def reserve(self) -> float:
    """Seconds to keep for the evaluation that closes a cut round."""
    return self.evaluation if self.evaluation is not None else self.setup


class HostResult(NamedTuple):
  """What ``run_host`` returns: per (split, model) arrays [S, M] (S = 1 without a split
  axis), the models' histories and what the run cost."""
  best_val_pl: np.ndarray       # [S, M]
  best_epoch: np.ndarray        # [S, M] 0-based epoch of the best evaluation, -1 if none
  epochs: np.ndarray            # [S, M] epochs trained
  reason: np.ndarray            # [S, M] int codes into REASONS
  params: Optional[CRBMParams]  # best-epoch parameters (host arrays) or None
  val_history: np.ndarray       # [S, M, R] validation score per round (NaN once stopped)
  recon_history: np.ndarray     # [S, M, R * eval_every] reconstruction error per epoch
  eval_epochs: np.ndarray       # [R] epoch (0-based) of each evaluation
  model_epochs: int             # epochs trained, summed over splits and models
  rounds: int
  buckets: tuple                # the block sizes used
  seconds: float
  # (epoch (0-based), steps done, steps per epoch) when the time budget cut an epoch
  # short (the models were evaluated there and stopped); None otherwise
  budget_cut: Optional[tuple] = None
  setup_seconds: float = 0.0    # init: compilation and the initial evaluation
  eval_seconds: float = 0.0     # the last evaluation (with a time budget; else 0)


def run_host(model_keys, data_keys, train: Dataset, val: Dataset, num_aux: int,
             config: TrainConfig, hparams: HParams, hidden_mask, group_mask,
             rule: StopRule = StopRule(), *, halving: Optional[Halving] = None,
             seconds: Optional[float] = None, compact: bool = False, min_bucket: int = 1,
             split_axis: bool = False, learner: Callable = cd,
             make_evaluate: Optional[Callable] = None, keep_params: bool = True,
             progress: Optional[Callable[[int, int, float], None]] = None,
             clock: Optional[Callable[[], float]] = None,
             carry: Optional[Carry] = None) -> HostResult:
  """Trains a block of M models (on S splits with ``split_axis``) in jitted rounds, with
  the host deciding between them (module docstring).

  Args:
    model_keys: [M] keys ([S, M] with split_axis); data_keys: one key ([S]).
    train, val: Datasets (stacked [S, N, ...] with split_axis); N of train a multiple of
      config.batch_size.
    hparams: HParams of [M]; hidden_mask [M, H]; group_mask [M, G].
    rule: the stopping rule of every model.
    halving: successive halving rungs, ranking by the mean over splits of the best score.
    seconds: wall-clock budget, counted from the call; when spent, the models still
      training stop ('budget'). With a budget the rounds train in segments of an epoch's
      steps (``make_segment``; the same steps and keys, so the same models to float
      rounding), sized from the measured step time (``Pace``), and the budget is
      checked between segments: when it runs out in the middle of a round (and the
      round's steps left would take more than ``CUT_SLACK_SECONDS``), the models are
      evaluated where they are and stop (``HostResult.budget_cut``). The first segment
      (one step) always runs.
    compact: train only the models still training, padded with frozen ones to a
      power-of-two bucket of at least ``min_bucket`` (results unchanged).
    learner: the learner factory, ``factory(config, num_aux, over_models=True)``.
    make_evaluate: the validation criterion's factory (module docstring; default the
      balanced pseudo-likelihood of ``learn.block.make_block_evaluate``, over the split
      axis too when there is one).
    keep_params: return the best-epoch parameters of every model (host copy).
    progress: called as ``progress(epoch, models training, best score)`` per round.
    clock: the time in seconds (default ``time.perf_counter``; tests inject one).
    carry: the block's models as trained so far (the round's carry; default: ``init``'s
      initial models): ``learn.halving`` trains the first rung in other blocks.
  """
  clock = clock or time.perf_counter
  start = clock()
  if make_evaluate is None:
    make_evaluate = split_evaluate if split_axis else make_block_evaluate
  init, round_fn, take = compiled_host(learner, config, num_aux, rule, make_evaluate,
                                       split_axis)
  m = hidden_mask.shape[0]
  check_block_size(m, num_aux, train.v.shape[-1])
  pace = None
  if seconds is not None or m * num_aux * train.v.shape[-1] >= SEGMENT_MIN_ELEMENTS:
    segment_fn, finish_fn = compiled_segments(learner, config, num_aux, rule,
                                              make_evaluate, split_axis)
    pace = Pace(SEGMENT_SECONDS / SEGMENT_SHARE if seconds is None else seconds)
  if carry is None:
    carry = init(model_keys, train, val, hparams, jnp.asarray(hidden_mask),
                 jnp.asarray(group_mask))
  if pace is not None:
    jax.block_until_ready(carry.tracker.start)
    pace.setup = clock() - start
  budget_cut = None
  lead = 1 if split_axis else 0
  splits = int(model_keys.shape[0]) if split_axis else 1
  host = lambda x: np.asarray(x).reshape(splits, -1)                      # [S, block]
  best_val = np.full((splits, m), -np.inf)
  best_epoch = np.full((splits, m), -1)
  reason = np.zeros((splits, m), int)
  epochs = np.zeros((splits, m), int)
  params = None      # the host copy of the best parameters, made at the first record
  param_axes = jax.tree.map(lambda ax: ax + lead, BLOCK_PARAM_AXES)
  members = np.arange(m)

  def record(carry, members):
    nonlocal params
    best_val[:, members] = host(carry.best.val_pl)
    best_epoch[:, members] = host(carry.best.epoch)
    reason[:, members] = host(carry.tracker.reason)
    epochs[:, members] = host(carry.tracker.epochs)
    if keep_params:
      best = jax.device_get(carry.best.params)
      if params is None:
        # the whole block, once (without compaction the only record: no second copy)
        params = jax.tree.map(np.array if compact else np.asarray, best)
        return

      def put(whole, part, ax):
        whole[(slice(None),) * ax + (members,)] = np.asarray(part)
      jax.tree.map(lambda ax, w, p: put(w, p, ax), param_axes, params, best)

  rungs = [] if halving is None else halving_rungs(halving, rule.num_epochs)
  val_hist, recon_hist, eval_epochs, buckets = [], [], [], set()
  alive = np.ones(m, bool)        # not diverged and not halved: still in the race
  rounds = model_epochs = 0
  while True:
    active = host(carry.tracker.active)
    training = active.any(0)
    if not training.any():
      break
    if seconds is not None and rounds > 0 and clock() - start > seconds:
      carry = carry._replace(tracker=stop_models(carry.tracker, carry.tracker.active,
                                                 BUDGET))
      break
    if compact:
      size = min(max(bucket_size(int(training.sum()), m), min_bucket), len(members))
      if size < len(members):  # shrink: the training models, padded with frozen ones
        record(carry, members)
        index = np.concatenate([np.flatnonzero(training),
                                np.flatnonzero(~training)[: size - int(training.sum())]])
        carry = take(carry._replace(epoch=None), jnp.asarray(index))._replace(
            epoch=carry.epoch)
        hparams = jax.tree.map(lambda x: x[jnp.asarray(index)], hparams)
        members = members[index]
    buckets.add(len(members))
    model_epochs += int(active.sum()) * rule.eval_every
    if pace is None:
      carry, info = round_fn(data_keys, carry, train, val, hparams,
                             jnp.ones(len(members), bool))
    else:
      carry, info, budget_cut = _budget_round(
          segment_fn, finish_fn, pace, clock, start,
          np.inf if seconds is None else seconds, data_keys, carry, train, val,
          hparams, jnp.ones(len(members), bool), rule.eval_every, config.batch_size,
          split_axis)
    rounds += 1
    epoch = int(np.asarray(carry.epoch).max())
    val_pl = np.full((splits, m), np.nan)
    val_pl[:, members] = host(info.val_pl)
    recon = np.full((rule.eval_every, splits, m), np.nan)
    block_recon = np.asarray(info.recon_error)            # [E, M] or [S, E, M]
    recon[:, :, members] = (np.moveaxis(block_recon, 0, 1) if split_axis
                            else block_recon[:, None])
    val_hist.append(val_pl)
    recon_hist.append(recon)
    eval_epochs.append(epoch - 1)
    best_val[:, members] = host(carry.best.val_pl)
    alive[members] &= ~(host(carry.tracker.reason) == DIVERGED).any(0)
    if rungs and epoch >= rungs[0]:
      while rungs and epoch >= rungs[0]:
        rungs.pop(0)
      training = np.zeros(m, bool)
      training[members] = host(carry.tracker.active).any(0)
      keep = halving_keep(best_val.mean(0), alive, training, 1.0 / halving.eta,
                          halving.min_models)
      carry = carry._replace(tracker=stop_models(carry.tracker, ~keep[members], HALVED))
      alive &= keep
    if budget_cut is not None:
      carry = carry._replace(tracker=stop_models(carry.tracker, carry.tracker.active,
                                                 BUDGET))
    if progress is not None:
      scores = best_val.mean(0)
      finite = scores[np.isfinite(scores)]
      progress(epoch, int(host(carry.tracker.active).any(0).sum()),
               float(finite.max()) if finite.size else float("nan"))
    if budget_cut is not None:
      break
  record(carry, members)
  return HostResult(
      best_val, best_epoch, epochs, reason, params,
      np.stack(val_hist, -1) if val_hist else np.zeros((splits, m, 0)),
      (np.moveaxis(np.concatenate(recon_hist, 0), 0, -1) if recon_hist
       else np.zeros((splits, m, 0))),
      np.asarray(eval_epochs), model_epochs, rounds, tuple(sorted(buckets)),
      clock() - start, budget_cut, pace.setup if pace else 0.0,
      (pace.evaluation or 0.0) if pace else 0.0)


def check_block_size(models: int, num_aux: int, num_tags: int) -> None:
  """ValueError (one line) when a block's W_aux [A, M, V] would pass int32 indexing,
  before anything is allocated (XLA indexes with int32 there)."""
  elements = int(num_aux) * int(models) * int(num_tags)
  if elements > INT32_MAX:
    raise ValueError(
        f"a block of {models} models has a W_aux of {num_aux:,} entities x {models} "
        f"models x {num_tags:,} tags = {elements:,} elements, past int32 indexing "
        f"({INT32_MAX:,}); train fewer models at once (learn.plan), or keep fewer tags or "
        "entities")


def _budget_round(segment_fn, finish_fn, pace: Pace, clock, start: float, seconds: float,
                  data_keys, carry: Carry, train: Dataset, val: Dataset, hparams: HParams,
                  keep, eval_every: int, batch_size: int, split_axis: bool):
  """One round of ``run_host`` with a time budget: segments of each epoch's steps until
  the round's epochs are done or the budget (less the evaluation's measured time) is
  spent, then the evaluation (``make_finish``). Returns (carry, RoundInfo, budget_cut)."""
  lead = 1 if split_axis else 0
  steps = train.v.shape[lead] // batch_size
  active = carry.tracker.active
  state = carry.state
  recon, cut, trained = [], None, False
  first = int(np.asarray(carry.epoch).max())   # the same in every split
  for e in range(eval_every):
    epoch_arg = jnp.asarray(first + e, jnp.int32)
    pos, total = 0, None
    while pos < steps:
      rest = (steps - pos) + steps * (eval_every - e - 1)   # steps left in the round
      if (trained and clock() - start + pace.reserve() > seconds
          and rest * pace.step > min(CUT_SLACK_SECONDS, CUT_SLACK_SHARE * seconds)):
        # (a cut at an epoch's start is reported as the end of the one before)
        cut = (first + e, pos, steps) if pos else (first + e - 1, steps, steps)
        break
      n = pace.next_steps(steps - pos)
      t0 = clock()
      state, part = segment_fn(data_keys, state, active, train, hparams, epoch_arg,
                               jnp.asarray(pos, jnp.int32), jnp.asarray(pos + n, jnp.int32))
      part = np.asarray(jax.block_until_ready(part), np.float64)
      pace.step = (clock() - t0) / n
      total = part if total is None else total + part
      pos += n
      trained = True
    if pos:
      recon.append(total / pos)
    if cut is not None:
      break
  done = len(recon)
  shape = np.shape(np.asarray(active))
  for _ in range(eval_every - done):
    recon.append(np.full(shape, np.nan))
  t0 = clock()
  carry, val_pl = finish_fn(carry._replace(state=state), jnp.asarray(first + done, jnp.int32),
                            val, hparams, keep)
  jax.block_until_ready(val_pl)
  pace.evaluation = clock() - t0
  return carry, RoundInfo(np.stack(recon, lead), val_pl), cut


# -- learners by name ---------------------------------------------------------------------

def _parallel_tempering(config: TrainConfig, num_aux: int, over_models: bool = False):
  from crbm_jax.learn.persistent import parallel_tempering  # pylint: disable=import-outside-toplevel
  return parallel_tempering(config, num_aux, over_models=over_models)


def _pcd(config: TrainConfig, num_aux: int, over_models: bool = False):
  from crbm_jax.learn.persistent import pcd  # pylint: disable=import-outside-toplevel
  return pcd(config, num_aux, over_models=over_models)


# The learner factories a driver can be given by name (``--learner``, configs, the
# estimator): factory(config, num_aux, over_models=False) -> Learner. The clip-distance
# learner needs the clips' neighbours (``learn.distance_aware``), so it is built by its
# callers, not by name.
LEARNERS = {"cd": cd, "pcd": _pcd, "pt": _parallel_tempering}


def learner_factory(name: str) -> Callable:
  """The learner factory called ``name`` (ValueError, one line, naming the choices)."""
  if name not in LEARNERS:
    extra = (" (the clip-distance learner needs the clips' neighbours: "
             "learn.distance_aware)" if name == "distance" else "")
    raise ValueError(f"unknown learner {name!r}; use one of {', '.join(LEARNERS)}{extra}")
  return LEARNERS[name]


def reasons_of(result: HostResult) -> List[str]:
  """Why each model stopped: the reason of the split that trained it longest."""
  longest = np.argmax(result.epochs, axis=0)
  return [REASONS[int(result.reason[s, j])] for j, s in enumerate(longest)]
