"""The validation search over a block of models: ``run_search`` and ``select_model``.

Uses of the engine's host driver (``learn.engine.run_host``): a block of M models
(hyperparameter points, padded hidden sizes, auxiliary-group masks) trains in rounds of
``StopRule.eval_every`` epochs with per-model early stopping by masked freezing, optional
successive halving, a wall-clock budget and compaction (module docstring of
``learn.engine``; REASONS says why each model stopped). ``select_model`` runs the search
over a ``SearchSpace`` (random ``Point``s of a grid, ``learn.space``; batch size, being
static, gets one block per value) and returns the best by the validation criterion.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn.base import Dataset, HParams, TrainConfig, pad_dataset
from crbm_jax.learn.evaluate import make_block_evaluate
from crbm_jax.learn.engine import (  # noqa: F401  (the engine's names, as before)
    BUDGET, CARRY_AXES, CONVERGED, DIVERGED, HALVED, MAX_EPOCHS, REASONS, RUNNING, Carry,
    DivergenceError, Halving, RoundInfo, StopRule, Tracker, bucket_size, halving_keep,
    halving_rungs, init_carry, init_tracker, make_round, run_host, stop_models,
    take_models, tree_axes_map, update_tracker)
from crbm_jax.learn.learner import BLOCK_PARAM_AXES, cd
from crbm_jax.learn.space import (  # noqa: F401  (the search's space, as before)
    SPACE_FIELDS, Point, SearchSpace, as_point, hidden_masks, sample_points, stack_hparams,
    unconditional_space)
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.types import PRNGKey

SearchCarry = Carry
# run_search compacts by default when models x training rows x hidden units reach this.
# On the 2-core CPU the bucket compilations cost more than the frozen models' training
# they save at every size we measured: 16 models x 900 rows x 16 units 13.9 s vs 7.0 s;
# crbm-fit's default on MajorMiner (128 models x 1,416 rows x 128 units) 58.6 s vs 37.4 s;
# 128 models x 3,600 rows x 128 units 57.3 s vs 56.4 s. Compaction is for long runs
# (many epochs, most models stopped early) and accelerators.
COMPACT_MIN_WORK = 1_000_000_000


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
  budget_cut: Optional[tuple] = None        # (epoch, steps done, steps per epoch) when the
                                            # time budget cut an epoch (engine.run_host)
  skipped: int = 0                          # models never trained: the budget was spent
                                            # before their chunk (run_search_chunked)
  fixed_seconds: float = 0.0                # with a budget: the setup (compilation, the
                                            # initial evaluation) and one evaluation


def run_search(rng_key: PRNGKey, train: Dataset, val: Dataset, num_aux: int,
               config: TrainConfig, hparams: HParams, hidden_mask, group_mask,
               rule: StopRule = StopRule(), *, halving: Optional[Halving] = None,
               seconds: Optional[float] = None, compact: Optional[bool] = None,
               progress: Optional[Callable[[int, int, float], None]] = None,
               make_evaluate: Callable = make_block_evaluate,
               learner: Callable = cd, model_keys=None,
               clock: Optional[Callable[[], float]] = None) -> SearchResult:
  """Trains a block of M models on one split with early stopping (``engine.run_host``).

  Args:
    rng_key: split into the models' initial keys and the shared data key, as
      ``block``'s callers do (model m's key: ``split(model_key, M)[m]``).
    train: padded to a multiple of ``config.batch_size`` here; val: validation Dataset.
    hparams: HParams of [M] arrays; hidden_mask [M, H]; group_mask [M, G].
    halving: successive halving (None: every model runs until its own rule stops it).
    seconds: wall-clock budget; when spent, the models still running stop ('budget').
    compact: train only the active models' power-of-two bucket; None decides by size:
      compact when the block has at least ``COMPACT_MIN_WORK`` model x training-row x
      hidden units, below which the extra compilations cost more than they save.
    progress: called as ``progress(epoch, active, best)`` after each round.
    make_evaluate: the validation criterion's factory (``engine.compiled_host``).
    learner: the learner factory (``learn.cd``, ``learn.pcd``, ...).
    model_keys: [M] the models' initial keys (default ``split(split(rng_key)[0], M)``;
      ``learn.plan`` passes a slice of a larger block's keys when it trains in chunks).
    clock: the time in seconds for the budget (default ``time.perf_counter``).
  """
  train = pad_dataset(train, config.batch_size)
  m = hidden_mask.shape[0]
  if compact is None:
    compact = m * train.v.shape[0] * config.num_hidden >= COMPACT_MIN_WORK
  key_models, key_data = jax.random.split(rng_key)
  res = run_host(jax.random.split(key_models, m) if model_keys is None else model_keys,
                 key_data, train, val, num_aux, config,
                 hparams, hidden_mask, group_mask, rule, halving=halving, seconds=seconds,
                 compact=compact, learner=learner, make_evaluate=make_evaluate,
                 progress=progress, clock=clock)
  return SearchResult(
      best_val_pl=res.best_val_pl[0], best_epoch=res.best_epoch[0], epochs=res.epochs[0],
      reason=[REASONS[int(r)] for r in res.reason[0]], params=res.params,
      val_history=res.val_history[0], recon_history=res.recon_history[0],
      eval_epochs=res.eval_epochs, seconds=res.seconds, rounds=res.rounds,
      buckets=res.buckets, budget_cut=res.budget_cut,
      fixed_seconds=res.setup_seconds + res.eval_seconds)


def model_params(params: CRBMParams, index: int) -> CRBMParams:
  """One model's parameters out of a block's (W_aux [A, M, V] -> [A, V])."""
  return tree_axes_map(lambda x, ax: jnp.take(x, index, axis=ax), params, BLOCK_PARAM_AXES)


# -- the search space and model selection ------------------------------------------------

class Selection(NamedTuple):
  """The outcome of ``select_model``.

  config: the chosen configuration (its Point as a dict of SPACE_FIELDS; ``point``: the
  Point); params: its best-epoch parameters (one model); val_pl, best_epoch: its
  validation PL and epoch; table: one dict per configuration tried (its values,
  best_val_pl, best_epoch, epochs, stopped); results: batch size -> (Points,
  SearchResult) for callers that want more (curves).
  """
  config: dict
  params: CRBMParams
  val_pl: float
  best_epoch: int
  table: List[dict]
  results: Dict[int, tuple]
  seconds: float

  @property
  def point(self) -> Point:
    return as_point(self.config)


def select_model(rng_key: PRNGKey, train: Dataset, val: Dataset, num_aux: int,
                 space: SearchSpace = SearchSpace(), *, rule: StopRule = StopRule(),
                 num_configs: Optional[int] = 48, seconds: Optional[float] = None,
                 halving: Optional[Halving] = Halving(), base: Optional[TrainConfig] = None,
                 group_mask: Optional[np.ndarray] = None, seed: int = 0,
                 progress: Optional[Callable[[str], None]] = None,
                 only_conditioned: bool = True,
                 configs: Optional[Sequence[Point]] = None,
                 compact: Optional[bool] = None,
                 make_evaluate: Callable = make_block_evaluate,
                 learner: Callable = cd,
                 models_per_chunk: Optional[int] = None,
                 clock: Optional[Callable[[], float]] = None) -> Selection:
  """Validation search: the configuration with the best validation PL.

  Args:
    train, val: Datasets (val: held-out observations of entities seen in training, so
      the auxiliary rows are what is judged).
    space, num_configs, seed: what to try (``sample_points``).
    rule: the early-stopping rule of every model; halving: successive halving rungs.
    seconds: the wall-clock budget of the whole search, shared among batch sizes.
    base: static settings other than num_hidden / batch_size (cd_k, weight_scale, ...).
    group_mask: [G] the conditioned models' auxiliary groups (default all).
    only_conditioned: choose among conditioned configurations only (the unconditional
      ones, if the space has them, are for comparison).
    configs: the configurations to try (Points, or dicts of SPACE_FIELDS), instead of
      sampling ``space``.
      ``space``.
    compact, make_evaluate, learner: passed to ``run_search``.
    models_per_chunk: train at most this many models at once (``learn.plan``'s memory
      plan; only the best parameters of each chunk are kept).
    clock: the time in seconds for the budget (default ``time.perf_counter``).
  Raises:
    DivergenceError: every configuration diverged.
  """
  clock = clock or time.perf_counter
  start = clock()
  base = base or TrainConfig()
  configs = sample_points(space, num_configs, seed) if configs is None else sorted(
      map(as_point, configs), key=lambda p: p.batch_size)
  num_groups = train.aux.shape[-1]
  gm = np.ones(num_groups, np.float32) if group_mask is None else np.asarray(group_mask,
                                                                             np.float32)
  by_batch: Dict[int, list] = {}
  for p in configs:
    by_batch.setdefault(int(p.batch_size), []).append(p)
  table, results = [], {}
  for i, (batch, cs) in enumerate(sorted(by_batch.items())):
    remaining = None
    if seconds is not None:
      left = seconds - (clock() - start)
      remaining = max(left / (len(by_batch) - i), 1e-3)
    num_hidden = int(max(p.num_hidden for p in cs))
    config = dataclasses.replace(base, num_hidden=num_hidden, batch_size=batch)
    groups = np.stack([gm if p.conditioned else np.zeros_like(gm) for p in cs])
    report = None
    if progress is not None:
      report = lambda e, a, b, batch=batch, n=len(cs): progress(
          f"batch {batch}: epoch {e}, {a}/{n} models training, best val PL {b:.4f}")
    run = run_search
    if models_per_chunk is not None and models_per_chunk < len(cs):
      run = functools.partial(run_search_chunked, models_per_chunk=models_per_chunk,
                              conditioned=np.array([bool(p.conditioned) for p in cs]))
    result = run(jax.random.fold_in(rng_key, batch), train, val, num_aux, config,
                 stack_hparams(cs), hidden_masks(cs, num_hidden), groups,
                 rule, halving=halving, seconds=remaining, progress=report,
                 compact=compact, make_evaluate=make_evaluate, learner=learner,
                 clock=clock)
    results[batch] = (cs, result)
    for j, p in enumerate(cs):
      table.append(dict({f: getattr(p, f) for f in SPACE_FIELDS}, best_val_pl=float(result.best_val_pl[j]),
                        best_epoch=int(result.best_epoch[j]),
                        epochs=int(result.epochs[j]), stopped=result.reason[j]))
  candidates = [k for k, row in enumerate(table)
                if np.isfinite(row["best_val_pl"]) and row["best_epoch"] >= 0
                and (row["conditioned"] or not only_conditioned)]
  if not candidates:
    lrs = sorted({p.learning_rate for p in configs})
    raise DivergenceError(
        f"every configuration of the search diverged or never improved on its start "
        f"(learning rates {lrs}); lower the learning rates or the aux_lr_scale values")
  row = table[max(candidates, key=lambda k: table[k]["best_val_pl"])]
  return Selection({f: row[f] for f in SPACE_FIELDS}, row_params(results, row),
                   row["best_val_pl"], row["best_epoch"], table, results,
                   clock() - start)


def row_index(results: Dict[int, tuple], row: dict):
  """(SearchResult, model index) of a search-table row."""
  cs, result = results[int(row["batch_size"])]
  return result, next(j for j, p in enumerate(cs)
                      if all(getattr(p, f) == row[f] for f in SPACE_FIELDS))


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


# ------------------------------------------------------------------ chunks of models
# (the memory plan, learn/plan.py, says how many models a chunk holds)


def run_search_chunked(rng_key, train, val, num_aux: int, config, hparams, hidden_mask,
                       group_mask, rule, *, models_per_chunk: int,
                       conditioned: Optional[np.ndarray] = None, halving=None,
                       seconds: Optional[float] = None, compact=None, progress=None,
                       make_evaluate=None, learner=None,
                       clock: Optional[Callable[[], float]] = None):
  """``run_search`` over chunks of ``models_per_chunk`` models, one after the
  other; the result lists every model (scores, epochs, reasons, histories), but keeps the
  parameters of only each chunk's best conditioned and best unconditional model
  (``SearchResult.param_index``). Each model keeps the initial key it has in the whole
  block and every chunk sees the same minibatches and noise. ``seconds`` is shared: each
  chunk gets an equal share of what is left (among the chunks left, or among as many as
  twice the last chunk's ``fixed_seconds`` each would pay for, when that is fewer: the
  chunks at the end then go untrained), and once what is left would not pay for the
  least a chunk costs (the last chunk's setup and one evaluation: ``fixed_seconds``) the
  chunks left are not trained (their models are reported as stopped by the 'budget',
  never evaluated; ``SearchResult.skipped`` counts them)."""
  clock = clock or time.perf_counter
  start = clock()
  m = hidden_mask.shape[0]
  conditioned = (np.ones(m, bool) if conditioned is None
                 else np.asarray(conditioned, bool))
  key_models, _ = jax.random.split(rng_key)
  keys = jax.random.split(key_models, m)
  chunks = np.array_split(np.arange(m), math.ceil(m / max(int(models_per_chunk), 1)))
  hidden_mask, group_mask = np.asarray(hidden_mask), np.asarray(group_mask)
  extra = {} if make_evaluate is None else {"make_evaluate": make_evaluate}
  if learner is not None:
    extra["learner"] = learner
  parts, least = [], 0.0
  for i, idx in enumerate(chunks):
    remaining = None
    if seconds is not None:
      left = seconds - (clock() - start)
      if parts and left <= least:
        # what is left would not pay for the last chunk's setup and one evaluation: the
        # chunks left are not trained
        parts.append((idx, _untrained(len(idx), rule.eval_every), [], None))
        continue
      # an equal share of what is left among the chunks left, or among the chunks that
      # can be paid for (twice the least a chunk costs each) when that is fewer
      sharing = len(chunks) - i
      if least > 0:
        sharing = max(1, min(sharing, int(left // (2 * least))))
      remaining = max(left / sharing, 1e-3)
    result = run_search(
        rng_key, train, val, num_aux, config,
        jax.tree.map(lambda x, idx=idx: x[idx], hparams), hidden_mask[idx],
        group_mask[idx], rule, halving=halving, seconds=remaining, compact=compact,
        progress=progress, model_keys=keys[idx], clock=clock, **extra)
    least = result.fixed_seconds
    usable = np.isfinite(result.best_val_pl) & (result.best_epoch >= 0)
    keep = []
    for kind in (True, False):
      sel = usable & (conditioned[idx] == kind)
      if sel.any():
        keep.append(int(np.flatnonzero(sel)[np.argmax(result.best_val_pl[sel])]))
    if not parts and not keep:
      keep = [0]  # something to stack; never selected (select_model checks the scores)
    # on the host (the chunk's parameters are host arrays): no device copy of the chunk
    params = tree_axes_map(lambda x, ax: np.take(np.asarray(x), keep, axis=ax),
                           result.params, BLOCK_PARAM_AXES) if keep else None
    parts.append((idx, result._replace(params=None), keep, params))
    del result
  return _merge(parts, m, rule.eval_every, clock() - start)


def _untrained(m: int, eval_every: int):
  """The SearchResult (without parameters) of models never trained ('budget')."""
  return SearchResult(
      best_val_pl=np.full(m, -np.inf), best_epoch=np.full(m, -1), epochs=np.zeros(m, int),
      reason=["budget"] * m, params=None, val_history=np.zeros((m, 0)),
      recon_history=np.zeros((m, 0)), eval_epochs=np.zeros(0, int), seconds=0.0, rounds=0,
      buckets=())


def _pad_cols(x: np.ndarray, width: int) -> np.ndarray:
  return np.pad(np.asarray(x, np.float64), ((0, 0), (0, width - x.shape[1])),
                constant_values=np.nan)


def _merge(parts, m: int, eval_every: int, seconds: float):
  rounds = max(r.rounds for _, r, _, _ in parts)
  longest = max((r for _, r, _, _ in parts), key=lambda r: len(r.eval_epochs))
  param_index = np.full(m, -1, np.int64)
  kept = []
  for idx, _, keep, params in parts:
    for j in keep:
      param_index[idx[j]] = len(kept)
      kept.append(j)
  trees = [p for _, _, keep, p in parts if keep]
  params = jax.tree.map(lambda ax, *xs: np.concatenate(xs, axis=ax), BLOCK_PARAM_AXES,
                        *trees)
  width = max(r.val_history.shape[1] for _, r, _, _ in parts)
  rwidth = max(r.recon_history.shape[1] for _, r, _, _ in parts)
  cat = lambda name: np.concatenate([np.asarray(getattr(r, name)) for _, r, _, _ in parts])
  return SearchResult(
      best_val_pl=cat("best_val_pl"), best_epoch=cat("best_epoch"), epochs=cat("epochs"),
      reason=[x for _, r, _, _ in parts for x in r.reason], params=params,
      val_history=np.concatenate([_pad_cols(r.val_history, width) for _, r, _, _ in parts]),
      recon_history=np.concatenate([_pad_cols(r.recon_history, rwidth)
                                    for _, r, _, _ in parts]),
      eval_epochs=np.asarray(longest.eval_epochs), seconds=seconds, rounds=rounds,
      buckets=tuple(sorted({b for _, r, _, _ in parts for b in r.buckets})),
      param_index=param_index,
      budget_cut=next((r.budget_cut for _, r, _, _ in parts if r.budget_cut), None),
      skipped=sum(len(idx) for idx, r, _, _ in parts if r.rounds == 0))
