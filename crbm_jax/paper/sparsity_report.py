"""The sparsity experiment's statistics and report: per-p summaries with paired
differences and standard errors, the baselines' table, the chosen models' rows, the
Markdown, the plot and the written files (``crbm_jax.paper.sparsity`` runs the experiment).
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np

from crbm_jax.data import tag_kinds as tag_kinds_lib
from crbm_jax.util.atomic import (save_figure_atomic, write_csv_atomic, write_json_atomic,
                                  write_text_atomic)
from crbm_jax.util.stats import format_mean_se

TRAIN = ("raw", "smoothed")
TESTS = ("thinned", "unthinned")
TEST_TITLES = {"thinned": "(a) tested on thinned raw labels (the paper's protocol)",
               "unthinned": "(b) tested on unthinned labels of the held-out clips"}

# Kinds of MajorMiner's tags: the committed list crbm_jax/data/resources/
# majorminer_tag_kinds.tsv (a tag not listed there is 'other').
TAG_KINDS = tag_kinds_lib.load_majorminer_kinds()


def tag_kind(tag: str) -> str:
  """The kind of a MajorMiner tag (``TAG_KINDS``; 'other' when unlisted)."""
  return TAG_KINDS.get(tag, "other")


def _mean_se(values: np.ndarray):
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  mean = float(v.mean()) if v.size else float("nan")
  se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
  return mean, se, int(v.size)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
  """np.nanmean without the all-NaN warning (an unscored cell stays NaN)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return np.nanmean(x, axis=axis)


def _per_tag(per_fold: np.ndarray) -> np.ndarray:
  """[D, T, F, ...] -> [T, ...]: mean over scored folds within a draw, then over draws."""
  return _nanmean(_nanmean(per_fold, 2), 0)


def frequency_bins(usage: np.ndarray, num_bins: int = 3) -> np.ndarray:
  """[T] bin of each tag by usage: 0 = least used third ... num_bins-1 = most used."""
  usage = np.asarray(usage, np.float64)
  order = np.argsort(usage, kind="stable")
  bins = np.empty(len(usage), np.int64)
  bins[order] = (np.arange(len(usage)) * num_bins) // max(len(usage), 1)
  return bins


FREQ_NAMES = ("rare (least used third)", "middle third", "common (most used third)")


def summarize(keep: Sequence[float], per_fold: Sequence[np.ndarray], tag_names: Sequence[str],
              tag_usage: np.ndarray, detect: float = 2.0) -> dict:
  """The sparsity table from the scores (pure; module docstring).

  Args:
    keep: [P] keep probabilities; per_fold: P arrays [D_p, T, F, 2 (train raw, smoothed),
      2 (test thinned, unthinned)], NaN where a selection was skipped.
    tag_names: [T]; tag_usage: [T] full-count sums (for the frequency breakdown).
    detect: the difference (points) the resolution is judged against.
  Returns:
    {'keep', 'tests': {test: {'raw'|'smoothed': [P] (mean, se, n tags), 'diff': [P]
    {mean, se, num_tags, se_draws, wins, losses, resolution, detectable, significant},
    'smoothed_only': [P] tags scored only when trained on smoothed labels,
    'by_kind' / 'by_frequency': {group: [P] (mean, se, n)}}}, 'num_draws': [P]}.
  """
  kinds = [tag_kind(t) for t in tag_names]
  fbins = frequency_bins(tag_usage)
  out = {"keep": [float(p) for p in keep], "num_draws": [int(a.shape[0]) for a in per_fold],
         "tag_names": list(tag_names), "tag_kinds": kinds,
         "frequency_bin": fbins.tolist(), "tests": {}, "per_tag_diff": {}}
  for j, test in enumerate(TESTS):
    entry = {"raw": [], "smoothed": [], "diff": [], "smoothed_only": [],
             "by_kind": {}, "by_frequency": {}}
    tag_diffs = []
    for pf in per_fold:
      pf = np.asarray(pf, np.float64)[..., j]            # [D, T, F, 2]
      acc = _per_tag(pf)                                  # [T, 2]
      for i, name in enumerate(TRAIN):
        entry[name].append(_mean_se(acc[:, i]))
      paired = np.where(np.isfinite(pf).all(-1, keepdims=True), pf, np.nan)
      fold_diff = paired[..., 1] - paired[..., 0]         # [D, T, F]
      tag_diff = _per_tag(fold_diff)                      # [T]
      tag_diffs.append(tag_diff)
      mean, se, n = _mean_se(tag_diff)
      draw_means = _nanmean(_nanmean(fold_diff, 2), 1)   # [D]
      draw_means = draw_means[np.isfinite(draw_means)]
      se_draws = (float(draw_means.std(ddof=1) / math.sqrt(draw_means.size))
                  if draw_means.size > 1 else float("nan"))
      finite = tag_diff[np.isfinite(tag_diff)]
      resolution = 2.0 * se if np.isfinite(se) else float("nan")
      entry["diff"].append(dict(
          mean=mean, se=se, num_tags=n, se_draws=se_draws,
          wins=int((finite > 0).sum()), losses=int((finite < 0).sum()),
          resolution=resolution,
          detectable=bool(np.isfinite(resolution) and resolution <= detect),
          significant=("smoothed" if np.isfinite(se) and mean > 2 * se else
                       "raw" if np.isfinite(se) and mean < -2 * se else "neither")))
      entry["smoothed_only"].append(int((np.isfinite(acc[:, 1]) & ~np.isfinite(acc[:, 0])).sum()))
    for kind in sorted(set(kinds)):
      sel = np.array([k == kind for k in kinds])
      entry["by_kind"][kind] = [_mean_se(d[sel]) for d in tag_diffs]
    for b, bname in enumerate(FREQ_NAMES):
      sel = fbins == b
      entry["by_frequency"][bname] = [_mean_se(d[sel]) for d in tag_diffs]
    out["tests"][test] = entry
    out["per_tag_diff"][test] = [d.tolist() for d in tag_diffs]
  return out


