"""MagnaTagATune (Law et al., ISMIR 2009): clip tags with positions within tracks.

The distribution has two tab-separated files (fields may be double-quoted):

``annotations_final.csv``
  header ``clip_id``, the 188 tag names, ``mp3_path``; one row per clip with a 0/1
  value per tag (25,863 clips).
``clip_info_final.csv``
  header ``clip_id, track_number, title, artist, album, url, segmentStart, segmentEnd,
  original_url, mp3_path``: where each (about 29 s) clip lies in its track.

They are joined on ``clip_id``. Every 1 becomes one (clip, tag) row; the track is
``"<album>/<track_number>"`` (the pair identifies a Magnatune track; should two artists'
albums share a name, the artist is appended in brackets), ``start`` is
``segmentStart`` and ``duration`` is ``segmentEnd - segmentStart`` (seconds).
Track lengths are not in the data, so the table has no ``track_duration`` and
Figure 1 places clips by the rank of their start times within the track.
There are no users: a tag on a clip is the game's aggregate, so ``count`` is 1.

Options: ``top_tags=N`` keeps the N tags on the most clips (the usual top-50
subset; ties by column order), ``tags=[...]`` (or a file of tag names) keeps the
given tags, matched ignoring case, spaces and underscores (``noVocals`` matches
``no vocals``), and ``split=[files]`` keeps the clips listed in the split files
(one ``clip_id`` or ``mp3_path`` per line, or ``.npy`` string arrays such as
``index<TAB>mp3_path``). Clips with no tag left produce no rows and are counted
as skipped.
"""
from __future__ import annotations

import csv
import io
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from crbm_jax.data import tagtable as tt
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

PathLike = Union[str, os.PathLike]
ANNOTATIONS = "annotations_final.csv"
CLIP_INFO = "clip_info_final.csv"
CLIP_INFO_REQUIRED = ("clip_id", "track_number", "artist", "album", "segmentStart",
                      "segmentEnd")
CLIP_INFO_COLUMNS = ("clip_id", "track_number", "title", "artist", "album", "url",
                     "segmentStart", "segmentEnd", "original_url", "mp3_path")


def _rows(path: str, latin1_fallback: bool = False):
  """(header fields, iterator of (line, fields)) of a tab-separated, maybe-quoted file."""
  try:
    text = tt.read_text(path)
  except DataError as e:
    if not (latin1_fallback and "UTF-8" in e.reason):
      raise
    with open(path, "rb") as f:
      text = f.read().decode("latin-1")
  reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")

  def numbered():
    line = 1
    try:
      for fields in reader:
        if fields and (len(fields) > 1 or fields[0].strip()):
          yield line, fields
        line = reader.line_num + 1
    except csv.Error as e:
      raise DataError(f"malformed quoted field: {e}", path, reader.line_num) from e

  it = numbered()
  first = next(it, None)
  if first is None:
    raise DataError("empty file: a header row is required", path, 1)
  if first[0] != 1:
    raise DataError("the first line must be the header row", path, 1)
  return [f.strip() for f in first[1]], it


def _key(tag: str) -> str:
  return "".join(tag.lower().replace("_", " ").split())


def read_tag_names(path: PathLike) -> list:
  """Tag names from a text file (one per line, blank lines ignored)."""
  text = tt.read_text(os.fspath(path))
  return [line.strip() for line in text.splitlines() if line.strip()]


def read_split_list(path: PathLike) -> list:
  """Clip ids or mp3 paths listed in a split file.

  Text: one entry per line; ``.npy``: a string array. An entry ``a<TAB>b`` (the
  ``index<TAB>mp3_path`` form of common split files) stands for its last field.
  Pickled lists (``.cP``, ``.pkl``) are refused: unpickling runs code.
  """
  path = os.fspath(path)
  lower = path.lower()
  if lower.endswith((".cp", ".pkl", ".pickle", ".p")):
    raise DataError("pickled split lists are not read (unpickling can run code); write "
                    "it as text, one clip_id or mp3_path per line", path)
  if lower.endswith(".npy"):
    try:
      values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
      raise DataError(f"cannot read as a .npy string array: {e}", path) from e
    if values.dtype.kind not in "US":
      raise DataError(f"expected an array of strings, found dtype {values.dtype}", path)
    entries = [v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()]
  else:
    entries = tt.read_text(path).splitlines()
  out = []
  for entry in entries:
    entry = entry.strip().strip('"')
    if entry:
      out.append(entry.split("\t")[-1].strip().strip('"'))
  return out


