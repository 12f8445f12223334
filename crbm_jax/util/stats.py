"""Summary statistics of the host side: mean ± standard error, and ranking AUCs."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def mean_stderr(values) -> Tuple[float, float]:
  """(mean, standard error = sample std / sqrt(n)); the error is NaN for one value."""
  x = np.asarray(values, np.float64)
  se = float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
  return float(np.mean(x)), se


def format_mean_se(mean: float, se: Optional[float], digits: int = 4) -> str:
  """'m ± s', or 'm' when the error is unknown (None, NaN) or zero; 'n/a' for no mean."""
  if mean is None or not np.isfinite(mean):
    return "n/a"
  if se is None or not np.isfinite(se) or se == 0:
    return f"{mean:.{digits}f}"
  return f"{mean:.{digits}f} ± {se:.{digits}f}"


def recovery_auc(truth: np.ndarray, scores: np.ndarray,
                 mask: Optional[np.ndarray] = None) -> dict:
  """ROC-AUC of scores for boolean truth, overall and per tag.

  Args:
    truth: [C, T] bool true tags; scores: [C, T]; mask: [C, T] bool entries to
      score (e.g. the tags each worker missed), default all.
  Returns:
    {'overall': float (NaN when the masked entries lack a class), 'per_tag': [T] (NaN
    where a tag's masked entries lack a class), 'mean_per_tag': float, 'num_entries':
    int, 'num_positive': int, 'num_tags_scored': int}.
  """
  from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel
  truth = np.asarray(truth, dtype=bool)
  scores = np.asarray(scores, dtype=np.float64)
  mask = np.ones_like(truth) if mask is None else np.asarray(mask, dtype=bool)
  if not truth.shape == scores.shape == mask.shape:
    raise ValueError(f"shapes disagree: truth {truth.shape}, scores {scores.shape}, "
                     f"mask {mask.shape}; they must have the same [clips, tags] shape")
  t, s = truth[mask], scores[mask]
  overall = float(roc_auc_score(t, s)) if 0 < t.sum() < t.shape[0] else float("nan")
  per_tag = np.full(truth.shape[1], np.nan)
  for j in range(truth.shape[1]):
    tj, sj = truth[mask[:, j], j], scores[mask[:, j], j]
    if 0 < tj.sum() < tj.shape[0]:
      per_tag[j] = roc_auc_score(tj, sj)
  scored = np.isfinite(per_tag)
  return {"overall": overall, "per_tag": per_tag,
          "mean_per_tag": float(per_tag[scored].mean()) if scored.any() else float("nan"),
          "num_entries": int(mask.sum()), "num_positive": int(t.sum()),
          "num_tags_scored": int(scored.sum())}