def reference_baselines(reference: dict, names: Sequence[str], num_tags: int) -> np.ndarray:
  """[1, T, F, K, 2] of the p = 1 column from Table 3's run (its baseline autotaggers
  tested on the raw labels, which are the unthinned and the thinned ones at p = 1); NaN
  for a baseline Table 3 did not train."""
  got = reference.get("baselines")
  got = got() if callable(got) else (got or {})
  cols = []
  for n in names:
    pf = got.get(n)
    if pf is None:
      ref = np.asarray(reference["per_fold"]() if callable(reference["per_fold"])
                       else reference["per_fold"])
      pf = np.full(ref.shape[:2], np.nan)
    cols.append(np.asarray(pf, np.float64)[:num_tags])
  b = np.stack(cols, -1)                                 # [T, F, K]
  return np.stack([b, b], -1)[None]


def summarize_baselines(keep: Sequence[float], per_fold: Sequence[np.ndarray],
                        base_per_fold: Sequence[np.ndarray], names: Sequence[str]) -> dict:
  """The baseline smoothers' autotaggers at every p, beside raw and the CRBM.

  Args:
    per_fold: P arrays [D, T, F, 2 (raw, smoothed), 2 (tests)] (``summarize``'s);
    base_per_fold: P arrays [D, T, F, K, 2]; names: [K].
  Returns:
    {'names', 'tests': {test: {name: {'acc': [P] (mean, se, n), 'vs_crbm' / 'vs_raw':
    [P] {mean, se, num_tags, wins, losses}}}}}: paired per (draw, tag, fold) where both
    were scored, per tag averaged over folds then draws, mean ± s.e. over tags.
  """
  out = {"names": list(names), "tests": {}}
  for j, test in enumerate(TESTS):
    entry = {n: {"acc": [], "vs_crbm": [], "vs_raw": []} for n in names}
    for pf, bpf in zip(per_fold, base_per_fold):
      pf = np.asarray(pf, np.float64)[..., j]             # [D, T, F, 2]
      bpf = np.asarray(bpf, np.float64)[..., j]           # [D, T, F, K]
      for k, n in enumerate(names):
        b = bpf[..., k]
        entry[n]["acc"].append(_mean_se(_per_tag(b)))
        for key, ref in (("vs_crbm", pf[..., 1]), ("vs_raw", pf[..., 0])):
          d = _per_tag(np.where(np.isfinite(b) & np.isfinite(ref), b - ref, np.nan))
          mean, se, num = _mean_se(d)
          finite = d[np.isfinite(d)]
          entry[n][key].append(dict(mean=mean, se=se, num_tags=num,
                                    wins=int((finite > 0).sum()),
                                    losses=int((finite < 0).sum())))
    out["tests"][test] = entry
  return out


