"""Step 2 of tagging your own audio: per-tag autotaggers, cross-validated (no JAX).

``train(features, tags, workdir)``: one binary classifier per tag (the paper's linear
nu-SVM with Platt probabilities, or logistic regression with ``model='linear'``) on
balanced examples chosen by tag affinity as in Section 4 (``svm.select_examples``);
grouped cross-validation (album, else artist, else track, else audio file, else clip)
with balanced accuracy, ROC-AUC and PR-AUC per tag and per clip, tested on the raw tags
of the held-out folds (``cross_validate``, over ``crossval.fold_tag_loop``); then the
final classifiers on all clips (``fit_final``), saved without pickle (``store``), and the
reports (``report``).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, NamedTuple, Optional, Union

import numpy as np

from crbm_jax.autotag import crossval
from crbm_jax.autotag import features as features_lib
from crbm_jax.autotag import folds as folds_lib
from crbm_jax.autotag import report
from crbm_jax.autotag import store
from crbm_jax.autotag import svm
from crbm_jax.autotag.errors import AutotagError, Log, stderr_log
from crbm_jax.autotag.featureset import FeatureSet, as_features
from crbm_jax.autotag.labels import load_labels, load_smoothed

LABEL_KINDS = ("raw", "smoothed")
MODELS = ("nusvc", "linear")
AUTOTAGGER_DIR = "autotagger"
# Every output of a run (autotagger/ and the reports of report.write_reports): each run
# is a folder runs/<n> and <workdir>/<name> links into current/ (util.runs).
OUTPUT_NAMES = (AUTOTAGGER_DIR, "per_tag.csv", "per_tag.md", "accuracy.png", "cv.json",
                "cv_predictions.npz")


def fit_tag(x_pos: np.ndarray, x_neg: np.ndarray, model: str, nu: float, seed: int
            ) -> dict:
  """One tag's classifier on standardised features -> store arrays."""
  if model == "nusvc":
    return store.from_sklearn_tag(svm.fit_tag_svm(x_pos, x_neg, nu=nu, seed=seed))
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  x = np.concatenate([x_pos, x_neg]).astype(np.float64)
  y = np.r_[np.ones(x_pos.shape[0], int), np.zeros(x_neg.shape[0], int)]
  # liblinear: ~50x faster than lbfgs on these small, nearly separable problems
  # (measured 8 ms vs 0.47 s for 200 x 133); it also regularises the intercept.
  return store.from_sklearn_tag(LogisticRegression(
      C=1.0, solver="liblinear", random_state=seed).fit(x, y))


