r"""Benchmark of Table 1: sparse group algebra vs naive pairwise computation.

  python experiments/bench_cooccurrence.py [--repeats=5] [--large_tracks=7000]

1. A random study of the paper's size (185 tracks x 5 clips x 3 users, 209
   users, 100 tags, ~6 tags per task, 2,566 tasks kept of 2,775; 3.3 M pairs):
   the sparse Table 1 (median of --repeats runs), a dense n x n Gram matrix with
   masks (O(n^2) memory), and the pure Python double loop over pairs
   (`pair_loop_means`). The loop is timed on a subset first; it runs on the
   whole study only if the extrapolated time is <= --max_loop_s, otherwise the
   extrapolation (time per pair x pairs) is printed and marked as such.
2. A larger study (--large_tracks x 5 clips x 3 users) for the sparse path only.
"""
import time

from absl import app
from absl import flags
import numpy as np

from benchlib import median_time
from crbm_jax.data.synthetic import synthetic_tag_table
from crbm_jax.paper import cooccurrence as co

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs of the sparse path.")
_MAX_LOOP_S = flags.DEFINE_float("max_loop_s", 60.0, "Run the full Python loop "
                                 "only if extrapolated to take at most this.")
_LARGE_TRACKS = flags.DEFINE_integer("large_tracks", 7000, "Tracks in the large "
                                     "study (x5 clips x3 users tasks).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")


def paper_sized_tasks(seed: int, num_tracks: int = 185, num_users: int = 209,
                      num_tags: int = 100, keep: int = 2566) -> co.Tasks:
  """Tasks of a random paper-sized study (keep of the tracks*15 tasks)."""
  table = synthetic_tag_table(num_tracks=num_tracks, num_users=num_users,
                                 num_tags=num_tags, seed=seed)
  tasks = co.build_tasks(table)
  if keep is None or keep >= tasks.num_tasks:
    return tasks
  rng = np.random.default_rng(seed + 1)
  return subset_tasks(tasks, np.sort(rng.choice(tasks.num_tasks, keep,
                                                replace=False)))


def subset_tasks(tasks: co.Tasks, index: np.ndarray) -> co.Tasks:
  return co.Tasks(
      x=tasks.x[index], user=tasks.user[index], track=tasks.track[index],
      clip=tasks.clip[index], start=tasks.start[index],
      track_duration=tasks.track_duration[index], tag_names=tasks.tag_names,
      user_names=tasks.user_names, track_names=tasks.track_names,
      clip_names=tasks.clip_names, tracks_from_clips=tasks.tracks_from_clips)


def table1_dense(tasks: co.Tasks):
  """Table 1 means from a dense n x n Gram matrix and relation masks."""
  xd = tasks.x.toarray().astype(np.float64)
  s = xd @ xd.T
  iu = np.triu_indices(tasks.num_tasks, 1)
  v = s[iu]
  u = tasks.user[iu[0]] == tasks.user[iu[1]]
  k = tasks.track[iu[0]] == tasks.track[iu[1]]
  c = tasks.clip[iu[0]] == tasks.clip[iu[1]]
  out = {(1, 1, 1): float(np.diag(s).mean())}
  for key in co.PATTERNS_WITH_USERS[1:]:
    m = (u == key[0]) & (k == key[1]) & (c == key[2])
    out[key] = float(v[m].mean()) if m.any() else float("nan")
  return out


def pair_loop_means(tasks: co.Tasks) -> dict:
  """The naive baseline: Table 1's means by a Python loop over every pair of tasks."""
  xd = tasks.x.toarray()
  sums, counts = {}, {}
  for i in range(tasks.num_tasks):
    for j in range(i + 1, tasks.num_tasks):
      key = (int(tasks.user[i] == tasks.user[j]), int(tasks.track[i] == tasks.track[j]),
             int(tasks.clip[i] == tasks.clip[j]))
      sums[key] = sums.get(key, 0.0) + float(xd[i] @ xd[j])
      counts[key] = counts.get(key, 0) + 1
  out = {k: sums[k] / counts[k] for k in sums}
  out[(1, 1, 1)] = float(np.mean([xd[i] @ xd[i] for i in range(tasks.num_tasks)]))
  return out


def main(argv):
  del argv
  tasks = paper_sized_tasks(_SEED.value)
  n = tasks.num_tasks
  pairs = n * (n - 1) // 2
  print(f"paper-sized study: {n} tasks, {tasks.x.shape[1]} tags, "
        f"{len(np.unique(tasks.user))} users, {pairs:,} pairs, "
        f"{tasks.x.nnz / n:.2f} tags per task")
  t_sparse, rows = median_time(lambda: co.table1(tasks), _REPEATS.value)
  print(f"sparse Table 1: {1e3 * t_sparse:.1f} ms (median of {_REPEATS.value})")
  t_dense, dense = median_time(lambda: table1_dense(tasks), 3)
  worst = max(abs(r.mean - dense[(int(r.same_user), int(r.same_track),
                                  int(r.same_clip))]) for r in rows)
  print(f"dense n x n Gram + masks: {1e3 * t_dense:.1f} ms (median of 3; "
        f"max |mean difference| vs sparse {worst:.2e})")
  sub = subset_tasks(tasks, np.arange(min(400, n)))
  sub_pairs = sub.num_tasks * (sub.num_tasks - 1) // 2
  t0 = time.perf_counter()
  pair_loop_means(sub)
  per_pair = (time.perf_counter() - t0) / sub_pairs
  estimate = per_pair * pairs
  if estimate <= _MAX_LOOP_S.value:
    t0 = time.perf_counter()
    brute = pair_loop_means(tasks)
    t_loop = time.perf_counter() - t0
    worst = max(abs(r.mean - brute[key]) / max(abs(brute[key]), 1e-300)
                for r in rows for key in [(int(r.same_user), int(r.same_track),
                                           int(r.same_clip))] if key in brute)
    print(f"pure Python pair loop: {t_loop:.1f} s measured on all pairs "
          f"(max relative mean difference vs sparse {worst:.1e})")
    how = "measured"
  else:
    t_loop = estimate
    how = "EXTRAPOLATED"
    print(f"pure Python pair loop: {t_loop:.1f} s EXTRAPOLATED from "
          f"{sub_pairs:,} pairs on {sub.num_tasks} tasks "
          f"({1e6 * per_pair:.2f} us per pair)")
  print(f"speed-up of sparse over the Python loop ({how}): "
        f"{t_loop / t_sparse:,.0f}x; over dense Gram: {t_dense / t_sparse:.1f}x")

  big = co.build_tasks(synthetic_tag_table(
      num_tracks=_LARGE_TRACKS.value, num_users=10 * 209, num_tags=1000,
      seed=_SEED.value + 2))
  m = big.num_tasks
  t_big, big_rows = median_time(lambda: co.table1(big), 3)
  print(f"large study: {m:,} tasks, {big.x.shape[1]} tags, "
        f"{m * (m - 1) // 2:,} pairs: sparse Table 1 {t_big:.2f} s (median of 3)")
  for r in big_rows:
    print(f"  user {int(r.same_user)} track {int(r.same_track)} "
          f"clip {int(r.same_clip)}: {r.mean:.4f} ± {r.stderr:.2e} "
          f"({r.pairs:,} pairs)")


if __name__ == "__main__":
  app.run(main)
