"""The SVM protocol of Table 3 and Figure 2: autotaggers trained/tested on raw vs smoothed tags.

Protocol (Section 4): the num_tags tags used by the most people (largest sum
of raw counts); num_folds cross-validation folds grouped by track or album,
identical for both label sets. For each fold and tag, one SVM is trained on
the raw and one on the smoothed labels of the training folds (top/bottom
max_per_class examples, see svm.select_examples) and each is tested on the
raw and on the smoothed balanced test set of the held-out fold (top/bottom
test_per_class, default ceil(max_per_class / num_folds) = 20 per class, i.e.
the test fold's share of the 100). A (tag, fold, label set) whose selection has
fewer than min_train_per_class (training) or min_test_per_class (testing)
examples per class is skipped and counted. Accuracy is balanced accuracy;
per tag it is averaged over the folds that were scored; the table's value is
the mean over tags and its error the standard error over tags
(std with ddof=1 / sqrt(number of tags)). Figure 2's error bars are the
standard error over folds of each tag.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from typing import Optional, Sequence

import numpy as np

from crbm_jax.autotag import crossval
from crbm_jax.autotag import features as features_lib
from crbm_jax.autotag import folds as folds_lib
from crbm_jax.autotag import svm
from crbm_jax.util.atomic import (save_figure_atomic, write_csv_atomic, write_json_atomic,
                                  write_text_atomic)
from crbm_jax.util.stats import format_mean_se

LABEL_SETS = ("raw", "smoothed")

@dataclasses.dataclass(frozen=True)
class Table3Result:
  """Accuracies in percent; axes [.., trained (raw, smoothed), tested (raw, smoothed)].

  tag_names: [T] tags used, most used first; tag_usage: [T] raw count sums.
  mean, se: [2, 2] mean over tags and standard error over tags.
  num_tags_scored: [2, 2] tags with at least one scored fold.
  per_tag, per_tag_se: [T, 2, 2] mean and standard error over folds (NaN: none).
  per_fold: [T, num_folds, 2, 2] (NaN where skipped).
  skipped: counts of skipped (tag, fold) selections by reason.
  fold_ids: [C] fold of each clip; settings: the protocol's parameters.
  """
  tag_names: list
  tag_usage: np.ndarray
  mean: np.ndarray
  se: np.ndarray
  num_tags_scored: np.ndarray
  per_tag: np.ndarray
  per_tag_se: np.ndarray
  per_fold: np.ndarray
  skipped: dict
  fold_ids: np.ndarray
  settings: dict


def top_tags(raw_counts: np.ndarray, num_tags: int) -> np.ndarray:
  """Indices of the num_tags columns with the largest count sums (stable)."""
  usage = np.asarray(raw_counts, dtype=np.float64).sum(axis=0)
  return np.argsort(-usage, kind="stable")[:min(num_tags, usage.shape[0])]


def score_autotaggers(x: np.ndarray, train_labels: Sequence[tuple],
                      test_labels: Sequence[tuple], fold_ids: np.ndarray,
                      tags: np.ndarray, seed: int = 0, max_per_class: int = 100,
                      test_per_class: Optional[int] = None, min_verified: int = 2,
                      min_train_per_class: int = 5, min_test_per_class: int = 2,
                      nu: float = 0.5, decision: svm.Decision = "probability",
                      progress: bool = True, label: str = "table3"):
  """Balanced accuracy of per-tag SVMs for any training and test labellings.

  For each fold f and tag t, one SVM per training labelling is fitted on the
  selected examples of the other folds and scored on each test labelling's
  balanced selection of fold f (svm.select_examples). Example selections are
  drawn with ``np.random.default_rng([seed, f, t, i, role])`` (i: the labelling's
  position in its list, role 0 train / 1 test), so a labelling scored at the same
  position selects the same examples in every call.

  Args:
    x: [C, F] standardised features.
    train_labels, test_labels: sequences of (name, values [C, T_all], kind) with
      kind 'raw' (user counts) or 'smoothed' (affinities).
    fold_ids: [C] fold of each clip; tags: [T] columns to score.
  Returns:
    (per_fold [T, num_folds, len(train_labels), len(test_labels)] percent, NaN
    where skipped; skipped {'<role>_<name>': count}).
  """
  num_folds = int(fold_ids.max()) + 1
  test_per_class = (test_per_class if test_per_class is not None
                    else math.ceil(max_per_class / num_folds))
  per_fold = np.full((tags.shape[0], num_folds, len(train_labels), len(test_labels)), np.nan)
  skipped = {f"{role}_{name}": 0 for role, labels in (("train", train_labels),
                                                      ("test", test_labels))
             for name, _, _ in labels}
  # role -> (role index in the example seeds, examples per class, minimum per class, sets)
  roles = {"train": (0, max_per_class, min_train_per_class, train_labels),
           "test": (1, test_per_class, min_test_per_class, test_labels)}

  def score(fold: crossval.Fold, ti: int, _) -> None:
    f, t = fold.index, int(tags[ti])
    masks = {"train": fold.train, "test": fold.test}
    chosen = {}
    for role, (r, per_class, least, label_sets) in roles.items():
      for ki, (name, values, kind) in enumerate(label_sets):
        picked = crossval.examples(values[:, t], masks[role], kind, per_class,
                                   min_verified, [seed, f, t, ki, r], least)
        if picked is None:
          skipped[f"{role}_{name}"] += 1
        else:
          chosen[role, ki] = picked
    for ki in range(len(train_labels)):
      if ("train", ki) not in chosen:
        continue
      pos, neg = chosen["train", ki]
      clf = svm.fit_tag_svm(x[pos], x[neg], nu=nu, seed=seed)
      for kj in range(len(test_labels)):
        if ("test", kj) in chosen:
          t_pos, t_neg = chosen["test", kj]
          y_true = np.r_[np.ones(t_pos.shape[0], bool), np.zeros(t_neg.shape[0], bool)]
          y_pred = svm.predict_labels(clf, x[np.concatenate([t_pos, t_neg])], decision)
          per_fold[ti, f, ki, kj] = 100.0 * svm.balanced_accuracy(y_true, y_pred)

  crossval.fold_tag_loop(fold_ids, num_folds, tags.shape[0], score, progress=progress,
                         label=label)
  return per_fold, skipped


def check_inputs(features: np.ndarray, raw_counts: np.ndarray, smoothed: np.ndarray,
                 tag_names: Sequence[str]) -> None:
  """Raises ValueError naming what is wrong with the Table 3 inputs."""
  x = np.asarray(features)
  c = x.shape[0]
  if raw_counts.shape != smoothed.shape or raw_counts.shape[0] != c:
    raise ValueError(f"shapes disagree: features {x.shape}, raw {raw_counts.shape}, "
                     f"smoothed {smoothed.shape}")
  if len(tag_names) != raw_counts.shape[1]:
    raise ValueError(f"{len(tag_names)} tag names for {raw_counts.shape[1]} tags")
  if not np.all(np.isfinite(x)):
    raise ValueError("features contain NaN or infinite values")
  if np.any(raw_counts < 0):
    raise ValueError("raw_counts must be non-negative numbers of users")
  if not np.all((smoothed >= 0) & (smoothed <= 1)):
    raise ValueError("smoothed affinities must lie in [0, 1] (NaN not allowed)")


def fold_summary(per_fold: np.ndarray):
  """Per-tag mean and standard error over scored folds, then mean and s.e. over tags.

  Args:
    per_fold: [T, num_folds, ...] (NaN where skipped).
  Returns:
    (per_tag [T, ...], per_tag_se [T, ...], mean [...], se [...], num_scored [...]).
  """
  scored = np.isfinite(per_fold)
  n_folds_scored = scored.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_tag = np.nansum(per_fold, axis=1) / n_folds_scored
    dev = np.where(scored, per_fold - per_tag[:, None], 0.0)
    per_tag_se = np.sqrt((dev ** 2).sum(axis=1) / (n_folds_scored - 1)) / np.sqrt(n_folds_scored)
  per_tag = np.where(n_folds_scored > 0, per_tag, np.nan)
  per_tag_se = np.where(n_folds_scored > 1, per_tag_se, np.nan)
  cell_shape = per_fold.shape[2:]
  mean, se = np.full(cell_shape, np.nan), np.full(cell_shape, np.nan)
  num_scored = np.isfinite(per_tag).sum(axis=0)
  for idx in np.ndindex(*cell_shape):
    vals = per_tag[(slice(None),) + idx]
    vals = vals[np.isfinite(vals)]
    if vals.shape[0]:
      mean[idx] = vals.mean()
    if vals.shape[0] > 1:
      se[idx] = vals.std(ddof=1) / np.sqrt(vals.shape[0])
  return per_tag, per_tag_se, mean, se, num_scored


def run_table3(features: np.ndarray, raw_counts: np.ndarray, smoothed: np.ndarray,
               groups: Sequence, tag_names: Sequence[str], num_tags: int = 95,
               num_folds: int = 5, seed: int = 0, progress: bool = True,
               max_per_class: int = 100, test_per_class: Optional[int] = None,
               min_verified: int = 2, min_train_per_class: int = 5,
               min_test_per_class: int = 2, nu: float = 0.5,
               decision: svm.Decision = "probability",
               standardize: bool = True) -> Table3Result:
  """Runs the Table 3 protocol (module docstring).

  Args:
    features: [C, F] clip features; raw_counts: [C, T] users per (clip, tag);
    smoothed: [C, T] affinities in [0, 1]; groups: [C] track/album per clip.
  """
  x = np.asarray(features, dtype=np.float64)
  raw_counts = np.asarray(raw_counts)
  smoothed = np.asarray(smoothed, dtype=np.float64)
  check_inputs(x, raw_counts, smoothed, tag_names)
  c = x.shape[0]
  if standardize:
    x, _, _ = features_lib.standardize(x)
  test_per_class = (test_per_class if test_per_class is not None
                    else math.ceil(max_per_class / num_folds))
  fold_ids = folds_lib.grouped_folds(groups, num_folds, seed)
  tags = top_tags(raw_counts, num_tags)
  labels = [(kind, {"raw": raw_counts, "smoothed": smoothed}[kind], kind)
            for kind in LABEL_SETS]
  per_fold, skipped = score_autotaggers(
      x, labels, labels, fold_ids, tags, seed=seed, max_per_class=max_per_class,
      test_per_class=test_per_class, min_verified=min_verified,
      min_train_per_class=min_train_per_class, min_test_per_class=min_test_per_class,
      nu=nu, decision=decision, progress=progress)
  per_tag, per_tag_se, mean, se, num_scored = fold_summary(per_fold)
  usage = np.asarray(raw_counts, dtype=np.float64).sum(axis=0)[tags]
  settings = dict(num_tags=int(tags.shape[0]), num_folds=num_folds, seed=seed,
                  max_per_class=max_per_class, test_per_class=test_per_class,
                  min_verified=min_verified, min_train_per_class=min_train_per_class,
                  min_test_per_class=min_test_per_class, nu=nu, decision=decision,
                  standardize=standardize, num_clips=c, num_features=x.shape[1])
  return Table3Result([str(tag_names[t]) for t in tags], usage, mean, se, num_scored,
                      per_tag, per_tag_se, per_fold, skipped, fold_ids, settings)


def write_table3(result: Table3Result, workdir: str, name: str = "table3",
                 paper_values: Optional[dict] = None, title: Optional[str] = None) -> dict:
  """Writes <name>.md (2x2 table, paper values beside), <name>.csv (per tag) and
  <name>.json (everything). paper_values: like ``paper.published.TABLE3['mturk']``.

  Returns:
    {'markdown': path, 'csv': path, 'json': path}.
  """
  os.makedirs(workdir, exist_ok=True)
  paths = {k: os.path.join(workdir, f"{name}.{ext}")
           for k, ext in (("markdown", "md"), ("csv", "csv"), ("json", "json"))}
  head = "| Trained \\ Tested | Raw | Smoothed |"
  title = title or f"{name}: balanced accuracy (%) of per-tag SVM autotaggers"
  lines = [f"# {title}", "",
           f"{result.settings['num_tags']} tags, {result.settings['num_folds']} grouped "
           "folds; mean over tags ± standard error over tags.", "", head,
           "|---|---|---|"]
  for i, tr in enumerate(LABEL_SETS):
    cells = []
    for j, te in enumerate(LABEL_SETS):
      cell = format_mean_se(result.mean[i, j], result.se[i, j], 2)
      if paper_values is not None:
        pm, ps = paper_values[tr][te]
        cell += f" (paper {pm:.2f} ± {ps:.2f})"
      cells.append(cell)
    lines.append(f"| {tr.capitalize()} | {cells[0]} | {cells[1]} |")
  lines += ["", f"Tags scored per cell: {result.num_tags_scored.tolist()}; "
            f"skipped (tag, fold) selections: {result.skipped}", ""]
  write_text_atomic(paths["markdown"], "\n".join(lines))
  cols = [f"train_{a}_test_{b}" for a in LABEL_SETS for b in LABEL_SETS]
  write_csv_atomic(paths["csv"], ["tag", "usage"] + cols + [c + "_se" for c in cols],
                   [[tag, f"{result.tag_usage[t]:g}"]
                    + [f"{v:.4f}" for v in result.per_tag[t].ravel()]
                    + [f"{v:.4f}" for v in result.per_tag_se[t].ravel()]
                    for t, tag in enumerate(result.tag_names)])
  blob = dataclasses.asdict(result)
  blob["paper_values"] = paper_values
  write_json_atomic(paths["json"], blob, sort_keys=False)
  return paths


def plot_figure2(result: Table3Result, path: str, top: int = 50,
                 surface_forms: Optional[dict] = None, title: str = "") -> str:
  """Figure 2: per-tag accuracy on raw test labels, trained raw vs smoothed.

  The top most-used tags, sorted by the system trained on smoothed tags, with
  1-standard-error bars over folds. Also writes a CSV beside path.
  Returns:
    The CSV path.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  n = min(top, len(result.tag_names))
  raw_acc, smooth_acc = result.per_tag[:n, 0, 0], result.per_tag[:n, 1, 0]
  raw_se, smooth_se = result.per_tag_se[:n, 0, 0], result.per_tag_se[:n, 1, 0]
  order = np.argsort(-np.nan_to_num(smooth_acc, nan=-np.inf), kind="stable")
  names = [(surface_forms or {}).get(result.tag_names[i], result.tag_names[i])
           for i in order]
  fig, ax = plt.subplots(figsize=(6, max(4, 0.22 * n + 1)))
  pos = np.arange(n)
  ax.errorbar(smooth_acc[order], pos - 0.15, xerr=np.nan_to_num(smooth_se[order]),
              fmt="o", ms=4, capsize=2, label="trained on smoothed tags")
  ax.errorbar(raw_acc[order], pos + 0.15, xerr=np.nan_to_num(raw_se[order]),
              fmt="s", ms=4, capsize=2, label="trained on raw tags")
  ax.axvline(50, color="grey", lw=0.8, ls="--")
  ax.set_yticks(pos, names, fontsize=7)
  ax.invert_yaxis()
  ax.set_xlabel("balanced accuracy on raw test tags (%)")
  ax.set_ylabel("tag")
  ax.set_title(title or f"Autotagger accuracy, top {n} tags")
  ax.legend(loc="lower right", fontsize=7)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=120)
  plt.close(fig)
  csv_path = os.path.splitext(path)[0] + ".csv"
  write_csv_atomic(csv_path, ["tag", "trained_smoothed", "trained_smoothed_se",
                              "trained_raw", "trained_raw_se"],
                   [[names[k], f"{smooth_acc[i]:.4f}", f"{smooth_se[i]:.4f}",
                     f"{raw_acc[i]:.4f}", f"{raw_se[i]:.4f}"] for k, i in enumerate(order)])
  return csv_path