def _read_annotations(path: str):
  """(clip ids [C], mp3 paths [C] or None, tag names [T], values uint8 [C, T] in {0,1},
  line numbers [C])."""
  header, rows = _rows(path)
  if "clip_id" not in header:
    raise DataError(f"missing column 'clip_id' in the header (expected clip_id, the tag "
                    f"names, mp3_path; found {header[:3]}...)", path, 1)
  seen = set()
  for name in header:
    if not name:
      raise DataError("blank column name in the header", path, 1)
    if name in seen:
      raise DataError(f"column {name!r} appears twice in the header", path, 1)
    seen.add(name)
  clip_col = header.index("clip_id")
  mp3_col = header.index("mp3_path") if "mp3_path" in header else None
  tag_cols = [i for i in range(len(header)) if i not in (clip_col, mp3_col)]
  if not tag_cols:
    raise DataError("no tag columns in the header", path, 1)
  tag_names = [header[i] for i in tag_cols]
  width, ntags = len(header), len(tag_cols)
  contiguous = tag_cols == list(range(tag_cols[0], tag_cols[0] + ntags))
  lo, hi = tag_cols[0], tag_cols[0] + ntags
  clips, mp3s, lines, chunks = [], [], [], []
  for line, fields in rows:
    if len(fields) != width:
      raise DataError(f"expected {width} tab-separated fields (as in the header), found "
                      f"{len(fields)}", path, line)
    values = fields[lo:hi] if contiguous else [fields[i] for i in tag_cols]
    joined = "".join(values)
    if len(joined) != ntags or "" in values:
      for name, v in zip(tag_names, values):
        if v not in ("0", "1"):
          raise DataError(f"tag column {name!r} has value {v!r}; expected 0 or 1",
                          path, line)
    clips.append(fields[clip_col].strip())
    if mp3_col is not None:
      mp3s.append(fields[mp3_col].strip())
    lines.append(line)
    chunks.append(joined)
  values = np.frombuffer("".join(chunks).encode("utf-8", "replace"), np.uint8)
  if values.size != len(clips) * ntags:  # a multi-byte character among the values
    values = np.zeros(0, np.uint8)
    for k, joined in enumerate(chunks):
      if len(joined.encode("utf-8", "replace")) != ntags:
        bad = next(j for j, ch in enumerate(joined) if ch not in "01")
        raise DataError(f"tag column {tag_names[bad]!r} has value {joined[bad]!r}; "
                        "expected 0 or 1", path, lines[k])
  values = values.reshape(len(clips), ntags) - ord("0")
  bad = values > 1
  if bad.any():
    k, j = np.argwhere(bad)[0]
    raise DataError(f"tag column {tag_names[j]!r} has value "
                    f"{chr(values[k, j] + ord('0'))!r}; expected 0 or 1", path, lines[k])
  first_line: Dict[str, int] = {}
  for clip, line in zip(clips, lines):
    _check_clip_id(clip, first_line, path, line)
  return (clips, mp3s if mp3_col is not None else None, tag_names, values, lines)


def _check_clip_id(clip: str, first_line: Dict[str, int], path: str, line: int) -> None:
  """A clip_id must be non-blank and unique in its file (records its first line)."""
  if not clip:
    raise DataError("blank clip_id", path, line)
  if clip in first_line:
    raise DataError(f"clip_id {clip!r} appears twice (first on line "
                    f"{first_line[clip]})", path, line)
  first_line[clip] = line


