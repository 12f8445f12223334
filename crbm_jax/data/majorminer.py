"""MajorMiner tags and Essentia clip features (Mandel & Ellis, JNMR 2008).

``clip_tags_with_song.tsv`` (no header, tab separated):
``clip_id, title, artist, album, clip_start (m:ss), tag, count``; text escaped
as the crawl left it (``Let\\'s``). Each row is (clip, tag, number of players);
no per-user triples survive, so the table has no user column.

Tracks: the track id is ``"<artist> - <title>"`` (stable, readable; the loader
checks that it identifies (title, artist) pairs one-to-one). Clips are 10 s
long unless the Essentia metadata says otherwise; track length is unknown.

Clip features (one Essentia 1.2.2 YAML file per clip) are reduced to
``FEATURE_NAMES``: the 13 MFCC means, the 91 entries of the upper triangle
(with diagonal, row-major) of the 13x13 MFCC covariance, then
``SCALAR_DESCRIPTORS`` (spectral / loudness / pitch means and variances,
rhythm and tonal scalars).
"""
from __future__ import annotations

import importlib.resources
import io
import json
import math
import os
import re
from typing import Sequence, Union

import numpy as np

from crbm_jax.data import tagtable as tt
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

PathLike = Union[str, os.PathLike]
CLIP_SECONDS = 10.0
NUM_COLUMNS = 7
NUM_MFCC = 13

_SPECTRAL = ("spectral_centroid", "spectral_flux", "spectral_rolloff",
             "spectral_flatness_db", "spectral_rms", "spectral_spread",
             "spectral_complexity", "zerocrossingrate", "hfc", "pitch_salience",
             "dissonance")
SCALAR_DESCRIPTORS = (
    ("lowlevel.average_loudness",)
    + tuple(f"lowlevel.{d}.{s}" for d in _SPECTRAL for s in ("mean", "var"))
    + ("rhythm.bpm", "rhythm.onset_rate", "rhythm.beats_loudness.mean",
       "rhythm.beats_loudness.var", "tonal.chords_changes_rate",
       "tonal.key_strength"))
FEATURE_NAMES = (
    tuple(f"lowlevel.mfcc.mean[{i}]" for i in range(NUM_MFCC))
    + tuple(f"lowlevel.mfcc.cov[{i},{j}]" for i in range(NUM_MFCC)
            for j in range(i, NUM_MFCC))
    + SCALAR_DESCRIPTORS)

EMBEDDED_TAGS = "majorminer_tags.tsv.gz"
EMBEDDED_FEATURES = "majorminer_features.npz"

_UNESCAPE = re.compile(r"\\(['\"\\])")
_START = re.compile(r"^(\d+):([0-5]\d)$")


def _unescape(text: str) -> str:
  return _UNESCAPE.sub(r"\1", text)


def track_id(title: str, artist: str) -> str:
  """The track id of a (title, artist) pair: ``"<artist> - <title>"``."""
  return f"{artist} - {title}".strip()


def load_majorminer_tags(path: PathLike) -> TagTable:
  """Reads ``clip_tags_with_song.tsv`` into a TagTable (no user column).

  Raises:
    DataError naming file and line for a wrong number of fields, a blank clip
    or tag, a bad start time or count, a duplicate (clip, tag), or a clip that
    appears with two different songs.
  """
  path = os.fspath(path)
  text = tt.read_text(path)
  cols = {n: [] for n in ("clip", "tag", "count", "track", "artist", "album", "start")}
  song_of_clip, pair_of_track, seen = {}, {}, {}
  for line, raw in enumerate(text.split("\n"), start=1):
    raw = raw.rstrip("\r")
    if not raw.strip():
      continue
    fields = raw.split("\t")
    if len(fields) != NUM_COLUMNS:
      raise DataError(f"expected {NUM_COLUMNS} tab-separated fields (clip_id, "
                      f"title, artist, album, clip_start, tag, count), found "
                      f"{len(fields)}", path, line)
    clip, title, artist, album, start, tag, count = (
        _unescape(f.strip()) for f in fields)
    if not clip:
      raise DataError("blank clip_id", path, line)
    if not tag:
      raise DataError("blank tag", path, line)
    m = _START.match(start)
    if not m:
      raise DataError(f"clip_start {start!r} is not m:ss", path, line)
    try:
      c = int(count)
    except ValueError:
      raise DataError(f"count {count!r} is not an integer", path, line) from None
    if c < 1:
      raise DataError(f"count {c} is less than 1", path, line)
    track = track_id(title, artist)
    if pair_of_track.setdefault(track, (title, artist)) != (title, artist):
      raise DataError(f"track id {track!r} is ambiguous", path, line)
    song = (track, int(m.group(1)) * 60 + int(m.group(2)))
    first = song_of_clip.setdefault(clip, (song, line))
    if first[0] != song:
      raise DataError(f"clip {clip!r} is ({song[0]!r}, start {song[1]} s) here "
                      f"but ({first[0][0]!r}, start {first[0][1]} s) on line "
                      f"{first[1]}", path, line)
    if (clip, tag) in seen:
      raise DataError(f"duplicate (clip, tag) = ({clip!r}, {tag!r}), first on "
                      f"line {seen[clip, tag]}", path, line)
    seen[clip, tag] = line
    for name, value in zip(("clip", "tag", "count", "track", "artist", "album", "start"),
                           (clip, tag, c, track, artist, album, float(song[1]))):
      cols[name].append(value)
  if not cols["clip"]:
    raise DataError("no rows", path)
  n = len(cols["clip"])
  return TagTable(
      clip=np.array(cols["clip"], dtype=str), tag=np.array(cols["tag"], dtype=str),
      count=np.array(cols["count"], dtype=np.int64),
      track=np.array(cols["track"], dtype=str),
      artist=np.array(cols["artist"], dtype=str),
      album=np.array(cols["album"], dtype=str),
      start=np.array(cols["start"], dtype=np.float64),
      duration=np.full(n, CLIP_SECONDS), track_duration=np.full(n, math.nan),
      source=path)


