"""Mechanical Turk batch results (Section 2 of the paper) and clip metadata.

Accepted batch-results file (Amazon's "Download results" CSV; UTF-8, comma
separated, quoted fields may hold commas and line breaks; ``.gz`` allowed):

  * ``WorkerId``, ``HITId``, ``AssignmentId``: required, non-blank;
    AssignmentId must be unique.
  * the clip id: ``Input.clip``, or ``Input.clip_id`` when ``Input.clip`` is
    absent (exactly one of them is used; ``Input.clip`` wins if both exist).
  * the tags: ``Answer.tags`` (one field, split on commas, semicolons and line
    breaks) and/or numbered fields ``Answer.tag1`` .. ``Answer.tagN`` or
    ``Answer.tag_1`` .. ``Answer.tag_N`` (taken in numeric order, after the
    tags of ``Answer.tags``). At least one tag column is required. Blank tags
    are skipped (a HIT may have none; the spam rules judge that).
  * every other column (AssignmentStatus, Input.url, WorkTimeInSeconds, ...) is
    ignored; column names are matched exactly (case-sensitive, as Amazon
    writes them).

Clip-metadata file (CSV or TSV with a header, sniffed like tag tables):
``clip`` (alias ``item``) and ``track`` required; ``start``, ``duration``,
``track_duration`` optional seconds (blank = NaN). One row per clip.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Mapping, NamedTuple, Optional, Union

import numpy as np

from crbm_jax.data import tagtable as tt
from crbm_jax.data.canonical import canonicalize_table, surface_form
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

REQUIRED_COLUMNS = ("WorkerId", "HITId", "AssignmentId")
CLIP_COLUMNS = ("Input.clip", "Input.clip_id")
TAGS_COLUMN = "Answer.tags"
_NUMBERED_TAG = re.compile(r"^Answer\.tag_?(\d+)$")
_TAG_SEPARATORS = re.compile(r"[,;\r\n]+")


@dataclasses.dataclass(frozen=True)
class Hits:
  """One completed HIT (assignment) per entry.

  Attributes:
    worker, hit, assignment, clip: [H] str.
    tags: H lists of raw tags (stripped, non-blank, in the order given).
    line: [H] int, the line where each assignment starts in ``source``
      (None when the HITs did not come from a file).
    source: the file the HITs came from.
  """
  worker: np.ndarray
  hit: np.ndarray
  assignment: np.ndarray
  clip: np.ndarray
  tags: list
  line: Optional[np.ndarray] = None
  source: str = ""

  @property
  def num_hits(self) -> int:
    return int(self.worker.shape[0])

  def subset(self, mask_or_index) -> "Hits":
    index = np.arange(self.num_hits)[mask_or_index]
    return Hits(worker=self.worker[index], hit=self.hit[index],
                assignment=self.assignment[index], clip=self.clip[index],
                tags=[self.tags[i] for i in index.tolist()],
                line=None if self.line is None else self.line[index],
                source=self.source)


class ClipInfo(NamedTuple):
  """Where a clip lies: its track and its position in seconds (NaN = unknown)."""
  track: str
  start: float
  duration: float
  track_duration: float


def split_tags(text: str) -> list:
  """Splits one free-text answer on commas, semicolons and line breaks."""
  return [t.strip() for t in _TAG_SEPARATORS.split(text) if t.strip()]


def _strings(values: list) -> np.ndarray:
  return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def load_mturk_batch(path: Union[str, os.PathLike]) -> Hits:
  """Reads an MTurk batch-results CSV (columns: see the module docstring).

  Raises:
    DataError naming file, line and reason for a missing column, a wrong
    number of fields, a blank id, a duplicate AssignmentId or invalid UTF-8.
  """
  path = os.fspath(path)
  rows = tt.split_rows(tt.read_text(path), tsv=False, path=path)
  if not rows:
    raise DataError("empty file: a header row is required", path, 1)
  _, header = rows[0]
  header = [h.strip() for h in header]
  col = {}
  for i, h in enumerate(header):
    col.setdefault(h, i)
  missing = [c for c in REQUIRED_COLUMNS if c not in col]
  if missing:
    raise DataError(f"missing required column(s) {', '.join(missing)}", path, 1)
  clip_col = next((c for c in CLIP_COLUMNS if c in col), None)
  if clip_col is None:
    raise DataError("missing the clip column: need Input.clip or Input.clip_id",
                    path, 1)
  numbered = sorted((int(m.group(1)), i) for i, h in enumerate(header)
                    for m in [_NUMBERED_TAG.match(h)] if m)
  tag_cols = ([col[TAGS_COLUMN]] if TAGS_COLUMN in col else []) + [i for _, i in numbered]
  if not tag_cols:
    raise DataError("missing the tag column(s): need Answer.tags or "
                    "Answer.tag1..Answer.tagN (or Answer.tag_1..)", path, 1)
  out = {"worker": [], "hit": [], "assignment": [], "clip": [], "tags": [], "line": []}
  seen = {}
  ids = (("WorkerId", "worker"), ("HITId", "hit"), ("AssignmentId", "assignment"),
         (clip_col, "clip"))
  for line, fields in rows[1:]:
    if len(fields) != len(header):
      raise DataError(f"expected {len(header)} fields (as in the header), found "
                      f"{len(fields)}", path, line)
    for column, name in ids:
      value = fields[col[column]].strip()
      if not value:
        raise DataError(f"blank {column}", path, line)
      out[name].append(value)
    assignment = out["assignment"][-1]
    if assignment in seen:
      raise DataError(f"duplicate AssignmentId {assignment!r}, first on line "
                      f"{seen[assignment]}", path, line)
    seen[assignment] = line
    tags = []
    for i in tag_cols:
      tags.extend(split_tags(fields[i]))
    out["tags"].append(tags)
    out["line"].append(line)
  return Hits(worker=_strings(out["worker"]), hit=_strings(out["hit"]),
              assignment=_strings(out["assignment"]), clip=_strings(out["clip"]),
              tags=out["tags"], line=np.array(out["line"], dtype=np.int64),
              source=path)


def load_clip_metadata(path: Union[str, os.PathLike]) -> dict:
  """Reads clip metadata: {clip: ClipInfo(track, start, duration, track_duration)}.

  Raises:
    DataError naming file and line for a missing column, a blank clip, a clip
    with no track, a duplicate clip or a bad number.
  """
  path = os.fspath(path)
  text = tt.read_text(path)
  rows = tt.split_rows(text, tt.is_tsv(path, text.split("\n", 1)[0]), path)
  if not rows:
    raise DataError("empty file: a header row is required", path, 1)
  names = [tt.COLUMN_ALIASES.get(h.strip().lower(), h.strip().lower())
           for h in rows[0][1]]
  for required in ("clip", "track"):
    if required not in names:
      raise DataError(f"missing required column {required!r}", path, 1)
  col = {n: names.index(n) for n in ("clip", "track") + tt.FLOAT_COLUMNS if n in names}
  result = {}
  lines = {}
  for line, fields in rows[1:]:
    if len(fields) != len(names):
      raise DataError(f"expected {len(names)} fields (as in the header), found "
                      f"{len(fields)}", path, line)
    clip = fields[col["clip"]].strip()
    track = fields[col["track"]].strip()
    if not clip:
      raise DataError("blank clip", path, line)
    if not track:
      raise DataError(f"clip {clip!r} has no track", path, line)
    if clip in result:
      raise DataError(f"clip {clip!r} listed twice, first on line {lines[clip]}",
                      path, line)
    values = []
    for name in tt.FLOAT_COLUMNS:
      v = fields[col[name]].strip() if name in col else ""
      try:
        values.append(float(v) if v else math.nan)
      except ValueError:
        raise DataError(f"{name} {v!r} is not a number", path, line) from None
    result[clip] = ClipInfo(track, *values)
    lines[clip] = line
  return result


def clip_metadata_from_table(table: TagTable) -> dict:
  """{clip: ClipInfo} from the clip-level columns of a tag table (needs track)."""
  if table.track is None:
    raise DataError("the clip table has no track column", table.source)
  nan = np.full(table.num_rows, np.nan)
  cols = [table.track] + [getattr(table, n) if table.has(n) else nan
                          for n in tt.FLOAT_COLUMNS]
  return {c: ClipInfo(str(t), float(s), float(d), float(td))
          for c, t, s, d, td in zip(table.clip.tolist(), *[c.tolist() for c in cols])}


def hits_to_tag_table(hits: Hits, accepted_mask: Optional[np.ndarray] = None,
                      clips: Optional[Union[Mapping, TagTable]] = None,
                      canonicalize: bool = True):
  """(clip, user=worker, tag) rows from the accepted HITs.

  Args:
    hits: from ``load_mturk_batch``.
    accepted_mask: [H] bool (e.g. ``filter_hits(...).accepted``); None = all.
    clips: {clip: ClipInfo} from ``load_clip_metadata`` (or a TagTable with a
      track column); joins track/start/duration/track_duration. None = no
      track information.
    canonicalize: replace tags by canonical forms (merging duplicates).
  Returns:
    (TagTable, {tag: surface form}); without canonicalisation tags are the
    surface forms (lower case, stripped) and the map is the identity.
  Raises:
    DataError naming the batch file and line of a HIT whose clip has no track.
  """
  if accepted_mask is None:
    accepted_mask = np.ones(hits.num_hits, dtype=bool)
  accepted_mask = np.asarray(accepted_mask, dtype=bool)
  if accepted_mask.shape != (hits.num_hits,):
    raise ValueError(f"accepted_mask has shape {accepted_mask.shape}, "
                     f"expected ({hits.num_hits},)")
  if isinstance(clips, TagTable):
    clips = clip_metadata_from_table(clips)
  cols = {n: [] for n in ("clip", "user", "tag", "track", "start", "duration",
                          "track_duration")}
  seen = set()
  for h in np.flatnonzero(accepted_mask).tolist():
    clip, worker = str(hits.clip[h]), str(hits.worker[h])
    info = None
    if clips is not None:
      info = clips.get(clip)
      if info is None:
        raise DataError(f"clip {clip!r} (assignment {hits.assignment[h]}) has no "
                        "track: it is missing from the clip metadata",
                        hits.source or None,
                        None if hits.line is None else int(hits.line[h]))
    for raw in hits.tags[h]:
      tag = raw.strip() if canonicalize else surface_form(raw)
      if (clip, worker, tag) in seen:
        continue
      seen.add((clip, worker, tag))
      cols["clip"].append(clip)
      cols["user"].append(worker)
      cols["tag"].append(tag)
      if info is not None:
        cols["track"].append(info.track)
        cols["start"].append(info.start)
        cols["duration"].append(info.duration)
        cols["track_duration"].append(info.track_duration)
  n = len(cols["clip"])
  kw = {n_: _strings(cols[n_]) for n_ in ("clip", "user", "tag")}
  if clips is not None:
    kw["track"] = _strings(cols["track"])
    for name in tt.FLOAT_COLUMNS:
      kw[name] = np.array(cols[name], dtype=np.float64)
  table = TagTable(count=np.ones(n, dtype=np.int64), source=hits.source, **kw)
  if canonicalize:
    return canonicalize_table(table)
  return table, {t: t for t in sorted(set(cols["tag"]))}
