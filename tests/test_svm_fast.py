"""``svm.fit_tag_svm`` computes what scikit-learn's CalibratedClassifierCV computes.

The fast path fits the same NuSVCs on the same StratifiedKFold folds and scikit-learn's
own Platt sigmoid, without the meta-estimator's machinery; its probabilities, labels,
sigmoid and support vectors must equal the meta-estimator's bit for bit.
"""
import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import NuSVC

from crbm_jax.autotag import store, svm


def _reference(x_pos, x_neg, nu, seed, folds=5):
  x = np.concatenate([x_pos, x_neg]).astype(np.float64)
  y = np.r_[np.ones(len(x_pos)), np.zeros(len(x_neg))].astype(int)
  n_min = min(len(x_pos), len(x_neg))
  cv = StratifiedKFold(min(folds, n_min), shuffle=True, random_state=seed)
  return CalibratedClassifierCV(NuSVC(kernel="linear", nu=nu), method="sigmoid", cv=cv,
                                ensemble=False).fit(x, y)


@pytest.mark.parametrize("num_pos,num_neg,dim,nu,seed,shift", [
    (100, 100, 133, 0.5, 0, 0.3),   # Table 3's size
    (37, 52, 20, 0.5, 3, 1.0),      # unequal classes
    (3, 9, 5, 0.4, 1, 0.5),         # 3 calibration folds (the smaller class)
    (2, 2, 4, 0.5, 7, 2.0),         # the least the SVM accepts
    (60, 40, 10, 0.7, 11, 0.0),     # no signal: a flat sigmoid
])
def test_fast_svm_equals_calibrated_classifier_cv(num_pos, num_neg, dim, nu, seed, shift):
  rng = np.random.default_rng(seed)
  x_pos = rng.normal(size=(num_pos, dim)) + shift
  x_neg = rng.normal(size=(num_neg, dim))
  x_test = rng.normal(size=(50, dim)) + shift / 2
  fast = svm.fit_tag_svm(x_pos, x_neg, nu=nu, seed=seed)
  ref = _reference(x_pos, x_neg, nu, seed)
  assert isinstance(fast, svm.PlattSVM)
  np.testing.assert_array_equal(fast.predict_proba(x_test), ref.predict_proba(x_test))
  for decision in ("probability", "sign"):
    np.testing.assert_array_equal(svm.predict_labels(fast, x_test, decision),
                                  svm.predict_labels(ref, x_test, decision))
  assert svm.sigmoid_of(fast) == svm.sigmoid_of(ref)
  a, b = store.from_sklearn_tag(fast), store.from_sklearn_tag(ref)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


def test_fast_svm_refuses_too_few_examples():
  with pytest.raises(ValueError, match="need >= 2 examples per class"):
    svm.fit_tag_svm(np.zeros((1, 3)), np.ones((5, 3)))


def test_the_direct_libsvm_path_is_used_with_this_scikit_learn():
  """The installed scikit-learn's binding passes the once-per-process check, so the
  calibration folds and the kept SVM skip NuSVC's checks (the speed this module is for)."""
  fast = svm.fit_tag_svm(np.eye(6)[:3] + 1.0, np.eye(6)[3:], seed=0)
  assert svm._linear_nusvm() is svm.LinearNuSVM
  assert isinstance(svm.svm_of(fast), svm.LinearNuSVM)


def test_a_binding_that_differs_falls_back_to_nusvc(monkeypatch):
  """Where the private binding raises, NuSVC is used and the numbers stay the
  meta-estimator's; either way NumPy's global generator ends where NuSVC leaves it."""
  rng = np.random.default_rng(2)
  x_pos, x_neg = rng.normal(size=(20, 6)) + 0.5, rng.normal(size=(25, 6))
  x_test = rng.normal(size=(10, 6))
  svm.fit_tag_svm(x_pos, x_neg, seed=2)  # the real binding's check done beforehand
  np.random.seed(5)
  direct = svm.fit_tag_svm(x_pos, x_neg, seed=2)
  after_direct = np.random.get_state()[1].copy()
  direct_p = direct.predict_proba(x_test)

  class Broken:
    def set_verbosity_wrap(self, v):
      pass

    def fit(self, *a, **k):
      raise TypeError("another signature")

  monkeypatch.setattr(svm, "_libsvm", Broken())
  monkeypatch.setattr(svm, "_svm_impl", [])
  np.random.seed(5)
  fallback = svm.fit_tag_svm(x_pos, x_neg, seed=2)
  assert isinstance(svm.svm_of(direct), svm.LinearNuSVM)
  assert isinstance(svm.svm_of(fallback), NuSVC)
  np.testing.assert_array_equal(np.random.get_state()[1], after_direct)
  ref = _reference(x_pos, x_neg, 0.5, 2).predict_proba(x_test)
  np.testing.assert_array_equal(fallback.predict_proba(x_test), ref)
  np.testing.assert_array_equal(direct_p, ref)
