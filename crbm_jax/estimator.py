"""A scikit-learn estimator around the conditional RBM (``crbm_jax.learn.fit``).

``ConditionalRBM`` follows scikit-learn's conventions (constructor stores the
hyperparameters, ``fit`` sets attributes ending in ``_``, ``clone`` / ``get_params`` /
``Pipeline`` / ``GridSearchCV`` work). The auxiliary input of Eq. 2 is passed as an
extra ``aux`` argument ([N, G] int global W_aux rows, -1 = absent); with ``aux=None``
the model is an ordinary RBM over binary tag vectors, so it drops into any pipeline.

Input X must be binary (0/1), dense or scipy sparse: the model and its pseudo-likelihood
(Eq. 3) are defined for binary vectors, so other values raise ValueError rather than
being thresholded silently.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from typing import Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from sklearn.exceptions import ConvergenceWarning

from crbm_jax import learn
from crbm_jax.configs import training
from crbm_jax.data.splits import random_split
from crbm_jax.learn import lazy_l1
from crbm_jax.learn import engine
from crbm_jax.learn.space import Point
from crbm_jax.model.crbm import CRBMParams, hidden_given_visible
from crbm_jax.model.gibbs import sample_visible
from crbm_jax.model.pseudolikelihood import pseudo_log_likelihood


@functools.lru_cache(maxsize=32)
def _compiled_epoch(config: learn.TrainConfig, num_aux: int, learner_name: str = "cd"):
  """One jitted epoch over a chunk of rows per static configuration, so refits with the
  same shapes (cross-validation, grid search) reuse the compilation."""
  learner = engine.learner_factory(learner_name)(config, num_aux)

  def epoch(rng_key, state, chunk: learn.Dataset, hparams):
    state, info = learn.run_epoch(rng_key, learner, state, chunk, hparams, config.batch_size)
    return state, info.recon_error, learner.model(state, hparams)

  return learner, jax.jit(epoch)


@functools.lru_cache(maxsize=32)
def _compiled_init(config: learn.TrainConfig, num_aux: int, learner_name: str = "cd"):
  learner, _ = _compiled_epoch(config, num_aux, learner_name)
  return jax.jit(lambda key, data, hparams: learner.init(key, data, hparams))


_pseudo_log_likelihood = jax.jit(pseudo_log_likelihood, static_argnames=("chunk_size",))
_hidden_given_visible = jax.jit(hidden_given_visible)
_sample_visible = jax.jit(sample_visible, static_argnames=("num_samples", "burn_in"))


# Constructor keywords that were renamed: old -> new (refused, naming the new one).
RENAMED = {"n_hidden": "num_hidden"}


class _RefusesRenamed(type):
  """Refuses a renamed constructor keyword in one line naming the new one (kept out of
  ``__init__``'s signature, which scikit-learn reads as the parameter list; the class's
  own signature stays ``__init__``'s too)."""

  def __init__(cls, name, bases, namespace):
    super().__init__(name, bases, namespace)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    cls.__signature__ = inspect.Signature(params)

  def __call__(cls, *args, **kwargs):
    for old in sorted(set(kwargs) & set(RENAMED)):
      raise TypeError(f"{cls.__name__}: {old!r} was renamed; use "
                      f"{RENAMED[old]}={kwargs[old]!r}")
    return super().__call__(*args, **kwargs)


class ConditionalRBM(TransformerMixin, BaseEstimator, metaclass=_RefusesRenamed):
  """Conditional RBM (Eq. 2) trained by CD-k with an L1 penalty on the auxiliary biases.

  Parameters:
    num_hidden: hidden units H (spelt as everywhere else in the package; the old
      ``n_hidden`` keyword is refused with a TypeError naming it).
    learning_rate, momentum, weight_decay (on W), l1_aux (on W_aux), aux_lr_scale (the
      W_aux step is learning_rate x aux_lr_scale): see ``crbm_jax.learn.HParams``.
    cd_k: Gibbs steps per CD update; batch_size: observations per minibatch.
    num_epochs: the most passes over the training data (scikit-learn's ``max_iter``;
      spelt as everywhere else in the package, ``configs/search.py``).
    early_stopping: hold out ``validation_fraction`` of the rows, stop when the balanced
      validation pseudo-likelihood has not improved by ``tol`` for ``n_iter_no_change``
      epochs, and keep the best epoch's parameters (the paper's model selection; a
      diverging fit stops too). False: train on every row for ``num_epochs`` and keep the
      last epoch. A validation_fraction of 0, or fewer than 2 held-out or training rows,
      also means no hold-out.
    validation_fraction, n_iter_no_change, tol: as in scikit-learn's ``MLPClassifier``.
    random_state: None, an int or a RandomState, with scikit-learn's semantics: an int
      makes ``fit`` deterministic; None or a RandomState draws a new seed at each ``fit``
      (and at the first ``partial_fit``).
    chunk_size: observations per chunk in the exact pseudo-likelihood.
    learner: the learning algorithm by name: 'cd' (CD-k), 'pcd' (persistent CD) or
      'pt' (parallel tempering) (``crbm_jax.learn.engine.LEARNERS``).
    chunk_rows: rows made dense at a time. Sparse input is never densified whole: a
      training set larger than this is trained chunk by chunk (each epoch shuffles the
      rows, then runs the minibatches of one chunk at a time), and scoring and
      transforming go chunk by chunk.

  Attributes (after fit):
    params_: CRBMParams of numpy arrays; components_: [H, V] (Wᵀ);
    intercept_visible_: [V]; intercept_hidden_: [H]; aux_weights_: [num_aux, V];
    n_features_in_, num_aux_, n_aux_groups_, best_epoch_, n_iter_ (epochs run),
    history_: {'recon_error': [n_iter_], 'val_pl': [n_iter_] (with a hold-out)},
    validation_used_: whether best-epoch selection ran; stopped_: why training stopped
    ('converged', 'max_epochs', 'diverged').
  """

  def __init__(self, num_hidden: int = 100, learning_rate: float = 0.05,
               momentum: float = 0.5, weight_decay: float = 1e-4, l1_aux: float = 1e-3,
               cd_k: int = 1, batch_size: int = 100, num_epochs: int = 100,
               early_stopping: bool = True, validation_fraction: float = 0.2,
               n_iter_no_change: int = 8, tol: float = 1e-4, aux_lr_scale: float = 1.0,
               random_state=0, chunk_size: int = 64, chunk_rows: int = 8192,
               learner: str = "cd"):
    self.num_hidden = num_hidden
    self.learning_rate = learning_rate
    self.momentum = momentum
    self.weight_decay = weight_decay
    self.l1_aux = l1_aux
    self.cd_k = cd_k
    self.batch_size = batch_size
    self.num_epochs = num_epochs
    self.early_stopping = early_stopping
    self.validation_fraction = validation_fraction
    self.n_iter_no_change = n_iter_no_change
    self.tol = tol
    self.aux_lr_scale = aux_lr_scale
    self.random_state = random_state
    self.chunk_size = chunk_size
    self.chunk_rows = chunk_rows
    self.learner = learner

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = True
    return tags

  # -- input checks ---------------------------------------------------------------------

  def _validate_X(self, X, reset: bool):
    """Validated X: a float32 ndarray, or a float32 CSR matrix for sparse input (never
    densified whole; ``_rows`` densifies chunks)."""
    X = validate_data(self, X, accept_sparse=("csr", "csc", "coo"), reset=reset,
                      dtype=(np.float32, np.float64))
    values = X.data if sp.issparse(X) else X
    if values.size and not np.all((values == 0) | (values == 1)):
      bad = values[(values != 0) & (values != 1)].ravel()[0]
      raise ValueError(f"ConditionalRBM needs binary X (0/1 tag indicators); found the "
                       f"value {bad!r}. Binarise the input first (e.g. X > 0).")
    if sp.issparse(X):
      return sp.csr_matrix(X, dtype=np.float32)
    return np.asarray(X, np.float32)

  @staticmethod
  def _rows(X, index=None) -> np.ndarray:
    """Dense float32 rows ``index`` (all when None) of an ndarray or CSR matrix."""
    part = X if index is None else X[index]
    return np.asarray(part.toarray() if sp.issparse(part) else part, np.float32)

  def _chunks(self, n: int) -> Iterator[slice]:
    step = max(int(self.chunk_rows), 1)
    for start in range(0, n, step):
      yield slice(start, min(start + step, n))

  def _check_params(self) -> None:
    if (self.num_hidden < 1 or self.batch_size < 1 or self.num_epochs < 1 or self.cd_k < 1
        or self.n_iter_no_change < 1 or self.chunk_rows < 1):
      raise ValueError("num_hidden, batch_size, num_epochs, cd_k, n_iter_no_change and "
                       "chunk_rows must be >= 1")
    if not 0.0 <= self.validation_fraction < 1.0:
      raise ValueError(f"validation_fraction must be in [0, 1), got "
                       f"{self.validation_fraction}")
    if not (np.isfinite(self.tol) and self.tol >= 0):
      raise ValueError(f"tol must be a finite number >= 0, got {self.tol}")
    engine.learner_factory(self.learner)  # one line naming the choices
    learn.check_hparams(prefix="", learning_rate=self.learning_rate,
                  momentum=self.momentum, weight_decay=self.weight_decay,
                  l1_aux=self.l1_aux, aux_lr_scale=self.aux_lr_scale)

  def _settings(self, num_rows: int):
    """(TrainConfig, HParams) of the constructor's ``Point`` (the point type of every
    search, ``learn.space``; batch size at most the rows)."""
    point = Point(int(self.num_hidden), float(self.learning_rate), float(self.momentum),
                  float(self.weight_decay), float(self.l1_aux), float(self.aux_lr_scale),
                  int(min(self.batch_size, max(num_rows, 1))))
    return learn.from_config(training.get_config(
        **point.training(), cd_k=int(self.cd_k), num_epochs=int(self.num_epochs),
        eval_chunk=int(self.chunk_size)))

  def _validate_aux(self, aux, n: int, fitting: bool) -> np.ndarray:
    if aux is None:
      groups = 0 if fitting else self.n_aux_groups_
      return np.full((n, groups), -1, np.int32)
    aux = np.asarray(aux)
    if aux.ndim == 1 and not fitting and aux.shape[0] == self.n_aux_groups_:
      aux = np.broadcast_to(aux, (n, aux.shape[0]))
    if aux.ndim != 2 or aux.shape[0] != n:
      raise ValueError(f"aux must be an int array of shape [{n}, G] (one row per row of "
                       f"X), got shape {aux.shape}")
    if aux.size and not np.issubdtype(aux.dtype, np.integer):
      if not np.all(aux == np.round(aux)):
        raise ValueError("aux must hold integer W_aux row indices (-1 = absent)")
    aux = aux.astype(np.int32)
    if aux.size and aux.min() < -1:
      raise ValueError(f"aux holds {aux.min()}; use -1 for an absent entity")
    if not fitting:
      if aux.shape[1] != self.n_aux_groups_:
        raise ValueError(f"aux has {aux.shape[1]} groups but the model was fitted with "
                         f"{self.n_aux_groups_}")
      if aux.size and aux.max() >= self.num_aux_:
        raise ValueError(f"aux holds row {aux.max()} but the model has {self.num_aux_} "
                         "auxiliary rows (an entity unseen in fit: use -1)")
    return aux

  def _params(self) -> CRBMParams:
    check_is_fitted(self, "params_")
    return CRBMParams(*(jnp.asarray(x) for x in self.params_))

  # -- fitting --------------------------------------------------------------------------

  def fit(self, X, y=None, aux=None, num_aux: Optional[int] = None):
    """Fits the model (with early stopping on a hold-out unless ``early_stopping`` is
    False).

    Args:
      X: [N, V] binary, dense or scipy sparse.
      y: ignored.
      aux: [N, G] int W_aux row indices (-1 = absent) or None (no auxiliary input).
      num_aux: rows of W_aux (default: 1 + the largest index in aux).
    Returns:
      self.
    Raises:
      crbm_jax.learn.engine.DivergenceError (a ValueError): the first epochs diverged.
    """
    self._check_params()
    X = self._validate_X(X, reset=True)
    n = X.shape[0]
    aux = self._validate_aux(aux, n, fitting=True)
    num_aux = self._num_aux(aux, num_aux)
    seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
    key_init, key_data = jax.random.split(jax.random.key(seed))
    val_idx = np.zeros(0, np.int64)
    train_idx = np.arange(n)
    if self.early_stopping and self.validation_fraction > 0:
      split = random_split(aux, seed, (1.0 - self.validation_fraction,
                                       self.validation_fraction, 0.0))
      train_idx, val_idx = split.train, np.concatenate([split.val, split.test])
    self.validation_used_ = bool(len(val_idx) >= 2 and n - len(val_idx) >= 2)
    if not self.validation_used_:
      train_idx, val_idx = np.arange(n), np.zeros(0, np.int64)
    config, hparams = self._settings(len(train_idx))
    first = self._dataset(X, aux, train_idx[: min(len(train_idx), self.chunk_rows)])
    state = _compiled_init(config, num_aux, self.learner)(key_init, first, hparams)
    rule = engine.StopRule(patience=int(self.n_iter_no_change), tol=float(self.tol),
                           num_epochs=int(self.num_epochs))
    score = None
    if self.validation_used_:
      score = lambda params: self._balanced_pl(params, X[val_idx], aux[val_idx])
    params, best_epoch, history, stopped = self._train(
        key_data, state, config, hparams, num_aux, X, aux, train_idx, rule, score)
    self.params_ = CRBMParams(*(np.asarray(x) for x in params))
    self.best_epoch_ = best_epoch
    self.history_ = {"recon_error": np.asarray(history["recon_error"], np.float32)}
    if self.validation_used_:
      self.history_["val_pl"] = np.asarray(history["val_pl"], np.float32)
    self.stopped_ = stopped
    self.num_aux_ = num_aux
    self.n_aux_groups_ = aux.shape[1]
    self.n_iter_ = len(history["recon_error"])
    self._state = None
    return self

  def partial_fit(self, X, y=None, aux=None, num_aux: Optional[int] = None):
    """One more epoch over (X, aux), continuing from the current parameters.

    The first call on an unfitted estimator initialises it (``num_aux`` fixes the W_aux
    rows, default 1 + the largest index in aux); later calls must use the same features
    and auxiliary groups. After ``fit``, training continues from ``params_`` (with a
    fresh momentum). No hold-out: every row trains. Returns self.
    """
    self._check_params()
    first_call = not hasattr(self, "params_")
    X = self._validate_X(X, reset=first_call)
    n = X.shape[0]
    aux = self._validate_aux(aux, n, fitting=first_call)
    if first_call:
      num_aux = self._num_aux(aux, num_aux)
      self._rng = check_random_state(self.random_state)
    else:
      num_aux = self.num_aux_
    config, hparams = self._settings(n)
    config = dataclasses.replace(config, batch_size=int(min(self.batch_size, n)))
    seed = int(getattr(self, "_rng", check_random_state(self.random_state)).randint(
        np.iinfo(np.int32).max))
    key_init, key_data = jax.random.split(jax.random.key(seed))
    state = getattr(self, "_state", None)
    if state is None or state.params.W.shape != (X.shape[1], int(self.num_hidden)):
      state = _compiled_init(config, num_aux, self.learner)(
          key_init, self._dataset(X, aux, np.arange(min(n, self.chunk_rows))), hparams)
      if not first_call:  # continue from the fitted parameters
        state = state._replace(params=CRBMParams(*(jnp.asarray(x) for x in self.params_)),
                               l1=lazy_l1.init_l1(num_aux))
    state, recon, params = self._epoch(key_data, state, config, hparams, num_aux, X, aux,
                                       np.arange(n), 0)
    self._state = jax.device_get(state)
    self.params_ = CRBMParams(*(np.asarray(x) for x in params))
    self.num_aux_ = num_aux
    self.n_aux_groups_ = aux.shape[1]
    self.n_iter_ = getattr(self, "n_iter_", 0) + 1 if not first_call else 1
    self.best_epoch_ = self.n_iter_ - 1
    self.validation_used_ = False
    self.stopped_ = "partial_fit"
    history = getattr(self, "history_", {"recon_error": np.zeros(0, np.float32)})
    self.history_ = {"recon_error": np.append(history["recon_error"] if not first_call
                                              else np.zeros(0, np.float32), recon)}
    return self

  # -- training internals ----------------------------------------------------------------

  def _num_aux(self, aux: np.ndarray, num_aux: Optional[int]) -> int:
    top = int(aux.max()) + 1 if aux.size else 0
    num_aux = top if num_aux is None else int(num_aux)
    if num_aux < top:
      raise ValueError(f"num_aux={num_aux} but aux holds row {top - 1}")
    return num_aux

  def _dataset(self, X, aux: np.ndarray, index: np.ndarray) -> learn.Dataset:
    return learn.make_dataset(self._rows(X, index), aux[index])

  def _epoch(self, key, state, config, hparams, num_aux, X, aux, index, epoch):
    """One epoch over rows ``index``: all at once when they fit in ``chunk_rows``,
    otherwise shuffled and run chunk by chunk (each chunk padded to a multiple of the
    batch size with weight-0 rows). Returns (state, recon error, params)."""
    _, epoch_fn = _compiled_epoch(config, num_aux, self.learner)
    key = jax.random.fold_in(key, epoch)
    if len(index) <= self.chunk_rows:
      data = learn.pad_dataset(self._dataset(X, aux, index), config.batch_size)
      return epoch_fn(key, state, data, hparams)
    order = np.random.default_rng(np.asarray(jax.random.key_data(key))).permutation(index)
    recon, weights, params = [], [], None
    for c, part in enumerate(self._chunks(len(order))):
      rows = order[part]
      data = learn.pad_dataset(self._dataset(X, aux, rows), config.batch_size)
      size = max(int(self.chunk_rows) // config.batch_size, 1) * config.batch_size
      data = learn.pad_dataset(data, size) if data.v.shape[0] < size else data
      state, r, params = epoch_fn(jax.random.fold_in(key, c), state, data, hparams)
      recon.append(float(r))
      weights.append(len(rows))
    return state, float(np.average(recon, weights=weights)), params

  def _train(self, key, state, config, hparams, num_aux, X, aux, index, rule, score):
    """Epochs with early stopping (``engine.update_tracker``, the rule ``crbm-fit``
    uses); returns (params, best epoch, history, why it stopped)."""
    history = {"recon_error": [], "val_pl": []}
    if score is None:
      params = None
      for epoch in range(rule.num_epochs):
        state, recon, params = self._epoch(key, state, config, hparams, num_aux, X, aux,
                                           index, epoch)
        history["recon_error"].append(float(recon))
      return jax.device_get(params), rule.num_epochs - 1, history, "max_epochs"
    learner, _ = _compiled_epoch(config, num_aux, self.learner)
    initial = learner.model(state, hparams)
    tracker = engine.init_tracker((), score(initial))
    best_pl, best_params, best_epoch = -np.inf, initial, -1
    for epoch in range(rule.num_epochs):
      state, recon, params = self._epoch(key, state, config, hparams, num_aux, X, aux,
                                         index, epoch)
      val_pl = score(params)
      history["recon_error"].append(float(recon))
      history["val_pl"].append(val_pl)
      tracker = engine.update_tracker(tracker, jnp.float32(best_pl), jnp.float32(val_pl),
                                      epoch + 1, rule)
      reason = engine.REASONS[int(tracker.reason)]
      if reason != "diverged" and np.isfinite(val_pl) and val_pl > best_pl:
        best_pl, best_params, best_epoch = val_pl, jax.device_get(params), epoch
      if not bool(tracker.active):
        break
    if best_epoch < 0:
      raise engine.DivergenceError(
          f"training diverged in the first epoch (validation pseudo-likelihood "
          f"{history['val_pl'][0]:.4g}); lower learning_rate (now {self.learning_rate:g})"
          f" or aux_lr_scale (now {self.aux_lr_scale:g})")
    if reason in ("diverged", "max_epochs"):
      warnings.warn(
          f"ConditionalRBM: training stopped at epoch {len(history['val_pl'])} because "
          + ("it diverged; the best epoch before it is kept (lower learning_rate)"
             if reason == "diverged" else
             "num_epochs was reached before validation stopped improving (raise num_epochs)"),
          ConvergenceWarning)
    return best_params, best_epoch, history, reason

  def _balanced_pl(self, params, X, aux) -> float:
    """The balanced log PL of rows, accumulated chunk by chunk."""
    params = CRBMParams(*(jnp.asarray(x) for x in params))
    sums = np.zeros(4)
    for part in self._chunks(X.shape[0]):
      v = self._rows(X, np.arange(part.start, part.stop))
      per_bit = np.asarray(_pseudo_log_likelihood(params, jnp.asarray(v),
                                                  jnp.asarray(aux[part]),
                                                  chunk_size=int(self.chunk_size)))
      ones = v > 0
      sums += [(per_bit * ones).sum(), ones.sum(), (per_bit * ~ones).sum(), (~ones).sum()]
    return float(0.5 * (sums[0] / max(sums[1], 1) + sums[2] / max(sums[3], 1)))

  @property
  def components_(self) -> np.ndarray:
    check_is_fitted(self, "params_")
    return self.params_.W.T

  @property
  def intercept_visible_(self) -> np.ndarray:
    check_is_fitted(self, "params_")
    return self.params_.b

  @property
  def intercept_hidden_(self) -> np.ndarray:
    check_is_fitted(self, "params_")
    return self.params_.c

  @property
  def aux_weights_(self) -> np.ndarray:
    check_is_fitted(self, "params_")
    return self.params_.W_aux

  # -- using a fitted model ------------------------------------------------------------

  def pseudo_log_likelihood(self, X, aux=None) -> np.ndarray:
    """Exact log p(v_i | v_\\i, a) for every bit (Eq. 3): [N, V]. aux None = absent."""
    params = self._params()
    X = self._validate_X(X, reset=False)
    aux = self._validate_aux(aux, X.shape[0], fitting=False)
    out = np.zeros(X.shape, np.float32)
    for part in self._chunks(X.shape[0]):   # sparse input is densified chunk by chunk
      v = self._rows(X, np.arange(part.start, part.stop))
      out[part] = np.asarray(_pseudo_log_likelihood(params, jnp.asarray(v),
                                                    jnp.asarray(aux[part]),
                                                    chunk_size=int(self.chunk_size)))
    return out

  def score_samples(self, X, aux=None) -> np.ndarray:
    """Per observation, the mean over its V bits of the exact log pseudo-likelihood: [N].

    Unlike ``BernoulliRBM.score_samples`` (one random bit, times V), this is exact and
    deterministic; it is a mean per bit (not a sum) so it is comparable across V.
    """
    return self.pseudo_log_likelihood(X, aux).mean(axis=1)  # [N, V] is dense; X is not

  def score(self, X, y=None, aux=None) -> float:
    """The paper's figure (Table 2): mean log PL over the 1 bits and over the 0 bits,
    averaged (``balanced_pseudo_likelihood``). Higher is better."""
    check_is_fitted(self, "params_")
    X = self._validate_X(X, reset=False)
    aux = self._validate_aux(aux, X.shape[0], fitting=False)
    return self._balanced_pl(self.params_, X, aux)

  def transform(self, X) -> np.ndarray:
    """Hidden probabilities p(h_j = 1 | v): [N, H] (the auxiliary input acts on v only)."""
    params = self._params()
    dtype = getattr(X, "dtype", None)
    dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    X = self._validate_X(X, reset=False)
    out = np.zeros((X.shape[0], params.W.shape[1]), dtype)
    for part in self._chunks(X.shape[0]):
      v = self._rows(X, np.arange(part.start, part.stop))
      out[part] = np.asarray(_hidden_given_visible(params, jnp.asarray(v)))
    return out

  def sample(self, n_samples: int = 1, aux=None, random_state=None,
             burn_in: int = 100) -> np.ndarray:
    """Independent draws from p(v | a): one Gibbs chain per draw, ``burn_in`` sweeps.

    Args:
      aux: None (no auxiliary entity), [G] (the same for every draw) or [n_samples, G].
      random_state: int seed etc.; None uses ``self.random_state``.
    Returns:
      [n_samples, V] float32 in {0, 1}.
    """
    params = self._params()
    aux = self._validate_aux(aux, int(n_samples), fitting=False)
    rs = self.random_state if random_state is None else random_state
    seed = int(check_random_state(rs).randint(np.iinfo(np.int32).max))
    out = _sample_visible(jax.random.key(seed), params, jnp.asarray(aux), num_samples=1,
               burn_in=max(int(burn_in), 0))
    return np.asarray(out[0])
