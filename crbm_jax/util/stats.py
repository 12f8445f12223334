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


def roc_auc(scores, labels) -> float:
  """ROC-AUC of scores against binary labels (ties count 1/2), from the ranks (the
  Mann-Whitney statistic): the value ``sklearn.metrics.roc_auc_score`` gives, to float
  rounding, without its per-call checks (``recovery_auc`` calls it per tag). NaN when one
  class is missing."""
  from scipy.stats import rankdata  # pylint: disable=import-outside-toplevel
  scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel() > 0
  pos, neg = int(labels.sum()), int((~labels).sum())
  if pos == 0 or neg == 0:
    return float("nan")
  ranks = rankdata(scores)
  return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


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
  truth = np.asarray(truth, dtype=bool)
  scores = np.asarray(scores, dtype=np.float64)
  mask = np.ones_like(truth) if mask is None else np.asarray(mask, dtype=bool)
  if not truth.shape == scores.shape == mask.shape:
    raise ValueError(f"shapes disagree: truth {truth.shape}, scores {scores.shape}, "
                     f"mask {mask.shape}; they must have the same [clips, tags] shape")
  t, s = truth[mask], scores[mask]
  overall = roc_auc(s, t)
  per_tag = np.array([roc_auc(scores[mask[:, j], j], truth[mask[:, j], j])
                      for j in range(truth.shape[1])], np.float64).reshape(truth.shape[1])
  scored = np.isfinite(per_tag)
  return {"overall": overall, "per_tag": per_tag,
          "mean_per_tag": float(per_tag[scored].mean()) if scored.any() else float("nan"),
          "num_entries": int(mask.sum()), "num_positive": int(t.sum()),
          "num_tags_scored": int(scored.sum())}
