"""Last.fm social tags from HetRec 2011 and the paper's simulated users (Sec. 3.2).

``load_hetrec_triples`` reads ``user_taggedartists.dat`` (tab separated, header
``userID artistID tagID day month year``), ``tags.dat`` (Latin-1) and
``artists.dat`` (UTF-8); LF or CRLF line ends. Each (user, artist, tag)
assignment becomes one row with clip = artist = the artist's name, user = the
userID, tag = the tag text. 390 tagged artist ids are missing from artists.dat;
they are named ``"artist <id>"``.

The paper's Last.fm set (spring 2007: ~21,000 artists, ~100,000 tags) kept the
98 tags applied to at least 8,000 artists and the 200 most-tagged artists. This
set is smaller (12,523 artists, 9,749 tags), so ``select_lastfm_subset`` keeps
the tags applied to at least ``DEFAULT_MIN_ARTISTS_PER_TAG`` = 185 artists
(99 tags, as the paper's 98), then the 200 artists with the most applications
of those tags: 29,406 real triples from 1,149 users. The ratio differs from
the paper's (185/12,523 = 1.5% of artists vs 8,000/21,000 = 38%) because
HetRec's 1,892 users tag far fewer artists each; we match the tag count.
"""
from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np

from crbm_jax.data import tagtable as tt
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

PathLike = Union[str, os.PathLike]
DEFAULT_MIN_ARTISTS_PER_TAG = 185
DEFAULT_NUM_ARTISTS = 200
EXPECTED_TAGS_PER_OBSERVATION = 5.0
EMBEDDED_SUBSET = "hetrec_lastfm_subset.tsv.gz"


def _read_dat(path: str, header: Sequence[str], latin1: bool = False) -> list:
  """[(line, fields)] of a HetRec .dat file after checking its header."""
  if latin1:
    try:
      with open(path, "rb") as f:
        text = f.read().decode("latin-1")
    except OSError as e:
      raise DataError(f"cannot read file: {e.strerror}", path) from e
  else:
    text = tt.read_text(path)
  lines = text.split("\n")
  got = lines[0].rstrip("\r").split("\t") if lines else []
  if got[:len(header)] != list(header):
    raise DataError(f"expected header {' '.join(header)}, found "
                    f"{' '.join(got)!r}", path, 1)
  rows = []
  for i, line in enumerate(lines[1:], start=2):
    line = line.rstrip("\r")
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) < len(header):
      raise DataError(f"expected {len(header)} tab-separated fields, found "
                      f"{len(fields)}", path, i)
    rows.append((i, fields))
  return rows


def _id_map(path: str, header: Sequence[str], latin1: bool) -> dict:
  names = {}
  for line, fields in _read_dat(path, header, latin1):
    key, name = fields[0].strip(), fields[1].strip()
    if not name:
      raise DataError(f"blank {header[1]} for id {key}", path, line)
    if key in names:
      raise DataError(f"id {key} appears twice", path, line)
    names[key] = name
  return names


def load_hetrec_triples(data_dir: PathLike) -> TagTable:
  """One row per (user, artist, tag) assignment of HetRec 2011 Last.fm.

  Returns:
    TagTable with clip = artist = artist name, user = userID, tag = tag text,
    count = 1 (186,478 rows for the distributed files).
  Raises:
    DataError naming file and line for a bad header or row, an unknown tagID,
    or a duplicate (user, artist, tag).
  """
  data_dir = os.fspath(data_dir)
  tags = _id_map(os.path.join(data_dir, "tags.dat"), ("tagID", "tagValue"), True)
  artists = _id_map(os.path.join(data_dir, "artists.dat"), ("id", "name"), False)
  path = os.path.join(data_dir, "user_taggedartists.dat")
  clip, user, tag, seen = [], [], [], {}
  for line, fields in _read_dat(path, ("userID", "artistID", "tagID")):
    u, a, t = (f.strip() for f in fields[:3])
    if not (u and a and t):
      raise DataError("blank userID, artistID or tagID", path, line)
    if t not in tags:
      raise DataError(f"tagID {t} is not in tags.dat", path, line)
    if (u, a, t) in seen:
      raise DataError(f"duplicate (userID, artistID, tagID) = ({u}, {a}, {t}), "
                      f"first on line {seen[u, a, t]}", path, line)
    seen[u, a, t] = line
    clip.append(artists.get(a, f"artist {a}"))
    user.append(u)
    tag.append(tags[t])
  clip_arr = np.array(clip, dtype=str)
  return TagTable(clip=clip_arr, tag=np.array(tag, dtype=str),
                  count=np.ones(len(clip), dtype=np.int64),
                  user=np.array(user, dtype=str), artist=clip_arr.copy(),
                  source=data_dir)


