"""What ``training.train`` reports: ranking metrics, per-tag and overall summaries
(mean ± standard error), per_tag.csv / per_tag.md / accuracy.png / cv.json /
cv_predictions.npz. No JAX."""
from __future__ import annotations

import math
import os

import numpy as np

from crbm_jax.util.atomic import (save_figure_atomic, write_csv_atomic, write_json_atomic,
                                  write_npz_atomic, write_text_atomic)
from crbm_jax.util.stats import mean_stderr, roc_auc


def roc_pr_auc(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
  """(ROC-AUC, average precision) of scores s for bool labels y; NaN without both
  classes. Exact, as sklearn's roc_auc_score and average_precision_score (ties: ROC-AUC
  counts half, average precision steps at each distinct score), without their
  per-call overhead (tested against them)."""
  y = np.asarray(y, bool)
  s = np.asarray(s, np.float64)
  n_pos = int(y.sum())
  n_neg = y.shape[0] - n_pos
  if n_pos == 0 or n_neg == 0:
    return math.nan, math.nan
  roc = roc_auc(s, y)
  order = np.argsort(-s, kind="stable")
  s_sorted, y_sorted = s[order], y[order]
  last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), y.shape[0] - 1]  # end of ties
  tp = np.cumsum(y_sorted)[last]
  precision = tp / (last + 1.0)
  recall = tp / n_pos
  ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
  return float(roc), ap




def mean_se(v) -> tuple[float, float, int]:
  """(mean, standard error, n) of the finite values (NaN, NaN, 0 when there are none)."""
  v = np.asarray(v, np.float64)
  v = v[np.isfinite(v)]
  if v.shape[0] == 0:
    return math.nan, math.nan, 0
  return (*mean_stderr(v), int(v.shape[0]))


def fmt(ms) -> str:
  m, s = ms[0], ms[1]
  if m is None or not math.isfinite(m):
    return "n/a"
  return f"{m:.3f}" + (f" ± {s:.3f}" if s is not None and math.isfinite(s) else "")


def summarise(tags, display, raw_t, min_verified, per_fold, oof, final_counts, usage,
               evaluate):
  per_tag = []
  for j, t in enumerate(tags):
    row = {"tag": t, "display": display[j], "usage": usage[t],
           "positives": int((raw_t[:, j] >= min_verified).sum()),
           "train_examples_per_class": final_counts[j]}
    if evaluate:
      for k, name in enumerate(("balanced_accuracy", "roc_auc", "pr_auc")):
        m, s, nf = mean_se(per_fold[j, :, k])
        row[name], row[name + "_se"] = m, s
      row["folds_scored"] = nf
      y = raw_t[:, j]
      ok = np.isfinite(oof[:, j]) & ((y >= min_verified) | (y == 0))
      row["roc_auc_pooled"], row["pr_auc_pooled"] = roc_pr_auc(y[ok] >= min_verified,
                                                         oof[ok, j])
    per_tag.append(row)
  overall: dict = {}
  if evaluate:
    for name in ("balanced_accuracy", "roc_auc", "pr_auc"):
      m, s, k = mean_se([r[name] for r in per_tag])
      overall[name if name == "balanced_accuracy" else name + "_tagwise"] = (m, s, k)
    # Clip-wise: rank the tags of each clip (out-of-fold), positives its verified tags.
    rocs, prs = [], []
    for i in range(oof.shape[0]):
      y = raw_t[i]
      ok = np.isfinite(oof[i]) & ((y >= min_verified) | (y == 0))
      if ok.sum() == oof.shape[1]:
        r, p = roc_pr_auc(y[ok] >= min_verified, oof[i, ok])
        rocs.append(r)
        prs.append(p)
    overall["roc_auc_clipwise"] = mean_se(rocs)
    overall["pr_auc_clipwise"] = mean_se(prs)
  return per_tag, overall


