"""Tag co-occurrence between tasks (Section 2.1 of the paper: Table 1, Figure 1).

A *task* is one user's tag set for one clip (a HIT in the paper): one row of a
sparse binary task x tag matrix ``X``. Where the table has no ``user`` column
(aggregated clip tags such as MajorMiner) a task is a clip's tag set and the
user relation drops out. A table without a ``track`` column makes each clip its
own track (``Tasks.tracks_from_clips`` is then True).

Table 1 is computed without ever listing pairs. For a partition of the tasks
into groups with indicator matrix ``G`` [tasks, groups], the sum over ordered
pairs (i, j) in the same group (i = j included) of ``x_i . x_j`` is
``||G^T X||_F^2``, and the sum of ``(x_i . x_j)^2`` is ``||G^T Z||_F^2`` where
``z_i = vec(x_i x_i^T)`` (because ``(x_i . x_j)^2 = z_i . z_j``). Inclusion-
exclusion over the partitions {all, user, track, clip, user x track, task}
(a clip lies in one track; a task is one (user, clip)) gives every pattern's
count, sum and sum of squares. Cost: two sparse products per partition.
Z is kept on tag pairs a <= b that occur; when sum_i |x_i|^2 exceeds
`chunk_pairs` it is built per chunk of whole groups (a group bigger than a
chunk uses its T x T Gram X_g^T X_g), so memory is O(nnz(X) +
min(sum_i |x_i|^2, chunk_pairs) + T^2) and pairs are never materialised.

Conventions (see docs/design.md and docs/deviations.md): pairs are unordered
pairs of distinct tasks; the "+ + +" row is each task with itself (n "pairs",
mean = tags per task) as in the paper; standard error = std(ddof=1) / sqrt(pairs).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

PATTERNS_WITH_USERS = ((1, 1, 1), (1, 1, 0), (1, 0, 0), (0, 1, 1), (0, 1, 0),
                       (0, 0, 0))
PATTERNS_WITHOUT_USERS = ((None, 1, 1), (None, 1, 0), (None, 0, 0))


@dataclasses.dataclass(frozen=True)
class Tasks:
  """Tasks (user x clip tag sets) of a tag table.

  Attributes:
    x: [num_tasks, num_tags] CSR int64 binary matrix, x[i, t] = task i has tag t.
    user: [num_tasks] int64 user codes, or None when the table has no users.
    track, clip: [num_tasks] int64 codes (a clip lies in exactly one track).
    start: [num_tasks] float64 clip start in seconds (NaN = unknown).
    track_duration: [num_tasks] float64 track length in seconds (NaN = unknown).
    tag_names, user_names, track_names, clip_names: the names behind the codes.
    tracks_from_clips: True when the table had no track column.
  """
  x: sp.csr_matrix
  user: Optional[np.ndarray]
  track: np.ndarray
  clip: np.ndarray
  start: np.ndarray
  track_duration: np.ndarray
  tag_names: np.ndarray
  user_names: Optional[np.ndarray]
  track_names: np.ndarray
  clip_names: np.ndarray
  tracks_from_clips: bool

  @property
  def num_tasks(self) -> int:
    return int(self.x.shape[0])

  @property
  def has_users(self) -> bool:
    return self.user is not None


def _first_per_group(codes: np.ndarray, values: np.ndarray, num: int,
                     what: str, names: np.ndarray, source: str) -> np.ndarray:
  """[num] first finite value per code; DataError if a code has two values."""
  out = np.full(num, np.nan)
  finite = np.isfinite(values)
  c, v = codes[finite], values[finite]
  order = np.argsort(c, kind="stable")
  c, v = c[order], v[order]
  first = np.r_[True, c[1:] != c[:-1]] if c.size else np.zeros(0, bool)
  out[c[first]] = v[first]
  bad = np.abs(v - out[c]) > 1e-6 * np.maximum(1.0, np.abs(v))
  if bad.any():
    k = int(np.flatnonzero(bad)[0])
    raise DataError(f"{what} of {names[c[k]]!r} is given as both "
                    f"{out[c[k]]:g} and {v[k]:g}", source or None)
  return out


def build_tasks(table: TagTable) -> Tasks:
  """Binary task x tag matrix and per-task codes from a (canonical) tag table.

  Raises:
    DataError (a ValueError) for an empty table, naming the clip when a clip
    lies in two tracks, or when a clip's start / a track's duration is given twice differently.
  """
  source = table.source
  if table.num_rows == 0:
    raise DataError("the tag table has no rows: nothing to compare",
                    source or None)
  clip_names, clip = np.unique(table.clip, return_inverse=True)
  tag_names, tag = np.unique(table.tag, return_inverse=True)
  if table.has("track"):
    track_names, row_track = np.unique(table.track, return_inverse=True)
    pairs = np.unique(np.stack([clip, row_track], 1), axis=0)
    dup = np.flatnonzero(pairs[1:, 0] == pairs[:-1, 0])
    if dup.size:
      c = pairs[dup[0], 0]
      tracks = track_names[pairs[pairs[:, 0] == c, 1]]
      raise DataError(f"clip {clip_names[c]!r} belongs to more than one track: "
                      f"{', '.join(map(repr, tracks))}", source or None)
    clip_track = np.empty(len(clip_names), np.int64)
    clip_track[pairs[:, 0]] = pairs[:, 1]
    tracks_from_clips = False
  else:
    track_names, clip_track, tracks_from_clips = clip_names, np.arange(
        len(clip_names)), True
  if table.has("user"):
    user_names, user = np.unique(table.user, return_inverse=True)
    keys, task = np.unique(np.stack([user, clip], 1), axis=0,
                           return_inverse=True)
    task = task.reshape(-1)
    task_user, task_clip = keys[:, 0].astype(np.int64), keys[:, 1].astype(np.int64)
  else:
    user_names, task_user = None, None
    task_clip, task = np.unique(clip, return_inverse=True)
  num_tasks = len(task_clip)
  x = sp.csr_matrix((np.ones(len(task), np.int64), (task, tag)),
                    shape=(num_tasks, len(tag_names)))
  x.sum_duplicates()
  x.data[:] = 1
  nan = np.full(table.num_rows, np.nan)
  clip_start = _first_per_group(
      clip, nan if table.start is None else np.asarray(table.start, float),
      len(clip_names), "start", clip_names, source)
  track_of_row = clip_track[clip]
  dur = nan if table.track_duration is None else np.asarray(
      table.track_duration, float)
  track_dur = np.full(len(track_names), np.nan)
  ok = np.isfinite(dur)
  np.fmax.at(track_dur, track_of_row[ok], dur[ok])
  task_track = clip_track[task_clip].astype(np.int64)
  return Tasks(x=x, user=task_user, track=task_track, clip=task_clip,
               start=clip_start[task_clip], track_duration=track_dur[task_track],
               tag_names=tag_names, user_names=user_names,
               track_names=track_names, clip_names=clip_names,
               tracks_from_clips=tracks_from_clips)


def _outer_rows(x: sp.csr_matrix) -> Tuple[sp.csr_matrix, np.ndarray]:
  """Z with z_i = vec(x_i x_i^T) on the tag pairs (a <= b) that occur.

  Returns:
    z: [n, P] CSR over the P distinct pairs; w: [P] weights, 1 for a = b and
    2 for a < b, so that sum_cols w * (G^T Z)^2 = ||G^T Z_full||_F^2.
  """
  k = np.diff(x.indptr)
  nnz_row = np.repeat(np.arange(x.shape[0]), k)
  reps = k[nnz_row]
  p = np.repeat(np.arange(x.nnz), reps)
  start = np.repeat(np.cumsum(reps) - reps, reps)
  q = x.indptr[nnz_row[p]] + (np.arange(p.size) - start)
  a, b = x.indices[p], x.indices[q]
  keep = a <= b
  p, q, a, b = p[keep], q[keep], a[keep], b[keep]
  key = a.astype(np.int64) * np.int64(x.shape[1]) + b
  ukey, col = np.unique(key, return_inverse=True)
  z = sp.csr_matrix((x.data[p] * x.data[q], (nnz_row[p], col.reshape(-1))),
                    shape=(x.shape[0], len(ukey)))
  num_tags = np.int64(x.shape[1])
  w = np.where(ukey // num_tags == ukey % num_tags, 1, 2).astype(x.dtype)
  return z, w


def _sq(a, w: Optional[np.ndarray] = None):
  """Sum of (weighted by column) squared entries; exact Python int for ints."""
  if not sp.issparse(a):
    a = sp.csr_matrix(np.asarray(a))
  d = a.data * a.data
  if w is not None:
    d = d * w[a.indices]
  if d.dtype.kind not in "iu":
    return float(d.sum())
  if d.size and int(d.max()) * d.size >= 2**62:  # int64 sum could overflow
    return sum(int(v) for v in d)
  return int(d.sum())


def _indicator(codes: np.ndarray, num_groups: int, dtype) -> sp.csr_matrix:
  """[groups, n] G^T for codes in [0, num_groups)."""
  n = len(codes)
  return sp.csr_matrix((np.ones(n, dtype), (codes, np.arange(n))),
                       shape=(num_groups, n))


def _partition_moments(x: sp.csr_matrix, codes: np.ndarray, chunk_pairs: int,
                       outer=None) -> Tuple[object, object, int]:
  """Sums over ordered same-group pairs (i = j included) of s_ij, s_ij^2, 1.

  Args:
    x: [n, T] CSR; s_ij = x_i . x_j.
    codes: [n] int group codes >= 0.
    chunk_pairs: bound on the tag-pair entries held at once when outer is None.
    outer: optional precomputed `_outer_rows(x)`.
  Returns:
    (||G^T X||^2, ||G^T Z||^2, sum_g size_g^2).
  """
  sizes = np.bincount(codes)
  count = int(np.dot(sizes, sizes))
  first = _sq(_indicator(codes, len(sizes), x.dtype) @ x)
  if outer is not None:
    z, w = outer
    return first, _sq(_indicator(codes, len(sizes), x.dtype) @ z, w), count
  order = np.argsort(codes, kind="stable")
  k2 = np.diff(x.indptr).astype(np.float64) ** 2
  group_cost = np.bincount(codes, weights=k2, minlength=len(sizes))
  second = 0
  group_end = np.cumsum(sizes)
  lo, gi = 0, 0
  while gi < len(sizes):
    if group_cost[gi] > chunk_pairs:  # one big group: ||X_g^T X_g||_F^2 (T x T)
      xg = x[order[lo:group_end[gi]]]
      second += _sq(xg.T @ xg)
      lo, gi = group_end[gi], gi + 1
      continue
    hi_g, cost = gi, 0
    while hi_g < len(sizes) and cost + group_cost[hi_g] <= chunk_pairs:
      cost += group_cost[hi_g]
      hi_g += 1
    rows = order[lo:group_end[hi_g - 1]]
    z, w = _outer_rows(x[rows])
    second += _sq(_indicator(codes[rows] - gi, hi_g - gi, x.dtype) @ z, w)
    lo, gi = group_end[hi_g - 1], hi_g
  return first, second, count


def _combo_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  key = a.astype(np.int64) * np.int64(b.max() + 1) + b
  return np.unique(key, return_inverse=True)[1].reshape(-1)


def pattern_moments(tasks: Tasks, x: Optional[sp.csr_matrix] = None,
                    chunk_pairs: int = 20_000_000) -> Dict[tuple, Tuple]:
  """Per relation pattern: (sum, sum of squares, pairs) over unordered pairs.

  Args:
    tasks: from `build_tasks`.
    x: [n, T] optional replacement for tasks.x (e.g. row-normalised for cosine).
    chunk_pairs: memory bound (tag-pair entries per chunk).
  Returns:
    {(same_user, same_track, same_clip): (sum, sumsq, pairs)}; same_user is
    None without users. The (+, +, +) entry is each task with itself.
  """
  x = tasks.x if x is None else x
  n = x.shape[0]
  parts = {"track": tasks.track, "clip": tasks.clip}
  if tasks.has_users:
    parts["user"] = tasks.user
    parts["user_track"] = _combo_codes(tasks.user, tasks.track)
  k2 = np.diff(x.indptr).astype(np.float64) ** 2
  outer = _outer_rows(x) if k2.sum() <= chunk_pairs else None
  a = {k: _partition_moments(x, v, chunk_pairs, outer) for k, v in parts.items()}
  col = np.asarray(x.sum(axis=0)).ravel()
  a["all"] = (_sq(col), _sq(x.T @ x), n * n)  # ||1^T X||^2, ||X^T X||_F^2
  norm2 = np.asarray(x.multiply(x).sum(axis=1)).ravel()  # ||x_i||^2
  a["task"] = (_sq(x), _sq(norm2), n)  # sum ||x_i||^2, sum ||x_i||^4

  def combo(plus=(), minus=()):
    return tuple((sum(a[p][m] for p in plus) - sum(a[p][m] for p in minus))
                 for m in range(3))

  out = {}
  diag = a["task"]
  if tasks.has_users:
    rel = {(1, 1, 0): combo(["user_track"], ["task"]),
           (1, 0, 0): combo(["user"], ["user_track"]),
           (0, 1, 1): combo(["clip"], ["task"]),
           (0, 1, 0): combo(["track", "task"], ["clip", "user_track"]),
           (0, 0, 0): combo(["all", "user_track"], ["user", "track"])}
    out[(1, 1, 1)] = diag
  else:
    rel = {(None, 1, 0): combo(["track"], ["clip"]),
           (None, 0, 0): combo(["all"], ["track"])}
    out[(None, 1, 1)] = diag
  for key, (s, ss, c) in rel.items():
    out[key] = (s / 2, ss / 2, c // 2) if isinstance(s, float) else (
        s // 2, ss // 2, c // 2)
  return out


@dataclasses.dataclass(frozen=True)
class Table1Row:
  """One row of Table 1; same_user is None when the table has no users."""
  same_user: Optional[bool]
  same_track: bool
  same_clip: bool
  mean: float
  stderr: float
  pairs: int


def _mean_stderr(s, ss, c) -> Tuple[float, float]:
  """Mean and std(ddof=1)/sqrt(c) from exact sums (Python ints stay exact)."""
  if c == 0:
    return float("nan"), float("nan")
  mean = s / c
  if c < 2:
    return float(mean), float("nan")
  if isinstance(s, (int, np.integer)) and isinstance(ss, (int, np.integer)):
    s, ss, c = int(s), int(ss), int(c)
    var = (c * ss - s * s) / (c * (c - 1))
  else:
    var = max(float(ss) - float(s) * float(s) / c, 0.0) / (c - 1)
  return float(mean), float(np.sqrt(max(var, 0.0) / c))


def rows_from_moments(moments: Dict[tuple, Tuple]) -> List[Table1Row]:
  rows = []
  for key, (s, ss, c) in moments.items():
    mean, se = _mean_stderr(s, ss, c)
    u = None if key[0] is None else bool(key[0])
    rows.append(Table1Row(u, bool(key[1]), bool(key[2]), mean, se, int(c)))
  return rows


def table1(tasks: Tasks, chunk_pairs: int = 20_000_000) -> List[Table1Row]:
  """Table 1: shared tags per relation pattern, by sparse linear algebra."""
  return rows_from_moments(pattern_moments(tasks, chunk_pairs=chunk_pairs))


def normalized_rows(x: sp.csr_matrix) -> sp.csr_matrix:
  """[n, T] float rows scaled to unit length (x_i . x_j becomes the cosine)."""
  norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1), float).ravel())
  scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
  return sp.csr_matrix(sp.diags(scale) @ x.astype(float))
