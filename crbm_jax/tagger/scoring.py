"""Per-fold scores of out-of-fold tag probabilities, as the product's cross-validation
(``autotag.training.cross_validate``) scores the per-tag SVMs (no JAX)."""
from __future__ import annotations

import numpy as np

from crbm_jax.autotag import report as report_lib
from crbm_jax.autotag import svm

MIN_VERIFIED = 2


def score_folds(oof: np.ndarray, thresholds: np.ndarray, labels: np.ndarray,
                fold_ids: np.ndarray, min_verified: int = MIN_VERIFIED) -> np.ndarray:
  """[T, K, 3] balanced accuracy (p >= threshold of the fold and tag), ROC-AUC, PR-AUC
  on each held-out fold (positives: labels >= min_verified, negatives: 0; NaN where a
  fold lacks one class), as ``autotag.training.cross_validate`` scores."""
  num_folds = int(fold_ids.max()) + 1
  out = np.full((labels.shape[1], num_folds, 3), np.nan)
  for k in range(num_folds):
    test = fold_ids == k
    for j in range(labels.shape[1]):
      y, p = labels[test, j], oof[test, j]
      keep = ((y >= min_verified) | (y == 0)) & np.isfinite(p)
      truth = y[keep] >= min_verified
      if truth.all() or not truth.any():
        continue
      roc, pr = report_lib.roc_pr_auc(truth, p[keep])
      out[j, k] = (svm.balanced_accuracy(truth, p[keep] >= thresholds[k, j]), roc, pr)
  return out
