"""Beyond the paper: tags from audio and context (the CRBM autotagger of Mandel, Pascanu,
Larochelle & Bengio 2011, arXiv:1103.2832).

``run_audio_tags(workdir, datasets=('majorminer',), ...)`` is the report stage: for each
data set, the same grouped folds (``autotag.folds.grouped_folds``, album/track groups,
seed) and metrics (balanced accuracy; tag-wise and clip-wise ROC-AUC and PR-AUC; mean ±
s.e. over tags or clips; ``autotag.report.summarise``) for

  * crbm      the feature-conditioned CRBM (``crbm_jax.tagger``; its default settings,
              fixed before this evaluation), p(tag | audio) with the user factored out;
  * nusvc     the paper's per-tag linear nu-SVMs (Platt), ``autotag.training.fit_tag``;
  * logistic  per-tag logistic regression on the same balanced examples;
  * logistic_all  per-tag logistic regression on EVERY training clip (the CRBM's data,
              no balanced selection): the ablation that separates "uses all clips" from
              "models the tags jointly";
  * mlp       scikit-learn's multi-label ``MLPClassifier`` (one hidden layer of 64).

Every classifier is tested on the raw tags of the held-out folds (positive: >= 2 people,
negative: nobody); on the simulated study also on the planted truth. Tag completion: for
each held-out clip with >= 2 positive tags, a share (30%, 70%) of them is hidden (at least
one hidden, one kept) and the unobserved tags are ranked by the CRBM with the kept tags
clamped, by the CRBM from audio alone, and by tag co-occurrence in the training folds (no
audio); clip-wise ROC-AUC / PR-AUC of the hidden positives against the true negatives.

Scorecard claim A1 (2011 paper): the CRBM autotagger beats independent per-tag
classifiers; judged by the 2-s.e. rule on the paired per-tag difference in tag-wise
ROC-AUC against the best independent classifier (nusvc, logistic or logistic_all) on the
raw held-out
tags of MajorMiner: "reproduced" when CRBM - best > 2 s.e., "not reproduced" otherwise.

Returns {'markdown': section text, 'scorecard': row dict, 'numbers': every figure}.
"""
from __future__ import annotations

import math
import os
import time
from typing import NamedTuple, Optional, Sequence

import numpy as np

from crbm_jax.autotag import crossval
from crbm_jax.autotag import folds as folds_lib
from crbm_jax.autotag import report as report_lib
from crbm_jax.autotag import training
from crbm_jax.tagger.scoring import MIN_VERIFIED, score_folds
from crbm_jax.util.stats import mean_stderr

Z = 2.0
BASELINES = ("nusvc", "logistic", "logistic_all", "mlp")
INDEPENDENT = ("nusvc", "logistic", "logistic_all")  # the claim's independent classifiers
METRICS = ("balanced_accuracy", "roc_auc_tagwise", "pr_auc_tagwise", "roc_auc_clipwise",
           "pr_auc_clipwise")


class AudioTagData(NamedTuple):
  """name; x [C, F]; raw [C, T] people per tag; groups [C]; tags, display [T]; obs: the
  CRBM's training observations; truth [C, T] bool or None; description."""
  name: str
  x: np.ndarray
  raw: np.ndarray
  groups: np.ndarray
  tags: list
  display: list
  obs: object
  truth: Optional[np.ndarray]
  description: str
  skipped: dict


