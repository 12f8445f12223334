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

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from crbm_jax import learn
from crbm_jax.configs import training
from crbm_jax.data.splits import random_split
from crbm_jax.model.crbm import CRBMParams, hidden_given_visible
from crbm_jax.model.gibbs import sample_visible
from crbm_jax.model.pseudolikelihood import balanced_pseudo_likelihood, pseudo_log_likelihood


@functools.lru_cache(maxsize=32)
def _compiled_fit(config: learn.TrainConfig, num_aux: int):
  """One jitted fit function per static configuration, so refits with the same shapes
  (cross-validation, grid search) reuse the compilation."""
  return jax.jit(learn.make_fit(config, num_aux))


_pseudo_log_likelihood = jax.jit(pseudo_log_likelihood, static_argnames=("chunk_size",))
_hidden_given_visible = jax.jit(hidden_given_visible)
_sample_visible = jax.jit(sample_visible, static_argnames=("num_samples", "burn_in"))


class ConditionalRBM(TransformerMixin, BaseEstimator):
  """Conditional RBM (Eq. 2) trained by CD-k with an L1 penalty on the auxiliary biases.

  Parameters:
    n_hidden: hidden units H.
    learning_rate, momentum, weight_decay (on W), l1_aux (on W_aux): see
      ``crbm_jax.learn.HParams``.
    cd_k: Gibbs steps per CD update; batch_size: observations per minibatch.
    n_epochs: passes over the training data.
    validation_fraction: share of the rows held out to pick the epoch with the best
      balanced validation pseudo-likelihood (the paper's model selection). 0 = no
      hold-out: train on all rows and keep the last epoch. With fewer than 2 held-out
      or training rows the hold-out is skipped as for 0.
    random_state: int seed (or a RandomState / None, scikit-learn style); an int makes
      ``fit`` deterministic.
    chunk_size: observations per chunk in the exact pseudo-likelihood.

  Attributes (after fit):
    params_: CRBMParams of numpy arrays; components_: [H, V] (Wᵀ);
    intercept_visible_: [V]; intercept_hidden_: [H]; aux_weights_: [num_aux, V];
    n_features_in_, num_aux_, n_aux_groups_, best_epoch_, n_iter_ (epochs run),
    history_: {'recon_error': [n_epochs], 'val_pl': [n_epochs] or absent},
    validation_used_: whether best-epoch selection ran.
  """

  def __init__(self, n_hidden: int = 100, learning_rate: float = 0.05,
               momentum: float = 0.5, weight_decay: float = 1e-4, l1_aux: float = 1e-3,
               cd_k: int = 1, batch_size: int = 100, n_epochs: int = 30,
               validation_fraction: float = 0.2, random_state=0, chunk_size: int = 64):
    self.n_hidden = n_hidden
    self.learning_rate = learning_rate
    self.momentum = momentum
    self.weight_decay = weight_decay
    self.l1_aux = l1_aux
    self.cd_k = cd_k
    self.batch_size = batch_size
    self.n_epochs = n_epochs
    self.validation_fraction = validation_fraction
    self.random_state = random_state
    self.chunk_size = chunk_size

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = True
    return tags

  # -- input checks ---------------------------------------------------------------------

  def _validate_X(self, X, reset: bool) -> np.ndarray:
    X = validate_data(self, X, accept_sparse=("csr", "csc", "coo"), reset=reset,
                      dtype=(np.float32, np.float64))
    values = X.data if sp.issparse(X) else X
    if values.size and not np.all((values == 0) | (values == 1)):
      bad = values[(values != 0) & (values != 1)].ravel()[0]
      raise ValueError(f"ConditionalRBM needs binary X (0/1 tag indicators); found the "
                       f"value {bad!r}. Binarise the input first (e.g. X > 0).")
    return np.asarray(X.toarray() if sp.issparse(X) else X, np.float32)

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
    """Fits the model.

    Args:
      X: [N, V] binary, dense or scipy sparse.
      y: ignored.
      aux: [N, G] int W_aux row indices (-1 = absent) or None (no auxiliary input).
      num_aux: rows of W_aux (default: 1 + the largest index in aux).
    Returns:
      self.
    """
    if self.n_hidden < 1 or self.batch_size < 1 or self.n_epochs < 1 or self.cd_k < 1:
      raise ValueError("n_hidden, batch_size, n_epochs and cd_k must be >= 1")
    if not 0.0 <= self.validation_fraction < 1.0:
      raise ValueError(f"validation_fraction must be in [0, 1), got "
                       f"{self.validation_fraction}")
    v = self._validate_X(X, reset=True)
    n = v.shape[0]
    aux = self._validate_aux(aux, n, fitting=True)
    top = int(aux.max()) + 1 if aux.size else 0
    num_aux = top if num_aux is None else int(num_aux)
    if num_aux < top:
      raise ValueError(f"num_aux={num_aux} but aux holds row {top - 1}")
    seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
    key = jax.random.key(seed)
    config, hparams = learn.from_config(training.get_config(
        num_hidden=int(self.n_hidden), cd_k=int(self.cd_k), batch_size=int(self.batch_size),
        num_epochs=int(self.n_epochs), eval_chunk=int(self.chunk_size),
        learning_rate=float(self.learning_rate), momentum=float(self.momentum),
        weight_decay=float(self.weight_decay), l1_aux=float(self.l1_aux)))
    val_idx = np.zeros(0, np.int64)
    if self.validation_fraction > 0:
      split = random_split(aux, seed, (1.0 - self.validation_fraction,
                                       self.validation_fraction, 0.0))
      train_idx, val_idx = split.train, np.concatenate([split.val, split.test])
    self.validation_used_ = bool(len(val_idx) >= 2 and n - len(val_idx) >= 2)
    if self.validation_used_:
      train = learn.make_dataset(v[train_idx], aux[train_idx])
      val = learn.make_dataset(v[val_idx], aux[val_idx])
    else:
      train, val = learn.make_dataset(v, aux), None
    result = _compiled_fit(config, num_aux)(
        key, hparams, learn.pad_dataset(train, config.batch_size), val)
    params = result.params
    self.best_epoch_ = int(result.best_epoch)
    self.history_ = {"recon_error": np.asarray(result.history.recon_error)}
    if self.validation_used_:
      self.history_["val_pl"] = np.asarray(result.history.val_pl)
    self.params_ = CRBMParams(*(np.asarray(x) for x in params))
    self.num_aux_ = num_aux
    self.n_aux_groups_ = aux.shape[1]
    self.n_iter_ = config.num_epochs
    return self

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
    v = self._validate_X(X, reset=False)
    aux = self._validate_aux(aux, v.shape[0], fitting=False)
    return np.asarray(_pseudo_log_likelihood(params, jnp.asarray(v), jnp.asarray(aux),
                                             chunk_size=int(self.chunk_size)))

  def score_samples(self, X, aux=None) -> np.ndarray:
    """Per observation, the mean over its V bits of the exact log pseudo-likelihood: [N].

    Unlike ``BernoulliRBM.score_samples`` (one random bit, times V), this is exact and
    deterministic; it is a mean per bit (not a sum) so it is comparable across V.
    """
    return self.pseudo_log_likelihood(X, aux).mean(axis=1)

  def score(self, X, y=None, aux=None) -> float:
    """The paper's figure (Table 2): mean log PL over the 1 bits and over the 0 bits,
    averaged (``balanced_pseudo_likelihood``). Higher is better."""
    per_bit = self.pseudo_log_likelihood(X, aux)
    v = self._validate_X(X, reset=False)
    return float(balanced_pseudo_likelihood(jnp.asarray(per_bit), jnp.asarray(v)))

  def transform(self, X) -> np.ndarray:
    """Hidden probabilities p(h_j = 1 | v): [N, H] (the auxiliary input acts on v only)."""
    params = self._params()
    v = self._validate_X(X, reset=False)
    dtype = getattr(X, "dtype", None)
    dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    return np.asarray(_hidden_given_visible(params, jnp.asarray(v)), dtype=dtype)

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
