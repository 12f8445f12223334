"""Running a learner: the epoch loop and ``fit`` with best-epoch selection.

An epoch is a ``lax.scan`` of ``learner.step`` over shuffled minibatches; a run is a
``lax.scan`` over epochs that keeps the parameters of the best epoch by validation
pseudo-likelihood (the paper's model selection). Epoch e's minibatch order and Gibbs noise
come from ``fold_in(data_key, e)``, so every learner, and a block of models, draws the same
random streams from the same key.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from crbm_jax.learn.base import (Batch, Dataset, FitResult, History, HParams, Learner,
                                 TrainConfig, make_hparams, pad_dataset)
from crbm_jax.learn.learner import cd
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.model.pseudolikelihood import balanced_log_pl
from crbm_jax.types import Array, PRNGKey


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
    batch = Batch(data.v[idx], data.aux[idx], data.weight[idx], idx)
    return learner.step(key, state, batch, hparams)

  state, info = jax.lax.scan(body, state,
                             epoch_minibatches(rng_key, data.v.shape[0], batch_size))
  return state, jax.tree.map(lambda x: jnp.mean(x, axis=0), info)


class BestEpoch(NamedTuple):
  """The parameters of the best epoch so far by validation pseudo-likelihood."""
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


def run_epochs(rng_key: PRNGKey, learner: Learner, state, train: Dataset, hparams: HParams,
               config: TrainConfig,
               evaluate_fn: Optional[Callable[[CRBMParams], Array]] = None):
  """``config.num_epochs`` epochs, keeping the best-validation parameters.

  Validation runs after every ``config.eval_every``-th epoch and after the last one (a
  ``lax.cond`` on the epoch number, which no vmap batches); the best epoch is chosen
  among those, and History.val_pl is NaN at the epochs not evaluated.

  Args:
    evaluate_fn: params -> balanced validation log PL (scalar, or [M] for a block); None
      keeps the last epoch (no validation; History.val_pl is NaN).
  Returns:
    (final state, BestEpoch, History).
  """
  initial = learner.model(state, hparams)
  model_shape = initial.b.shape[:-1]                          # () or (M,)
  every, last = max(1, int(getattr(config, "eval_every", 1))), config.num_epochs - 1

  def body(carry, epoch):
    state, best = carry
    state, info = run_epoch(jax.random.fold_in(rng_key, epoch), learner, state, train,
                            hparams, config.batch_size)
    if evaluate_fn is None:  # the last epoch is kept: built once, after the loop
      return (state, best), (info.recon_error, jnp.full(model_shape, jnp.nan))

    def scored(best):
      params = learner.model(state, hparams)
      val_pl = evaluate_fn(params)
      return keep_best(best, params, val_pl, epoch, learner.model_axes), val_pl

    if every == 1:
      best, val_pl = scored(best)
    else:
      due = ((epoch + 1) % every == 0) | (epoch == last)
      best, val_pl = jax.lax.cond(due, scored,
                                  lambda best: (best, jnp.full(model_shape, jnp.nan)), best)
    return (state, best), (info.recon_error, val_pl)

  best = BestEpoch(initial, jnp.full(model_shape, -jnp.inf),
                   jnp.full(model_shape, -1, jnp.int32))
  (state, best), (recon, val_pl) = jax.lax.scan(body, (state, best),
                                                jnp.arange(config.num_epochs))
  if evaluate_fn is None and config.num_epochs > 0:
    best = BestEpoch(learner.model(state, hparams), jnp.full(model_shape, jnp.nan),
                     jnp.full(model_shape, config.num_epochs - 1, jnp.int32))
  return state, best, History(recon, val_pl)


def make_fit(config: TrainConfig, num_aux: int, learner: Optional[Learner] = None):
  """Returns ``fit_fn(rng_key, hparams, train, val=None, hidden_mask=None) -> FitResult``.

  ``learner`` defaults to CD-k (``learn.cd``). ``fit_fn`` is pure and unjitted: jit it, or
  vmap it over hparams / keys / data splits of equal shape. ``train.v.shape[0]`` must be a
  multiple of ``config.batch_size`` (see ``pad_dataset``). Without ``val`` the last
  epoch's parameters are returned.
  """
  learner = learner if learner is not None else cd(config, num_aux)

  def fit_fn(rng_key: PRNGKey, hparams: HParams, train: Dataset,
             val: Optional[Dataset] = None, hidden_mask: Optional[Array] = None) -> FitResult:
    key_init, key_data = jax.random.split(rng_key)
    state = learner.init(key_init, train, hparams, hidden_mask)
    evaluate = None if val is None else (
        lambda params: balanced_log_pl(params, val, config.eval_chunk))
    _, best, history = run_epochs(key_data, learner, state, train, hparams, config, evaluate)
    return FitResult(best.params, best.epoch, best.val_pl, history)

  return fit_fn


def fit(rng_key: PRNGKey, train: Dataset, val: Optional[Dataset], config: TrainConfig,
        hparams: Optional[HParams] = None, num_aux: Optional[int] = None,
        learner: Optional[Learner] = None) -> FitResult:
  """Convenience wrapper: pads, jits and runs ``make_fit(config, num_aux, learner)``.

  Args:
    num_aux: rows of W_aux (default: 1 + the largest index in train/val aux).
  """
  hparams = make_hparams() if hparams is None else hparams
  if num_aux is None:
    top = max(int(jnp.max(d.aux, initial=-1)) for d in (train, val) if d is not None)
    num_aux = top + 1
  fit_fn = jax.jit(make_fit(config, num_aux, learner))
  return fit_fn(rng_key, hparams, pad_dataset(train, config.batch_size), val)
