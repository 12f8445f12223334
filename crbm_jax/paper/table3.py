"""The autotagging experiment of Section 4 end to end: Table 3, Figure 2, tag recovery.

For each data set (``run_dataset``):
  1. observations with every auxiliary group the data has (simulated study: user,
     track, clip; MajorMiner: track, clip); the CRBM is trained with its best epoch
     chosen on an 80/20 split by validation pseudo-likelihood, then (``refit_all``)
     retrained on all observations for that many epochs, so every clip's W_aux row
     is learned (MajorMiner has one observation per clip);
  2. smoothed labels: per clip, the mean of ``num_samples`` RBM samples conditioned
     on the clip's track and clip with the user factored out (crbm_jax.model.marginals),
     and the mean-field estimate of the same marginals for comparison;
  3. raw labels: the number of users (MajorMiner: players) who gave each tag;
  4. the data set's clip features; 5-fold cross-validation grouped by album when
     the table has one, else by track, identical for both label sets; the Table 3
     protocol of crbm_jax.autotag.protocol and Figure 2;
  5. simulated study only (beyond the paper): ROC-AUC of raw counts and smoothed
     affinities against the simulator's hidden true tags, overall and on the true
     tags the workers missed ("recovering false negative tags").
"""
from __future__ import annotations

import dataclasses
import os
import time
import warnings
from typing import Mapping, Sequence

import jax
import numpy as np

from crbm_jax.autotag import protocol as protocol_lib
from crbm_jax.data.aux_rows import clip_aux_rows
from crbm_jax.data.datasets import DatasetBundle, load_dataset
from crbm_jax.data.observations import Observations
from crbm_jax.model import marginals
from crbm_jax.paper import published
from crbm_jax.paper import smoothing_model
from crbm_jax.data import tag_kinds
from crbm_jax.smoothers import baselines
from crbm_jax.smoothers import compare as smoother_compare
from crbm_jax.paper.smoothing_model import (HPARAM_KEYS, ExperimentError, aux_dependence,  # noqa: F401  (re-exported)
                                           clip_column, load_hparams, model_config,
                                           fit_selected, fold_groups, learnable_groups,
                                           search_space, select_smoothing_model,
                                           train_crbm)
from crbm_jax.util.atomic import write_json_atomic, write_npz_atomic, write_text_atomic
from crbm_jax.util.pool import spawn_pool
from crbm_jax.util.stats import format_mean_se
from crbm_jax.util.stats import recovery_auc

_log = smoothing_model.log


def raw_label_counts(obs: Observations, clips: np.ndarray) -> np.ndarray:
  """[C, V] int32: the number of users who gave each tag to each clip.

  Sums ``obs.counts`` (the table's ``count`` column: 1 per worker in a study, the
  number of players for MajorMiner) over the observations of each clip.
  """
  row = {c: i for i, c in enumerate(np.asarray(clips).tolist())}
  idx = np.array([row.get(c, -1) for c in obs.clip.tolist()], np.int64)
  keep = idx >= 0
  out = np.zeros((len(clips), obs.num_visible), np.int32)
  np.add.at(out, idx[keep], obs.counts[keep])
  return out