def load_audio_tag_data(name: str, seed: int = 0, top_tags: int = 40) -> AudioTagData:
  """A data set with clip features as the autotaggers see it (module docstring), on its
  ``top_tags`` most used tags (MajorMiner has 40; the simulated study's vocabulary is
  cut to the same size); clips without features are skipped and counted."""
  from crbm_jax.data.datasets import load_dataset  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper.smoothing_model import fold_groups  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper.table3 import raw_label_counts  # pylint: disable=import-outside-toplevel
  from crbm_jax.tagger import core  # pylint: disable=import-outside-toplevel
  bundle = load_dataset(name, seed=seed)
  has_users = bundle.table.has("user")
  o = bundle.to_observations(aux_groups=("user",) if has_users else (), top_n=top_tags)
  feature_clips = np.asarray(bundle.feature_clips, str)
  keep = np.isin(feature_clips, o.clip)
  clips = feature_clips[keep]
  x = np.asarray(bundle.features, np.float64)[keep]
  raw = raw_label_counts(o, clips)
  groups, _ = fold_groups(bundle.table, clips)
  row = {c: i for i, c in enumerate(clips.tolist())}
  clip_row = np.array([row.get(c, -1) for c in o.clip.tolist()], np.int64)
  ok = clip_row >= 0
  obs = core.Observations(clip_row[ok], o.X[ok].astype(np.float32),
                          o.aux[ok].astype(np.int32), int(o.num_aux),
                          None if not has_users else list(o.entity_names[0]))
  truth = None
  if bundle.truth is not None and "truth_tags" in bundle.extra:
    ttags = [str(t) for t in bundle.extra["truth_tags"]]
    col = {t: j for j, t in enumerate(ttags)}
    frow = {c: i for i, c in enumerate(feature_clips.tolist())}
    truth = np.zeros(raw.shape, bool)
    for j, t in enumerate(o.vocab.tolist()):
      if t in col:
        truth[:, j] = np.asarray(bundle.truth)[[frow[c] for c in clips], col[t]]
  skipped = {"clips_without_features": int(len(np.unique(o.clip)) - len(clips)),
             "feature_rows_without_tags": int((~keep).sum()),
             "observations_of_clips_without_features": int((~ok).sum())}
  return AudioTagData(name, x, raw, groups, o.vocab.tolist(), o.display.tolist(), obs,
                      truth, bundle.description, skipped)


# -- summaries ------------------------------------------------------------------------

def summarise(tags, display, labels, per_fold, oof) -> tuple[list, dict]:
  t = len(tags)
  return report_lib.summarise(tags, display, labels, MIN_VERIFIED, per_fold, oof, [0] * t,
                              {x: 0 for x in tags}, True)


def paired(per_tag_a: list, per_tag_b: list, metric: str) -> tuple[float, float, int]:
  """Mean ± s.e. over tags of a - b for a per-tag metric (tags where both are finite)."""
  a = np.array([r[metric] for r in per_tag_a], np.float64)
  b = np.array([r[metric] for r in per_tag_b], np.float64)
  d = (a - b)[np.isfinite(a) & np.isfinite(b)]
  if d.shape[0] < 2:
    return math.nan, math.nan, int(d.shape[0])
  m, s = mean_stderr(d)
  return float(m), float(s), int(d.shape[0])


# -- baselines -------------------------------------------------------------------------

def per_tag_cv(data: AudioTagData, fold_ids: np.ndarray, model: str, seed: int,
               max_per_class: int = 100, nu: float = 0.5):
  """Out-of-fold probabilities [C, T] of per-tag classifiers ('nusvc' or 'linear') on
  balanced examples (``autotag.training.cross_validate``'s selection and fits)."""
  oof = np.full(data.raw.shape, np.nan)
  for k in range(int(fold_ids.max()) + 1):
    train, test = fold_ids != k, fold_ids == k
    z, mean, std = training.standardize(data.x[train])
    full = np.empty_like(data.x)
    full[train] = z
    zt, _, _ = training.standardize(data.x[test], mean, std)
    for j in range(data.raw.shape[1]):
      picked = crossval.examples(data.raw[:, j], train, "raw", max_per_class,
                                          MIN_VERIFIED, [seed, k, j, 0], 5)
      if picked is None:
        continue
      pos, neg = picked
      oof[test, j] = training.tag_proba(training.fit_tag(full[pos], full[neg], model, nu,
                                                         seed), zt)
  return oof


