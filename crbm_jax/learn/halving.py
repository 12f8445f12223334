"""Successive halving over (split, model): the adaptive Table 2 search (issue 16).

A use of the engine's host driver with a split axis (``learn.engine.run_host``): every
configuration trains on every split at once, in rounds of ``rule.eval_every`` epochs;
between rounds the host halves by the mean over splits of the best validation PL and
compacts the block into power-of-two buckets of survivors.

The first rung in blocks of hidden sizes (issue 24): before the first rung every
configuration trains, so a block padded to the largest hidden size makes every model
cost as much as the largest. With ``by_hidden`` the first rung trains one block per
hidden size (or per bucket of sizes, ``hidden_buckets``), each with its own shapes (one
compilation each); the blocks' states are then padded with zero hidden units to the
largest size (exact: ``model.crbm.init_params`` and ``model.gibbs.sample_hidden`` are
prefix-stable in H, and a masked unit's weights, bias and momentum are 0), the first
rung's halving is decided on all of them, and the host driver continues with the
survivors from where they are. The trajectories are the padded block's, to float
rounding.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.learn import engine
from crbm_jax.learn.base import Dataset, HParams, TrainConfig
from crbm_jax.learn.evaluate import split_evaluate
from crbm_jax.learn.learner import cd

# At most this many first-rung blocks (compilations): more distinct hidden sizes are padded
# up to power-of-two buckets (``hidden_buckets``).
MAX_HIDDEN_BLOCKS = 4


class HalvingResult(NamedTuple):
  """The outcome of ``run_halving`` (S splits, M configurations)."""
  mean_val_pl: np.ndarray   # [M] mean over splits of each model's best validation PL
  best_val_pl: np.ndarray   # [S, M]
  best_epoch: np.ndarray    # [S, M] 0-based; -1 if never evaluated
  epochs: np.ndarray        # [M] epochs trained (the most over splits)
  reason: list              # [M] why each configuration stopped (engine.REASONS)
  model_epochs: int         # epochs trained, summed over splits and configurations
  rounds: int
  buckets: tuple            # the compacted block sizes used
  seconds: float
  first_rung: Optional[dict] = None  # by_hidden: {hidden size: (models, seconds)} of the
                                     # first rung's blocks (None: one padded block)


def run_halving(config: TrainConfig, num_aux: int, model_keys, hparams: HParams,
                hidden_mask, group_mask, data_keys, train: Dataset, val: Dataset, halving,
                rule, min_bucket: int = 8, progress=None,
                learner: Callable = cd, by_hidden: bool = True) -> HalvingResult:
  """Successive halving (ASHA-style rungs) of M configurations on S splits at once.

  Between rounds the host halves at the rungs (epochs ``first_rung x eta^k``), ranking
  the configurations by their best validation PL *averaged over the splits*, and shrinks
  the block: once the configurations still training fit in a smaller power-of-two bucket
  (at least ``min_bucket``), they (padded with frozen ones) are gathered into a new,
  smaller block. A configuration's trajectory is the same in any block (common random
  numbers). Split s of configuration m uses ``model_keys[s, m]`` and ``data_keys[s]``:
  the same trajectory as the exhaustive block (``make_split_block_fit``) for as long as
  it trains.

  Args:
    model_keys: [S, M]; hparams: HParams of [M]; hidden_mask [M, H]; group_mask [M, G];
    data_keys: [S]; train, val: stacked splits ([S, N, ...]).
    halving: ``engine.Halving``; rule: ``engine.StopRule`` (its ``num_epochs`` is the
      epoch budget of a configuration that survives every rung).
    progress: called as ``progress(epoch, configurations still training, best)``.
    learner: the learner factory.
    by_hidden: train the first rung in blocks of hidden sizes (module docstring; the
      same results as one padded block, to float rounding).
  """
  t0 = time.perf_counter()
  sizes = np.asarray(hidden_mask).sum(1).round().astype(int)
  first = first_rung_epochs(halving, rule)
  if by_hidden and first is not None and len(set(sizes.tolist())) > 1:
    return _halving_by_hidden(config, num_aux, model_keys, hparams, hidden_mask,
                              group_mask, data_keys, train, val, halving, rule, min_bucket,
                              progress, learner, sizes, first, t0)
  res = engine.run_host(model_keys, data_keys, train, val, num_aux, config, hparams,
                        hidden_mask, group_mask, rule, halving=halving, compact=True,
                        min_bucket=min_bucket, split_axis=True, learner=learner,
                        keep_params=False, progress=progress)
  return HalvingResult(res.best_val_pl.mean(0), res.best_val_pl, res.best_epoch,
                       res.epochs.max(0), engine.reasons_of(res), res.model_epochs,
                       res.rounds, res.buckets, res.seconds)


def first_rung_epochs(halving, rule) -> Optional[int]:
  """The epoch at which the first rung's halving happens (the end of the first round at
  or past ``halving.first_rung``), or None when the first rung cannot be trained on its
  own: no halving, no rung before the epoch budget, or a second rung reached by the same
  round (the host driver then halves once for both)."""
  if halving is None:
    return None
  rungs = engine.halving_rungs(halving, rule.num_epochs)
  every = max(int(rule.eval_every), 1)
  if not rungs:
    return None
  first = int(math.ceil(rungs[0] / every)) * every
  if first >= rule.num_epochs or (len(rungs) > 1 and rungs[1] <= first):
    return None
  return first


def hidden_buckets(sizes: np.ndarray, max_blocks: int = MAX_HIDDEN_BLOCKS) -> np.ndarray:
  """[M] the hidden size of each model's first-rung block: its own size when there are at
  most ``max_blocks`` distinct sizes, else the next power of two (at most the largest)."""
  sizes = np.asarray(sizes, int)
  if len(np.unique(sizes)) <= max_blocks:
    return sizes
  return np.minimum(2 ** np.ceil(np.log2(np.maximum(sizes, 1))).astype(int), sizes.max())


def pad_hidden(carry, like):
  """``carry`` with every axis shorter than ``like``'s (shapes: the hidden axis) padded
  with zeros at the end: a block of h hidden units as a block of H > h masked units."""
  def pad(x, target):
    widths = [(0, t - s) for s, t in zip(x.shape, target.shape)]
    return jnp.pad(x, widths) if any(w for _, w in widths) else x
  return jax.tree.map(pad, carry, like)


# The carry's model axes under the split axis (the engine's CARRY_AXES, one further in).
_SPLIT_CARRY_AXES = jax.tree.map(lambda ax: ax + 1, engine.CARRY_AXES._replace(epoch=None))


def _concat_models(carries):
  """Carries of model blocks (split axis leading) as one block, in the given order."""
  epoch = carries[0].epoch
  parts = [c._replace(epoch=None) for c in carries]
  joined = jax.tree.map(
      lambda ax, *subs: jax.tree.map(lambda *xs: jnp.concatenate(xs, ax), *subs),
      _SPLIT_CARRY_AXES, *parts)
  return joined._replace(epoch=epoch)


def _halving_by_hidden(config, num_aux, model_keys, hparams, hidden_mask, group_mask,
                       data_keys, train, val, halving, rule, min_bucket, progress, learner,
                       sizes, first, t0) -> HalvingResult:
  """``run_halving`` with the first rung in blocks of hidden sizes (module docstring)."""
  num_hidden = hidden_mask.shape[1]
  hidden_mask, group_mask = np.asarray(hidden_mask), np.asarray(group_mask)
  blocks = hidden_buckets(sizes)
  order, carries, timings, model_epochs = [], [], {}, 0
  pick = lambda tree, idx: jax.tree.map(lambda x: x[jnp.asarray(idx)], tree)
  full_init = None
  for h in sorted(set(blocks.tolist())):
    tb = time.perf_counter()
    idx = np.flatnonzero(blocks == h)
    init, round_fn, _ = engine.compiled_host(
        learner, dataclasses.replace(config, num_hidden=int(h)), num_aux, rule,
        split_evaluate, True)
    hp = pick(hparams, idx)
    carry = init(model_keys[:, idx], train, val, hp, jnp.asarray(hidden_mask[idx, :h]),
                 jnp.asarray(group_mask[idx]))
    keep = jnp.ones(len(idx), bool)
    for _ in range(first // max(int(rule.eval_every), 1)):
      model_epochs += int(np.asarray(carry.tracker.active).sum()) * rule.eval_every
      carry, _ = round_fn(data_keys, carry, train, val, hp, keep)
    if h < num_hidden:
      if full_init is None:
        full_init, _, _ = engine.compiled_host(learner, config, num_aux, rule,
                                               split_evaluate, True)
      like = jax.eval_shape(full_init, model_keys[:, idx], train, val, hp,
                            jnp.asarray(hidden_mask[idx]), jnp.asarray(group_mask[idx]))
      carry = pad_hidden(carry, like)
    jax.block_until_ready(carry)
    timings[int(h)] = (len(idx), time.perf_counter() - tb)
    order.append(idx)
    carries.append(carry)
  order = np.concatenate(order)
  position = np.empty_like(order)
  position[order] = np.arange(len(order))
  carry = _concat_models(carries)
  tracker = jax.tree.map(lambda x: np.asarray(x)[:, position], carry.tracker)   # [S, M]
  best_val = np.asarray(carry.best.val_pl)[:, position].astype(float)
  alive = ~(tracker.reason == engine.DIVERGED).any(0)
  training = tracker.active.any(0)
  keep = engine.halving_keep(best_val.mean(0), alive, training, 1.0 / halving.eta,
                             halving.min_models)
  # who goes on: the survivors, and the stopped models still in the race (they count in
  # the next rungs' share, as in one block)
  members = np.flatnonzero(keep & (training | alive))
  reason = np.where(tracker.active & ~keep, engine.HALVED, tracker.reason)
  best_epoch = np.asarray(carry.best.epoch)[:, position]
  epochs = tracker.epochs.copy()
  if progress is not None:
    finite = best_val.mean(0)[np.isfinite(best_val.mean(0))]
    progress(first, int((keep & training).sum()),
             float(finite.max()) if finite.size else float("nan"))
  rounds = first // max(int(rule.eval_every), 1)
  buckets = {models for models, _ in timings.values()}
  if len(members):
    rest = engine.take_models(carry._replace(epoch=None), _SPLIT_CARRY_AXES,
                              jnp.asarray(position[members]))._replace(epoch=carry.epoch)
    later = engine.Halving(halving.eta, halving.first_rung * halving.eta,
                           halving.min_models)
    res = engine.run_host(model_keys[:, members], data_keys, train, val, num_aux, config,
                          pick(hparams, members), hidden_mask[members],
                          group_mask[members], rule, halving=later, compact=True,
                          min_bucket=min_bucket, split_axis=True, learner=learner,
                          keep_params=False, progress=progress, carry=rest)
    best_val[:, members] = res.best_val_pl
    best_epoch[:, members] = res.best_epoch
    epochs[:, members] = res.epochs
    reason[:, members] = res.reason
    model_epochs += res.model_epochs
    rounds += res.rounds
    buckets |= set(res.buckets)
  longest = np.argmax(epochs, axis=0)
  return HalvingResult(best_val.mean(0), best_val, best_epoch, epochs.max(0),
                       [engine.REASONS[int(reason[s, j])] for j, s in enumerate(longest)],
                       model_epochs, rounds, tuple(sorted(buckets)),
                       time.perf_counter() - t0, timings)