def missed_by_workers(study, accepted: np.ndarray, clips: np.ndarray,
                      tag_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Which true tags the clip's accepted honest workers missed.

  Args:
    study: SimulatedStudy; accepted: [H] bool HITs that passed the spam filters.
    clips: [C] clip ids; tag_index: [T'] columns of study.tag_names to keep.
  Returns:
    (missed_any [C, T'], missed_all [C, T'] bool, workers [C] int).
  """
  use = np.asarray(accepted, bool) & np.asarray(study.honest, bool)
  row = {c: i for i, c in enumerate(np.asarray(clips).tolist())}
  idx = np.array([row.get(c, -1) for c in study.hit_clip.tolist()], np.int64)
  use &= idx >= 0
  missed = study.missed[:, tag_index].astype(np.int64)
  n_missed = np.zeros((len(clips), len(tag_index)), np.int64)
  np.add.at(n_missed, idx[use], missed[use])
  workers = np.bincount(idx[use], minlength=len(clips))
  return n_missed > 0, (n_missed == workers[:, None]) & (workers[:, None] > 0), workers


def recovery_report(truth: np.ndarray, scores: Mapping[str, np.ndarray],
                    raw_counts: np.ndarray, missed_any: np.ndarray,
                    missed_all: np.ndarray) -> dict:
  """ROC-AUC of each score [C, T] against truth [C, T] on four entry sets.

  all: every (clip, tag). missed_by_any / missed_by_all: positives are the true tags
  missed by at least one / every accepted honest worker of the clip, negatives all
  false entries. unreported: entries no worker gave (raw count 0), where raw counts
  cannot rank (AUC 0.5): the false negatives the paper argues smoothing recovers.
  """
  truth = np.asarray(truth, bool)
  masks = {"all": np.ones_like(truth),
           "missed_by_any": ~truth | (truth & missed_any),
           "missed_by_all": ~truth | (truth & missed_all),
           "unreported": np.asarray(raw_counts) == 0}
  report = {}
  for mname, mask in masks.items():
    entry = {"num_positive": int((truth & mask).sum()),
             "num_negative": int((~truth & mask).sum())}
    for sname, s in scores.items():
      r = recovery_auc(truth, s, mask)
      entry[sname] = {"overall": r["overall"], "mean_per_tag": r["mean_per_tag"],
                      "num_tags_scored": r["num_tags_scored"]}
    report[mname] = entry
  return report


def write_recovery(report: dict, workdir: str, notes: Sequence[str] = ()) -> dict:
  """Writes recovery.md and recovery.json; returns their paths."""
  paths = {"markdown": os.path.join(workdir, "recovery.md"),
           "json": os.path.join(workdir, "recovery.json")}
  names = [k for k in next(iter(report.values())) if not k.startswith("num_")]
  lines = ["# Recovery of the simulator's hidden true tags (ROC-AUC)", "",
           "Overall AUC over the (clip, tag) entries of each set (mean per-tag AUC in "
           "parentheses). Positives are true tags; negatives are false ones.", "",
           "| Entries | positives | negatives | " + " | ".join(names) + " |",
           "|---|---|---|" + "---|" * len(names)]
  for mname, entry in report.items():
    cells = [f"{entry[s]['overall']:.4f} ({entry[s]['mean_per_tag']:.4f})"
             for s in names]
    lines.append(f"| {mname} | {entry['num_positive']} | {entry['num_negative']} | "
                 + " | ".join(cells) + " |")
  lines += [""] + [f"- {n}" for n in notes] + [""]
  write_text_atomic(paths["markdown"], "\n".join(lines))
  write_json_atomic(paths["json"], {"report": report, "notes": list(notes)}, sort_keys=False)
  return paths


def _smooth(rng_key, params, obs: Observations, config):
  factor_out = tuple(g for g in config.factor_out if g in obs.groups)
  clip_names, aux_rows = clip_aux_rows(obs, factor_out=factor_out)
  s = config.smoothing
  # W_aux padded (exact): MajorMiner's sampler then has the sparsity draws' shapes
  comp = marginals.compare_smoothing_methods(
      rng_key, smoothing_model.pad_num_aux(params), aux_rows,
      num_samples=int(s.num_samples), burn_in=int(s.burn_in), thin=int(s.thin),
      batch=int(s.batch))
  stats = dict(mean_abs_diff=comp.mean_abs_diff, max_abs_diff=comp.max_abs_diff,
               correlation=comp.correlation, sampled_vs_exact=comp.sampled_vs_exact,
               mean_field_vs_exact=comp.mean_field_vs_exact,
               factored_out=list(factor_out), num_samples=int(s.num_samples),
               burn_in=int(s.burn_in), thin=int(s.thin))
  return clip_names, aux_rows, comp.sampled, comp.mean_field, stats


def _selected_text(info: dict) -> str:
  """One line: the chosen settings and their validation PL."""
  sel = info.get("selected", {})
  keys = ("num_hidden", "learning_rate", "l1_aux", "aux_lr_scale", "weight_decay",
          "batch_size")
  text = ", ".join(f"{k} {sel[k]:g}" for k in keys if k in sel)
  if "val_criterion" in info:
    text += (f"; smoothing criterion (balanced log likelihood of held-out tags from the "
             f"aux rows alone, {info['holdout']}) {info['val_criterion']:.4f} "
             f"(spread over 2 initialisations {info.get('val_spread', float('nan')):.4f}, "
             f"held-out ROC-AUC {info.get('val_auc', {}).get('auc', float('nan')):.3f}) at "
             f"epoch {info['best_epoch'] + 1} "
             f"({len(info.get('search_table', []))} configurations)")
  elif "val_pl" in info:
    text += (f"; val log PL {info['val_pl']:.4f} at epoch {info['best_epoch'] + 1} "
             f"({len(info.get('search_table', []))} configurations)")
  elif "training" in info:
    text += f"; val log PL {info['training']['best_val_pl']:.4f} (fixed settings)"
  return text


def _dependence_text(dep: dict) -> str:
  return ", ".join(f"{k} {v:.4f}" for k, v in dep.items()
                   if isinstance(v, float) and k != "relative")


@dataclasses.dataclass
class PreparedDataset:
  """A data set after training and smoothing, ready for the Table 3 protocol.

  Arrays follow ``clips`` [C] (clips with both features and observations) and
  ``tag_names`` [V]: features [C, F], raw [C, V] users per tag, sampled and
  mean_field [C, V] affinities, aux_rows [C, G] (user column -1), groups [C].
  """
  name: str
  out_dir: str
  clips: np.ndarray
  tag_names: list
  surface: dict
  features: np.ndarray
  raw: np.ndarray
  sampled: np.ndarray
  mean_field: np.ndarray
  aux_rows: np.ndarray
  aux_groups: tuple
  groups: np.ndarray
  summary: dict
  paths: dict
  timings: dict
  baselines: dict = dataclasses.field(default_factory=dict)  # {name: [C, V] affinities}


def prepare_dataset(name: str, config, workdir: str, rng_key) -> PreparedDataset:
  """Steps 1-3 (module docstring) and, for the simulated study, the recovery report."""
  out_dir = os.path.join(workdir, name)
  os.makedirs(out_dir, exist_ok=True)
  timings, t0 = {}, time.monotonic()
  def lap(stage):
    timings[stage] = round(time.monotonic() - t0 - sum(timings.values()), 3)
    _log(f"{name}: {stage} done in {timings[stage]:.1f} s")

  kw = config.simulation.to_dict() if name == "simulated" else {}
  bundle: DatasetBundle = load_dataset(name, seed=config.seed, **kw)
  if bundle.features is None:
    raise ExperimentError(f"data set {name!r} has no clip features for autotagging")
  groups_cfg = config.aux_groups.get(name, None)
  aux_groups = tuple(groups_cfg) if groups_cfg else None
  obs = bundle.to_observations(aux_groups=aux_groups, min_users=int(config.min_users))
  _log(f"{name}: {bundle.description}; {obs.num_observations} observations, "
       f"{obs.num_visible} tags, groups {obs.groups}")
  lap("load")

  key_train, key_smooth = jax.random.split(rng_key)
  params, used, model_info = select_smoothing_model(key_train, obs, config, int(config.seed),
                                                    label=name)
  _log(f"{name}: smoothing model ({model_info['method']}, groups {used.groups}): "
       f"{_selected_text(model_info)}")
  lap("train")

  clip_names, aux_rows, sampled, mean_field, smooth_stats = _smooth(
      key_smooth, params, used, config)
  smooth_stats["aux_dependence"] = aux_dependence(params, aux_rows, used.groups)
  _log(f"{name}: sampled vs mean field: mean |diff| {smooth_stats['mean_abs_diff']:.4f}, "
       f"correlation {smooth_stats['correlation']:.4f}; dependence on the aux rows "
       f"{_dependence_text(smooth_stats['aux_dependence'])}")
  lap("smooth")

  feature_clips = np.asarray(bundle.feature_clips, str)
  keep = np.isin(feature_clips, clip_names)
  clips = feature_clips[keep]
  srow = np.searchsorted(clip_names, clips)  # clip_names is sorted
  raw = raw_label_counts(obs, clips)
  groups, group_kind = fold_groups(bundle.table, clips)
  summary = dict(dataset=name, description=bundle.description, simulated=bundle.simulated,
                 num_observations=obs.num_observations, num_tags=obs.num_visible,
                 num_clips=int(len(clips)), clips_without_observations=int((~keep).sum()),
                 num_features=int(bundle.features.shape[1]), fold_groups=group_kind,
                 num_fold_groups=int(len(np.unique(groups))), model=model_info["selected"],
                 training=model_info, smoothing=smooth_stats)
  prep = PreparedDataset(
      name=name, out_dir=out_dir, clips=clips, tag_names=obs.vocab.tolist(),
      surface=dict(zip(obs.vocab.tolist(), obs.display.tolist())),
      features=np.asarray(bundle.features)[keep], raw=raw, sampled=sampled[srow],
      mean_field=mean_field[srow], aux_rows=aux_rows[srow], aux_groups=used.groups,
      groups=groups, summary=summary, paths={}, timings=timings)
  baseline_scores = _smoothers(used, config, model_info, clip_names, prep, name)
  if baseline_scores is not None:
    prep.baselines = _autotagger_baselines(baseline_scores, prep, config)
    lap("baseline smoothers")
  if bundle.truth is not None and "study" in bundle.extra:
    summary["recovery"] = _recovery(bundle, obs, prep, baseline_scores)
    lap("recovery")
  if baseline_scores is not None:
    path = os.path.join(out_dir, "smoothers.md")
    write_text_atomic(path, smoother_compare.markdown(
        name, summary["smoothers"]["held_out"], summary["smoothers"].get("recovery")))
    prep.paths["smoothers_md"] = path
  return prep


def _smoothers(used: Observations, config, model_info: dict, clip_names, prep, name: str):
  """The baseline smoothers (crbm_jax.smoothers) beside the CRBM: held-out criterion
  scores into prep.summary['smoothers']; returns {name: [C, V] affinities on prep.clips}
  or None when ``config.smoothers.enabled`` is off."""
  sconf = config.get("smoothers")
  if sconf is None or not sconf.enabled:
    return None
  names = [n for n in baselines.SMOOTHERS
           if n not in baselines.CROWD or bool(sconf.crowd)]
  scores, full = smoother_compare.held_out_scores(
      used, float(config.selection.val_fraction), int(config.seed),
      model_info.get("val_auc"), names, log=lambda m: _log(f"{name}: {m}"))
  if not sconf.crowd:
    for n in baselines.CROWD:
      scores[n] = {"not_applicable": "not run (config smoothers.crowd False: crowd-kit "
                                     "aggregators take minutes per data set)"}
  prep.summary["smoothers"] = dict(held_out=scores,
                                   strongest_baseline=smoother_compare.strongest(scores))
  _log(f"{name}: strongest baseline smoother by the criterion: "
       f"{prep.summary['smoothers']['strongest_baseline']}")
  return smoother_compare.on_clips(full, np.asarray(clip_names), prep.clips)


def table3_args(prep: PreparedDataset, config) -> tuple[tuple, dict]:
  """(args, kwargs) of ``_timed_table3``: crbm_jax.autotag.protocol.run_table3's, and the
  baseline smoothers' labellings (``baselines``) for autotaggers on the same folds."""
  t3 = config.table3
  kwargs = dict(num_tags=int(t3.num_tags), num_folds=int(t3.num_folds),
                seed=int(config.seed), max_per_class=int(t3.max_per_class),
                min_verified=int(t3.min_verified), nu=float(t3.nu),
                decision=str(t3.decision))
  if prep.baselines:
    kwargs["baselines"] = {n: a for n, a in prep.baselines.items()
                           if not isinstance(a, str)}
  return (prep.features, prep.raw, prep.sampled, prep.groups, prep.tag_names), kwargs


# The baseline smoothers whose labels train Table 3 autotaggers beside the raw and CRBM
# ones (issue 23). raw_share is left out: it is the raw counts per observation, and the
# raw row is already there. A smoother whose affinities are the same for every clip (the
# base rate) ranks no clip above another, so it selects no training examples.
AUTOTAGGER_BASELINES = ("track_pool", "low_rank", "base_rate", "mv", "dawid_skene", "glad",
                        "mace")


def _autotagger_baselines(scores: dict, prep: PreparedDataset, config) -> dict:
  """{name: [C, V] affinities, or the reason (str) it cannot train autotaggers} for the
  smoothers of ``config.smoothers.table3`` (default ``AUTOTAGGER_BASELINES``)."""
  names = tuple(config.smoothers.get("table3", AUTOTAGGER_BASELINES))
  held = prep.summary.get("smoothers", {}).get("held_out", {})
  out = {}
  for n in names:
    if n not in scores:
      out[n] = str(held.get(n, {}).get("not_applicable", "not run"))
      continue
    a = np.asarray(scores[n], np.float64)
    if np.all(np.ptp(a, axis=0) == 0):
      out[n] = ("its affinities are the same for every clip, so no clip ranks above "
                "another to select training examples")
      continue
    out[n] = a
  return out


def baseline_autotaggers(features, raw, groups, baselines: dict, num_tags: int = 95,
                         num_folds: int = 5, seed: int = 0, max_per_class: int = 100,
                         min_verified: int = 2, nu: float = 0.5,
                         decision: str = "probability", progress: bool = True
                         ) -> np.ndarray:
  """[T, F, K] balanced accuracy (%) of SVMs trained on each of the K baseline
  labellings (as 'smoothed' affinities) and tested on the raw labels, with Table 3's
  standardisation, folds, tags and raw test examples (the raw labelling at test position
  0 selects the same test examples as ``run_table3``'s raw column)."""
  from crbm_jax.autotag import features as features_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.autotag import folds as folds_lib  # pylint: disable=import-outside-toplevel
  x, _, _ = features_lib.standardize(np.asarray(features, np.float64))
  raw = np.asarray(raw)
  per_fold, _ = protocol_lib.score_autotaggers(
      x, [(n, np.asarray(a, np.float64), "smoothed") for n, a in baselines.items()],
      [("raw", raw, "raw")], folds_lib.grouped_folds(groups, num_folds, seed),
      protocol_lib.top_tags(raw, num_tags), seed=seed, max_per_class=max_per_class,
      min_verified=min_verified, nu=nu, decision=decision, progress=progress,
      label="table3 baselines")
  return per_fold[..., 0]


def finish_dataset(prep: PreparedDataset, result: "protocol_lib.Table3Result", config,
                   table3_seconds: float) -> dict:
  """Writes Table 3, Figure 2, labels.npz and summary.json (and, with the baseline
  smoothers' autotaggers, their table in smoothers.md); returns the summary."""
  result, base_per_fold = _split_result(result)
  name, paths = prep.name, prep.paths
  paper = published.TABLE3.get(published.TABLE3_NAMES.get(name, ""))
  paths.update({f"table3_{k}": v for k, v in
                protocol_lib.write_table3(
                    result, prep.out_dir, "table3", paper,
                    title=f"Table 3 ({name}): balanced accuracy (%) of per-tag SVM "
                    "autotaggers").items()})
  paths["figure2_png"] = os.path.join(prep.out_dir, "figure2.png")
  paths["figure2_csv"] = protocol_lib.plot_figure2(
      result, paths["figure2_png"], int(config.figure_top), prep.surface,
      title=f"{name}: autotagger accuracy on raw test tags")
  paths["labels_npz"] = os.path.join(prep.out_dir, "labels.npz")
  write_npz_atomic(paths["labels_npz"], compress=True, clips=prep.clips, groups=prep.groups,
                      fold_ids=result.fold_ids, aux_rows=prep.aux_rows,
                      aux_groups=np.array(prep.aux_groups), raw=prep.raw,
                      sampled=prep.sampled, mean_field=prep.mean_field,
                      vocab=np.array(prep.tag_names),
                      display=np.array([prep.surface[t] for t in prep.tag_names]))
  summary = dict(prep.summary)
  summary["table3"] = dict(mean=result.mean.tolist(), se=result.se.tolist(),
                           num_tags=result.settings["num_tags"],
                           num_tags_scored=result.num_tags_scored.tolist(),
                           skipped=result.skipped, paper=paper)
  if prep.baselines:
    trained = [n for n, a in prep.baselines.items() if not isinstance(a, str)]
    table = baseline_table(result.per_fold, base_per_fold, trained)
    table["not_applicable"] = {n: a for n, a in prep.baselines.items() if isinstance(a, str)}
    summary.setdefault("smoothers", {})["table3"] = table
    if "smoothers_md" in paths:
      with open(paths["smoothers_md"], encoding="utf-8") as fh:
        text = fh.read()
      write_text_atomic(paths["smoothers_md"], text + baseline_markdown(table))
  summary["timings_s"] = dict(prep.timings, table3=round(table3_seconds, 3))
  summary["paths"] = paths
  write_json_atomic(os.path.join(prep.out_dir, "summary.json"), summary, sort_keys=False)
  _log(f"{name}: Table 3 (train x test raw/smoothed) {np.round(result.mean, 2).tolist()} "
       f"in {table3_seconds:.1f} s")
  return summary


def _tag_mean_se(per_fold: np.ndarray) -> tuple:
  """[T, F] -> (mean over tags of each tag's fold mean, s.e. over tags, tags)."""
  with warnings.catch_warnings():  # a tag never scored stays NaN
    warnings.simplefilter("ignore", RuntimeWarning)
    per_tag = np.nanmean(np.asarray(per_fold, np.float64), axis=1)
  v = per_tag[np.isfinite(per_tag)]
  se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
  return (float(v.mean()) if len(v) else float("nan")), se, int(len(v)), per_tag


def baseline_table(per_fold: np.ndarray, base_per_fold: np.ndarray, names) -> dict:
  """Autotaggers trained on each baseline smoother's labels, tested on raw labels, beside
  the CRBM's (Table 3's smoothed -> raw cell) and raw's (raw -> raw), on the same tags,
  folds and test examples. Paired differences per (tag, fold) where both were scored,
  averaged per tag over folds; mean ± s.e. over tags (as the sparsity table does)."""
  crbm, raw = per_fold[:, :, 1, 0], per_fold[:, :, 0, 0]
  rows = {}
  for label, pf in [("raw", raw), (smoother_compare.CRBM, crbm)] + [
      (n, base_per_fold[:, :, k]) for k, n in enumerate(names)]:
    mean, se, n, _ = _tag_mean_se(pf)
    row = dict(mean=mean, se=se, num_tags=n)
    for ref_name, ref in (("vs_crbm", crbm), ("vs_raw", raw)):
      if pf is ref:
        continue
      both = np.isfinite(pf) & np.isfinite(ref)
      d_mean, d_se, d_n, per_tag = _tag_mean_se(np.where(both, pf - ref, np.nan))
      finite = per_tag[np.isfinite(per_tag)]
      row[ref_name] = dict(mean=d_mean, se=d_se, num_tags=d_n, wins=int((finite > 0).sum()),
                           losses=int((finite < 0).sum()))
    rows[label] = row
  return {"rows": rows, "test": "raw"}


def baseline_markdown(table: dict) -> str:
  """The autotagger table of the baseline smoothers (appended to smoothers.md)."""
  fmt = lambda d: (f"{format_mean_se(d['mean'], d['se'], 2)} ({d['wins']}/{d['losses']})"
                   if d else "—")
  lines = ["", "## Autotaggers trained on each smoother's labels (Table 3 protocol)", "",
           "Balanced accuracy (%) on the raw test labels, same tags, folds and test "
           "examples as Table 3; mean over tags ± s.e. over tags. Paired differences per "
           "(tag, fold), averaged per tag (tags better / worse in parentheses).", "",
           "| trained on | accuracy | minus CRBM (paired) | minus raw (paired) |",
           "|---|---|---|---|"]
  for name, r in table["rows"].items():
    lines.append(f"| {name} | {format_mean_se(r['mean'], r['se'], 2)} ({r['num_tags']} "
                 f"tags) | {fmt(r.get('vs_crbm'))} | {fmt(r.get('vs_raw'))} |")
  for name, why in table.get("not_applicable", {}).items():
    lines.append(f"| {name} | not applicable: {why} | | |")
  return "\n".join(lines) + "\n"


def _timed_table3(args, kwargs):
  """(Table3Result, seconds) or, with baselines, ((Table3Result, [T, F, K]), seconds)."""
  start = time.monotonic()
  kwargs = dict(kwargs)
  baselines = kwargs.pop("baselines", None)
  result = protocol_lib.run_table3(*args, **kwargs)
  if baselines:
    features, raw, _, groups, _ = args
    result = (result, baseline_autotaggers(features, raw, groups, baselines, **kwargs))
  return result, time.monotonic() - start


def _split_result(result):
  """(Table3Result, baseline per_fold or None) of ``_timed_table3``'s result."""
  return result if isinstance(result, tuple) else (result, None)


def run_dataset(name: str, config, workdir: str, rng_key) -> dict:
  """Runs the whole experiment on one data set in this process; returns its summary."""
  prep = prepare_dataset(name, config, workdir, rng_key)
  args, kwargs = table3_args(prep, config)
  result, seconds = _timed_table3(args, kwargs)
  return finish_dataset(prep, result, config, seconds)


def _recovery(bundle: DatasetBundle, obs: Observations, prep: PreparedDataset,
              baseline_scores=None) -> dict:
  study = bundle.extra["study"]
  truth_tags = np.asarray(bundle.extra["truth_tags"], str)
  vocab_pos = {t: i for i, t in enumerate(obs.vocab.tolist())}
  tag_index = np.array([i for i, t in enumerate(truth_tags.tolist()) if t in vocab_pos],
                       np.int64)
  cols = np.array([vocab_pos[t] for t in truth_tags[tag_index].tolist()], np.int64)
  trow = {c: i for i, c in enumerate(np.asarray(bundle.feature_clips, str).tolist())}
  truth = bundle.truth[np.array([trow[c] for c in prep.clips.tolist()])][:, tag_index]
  missed_any, missed_all, _ = missed_by_workers(
      study, bundle.extra["filter_result"].accepted, prep.clips, tag_index)
  scores = {"raw_count": prep.raw[:, cols], "smoothed_sampled": prep.sampled[:, cols],
            "smoothed_mean_field": prep.mean_field[:, cols]}
  if baseline_scores:
    scope = np.array([tag_kinds.KINDS[k][0] for k in
                      np.asarray(study.tag_kind)[tag_index].tolist()])
    every = {smoother_compare.CRBM: scores["smoothed_sampled"], "raw_count": scores[
        "raw_count"], "crbm_mean_field": scores["smoothed_mean_field"],
             **{n: a[:, cols] for n, a in baseline_scores.items()}}
    prep.summary.setdefault("smoothers", {})["recovery"] = smoother_compare.recovery_by_kind(
        truth, every, missed_any, missed_all, scope)
  report = recovery_report(truth, scores, prep.raw[:, cols], missed_any, missed_all)
  notes = [f"{len(tag_index)} of the {len(truth_tags)} true-tag vocabulary tags are in "
           f"the model's vocabulary (tags given by >= min_users users) and are scored.",
           f"{len(prep.clips)} clips; workers = accepted (spam-filtered) honest HITs.",
           "SIMULATED data: the truth is the simulator's, not people's."]
  rpaths = write_recovery(report, prep.out_dir, notes)
  prep.paths.update({f"recovery_{k}": v for k, v in rpaths.items()})
  return {m: {s: e[s]["overall"] for s in scores} for m, e in report.items()}


def run_demo_audio(num_workers: int = 2) -> dict:
  """Extracts features of the committed demo excerpts (no labels exist for them)."""
  from crbm_jax.autotag import demo_audio_paths  # pylint: disable=import-outside-toplevel
  from crbm_jax.autotag.features import extract_features  # pylint: disable=import-outside-toplevel
  paths = demo_audio_paths()
  start = time.monotonic()
  ext = extract_features(paths, num_workers=num_workers, progress=False)
  seconds = time.monotonic() - start
  _log(f"demo audio: {len(paths)} files -> features {ext.features.shape} "
       f"in {seconds:.1f} s")
  return dict(num_files=len(paths), features_shape=list(ext.features.shape),
              finite=bool(np.all(np.isfinite(ext.features))), seconds=round(seconds, 3),
              skipped=[list(s) for s in ext.skipped])


def _sparsity_labels(config, root):
  """The sparsity experiment's labels, started in their spawned processes before the
  data sets train (``sparsity.start_labels``), or None (experiment off, or its labels
  computed in this process, which gains nothing from starting early)."""
  if config.get("sparsity") is None or not config.sparsity.enabled:
    return None
  if int(config.sparsity.get("label_processes", 1) or 1) <= 1:
    return None
  from crbm_jax.paper import sparsity  # pylint: disable=import-outside-toplevel
  with_reference = str(config.sparsity.dataset) in tuple(config.datasets)
  _log("sparsity experiment: labels of the thinned draws started in worker processes")
  return sparsity.start_labels(config, jax.random.fold_in(root, 1000), with_reference)


def _run_sparsity(config, workdir: str, root, pending, pool, labels=None) -> dict:
  """The sparsity experiment (crbm_jax.paper.sparsity); its p = 1 column is this run's
  Table 3 of the same data set when that data set ran here. ``labels``: its labels as
  ``_sparsity_labels`` started them (None: started here)."""
  from crbm_jax.paper import sparsity  # pylint: disable=import-outside-toplevel
  from crbm_jax.autotag import folds as folds_lib  # pylint: disable=import-outside-toplevel
  name = str(config.sparsity.dataset)
  reference = None
  for prep, job in pending:
    if prep.name != name:
      continue
    def per_fold(job=job):
      result, _ = job if pool is None else job.result()
      return _split_result(result)[0].per_fold

    def baselines(job=job, prep=prep):  # {name: [T, F]} of Table 3's baseline autotaggers
      result, _ = job if pool is None else job.result()
      base = _split_result(result)[1]
      names = [n for n, a in prep.baselines.items() if not isinstance(a, str)]
      return {} if base is None else {n: base[:, :, k] for k, n in enumerate(names)}
    reference = dict(clips=prep.clips, per_fold=per_fold, raw=prep.raw, baselines=baselines,
                     vocab=np.asarray(prep.tag_names, str),
                     fold_ids=folds_lib.grouped_folds(prep.groups,
                                                      int(config.table3.num_folds),
                                                      int(config.seed)),
                     model=dict(prep.summary["training"], aux_dependence=prep.summary[
                         "smoothing"].get("aux_dependence")))
  _log(f"sparsity experiment on {name}"
       + (" (p = 1: this run's Table 3)" if reference is not None else ""))
  res = sparsity.run_sparsity(config, os.path.join(workdir, "sparsity"),
                              jax.random.fold_in(root, 1000), reference=reference,
                              pool=pool, labels=labels)
  return {"dataset": name, "paths": res["paths"], "seconds": res["seconds"],
          "summary": res["summary"]}


def run_autotagging(config, workdir: str) -> dict:
  """Runs every data set of the config; writes <workdir>/summary.json.

  With config.table3_processes > 0, each data set's Table 3 protocol (SVMs, the
  slow part) runs in a spawned worker process while the next data set trains.

  Returns:
    {'datasets': {name: summary}, 'demo_audio': {...} or None, 'seconds': float,
     'summary_json': path}.
  """
  os.makedirs(workdir, exist_ok=True)
  start = time.monotonic()
  root = jax.random.key(int(config.seed))
  out = {"datasets": {}, "demo_audio": None}
  workers = int(config.get("table3_processes", 0))
  pool = spawn_pool(workers) if workers > 0 else None
  labels = None
  try:
    labels = _sparsity_labels(config, root)
    pending = []
    for i, name in enumerate(config.datasets):
      _log(f"data set {name} ({i + 1}/{len(config.datasets)})")
      prep = prepare_dataset(name, config, workdir, jax.random.fold_in(root, i))
      args, kwargs = table3_args(prep, config)
      if pool is None:
        pending.append((prep, _timed_table3(args, kwargs)))
      else:
        _log(f"{name}: Table 3 protocol started in a worker process")
        pending.append((prep, pool.submit(_timed_table3, args, dict(kwargs, progress=False))))
    if config.demo_audio:
      out["demo_audio"] = run_demo_audio(int(config.demo_audio_workers))
    if config.get("sparsity") is not None and config.sparsity.enabled:
      out["sparsity"] = _run_sparsity(config, workdir, root, pending, pool, labels)
    for prep, job in pending:
      result, seconds = job if pool is None else job.result()
      out["datasets"][prep.name] = finish_dataset(prep, result, config, seconds)
  finally:
    if labels is not None:
      labels.close()
    if pool is not None:
      pool.shutdown(cancel_futures=True)
  out["seconds"] = round(time.monotonic() - start, 2)
  out["summary_json"] = os.path.join(workdir, "summary.json")
  write_json_atomic(out["summary_json"], out, sort_keys=False)
  _log(f"all done in {out['seconds']:.1f} s; summary {out['summary_json']}")
  return out
