"""Step 3 of tagging your own audio: tag probabilities for clips nobody has tagged (no
JAX). ``predict(autotagger, features)`` -> ``Predictions`` (a probability per clip and
tag); ``write_predictions`` writes a tag table (clip, tag, affinity, tag_key: the tag as
the training tags spelled it and its canonical key) with ``top_k`` / ``threshold``
filters, track summaries (mean over each file's clips) and optionally JAMS."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Union

import numpy as np

from crbm_jax.autotag import features as features_lib
from crbm_jax.autotag import store
from crbm_jax.autotag.errors import AutotagError, Log, check_output_file, stderr_log
from crbm_jax.autotag.featureset import FeatureSet, as_features, extract_features
from crbm_jax.autotag.training import AUTOTAGGER_DIR
from crbm_jax.data import tagtable
from crbm_jax.util.atomic import write_bytes_atomic

PREDICTION_COLUMNS = ("clip", "tag", "affinity", "tag_key")


@dataclasses.dataclass
class Predictions:
  """proba: [N, T] P(tag | clip) for clip_ids [N] (items, paths: [N]) and tags [T]."""
  clip_ids: np.ndarray
  items: np.ndarray
  paths: np.ndarray
  tags: list
  display: list
  proba: np.ndarray
  offsets: Optional[np.ndarray] = None  # [N] seconds (NaN unknown)
  durations: Optional[np.ndarray] = None


def load_autotagger(workdir_or_folder: str) -> store.Autotagger:
  """The autotagger of a crbm-autotag train workdir (or its autotagger/ folder)."""
  sub = os.path.join(workdir_or_folder, AUTOTAGGER_DIR)
  if not os.path.isdir(sub) and os.path.isdir(workdir_or_folder):  # no links: current
    from crbm_jax.util import model_io, runs  # pylint: disable=import-outside-toplevel
    try:
      sub = runs.current_output(workdir_or_folder, AUTOTAGGER_DIR) or sub
    except model_io.ModelFormatError as e:
      raise store.StoreError(str(e).replace("crbm-fit", "crbm-autotag train")) from None
  return store.load(sub if os.path.isdir(sub) else workdir_or_folder)


def check_compatible(at: store.Autotagger, fs: FeatureSet, where: str = "features"
                     ) -> None:
  """AutotagError unless fs has the features the autotagger was trained on."""
  if list(fs.feature_names) != list(at.feature_names):
    raise AutotagError(f"{where}: {len(fs.feature_names)} features "
                       f"({', '.join(fs.feature_names[:2])}, ...) but the autotagger was "
                       f"trained on {len(at.feature_names)} ({', '.join(at.feature_names[:2])}"
                       ", ...); extract them the same way")
  if at.feature_digest and fs.digest and at.feature_digest != fs.digest:
    raise AutotagError(f"{where}: made with feature settings {fs.digest}, but the "
                       f"autotagger was trained on {at.feature_digest}; re-extract with "
                       "the autotagger's settings (crbm-autotag predict --audio does)")


def predict(autotagger: Union[str, store.Autotagger], features: Union[str, FeatureSet]
            ) -> Predictions:
  """Step 3: the probability of every tag for every clip."""
  at = load_autotagger(autotagger) if isinstance(autotagger, str) else autotagger
  fs = as_features(features)
  check_compatible(at, fs, features if isinstance(features, str) else "features")
  return Predictions(fs.clip_ids, fs.items, fs.paths, list(at.tags), list(at.display),
                     at.predict_proba(fs.features), fs.offsets, fs.durations)


def predict_audio(autotagger: Union[str, store.Autotagger], audio, *,
                  num_workers: int = 2, cache_dir: Optional[str] = None,
                  progress: bool = True, log: Log = stderr_log) -> tuple[Predictions, FeatureSet]:
  """Extracts features of audio with the autotagger's feature settings, then predicts."""
  at = load_autotagger(autotagger) if isinstance(autotagger, str) else autotagger
  if not at.feature_config:
    raise AutotagError("this autotagger was trained on features made elsewhere (not by "
                       "crbm-features); give --features extracted the same way instead "
                       "of --audio")
  try:
    config = features_lib.FeatureConfig(**at.feature_config)
  except TypeError as e:
    raise AutotagError(f"the autotagger's feature settings are not understood ({e})") from e
  fs = extract_features(audio, None, config=config, num_workers=num_workers,
                        cache_dir=cache_dir, progress=progress, log=log)
  return predict(at, fs), fs


def track_summaries(pred: Predictions) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """(tracks [K], proba [K, T] mean over each track's clips, clips per track [K]); None
  when no track has more than one clip. A track is the audio file (or, for features
  without paths, the tag-table clip an evenly spaced clip was cut for)."""
  key = np.where(pred.paths != "", pred.paths, pred.items)
  tracks, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
  if counts.max(initial=0) < 2:
    return None
  sums = np.zeros((tracks.shape[0], pred.proba.shape[1]))
  np.add.at(sums, inv.ravel(), pred.proba)
  return tracks, sums / counts[:, None], counts


def _rows(names, proba, tags, top_k, threshold, display):
  """(name, tag as spelled, affinity text, tag key) rows, each name's by decreasing
  affinity, filtered by top_k and threshold."""
  rows = []
  for i, name in enumerate(names):
    order = np.argsort(-proba[i], kind="stable")
    if top_k:
      order = order[:top_k]
    for j in order.tolist():
      if threshold is not None and proba[i, j] < threshold:
        continue
      rows.append((name, display[j], f"{proba[i, j]:.6g}", tags[j]))
  return rows


