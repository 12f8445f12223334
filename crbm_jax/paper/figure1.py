"""Figure 1 of the paper: tag co-occurrence vs separation within a track.

Separation between two clips of one track, per track:
  'time'       |start_i - start_j| / track_duration when every clip of the
               track has a start and the track a duration;
  'start_rank' |rank_i - rank_j| / clips_in_track, ranks of the clip starts,
               when all starts are known but the duration is not;
  'clip_rank'  the same with ranks of the clip names (sorted), otherwise.
The number of tracks using each method is reported (`Figure1.methods`).
Bins are right-closed, (lo, hi], with a 1e-9 tolerance so that separations
such as 20% of a track fall in the (0, 20] bin; separation 0 goes to bin 0.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence, Tuple

import numpy as np

from crbm_jax.paper import cooccurrence as co
from crbm_jax.util.atomic import save_figure_atomic, write_csv_atomic

MEASURES = ("shared_tags", "cosine")
USER_RELATIONS = ("different", "same", "any")
DEFAULT_VARIANTS = (("shared_tags", "different"), ("shared_tags", "same"),
                    ("cosine", "different"))
_REL_LABELS = {"different": "different users", "same": "same user",
               "any": "all pairs"}
FIGURE_CSV_COLUMNS = ("measure", "user_relation", "bin_lo", "bin_hi",
                      "mean_separation", "pairs", "mean", "stderr", "baseline",
                      "baseline_stderr", "above_baseline", "error_bar",
                      "separation_methods")


def within_group_pairs(codes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """All unordered pairs (i, j), i != j, of items with equal codes; [P] each."""
  order = np.argsort(codes, kind="stable")
  c = codes[order]
  n = len(c)
  if n < 2:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  new = np.r_[True, c[1:] != c[:-1]]
  group_end = np.cumsum(np.bincount(np.cumsum(new) - 1))
  end = group_end[np.cumsum(new) - 1]
  after = end - np.arange(n) - 1
  pos_i = np.repeat(np.arange(n), after)
  first = np.repeat(np.cumsum(after) - after, after)
  pos_j = pos_i + 1 + (np.arange(pos_i.size) - first)
  return order[pos_i], order[pos_j]


def _dense_rank(values: np.ndarray) -> np.ndarray:
  return np.unique(values, return_inverse=True)[1].reshape(-1)


def clip_positions(tasks: co.Tasks) -> Tuple[np.ndarray, Dict[str, int]]:
  """[n] position in [0, 1] per task (separation = |pos_i - pos_j|), methods."""
  pos = np.zeros(tasks.num_tasks)
  methods = {"time": 0, "start_rank": 0, "clip_rank": 0}
  order = np.argsort(tasks.track, kind="stable")
  bounds = np.flatnonzero(np.r_[True, np.diff(tasks.track[order]) != 0,
                                True])
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    rows = order[lo:hi]
    start, dur = tasks.start[rows], tasks.track_duration[rows]
    num_clips = len(np.unique(tasks.clip[rows]))
    if np.all(np.isfinite(start)) and np.all(np.isfinite(dur) & (dur > 0)):
      pos[rows] = start / dur
      methods["time"] += 1
    elif np.all(np.isfinite(start)):
      pos[rows] = _dense_rank(start) / num_clips
      methods["start_rank"] += 1
    else:
      pos[rows] = _dense_rank(tasks.clip_names[tasks.clip[rows]]) / num_clips
      methods["clip_rank"] += 1
  return pos, methods


@dataclasses.dataclass(frozen=True)
class Figure1Row:
  """One bin of one variant; error_bar = sqrt(stderr^2 + baseline_stderr^2)."""
  measure: str
  user_relation: str
  bin_lo: float
  bin_hi: float
  mean_separation: float
  pairs: int
  mean: float
  stderr: float
  baseline: float
  baseline_stderr: float
  above_baseline: float
  error_bar: float
  separation_methods: str


@dataclasses.dataclass(frozen=True)
class Figure1:
  rows: List[Figure1Row]
  methods: Dict[str, int]


def _baselines(tasks: co.Tasks, measure: str) -> Dict[str, Tuple[float, float]]:
  """Different-track (mean, stderr) per user relation, sparse (Table 1 sums)."""
  x = co.normalized_rows(tasks.x) if measure == "cosine" else None
  m = co.pattern_moments(tasks, x=x)
  if tasks.has_users:
    groups = {"different": [(0, 0, 0)], "same": [(1, 0, 0)],
              "any": [(0, 0, 0), (1, 0, 0)]}
  else:
    groups = {"any": [(None, 0, 0)]}
  out = {}
  for rel, keys in groups.items():
    s, ss, c = (sum(m[k][i] for k in keys) for i in range(3))
    out[rel] = co._mean_stderr(s, ss, c)  # pylint: disable=protected-access
  return out


def figure1(tasks: co.Tasks, num_bins: int = 5,
            variants: Sequence[Tuple[str, str]] = DEFAULT_VARIANTS) -> Figure1:
  """Same-track, different-clip pairs binned by separation, minus baseline.

  Without users every user relation becomes 'any' (duplicates dropped).
  """
  if not tasks.has_users:
    variants = list(dict.fromkeys((m, "any") for m, _ in variants))
  pos, methods = clip_positions(tasks)
  method_text = ";".join(f"{k}:{v}" for k, v in methods.items())
  i, j = within_group_pairs(tasks.track)
  keep = tasks.clip[i] != tasks.clip[j]
  i, j = i[keep], j[keep]
  shared = np.asarray(tasks.x[i].multiply(tasks.x[j]).sum(axis=1),
                      float).ravel()
  k = np.diff(tasks.x.indptr).astype(float)
  denom = np.sqrt(k[i] * k[j])
  cosine = np.divide(shared, denom, out=np.zeros_like(shared), where=denom > 0)
  sep = np.abs(pos[i] - pos[j])
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  bins = np.clip(np.searchsorted(edges, sep - 1e-9, side="left") - 1, 0,
                 num_bins - 1)
  same_user = (tasks.user[i] == tasks.user[j]) if tasks.has_users else None
  baselines = {m: _baselines(tasks, m) for m in {v[0] for v in variants}}
  rows = []
  for measure, rel in variants:
    if measure not in MEASURES or rel not in USER_RELATIONS:
      raise ValueError(f"unknown Figure 1 variant ({measure!r}, {rel!r}); "
                       f"measures {MEASURES}, user relations {USER_RELATIONS}")
    values = shared if measure == "shared_tags" else cosine
    if rel == "any":
      sel = np.ones(len(i), bool)
    else:
      sel = same_user if rel == "same" else ~same_user
    base, base_se = baselines[measure][rel]
    for b in range(num_bins):
      in_bin = sel & (bins == b)
      v = values[in_bin]
      mean = float(v.mean()) if v.size else float("nan")
      se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
      rows.append(Figure1Row(
          measure, rel, float(edges[b]), float(edges[b + 1]),
          float(sep[in_bin].mean()) if v.size else float("nan"), int(v.size),
          mean, se, base, base_se, mean - base,
          float(np.hypot(se, base_se)), method_text))
  return Figure1(rows=rows, methods=methods)


def write_figure1(fig: Figure1, png_path: str, csv_path: str, name: str) -> None:
  """figure1.png (Agg) and figure1.csv (columns FIGURE_CSV_COLUMNS)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  write_csv_atomic(csv_path, FIGURE_CSV_COLUMNS,
                   [[getattr(r, c) for c in FIGURE_CSV_COLUMNS] for r in fig.rows])
  measures = [m for m in MEASURES if any(r.measure == m for r in fig.rows)]
  fig_, axes = plt.subplots(1, max(len(measures), 1),
                            figsize=(5.5 * max(len(measures), 1), 4.2),
                            squeeze=False)
  ylabels = {"shared_tags": "Shared tags above different-track baseline",
             "cosine": "Cosine similarity above different-track baseline"}
  for ax, measure in zip(axes[0], measures):
    rels = list(dict.fromkeys(r.user_relation for r in fig.rows
                              if r.measure == measure))
    for n_rel, rel in enumerate(rels):
      rs = [r for r in fig.rows if r.measure == measure and
            r.user_relation == rel and r.pairs > 0]
      xs = np.array([100 * r.mean_separation for r in rs])
      shift = (n_rel - (len(rels) - 1) / 2) * 1.0
      ax.errorbar(xs + shift, [r.above_baseline for r in rs],
                  yerr=[0 if np.isnan(r.error_bar) else r.error_bar for r in rs],
                  marker="o", capsize=3, label=_REL_LABELS[rel])
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("Separation between clips (% of track length)")
    ax.set_ylabel(ylabels[measure])
    ax.set_xlim(0, 100)
    ax.legend()
  method = ", ".join(f"{k} {v}" for k, v in fig.methods.items() if v)
  fig_.suptitle(f"Figure 1 ({name}): same-track pairs vs separation "
                f"[separation: {method or 'no tracks'} tracks]", fontsize=10)
  if not measures or not any(r.pairs for r in fig.rows):
    axes[0][0].text(0.5, 0.5, "no same-track pairs of different clips",
                    ha="center", transform=axes[0][0].transAxes)
  fig_.tight_layout()
  save_figure_atomic(fig_, png_path, dpi=120)
  plt.close(fig_)