def logistic_all_cv(data: AudioTagData, fold_ids: np.ndarray, seed: int):
  """Out-of-fold probabilities of one logistic regression per tag on every training clip
  (liblinear, C = 1) and per-fold thresholds (mean training probability)."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  num_folds = int(fold_ids.max()) + 1
  oof = np.full(data.raw.shape, np.nan)
  thresholds = np.full((num_folds, data.raw.shape[1]), 0.5)
  y = data.raw >= MIN_VERIFIED
  for k in range(num_folds):
    train, test = fold_ids != k, fold_ids == k
    z, mean, std = training.standardize(data.x[train])
    zt, _, _ = training.standardize(data.x[test], mean, std)
    for j in range(data.raw.shape[1]):
      if y[train, j].all() or not y[train, j].any():
        continue
      clf = LogisticRegression(C=1.0, solver="liblinear", random_state=seed)
      clf.fit(z, y[train, j].astype(int))
      oof[test, j] = clf.predict_proba(zt)[:, 1]
      thresholds[k, j] = clf.predict_proba(z)[:, 1].mean()
  return oof, thresholds


def mlp_cv(data: AudioTagData, fold_ids: np.ndarray, seed: int):
  """Out-of-fold probabilities of a multi-label MLPClassifier and per-fold thresholds
  (mean training probability, the CRBM's rule)."""
  from sklearn.neural_network import MLPClassifier  # pylint: disable=import-outside-toplevel
  num_folds = int(fold_ids.max()) + 1
  oof = np.full(data.raw.shape, np.nan)
  thresholds = np.full((num_folds, data.raw.shape[1]), 0.5)
  y = (data.raw >= MIN_VERIFIED).astype(int)
  for k in range(num_folds):
    train, test = fold_ids != k, fold_ids == k
    z, mean, std = training.standardize(data.x[train])
    zt, _, _ = training.standardize(data.x[test], mean, std)
    clf = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=200,
                        early_stopping=True, random_state=seed).fit(z, y[train])
    oof[test] = clf.predict_proba(zt)
    thresholds[k] = clf.predict_proba(z).mean(0)
  return oof, thresholds


# -- tag completion --------------------------------------------------------------------

def hide_tags(raw: np.ndarray, fold_ids: np.ndarray, share: float, seed: int):
  """(observed [C, T] 1 for the kept positive tags, hidden [C, T] bool, eligible [C]):
  clips with >= 2 positives keep round((1 - share) k) of them, clipped to [1, k - 1]."""
  rng = np.random.default_rng([seed, int(round(share * 100))])
  pos = raw >= MIN_VERIFIED
  observed = np.zeros(raw.shape, np.float32)
  hidden = np.zeros(raw.shape, bool)
  eligible = pos.sum(1) >= 2
  for i in np.flatnonzero(eligible):
    tags = rng.permutation(np.flatnonzero(pos[i]))
    h = int(min(max(round(share * tags.shape[0]), 1), tags.shape[0] - 1))
    hidden[i, tags[:h]] = True
    observed[i, tags[h:]] = 1.0
  return observed, hidden, eligible


def cooccurrence_scores(raw: np.ndarray, train: np.ndarray, observed: np.ndarray):
  """score_j = mean over kept tags i of p(j | i) = (n_ij + 0.5) / (n_i + 1) from the
  training clips (no audio)."""
  pos = (raw[train] >= MIN_VERIFIED).astype(np.float64)
  co = pos.T @ pos
  cond = (co + 0.5) / (np.diag(co)[:, None] + 1.0)                       # [i, j]
  k = np.maximum(observed.sum(1, keepdims=True), 1.0)
  return (observed @ cond) / k