def write_predictions(pred: Predictions, out: str, *, top_k: int = 0,
                      threshold: Optional[float] = None, tracks_out: Optional[str] = "",
                      jams_dir: Optional[str] = None, log: Log = stderr_log) -> dict:
  """Writes the clip tag table (clip, tag, affinity, tag_key; TSV, or CSV for .csv; rows
  of each clip by decreasing affinity; tag is the tag as the training tags spelled it
  (its most common spelling), tag_key the canonical key crbm-fit and crbm-smooth use),
  and the track summaries (track, tag, affinity, tag_key, clips) to tracks_out ('' =
  beside out as <name>.tracks.<ext>; None = not written).

  Args:
    top_k: keep each clip's (and track's) k most likely tags (0: all).
    threshold: keep only affinities >= threshold.
    jams_dir: also one JAMS file per audio file with a tag_open annotation per clip
      (needs crbm_jax.data.jams_io).
  Returns:
    {'clips': path, 'tracks': path or None, 'jams': [paths], 'rows': n}.
  """
  if top_k < 0:
    raise AutotagError("--top must be >= 0")
  if threshold is not None and not 0.0 <= threshold <= 1.0:
    raise AutotagError(f"--threshold must lie in [0, 1], got {threshold}")
  check_output_file(out, "--out", "a file name (.tsv or .csv)")
  if jams_dir and os.path.isdir(jams_dir) and os.listdir(jams_dir):  # before any output
    raise AutotagError(f"--jams {jams_dir} is a folder that already holds files; give a "
                       "new or empty folder (nothing in it is ever deleted)")
  rows = _rows(pred.clip_ids.tolist(), pred.proba, pred.tags, top_k, threshold,
               pred.display)
  write_bytes_atomic(out, tagtable.table_bytes(PREDICTION_COLUMNS, rows, out))
  result = {"clips": os.path.abspath(out), "tracks": None, "jams": [], "rows": len(rows)}
  summary = track_summaries(pred)
  if summary is not None and tracks_out is not None:
    if tracks_out == "":
      stem, ext = out, ""
      for e in (".gz", ".tsv", ".csv", ".tab", ".txt"):
        if stem.endswith(e):
          stem, ext = stem[:-len(e)], e + ext
      tracks_out = f"{stem}.tracks{ext or '.tsv'}"
    tracks, tp, counts = summary
    n_clips = dict(zip(tracks.tolist(), counts.tolist()))
    trows = [r + (str(n_clips[r[0]]),) for r in
             _rows(tracks.tolist(), tp, pred.tags, top_k, threshold, pred.display)]
    write_bytes_atomic(tracks_out, tagtable.table_bytes(
        ["track", "tag", "affinity", "tag_key", "clips"], trows, tracks_out))
    result["tracks"] = os.path.abspath(tracks_out)
  if jams_dir:
    result["jams"] = _write_jams(pred, jams_dir, top_k, threshold)
  log(f"crbm-autotag: wrote {len(rows)} (clip, tag) rows for {pred.proba.shape[0]} clips "
      f"x {len(pred.tags)} tags to {out}"
      + (f"; track summaries to {result['tracks']}" if result["tracks"] else "")
      + (f"; {len(result['jams'])} JAMS files to {jams_dir}" if result["jams"] else ""))
  return result


def jams_available() -> bool:
  import importlib.util  # pylint: disable=import-outside-toplevel
  return importlib.util.find_spec("crbm_jax.data.jams_io") is not None


def _write_jams(pred: Predictions, jams_dir: str, top_k: int, threshold) -> list:
  """One JAMS file per audio file (track), a tag_open annotation per clip at the clip's
  (start, duration), confidence = affinity, value = the tag's display form."""
  if not jams_available():
    raise AutotagError("JAMS output needs crbm_jax.data.jams_io, which this version "
                       "lacks; leave out --jams")
  from crbm_jax.data import jams_io  # pylint: disable=import-outside-toplevel
  n = pred.proba.shape[0]
  track = np.array([os.path.splitext(os.path.basename(p))[0] if p else item
                    for p, item in zip(pred.paths.tolist(), pred.items.tolist())], dtype=str)
  offsets = pred.offsets if pred.offsets is not None else np.full(n, np.nan)
  durations = pred.durations if pred.durations is not None else np.full(n, np.nan)
  row = {c: i for i, c in enumerate(pred.clip_ids.tolist())}
  tag_index = {t: j for j, t in enumerate(pred.tags)}
  rows = _rows(pred.clip_ids.tolist(), pred.proba, pred.tags, top_k, threshold,
               pred.display)
  if not rows:
    raise AutotagError("no (clip, tag) row passes --top/--threshold: no JAMS written")
  idx = np.array([row[r[0]] for r in rows])
  cols = np.array([tag_index[r[3]] for r in rows])
  table = tagtable.TagTable(
      clip=np.array([r[0] for r in rows], dtype=str),
      tag=np.array([r[3] for r in rows], dtype=str), count=np.ones(len(rows), np.int64),
      track=track[idx], start=np.asarray(offsets, np.float64)[idx],
      duration=np.asarray(durations, np.float64)[idx], source="crbm-autotag predict")
  return jams_io.write_jams(table, jams_dir, confidence=pred.proba[idx, cols],
                            confidence_name="affinity",
                            values=np.array([r[1] for r in rows], dtype=str),
                            corpus="crbm-autotag predict", force_hint=None)
