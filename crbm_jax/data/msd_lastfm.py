"""The Last.fm tags of the Million Song Dataset (millionsongdataset.com/lastfm).

Two distributed forms:

JSON tree (``lastfm_train/``, ``lastfm_test/``, ``lastfm_subset/``, or their ``.zip``)
  one file per track, ``A/B/C/TRABC...json``, holding an object with ``track_id``,
  ``artist``, ``title``, ``timestamp``, ``similars`` and ``"tags": [[tag, weight],
  ...]``; weights are 0-100 (relative to the track's top tag; the files write them as
  strings, e.g. ``["rock", "100"]``).
SQLite (``lastfm_tags.db``)
  tables ``tids(tid)``, ``tags(tag)`` and ``tid_tag(tid, tag, val)``, where
  ``tid_tag.tid`` / ``tid_tag.tag`` are ROWIDs of the other two tables and ``val`` is
  the weight. Read with the standard library's ``sqlite3``, read-only.

Each (track, tag) with weight >= ``min_weight`` becomes one row: clip = track = the
MSD track id, artist (JSON form only), count 1, no users; the weight itself is not a
tag-table column, so choose the threshold here (0 keeps every tag; 50 is a common
choice). Tags below the threshold, tracks left without tags and repeated tags of a
track are counted as skipped.
"""
from __future__ import annotations

import json
import os
import sqlite3
import zipfile
from typing import Dict, Iterable, Sequence, Tuple, Union

import numpy as np

from crbm_jax.data.errors import DataError
from crbm_jax.data import tagtable as tt
from crbm_jax.data.tagtable import TagTable
from crbm_jax.util.progress import Progress

PathLike = Union[str, os.PathLike]
DB_TABLES = ("tids", "tags", "tid_tag")


def _bump(skipped: dict, reason: str, n: int = 1) -> None:
  if n:
    skipped[reason] = skipped.get(reason, 0) + n


PROGRESS_MIN_FILES = 2000  # show progress on stderr when reading at least this many files


def _json_docs(paths: Sequence[str]) -> Iterable[Tuple[str, bytes]]:
  """(name for messages, raw bytes) of every .json under the given files / folders /
  .zip archives, in sorted order; progress on stderr for many files."""
  sources = []  # (name, path, member or None)
  archives = {}
  for path in paths:
    if os.path.isdir(path):
      sources.extend((f, f, None) for f in tt.files_under(path, ".json"))
    elif path.lower().endswith(".zip"):
      try:
        archive = archives[path] = zipfile.ZipFile(path)
      except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read the zip archive: {e}", path) from e
      names = sorted(n for n in archive.namelist() if n.lower().endswith(".json"))
      if not names:
        raise DataError("no .json files in this archive", path)
      sources.extend((f"{path}:{n}", path, n) for n in names)
    else:
      sources.append((path, path, None))
  progress = (Progress(len(sources), label="msd-lastfm", unit="files")
              if len(sources) >= PROGRESS_MIN_FILES else None)
  try:
    for name, path, member in sources:
      if member is None:
        yield name, _read_bytes(path)
      else:
        try:
          yield name, archives[path].read(member)
        except (zipfile.BadZipFile, OSError) as e:
          raise DataError(f"cannot read {member} from the zip archive: {e}", path) from e
      if progress is not None:
        progress.update()
  finally:
    if progress is not None:
      progress.close()
    for archive in archives.values():
      archive.close()


def _read_bytes(path: str) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise DataError(f"cannot read file: {e.strerror}", path) from e


def _weight(value, name: str, key: str) -> float:
  try:
    w = float(value)
  except (TypeError, ValueError):
    raise DataError(f"{key}: weight {value!r} is not a number", name) from None
  if not 0 <= w <= 100:
    raise DataError(f"{key}: weight {w:g} is outside 0-100", name)
  return w