def _read_clip_info(path: str) -> Dict[str, tuple]:
  """{clip_id: (track_number, artist, album, start, end, mp3_path)}."""
  header, rows = _rows(path, latin1_fallback=True)
  missing = [c for c in CLIP_INFO_REQUIRED if c not in header]
  if missing:
    raise DataError(f"missing column(s) {', '.join(missing)} in the header (expected "
                    f"{', '.join(CLIP_INFO_COLUMNS)})", path, 1)
  col = {name: header.index(name) for name in CLIP_INFO_COLUMNS if name in header}
  width = len(header)
  info: Dict[str, tuple] = {}
  first_line: Dict[str, int] = {}
  for line, fields in rows:
    if len(fields) != width:
      raise DataError(f"expected {width} tab-separated fields (as in the header), found "
                      f"{len(fields)}", path, line)
    get = {name: fields[i].strip() for name, i in col.items()}
    clip = get["clip_id"]
    _check_clip_id(clip, first_line, path, line)
    times = []
    for name in ("segmentStart", "segmentEnd"):
      try:
        times.append(float(get[name]))
      except ValueError:
        raise DataError(f"{name} {get[name]!r} is not a number", path, line) from None
    if not times[1] >= times[0] >= 0:
      raise DataError(f"segmentStart {times[0]:g} and segmentEnd {times[1]:g} do not "
                      "make a segment (need 0 <= start <= end)", path, line)
    if not get["track_number"] or not get["album"]:
      raise DataError("blank track_number or album (the track is album/track_number)",
                      path, line)
    info[clip] = (get["track_number"], get["artist"], get["album"], times[0], times[1],
                  get.get("mp3_path", ""))
  return info


def track_ids(album: Sequence[str], number: Sequence[str],
              artist: Sequence[str]) -> list:
  """``"<album>/<track_number>"`` per clip; where one (album, track number) holds clips
  of several artists (two albums of one name), ``"<album>/<track_number> [<artist>]"``."""
  artists: Dict[tuple, set] = {}
  for key in zip(album, number, artist):
    artists.setdefault(key[:2], set()).add(key[2])
  return [f"{a}/{t}" if len(artists[a, t]) == 1 else f"{a}/{t} [{r}]"
          for a, t, r in zip(album, number, artist)]


def _select_tags(tag_names: Sequence[str], counts: np.ndarray, top_tags: int,
                 tags: Optional[Sequence[str]], source: str) -> np.ndarray:
  """Boolean [T] mask of kept tag columns."""
  keep = np.ones(len(tag_names), bool)
  if tags is not None:
    by_key: Dict[str, list] = {}
    for j, name in enumerate(tag_names):
      by_key.setdefault(_key(name), []).append(j)
    keep[:] = False
    for name in tags:
      hit = by_key.get(_key(name))
      if not hit:
        raise DataError(f"tag {name!r} is not a column of the annotations (matched "
                        "ignoring case, spaces and underscores)", source, 1)
      keep[hit] = True
  if top_tags:
    if top_tags < 0:
      raise ValueError(f"top_tags must be >= 0, got {top_tags}")
    order = np.lexsort((np.arange(len(tag_names)), -counts))
    order = order[keep[order]][:top_tags]
    keep[:] = False
    keep[order] = True
  return keep


