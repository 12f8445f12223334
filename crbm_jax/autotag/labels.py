"""Labels of a tag table's clips for the autotaggers: raw user counts per (clip, tag),
fold groups, and CRBM affinities read from a crbm-smooth output (no JAX)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from crbm_jax.autotag.errors import AutotagError
from crbm_jax.data import tagtable
from crbm_jax.data.errors import DataError


def extra_column(path: str, name: str) -> Optional[dict]:
  """{clip: value} of a column load_tag_table ignores (e.g. 'path'); None if absent.
  Raises DataError when one clip is given two different values."""
  text = tagtable.read_text(path)
  rows = tagtable.split_rows(text, tagtable.is_tsv(path, text.split("\n", 1)[0]), path)
  names = [f.strip().lower() for f in rows[0][1]]
  names = [tagtable.COLUMN_ALIASES.get(n, n) for n in names]
  if name not in names:
    return None
  ci, vi = names.index("clip"), names.index(name)
  out: dict = {}
  for line, fields in rows[1:]:
    clip, value = fields[ci].strip(), fields[vi].strip()
    if value and out.get(clip, value) != value:
      raise DataError(f"clip {clip!r} has two different {name}s ({out[clip]!r} and "
                      f"{value!r})", path, line)
    if value:
      out[clip] = value
  return out


def first_values(table, column: str, clips: np.ndarray) -> np.ndarray:
  """[C] value of a column for each clip (its first row); None when absent."""
  if not table.has(column):
    return None
  names, first = np.unique(table.clip, return_index=True)
  pos = np.searchsorted(names, clips)
  return np.asarray(getattr(table, column))[first][pos]


@dataclasses.dataclass
class Labels:
  """Tags of the tag table's clips. raw: [I, T] number of users (sum of counts) per
  (clip, tag); groups: [I] fold group (album:, artist:, track: or clip:)."""
  items: np.ndarray
  tags: list
  display: list
  raw: np.ndarray
  groups: np.ndarray
  group_kind: str


def load_labels(tags: str, canonicalize: bool = True) -> Labels:
  """Raw labels of a tag table (tags canonicalised as crbm-fit does by default)."""
  table = tagtable.load_tag_table(tags)
  if table.num_rows == 0:
    raise AutotagError(f"{tags}: the tag table has no rows")
  if canonicalize:
    from crbm_jax.data import canonical  # pylint: disable=import-outside-toplevel
    table, surface = canonical.canonicalize_table(table)
  else:
    surface = {t: t for t in np.unique(table.tag).tolist()}
  items, ii = np.unique(table.clip, return_inverse=True)
  vocab, ti = np.unique(table.tag, return_inverse=True)
  raw = np.zeros((items.shape[0], vocab.shape[0]), np.int64)
  np.add.at(raw, (ii.ravel(), ti.ravel()), table.count.astype(np.int64))
  groups = np.full(items.shape[0], "", dtype=object)
  kind = "clip"
  for column in ("album", "artist", "track"):  # first non-blank of album, artist, track
    vals = first_values(table, column, items)
    if vals is None:
      continue
    kind = column if kind == "clip" else kind
    vals = vals.astype(str)
    fill = (groups == "") & (vals != "")
    groups[fill] = [f"{column}:{v}" for v in vals[fill].tolist()]
  groups = np.where(groups == "", np.char.add("clip:", items), groups.astype(str))
  return Labels(items=items, tags=vocab.tolist(), display=[surface.get(t, t) for t in
                                                            vocab.tolist()],
                raw=raw, groups=groups.astype(str), group_kind=kind)


def load_smoothed(path: str, labels: Labels) -> tuple[np.ndarray, list]:
  """Affinities [I, T'] of a crbm-smooth output (clip, [track], tag, affinity, display)
  for labels.items, and its tags T' (NaN where a clip is missing)."""
  text = tagtable.read_text(path)
  rows = tagtable.split_rows(text, tagtable.is_tsv(path, text.split("\n", 1)[0]), path)
  if not rows:
    raise AutotagError(f"{path}: empty file; expected crbm-smooth output")
  names = [f.strip().lower() for f in rows[0][1]]
  for col in ("clip", "tag", "affinity"):
    if col not in names:
      raise AutotagError(f"{path}: no {col!r} column; expected crbm-smooth output "
                         "(clip, [track], tag, affinity, display)")
  ci, ti, ai = names.index("clip"), names.index("tag"), names.index("affinity")
  tags_seen: dict = {}
  entries = []
  for line, fields in rows[1:]:
    if len(fields) != len(names):
      raise DataError(f"expected {len(names)} fields, found {len(fields)}", path, line)
    try:
      a = float(fields[ai])
    except ValueError:
      raise DataError(f"affinity {fields[ai]!r} is not a number", path, line) from None
    if not 0.0 <= a <= 1.0:
      raise DataError(f"affinity {fields[ai]!r} is not in [0, 1]", path, line)
    tag = fields[ti].strip()
    tags_seen.setdefault(tag, len(tags_seen))
    entries.append((fields[ci].strip(), tag, a))
  row = {c: i for i, c in enumerate(labels.items.tolist())}
  out = np.full((labels.items.shape[0], len(tags_seen)), np.nan)
  for clip, tag, a in entries:
    if clip in row:
      out[row[clip], tags_seen[tag]] = a
  if np.all(np.isnan(out)):
    raise AutotagError(f"{path}: none of its clips is in the tag table; was it made "
                       "from this tag table?")
  return out, list(tags_seen)

