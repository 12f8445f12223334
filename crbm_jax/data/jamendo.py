"""MTG-Jamendo autotagging metadata (Bogdanov et al., 2019): whole tracks with tags.

``autotagging*.tsv`` (and the split files ``splits/split-*/autotagging*-{train,
validation,test}.tsv``) are tab separated with a header ``TRACK_ID ARTIST_ID ALBUM_ID
PATH DURATION TAGS``; each row is one track, its five fields and then one or more
tab-separated ``category---tag`` fields (categories ``genre``, ``instrument``,
``mood/theme``), e.g.::

  track_0000214  artist_000014  album_000031  14/214.mp3  124.6  genre---punkrock

Each (track, tag) becomes one row: clip = track = TRACK_ID, artist = ARTIST_ID, album =
ALBUM_ID, start 0 and duration = track_duration = DURATION (the clip is the whole
track), count 1, no users. The tag keeps its category (``genre---punkrock``) unless
``keep_category=False``; ``categories=[...]`` keeps only tags of those categories
(``mood`` and ``theme`` name ``mood/theme``). Tracks left with no tag are counted as
skipped. Several files (train, validation, test) are read into one table; a track in
two files is an error. The files are read as plain tab-separated lines, never CSV-quoted:
a field that starts with ``"`` is read as written (a quote would otherwise swallow the
rows up to the next quote into one tag).
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from crbm_jax.data import tagtable as tt
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

PathLike = Union[str, os.PathLike]
HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION")
SEPARATOR = "---"
CATEGORIES = ("genre", "instrument", "mood/theme")
CATEGORY_ALIASES = {"mood": "mood/theme", "theme": "mood/theme", "moodtheme": "mood/theme",
                    "mood_theme": "mood/theme", "instruments": "instrument",
                    "genres": "genre"}


def parse_categories(categories: Optional[Sequence[str]]) -> Optional[frozenset]:
  """Category names (aliases allowed) -> canonical set; None = every category."""
  if categories is None:
    return None
  out = set()
  for c in categories:
    c = c.strip().lower()
    if not c:
      continue
    c = CATEGORY_ALIASES.get(c, c)
    if c not in CATEGORIES:
      raise DataError(f"unknown MTG-Jamendo category {c!r}; choose from "
                      f"{', '.join(CATEGORIES)} (mood and theme mean mood/theme)")
    out.add(c)
  return frozenset(out) if out else None


def is_jamendo_header(fields: Sequence[str]) -> bool:
  return tuple(f.strip().upper() for f in fields[:len(HEADER)]) == HEADER


def read_jamendo(paths: Union[PathLike, Sequence[PathLike]], *,
                 categories: Optional[Sequence[str]] = None,
                 keep_category: bool = True) -> Tuple[TagTable, dict]:
  """Reads MTG-Jamendo autotagging TSV files; also returns {reason: count} skipped.

  Raises:
    DataError naming file, line and reason for a wrong header, a row with fewer than
    six fields, a DURATION that is not a number, a tag field that is not
    ``category---tag``, a blank track id, or a track listed twice.
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  paths = [os.fspath(p) for p in paths]
  wanted = parse_categories(categories)
  cols: Dict[str, list] = {n: [] for n in ("clip", "tag", "artist", "album", "duration")}
  skipped: Dict[str, int] = {}
  where: Dict[str, tuple] = {}
  for path in paths:
    rows = tt.split_rows(tt.read_text(path), True, path)  # tabs only, never quoted
    header = rows[0][1] if rows else None
    if header is None or rows[0][0] != 1 or not is_jamendo_header(header):
      raise DataError(f"expected the header {' '.join(HEADER)} TAGS (tab separated), "
                      f"found {' '.join(header or [])!r}"
                      if rows else "the file is empty; expected the header "
                      f"{' '.join(HEADER)} TAGS (tab separated)", path, 1)
    for here, fields in rows[1:]:
      if len(fields) < len(HEADER):
        raise DataError(f"expected at least {len(HEADER)} tab-separated fields "
                        f"({', '.join(HEADER)}), found {len(fields)}", path, here)
      bad = next((f for f in fields if "\r" in f or "\n" in f), None)
      if bad is not None:
        raise DataError(f"field {bad.strip()!r} holds a line break (carriage return)",
                        path, here)
      track, artist, album, _, duration = (f.strip() for f in fields[:5])
      if not track:
        raise DataError("blank TRACK_ID", path, here)
      if track in where:
        raise DataError(f"track {track} is listed twice (first in {where[track][0]} "
                        f"line {where[track][1]})", path, here)
      where[track] = (path, here)
      try:
        seconds = float(duration)
      except ValueError:
        raise DataError(f"DURATION {duration!r} is not a number", path, here) from None
      kept, seen = 0, set()
      for field in fields[5:]:
        field = field.strip()
        if not field:
          continue
        category, sep, tag = field.partition(SEPARATOR)
        if not sep or not category or not tag:
          raise DataError(f"tag field {field!r} is not category{SEPARATOR}tag",
                          path, here)
        if wanted is not None and category not in wanted:
          skipped["tags of other categories"] = skipped.get(
              "tags of other categories", 0) + 1
          continue
        name = field if keep_category else tag
        if name in seen:
          skipped["repeated tags of a track"] = skipped.get(
              "repeated tags of a track", 0) + 1
          continue
        seen.add(name)
        kept += 1
        for key, value in (("clip", track), ("tag", name), ("artist", artist),
                           ("album", album), ("duration", seconds)):
          cols[key].append(value)
      if not kept:
        skipped["tracks with no tag"] = skipped.get("tracks with no tag", 0) + 1
  n = len(cols["clip"])

  def strings(values):
    return np.array(values, dtype=str) if values else np.zeros(0, "<U1")

  clip = strings(cols["clip"])
  duration = np.array(cols["duration"], np.float64)
  table = TagTable(clip=clip, tag=strings(cols["tag"]), count=np.ones(n, np.int64),
                   track=clip.copy(), artist=strings(cols["artist"]),
                   album=strings(cols["album"]), start=np.zeros(n),
                   duration=duration, track_duration=duration.copy(),
                   source=paths[0] if len(paths) == 1 else ", ".join(paths))
  return table, skipped


def load_jamendo(paths, **options) -> TagTable:
  """``read_jamendo`` without the skipped counts."""
  return read_jamendo(paths, **options)[0]
