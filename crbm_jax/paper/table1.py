"""Section 2.1 of the paper for one tag table: Table 1 and Figure 1 as report files.

``run_table1`` writes table1.csv / table1.md (with the paper's values beside ours and
Figure 1's numbers appended) and figure1.png / figure1.csv; the computation is in
``cooccurrence`` (Table 1, by sparse algebra) and ``figure1``.
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from crbm_jax.data.tagtable import TagTable
from crbm_jax.paper import cooccurrence as co
from crbm_jax.paper import figure1 as figure1_lib
from crbm_jax.paper import published
from crbm_jax.util.atomic import write_csv_atomic, write_text_atomic


def _flag(v: Optional[bool]) -> str:
  return "" if v is None else str(int(v))


def _sign(v: Optional[bool]) -> str:
  return "n/a" if v is None else ("+" if v else "-")


# Why a relation pattern (same_user, same_track, same_clip) has no pairs, in words.
_NO_PAIRS = {
    (1, 1, 0): "no user tagged two clips of one track",
    (1, 0, 0): "no user tagged clips of two different tracks",
    (0, 1, 1): "no clip was tagged by two different users",
    (0, 1, 0): "no track has two clips tagged by different users",
    (0, 0, 0): "no two tasks differ in both user and track",
    (None, 1, 0): "no track has two tagged clips",
    (None, 0, 0): "every tagged clip is in the same track",
}


def _key(r: co.Table1Row) -> tuple:
  return (None if r.same_user is None else int(r.same_user), int(r.same_track),
          int(r.same_clip))


def _number(x: float) -> str:
  """repr of a finite float; an empty cell when there is no value (NaN)."""
  return repr(float(x)) if math.isfinite(x) else ""


def _pm(mean: float, stderr: float) -> str:
  if not math.isfinite(mean):
    return "—"
  return f"{mean:.4f} ± {stderr:.4f}" if math.isfinite(stderr) else f"{mean:.4f} ± —"


def empty_reasons(rows: List[co.Table1Row], tasks: co.Tasks) -> List[str]:
  """One line per row without a mean (no pairs) or without a standard error (one
  pair), saying why."""
  lines = []
  for r in rows:
    label = f"{_sign(r.same_user)} {_sign(r.same_track)} {_sign(r.same_clip)}"
    if r.pairs == 0:
      why = _NO_PAIRS.get(_key(r), "no pair of tasks has this relation")
      if tasks.num_tasks < 2:
        why = f"the table has {tasks.num_tasks} task, so there are no pairs at all"
      lines.append(f"Pattern {label} has no pairs: {why}; its cells are empty.")
    elif not math.isfinite(r.stderr):
      lines.append(f"Pattern {label} has {r.pairs} pair: no standard error (it needs "
                   "two); its stderr cell is empty.")
  return lines


def write_table1(rows: List[co.Table1Row], csv_path: str, md_path: str,
                 name: str, paper: bool, tasks: co.Tasks) -> str:
  """Writes table1.csv (1/0 flags, empty same_user without users); returns table1.md's
  text (``run_table1`` writes it with Figure 1's numbers appended)."""
  write_csv_atomic(csv_path, ["same_user", "same_track", "same_clip", "mean", "stderr",
                              "pairs"],
                   [[_flag(r.same_user), _flag(r.same_track), _flag(r.same_clip),
                     _number(r.mean), _number(r.stderr), r.pairs] for r in rows])
  head = "| User | Track | Clip | Tags (ours) | Pairs (ours) |"
  rule = "|---|---|---|---|---|"
  if paper:
    head += " Tags (paper) | Pairs (paper) |"
    rule += "---|---|"
  lines = [f"# Table 1: shared tags between tasks ({name})", "",
           f"{tasks.num_tasks} tasks, {tasks.x.shape[1]} tags, "
           f"{len(tasks.track_names)} tracks, {len(tasks.clip_names)} clips"
           + ("" if not tasks.has_users else f", {len(tasks.user_names)} users")
           + (" (no track column: each clip is its own track)"
              if tasks.tracks_from_clips else "") + ".",
           "Pairs are unordered pairs of distinct tasks; the + + + row is each "
           "task with itself (mean = tags per task); ± is std(ddof=1)/sqrt(pairs).",
           "", head, rule]
  notes = ["", "Tag sets are binary (a table's count column is ignored)."]
  notes += empty_reasons(rows, tasks)
  if paper and tasks.has_users:
    notes.append(
        "The paper's pair counts (rows below + + +) sum to 3,948,575, which is "
        "neither n(n-1)/2 = 3,290,895 nor n(n-1) = 6,581,790 for its n = 2,566 "
        "HITs; its - + + count 4,838 exceeds the 2,775 unordered same-clip "
        "pairs possible with 3 users per clip, so at least some of its rows "
        "count ordered pairs. Means do not depend on this; standard errors of "
        "ordered counts would be about sqrt(2) smaller.")
  for r in rows:
    line = (f"| {_sign(r.same_user)} | {_sign(r.same_track)} | "
            f"{_sign(r.same_clip)} | {_pm(r.mean, r.stderr)} | "
            f"{r.pairs:,} |")
    if paper:
      key = (None if r.same_user is None else int(r.same_user),
             int(r.same_track), int(r.same_clip))
      p = published.TABLE1.get(key)
      line += (f" {p[0]:.4f} ± {p[1]:.4f} | {p[2]:,} |" if p else " | |")
    lines.append(line)
  return "\n".join(lines + notes) + "\n"


def run_table1(table: TagTable, workdir: str, name: str, paper: bool = True,
               num_bins: int = 5,
               variants: Sequence[Tuple[str, str]] = figure1_lib.DEFAULT_VARIANTS
               ) -> Dict[str, str]:
  """Writes table1.csv/.md and figure1.png/.csv under workdir; their paths."""
  os.makedirs(workdir, exist_ok=True)
  tasks = co.build_tasks(table)
  rows = co.table1(tasks)
  paths = {k: os.path.join(workdir, k.replace("_", "."))
           for k in ("table1_csv", "table1_md", "figure1_png", "figure1_csv")}
  text = write_table1(rows, paths["table1_csv"], paths["table1_md"], name, paper, tasks)
  fig = figure1_lib.figure1(tasks, num_bins=num_bins, variants=variants)
  figure1_lib.write_figure1(fig, paths["figure1_png"], paths["figure1_csv"], name)
  write_text_atomic(paths["table1_md"], text + figure1_lib.figure1_markdown(fig, name))
  return paths
