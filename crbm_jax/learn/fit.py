"""``fit`` / ``make_fit``: one model, a fixed number of epochs, the best epoch kept.

A use of the engine's scan driver (``learn.engine.make_scan``): the whole run is one
jitted ``lax.scan`` of rounds of ``config.eval_every`` epochs, each followed by a
validation evaluation; the parameters of the best epoch by validation pseudo-likelihood
are kept (the paper's model selection). Epoch e's minibatch order and Gibbs noise come
from ``fold_in(data_key, e)``, so every learner, and a block of models, draws the same
random streams from the same key. With a ``StopRule`` the model stops early (in-graph:
it is frozen once the rule says so).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from crbm_jax.learn.base import (Dataset, FitResult, HParams, Learner, TrainConfig,
                                 make_hparams, pad_dataset)
from crbm_jax.learn.engine import (BestEpoch, StopRule, epoch_minibatches,  # noqa: F401
                                   keep_best, make_scan, run_epoch)
from crbm_jax.learn.learner import cd
from crbm_jax.model.pseudolikelihood import balanced_log_pl
from crbm_jax.types import Array, PRNGKey


def make_fit(config: TrainConfig, num_aux: int, learner: Optional[Learner] = None,
             rule: Optional[StopRule] = None):
  """Returns ``fit_fn(rng_key, hparams, train, val=None, hidden_mask=None) -> FitResult``.

  ``learner`` defaults to CD-k (``learn.cd``). ``fit_fn`` is pure and unjitted: jit it, or
  vmap it over hparams / keys / data splits of equal shape. ``train.v.shape[0]`` must be a
  multiple of ``config.batch_size`` (see ``pad_dataset``). Without ``val`` the last
  epoch's parameters are returned. ``rule``: early stopping on validation (None: every
  epoch trains).
  """
  learner = learner if learner is not None else cd(config, num_aux)
  evaluate = lambda params, val: balanced_log_pl(params, val, config.eval_chunk)

  def fit_fn(rng_key: PRNGKey, hparams: HParams, train: Dataset,
             val: Optional[Dataset] = None, hidden_mask: Optional[Array] = None) -> FitResult:
    key_init, key_data = jax.random.split(rng_key)
    run = make_scan(learner, config, None if val is None else evaluate, rule)
    carry, history = run(key_init, key_data, train, val, hparams, hidden_mask)
    best = carry.best
    return FitResult(best.params, best.epoch, best.val_pl, history)

  return fit_fn


def fit(rng_key: PRNGKey, train: Dataset, val: Optional[Dataset], config: TrainConfig,
        hparams: Optional[HParams] = None, num_aux: Optional[int] = None,
        learner: Optional[Learner] = None, rule: Optional[StopRule] = None) -> FitResult:
  """Convenience wrapper: pads, jits and runs ``make_fit(config, num_aux, learner, rule)``.

  Args:
    num_aux: rows of W_aux (default: 1 + the largest index in train/val aux).
  """
  hparams = make_hparams() if hparams is None else hparams
  if num_aux is None:
    top = max(int(jnp.max(d.aux, initial=-1)) for d in (train, val) if d is not None)
    num_aux = top + 1
  fit_fn = jax.jit(make_fit(config, num_aux, learner, rule))
  return fit_fn(rng_key, hparams, pad_dataset(train, config.batch_size), val)