def aggregate_artist_tags(table: TagTable):
  """Sums counts per (clip, tag).

  Returns:
    (artists [A] str sorted, tags [T] str sorted, counts [A, T] int64 dense).
    For the full HetRec table this is 12,523 x 9,749: select a subset first.
  """
  artists, a_idx = np.unique(table.clip, return_inverse=True)
  tags, t_idx = np.unique(table.tag, return_inverse=True)
  counts = np.zeros((artists.size, tags.size), dtype=np.int64)
  np.add.at(counts, (a_idx.reshape(-1), t_idx.reshape(-1)), table.count)
  return artists, tags, counts


def select_lastfm_subset(table: TagTable,
                         min_artists_per_tag: int = DEFAULT_MIN_ARTISTS_PER_TAG,
                         num_artists: int = DEFAULT_NUM_ARTISTS) -> TagTable:
  """The rows of the paper-style subset (Section 3.2).

  Keeps the tags applied to at least ``min_artists_per_tag`` distinct artists
  (clips), then the ``num_artists`` artists with the most applications
  (summed counts) of those tags (ties: alphabetical), and returns the rows
  with both a kept tag and a kept artist.
  """
  pairs = np.unique(np.stack([table.clip, table.tag]), axis=1)
  tag_names, artists_per_tag = np.unique(pairs[1], return_counts=True)
  kept_tags = tag_names[artists_per_tag >= min_artists_per_tag]
  in_tags = np.isin(table.tag, kept_tags)
  names, idx = np.unique(table.clip[in_tags], return_inverse=True)
  applications = np.bincount(idx.reshape(-1), weights=table.count[in_tags],
                             minlength=names.size)
  order = np.lexsort((names, -applications))
  kept_artists = names[order[:num_artists]]
  return table.subset(in_tags & np.isin(table.clip, kept_artists))


def simulate_lastfm_users(artist_names: Sequence[str], tag_names: Sequence[str],
                          counts: np.ndarray, num_observations: int,
                          seed: int) -> TagTable:
  """Simulated single-user taggings of artists (Section 3.2; SIMULATED data).

  Each artist's counts are normalised to sum to 1, multiplied by 5 and
  truncated at 1, giving independent Bernoulli tag probabilities; each
  observation picks an artist uniformly at random and draws its tags.
  Observation i gets the unique user id ``sim<i>`` (zero-padded, e.g.
  ``sim0000``); clip = artist = the artist's name. An observation that draws
  no tag has no rows.

  Args:
    artist_names: [A]; tag_names: [T]; counts: [A, T] non-negative.
    num_observations: how many simulated users (observations) to draw.
    seed: for ``np.random.default_rng``.
  Returns:
    TagTable (clip, user, tag, artist), count 1, source names the simulation.
  """
  counts = np.asarray(counts, dtype=np.float64)
  artist_names = np.asarray(artist_names, dtype=str)
  tag_names = np.asarray(tag_names, dtype=str)
  if counts.shape != (artist_names.size, tag_names.size):
    raise ValueError(f"counts has shape {counts.shape}, expected "
                     f"({artist_names.size}, {tag_names.size})")
  if np.any(counts < 0) or np.any(counts.sum(axis=1) <= 0):
    raise ValueError("counts must be non-negative with a positive sum per artist")
  probs = np.minimum(EXPECTED_TAGS_PER_OBSERVATION * counts /
                     counts.sum(axis=1, keepdims=True), 1.0)
  rng = np.random.default_rng(seed)
  artist = rng.integers(artist_names.size, size=num_observations)
  draws = rng.random((num_observations, tag_names.size)) < probs[artist]
  obs, tag = np.nonzero(draws)
  width = max(4, len(str(max(num_observations - 1, 0))))
  users = np.array([f"sim{i:0{width}d}" for i in range(num_observations)],
                   dtype=str)
  clip = artist_names[artist[obs]]
  return TagTable(clip=clip, tag=tag_names[tag],
                  count=np.ones(obs.size, dtype=np.int64),
                  user=users[obs] if obs.size else np.zeros(0, "<U1"),
                  artist=clip.copy(),
                  source=f"simulated Last.fm users (seed={seed}, "
                         f"{num_observations} observations)")


def load_embedded_hetrec() -> TagTable:
  """The committed HetRec subset (``select_lastfm_subset`` of all triples)."""
  return tt.load_embedded_table(EMBEDDED_SUBSET)
