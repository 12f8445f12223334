"""Binary tag observations with auxiliary (user / track / clip) indices.

An observation is the set of tags that one user gave one clip (or, for tables
without users, the tags of one item). The conditional RBM (Eq. 2 of Mandel,
Eck & Bengio 2010) sees it as a binary vector v [V] together with the one-hot
auxiliary vector a, stored compactly as GLOBAL row indices into W_aux:
group g's entities occupy rows offsets[g] .. offsets[g] + len(entity_names[g]) - 1
and -1 marks an absent entity.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from crbm_jax.util.aux_groups import AUX_GROUPS
from crbm_jax.data.tagtable import TagTable

AUX_COLUMNS = AUX_GROUPS


class ObservationError(ValueError):
  """Bad input to the observation builder (names the table and the reason)."""


@dataclasses.dataclass(frozen=True)
class SparseCounts:
  """[N, V] int32 label counts held as CSR (rows: observations); indexing with rows
  gives them dense, so ``counts[rows]`` and iteration read like the dense array they
  replace at a fraction of its memory (a count per (observation, tag) pair present).

  Attributes: indptr [N + 1] int64, indices [nnz] int32 columns (sorted within a row),
  values [nnz] int32, shape (N, V).
  """
  indptr: np.ndarray
  indices: np.ndarray
  values: np.ndarray
  shape: tuple

  dtype = np.dtype(np.int32)
  ndim = 2

  @classmethod
  def from_coo(cls, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
               shape: tuple) -> "SparseCounts":
    """Sums repeated (row, col) entries."""
    n, v = shape
    key = rows.astype(np.int64) * max(v, 1) + cols
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if len(key) \
        else np.zeros(0, np.int64)
    uniq = key[first]
    summed = (np.add.reduceat(np.asarray(values, np.int64)[order], first) if len(key)
              else np.zeros(0, np.int64))
    r = (uniq // max(v, 1)).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))]).astype(np.int64)
    return cls(indptr, (uniq % max(v, 1)).astype(np.int32), summed.astype(np.int32),
               (int(n), int(v)))

  def __len__(self) -> int:
    return self.shape[0]

  def _rows(self, rows: np.ndarray) -> np.ndarray:
    starts, stops = self.indptr[rows], self.indptr[rows + 1]
    lengths = stops - starts
    out = np.zeros((len(rows), self.shape[1]), np.int32)
    if lengths.sum():
      at = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
      flat = np.arange(int(lengths.sum())) + at
      out[np.repeat(np.arange(len(rows)), lengths), self.indices[flat]] = self.values[flat]
    return out

  def __getitem__(self, index):
    if isinstance(index, (int, np.integer)):
      return self._rows(np.arange(self.shape[0])[[index]])[0]
    return self._rows(np.arange(self.shape[0])[index])

  def subset(self, index) -> "SparseCounts":
    """The rows ``index`` (array or mask), still sparse."""
    rows = np.arange(self.shape[0])[index]
    starts, stops = self.indptr[rows], self.indptr[rows + 1]
    lengths = stops - starts
    at = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    flat = np.arange(int(lengths.sum())) + at
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SparseCounts(indptr, self.indices[flat], self.values[flat],
                        (len(rows), self.shape[1]))

  def __iter__(self):
    for i in range(self.shape[0]):
      yield self[i]

  def toarray(self) -> np.ndarray:
    return self._rows(np.arange(self.shape[0]))

  def __array__(self, dtype=None, copy=None):
    out = self.toarray()
    return out if dtype is None else out.astype(dtype)


def _distinct_holders(table: TagTable) -> tuple[np.ndarray, np.ndarray]:
  """Returns (tag names [T], number of distinct users (or clips) per tag [T])."""
  holder = table.user if table.has("user") else table.clip
  tags, tag_code = np.unique(table.tag, return_inverse=True)
  _, holder_code = np.unique(holder, return_inverse=True)
  pairs = np.unique(np.stack([tag_code.ravel(), holder_code.ravel()], 1), axis=0)
  return tags, np.bincount(pairs[:, 0], minlength=len(tags))


def select_vocabulary(table: TagTable, min_users: int = 1,
                      top_n: Optional[int] = None) -> np.ndarray:
  """Tags used by >= min_users distinct users (distinct clips when no users).

  Returns: [V] str, ordered by that count (descending), then by name;
  truncated to the first top_n when given.
  """
  if table.num_rows == 0:
    return np.array([], dtype=str)
  tags, n = _distinct_holders(table)
  keep = n >= min_users
  tags, n = tags[keep], n[keep]
  order = np.lexsort((tags, -n))
  if top_n is not None:
    order = order[:top_n]
  return tags[order]


@dataclasses.dataclass(frozen=True)
class Observations:
  """Binary tag vectors and their auxiliary entities.

  Attributes:
    X: [N, V] uint8 binary tag vectors; for a large table (``build_observations``'s
      ``sparse_above``) a ``SparseCounts`` of ones (CSR; rows index to dense int32).
    counts: [N, V] summed `count` column (raw label counts), a ``SparseCounts``: rows
      index to dense int32 (``np.asarray`` gives the whole array).
    aux: [N, G] int32 global row indices into W_aux, -1 = absent.
    groups: names of the G auxiliary groups, e.g. ("user", "track", "clip").
    entity_names: one [E_g] str array per group.
    offsets: [G] int64 first W_aux row of each group.
    num_aux: total number of W_aux rows (sum of E_g).
    vocab: [V] canonical tags; display: [V] surface forms for plots.
    clip: [N] str; user, track: [N] str or None.
    start, track_duration: [N] float or None (NaN = unknown).
    num_dropped: observations dropped because no tag was left in the vocabulary.
  """
  X: np.ndarray
  counts: SparseCounts
  aux: np.ndarray
  groups: tuple
  entity_names: tuple
  offsets: np.ndarray
  num_aux: int
  vocab: np.ndarray
  display: np.ndarray
  clip: np.ndarray
  user: Optional[np.ndarray] = None
  track: Optional[np.ndarray] = None
  start: Optional[np.ndarray] = None
  track_duration: Optional[np.ndarray] = None
  num_dropped: int = 0

  @property
  def sparse(self) -> bool:
    """X is held as CSR (``SparseCounts``), not as a dense array."""
    return isinstance(self.X, SparseCounts)

  def csr(self, index=slice(None)) -> SparseCounts:
    """The rows ``index`` (array, mask or slice) as CSR, whichever way X is held: the
    tags of each observation (``indices``, sorted) with their counts."""
    return self.counts.subset(index)

  @property
  def num_visible(self) -> int:
    return int(self.X.shape[1])

  @property
  def num_observations(self) -> int:
    return int(self.X.shape[0])

  def group_rows(self, group: str) -> np.ndarray:
    """[E_g] W_aux row indices of the entities of one group."""
    g = self._group_index(group)
    return self.offsets[g] + np.arange(len(self.entity_names[g]))

  def _group_index(self, group: str) -> int:
    if group not in self.groups:
      raise ObservationError(
          f"auxiliary group {group!r} is not in these observations; "
          f"groups present: {list(self.groups)}")
    return self.groups.index(group)

  def select_groups(self, groups: Sequence[str]) -> "Observations":
    """Keeps only the given aux groups (in that order), W_aux rows re-packed.

    An empty sequence gives aux of shape [N, 0] and num_aux == 0.
    """
    if isinstance(groups, str):
      groups = (groups,)
    idx = [self._group_index(g) for g in groups]
    sizes = np.array([len(self.entity_names[i]) for i in idx], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    aux = np.full((self.aux.shape[0], len(idx)), -1, np.int32)
    for j, i in enumerate(idx):
      col = self.aux[:, i]
      aux[:, j] = np.where(col >= 0, col - self.offsets[i] + offsets[j], -1)
    return dataclasses.replace(
        self, aux=aux, groups=tuple(groups),
        entity_names=tuple(self.entity_names[i] for i in idx),
        offsets=offsets[:len(idx)], num_aux=int(sizes.sum()))

  def subset(self, index) -> "Observations":
    """Rows selected by an index array or boolean mask; entity indexing kept."""
    kw = {"counts": self.counts.subset(index)}
    if self.sparse:
      kw["X"] = self.X.subset(index)
    for name in ("X", "aux", "clip", "user", "track", "start",
                 "track_duration"):
      value = getattr(self, name)
      if name not in kw:
        kw[name] = None if value is None else value[index]
    return dataclasses.replace(self, **kw)


def _first_per_group(values: np.ndarray, obs_code: np.ndarray, n: int) -> np.ndarray:
  """Value of the first table row of each of the n observations: [n]."""
  order = np.argsort(obs_code, kind="stable")
  starts = np.searchsorted(obs_code[order], np.arange(n))
  return values[order[starts]]


def _display_array(vocab: np.ndarray, display) -> np.ndarray:
  if display is None:
    return vocab.copy()
  if isinstance(display, Mapping):
    return np.array([display.get(t, t) for t in vocab.tolist()], dtype=str)
  display = np.asarray(display, dtype=str)
  if display.shape != vocab.shape:
    raise ObservationError(
        f"display has shape {display.shape}, expected one surface form per vocabulary "
        f"tag {vocab.shape}")
  return display


def build_observations(
    table: TagTable,
    aux_groups: Optional[Sequence[str]] = ("user", "track", "clip"),
    vocab: Optional[np.ndarray] = None,
    display: Union[None, Mapping[str, str], np.ndarray] = None,
    max_elements: Optional[int] = None,
    sparse_above: Optional[int] = None,
) -> Observations:
  """One binary observation per (user, clip) task, or per clip without users.

  Args:
    table: canonical tag table (run canonicalisation first).
    aux_groups: auxiliary groups, any of user/track/clip/artist/album; None
      means every one of those the table has.
    vocab: [V] tags to keep (default: every tag, by select_vocabulary order).
      Tags outside it are dropped; observations left with no tag are dropped
      and counted in `num_dropped`.
    display: surface forms, a {canonical: surface} mapping or a [V] array.
    max_elements: if given, ObservationError (one line, before X is allocated) when
      a dense X would have more than this many elements (N x V).
    sparse_above: if given, X is kept as CSR (a ``SparseCounts`` of ones sharing the
      counts' indices; memory proportional to the table's rows) when N x V is more than
      this; ``max_elements`` then does not apply.
  Returns:
    Observations with X [N, V], aux [N, G].
  """
  source = table.source or "<tag table>"
  if aux_groups is None:
    aux_groups = tuple(g for g in AUX_COLUMNS if table.has(g))
  aux_groups = tuple(aux_groups)
  for g in aux_groups:
    if g not in AUX_COLUMNS:
      raise ObservationError(
          f"{source}: unknown auxiliary group {g!r}; choose from {list(AUX_COLUMNS)}")
    if not table.has(g):
      raise ObservationError(
          f"{source}: auxiliary group {g!r} requested but the table has no {g!r} "
          f"column; columns available: {list(table.columns())}")
  if len(set(aux_groups)) != len(aux_groups):
    raise ObservationError(f"{source}: repeated auxiliary group in {aux_groups}")
  vocab = select_vocabulary(table) if vocab is None else np.asarray(vocab, dtype=str)
  if len(np.unique(vocab)) != len(vocab):
    raise ObservationError(f"{source}: the vocabulary has repeated tags")
  display_arr = _display_array(vocab, display)

  has_user = table.has("user")
  clips, clip_code = np.unique(table.clip, return_inverse=True)
  if has_user:
    users, user_code = np.unique(table.user, return_inverse=True)
    key = clip_code.astype(np.int64) * len(users) + user_code
  else:
    key = clip_code.astype(np.int64)
  all_keys, obs_code = np.unique(key, return_inverse=True)
  obs_code = obs_code.ravel()
  n_all = len(all_keys)

  # Tag code in the vocabulary (-1 = outside).
  sorter = np.argsort(vocab)
  pos = np.searchsorted(vocab, table.tag, sorter=sorter)
  pos = np.clip(pos, 0, max(len(vocab) - 1, 0))
  tag_code = sorter[pos] if len(vocab) else np.full(table.num_rows, -1)
  in_vocab = (vocab[tag_code] == table.tag) if len(vocab) else np.zeros(table.num_rows, bool)
  has_tag = np.zeros(n_all, bool)
  has_tag[obs_code[in_vocab]] = True
  new_index = np.cumsum(has_tag) - 1
  n = int(has_tag.sum())
  sparse = sparse_above is not None and n * len(vocab) > sparse_above
  if not sparse and max_elements is not None and n * len(vocab) > max_elements:
    raise ObservationError(
        f"{source}: the observations would be {n:,} x {len(vocab):,} tags = "
        f"{n * len(vocab):,} elements (a dense uint8 copy of "
        f"{n * len(vocab) / 2 ** 30:.1f} GB, float32 for training "
        f"{4 * n * len(vocab) / 2 ** 30:.1f} GB), more than {max_elements:,}")

  r = new_index[obs_code[in_vocab]]
  c = tag_code[in_vocab]
  counts = SparseCounts.from_coo(r, c, table.count[in_vocab],
                                 (n, len(vocab)))
  if sparse:  # the same (row, tag) pairs as the counts, each a 1 (no copy of the ones)
    X = SparseCounts(counts.indptr, counts.indices,
                     np.broadcast_to(np.int32(1), counts.indices.shape), counts.shape)
  else:
    X = np.zeros((n, len(vocab)), np.uint8)
    X[r, c] = 1

  # Per-observation columns from the first table row of each kept observation.
  keep_rows = has_tag[obs_code]
  kept_obs = new_index[obs_code[keep_rows]]
  def per_obs(values):
    if values is None:
      return None
    return _first_per_group(values[keep_rows], kept_obs, n)
  obs_clip = per_obs(table.clip)
  obs_user = per_obs(table.user)
  obs_track = per_obs(table.track)
  obs_start = per_obs(table.start)
  obs_track_duration = per_obs(table.track_duration)

  names, aux_cols, offsets, offset = [], [], [], 0
  for g in aux_groups:
    values = per_obs(getattr(table, g)).astype(str)
    present = values != ""
    ents, code = np.unique(values[present], return_inverse=True)
    col = np.full(n, -1, np.int32)
    col[present] = code.ravel() + offset
    names.append(ents)
    aux_cols.append(col)
    offsets.append(offset)
    offset += len(ents)
  aux = np.stack(aux_cols, 1) if aux_cols else np.zeros((n, 0), np.int32)
  return Observations(
      X=X, counts=counts, aux=aux.astype(np.int32), groups=aux_groups,
      entity_names=tuple(names), offsets=np.array(offsets, np.int64),
      num_aux=int(offset), vocab=vocab, display=display_arr, clip=obs_clip,
      user=obs_user, track=obs_track, start=obs_start,
      track_duration=obs_track_duration, num_dropped=int(n_all - n))
