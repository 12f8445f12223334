"""Successive halving over (split, model): the adaptive Table 2 search (issue 16).

A use of the engine's host driver with a split axis (``learn.engine.run_host``): every
configuration trains on every split at once, in rounds of ``rule.eval_every`` epochs;
between rounds the host halves by the mean over splits of the best validation PL and
compacts the block into power-of-two buckets of survivors.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from crbm_jax.learn import engine
from crbm_jax.learn.base import Dataset, HParams, TrainConfig
from crbm_jax.learn.learner import cd


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


def run_halving(config: TrainConfig, num_aux: int, model_keys, hparams: HParams,
                hidden_mask, group_mask, data_keys, train: Dataset, val: Dataset, halving,
                rule, min_bucket: int = 8, progress=None,
                learner: Callable = cd) -> HalvingResult:
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
  """
  res = engine.run_host(model_keys, data_keys, train, val, num_aux, config, hparams,
                        hidden_mask, group_mask, rule, halving=halving, compact=True,
                        min_bucket=min_bucket, split_axis=True, learner=learner,
                        keep_params=False, progress=progress)
  return HalvingResult(res.best_val_pl.mean(0), res.best_val_pl, res.best_epoch,
                       res.epochs.max(0), engine.reasons_of(res), res.model_epochs,
                       res.rounds, res.buckets, res.seconds)