def read_magnatagatune(annotations: PathLike, clip_info: Optional[PathLike] = None, *,
                       top_tags: int = 0, tags: Optional[Sequence[str]] = None,
                       split: Sequence[PathLike] = ()) -> Tuple[TagTable, dict]:
  """Reads MagnaTagATune into a TagTable; also returns {reason: count} of skipped records.

  Args:
    annotations: ``annotations_final.csv``.
    clip_info: ``clip_info_final.csv`` (None: no track/artist/album/start/duration).
    top_tags: keep the N tags on the most clips of the whole file (0 = all 188).
    tags: keep only these tag names (before ``top_tags``).
    split: split-list files; keep only the clips they list (by clip_id or mp3_path).
  Returns:
    (TagTable of (clip, tag) rows with track, artist, album, start, duration when
    ``clip_info`` is given; count 1), skipped.
  Raises:
    DataError naming file, line and reason for a missing column, a value that is not
    0/1, a wrong number of fields, a duplicate or blank clip_id, a bad segment.
  """
  annotations = os.fspath(annotations)
  clips, mp3s, tag_names, values, _ = _read_annotations(annotations)
  skipped: Dict[str, int] = {}
  keep_tags = _select_tags(tag_names, values.sum(axis=0), top_tags, tags, annotations)
  if not keep_tags.all():
    skipped["tag columns not selected"] = int((~keep_tags).sum())
  keep_clips = np.ones(len(clips), bool)
  info = None
  if clip_info is not None:
    clip_info = os.fspath(clip_info)
    info = _read_clip_info(clip_info)
    has_info = np.array([c in info for c in clips], bool)
    if not has_info.all():
      skipped["clips with no clip_info row"] = int((~has_info).sum())
    keep_clips &= has_info
  if split:
    listed = set()
    for f in split:
      listed.update(read_split_list(f))
    names = set(clips)
    if mp3s is not None:
      names.update(mp3s)
    if info is not None:
      names.update(v[5] for v in info.values() if v[5])
    in_split = np.array([c in listed or (mp3s is not None and mp3s[k] in listed)
                         or (info is not None and c in info and info[c][5] in listed)
                         for k, c in enumerate(clips)], bool)
    skipped["clips not in the split lists"] = int((keep_clips & ~in_split).sum())
    unknown = len(listed - names)
    if unknown:
      skipped["split entries matching no clip"] = unknown
    keep_clips &= in_split
  kept = values[keep_clips][:, keep_tags]
  no_tags = int((kept.sum(axis=1) == 0).sum())
  if no_tags:
    skipped["clips with no tag"] = no_tags
  clip_index = np.flatnonzero(keep_clips)
  row_clip, row_tag = np.nonzero(kept)
  clip_arr = np.array(clips, dtype=str)[clip_index][row_clip]
  tag_arr = np.array(tag_names, dtype=str)[np.flatnonzero(keep_tags)][row_tag]
  n = clip_arr.size
  kw = {}
  if info is not None:
    per_clip = [info[clips[k]] for k in clip_index]
    if per_clip:
      number, artist, album, start, end, _ = (list(x) for x in zip(*per_clip))
    else:
      number = artist = album = start = end = []

    def strings(v):
      return np.array(v, dtype=str)[row_clip] if v else np.zeros(0, "<U1")

    kw["track"] = strings(track_ids(album, number, artist))
    kw["artist"], kw["album"] = strings(artist), strings(album)
    start = np.array(start, np.float64)
    kw["start"] = start[row_clip] if n else np.zeros(0)
    kw["duration"] = (np.array(end, np.float64) - start)[row_clip] if n else np.zeros(0)
  if n == 0:
    clip_arr, tag_arr = np.zeros(0, "<U1"), np.zeros(0, "<U1")
  table = TagTable(clip=clip_arr, tag=tag_arr, count=np.ones(n, np.int64),
                   source=annotations, **kw)
  return table, skipped


def load_magnatagatune(annotations: PathLike, clip_info: Optional[PathLike] = None,
                       **options) -> TagTable:
  """``read_magnatagatune`` without the skipped counts."""
  return read_magnatagatune(annotations, clip_info, **options)[0]


def find_files(folder: PathLike) -> Tuple[str, Optional[str]]:
  """(annotations_final.csv, clip_info_final.csv or None) in a folder."""
  folder = os.fspath(folder)
  ann = os.path.join(folder, ANNOTATIONS)
  if not os.path.isfile(ann):
    raise DataError(f"no {ANNOTATIONS} in this folder", folder)
  info = os.path.join(folder, CLIP_INFO)
  return ann, (info if os.path.isfile(info) else None)