def completion_scores(scores: np.ndarray, raw, observed, hidden, rows) -> dict:
  """Clip-wise ROC-AUC and PR-AUC of hidden positives vs true negatives among the
  unobserved tags (mean ± s.e. over clips)."""
  rocs, prs = [], []
  for i in rows:
    cand = (observed[i] == 0) & ((raw[i] == 0) | hidden[i])
    y = hidden[i][cand]
    if y.all() or not y.any():
      continue
    r, p = report_lib.roc_pr_auc(y, scores[i][cand])
    rocs.append(r)
    prs.append(p)
  return {"roc_auc": report_lib.mean_se(rocs), "pr_auc": report_lib.mean_se(prs),
          "roc": np.array(rocs), "pr": np.array(prs)}


# -- the stage -------------------------------------------------------------------------

def evaluate_dataset(data: AudioTagData, *, seed: int = 0, num_folds: int = 5,
                     config=None, baselines: Sequence[str] = BASELINES,
                     shares: Sequence[float] = (0.3, 0.7), log=print) -> dict:
  """Every method on one data set's folds (module docstring); a dict of numbers."""
  import jax  # pylint: disable=import-outside-toplevel
  from crbm_jax.tagger import core  # pylint: disable=import-outside-toplevel
  config = config or core.TaggerConfig()
  fold_ids = folds_lib.grouped_folds(data.groups, num_folds, seed)
  n, t = data.raw.shape
  out = {"dataset": data.name, "description": data.description, "num_clips": int(n),
         "num_tags": int(t), "num_features": int(data.x.shape[1]),
         "num_observations": int(data.obs.v.shape[0]),
         "users": data.obs.users is not None, "skipped": data.skipped,
         "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
         "methods": {}, "seconds": {}}
  oofs, thresholds = {}, {}
  start = time.perf_counter()
  fits = core.cross_validated_fits(data.x, data.obs, fold_ids, config, seed)
  out["seconds"]["crbm_train"] = round(fits.seconds, 2)
  out["seconds"]["crbm_total"] = round(time.perf_counter() - start, 2)
  oof = np.full((n, t), np.nan)
  for k in range(num_folds):
    oof[fold_ids == k] = fits.proba[k][fold_ids == k]
  oofs["crbm"], thresholds["crbm"] = oof, fits.thresholds
  log(f"audio_tags {data.name}: crbm cross-validated in {out['seconds']['crbm_total']} s")
  # Calibration of the prediction methods against the exact marginals (fold 0 model).
  p0 = jax.tree.map(lambda a: a[0], fits.params)
  z0, _, _ = core.standardize_on(data.x, np.flatnonzero(fold_ids != 0))
  test0 = fold_ids == 0
  exact = fits.proba[0][test0] if config.predict == "exact" else core.predict_params(
      core.TaggerConfig(**{**out["config"], "predict": "exact"}), p0, z0[test0])
  calib = {}
  for method in core.PREDICT_METHODS:
    c = core.TaggerConfig(**{**out["config"], "predict": method})
    core.predict_params(c, p0, z0[test0][:8], seed=seed)  # compile
    tick = time.perf_counter()
    p = core.predict_params(c, p0, z0[test0], seed=seed)
    sec = time.perf_counter() - tick
    y = data.raw[test0] >= MIN_VERIFIED
    calib[method] = {"max_abs_diff_vs_exact": float(np.max(np.abs(p - exact))),
                     "ece": expected_calibration_error(p, y),
                     "clips_per_second": round(float(test0.sum()) / max(sec, 1e-9), 1)}
  out["prediction"] = calib
  for name in baselines:
    tick = time.perf_counter()
    if name == "mlp":
      oofs[name], thresholds[name] = mlp_cv(data, fold_ids, seed)
    else:
      with crossval.one_blas_thread():  # many small fits: BLAS threads only spin
        if name == "logistic_all":
          oofs[name], thresholds[name] = logistic_all_cv(data, fold_ids, seed)
        else:
          oofs[name] = per_tag_cv(data, fold_ids, "nusvc" if name == "nusvc" else "linear",
                                  seed)
          thresholds[name] = np.full((num_folds, t), 0.5)
    out["seconds"][f"{name}_total"] = round(time.perf_counter() - tick, 2)
    log(f"audio_tags {data.name}: {name} cross-validated in "
        f"{out['seconds'][f'{name}_total']} s")
  # Linear per-tag prediction throughput (what the stored nu-SVM/logistic models do).
  coef = np.ones((t, data.x.shape[1]))
  tick = time.perf_counter()
  for _ in range(10):
    f = ((data.x - data.x.mean(0)) / (data.x.std(0) + 1)) @ coef.T
    _ = 1.0 / (1.0 + np.exp(-f))
  out["linear_clips_per_second"] = round(10 * n / max(time.perf_counter() - tick, 1e-9), 1)
  label_sets = [("raw", data.raw)]
  if data.truth is not None:
    label_sets.append(("truth", data.truth.astype(np.int64) * MIN_VERIFIED))
  for label_name, labels in label_sets:
    per_tags = {}
    for method, oof_m in oofs.items():
      per_fold = score_folds(oof_m, thresholds[method], labels, fold_ids)
      per_tag, overall = summarise(data.tags, data.display, labels, per_fold, oof_m)
      per_tags[method] = per_tag
      out["methods"].setdefault(method, {})[label_name] = {
          k: list(overall[k]) for k in METRICS}
    out.setdefault("paired", {})[label_name] = {
        b: {m: paired(per_tags["crbm"], per_tags[b], m.replace("_tagwise", ""))
            for m in ("balanced_accuracy", "roc_auc_tagwise", "pr_auc_tagwise")}
        for b in oofs if b != "crbm"}
  # Tag completion.
  completion = {}
  for share in shares:
    observed, hidden, eligible = hide_tags(data.raw, fold_ids, share, seed)
    clamped = np.full((n, t), np.nan)
    cooc = np.full((n, t), np.nan)
    for k in range(num_folds):
      test = fold_ids == k
      zk, _, _ = core.standardize_on(data.x, np.flatnonzero(~test))
      pk = jax.tree.map(lambda a, k=k: a[k], fits.params)
      clamped[test] = core.predict_params(config, pk, zk[test], observed[test],
                                          observed[test], seed)
      cooc[test] = cooccurrence_scores(data.raw, ~test, observed[test])
    rows = np.flatnonzero(eligible)
    res = {m: completion_scores(s, data.raw, observed, hidden, rows)
           for m, s in (("crbm_given_tags", clamped), ("crbm_audio_only", oofs["crbm"]),
                        ("cooccurrence", cooc))}
    entry = {m: {"roc_auc": list(r["roc_auc"]), "pr_auc": list(r["pr_auc"])}
             for m, r in res.items()}
    for other in ("crbm_audio_only", "cooccurrence"):
      d = res["crbm_given_tags"]["roc"] - res[other]["roc"]
      entry[f"paired_roc_vs_{other}"] = list(mean_stderr(d)) if d.shape[0] > 1 else None
    completion[str(share)] = entry
  out["completion"] = completion
  return out