def figure1_markdown(fig: Figure1, name: str) -> str:
  """Figure 1's numbers as a Markdown table (appended to table1.md)."""
  method = ", ".join(f"{k}: {v}" for k, v in fig.methods.items() if v)
  lines = ["", f"## Figure 1 ({name}): same-track pairs of different clips",
           "", f"Separation method (tracks): {method or 'none'}. "
           "Values are means above the different-track baseline "
           "(± sqrt(se^2 + baseline se^2)).", "",
           "| Measure | Users | Separation | Pairs | Mean | Baseline "
           "| Above baseline |", "|---|---|---|---|---|---|---|"]
  empty = 0
  for r in fig.rows:
    if r.pairs == 0:  # e.g. 80-100 % with five evenly spaced clips: nothing to show
      empty += 1
      continue
    error = "" if np.isnan(r.error_bar) else f" ± {r.error_bar:.4f}"
    lines.append(f"| {r.measure} | {r.user_relation} | "
                 f"({100 * r.bin_lo:.0f}, {100 * r.bin_hi:.0f}]% | {r.pairs:,} "
                 f"| {r.mean:.4f} | {r.baseline:.4f} | {r.above_baseline:+.4f}{error} |")
  if empty:
    lines += ["", f"{empty} (measure, users, bin) combinations had no pairs and are left "
              "out (they are in figure1.csv with pairs = 0)."]
  return "\n".join(lines) + "\n"
