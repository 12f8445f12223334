"""Tests for crbm_jax.paper.cooccurrence (Table 1), paper.figure1 (Figure 1) and paper.table1."""
import csv
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from brute_force import table1_bruteforce
from crbm_jax.data.synthetic import synthetic_tag_table
from crbm_jax.paper import cooccurrence as co
from crbm_jax.paper import figure1 as cp
from crbm_jax.paper import table1 as table1_lib
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable


def _table(rows, start=None, track_duration=None, with_track=True,
           with_user=True):
  """rows: (user, track, clip, tag) tuples -> TagTable."""
  r = list(zip(*rows))
  n = len(rows)
  return TagTable(
      clip=np.asarray(r[2]), tag=np.asarray(r[3]), count=np.ones(n, np.int64),
      user=np.asarray(r[0]) if with_user else None,
      track=np.asarray(r[1]) if with_track else None,
      start=None if start is None else np.asarray(start, float),
      track_duration=(None if track_duration is None
                      else np.asarray(track_duration, float)),
      source="test")


def _random_table(seed, with_user=True, with_track=True):
  rng = np.random.default_rng(seed)
  num_tracks = int(rng.integers(1, 5))
  num_users = int(rng.integers(1, 5))
  num_tags = int(rng.integers(1, 7))
  rows = []
  for k in range(num_tracks):
    for c in range(int(rng.integers(1, 4))):
      users = [u for u in range(num_users) if rng.random() < 0.7] or [0]
      if not with_user:
        users = users[:1]
      for u in users:
        size = int(rng.integers(1, num_tags + 1))
        for t in rng.choice(num_tags, size=size, replace=False):
          rows.append((f"u{u}", f"k{k}", f"k{k}c{c}", f"t{t}"))
  return _table(rows, with_track=with_track, with_user=with_user)


def _assert_rows_close(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert (g.same_user, g.same_track, g.same_clip, g.pairs) == (
        w.same_user, w.same_track, w.same_clip, w.pairs)
    for a, b in ((g.mean, w.mean), (g.stderr, w.stderr)):
      if np.isnan(b):
        assert np.isnan(a)
      else:
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1),
       chunk_pairs=st.sampled_from([1, 7, 10**9]),
       with_user=st.booleans())
def test_sparse_table1_equals_bruteforce(seed, chunk_pairs, with_user):
  tasks = co.build_tasks(_random_table(seed, with_user=with_user))
  _assert_rows_close(co.table1(tasks, chunk_pairs=chunk_pairs),
                     table1_bruteforce(tasks))


def test_table1_known_answer_two_users_two_tracks():
  tags = {("A", "T1", "c1"): ["rock", "guitar"], ("A", "T1", "c2"): ["rock", "drums"],
          ("A", "T2", "c3"): ["jazz"], ("B", "T1", "c1"): ["rock", "guitar", "loud"],
          ("B", "T1", "c2"): ["guitar"]}
  rows = [(u, k, c, t) for (u, k, c), ts in tags.items() for t in ts]
  got = {(r.same_user, r.same_track, r.same_clip): r
         for r in co.table1(co.build_tasks(_table(rows)))}
  # Worked by hand: per-pattern pair values.
  want = {(True, True, True): [2, 2, 1, 3, 1],   # each task with itself
          (True, True, False): [1, 1],           # A1-A2 {rock}, B1-B2 {guitar}
          (True, False, False): [0, 0],          # A1-A3, A2-A3
          (False, True, True): [2, 0],           # A1-B1 {rock, guitar}, A2-B2
          (False, True, False): [1, 1],          # A1-B2 {guitar}, A2-B1 {rock}
          (False, False, False): [0, 0]}         # A3-B1, A3-B2
  assert list(got) == list(want)
  for key, values in want.items():
    v = np.asarray(values, float)
    assert got[key].pairs == len(v)
    assert got[key].mean == pytest.approx(v.mean())
    assert got[key].stderr == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)))


def test_table_without_users_gives_only_track_and_clip_rows():
  rows = [("-", "T1", "a", "x"), ("-", "T1", "a", "y"), ("-", "T1", "b", "x"),
          ("-", "T2", "c", "y"), ("-", "T2", "c", "z")]
  tasks = co.build_tasks(_table(rows, with_user=False))
  got = co.table1(tasks)
  assert [(r.same_user, r.same_track, r.same_clip) for r in got] == [
      (None, True, True), (None, True, False), (None, False, False)]
  assert [r.pairs for r in got] == [3, 1, 2]
  # a={x,y}, b={x}, c={y,z}: a-b share {x}; a-c {y}, b-c nothing.
  assert [r.mean for r in got] == pytest.approx([5 / 3, 1.0, 0.5])
  _assert_rows_close(got, table1_bruteforce(tasks))


def test_table_without_track_column_makes_each_clip_its_own_track():
  rows = [("u1", "-", "a", "x"), ("u1", "-", "b", "x"), ("u2", "-", "a", "x")]
  tasks = co.build_tasks(_table(rows, with_track=False))
  assert tasks.tracks_from_clips
  got = {(r.same_user, r.same_track, r.same_clip): r.pairs
         for r in co.table1(tasks)}
  assert got[(True, True, False)] == 0 and got[(False, True, False)] == 0
  assert got[(True, False, False)] == 1 and got[(False, True, True)] == 1


def test_clip_in_two_tracks_raises_naming_the_clip():
  rows = [("u1", "T1", "clipX", "rock"), ("u2", "T2", "clipX", "jazz")]
  with pytest.raises(DataError, match="clipX.*more than one track"):
    co.build_tasks(_table(rows))


