"""JAMS (JSON Annotated Music Specification, Humphrey et al., ISMIR 2014) tag files.

Read and written with the standard library's ``json`` (the ``jams`` package would add
pandas, mir_eval and jsonschema to the install for what is a small JSON layout; the
tests check our files against it when it is installed).

Reading: every annotation whose ``namespace`` matches one of ``namespaces`` (default
``tag_*``: ``tag_open``, ``tag_gtzan``, ``tag_cal500``, ...) gives one row per
observation: tag = ``value``, user = the annotator's ``name`` when present, track =
the file's name without extension, artist / album / track_duration from
``file_metadata`` (``artist``, ``release``, ``duration``), start = ``time``,
duration = the observation's ``duration`` (0 = unknown). Within a file, observations
that share one (time, duration) segment are one clip, named after the track when the
file has a single segment and ``<track>@<start>-<end>`` otherwise. ``count`` is the
``confidence`` when that is a whole number >= 1, else 1; ``min_confidence`` drops
observations whose numeric confidence is lower (e.g. smoothed affinities). Sparse
observation lists (JAMS >= 0.3) and the dense form (lists per field) are both read.

Writing (``write_jams``): one file per track (per clip without tracks), named after
the track, into a new or empty folder (a folder holding anything else is refused unless
``force``, and then only the .jams files written are added or replaced); one ``tag_open`` annotation per (clip, user) with the annotator's name =
user, observations at the clip's (start, duration) with confidence = count, or a given
array such as crbm-smooth's affinities. The exact tag-table fields are also kept in
each file's and annotation's ``sandbox["crbm_jax"]``, so reading our own files gives
back the same rows.
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from crbm_jax.data import tagtable as tt
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable
from crbm_jax.util import interrupt
from crbm_jax.util.atomic import write_bytes_atomic
from crbm_jax.util.progress import Progress

PathLike = Union[str, os.PathLike]
SANDBOX_KEY = "crbm_jax"
FORMAT_VERSION = 1
JAMS_VERSION = "0.3.4"
DEFAULT_NAMESPACES = ("tag_*",)
PROGRESS_MIN_FILES = 2000  # show progress on stderr when reading at least this many files
_ROW_FIELDS = ("artist", "album", "start", "duration", "track_duration")


def _bump(skipped: dict, reason: str, n: int = 1) -> None:
  if n:
    skipped[reason] = skipped.get(reason, 0) + n


def jams_files(paths: Sequence[str]) -> List[str]:
  """The .jams files among ``paths`` (folders are walked, sorted).

  Raises:
    DataError naming a file reached twice (the same path given twice, the same folder
    twice, a file also inside a folder given, or two links to one file): its rows would
    be read twice.
  """
  out = []
  first: Dict[str, str] = {}
  for path in paths:
    found = tt.files_under(path, ".jams") if os.path.isdir(path) else [path]
    for name in found:
      real = os.path.realpath(name)
      if real in first:
        raise DataError(f"this JAMS file is given twice (also as {first[real]}); give "
                        "each file or folder once", name)
      first[real] = name
      out.append(name)
  return out


def _number(value) -> Optional[float]:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value)


def _observations(data, path: str, key: str) -> list:
  """[(time, duration, value, confidence)] of an annotation's data (sparse or dense)."""
  if isinstance(data, dict):  # dense form: lists per field
    fields = [data.get(f) for f in ("time", "duration", "value", "confidence")]
    if not all(isinstance(f, list) for f in fields[:3]):
      raise DataError(f"{key}: dense data needs lists 'time', 'duration', 'value'", path)
    if fields[3] is None:
      fields[3] = [None] * len(fields[2])
    if len({len(f) for f in fields}) != 1:
      raise DataError(f"{key}: dense data lists have different lengths", path)
    items = [dict(zip(("time", "duration", "value", "confidence"), obs))
             for obs in zip(*fields)]
  elif isinstance(data, list):
    items = data
  else:
    raise DataError(f"{key}: expected a list of observations, found "
                    f"{type(data).__name__}", path)
  out = []
  for i, obs in enumerate(items):
    where = f"{key}[{i}]"
    if not isinstance(obs, dict):
      raise DataError(f"{where}: an observation must be an object", path)
    time, duration = _number(obs.get("time", 0.0)), _number(obs.get("duration", 0.0))
    if time is None or duration is None or time < 0 or duration < 0:
      raise DataError(f"{where}: time and duration must be numbers >= 0, found "
                      f"{obs.get('time')!r}, {obs.get('duration')!r}", path)
    value = obs.get("value")
    if not isinstance(value, str):
      raise DataError(f"{where}.value: a tag must be a string, found {value!r}", path)
    if any(c in value.strip() for c in "\t\n\r"):
      raise DataError(f"{where}.value: the tag {value!r} holds a tab or line break, which "
                      "a tag table cannot hold", path)
    out.append((time, duration, value, obs.get("confidence")))
  return out