def standardize(x: np.ndarray, mean=None, std=None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  z, mean, std = features_lib.standardize(x, mean, std)
  return z.astype(np.float64), mean, std


def tag_proba(arrs: dict, z: np.ndarray) -> np.ndarray:
  """P(tag | clip) of one tag's stored classifier on standardised features z."""
  f = z @ arrs["coef"] + arrs["intercept"]
  return 1.0 / (1.0 + np.exp(arrs["platt_a"] * f + arrs["platt_b"]))


@dataclasses.dataclass
class TrainResult:
  """What ``train`` wrote and measured. per_tag: one dict per tag; overall: summary
  metrics (mean ± standard error over tags, or over clips for the clip-wise ones)."""
  autotagger: store.Autotagger
  per_tag: list
  overall: dict
  paths: dict
  settings: dict


class TrainingData(NamedTuple):
  """The feature rows of tagged clips with their labels, for the chosen tags [T].

  x: [N, F] features; clip_ids, paths, groups: [N] (groups: fold group of each row);
  raw: [N, T] users per tag; affinity: [N, T] smoothed labels or None; missing: [N] rows
  without a smoothed label; tags, display: [T] canonical keys and spellings; usage:
  {tag: raw count sum}; stats: counts for the settings.
  """
  x: np.ndarray
  clip_ids: np.ndarray
  paths: np.ndarray
  groups: np.ndarray
  group_kind: str
  raw: np.ndarray
  affinity: Optional[np.ndarray]
  missing: np.ndarray
  tags: list
  display: list
  usage: dict
  min_verified: int
  smoothed: Optional[str]
  stats: dict


def check_options(*, labels: str, model: str, evaluate: bool, num_folds: int,
                  max_per_class: int, min_train_per_class: int, top_tags: int, nu: float,
                  workdir: str) -> None:
  """AutotagError (one line naming the flags) unless every setting is usable."""
  if labels not in LABEL_KINDS:
    raise AutotagError(f"--labels must be one of {', '.join(LABEL_KINDS)}, got {labels!r}")
  if model not in MODELS:
    raise AutotagError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
  if ((evaluate and num_folds < 2) or max_per_class < 2 or min_train_per_class < 2
      or top_tags < 0):
    raise AutotagError("--folds must be 0 (no cross-validation) or >= 2, --max_per_class "
                       "and --min_train_per_class >= 2 and --top_tags >= 0")
  if not 0.0 < nu <= 1.0:
    raise AutotagError(f"--nu must lie in (0, 1], got {nu}")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise AutotagError(f"--workdir {workdir} is a file; give a folder")


def _some(names, k: int = 3) -> str:
  names = list(names)
  return ", ".join(repr(n) for n in names[:k]) + (", ..." if len(names) > k else "")


def report_left_out(lab, raw: np.ndarray, row_item: np.ndarray, cand: list,
                    vocab_pos: dict, min_verified: int, min_train_per_class: int,
                    log: Log) -> None:
  """One console line per kind of clip or tag that training leaves out: tagged clips
  without features (and the tags only they have), tags on every clip with features
  (no negative example), tags with too few positives or negatives."""
  n_items = lab.items.shape[0]
  matched = np.unique(row_item)
  if matched.shape[0] < n_items:
    missing = np.setdiff1d(np.arange(n_items), matched)
    only = [t for t in cand if raw[:, vocab_pos[t]].sum() == 0]
    log(f"crbm-autotag: {missing.shape[0]} of {n_items} tagged clips have no features "
        f"and are left out (e.g. {_some(lab.items[missing].tolist())})"
        + (f"; {len(only)} tag(s) only they have are left out too: "
           f"{_some(lab.display[vocab_pos[t]] for t in only)}" if only else ""))
  else:
    only = []
  everywhere, few = [], []
  for t in cand:
    if t in only:
      continue
    col = raw[:, vocab_pos[t]]
    if (col == 0).sum() == 0:
      everywhere.append(lab.display[vocab_pos[t]])
    elif ((col >= min_verified).sum() < min_train_per_class
          or (col == 0).sum() < min_train_per_class):
      few.append(lab.display[vocab_pos[t]])
  if everywhere:
    log(f"crbm-autotag: {len(everywhere)} tag(s) on every clip with features are left "
        f"out (no clip without them to learn from): {_some(everywhere)}")
  if few:
    log(f"crbm-autotag: {len(few)} tag(s) with fewer than {min_train_per_class} clips "
        f"verified by >= {min_verified} users, or as few without them, are left out "
        f"(--min_train_per_class): {_some(few)}")


def prepare_training_data(fs: FeatureSet, tags: str, workdir: str, *, labels: str,
                          smoothed: Optional[str], smoother, seed: int, min_verified: int,
                          min_train_per_class: int, top_tags: int, canonicalize: bool,
                          log: Log) -> TrainingData:
  """Feature rows matched to the tag table's clips, their raw (and smoothed) labels, the
  tags with enough verified positives and negatives, and the fold groups."""
  lab = load_labels(tags, canonicalize)
  item_row = {c: i for i, c in enumerate(lab.items.tolist())}
  row_item = np.array([item_row.get(c, -1) for c in fs.items.tolist()], np.int64)
  use = row_item >= 0
  if not use.any():
    raise AutotagError(f"none of the {fs.num_clips} feature rows belongs to a clip of "
                       f"{tags}; the features' clip ids ({fs.items[:3].tolist()} ...) must "
                       "be the tag table's clip ids")
  row_item = row_item[use]
  raw = lab.raw[row_item]  # [N, V]
  if min_verified <= 0:
    min_verified = 2 if lab.raw.max() >= 2 else 1
  aff, aff_tags = None, lab.tags
  if labels == "smoothed":
    if smoothed is None:
      if smoother is None:
        raise AutotagError("labels='smoothed' needs smoothed= (a crbm-smooth output) or "
                           "smoother= (e.g. crbm_jax.cli.autotag.smooth_with_crbm, which "
                           "trains the CRBM)")
      smoothed = smoother(tags, workdir, seed, log)
    aff_items, aff_tags = load_smoothed(smoothed, lab)
    aff = aff_items[row_item]
  # Tags: in the label set, with enough verified positives and negatives overall.
  vocab_pos = {t: j for j, t in enumerate(lab.tags)}
  cand = [t for t in aff_tags if t in vocab_pos]
  usage = {t: int(lab.raw[:, vocab_pos[t]].sum()) for t in cand}
  cand.sort(key=lambda t: (-usage[t], t))
  enough = [t for t in cand
            if (raw[:, vocab_pos[t]] >= min_verified).sum() >= min_train_per_class
            and (raw[:, vocab_pos[t]] == 0).sum() >= min_train_per_class]
  report_left_out(lab, raw, row_item, cand, vocab_pos, min_verified, min_train_per_class,
                  log)
  chosen = enough[:top_tags] if top_tags else enough
  if not chosen:
    raise AutotagError(f"{tags}: no tag has >= {min_train_per_class} clips with features "
                       f"verified by >= {min_verified} users and as many without it; "
                       "tag more clips or lower --min_train_per_class")
  raw_t = raw[:, np.array([vocab_pos[t] for t in chosen])]
  if aff is not None:
    apos = {t: j for j, t in enumerate(aff_tags)}
    aff_t = aff[:, [apos[t] for t in chosen]]
    missing = np.isnan(aff_t).any(axis=1)
  else:
    aff_t, missing = None, np.zeros(raw_t.shape[0], bool)
  # Fold groups: the item's album/artist/track, else its audio file, else the clip.
  groups = lab.groups[row_item]
  paths = fs.paths[use]
  clip_group = np.char.startswith(groups, "clip:")
  groups = np.where(clip_group & (paths != ""), np.char.add("file:", paths), groups)
  group_kind = lab.group_kind if lab.group_kind != "clip" else (
      "audio file" if np.any(paths != "") else "clip")
  stats = {"num_tagged_clips_without_features": int(lab.items.shape[0] -
                                                    np.unique(row_item).shape[0]),
           "num_feature_rows_without_tags": int((~use).sum()),
           "tags_with_too_few_examples": len(cand) - len(enough)}
  return TrainingData(
      x=np.asarray(fs.features[use], np.float64), clip_ids=fs.clip_ids[use], paths=paths,
      groups=groups, group_kind=group_kind, raw=raw_t, affinity=aff_t, missing=missing,
      tags=chosen, display=[lab.display[vocab_pos[t]] for t in chosen], usage=usage,
      min_verified=min_verified, smoothed=smoothed, stats=stats)


def _selector(data: TrainingData, max_per_class: int, least: int):
  """select(j, mask, seed_words) -> (pos, neg) or None: tag j's examples by its label
  (smoothed affinities where given, else raw counts)."""
  def select(j, mask, seed_words):
    if data.affinity is not None:
      return crossval.examples(data.affinity[:, j], mask & ~data.missing, "smoothed",
                               max_per_class, data.min_verified, seed_words, least)
    return crossval.examples(data.raw[:, j], mask, "raw", max_per_class,
                             data.min_verified, seed_words, least)
  return select


def cross_validate(data: TrainingData, *, model: str, nu: float, seed: int,
                   num_folds: int, max_per_class: int, min_train_per_class: int,
                   progress: bool = True):
  """Grouped cross-validation of the per-tag classifiers (``crossval.fold_tag_loop``):
  trained on the training folds' examples (features standardised on them), scored on
  every held-out clip's raw tags (positives: >= min_verified users; negatives: none).

  Returns:
    (per_fold [T, num_folds, 3] balanced accuracy, ROC-AUC, PR-AUC (NaN where skipped),
    out-of-fold probabilities [N, T], skipped {'train', 'test'}, fold_ids [N]).
  """
  num_groups = np.unique(data.groups).shape[0]
  if num_groups < num_folds:
    raise AutotagError(f"{num_groups} fold groups ({data.group_kind}) cannot fill "
                       f"{num_folds} folds; lower --folds or add clips")
  fold_ids = folds_lib.grouped_folds(data.groups, num_folds, seed)
  n, t_count = data.raw.shape
  per_fold = np.full((t_count, num_folds, 3), np.nan)  # bal acc, roc, pr
  oof = np.full((n, t_count), np.nan)
  skipped = {"train": 0, "test": 0}
  select = _selector(data, max_per_class, min_train_per_class)

  def prepare(fold: crossval.Fold):
    z, mean, std = standardize(data.x[fold.train])
    zt, _, _ = standardize(data.x[fold.test], mean, std)
    full = np.empty_like(data.x)
    full[fold.train] = z
    return full, zt

  def score(fold: crossval.Fold, j: int, prepared) -> None:
    full, zt = prepared
    picked = select(j, fold.train, [seed, fold.index, j, 0])
    if picked is None:
      skipped["train"] += 1
      return
    pos, neg = picked
    p = tag_proba(fit_tag(full[pos], full[neg], model, nu, seed), zt)
    oof[fold.test, j] = p
    y = data.raw[fold.test, j]
    keep = (y >= data.min_verified) | (y == 0)
    truth = y[keep] >= data.min_verified
    if truth.all() or not truth.any():
      skipped["test"] += 1
    else:
      roc, pr = report.roc_pr_auc(truth, p[keep])
      per_fold[j, fold.index] = (svm.balanced_accuracy(truth, p[keep] >= 0.5), roc, pr)

  crossval.fold_tag_loop(fold_ids, num_folds, t_count, score, prepare=prepare,
                         progress=progress)
  return per_fold, oof, skipped, fold_ids


def fit_final(data: TrainingData, *, model: str, nu: float, seed: int, num_folds: int,
              max_per_class: int):
  """The final classifiers on every clip: (per-tag store arrays, positives per tag,
  feature mean, feature std)."""
  z, mean, std = standardize(data.x)
  select = _selector(data, max_per_class, 2)
  per_tag_arrays, final_counts = [], []
  for j, tag in enumerate(data.tags):
    picked = select(j, np.ones(data.x.shape[0], bool), [seed, num_folds, j, 0])
    if picked is None:
      raise AutotagError(f"tag {tag!r}: too few examples for a classifier")
    pos, neg = picked
    per_tag_arrays.append(fit_tag(z[pos], z[neg], model, nu, seed))
    final_counts.append(int(pos.shape[0]))
  return per_tag_arrays, final_counts, mean, std


def train(features: Union[str, FeatureSet], tags: str, workdir: str, *,
          labels: str = "raw", smoothed: Optional[str] = None, model: str = "nusvc",
          num_folds: int = 5, seed: int = 0, max_per_class: int = 100,
          min_verified: int = 0, min_train_per_class: int = 5, nu: float = 0.5,
          top_tags: int = 0, canonicalize: bool = True, evaluate: bool = True,
          progress: bool = True, log: Log = stderr_log,
          smoother: Optional[Callable[..., str]] = None) -> TrainResult:
  """Step 2 (module docstring). Writes into workdir: autotagger/ (the classifiers),
  per_tag.csv, per_tag.md, accuracy.png (tags sorted by balanced accuracy, 1-s.e. bars
  over folds), cv.json (every number and setting) and cv_predictions.npz (out-of-fold
  probabilities). Each run's outputs are one folder runs/<n>, made ``current`` as a unit
  (``util.runs.publish_outputs``, as crbm-fit's runs), and <workdir>/<name> links to
  current/<name>: a kill never mixes two runs' files, and a run without
  cross-validation shows no earlier run's reports.

  Args:
    labels: 'raw' (number of users who gave the tag) or 'smoothed' (CRBM affinities
      from ``smoothed``, a crbm-smooth output, or from ``smoother(tags, workdir, seed,
      log) -> path``, e.g. ``crbm_jax.cli.autotag.smooth_with_crbm``, which trains the
      CRBM with crbm-fit's search; this package itself never imports JAX).
    model: 'nusvc' (the paper: linear nu-SVM, Platt probabilities) or 'linear'
      (logistic regression: one fit per tag instead of six).
    min_verified: raw labels: a clip is a positive example (and a positive in testing)
      when at least this many users gave the tag; 0 = 2 when some clip has a tag from
      >= 2 users, else 1. Negatives are clips nobody gave the tag.
    top_tags: keep the N most used tags (0: every tag with enough examples).
    num_folds: cross-validation folds; 0 (or evaluate=False) skips cross-validation
      (e.g. fewer fold groups than folds) and only fits the final classifiers.
  """
  evaluate = evaluate and num_folds != 0
  check_options(labels=labels, model=model, evaluate=evaluate, num_folds=num_folds,
                max_per_class=max_per_class, min_train_per_class=min_train_per_class,
                top_tags=top_tags, nu=nu, workdir=workdir)
  os.makedirs(workdir, exist_ok=True)
  start_time = time.time()
  fs = as_features(features)
  data = prepare_training_data(
      fs, tags, workdir, labels=labels, smoothed=smoothed, smoother=smoother, seed=seed,
      min_verified=min_verified, min_train_per_class=min_train_per_class,
      top_tags=top_tags, canonicalize=canonicalize, log=log)
  n, t_count = data.raw.shape
  settings = dict(labels=labels, smoothed=None if data.smoothed is None else
                  os.path.abspath(data.smoothed), model=model, num_folds=num_folds,
                  seed=seed, max_per_class=max_per_class, min_verified=data.min_verified,
                  min_train_per_class=min_train_per_class, nu=nu, top_tags=top_tags,
                  canonicalize=canonicalize, fold_groups=data.group_kind,
                  num_clips=int(n), num_features=int(data.x.shape[1]),
                  num_tagged_clips_without_features=data.stats[
                      "num_tagged_clips_without_features"],
                  num_feature_rows_without_tags=data.stats["num_feature_rows_without_tags"],
                  num_tags=t_count,
                  tags_with_too_few_examples=data.stats["tags_with_too_few_examples"],
                  test_labels="raw")
  per_fold = np.full((t_count, num_folds, 3), np.nan)
  oof = np.full((n, t_count), np.nan)
  skipped, fold_ids = {"train": 0, "test": 0}, None
  if evaluate:
    per_fold, oof, skipped, fold_ids = cross_validate(
        data, model=model, nu=nu, seed=seed, num_folds=num_folds,
        max_per_class=max_per_class, min_train_per_class=min_train_per_class,
        progress=progress)
  per_tag_arrays, final_counts, mean, std = fit_final(
      data, model=model, nu=nu, seed=seed, num_folds=num_folds, max_per_class=max_per_class)
  at = store.assemble(data.tags, data.display, fs.feature_names, "nusvc" if model == "nusvc"
                      else "logistic", mean, std, per_tag_arrays,
                      feature_config=fs.config or None, feature_digest=fs.digest,
                      settings=settings)
  per_tag, overall = report.summarise(data.tags, data.display, data.raw, data.min_verified,
                                      per_fold, oof, final_counts, data.usage, evaluate)
  overall["skipped_selections"] = skipped
  overall["seconds"] = round(time.time() - start_time, 2)
  written = {}

  def write(folder):  # one run folder, made current as a unit (util.runs)
    written["autotagger"] = store.save(at, os.path.join(folder, AUTOTAGGER_DIR))
    if evaluate:
      written.update(report.write_reports(folder, per_tag, overall, settings, oof,
                                          data.clip_ids, fold_ids, data.tags))

  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel
  run = runs_lib.publish_outputs(workdir, write, OUTPUT_NAMES)
  paths_out = {}
  for key, path in written.items():  # <workdir>/<name>: the fixed link into current/
    name = os.path.basename(path)
    link = os.path.join(os.path.abspath(workdir), name)
    paths_out[key] = link if os.path.exists(link) else os.path.join(run, name)
  log(f"crbm-autotag: {t_count} tags, {n} clips, {model} on {labels} labels; "
      + (f"cross-validated balanced accuracy {report.fmt(overall['balanced_accuracy'])}, "
         f"ROC-AUC tag-wise {report.fmt(overall['roc_auc_tagwise'])}, clip-wise "
         f"{report.fmt(overall['roc_auc_clipwise'])}" if evaluate else "no evaluation"))
  log(f"crbm-autotag: wrote {', '.join(sorted(paths_out.values()))}")
  return TrainResult(at, per_tag, overall, paths_out, settings)
