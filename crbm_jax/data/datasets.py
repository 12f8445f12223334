"""Named data sets, loaded into one bundle type.

Names:
  simulated         the simulated Mechanical Turk study (crbm_jax.data.simulate)
                    -> the paper's spam filters -> canonical tags -> TagTable with
                    user/track/clip/start/track_duration; carries the study's
                    truth and features and the filter summary. SIMULATED.
  majorminer        the embedded MajorMiner clips (clip, tag, number of players)
                    with their Essentia features. Real.
  hetrec            the embedded HetRec 2011 Last.fm subset: real (user, artist,
                    tag) triples, clip = artist.
  lastfm-simulated  the paper's simulated single-user taggings (Sec. 3.2) of the
                    embedded HetRec subset's artist x tag counts. SIMULATED.
  <directory>       a Mechanical Turk study folder: batch.csv (batch results),
                    optional clips.csv, truth.tsv, features.npz (as write_study
                    writes them); filtered and canonicalised like 'simulated'.
  <file>            a tag-table file (crbm_jax.data.tagtable.load_tag_table).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import numpy as np

from crbm_jax.data import observations as obs_lib
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

NAMES = ("simulated", "majorminer", "hetrec", "lastfm-simulated")
DEFAULT_LASTFM_OBSERVATIONS = 10_000


@dataclasses.dataclass(frozen=True)
class DatasetBundle:
  """A tag table and what comes with it.

  Attributes:
    name: data-set name or path.
    table: the TagTable (canonical tags where the loader canonicalised).
    surface: {tag: surface form} for display.
    features: [C, F] float32 audio features or None; row i is feature_clips[i].
    feature_clips: [C] str or None.
    truth: [C, T] bool true tags (simulated study) or None; rows follow
      feature_clips, columns extra["truth_tags"].
    extra: anything else (e.g. "study", "filter_summary", "feature_names").
    simulated: True when the tags are simulated, not given by people.
    description: one line for logs and reports.
    aux_groups: the auxiliary groups the paper conditions on for this data
      (default of to_observations); None = every group the table has.
  """
  name: str
  table: TagTable
  surface: dict
  features: Optional[np.ndarray] = None
  feature_clips: Optional[np.ndarray] = None
  truth: Optional[np.ndarray] = None
  extra: dict = dataclasses.field(default_factory=dict)
  simulated: bool = False
  description: str = ""
  aux_groups: Optional[tuple] = None

  def to_observations(self, aux_groups: Optional[Sequence[str]] = None,
                      min_users: int = 1, top_n: Optional[int] = None):
    """Observations over the tags used by >= min_users users (top_n most used).

    aux_groups None: self.aux_groups, else every one of user/track/clip/artist/
    album the table has.
    """
    if aux_groups is None:
      aux_groups = self.aux_groups
    vocab = obs_lib.select_vocabulary(self.table, min_users=min_users, top_n=top_n)
    return obs_lib.build_observations(self.table, aux_groups=aux_groups,
                                      vocab=vocab, display=self.surface)


def _identity_surface(table: TagTable) -> dict:
  return {t: t for t in np.unique(table.tag).tolist()}


def _filtered_study(hits, clips: Optional[dict], filter_config=None):
  """Spam filters, then canonical (clip, user, tag) rows of the accepted HITs."""
  from crbm_jax.data import filters, mturk  # pylint: disable=import-outside-toplevel
  dictionary = filters.load_dictionary()
  config = filter_config if filter_config is not None else filters.FilterConfig()
  result = filters.filter_hits(hits, dictionary, config)
  table, surface = mturk.hits_to_tag_table(hits, result.accepted, clips=clips,
                                           canonicalize=True)
  return table, surface, result


def _load_simulated(seed: int, data_dir: Optional[str], filter_config=None,
                    **sim_kw) -> DatasetBundle:
  from crbm_jax.data import mturk, simulate  # pylint: disable=import-outside-toplevel
  config = simulate.SimulationConfig(seed=seed, **sim_kw)
  study = simulate.simulate_study(config)
  extra = {}
  if data_dir is not None:
    extra["files"] = simulate.write_study(study, data_dir)
  clips = {c: mturk.ClipInfo(t, s, d, td) for c, t, s, d, td in zip(
      study.clip.tolist(), study.track.tolist(), study.start.tolist(),
      study.duration.tolist(), study.track_duration.tolist())}
  table, surface, result = _filtered_study(study.to_hits(), clips, filter_config)
  table = dataclasses.replace(table, source=f"simulated study (seed={seed})")
  extra.update(study=study, filter_result=result, filter_summary=result.summary(),
               truth_tags=study.tag_names, truth_surface=study.surface)
  s = extra["filter_summary"]
  return DatasetBundle(
      name="simulated", table=table, surface=surface, features=study.features,
      feature_clips=study.clip, truth=study.truth, extra=extra, simulated=True,
      aux_groups=("user", "track", "clip"),
      description=(f"SIMULATED Mechanical Turk study (seed={seed}): "
                   f"{s['hits_accepted']}/{s['hits_total']} HITs accepted, "
                   f"{s['workers_accepted']} workers, {s['unique_tags']} tags"))


def _load_majorminer(data_dir: Optional[str]) -> DatasetBundle:
  from crbm_jax.data import majorminer  # pylint: disable=import-outside-toplevel
  if data_dir is None:
    table, features, names, clip_ids = majorminer.load_embedded_majorminer()
    where = "embedded"
  else:
    table = majorminer.load_majorminer_tags(
        os.path.join(data_dir, "clip_tags_with_song.tsv"))
    clip_ids = np.unique(table.clip)
    features, names, _ = majorminer.load_essentia_features(
        os.path.join(data_dir, "essentia_features"), clip_ids)
    where = data_dir
  return DatasetBundle(
      name="majorminer", table=table, surface=_identity_surface(table),
      features=np.asarray(features, np.float32), feature_clips=np.asarray(clip_ids, str),
      extra={"feature_names": list(names)}, simulated=False,
      aux_groups=("track", "clip"),
      description=(f"MajorMiner ({where}): {len(np.unique(table.clip))} clips, "
                   f"{len(np.unique(table.tag))} tags, real (clip, tag, players)"))


def _hetrec_table(data_dir: Optional[str]) -> TagTable:
  from crbm_jax.data import hetrec  # pylint: disable=import-outside-toplevel
  if data_dir is None:
    return hetrec.load_embedded_hetrec()
  return hetrec.select_lastfm_subset(hetrec.load_hetrec_triples(data_dir))


def _load_hetrec(data_dir: Optional[str]) -> DatasetBundle:
  table = _hetrec_table(data_dir)
  return DatasetBundle(
      name="hetrec", table=table, surface=_identity_surface(table), simulated=False,
      aux_groups=("user", "clip"),
      description=(f"HetRec 2011 Last.fm subset: {table.num_rows} real (user, artist, "
                   f"tag) triples, {len(np.unique(table.clip))} artists, "
                   f"{len(np.unique(table.tag))} tags"))


def _load_lastfm_simulated(seed: int, data_dir: Optional[str],
                           num_observations: int = DEFAULT_LASTFM_OBSERVATIONS
                           ) -> DatasetBundle:
  from crbm_jax.data import hetrec  # pylint: disable=import-outside-toplevel
  artists, tags, counts = hetrec.aggregate_artist_tags(_hetrec_table(data_dir))
  table = hetrec.simulate_lastfm_users(artists, tags, counts, num_observations, seed)
  return DatasetBundle(
      name="lastfm-simulated", table=table, surface=_identity_surface(table),
      extra={"artists": artists, "tags": tags, "counts": counts}, simulated=True,
      aux_groups=("clip",),
      description=(f"SIMULATED single-user taggings (paper Sec. 3.2, seed={seed}) of "
                   f"{len(artists)} HetRec artists x {len(tags)} tags, "
                   f"{num_observations} observations"))


def _load_study_dir(path: str, filter_config=None) -> DatasetBundle:
  from crbm_jax.data import mturk  # pylint: disable=import-outside-toplevel
  batch = os.path.join(path, "batch.csv")
  if not os.path.exists(batch):
    raise DataError("a study folder needs batch.csv (Mechanical Turk batch results)",
                    path)
  hits = mturk.load_mturk_batch(batch)
  clips_path = os.path.join(path, "clips.csv")
  clips = mturk.load_clip_metadata(clips_path) if os.path.exists(clips_path) else None
  table, surface, result = _filtered_study(hits, clips, filter_config)
  extra = {"filter_result": result, "filter_summary": result.summary()}
  features = feature_clips = truth = None
  feat_path = os.path.join(path, "features.npz")
  if os.path.exists(feat_path):
    with np.load(feat_path, allow_pickle=False) as f:
      features, feature_clips = f["features"].astype(np.float32), f["clip"].astype(str)
  truth_path = os.path.join(path, "truth.tsv")
  if os.path.exists(truth_path) and feature_clips is not None:
    from crbm_jax.data.tagtable import load_tag_table  # pylint: disable=import-outside-toplevel
    t = load_tag_table(truth_path)
    tags, col = np.unique(t.tag, return_inverse=True)
    row_of = {c: i for i, c in enumerate(feature_clips.tolist())}
    truth = np.zeros((len(feature_clips), len(tags)), bool)
    rows = np.array([row_of.get(c, -1) for c in t.clip.tolist()])
    if (rows < 0).any():
      raise DataError("truth.tsv names a clip missing from features.npz", truth_path)
    truth[rows, col.ravel()] = True
    extra["truth_tags"] = tags
  s = extra["filter_summary"]
  return DatasetBundle(
      name=path, table=table, surface=surface, features=features,
      feature_clips=feature_clips, truth=truth, extra=extra, simulated=False,
      description=(f"Mechanical Turk study {path}: {s['hits_accepted']}/"
                   f"{s['hits_total']} HITs accepted"))


def load_dataset(name_or_path: str, *, seed: int = 0, data_dir: Optional[str] = None,
                 **kw) -> DatasetBundle:
  """Loads a named data set or a file / study folder (see the module docstring).

  Args:
    name_or_path: one of NAMES, a study folder or a tag-table file.
    seed: simulation seed ('simulated', 'lastfm-simulated').
    data_dir: 'simulated': also write the study files there; 'majorminer' /
      'hetrec' / 'lastfm-simulated': read the full originals from there instead
      of the embedded subsets.
    **kw: 'simulated': SimulationConfig fields and filter_config;
      'lastfm-simulated': num_observations; folders: filter_config.
  """
  name = name_or_path
  if name == "simulated":
    return _load_simulated(seed, data_dir, **kw)
  if kw and name not in ("lastfm-simulated",) and not os.path.isdir(name):
    raise TypeError(f"load_dataset({name!r}) takes no options {sorted(kw)}")
  if name == "majorminer":
    return _load_majorminer(data_dir)
  if name == "hetrec":
    return _load_hetrec(data_dir)
  if name == "lastfm-simulated":
    return _load_lastfm_simulated(seed, data_dir, **kw)
  if os.path.isdir(name):
    return _load_study_dir(name, **kw)
  if os.path.isfile(name):
    from crbm_jax.data.tagtable import load_tag_table  # pylint: disable=import-outside-toplevel
    table = load_tag_table(name)
    return DatasetBundle(name=name, table=table, surface=_identity_surface(table),
                         description=f"tag table {name}: {table.num_rows} rows")
  raise DataError(f"unknown data set {name!r}: not one of {list(NAMES)} and no such "
                  "file or folder")