def evaluate_thinned(data: AudioTagData, keep: float, *, seed: int = 0,
                     num_folds: int = 5, config=None,
                     baselines: Sequence[str] = ("nusvc", "logistic_all")) -> dict:
  """The sparsity experiment's thinned draw (``paper.sparsity.thin_counts``: each
  player's tag kept with probability ``keep``) for training, tested on the UNthinned raw
  tags of the held-out clips (the sparsity experiment's test (b)). The CRBM trains on one
  observation per clip (the tags at least one kept player gave, as the sparsity
  experiment's CRBM); the per-tag classifiers select examples from the thinned counts
  with the paper's rule (>= 2 players)."""
  from crbm_jax.paper.sparsity import thin_counts  # pylint: disable=import-outside-toplevel
  from crbm_jax.tagger import core  # pylint: disable=import-outside-toplevel
  config = config or core.TaggerConfig()
  thinned = thin_counts(data.raw, keep, np.random.default_rng([seed, int(keep * 1000)]))
  fold_ids = folds_lib.grouped_folds(data.groups, num_folds, seed)
  thin_data = data._replace(raw=thinned, obs=core.clip_observations(thinned, 1))
  fits = core.cross_validated_fits(data.x, thin_data.obs, fold_ids, config, seed)
  oof = np.full(data.raw.shape, np.nan)
  for k in range(num_folds):
    oof[fold_ids == k] = fits.proba[k][fold_ids == k]
  oofs, thresholds = {"crbm": oof}, {"crbm": fits.thresholds}
  for name in baselines:
    if name == "logistic_all":
      oofs[name], thresholds[name] = logistic_all_cv(thin_data, fold_ids, seed)
    elif name == "mlp":
      oofs[name], thresholds[name] = mlp_cv(thin_data, fold_ids, seed)
    else:
      oofs[name] = per_tag_cv(thin_data, fold_ids, "nusvc" if name == "nusvc" else "linear",
                              seed)
      thresholds[name] = np.full((num_folds, data.raw.shape[1]), 0.5)
  out = {"keep": keep, "positives_kept": float((thinned >= MIN_VERIFIED).sum()
                                                / max((data.raw >= MIN_VERIFIED).sum(), 1)),
         "methods": {}, "paired": {}}
  per_tags = {}
  for method, oof_m in oofs.items():
    per_fold = score_folds(oof_m, thresholds[method], data.raw, fold_ids)
    per_tag, overall = summarise(data.tags, data.display, data.raw, per_fold, oof_m)
    per_tags[method] = per_tag
    out["methods"][method] = {k: list(overall[k]) for k in METRICS}
  out["paired"] = {b: paired(per_tags["crbm"], per_tags[b], "roc_auc")
                   for b in oofs if b != "crbm"}
  return out


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
  """Mean |observed frequency - mean probability| over 10 equal-width probability bins,
  weighted by the bin's share of (clip, tag) pairs."""
  p, y = p.ravel(), y.ravel().astype(np.float64)
  idx = np.minimum((p * bins).astype(int), bins - 1)
  err = 0.0
  for b in range(bins):
    m = idx == b
    if m.any():
      err += m.mean() * abs(y[m].mean() - p[m].mean())
  return float(err)