def write_reports(workdir, per_tag, overall, settings, oof, clip_ids, fold_ids, tags):
  paths = {k: os.path.join(workdir, v) for k, v in (
      ("per_tag_csv", "per_tag.csv"), ("per_tag_md", "per_tag.md"),
      ("figure", "accuracy.png"), ("cv_json", "cv.json"),
      ("cv_predictions", "cv_predictions.npz"))}
  cols = ["tag", "display", "usage", "positives", "train_examples_per_class",
          "balanced_accuracy", "balanced_accuracy_se", "roc_auc", "roc_auc_se", "pr_auc",
          "pr_auc_se", "roc_auc_pooled", "pr_auc_pooled", "folds_scored"]
  def cell(v):
    return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else (
        "" if isinstance(v, float) else str(v))
  order = sorted(range(len(per_tag)), key=lambda j: -np.nan_to_num(
      per_tag[j]["balanced_accuracy"], nan=-1.0))
  write_csv_atomic(paths["per_tag_csv"], cols,
                   [[cell(per_tag[j][c]) for c in cols] for j in order])
  lines = [f"# Autotaggers: {settings['model']} on {settings['labels']} labels", "",
           f"{settings['num_tags']} tags, {settings['num_clips']} clips, "
           f"{settings['num_folds']} folds grouped by {settings['fold_groups']}; tested on "
           f"the raw tags of the held-out folds (positive: >= {settings['min_verified']} "
           "users, negative: none). Mean ± standard error over tags (clip-wise: over "
           "clips).", "", "| metric | value | n |", "|---|---|---|"]
  for k, v in overall.items():
    if isinstance(v, tuple):
      lines.append(f"| {k} | {fmt(v)} | {v[2]} |")
  lines += ["", "| tag | positives | balanced accuracy | ROC-AUC | PR-AUC | folds |",
            "|---|---|---|---|---|---|"]
  for j in order:
    r = per_tag[j]
    lines.append(f"| {r['display']} | {r['positives']} | "
                 f"{fmt((r['balanced_accuracy'], r['balanced_accuracy_se']))} | "
                 f"{fmt((r['roc_auc'], r['roc_auc_se']))} | "
                 f"{fmt((r['pr_auc'], r['pr_auc_se']))} | {r['folds_scored']} |")
  write_text_atomic(paths["per_tag_md"], "\n".join(lines) + "\n")
  plot(per_tag, order, paths["figure"], settings)
  clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v
  write_json_atomic(paths["cv_json"], {
      "overall": {k: [clean(x) for x in v] if isinstance(v, tuple) else v
                  for k, v in overall.items()},
      "per_tag": [{k: clean(v) for k, v in r.items()} for r in per_tag],
      "settings": settings}, indent=1, sort_keys=False, ensure_ascii=False,
                    allow_nan=False)
  write_npz_atomic(paths["cv_predictions"], compress=True, clip_ids=clip_ids,
                   tags=np.array(tags, dtype=str), probability=oof, fold_ids=fold_ids)
  return paths


def plot(per_tag, order, path, settings):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  n = len(order)
  acc = np.array([per_tag[j]["balanced_accuracy"] for j in order])
  se = np.nan_to_num(np.array([per_tag[j]["balanced_accuracy_se"] for j in order]))
  fig, ax = plt.subplots(figsize=(6, max(3, 0.22 * n + 1.2)))
  ax.errorbar(acc, np.arange(n), xerr=se, fmt="o", ms=4, capsize=2)
  ax.axvline(0.5, color="grey", lw=0.8, ls="--")
  ax.set_yticks(np.arange(n), [per_tag[j]["display"] for j in order], fontsize=7)
  ax.invert_yaxis()
  ax.set_xlabel("balanced accuracy on held-out raw tags (± 1 s.e. over folds)")
  ax.set_title(f"{settings['model']} on {settings['labels']} labels, "
               f"{settings['num_folds']} folds by {settings['fold_groups']}", fontsize=9)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=120)
  plt.close(fig)