def baselines_markdown(summary: dict) -> List[str]:
  """The baseline smoothers' rows of the sparsity section."""
  base = summary.get("baselines")
  if not base:
    return []
  keep = summary["keep"]
  lines = ["## Baseline smoothers at every p", "",
           "SVMs trained on each baseline smoother's labels of the same thinned draw "
           "(crbm_jax/smoothers/baselines.py: its setting chosen by the smoothing criterion "
           "on count-split held-out observations), same folds and test examples; paired "
           "differences per (draw, tag, fold), mean ± s.e. over tags (tags better / worse "
           "in parentheses).", ""]
  diff = lambda d: f"{format_mean_se(d['mean'], d['se'], 2)} ({d['wins']}/{d['losses']})"
  for test in TESTS:
    e = base["tests"][test]
    lines += [f"{TEST_TITLES[test]}:", "",
              "| |" + "|".join(f" p = {p:g} " for p in keep) + "|",
              "|---|" + "---|" * len(keep)]
    for n in base["names"]:
      lines.append(f"| trained on {n} |" + "|".join(_cell(m) for m in e[n]["acc"]) + "|")
      lines.append(f"| {n} − CRBM (paired) |" + "|".join(diff(d) for d in e[n]["vs_crbm"])
                   + "|")
      lines.append(f"| {n} − raw (paired) |" + "|".join(diff(d) for d in e[n]["vs_raw"])
                   + "|")
    lines.append("")
  for n, why in base.get("not_applicable", {}).items():
    lines.append(f"- {n}: not applicable ({why}).")
  return lines + [""]


# --------------------------------------------------------------------------- output


def _cell(m) -> str:
  return format_mean_se(m[0], m[1], 2)


def model_rows(keep: Sequence[float], models: dict) -> List[str]:
  """Table rows: the smoothing CRBM chosen at each p (its first draw) and how much its
  affinities depend on the auxiliary rows (mean over draws of mean |Δ affinity|)."""
  chosen, dep = [], []
  for p in keep:
    infos = [m for k, m in models.items() if k.startswith(f"p={p:g} ")]
    first = next((m for k, m in models.items() if k.startswith(f"p={p:g} ")
                  and ("draw=0" in k or "Table 3" in k)), None)
    sel = (first or {}).get("selected", {})
    chosen.append(", ".join(f"{label} {sel[key]:g}" for key, label in (
        ("num_hidden", "H"), ("learning_rate", "lr"), ("l1_aux", "L1"),
        ("aux_lr_scale", "aux×"), ("batch_size", "batch")) if key in sel) or "n/a")
    if isinstance((first or {}).get("val_criterion"), float):  # issue 23's criterion
      chosen[-1] += (f"; criterion {first['val_criterion']:.4f} (spread "
                     f"{first.get('val_spread', float('nan')):.4f})")
    deps = [m.get("aux_dependence") or {} for m in infos]
    values = [d["all"] for d in deps if isinstance(d.get("all"), float)]
    rel = [d["relative"] for d in deps if isinstance(d.get("relative"), float)]
    dep.append((f"{np.mean(values):.4f}" if values else "n/a")
               + (f" ({100 * np.mean(rel):.1f}%)" if rel else ""))
  return ["| smoothing CRBM chosen |" + "|".join(chosen) + "|",
          "| mean abs(affinity − affinity without aux rows) (share of the mean affinity) |"
          + "|".join(dep) + "|"]


def sparsity_markdown(summary: dict, notes: Sequence[str] = (),
                      models: Optional[dict] = None) -> str:
  """The sparsity section: table, figure, paired differences, where smoothing loses."""
  keep = summary["keep"]
  head = "| |" + "|".join(f" p = {p:g} " for p in keep) + "|"
  rule = "|---|" + "---|" * len(keep)
  lines = ["# Sparsity: fewer players per clip (MajorMiner, binomial thinning)", "",
           "Balanced accuracy (%) of per-tag nu-SVMs trained on raw or smoothed labels of "
           "thinned MajorMiner counts; mean over tags ± standard error over tags (each "
           "tag's value averaged over its folds and thinning draws). Draws per p: "
           + ", ".join(f"{p:g}: {d}" for p, d in zip(keep, summary["num_draws"])) + ".",
           "", "![Sparsity curve](sparsity.png)", ""]
  if models:
    lines += ["## The smoothing models", "", "Chosen by validation search (see notes); "
              "a dependence near 0 means the affinities are nearly the same for every "
              "clip, so the top/bottom-ranked 'smoothed' examples are close to random.", "",
              "| |" + "|".join(f" p = {p:g} " for p in keep) + "|",
              "|---|" + "---|" * len(keep)] + model_rows(keep, models) + [""]
  for test in TESTS:
    e = summary["tests"][test]
    lines += [f"## {TEST_TITLES[test]}", "", head, rule]
    for name in TRAIN:
      lines.append(f"| trained on {name} |" + "|".join(_cell(m) for m in e[name]) + "|")
    lines.append("| smoothed − raw (paired) |"
                 + "|".join(format_mean_se(d["mean"], d["se"], 2) for d in e["diff"]) + "|")
    lines.append("| tags paired (usable) |" + "|".join(str(d["num_tags"]) for d in e["diff"])
                 + "|")
    lines.append("| tags usable raw / smoothed |"
                 + "|".join(f"{r[2]} / {s[2]}" for r, s in zip(e["raw"], e["smoothed"]))
                 + "|")
    lines.append("| tags smoothing wins / loses |"
                 + "|".join(f"{d['wins']} / {d['losses']}" for d in e["diff"]) + "|")
    lines.append("| resolution (2 s.e.) |"
                 + "|".join(f"{d['resolution']:.2f}" if np.isfinite(d["resolution"])
                            else "n/a" for d in e["diff"]) + "|")
    lines.append("| significant at 2 s.e. |" + "|".join(d["significant"] for d in e["diff"])
                 + "|")
    lines.append("")
  lines += baselines_markdown(summary)
  lines += _where_smoothing_loses(summary)
  lines += [f"- {n}" for n in notes] + [""]
  return "\n".join(lines)