def _cell(ms) -> str:
  m, s = ms[0], ms[1]
  if m is None or not math.isfinite(m):
    return "n/a"
  return f"{m:.3f} ± {s:.3f}" if s is not None and math.isfinite(s) else f"{m:.3f}"


def _signed(d) -> str:
  if d is None or not math.isfinite(d[0]):
    return "n/a"
  return f"{d[0]:+.3f} ± {d[1]:.3f}"


def claim_row(numbers: dict) -> dict:
  """Scorecard row A1 from MajorMiner's numbers (module docstring)."""
  mm = numbers.get("majorminer")
  claim = "A1 (2011 follow-up): the CRBM autotagger beats independent per-tag classifiers"
  if mm is None:
    return {"claim": claim, "dataset": "majorminer", "paper": "better", "ours": "n/a",
            "verdict": "not testable", "reason": "MajorMiner not evaluated"}
  paired_raw = mm["paired"]["raw"]
  indep = [b for b in INDEPENDENT if b in paired_raw]
  if not indep:
    return {"claim": claim, "dataset": "majorminer", "paper": "better", "ours": "n/a",
            "verdict": "not testable", "reason": "no independent classifier evaluated"}
  best = max(indep, key=lambda b: mm["methods"][b]["raw"]["roc_auc_tagwise"][0])
  d = paired_raw[best]["roc_auc_tagwise"]
  ok = math.isfinite(d[0]) and math.isfinite(d[1]) and d[0] > Z * d[1]
  return {"claim": claim, "dataset": "majorminer",
          "paper": "CRBM > SVM, LR, MLP (2011)",
          "ours": f"tag-wise ROC-AUC CRBM - {best} = {_signed(d)} (n={d[2]} tags)",
          "verdict": "reproduced" if ok else "not reproduced",
          "reason": ("gain exceeds 2 s.e." if ok else "gain not above 2 s.e.")
          + (" (worse by > 2 s.e.)" if math.isfinite(d[0]) and -d[0] > Z * d[1] else "")}


