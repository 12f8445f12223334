"""Example selection and per-tag linear nu-SVMs (paper Section 4).

Example selection ("top- and bottom-ranked clips"):
  * smoothed labels (affinity in [0, 1]): positives are the max_per_class
    candidates with the highest affinity, negatives the max_per_class with the
    lowest (fewer, equal in number, when there are fewer than 2 * max_per_class
    candidates).
  * raw labels (number of users who gave the tag): positives are the top
    max_per_class candidates by count among those verified by at least
    min_verified users ("the smaller of the top 100 or all of the examples
    verified by at least 2 people"); negatives are drawn from the candidates
    with count 0 (the bottom of the ranking), as many as positives (balanced).
Ties in the ranking are broken by a permutation from the given rng.

Classifier: LibSVM's nu-SVM with a linear kernel and probability estimates.
scikit-learn 1.9 deprecates ``NuSVC(probability=True)``; we compute what
``CalibratedClassifierCV(NuSVC(kernel="linear", nu=0.5), method="sigmoid",
ensemble=False)`` computes, which, like LibSVM's -b 1, fits Platt scaling on
cross-validated decision values and the SVM on all the data. The predicted
label is 'probability' (calibrated P(positive) >= 0.5, the class LibSVM -b 1
predicts) by default, or 'sign' (the SVM decision function >= 0).

``fit_tag_svm`` returns a ``PlattSVM``: the same NuSVC fits on the same folds, and
scikit-learn's own Platt fit (``_sigmoid_calibration``), without the meta-estimator's
per-call checks, cloning and joblib dispatch, which cost about 5x the SVMs' own
training at Table 3's sizes (200 examples x 133 features). The calibration folds' SVMs
and the SVM kept for prediction call LibSVM through scikit-learn's own binding
(``sklearn.svm._libsvm``) with the arguments ``NuSVC.fit`` and
``NuSVC.decision_function`` pass, skipping their input checks (``LinearNuSVM``; about
half of each small fit's time). Its probabilities equal the meta-estimator's bit for bit
(tests/test_svm_fast.py). These are private parts of scikit-learn: the direct calls are
checked against ``NuSVC`` once per process on a small problem and dropped for ``NuSVC``
where they differ or are missing; where the private calibrator is missing (another
version), ``CalibratedClassifierCV`` itself is fitted.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

import numpy as np
import sklearn
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import NuSVC

try:  # scikit-learn's Platt fit (private; present in the versions setup.cfg allows)
  from sklearn.calibration import _sigmoid_calibration  # pylint: disable=protected-access
except ImportError:  # pragma: no cover - another scikit-learn: the meta-estimator instead
  _sigmoid_calibration = None
try:  # scikit-learn's LibSVM binding (private): the calibration folds' SVMs (module doc)
  from sklearn.svm import _libsvm  # pylint: disable=protected-access
except ImportError:  # pragma: no cover
  _libsvm = None

Kind = Literal["raw", "smoothed"]
Decision = Literal["probability", "sign"]


def _ranked(values: np.ndarray, idx: np.ndarray, rng: np.random.Generator,
            descending: bool) -> np.ndarray:
  """idx sorted by values (ties in a random order drawn from rng)."""
  perm = idx[rng.permutation(idx.shape[0])]
  keys = -values[perm] if descending else values[perm]
  return perm[np.argsort(keys, kind="stable")]


def select_examples(affinity: np.ndarray, candidate_mask: np.ndarray,
                    kind: Kind = "smoothed", max_per_class: int = 100,
                    min_verified: int = 2,
                    rng: Optional[np.random.Generator] = None
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Balanced positive and negative examples of one tag (module docstring).

  Args:
    affinity: [C] smoothed affinity in [0, 1] (kind='smoothed') or raw count of
      users who gave the tag (kind='raw').
    candidate_mask: [C] bool, the clips that may be chosen (e.g. training folds).
  Returns:
    (pos [k] int64, neg [k] int64) clip indices, best-ranked first; disjoint.
  """
  rng = np.random.default_rng(0) if rng is None else rng
  affinity = np.asarray(affinity, dtype=np.float64)
  cand = np.flatnonzero(np.asarray(candidate_mask, dtype=bool))
  if kind == "smoothed":
    k = min(max_per_class, cand.shape[0] // 2)
    ranked = _ranked(affinity, cand, rng, descending=True)
    pos, neg = ranked[:k], ranked[::-1][:k]
  elif kind == "raw":
    verified = cand[affinity[cand] >= min_verified]
    zero = cand[affinity[cand] == 0]
    pos = _ranked(affinity, verified, rng, descending=True)[:max_per_class]
    neg = zero[rng.permutation(zero.shape[0])][:pos.shape[0]]
    pos = pos[:neg.shape[0]]
  else:
    raise ValueError(f"kind must be 'raw' or 'smoothed', got {kind!r}")
  return pos.astype(np.int64), neg.astype(np.int64)


class PlattSVM:
  """A linear nu-SVM fitted on all the examples and Platt's sigmoid fitted on its
  cross-validated decision values: P(positive | x) = expit(-(a f(x) + b)).

  ``estimator``: the SVM (a ``LinearNuSVM``, or a NuSVC where that is unavailable);
  ``a_``, ``b_``: the sigmoid (scikit-learn's names)."""

  classes_ = np.array([0, 1])

  def __init__(self, estimator, a: float, b: float):
    self.estimator, self.a_, self.b_ = estimator, float(a), float(b)

  def decision_function(self, x: np.ndarray) -> np.ndarray:
    return self.estimator.decision_function(x)

  def predict_proba(self, x: np.ndarray) -> np.ndarray:
    """[M, 2] (negative, positive), as ``CalibratedClassifierCV.predict_proba``."""
    p1 = expit(-(self.a_ * self.decision_function(x) + self.b_))
    return np.stack([1.0 - p1, p1], axis=1)


Classifier = Union[PlattSVM, CalibratedClassifierCV]

_NU_SVC = 1  # sklearn.svm._base.LIBSVM_IMPL.index("nu_svc")


class LinearNuSVM:
  """A binary linear nu-SVM fitted by LibSVM through scikit-learn's binding: what
  ``NuSVC(kernel="linear", nu=nu).fit(x, y)`` computes for y in {0, 1}, without the
  estimator's input checks. Public attributes as NuSVC's (``support_``,
  ``support_vectors_``, ``dual_coef_``, ``intercept_``, ``classes_``, ``kernel``,
  ``nu``); ``decision_function`` makes NuSVC's LibSVM call."""

  kernel = "linear"
  classes_ = np.array([0, 1])

  def __init__(self, x: np.ndarray, y: np.ndarray, nu: float):
    x = np.ascontiguousarray(x, np.float64)
    x_var = x.var()  # gamma='scale' (unused by the linear kernel; passed as NuSVC does)
    self.nu, self._gamma = float(nu), 1.0 / (x.shape[1] * x_var) if x_var != 0 else 1.0
    # NuSVC.fit draws a seed from NumPy's global generator: drawn here too, so that
    # stream is left as NuSVC leaves it
    seed = np.random.mtrand._rand.randint(np.iinfo("i").max)  # pylint: disable=protected-access
    _libsvm.set_verbosity_wrap(0)  # as NuSVC.fit sets it (verbose=False)
    (self.support_, self.support_vectors_, self._n_support, self._dual_coef,
     self._intercept, self._prob_a, self._prob_b, _, _) = _libsvm.fit(
         x, np.asarray(y, np.float64), sample_weight=np.empty(0), class_weight=np.ones(2),
         C=0.0, nu=self.nu, probability=False, shrinking=True, tol=1e-3, epsilon=0.0,
         max_iter=-1, random_seed=seed, **self._kernel_args())
    if not (np.isfinite(self._intercept).all() and np.isfinite(self._dual_coef).all()):
      raise ValueError("The dual coefficients or intercepts are not finite. The input "
                       "data may contain large values and need to be preprocessed.")
    # NuSVC's public signs for two classes (LibSVM's own are kept for its calls)
    self.intercept_, self.dual_coef_ = -self._intercept, -self._dual_coef

  def _kernel_args(self) -> dict:
    return dict(svm_type=_NU_SVC, kernel="linear", degree=3, cache_size=200, coef0=0.0,
                gamma=self._gamma)

  def decision_function(self, x: np.ndarray) -> np.ndarray:
    return -_libsvm.decision_function(
        np.ascontiguousarray(x, np.float64), self.support_, self.support_vectors_,
        self._n_support, self._dual_coef, self._intercept, self._prob_a, self._prob_b,
        **self._kernel_args()).ravel()


_svm_impl = []  # the checked implementation, chosen at first use


def _same_as_nusvc(fitted, reference, x_test) -> bool:
  return (np.array_equal(fitted.decision_function(x_test),
                         reference.decision_function(x_test))
          and all(np.array_equal(getattr(fitted, k), getattr(reference, k)) for k in
                  ("support_", "support_vectors_", "dual_coef_", "intercept_")))


def _linear_nusvm():
  """``LinearNuSVM`` where it equals NuSVC on a small fixed problem (checked once per
  process, NumPy's global generator restored), else NuSVC."""
  if not _svm_impl:
    fit = lambda x, y, nu: NuSVC(kernel="linear", nu=nu).fit(x, y)
    if _libsvm is not None:
      rng = np.random.default_rng(0)
      x = rng.normal(size=(24, 5)) + np.repeat([0.0, 0.7], 12)[:, None]
      y = np.repeat([0, 1], 12)
      state = np.random.get_state()
      try:
        with sklearn.config_context(skip_parameter_validation=True):
          same = _same_as_nusvc(LinearNuSVM(x[::2], y[::2], 0.5),
                                fit(x[::2], y[::2], 0.5), x[1::2])
      except Exception:  # pylint: disable=broad-except  (another binding: NuSVC instead)
        same = False
      finally:
        np.random.set_state(state)
      if same:
        fit = LinearNuSVM
    _svm_impl.append(fit)
  return _svm_impl[0]


def fit_tag_svm(x_pos: np.ndarray, x_neg: np.ndarray, nu: float = 0.5,
                seed: int = 0, max_calibration_folds: int = 5) -> Classifier:
  """One binary linear nu-SVM with Platt-calibrated probabilities.

  What ``CalibratedClassifierCV(NuSVC(kernel="linear", nu=nu), method="sigmoid",
  cv=StratifiedKFold(k, shuffle=True, random_state=seed), ensemble=False)`` fits, with
  k = min(max_calibration_folds, examples of the smaller class): the decision values of
  each fold from an SVM trained on the others, the sigmoid fitted to them, and the SVM
  trained on every example (module docstring).

  Args:
    x_pos: [P, F], x_neg: [N, F] features (P, N >= 2).
  Returns:
    The fitted classifier (classes 0 = negative, 1 = positive): a ``PlattSVM``.
  """
  n_min = min(x_pos.shape[0], x_neg.shape[0])
  if n_min < 2:
    raise ValueError(f"need >= 2 examples per class, got {x_pos.shape[0]} "
                     f"positives and {x_neg.shape[0]} negatives")
  x = np.concatenate([x_pos, x_neg]).astype(np.float64)
  y = np.concatenate([np.ones(x_pos.shape[0]), np.zeros(x_neg.shape[0])]).astype(int)
  cv = StratifiedKFold(min(max_calibration_folds, n_min), shuffle=True,
                       random_state=seed)
  if _sigmoid_calibration is None:  # pragma: no cover
    clf = CalibratedClassifierCV(NuSVC(kernel="linear", nu=nu), method="sigmoid",
                                 cv=cv, ensemble=False)
    return clf.fit(x, y)
  fit = _linear_nusvm()
  with sklearn.config_context(skip_parameter_validation=True):
    f = np.empty(y.shape[0])
    for train, test in cv.split(x, y):
      f[test] = fit(x[train], y[train], nu).decision_function(x[test])
    estimator = fit(x, y, nu)
    a, b = _sigmoid_calibration(f, y)
  return PlattSVM(estimator, a, b)


def svm_of(clf: Classifier):
  """The SVM trained on every example (of a ``PlattSVM`` or the meta-estimator)."""
  if isinstance(clf, PlattSVM):
    return clf.estimator
  return clf.calibrated_classifiers_[0].estimator


def sigmoid_of(clf: Classifier) -> tuple:
  """(a, b) of the Platt sigmoid P = expit(-(a f + b))."""
  if isinstance(clf, PlattSVM):
    return clf.a_, clf.b_
  cal = clf.calibrated_classifiers_[0].calibrators[0]
  return float(cal.a_), float(cal.b_)


def predict_labels(clf: Classifier, x: np.ndarray,
                   decision: Decision = "probability") -> np.ndarray:
  """Predicted bool labels [M] for x: [M, F] (see module docstring)."""
  x = np.asarray(x, dtype=np.float64)
  if decision == "probability":
    return clf.predict_proba(x)[:, 1] >= 0.5
  if decision == "sign":
    return svm_of(clf).decision_function(x) >= 0.0
  raise ValueError(f"decision must be 'probability' or 'sign', got {decision!r}")


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
  """Mean of the true-positive and true-negative rates.

  Raises:
    ValueError: y_true lacks one of the two classes.
  """
  y_true = np.asarray(y_true, dtype=bool)
  y_pred = np.asarray(y_pred, dtype=bool)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"shape mismatch {y_true.shape} vs {y_pred.shape}")
  n_pos, n_neg = int(y_true.sum()), int((~y_true).sum())
  if n_pos == 0 or n_neg == 0:
    raise ValueError(f"balanced accuracy needs both classes ({n_pos} positive, "
                     f"{n_neg} negative)")
  tpr = np.sum(y_pred & y_true) / n_pos
  tnr = np.sum(~y_pred & ~y_true) / n_neg
  return float(0.5 * (tpr + tnr))
