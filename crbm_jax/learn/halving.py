"""Successive halving over (split, model): the adaptive Table 2 search (issue 16).

The split-axis block of ``learn.block`` trained in rounds of ``learn.search``'s masked
freezing (``search.make_round`` and ``search.init_carry`` vmapped over the splits); the
host halves by the mean over splits of the best validation PL and compacts the block into
power-of-two buckets of survivors. Above ``block`` and ``search`` in the learner layer.
"""
from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn import search
from crbm_jax.learn.base import Dataset, HParams, TrainConfig
from crbm_jax.learn.block import AXIS, SPLIT_AXIS, make_block_evaluate
from crbm_jax.learn.learner import cd


class HalvingResult(NamedTuple):
  """The outcome of ``run_halving`` (S splits, M configurations)."""
  mean_val_pl: np.ndarray   # [M] mean over splits of each model's best validation PL
  best_val_pl: np.ndarray   # [S, M]
  best_epoch: np.ndarray    # [S, M] 0-based; -1 if never evaluated
  epochs: np.ndarray        # [M] epochs trained (the most over splits)
  reason: list              # [M] why each configuration stopped (search.REASONS)
  model_epochs: int         # epochs trained, summed over splits and configurations
  rounds: int
  buckets: tuple            # the compacted block sizes used
  seconds: float


@functools.lru_cache(maxsize=32)
def _halving_fns(config: TrainConfig, num_aux: int, rule):
  """(init, round, take), jitted once per (config, num_aux, rule) and reused."""
  learner = cd(config, num_aux, over_models=True)
  evaluate = make_block_evaluate(config, AXIS, (SPLIT_AXIS,))
  round_fn = search.make_round(learner, config, evaluate, rule)
  init = jax.vmap(lambda k, tr, va, hp, hm, gm: search.init_carry(
      learner, evaluate, k, tr, va, hp, hm, gm), in_axes=(0, 0, 0, None, None, None),
                  axis_name=SPLIT_AXIS)
  take = jax.vmap(lambda c, i: search.take_models(c, search.CARRY_AXES, i),
                  in_axes=(0, None))
  return (jax.jit(init), jax.jit(jax.vmap(
      round_fn, in_axes=(0, 0, 0, 0, None, None), axis_name=SPLIT_AXIS)), jax.jit(take))


def run_halving(config: TrainConfig, num_aux: int, model_keys, hparams: HParams,
                hidden_mask, group_mask, data_keys, train: Dataset, val: Dataset, halving,
                rule, min_bucket: int = 8, progress=None) -> HalvingResult:
  """Successive halving (ASHA-style rungs) of M configurations on S splits at once.

  Every round is one jitted call: ``search.make_round`` (``rule.eval_every`` epochs, then
  validation and the stopping tracker) vmapped over the split axis, so the splits train
  together and stopped models are frozen by masks (shapes never change within a block).
  Between rounds the host halves at the rungs (epochs ``first_rung x eta^k``), ranking
  the configurations by their best validation PL *averaged over the splits*
  (``search.halving_keep``), and shrinks the block: once the configurations still
  training fit in a smaller power-of-two bucket (at least ``min_bucket``), they (padded
  with frozen ones) are gathered into a new, smaller block and the others' results are
  kept on the host, so the work and the memory traffic shrink with the survivors. A
  configuration's trajectory is the same in any block (common random numbers), and at most
  log2(M / min_bucket) + 2 shapes compile. Split s of configuration m uses
  ``model_keys[s, m]`` and ``data_keys[s]``: the same trajectory as the exhaustive block
  (``make_split_block_fit``) for as long as it trains.

  Args:
    model_keys: [S, M]; hparams: HParams of [M]; hidden_mask [M, H]; group_mask [M, G];
    data_keys: [S]; train, val: stacked splits ([S, N, ...]).
    halving: ``search.Halving``; rule: ``search.StopRule`` (its ``max_epochs`` is the
      epoch budget of a configuration that survives every rung).
    progress: called as ``progress(epoch, configurations still training)`` per round.
  """
  start = time.perf_counter()
  init, round_fn, take = _halving_fns(config, num_aux, rule)
  num_models = hidden_mask.shape[0]
  num_splits = model_keys.shape[0]
  carry = init(model_keys, train, val, hparams, jnp.asarray(hidden_mask),
               jnp.asarray(group_mask))
  rungs = search.halving_rungs(halving, rule.max_epochs)
  # Host copies of every configuration's outcome, [S, M]; a block holds ``members``.
  best_val = np.full((num_splits, num_models), -np.inf)
  best_epoch = np.full((num_splits, num_models), -1)
  reason = np.zeros((num_splits, num_models), int)
  epochs = np.zeros((num_splits, num_models), int)
  members = np.arange(num_models)

  def record(carry, members):
    best_val[:, members] = np.asarray(carry.best.val_pl)
    best_epoch[:, members] = np.asarray(carry.best.epoch)
    reason[:, members] = np.asarray(carry.tracker.reason)
    epochs[:, members] = np.asarray(carry.tracker.epochs)

  alive = np.ones(num_models, bool)
  rounds, model_epochs, buckets = 0, 0, set()
  while True:
    active = np.asarray(carry.tracker.active)                              # [S, m]
    training = active.any(0)
    if not training.any():
      break
    size = min(max(search.bucket_size(int(training.sum()), num_models), min_bucket),
               len(members))
    if size < len(members):  # shrink: the training models, padded with frozen ones
      record(carry, members)
      index = np.concatenate([np.flatnonzero(training),
                              np.flatnonzero(~training)[: size - int(training.sum())]])
      carry = take(carry._replace(epoch=None), jnp.asarray(index))._replace(epoch=carry.epoch)
      hparams = jax.tree.map(lambda x: x[jnp.asarray(index)], hparams)
      members = members[index]
    buckets.add(len(members))
    model_epochs += int(active.sum()) * rule.eval_every
    carry, _ = round_fn(data_keys, carry, train, val, hparams,
                        jnp.ones(len(members), bool))
    rounds += 1
    epoch = int(np.asarray(carry.epoch).max())
    alive[members] &= ~(np.asarray(carry.tracker.reason) == search.DIVERGED).any(0)
    if rungs and epoch >= rungs[0]:
      while rungs and epoch >= rungs[0]:
        rungs.pop(0)
      record(carry, members)
      training = np.zeros(num_models, bool)
      training[members] = np.asarray(carry.tracker.active).any(0)
      keep = search.halving_keep(best_val.mean(0), alive, training, 1.0 / halving.eta,
                                 halving.min_models)
      carry = carry._replace(tracker=search.stop_models(carry.tracker, ~keep[members],
                                                        search.HALVED))
      alive &= keep
    if progress is not None:
      progress(epoch, int(np.asarray(carry.tracker.active).any(0).sum()))
  record(carry, members)
  reasons = []
  for m in range(num_models):  # the reason of the split that trained longest
    s = int(np.argmax(epochs[:, m]))
    reasons.append(search.REASONS[int(reason[s, m])])
  return HalvingResult(best_val.mean(0), best_val, best_epoch, epochs.max(0), reasons,
                       model_epochs, rounds, tuple(sorted(buckets)),
                       time.perf_counter() - start)