def test_duplicate_rows_count_once_in_binary_matrix():
  rows = [("u1", "T1", "a", "rock"), ("u1", "T1", "a", "rock")]
  tasks = co.build_tasks(_table(rows))
  assert tasks.x.toarray().tolist() == [[1]]


def _track_rows():
  """One track, 4 clips, 2 users each; returns rows and per-row clip index."""
  rows, clip_idx = [], []
  for c in range(4):
    for u in ("u1", "u2"):
      for t in (["a", "b"] if c < 2 else ["b", "c"]) + ([f"x{c}"] if u == "u1" else []):
        rows.append((u, "T", f"clip{c}", t))
        clip_idx.append(c)
  rows.append(("u3", "S", "other", "a"))
  clip_idx.append(-1)
  return rows, np.asarray(clip_idx)


def test_separation_uses_time_then_start_rank_then_clip_rank():
  rows, c = _track_rows()
  start = np.where(c >= 0, 10.0 + 30.0 * c, 0.0)
  dur = np.full(len(rows), 200.0)
  pos, methods = cp.clip_positions(co.build_tasks(
      _table(rows, start=start, track_duration=dur)))
  assert methods == {"time": 2, "start_rank": 0, "clip_rank": 0}
  tasks = co.build_tasks(_table(rows, start=start))  # no track durations
  pos, methods = cp.clip_positions(tasks)
  assert methods == {"time": 0, "start_rank": 2, "clip_rank": 0}
  in_t = tasks.track == np.flatnonzero(tasks.track_names == "T")[0]
  assert sorted(set(pos[in_t])) == pytest.approx([0, 0.25, 0.5, 0.75])
  missing = start.copy()
  missing[c == 0] = np.nan  # every row of clip0
  fig = cp.figure1(co.build_tasks(_table(rows, start=missing)))
  assert fig.methods == {"time": 0, "start_rank": 1, "clip_rank": 1}
  assert all(r.separation_methods == "time:0;start_rank:1;clip_rank:1"
             for r in fig.rows)


def test_figure1_bins_match_direct_loop():
  table = synthetic_tag_table(num_tracks=6, clips_per_track=5, num_users=7,
                                 num_tags=12, seed=3)
  tasks = co.build_tasks(table)
  fig = cp.figure1(tasks, num_bins=5)
  xd = tasks.x.toarray().astype(float)
  n = tasks.num_tasks
  pair_values = {}
  base = {"shared_tags": [], "cosine": []}
  for i, j in itertools.combinations(range(n), 2):
    shared = xd[i] @ xd[j]
    cos = shared / np.sqrt(xd[i].sum() * xd[j].sum())
    diff_user = tasks.user[i] != tasks.user[j]
    if tasks.track[i] != tasks.track[j]:
      if diff_user:
        base["shared_tags"].append(shared)
        base["cosine"].append(cos)
      continue
    if tasks.clip[i] == tasks.clip[j] or not diff_user:
      continue
    sep = abs(tasks.start[i] - tasks.start[j]) / tasks.track_duration[i]
    b = min(max(int(np.ceil(sep * 5 - 1e-6)) - 1, 0), 4)
    pair_values.setdefault(("shared_tags", b), []).append(shared)
    pair_values.setdefault(("cosine", b), []).append(cos)
  checked = 0
  for r in fig.rows:
    if r.user_relation != "different":
      continue
    b = int(round(r.bin_lo * 5))
    v = np.asarray(pair_values.get((r.measure, b), []))
    assert r.pairs == v.size
    if v.size:
      assert r.above_baseline == pytest.approx(v.mean() - np.mean(base[r.measure]))
      assert r.stderr == pytest.approx(v.std(ddof=1) / np.sqrt(v.size))
      checked += 1
  assert checked >= 6


def test_run_table1_writes_all_files(tmp_path):
  table = synthetic_tag_table(num_tracks=8, num_users=10, num_tags=20, seed=1)
  paths = table1_lib.run_table1(table, str(tmp_path), "tiny")
  for p in paths.values():
    assert os.path.getsize(p) > 0
  with open(paths["figure1_png"], "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with open(paths["table1_csv"]) as f:
    got = list(csv.reader(f))
  assert got[0] == ["same_user", "same_track", "same_clip", "mean", "stderr",
                    "pairs"]
  assert [row[:3] for row in got[1:]] == [["1", "1", "1"], ["1", "1", "0"],
                                          ["1", "0", "0"], ["0", "1", "1"],
                                          ["0", "1", "0"], ["0", "0", "0"]]
  md = open(paths["table1_md"]).read()
  assert "6.0370 ± 0.0290" in md and "Figure 1 (tiny)" in md


def test_launcher_smoke_config_runs(tmp_path):
  # A subprocess: importing the launcher would define absl flags in pytest.
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get(
      "PYTHONPATH", ""))
  proc = subprocess.run(
      [sys.executable, os.path.join(root, "experiments", "table1_cooccurrence.py"),
       "--config=" + os.path.join(root, "crbm_jax", "configs",
                                  "table1.py") + ":smoke",
       f"--workdir={tmp_path}"], capture_output=True, text=True, env=env,
      timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| + | + | + |" in proc.stdout
  assert os.path.getsize(tmp_path / "synthetic" / "figure1.png") > 0


def test_sum_of_squares_stays_exact_beyond_int64():
  big = 3_000_000_000  # big**2 = 9e18 > 2**62: summed as Python ints
  got = co._sq(np.array([[big, big]], np.int64))  # pylint: disable=protected-access
  assert got == 2 * big * big


def test_unknown_figure_variant_is_rejected():
  tasks = co.build_tasks(synthetic_tag_table(num_tracks=2, num_users=4,
                                                num_tags=5, seed=0))
  with pytest.raises(ValueError, match="unknown Figure 1 variant"):
    cp.figure1(tasks, variants=[("jaccard", "different")])