def _load_json(path: str) -> dict:
  text = tt.read_text(path)
  try:
    doc = json.loads(text)
  except json.JSONDecodeError as e:
    raise DataError(f"not valid JSON: {e.msg} (column {e.colno})", path, e.lineno) from e
  if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
    raise DataError("key 'annotations': a JAMS file is an object with a list of "
                    "annotations", path)
  return doc


def _count_of(confidence) -> int:
  c = _number(confidence)
  return int(c) if c is not None and c >= 1 and c == int(c) else 1


def read_jams(paths: Union[PathLike, Sequence[PathLike]], *,
              namespaces: Sequence[str] = DEFAULT_NAMESPACES,
              min_confidence: Optional[float] = None) -> Tuple[TagTable, dict]:
  """Reads JAMS files (or folders of them) into a TagTable; also {reason: count} skipped.

  Args:
    namespaces: glob patterns of the annotation namespaces to read.
    min_confidence: drop observations whose numeric confidence is below this.
  Raises:
    DataError naming the file (and JSON line or key) for invalid JSON, a file without
    an annotations list, an observation without numeric time/duration or string value,
    a clip that two files both define.
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  paths = [os.fspath(p) for p in paths]
  files = jams_files(paths)
  progress = (Progress(len(files), label="jams", unit="files")
              if len(files) >= PROGRESS_MIN_FILES else None)
  rows: Dict[str, list] = {n: [] for n in ("clip", "user", "tag", "count", "track")
                           + _ROW_FIELDS}
  present = set()
  skipped: Dict[str, int] = {}
  clip_file: Dict[str, str] = {}
  for path in files:
    if progress is not None:
      progress.update()
    doc = _load_json(path)
    meta = doc.get("file_metadata") if isinstance(doc.get("file_metadata"), dict) else {}
    box = doc.get("sandbox", {}).get(SANDBOX_KEY) if isinstance(
        doc.get("sandbox"), dict) else None
    ours = isinstance(box, dict) and "track" in box
    stem = os.path.splitext(os.path.basename(path))[0]
    if ours:
      track = box["track"]
      present.update(c for c in box.get("columns", []) if c in rows)
    else:
      track = stem
      present.update(("track", "start", "duration"))
    artist = str(meta.get("artist") or "")
    album = str(meta.get("release") or "")
    track_duration = _number(meta.get("duration"))
    if not ours:
      present.update(name for name, v in (("artist", artist), ("album", album))
                     if v)
      if track_duration is not None:
        present.add("track_duration")
    found = []  # (clip or None, user, tag, count, fields dict)
    segments = set()
    for k, ann in enumerate(doc["annotations"]):
      key = f"annotations[{k}]"
      if not isinstance(ann, dict):
        raise DataError(f"{key}: an annotation must be an object", path)
      ns = ann.get("namespace")
      if not isinstance(ns, str) or not any(fnmatch.fnmatchcase(ns, p) for p in namespaces):
        _bump(skipped, "annotations of other namespaces")
        continue
      obs = _observations(ann.get("data"), path, f"{key}.data")
      meta_a = ann.get("annotation_metadata") if isinstance(
          ann.get("annotation_metadata"), dict) else {}
      annotator = meta_a.get("annotator") if isinstance(meta_a.get("annotator"),
                                                         dict) else {}
      user = annotator.get("name")
      user = user.strip() if isinstance(user, str) else ""
      if user and not ours:
        present.add("user")
      if not user and not ours:  # an anonymous annotation: its own user, never merged
        user = f"anonymous@{stem}#{k}"
      abox = ann.get("sandbox", {}).get(SANDBOX_KEY) if isinstance(
          ann.get("sandbox"), dict) else None
      use_box = ours and isinstance(abox, dict) and "clip" in abox
      counts_are_counts = ours and box.get("confidence", "count") == "count"
      for time, duration, value, confidence in obs:
        c = _number(confidence)
        if min_confidence is not None and c is not None and c < min_confidence:
          _bump(skipped, f"observations with confidence below {min_confidence:g}")
          continue
        if not value.strip():
          _bump(skipped, "blank tags")
          continue
        count = int(confidence) if counts_are_counts and c is not None else _count_of(
            confidence)
        if use_box:
          fields = {n: abox.get(n) for n in _ROW_FIELDS}
          found.append((str(abox["clip"]), user, value.strip(), count, fields))
        else:
          segments.add((time, duration))
          fields = {"artist": artist, "album": album, "start": time,
                    "duration": duration if duration > 0 else None,
                    "track_duration": track_duration}
          found.append(((time, duration), user, value.strip(), count, fields))
    seen = set()
    for clip, user, tag, count, fields in found:
      if isinstance(clip, tuple):
        time, duration = clip
        clip = stem if len(segments) == 1 else f"{stem}@{time:g}-{time + duration:g}"
      if (clip, user, tag) in seen:
        _bump(skipped, "repeated tags of a clip and user")
        continue
      seen.add((clip, user, tag))
      other = clip_file.setdefault(clip, path)
      if other != path:
        raise DataError(f"clip {clip!r} is also in {other}", path)
      for name, value in (("clip", clip), ("user", user), ("tag", tag), ("count", count),
                          ("track", track)):
        rows[name].append(value)
      for name in _ROW_FIELDS:
        rows[name].append(fields[name])
  if progress is not None:
    progress.close()
  return _rows_to_table(rows, present, ", ".join(paths)), skipped


def _rows_to_table(rows: dict, present: set, source: str) -> TagTable:
  def strings(values):
    return (np.array(["" if v is None else str(v) for v in values], dtype=str)
            if values else np.zeros(0, "<U1"))

  def floats(values):
    return np.array([math.nan if v is None else float(v) for v in values], np.float64)

  kw = {}
  for name in ("user", "track", "artist", "album"):
    if name in present:
      kw[name] = strings(rows[name])
  for name in tt.FLOAT_COLUMNS:
    if name in present:
      kw[name] = floats(rows[name])
  return TagTable(clip=strings(rows["clip"]), tag=strings(rows["tag"]),
                  count=np.array(rows["count"], np.int64), source=source, **kw)


def load_jams(paths, **options) -> TagTable:
  """``read_jams`` without the skipped counts."""
  return read_jams(paths, **options)[0]


# -- writing ------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(name: str, used: set) -> str:
  base = _UNSAFE.sub("_", name).strip("._")[:100] or "track"
  candidate, k = base, 2
  while candidate.lower() in used:
    candidate, k = f"{base}-{k}", k + 1
  used.add(candidate.lower())
  return candidate + ".jams"


def _finite_or_none(x: float):
  return None if x is None or math.isnan(x) else float(x)


def jams_documents(table: TagTable, confidence: Optional[np.ndarray] = None,
                   confidence_name: str = "count", values: Optional[np.ndarray] = None,
                   namespace: str = "tag_open", corpus: str = "") -> List[Tuple[str, dict]]:
  """[(track or clip name, JAMS document)], one per track (per clip without tracks).

  Args:
    confidence: [R] floats written as each observation's confidence (default: count).
    confidence_name: what the confidence is ("count", "affinity", ...), kept in the
      sandbox; only "count" is read back as the count.
    values: [R] strings to write as observation values instead of ``table.tag`` (e.g.
      the display forms of canonical tags).
  """
  n = table.num_rows
  conf = (table.count.tolist() if confidence is None
          else [float(c) for c in np.asarray(confidence, np.float64).tolist()])
  if len(conf) != n:
    raise ValueError(f"confidence has {len(conf)} entries for {n} rows")
  tags = (table.tag if values is None else np.asarray(values, str)).tolist()
  columns = [c for c in table.columns() if c not in ("clip", "tag", "count")]
  group_key = table.track if table.has("track") else table.clip
  col = {name: getattr(table, name).tolist() for name in ("user",) + _ROW_FIELDS
         if table.has(name)}
  docs: Dict[str, dict] = {}
  annotations: Dict[tuple, dict] = {}
  for r, (clip, group) in enumerate(zip(table.clip.tolist(), group_key.tolist())):
    fields = {name: (col[name][r] if name in col else None) for name in _ROW_FIELDS}
    for name in tt.FLOAT_COLUMNS:
      fields[name] = _finite_or_none(fields[name])
    user = col["user"][r] if "user" in col else None
    doc = docs.get(group)
    if doc is None:
      meta = {"title": group, "artist": fields["artist"] or "",
              "release": fields["album"] or "", "identifiers": {},
              "jams_version": JAMS_VERSION}
      if fields["track_duration"] is not None:
        meta["duration"] = fields["track_duration"]
      doc = docs[group] = {
          "file_metadata": meta, "annotations": [],
          "sandbox": {SANDBOX_KEY: {
              "format": FORMAT_VERSION, "columns": columns,
              "track": group if table.has("track") else None,
              "confidence": confidence_name}}}
    key = (group, clip, user) + tuple(fields[name] for name in _ROW_FIELDS)
    ann = annotations.get(key)
    time = fields["start"] if fields["start"] is not None else 0.0
    duration = fields["duration"] if fields["duration"] is not None else 0.0
    if ann is None:
      annotator = {"name": user} if user is not None else {}
      ann = annotations[key] = {
          "namespace": namespace,
          "annotation_metadata": {
              "curator": {"name": "", "email": ""}, "annotator": annotator,
              "version": "", "corpus": corpus, "annotation_tools": "crbm_jax",
              "annotation_rules": "", "validation": "", "data_source": ""},
          "data": [], "time": time, "duration": duration,
          "sandbox": {SANDBOX_KEY: dict(clip=clip, **fields)}}
      doc["annotations"].append(ann)
    ann["data"].append({"time": time, "duration": duration, "value": tags[r],
                        "confidence": conf[r]})
  for doc in docs.values():  # JAMS requires a file duration: the last observation's end
    if "duration" not in doc["file_metadata"]:  # (a lower bound; not read back)
      doc["file_metadata"]["duration"] = max(
          a["time"] + a["duration"] for a in doc["annotations"])
  return list(docs.items())


def write_jams(table: TagTable, out: PathLike, *, confidence: Optional[np.ndarray] = None,
               confidence_name: str = "count", values: Optional[np.ndarray] = None,
               namespace: str = "tag_open", corpus: str = "", force: bool = False,
               force_hint: Optional[str] = "--force") -> List[str]:
  """Writes ``table`` as JAMS: a ``.jams`` file (a table of one track) or a folder with
  one ``<track>.jams`` per track. Nothing is half-written and nothing else is touched:

  * a new folder is built beside ``out`` and renamed into place;
  * an existing empty folder receives the files (each written atomically);
  * an existing folder that holds anything is refused (DataError naming ``force``)
    unless ``force``: then only the ``.jams`` files written are added or replaced, each
    atomically, and every other file in it is left as it was.

  Returns:
    the paths written.
  Raises:
    DataError when ``out`` ends in .jams but the table has several tracks, ``out`` is an
    existing file that is not a folder, or a non-empty folder without ``force`` (the
    message names ``force_hint``, the caller's way to give it, unless None).
  """
  out = os.fspath(out)
  docs = jams_documents(table, confidence, confidence_name, values, namespace, corpus)
  if not docs:
    raise DataError("the table has no rows: nothing to write", out)
  if out.lower().endswith(".jams"):
    if len(docs) != 1:
      raise DataError(f"the table has {len(docs)} tracks and a .jams file holds one; give "
                      "a folder as the output to write one file per track", out)
    if os.path.isdir(out):
      raise DataError("is a folder; give a .jams file name or a folder path without "
                      "the .jams ending", out)
    write_bytes_atomic(out, _encode(docs[0][1]))
    return [out]
  if os.path.exists(out) and not os.path.isdir(out):
    raise DataError("exists and is not a folder; JAMS output is a folder of .jams files "
                    "(or a single .jams file)", out)
  target = os.path.abspath(out)
  used: set = set()
  named = [(_file_name(str(group), used), doc) for group, doc in docs]
  if os.path.isdir(target):
    existing = os.listdir(target)
    if existing and not force:
      raise DataError(f"is a folder that already holds {len(existing)} entr"
                      f"{'y' if len(existing) == 1 else 'ies'}; give a new or empty "
                      "folder" + (f", or {force_hint} to add or replace only the .jams "
                                  "files written (nothing else in it is deleted)"
                                  if force_hint else ""), out)
    for name, doc in named:
      path = os.path.join(target, name)
      if os.path.isdir(path):
        raise DataError(f"{name} there is a folder; move it away or give another "
                        "folder", out)
    for name, doc in named:
      write_bytes_atomic(os.path.join(target, name), _encode(doc))
    return [os.path.join(out, name) for name, _ in named]
  parent = os.path.dirname(target)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-jams-", dir=parent)
  with interrupt.scratch(tmp):  # a Ctrl-C removes it
    try:
      for name, doc in named:
        with open(os.path.join(tmp, name), "wb") as f:
          f.write(_encode(doc))
      os.chmod(tmp, 0o755)
      with interrupt.finishing():
        os.rename(tmp, target)  # never replaces: a folder made meanwhile makes this fail
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  return [os.path.join(out, name) for name, _ in named]


def _encode(doc: dict) -> bytes:
  return (json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode()


def load_affinity_table(path: PathLike) -> Tuple[TagTable, np.ndarray, Optional[np.ndarray]]:
  """Reads crbm-smooth output (clip, [track], tag, affinity, [display]).

  Returns:
    (TagTable with count 1, affinity [R] float64, display [R] str or None).
  """
  path = os.fspath(path)
  text = tt.read_text(path)
  rows = tt.split_rows(text, tt.is_tsv(path, text.split("\n", 1)[0]), path)
  if not rows:
    raise DataError("empty file: a header row is required", path, 1)
  header = [h.strip().lower() for h in rows[0][1]]
  for need in ("clip", "tag", "affinity"):
    if need not in header:
      raise DataError(f"missing column {need!r} (crbm-smooth writes clip, [track], tag, "
                      "affinity, display)", path, 1)
  idx = {name: header.index(name) for name in ("clip", "track", "tag", "affinity",
                                               "display") if name in header}
  cols: Dict[str, list] = {name: [] for name in idx}
  for line, fields in rows[1:]:
    if len(fields) != len(header):
      raise DataError(f"expected {len(header)} fields (as in the header), found "
                      f"{len(fields)}", path, line)
    for name, i in idx.items():
      cols[name].append(fields[i].strip())
    try:
      a = float(cols["affinity"][-1])
    except ValueError:
      raise DataError(f"affinity {cols['affinity'][-1]!r} is not a number", path,
                      line) from None
    if not 0.0 <= a <= 1.0:
      raise DataError(f"affinity {a:g} is outside [0, 1]", path, line)
    cols["affinity"][-1] = a
  n = len(cols["clip"])

  def strings(values):
    return np.array(values, dtype=str) if values else np.zeros(0, "<U1")

  table = TagTable(clip=strings(cols["clip"]), tag=strings(cols["tag"]),
                   count=np.ones(n, np.int64),
                   track=strings(cols["track"]) if "track" in cols else None, source=path)
  display = strings(cols["display"]) if "display" in cols else None
  return table, np.array(cols["affinity"], np.float64), display