def markdown(numbers: dict) -> str:
  lines = ["## Beyond the paper: tags from audio and context", "",
           "The conditional RBM conditioned on standardised audio features (visible bias "
           "through W_x; users factored out at prediction) as a multi-label autotagger, "
           "against independent per-tag classifiers on the same grouped folds. Mean ± s.e. "
           "over tags (tag-wise) or clips (clip-wise). Balanced accuracy: SVM/logistic at "
           "p >= 0.5 (balanced training sets), CRBM, logistic_all and MLP at the tag's mean "
           "training probability. logistic_all: one logistic regression per tag on every "
           "training clip (the CRBM's data without the joint model). Paired differences "
           "are CRBM minus the baseline over tags. Rerun: `python -c \"from "
           "crbm_jax.paper import audio_tags; audio_tags.run_audio_tags('out', "
           "datasets=('majorminer', 'simulated'))\"`.", ""]
  for name, nb in numbers.items():
    lines += [f"### {name}", "", f"{nb['description']}; {nb['num_clips']} clips, "
              f"{nb['num_tags']} tags, {nb['num_features']} features, "
              f"{nb['num_observations']} training observations"
              f"{' (one per clip and user)' if nb['users'] else ' (one per clip)'}; "
              f"skipped: {nb['skipped']}.", ""]
    for label in nb["methods"]["crbm"]:
      lines += [f"Tested on {'the raw held-out tags' if label == 'raw' else 'the planted truth'}:",
                "", "| method | balanced acc. | ROC-AUC (tag) | PR-AUC (tag) | "
                "ROC-AUC (clip) | PR-AUC (clip) |", "|---|---|---|---|---|---|"]
      for m, res in nb["methods"].items():
        if label in res:
          lines.append(f"| {m} | " + " | ".join(_cell(res[label][k]) for k in METRICS) + " |")
      lines += ["", "| CRBM minus | balanced acc. | ROC-AUC (tag) | PR-AUC (tag) |",
                "|---|---|---|---|"]
      for b, d in nb["paired"][label].items():
        lines.append(f"| {b} | " + " | ".join(_signed(d[k]) for k in
                                               ("balanced_accuracy", "roc_auc_tagwise",
                                                "pr_auc_tagwise")) + " |")
      lines.append("")
    lines += ["Tag completion (hidden share of each held-out clip's positive tags; "
              "clip-wise ranking of the hidden ones among the unobserved tags):", "",
              "| hidden | CRBM given tags | CRBM audio only | co-occurrence | "
              "given - audio (ROC) | given - co-occ. (ROC) |", "|---|---|---|---|---|---|"]
    for share, e in nb["completion"].items():
      lines.append(f"| {float(share):.0%} | {_cell(e['crbm_given_tags']['roc_auc'])} | "
                   f"{_cell(e['crbm_audio_only']['roc_auc'])} | "
                   f"{_cell(e['cooccurrence']['roc_auc'])} | "
                   f"{_signed(e['paired_roc_vs_crbm_audio_only'])} | "
                   f"{_signed(e['paired_roc_vs_cooccurrence'])} |")
    sec = nb["seconds"]
    lines += ["", "Speed (this machine, 5 folds): CRBM training "
              f"{sec['crbm_train']} s (all folds in one vmapped fit, compilation "
              f"included), CRBM cross-validation total {sec['crbm_total']} s; "
              + ", ".join(f"{b} {sec[b + '_total']} s" for b in BASELINES
                          if b + "_total" in sec) + ". Prediction: "
              + ", ".join(f"CRBM {m} {v['clips_per_second']:g} clips/s (ECE "
                          f"{v['ece']:.3f}, max |diff| vs exact "
                          f"{v['max_abs_diff_vs_exact']:.3f})"
                          for m, v in nb["prediction"].items())
              + f"; per-tag linear models {nb['linear_clips_per_second']:g} clips/s.", ""]
  return "\n".join(lines)