def _where_smoothing_loses(summary: dict) -> List[str]:
  keep = summary["keep"]
  lines = ["## Where smoothing wins and loses: paired difference by tag kind and frequency",
           "", "Smoothed − raw (points), mean ± s.e. over the tags of each group "
           "(number of tags in parentheses).", ""]
  for test in TESTS:
    e = summary["tests"][test]
    lines += [f"{TEST_TITLES[test]}:", "",
              "| group |" + "|".join(f" p = {p:g} " for p in keep) + "|",
              "|---|" + "---|" * len(keep)]
    for table in ("by_kind", "by_frequency"):
      for group, cells in e[table].items():
        lines.append(f"| {group} |" + "|".join(
            f"{format_mean_se(m, s, 2)} ({n})" for m, s, n in cells) + "|")
    lines.append("")
  return lines


def plot_sparsity(summary: dict, path: str) -> str:
  """Balanced accuracy vs p (raw vs smoothed training, one panel per test labelling)
  and the paired difference; 1 s.e. bars. Returns path."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  keep = np.asarray(summary["keep"])
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
  for ax, test in zip(axes[:2], TESTS):
    e = summary["tests"][test]
    for name, marker in zip(TRAIN, ("s", "o")):
      m = np.array([c[0] for c in e[name]])
      s = np.nan_to_num(np.array([c[1] for c in e[name]]))
      ax.errorbar(keep, m, yerr=s, marker=marker, capsize=3, label=f"trained on {name}")
    ax.set_xlabel("keep probability p (share of players kept)")
    ax.set_ylabel("balanced accuracy (%)")
    ax.set_title(TEST_TITLES[test], fontsize=9)
    ax.legend(fontsize=8)
  ax = axes[2]
  for test, marker in zip(TESTS, ("^", "v")):
    d = summary["tests"][test]["diff"]
    ax.errorbar(keep, [x["mean"] for x in d], yerr=np.nan_to_num([x["se"] for x in d]),
                marker=marker, capsize=3, label=f"test {test}")
  ax.axhline(0, color="grey", lw=0.8, ls="--")
  ax.set_xlabel("keep probability p")
  ax.set_ylabel("smoothed − raw (points)")
  ax.set_title("paired difference (± 1 s.e.)", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=110)
  plt.close(fig)
  return path


def write_sparsity(summary: dict, workdir: str, notes: Sequence[str] = (),
                   extra: Optional[dict] = None) -> Dict[str, str]:
  """Writes sparsity.md, sparsity.png, sparsity.csv (per tag) and sparsity.json."""
  os.makedirs(workdir, exist_ok=True)
  paths = {"markdown": os.path.join(workdir, "sparsity.md"),
           "png": os.path.join(workdir, "sparsity.png"),
           "csv": os.path.join(workdir, "sparsity.csv"),
           "json": os.path.join(workdir, "sparsity.json")}
  plot_sparsity(summary, paths["png"])
  write_text_atomic(paths["markdown"], sparsity_markdown(summary, notes,
                                                         (extra or {}).get("models")))
  header = ["tag", "kind", "frequency_bin"] + [f"diff_{t}_p{p:g}" for t in TESTS
                                               for p in summary["keep"]]
  rows = []
  for k, tag in enumerate(summary["tag_names"]):
    rows.append([tag, summary["tag_kinds"][k], summary["frequency_bin"][k]]
                + [f"{summary['per_tag_diff'][t][i][k]:.4f}" for t in TESTS
                   for i in range(len(summary["keep"]))])
  write_csv_atomic(paths["csv"], header, rows)
  write_json_atomic(paths["json"], dict(summary, notes=list(notes), **(extra or {})),
                    sort_keys=False)
  return paths


# --------------------------------------------------------------------------- driver
