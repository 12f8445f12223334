"""The smoothers compared with the CRBM (issue 23, part 4): on the held-out observations
of the smoothing criterion, and against the simulator's true tags (by tag kind), with
paired differences and their standard errors against the CRBM."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from crbm_jax.smoothers import baselines, count_split, criterion

CRBM = "crbm_sampled"


def held_out_scores(obs, val_fraction: float, seed: int, crbm_val: Optional[dict],
                    names: Optional[Sequence[str]] = None, log=None) -> tuple[dict, dict]:
  """Every smoother fitted on the criterion's training observations and scored on its
  held-out ones (the same split ``select_smoothing_model`` made with this seed), and
  every smoother on all observations.

  Returns:
    (scores {name: {'balanced_log_lik', 'auc', 'mean_tag_auc', 'chosen'} or
     {'not_applicable': reason}}, full {name: Smoothed on every observation}).
  """
  held = count_split.held_out_observations(obs.X, obs.counts, obs.aux, obs.groups,
                                           val_fraction, seed)
  tune = baselines.held_out_data(obs, held)
  full = baselines.run_all(obs, tune, names=names, log=log)
  scores = {}
  if crbm_val is not None:
    scores[CRBM] = dict(crbm_val, chosen="the searched CRBM before its refit")
  for name, res in full.items():
    if res.affinities is None:
      scores[name] = {"not_applicable": res.reason}
      continue
    fit = baselines.SMOOTHERS[name](tune.train, tune)
    sc = criterion.score_affinities(fit.affinities[tune.clip_val], tune.X_val)
    scores[name] = dict(balanced_log_lik=sc.balanced_log_lik, auc=sc.auc,
                        mean_tag_auc=sc.mean_tag_auc, chosen=fit.chosen)
  return scores, full


def on_clips(full: Mapping[str, "baselines.Smoothed"], clip_names: np.ndarray,
             clips: np.ndarray) -> Dict[str, np.ndarray]:
  """{name: [len(clips), V] affinities} of the applicable smoothers, rows reordered from
  ``clip_names`` (sorted, the smoothers' order) to ``clips``."""
  row = np.searchsorted(clip_names, clips)
  return {n: r.affinities[row] for n, r in full.items() if r.affinities is not None}


def paired_tag_differences(per_tag: Mapping[str, np.ndarray], reference: str = CRBM) -> dict:
  """{name: {'mean', 'se', 'num_tags'}} of per-tag AUC(name) - AUC(reference) over the
  tags both score (paired by tag)."""
  ref = np.asarray(per_tag[reference], np.float64)
  out = {}
  for name, values in per_tag.items():
    if name == reference:
      continue
    d = np.asarray(values, np.float64) - ref
    d = d[np.isfinite(d)]
    out[name] = dict(mean=float(d.mean()) if len(d) else float("nan"),
                     se=float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else
                     float("nan"), num_tags=int(len(d)))
  return out


def recovery_by_kind(truth: np.ndarray, scores: Mapping[str, np.ndarray],
                     missed_any: np.ndarray, missed_all: np.ndarray,
                     tag_scope: np.ndarray) -> dict:
  """ROC-AUC against the true tags for all / whole-track / clip-level tags, on every
  entry, true tags missed by any worker and by every worker; with per-tag paired
  differences against the CRBM.

  Args:
    tag_scope: [T] 'track' or 'clip' per scored tag.
  """
  from crbm_jax.util.stats import recovery_auc  # pylint: disable=import-outside-toplevel
  truth = np.asarray(truth, bool)
  out = {}
  for kind in ("all", "track", "clip"):
    cols = np.ones(truth.shape[1], bool) if kind == "all" else np.asarray(tag_scope) == kind
    if not cols.any():
      continue
    t = truth[:, cols]
    masks = {"all": np.ones_like(t), "missed_by_any": ~t | (t & missed_any[:, cols]),
             "missed_by_all": ~t | (t & missed_all[:, cols])}
    out[kind] = {}
    for mname, mask in masks.items():
      per = {}
      entry = {"num_tags": int(cols.sum()), "num_positive": int((t & mask).sum())}
      for sname, s in scores.items():
        r = recovery_auc(t, np.asarray(s)[:, cols], mask)
        entry[sname] = r["overall"]
        per[sname] = r["per_tag"]
      if CRBM in per:
        entry["paired_vs_crbm"] = paired_tag_differences(per)
      out[kind][mname] = entry
  return out


def strongest(scores: Mapping[str, dict], exclude=(CRBM,)) -> Optional[str]:
  """The baseline with the best held-out criterion (None when none applies)."""
  ok = {n: s["balanced_log_lik"] for n, s in scores.items()
        if n not in exclude and "balanced_log_lik" in s and np.isfinite(s["balanced_log_lik"])}
  return max(ok, key=lambda n: ok[n]) if ok else None


def markdown(name: str, scores: Mapping[str, dict], recovery: Optional[dict]) -> str:
  """The comparison tables of one data set (docs/smoothing.md explains them)."""
  lines = [f"# Smoothers compared ({name})", "",
           "## Held-out observations of clips in training (the smoothing criterion)", "",
           "Fitted on the criterion's training observations, scored on its held-out "
           "ones: balanced per-bit log likelihood (higher is better; the criterion) and "
           "ROC-AUC over all entries / mean per tag.", "",
           "| smoother | balanced log lik | AUC | mean per-tag AUC | chosen |",
           "|---|---|---|---|---|"]
  for n, s in scores.items():
    if "not_applicable" in s:
      lines.append(f"| {n} | not applicable: {s['not_applicable']} | | | |")
      continue
    chosen = s.get("chosen")
    if isinstance(chosen, dict):
      chosen = ", ".join(f"{k} {v}" for k, v in chosen.items() if k not in ("criterion",
                                                                              "seconds"))
    lines.append(f"| {n} | {s['balanced_log_lik']:.4f} | {s['auc']:.4f} | "
                 f"{s['mean_tag_auc']:.4f} | {chosen or ''} |")
  best = strongest(scores)
  lines += ["", f"Strongest baseline by the criterion: **{best or 'none'}**.", ""]
  if recovery:
    lines += ["## Recovery of the simulator's true tags (ROC-AUC over entries)", "",
              "Paired difference: mean over tags of per-tag AUC minus the CRBM's "
              "(± s.e. over tags).", ""]
    for kind, masks in recovery.items():
      for mname, entry in masks.items():
        lines += [f"### {kind} tags ({entry['num_tags']}), {mname} "
                  f"({entry['num_positive']} positives)", "",
                  "| smoother | AUC | paired per-tag diff vs CRBM |", "|---|---|---|"]
        paired = entry.get("paired_vs_crbm", {})
        for sname, v in entry.items():
          if sname in ("num_tags", "num_positive", "paired_vs_crbm"):
            continue
          d = paired.get(sname)
          diff = f"{d['mean']:+.4f} ± {d['se']:.4f} ({d['num_tags']} tags)" if d else "—"
          lines.append(f"| {sname} | {v:.4f} | {diff} |")
        lines.append("")
  return "\n".join(lines) + "\n"