def thinned_markdown(results: Sequence[dict]) -> str:
  lines = ["### MajorMiner, thinned draws (trained on thinned tags, tested on all)", "",
           "Each player's tag kept with probability p (one draw; paper.sparsity.thin_counts); "
           "tested on the unthinned raw tags of the held-out clips.", "",
           "| p | positives kept | " + " | ".join(f"{m} ROC-AUC (tag)" for m in
                                                    results[0]["methods"]) +
           " | " + " | ".join(f"CRBM - {b}" for b in results[0]["paired"]) + " |",
           "|---|---|" + "---|" * (len(results[0]["methods"]) + len(results[0]["paired"]))]
  for r in results:
    lines.append(f"| {r['keep']:g} | {r['positives_kept']:.0%} | "
                 + " | ".join(_cell(v["roc_auc_tagwise"]) for v in r["methods"].values())
                 + " | " + " | ".join(_signed(d) for d in r["paired"].values()) + " |")
  return "\n".join(lines) + "\n"


def run_audio_tags(workdir: Optional[str] = None, datasets: Sequence[str] = ("majorminer",),
                   seed: int = 0, baselines: Sequence[str] = BASELINES, config=None,
                   thin_keep: Sequence[float] = (), log=print) -> dict:
  """The report stage (module docstring); writes audio_tags.md / .json into workdir.
  ``thin_keep``: keep probabilities of MajorMiner thinned draws (``evaluate_thinned``;
  none by default)."""
  numbers = {}
  for name in datasets:
    numbers[name] = evaluate_dataset(load_audio_tag_data(name, seed), seed=seed,
                                     config=config, baselines=baselines, log=log)
  text = markdown(numbers)
  if thin_keep:
    data = load_audio_tag_data("majorminer", seed)
    thinned = [evaluate_thinned(data, float(p), seed=seed, config=config) for p in thin_keep]
    numbers["majorminer_thinned"] = thinned
    text += "\n" + thinned_markdown(thinned)
  row = claim_row(numbers)
  if workdir is not None:
    from crbm_jax.util.atomic import write_json_atomic, write_text_atomic  # pylint: disable=import-outside-toplevel
    os.makedirs(workdir, exist_ok=True)
    write_text_atomic(os.path.join(workdir, "audio_tags.md"), text)
    write_json_atomic(os.path.join(workdir, "audio_tags.json"),
                      {"numbers": numbers, "scorecard": row}, sort_keys=False)
  return {"markdown": text, "scorecard": row, "numbers": numbers}


def stage(config, workdir: str) -> dict:
  """The report stage in ``paper.reproduce``'s form: (config, workdir) -> {'markdown':
  the section body (its title comes from the STAGES entry), 'data': {'scorecard': row
  A1, 'numbers': ...}}. ``config`` (a ConfigDict, a dict or None) may set ``datasets``
  (default ('majorminer',)), ``seed`` (0) and ``baselines`` (nusvc, logistic, mlp)."""
  get = (lambda k, d: config.get(k, d)) if config is not None else (lambda k, d: d)
  out = run_audio_tags(os.path.join(workdir, "audio_tags"),
                       datasets=tuple(get("datasets", ("majorminer",))),
                       seed=int(get("seed", 0)), baselines=tuple(get("baselines", BASELINES)),
                       thin_keep=tuple(get("thin_keep", ())))
  body = out["markdown"].split("\n", 1)[1].lstrip("\n")  # drop the '## ...' title line
  body = body.replace("\n### ", "\n#### ")
  return {"markdown": body, "data": {"scorecard": out["scorecard"],
                                     "numbers": out["numbers"]}}