def read_lastfm_json(paths: Union[PathLike, Sequence[PathLike]], *,
                     min_weight: float = 0.0) -> Tuple[TagTable, dict]:
  """Reads Last.fm JSON track files (files, folders walked recursively, or .zip).

  Raises:
    DataError naming the file and, for bad content, the key: invalid JSON (with its
    line), no ``tags`` list, a tag entry that is not [tag, weight], a weight outside
    0-100.
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  paths = [os.fspath(p) for p in paths]
  cols: Dict[str, list] = {"clip": [], "tag": [], "artist": []}
  skipped: Dict[str, int] = {}
  first: Dict[str, str] = {}
  for name, data in _json_docs(paths):
    try:
      doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
      raise DataError(f"invalid UTF-8 byte at offset {e.start}", name) from e
    except json.JSONDecodeError as e:
      raise DataError(f"not valid JSON: {e.msg} (column {e.colno})", name, e.lineno) from e
    if not isinstance(doc, dict):
      raise DataError("expected a JSON object with 'track_id' and 'tags'", name)
    stem = os.path.splitext(os.path.basename(name.split(":")[-1]))[0]
    track = str(doc.get("track_id") or stem).strip()
    if track in first:
      raise DataError(f"track {track} also in {first[track]}", name)
    first[track] = name
    tags = doc.get("tags")
    if not isinstance(tags, list):
      raise DataError("key 'tags': expected a list of [tag, weight] pairs, found "
                      f"{type(tags).__name__}", name)
    artist = str(doc.get("artist") or "").strip()
    kept, seen = 0, set()
    for k, entry in enumerate(tags):
      key = f"key 'tags'[{k}]"
      if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
        raise DataError(f"{key}: expected [tag, weight], found {entry!r}", name)
      tag = entry[0].strip()
      weight = _weight(entry[1], name, key)
      if not tag:
        _bump(skipped, "blank tags")
      elif weight < min_weight:
        _bump(skipped, f"tags with weight below {min_weight:g}")
      elif tag in seen:
        _bump(skipped, "repeated tags of a track")
      else:
        seen.add(tag)
        kept += 1
        cols["clip"].append(track)
        cols["tag"].append(tag)
        cols["artist"].append(artist)
    if not kept:
      _bump(skipped, "tracks with no tag")
  return _table(cols, ", ".join(paths)), skipped


def _table(cols: dict, source: str) -> TagTable:
  def strings(values):
    return np.array(values, dtype=str) if values else np.zeros(0, "<U1")

  clip = strings(cols["clip"])
  kw = {"artist": strings(cols["artist"])} if "artist" in cols else {}
  return TagTable(clip=clip, tag=strings(cols["tag"]),
                  count=np.ones(clip.size, np.int64), track=clip.copy(), source=source,
                  **kw)


def is_sqlite(path: str) -> bool:
  try:
    with open(path, "rb") as f:
      return f.read(16) == b"SQLite format 3\x00"
  except OSError:
    return False


def read_lastfm_db(path: PathLike, *, min_weight: float = 0.0) -> Tuple[TagTable, dict]:
  """Reads ``lastfm_tags.db`` (read-only) with ``sqlite3``.

  Raises:
    DataError naming the file and the table or column for a file that is not an SQLite
    database, a missing table, or a weight outside 0-100.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError("no such file", path)
  if not is_sqlite(path):
    raise DataError("not an SQLite database (expected lastfm_tags.db with tables "
                    f"{', '.join(DB_TABLES)})", path)
  skipped: Dict[str, int] = {}
  uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23") + "?mode=ro"
  try:
    con = sqlite3.connect(uri, uri=True)
  except sqlite3.Error as e:
    raise DataError(f"cannot open the SQLite database: {e}", path) from e
  try:
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [t for t in DB_TABLES if t not in names]
    if missing:
      raise DataError(f"no table(s) {', '.join(missing)} (lastfm_tags.db has tables "
                      f"{', '.join(DB_TABLES)})", path)
    for table, column in (("tids", "tid"), ("tags", "tag"), ("tid_tag", "val")):
      columns = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
      if column not in columns:
        raise DataError(f"table {table} has no column {column} (columns: "
                        f"{', '.join(columns)})", path)
    bad = con.execute("SELECT ROWID, val FROM tid_tag WHERE NOT (val BETWEEN 0 AND 100) "
                      "OR val IS NULL LIMIT 1").fetchone()
    if bad is not None:
      raise DataError(f"table tid_tag row {bad[0]}: val {bad[1]!r} is outside 0-100", path)
    total = con.execute("SELECT COUNT(*) FROM tid_tag").fetchone()[0]
    below = con.execute("SELECT COUNT(*) FROM tid_tag WHERE val < ?",
                        (min_weight,)).fetchone()[0]
    rows = con.execute(
        "SELECT tids.tid, tags.tag FROM tid_tag "
        "JOIN tids ON tids.ROWID = tid_tag.tid JOIN tags ON tags.ROWID = tid_tag.tag "
        "WHERE tid_tag.val >= ? ORDER BY tid_tag.tid, tid_tag.ROWID",
        (min_weight,)).fetchall()
    num_tids = con.execute("SELECT COUNT(*) FROM tids").fetchone()[0]
  except sqlite3.Error as e:
    raise DataError(f"cannot read the SQLite database: {e}", path) from e
  finally:
    con.close()
  _bump(skipped, f"tags with weight below {min_weight:g}", below)
  _bump(skipped, "tid_tag rows naming no track or tag", total - below - len(rows))
  cols: Dict[str, list] = {"clip": [], "tag": []}
  seen = set()
  for tid, tag in rows:
    tid, tag = str(tid).strip(), str(tag).strip()
    if not tag:
      _bump(skipped, "blank tags")
    elif (tid, tag) in seen:
      _bump(skipped, "repeated tags of a track")
    else:
      seen.add((tid, tag))
      cols["clip"].append(tid)
      cols["tag"].append(tag)
  _bump(skipped, "tracks with no tag", num_tids - len({c for c in cols["clip"]}))
  return _table(cols, path), skipped


def read_msd_lastfm(paths: Union[PathLike, Sequence[PathLike]], *,
                    min_weight: float = 0.0) -> Tuple[TagTable, dict]:
  """Either form: a ``.db`` SQLite file, or JSON files / folders / zip archives."""
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  paths = [os.fspath(p) for p in paths]
  for p in paths:  # a database by name that is not one (a text file named .db)
    if os.path.isfile(p) and p.lower().endswith((".db", ".sqlite", ".sqlite3")):
      if not is_sqlite(p):
        read_lastfm_db(p, min_weight=min_weight)  # raises: not an SQLite database
  dbs = [p for p in paths if os.path.isfile(p) and is_sqlite(p)]
  if dbs:
    if len(paths) != 1:
      raise DataError("give one lastfm_tags.db, or JSON files/folders, not both or "
                      "several databases", dbs[0])
    return read_lastfm_db(dbs[0], min_weight=min_weight)
  return read_lastfm_json(paths, min_weight=min_weight)


def load_msd_lastfm(paths, **options) -> TagTable:
  """``read_msd_lastfm`` without the skipped counts."""
  return read_msd_lastfm(paths, **options)[0]