_KEY_LINE = re.compile(r"^( *)([^:]+?):(?: (.*))?$")
_NONFINITE = re.compile(r"(?<![\w\"])(-?)(nan|inf)(?![\w\"])", re.IGNORECASE)


def _parse_value(text: str):
  if text.startswith("["):
    return json.loads(_NONFINITE.sub(
        lambda m: "NaN" if m.group(2).lower() == "nan" else f"{m.group(1)}Infinity",
        text))
  if text.startswith('"'):
    return json.loads(text)
  try:
    return float(text)
  except ValueError:
    return text


def parse_essentia_file(path: PathLike) -> dict:
  """Parses one Essentia YAML signature file into nested dicts.

  A targeted line parser for Essentia's output (block mappings indented by
  spaces, flow lists on one line), ~20x faster than PyYAML. Numbers become
  floats, lists nested Python lists, quoted strings str.

  Raises:
    DataError naming file and line for a line it cannot read.
  """
  path = os.fspath(path)
  text = tt.read_text(path)
  root: dict = {}
  stack = [(-1, root)]
  for line, raw in enumerate(text.split("\n"), start=1):
    raw = raw.rstrip("\r")
    if not raw.strip() or raw.lstrip().startswith("#"):
      continue
    m = _KEY_LINE.match(raw)
    if not m:
      raise DataError(f"cannot read Essentia line {raw[:60]!r}", path, line)
    indent, key, value = len(m.group(1)), m.group(2), m.group(3)
    while stack[-1][0] >= indent:
      stack.pop()
    parent = stack[-1][1]
    if value is None or not value.strip():
      child: dict = {}
      parent[key] = child
      stack.append((indent, child))
    else:
      try:
        parent[key] = _parse_value(value.strip())
      except ValueError as e:
        raise DataError(f"cannot read the value of {key!r}: {e}", path, line) from e
  return root


def _lookup(doc: dict, dotted: str, path: str):
  node = doc
  for part in dotted.split("."):
    if not isinstance(node, dict) or part not in node:
      raise DataError(f"Essentia file has no {dotted!r}", path)
    node = node[part]
  return node


def essentia_feature_vector(doc: dict, path: str = "") -> tuple:
  """(features [F] float64 in FEATURE_NAMES order, clip length in seconds)."""
  mean = np.asarray(_lookup(doc, "lowlevel.mfcc.mean", path), dtype=np.float64)
  cov = np.asarray(_lookup(doc, "lowlevel.mfcc.cov", path), dtype=np.float64)
  if mean.shape != (NUM_MFCC,) or cov.shape != (NUM_MFCC, NUM_MFCC):
    raise DataError(f"MFCC mean/cov have shapes {mean.shape}/{cov.shape}, "
                    f"expected ({NUM_MFCC},)/({NUM_MFCC}, {NUM_MFCC})", path)
  scalars = []
  for name in SCALAR_DESCRIPTORS:
    value = _lookup(doc, name, path)
    if not isinstance(value, float):
      raise DataError(f"{name} is {value!r}, expected a number", path)
    scalars.append(value)
  length = _lookup(doc, "metadata.audio_properties.length", path)
  vector = np.concatenate([mean, cov[np.triu_indices(NUM_MFCC)], scalars])
  return vector, float(length)


def load_essentia_features(feature_dir: PathLike, clip_ids: Sequence[str]):
  """Reads ``<feature_dir>/<clip>.sig`` for every clip.

  Returns:
    (features float32 [C, F], FEATURE_NAMES as a list, durations float64 [C]).
  Raises:
    DataError for a missing file or descriptor.
  """
  feature_dir = os.fspath(feature_dir)
  rows, durations = [], []
  for clip in clip_ids:
    path = os.path.join(feature_dir, f"{clip}.sig")
    if not os.path.exists(path):
      raise DataError(f"no Essentia features for clip {clip!r}", path)
    vector, length = essentia_feature_vector(parse_essentia_file(path), path)
    rows.append(vector)
    durations.append(length)
  features = np.array(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))
  return features, list(FEATURE_NAMES), np.array(durations, dtype=np.float64)


def load_embedded_majorminer():
  """The committed MajorMiner data (see crbm_jax/data/embedded/README.md).

  Returns:
    (TagTable of (clip, tag, count) with track/artist/album/start/duration,
     features float32 [C, F], feature_names list[str], clip_ids [C] str);
    features[i] belongs to clip_ids[i].
  """
  folder = importlib.resources.files("crbm_jax.data") / "embedded"
  table = tt.load_embedded_table(EMBEDDED_TAGS)
  with (folder / EMBEDDED_FEATURES).open("rb") as f:
    npz = np.load(io.BytesIO(f.read()), allow_pickle=False)
    features = npz["features"].astype(np.float32)
    names = [str(n) for n in npz["feature_names"]]
    clip_ids = npz["clip_ids"].astype(str)
  return table, features, names, clip_ids

