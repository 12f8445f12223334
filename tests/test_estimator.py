"""The scikit-learn estimator: sklearn's own checks, pipelines, grid search, determinism."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import validate_data

from crbm_jax.model import marginals as smoothing
from crbm_jax.estimator import ConditionalRBM
from crbm_jax.model.pseudolikelihood import balanced_pseudo_likelihood, pseudo_log_likelihood

SMALL = dict(num_hidden=3, num_epochs=2, batch_size=10)


class BinarizedInputRBM(ConditionalRBM):
  """Test adapter: scikit-learn's checks feed continuous data (Gaussian, uniform,
  integers), which ConditionalRBM rightly rejects (it models binary tag vectors). This
  subclass thresholds finite inputs elementwise at 1 after the usual validation, so the
  checks exercise everything else (validation, NaN/inf rejection, sparse input, dtypes,
  pickling, cloning, idempotence, invariance to row order and subsets). The rejection of
  non-binary input by ConditionalRBM itself is tested below."""

  def _validate_X(self, X, reset):
    X = validate_data(self, X, accept_sparse=("csr", "csc", "coo"), reset=reset,
                      dtype=(np.float32, np.float64))
    X = X.toarray() if sp.issparse(X) else X
    return np.asarray(X >= 1, np.float32)


# A core subset runs by default; every check of scikit-learn runs with -m slow (~1 min:
# each new data shape compiles the jitted training loop).
CORE_CHECKS = ("check_estimators_fit_returns_self", "check_fit_idempotent",
               "check_estimators_pickle", "check_transformer_general",
               "check_methods_subset_invariance", "check_estimators_nan_inf",
               "check_estimator_sparse_matrix", "check_dont_overwrite_parameters")


@pytest.mark.extended
@pytest.mark.parametrize("check_name", CORE_CHECKS)
def test_core_sklearn_checks(check_name):
  getattr(estimator_checks, check_name)("ConditionalRBM", BinarizedInputRBM(**SMALL))


@pytest.mark.slow
@parametrize_with_checks([BinarizedInputRBM(**SMALL)])
def test_all_sklearn_estimator_checks(estimator, check):
  check(estimator)


# These checks feed continuous (or negative, or random sparse) X, which ConditionalRBM
# rejects by design with "needs binary X"; BinarizedInputRBM runs each of them on
# binarised data instead (all pass, see test_all_sklearn_estimator_checks).
NON_BINARY_CHECKS = (
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object",
    "check_estimator_sparse_array", "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf",
    "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency",
    "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
    "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_preserve_dtypes")


def test_check_estimator_on_the_strict_estimator():
  results = estimator_checks.check_estimator(
      ConditionalRBM(**SMALL), on_skip=None,
      expected_failed_checks={name: "feeds non-binary X" for name in NON_BINARY_CHECKS})
  status = {r["check_name"]: r["status"] for r in results}
  assert all(status[name] == "xfail" for name in NON_BINARY_CHECKS)
  for r in results:  # they failed for the stated reason (others rephrase the message)
    if r["status"] == "xfail" and not any(k in r["check_name"] for k in ("sparse", "positive")):
      assert "binary X" in str(r["exception"]), r["check_name"]
  passed = {name for name, s in status.items() if s == "passed"}
  assert {"check_no_attributes_set_in_init", "check_parameters_default_constructible",
          "check_estimators_unfitted", "check_estimators_empty_data_messages"} <= passed
  assert set(status) - passed - set(NON_BINARY_CHECKS) <= {"check_array_api_input"}


def _data(seed=0, n=120, v=6, groups=2, entities=4):
  """Binary tag vectors whose tag rates depend on two auxiliary groups."""
  rng = np.random.default_rng(seed)
  aux = np.stack([rng.integers(0, entities, n), entities + rng.integers(0, entities, n)], 1)
  logits = -1.0 + 1.5 * np.sin(np.arange(v)[None] + aux[:, :1]) + 0.5 * (aux[:, 1:] % 2)
  X = (rng.random((n, v)) < 1 / (1 + np.exp(-logits))).astype(np.float64)
  return X, aux[:, :groups].astype(np.int32)


def test_rejects_non_binary_input_with_a_clear_message():
  X, _ = _data()
  X[3, 2] = 0.5
  with pytest.raises(ValueError, match="binary X"):
    ConditionalRBM(**SMALL).fit(X)


@pytest.mark.extended
def test_fit_is_deterministic_for_a_fixed_random_state_and_dense_equals_sparse():
  X, aux = _data()
  a = ConditionalRBM(**SMALL, random_state=3).fit(X, aux=aux)
  b = ConditionalRBM(**SMALL, random_state=3).fit(sp.csr_matrix(X), aux=aux)
  c = ConditionalRBM(**SMALL, random_state=4).fit(X, aux=aux)
  for x, y in zip(a.params_, b.params_):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.params_.W, c.params_.W)


def test_scores_are_the_exact_pseudo_likelihood_of_the_fitted_parameters():
  X, aux = _data()
  est = ConditionalRBM(**SMALL).fit(X, aux=aux)
  params = jax.tree.map(jnp.asarray, est.params_)
  per_bit = np.asarray(pseudo_log_likelihood(params, jnp.asarray(X, jnp.float32),
                                             jnp.asarray(aux)))
  np.testing.assert_allclose(est.pseudo_log_likelihood(X, aux), per_bit, rtol=1e-6)
  np.testing.assert_allclose(est.score_samples(X, aux), per_bit.mean(1), rtol=1e-6)
  np.testing.assert_allclose(
      est.score(X, aux=aux),
      float(balanced_pseudo_likelihood(jnp.asarray(per_bit), jnp.asarray(X))), rtol=1e-6)
  absent = np.full_like(aux, -1)
  np.testing.assert_allclose(est.score_samples(X), est.score_samples(X, absent), rtol=1e-6)
  with pytest.raises(ValueError, match="auxiliary rows"):
    est.score(X, aux=aux + 100)


def test_validation_selects_an_epoch_and_zero_fraction_trains_every_epoch():
  X, aux = _data()
  est = ConditionalRBM(**SMALL, validation_fraction=0.2).fit(X, aux=aux)
  assert est.validation_used_ and est.history_["val_pl"].shape == (2,)
  assert est.best_epoch_ == int(np.argmax(est.history_["val_pl"]))
  full = ConditionalRBM(**SMALL, validation_fraction=0.0).fit(X, aux=aux)
  assert not full.validation_used_ and full.best_epoch_ == 1
  assert "val_pl" not in full.history_ and full.history_["recon_error"].shape == (2,)


def test_sample_matches_exact_marginals_within_monte_carlo_error():
  X, aux = _data()
  est = ConditionalRBM(**SMALL).fit(X, aux=aux)
  n = 3000
  draws = est.sample(n, aux=aux[0], random_state=1, burn_in=50)
  assert draws.shape == (n, X.shape[1]) and set(np.unique(draws)) <= {0.0, 1.0}
  np.testing.assert_array_equal(draws, est.sample(n, aux=aux[0], random_state=1,
                                                  burn_in=50))
  exact = smoothing.exact_visible_marginals(est.params_, aux[:1])[0]
  stderr = np.sqrt(exact * (1 - exact) / n)  # independent chains
  assert np.all(np.abs(draws.mean(0) - exact) < 5 * stderr + 1e-9)


@pytest.mark.extended
def test_grid_search_over_num_hidden_and_pipeline():
  X, _ = _data(n=60)
  no_holdout = dict(SMALL, validation_fraction=0.0)
  grid = GridSearchCV(ConditionalRBM(**no_holdout), {"num_hidden": [2, 4]}, cv=2)
  grid.fit(X)
  assert grid.best_params_["num_hidden"] in (2, 4)
  assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
  assert grid.best_estimator_.transform(X).shape == (60, grid.best_params_["num_hidden"])
  y = X[:, 0].astype(int)
  pipe = Pipeline([("rbm", ConditionalRBM(**no_holdout)), ("clf", LogisticRegression())])
  pipe.fit(X[:, 1:], y)
  assert pipe.predict(X[:, 1:]).shape == (60,)


def test_clone_and_set_params_round_trip():
  est = ConditionalRBM(num_hidden=7, l1_aux=0.01, random_state=5)
  copy = clone(est)
  assert copy.get_params() == est.get_params()
  copy.set_params(num_hidden=9)
  assert copy.num_hidden == 9 and est.num_hidden == 7


def test_the_old_n_hidden_keyword_is_refused_naming_num_hidden():
  with pytest.raises(TypeError, match=r"^ConditionalRBM: 'n_hidden' was renamed; use "
                     r"num_hidden=7$"):
    ConditionalRBM(n_hidden=7)
  with pytest.raises(TypeError, match="unexpected keyword argument 'hidden'"):
    ConditionalRBM(hidden=7)
  with pytest.raises(TypeError, match="'n_hidden' was renamed; use num_hidden=9"):
    clone(ConditionalRBM()).set_params(num_hidden=3).__class__(n_hidden=9)
  assert "n_hidden" not in ConditionalRBM().get_params()


# -- early stopping, partial_fit, random_state, chunked sparse input (issue 15) ----------

@pytest.mark.extended
def test_early_stopping_stops_by_itself_and_keeps_the_best_epoch():
  X, aux = _data(n=200)
  est = ConditionalRBM(num_hidden=4, batch_size=20, num_epochs=200, learning_rate=0.3,
                       n_iter_no_change=3, tol=1e-3).fit(X, aux=aux)
  assert est.stopped_ == "converged" and est.n_iter_ < 200
  val = est.history_["val_pl"]
  assert len(val) == est.n_iter_ and est.best_epoch_ == int(np.argmax(val))
  # it stopped n_iter_no_change evaluations after the last improvement larger than tol
  last_gain = max(e for e in range(len(val))
                  if e == 0 or val[e] > max(val[:e]) + 1e-3)
  assert est.n_iter_ == last_gain + 1 + 3
  # without early stopping every epoch runs and the last is kept
  full = ConditionalRBM(num_hidden=4, batch_size=20, num_epochs=5,
                        early_stopping=False).fit(X, aux=aux)
  assert full.n_iter_ == 5 and full.best_epoch_ == 4 and not full.validation_used_


def test_invalid_hyperparameters_and_divergence_are_one_clear_error():
  X, aux = _data()
  for bad in (dict(learning_rate=float("nan")), dict(learning_rate=-1.0),
              dict(momentum=1.0), dict(weight_decay=float("inf")), dict(tol=-1.0)):
    with pytest.raises(ValueError):
      ConditionalRBM(**SMALL, **bad).fit(X, aux=aux)
  with pytest.raises(ValueError, match="diverged.*lower learning_rate"):
    ConditionalRBM(num_hidden=3, batch_size=10, num_epochs=5, learning_rate=1e7,
                   aux_lr_scale=10.0).fit(X, aux=aux)


def test_partial_fit_returns_self_and_continues_training():
  X, aux = _data()
  est = ConditionalRBM(num_hidden=3, batch_size=20, random_state=0)
  assert est.partial_fit(X, aux=aux) is est
  assert est.n_iter_ == 1 and est.num_aux_ == 8
  W1 = est.params_.W.copy()
  est.partial_fit(X, aux=aux)
  assert est.n_iter_ == 2 and not np.array_equal(W1, est.params_.W)
  assert est.history_["recon_error"].shape == (2,)
  # the same sequence of calls gives the same model (random_state an int)
  again = ConditionalRBM(num_hidden=3, batch_size=20, random_state=0)
  again.partial_fit(X, aux=aux).partial_fit(X, aux=aux)
  np.testing.assert_array_equal(again.params_.W, est.params_.W)
  # after fit, partial_fit continues from the fitted parameters
  fitted = ConditionalRBM(**SMALL).fit(X, aux=aux)
  before = fitted.score(X, aux=aux)
  fitted.partial_fit(X, aux=aux)
  assert np.isfinite(fitted.score(X, aux=aux)) and fitted.score(X, aux=aux) != before
  with pytest.raises(ValueError):
    est.partial_fit(X[:, :4], aux=aux)            # other features than the first call


def test_random_state_follows_scikit_learn():
  X, aux = _data()
  fit = lambda rs: ConditionalRBM(**SMALL, random_state=rs).fit(X, aux=aux).params_.W
  np.testing.assert_array_equal(fit(7), fit(7))                  # an int: deterministic
  rs = np.random.RandomState(7)
  first, second = fit(rs), fit(rs)                                 # a RandomState: consumed
  assert not np.array_equal(first, second)
  np.testing.assert_array_equal(first, fit(np.random.RandomState(7)))


@pytest.mark.extended
def test_sparse_input_is_trained_and_scored_chunk_by_chunk_like_dense_input():
  X, aux = _data(n=150)
  kw = dict(SMALL, chunk_rows=40, random_state=2)     # 90 training rows: 3 chunks
  dense = ConditionalRBM(**kw).fit(X, aux=aux)
  sparse = ConditionalRBM(**kw).fit(sp.csr_matrix(X), aux=aux)
  for a, b in zip(dense.params_, sparse.params_):
    np.testing.assert_array_equal(a, b)
  whole = ConditionalRBM(**dict(kw, chunk_rows=10_000)).fit(X, aux=aux)
  assert not np.array_equal(whole.params_.W, dense.params_.W)   # chunking changes the order
  # scoring and transforming in chunks equals doing it at once
  one = ConditionalRBM(**dict(kw, chunk_rows=10_000))
  one.params_, one.num_aux_, one.n_aux_groups_ = dense.params_, dense.num_aux_, 2
  one.n_features_in_ = X.shape[1]
  np.testing.assert_allclose(dense.score_samples(sp.csr_matrix(X), aux),
                             one.score_samples(X, aux), rtol=1e-6)
  np.testing.assert_allclose(dense.score(sp.csr_matrix(X), aux=aux), one.score(X, aux=aux),
                             rtol=1e-6)
  np.testing.assert_allclose(dense.transform(sp.csr_matrix(X)), one.transform(X), rtol=1e-6)
