"""Step 1 of tagging your own audio: the features of every clip (``extract_features``)
and the compact .npz that holds them (``save_features``, ``load_features``). See
``crbm_jax.autotag.product`` for how clips are found and cut. No JAX."""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional, Sequence, Union

import numpy as np

from crbm_jax.autotag import features as features_lib
from crbm_jax.autotag.errors import AutotagError, Log, stderr_log
from crbm_jax.autotag.labels import extra_column, first_values
from crbm_jax.data import tagtable
from crbm_jax.util.atomic import write_npz_atomic

FEATURES_FORMAT = "crbm_jax.features/1"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                    ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64")


def feature_names(config: features_lib.FeatureConfig = features_lib.FeatureConfig()
                  ) -> list:
  """Names of the features of ``features_lib.clip_features`` (389 by default)."""
  n = config.n_mfcc
  names = [f"mfcc_mean[{i}]" for i in range(n)]
  names += [f"mfcc_cov[{i},{j}]" for i, j in zip(*np.triu_indices(n))]
  names += [f"rhythm_band{b}_lag{lag}" for b in range(config.rhythm_bands)
            for lag in range(1, config.rhythm_lags + 1)]
  return names


@dataclasses.dataclass
class FeatureSet:
  """Clip features and where each row came from.

  features: [N, F] float32, finite. feature_names: [F]. clip_ids: [N] row ids.
  items: [N] the tag-table clip whose tags the row carries (without a tag table: the
  file id). paths: [N] audio file ('' unknown). offsets, durations: [N] seconds (NaN
  unknown). skipped: [(what, reason)] for files and clips that gave no row.
  config: the FeatureConfig fields ({} for features made elsewhere); digest: its digest.
  """
  features: np.ndarray
  feature_names: list
  clip_ids: np.ndarray
  items: np.ndarray
  paths: np.ndarray
  offsets: np.ndarray
  durations: np.ndarray
  skipped: list = dataclasses.field(default_factory=list)
  config: dict = dataclasses.field(default_factory=dict)
  digest: str = ""

  @property
  def num_clips(self) -> int:
    return int(self.features.shape[0])

  def skip_counts(self) -> dict:
    """{reason kind: count} of the skipped entries."""
    return count_reasons(r for _, r in self.skipped)


def reason_kind(reason: str) -> str:
  """A short category of a skip reason (for counts)."""
  r = reason.lower()
  for key in ("file not found", "cannot decode", "cannot read", "empty audio", "silent",
              "nan or infinite", "too short", "after the end", "bad segment",
              "no audio file", "ambiguous", "no usable segment"):
    if key in r:
      return key
  return r.split("(")[0].strip()[:40]


def count_reasons(reasons) -> dict:
  out: dict = {}
  for r in reasons:
    k = reason_kind(r)
    out[k] = out.get(k, 0) + 1
  return dict(sorted(out.items()))


def check_clip_seconds(config: features_lib.FeatureConfig) -> None:
  """AutotagError (one line, before any work) when the evenly spaced clips are shorter
  than the feature settings can use (n_fft + 2 hops)."""
  need = features_lib.min_clip_samples(config)
  if not config.clip_seconds * config.sr >= need:
    raise AutotagError(f"--clip_seconds {config.clip_seconds:g} is too short: the "
                       f"features need clips of at least {need / config.sr:.3f} s ({need} "
                       f"samples at {config.sr} Hz: n_fft {config.n_fft} + 2 hops of "
                       f"{config.hop_length})")


def walk_audio(folder: str, log: Optional[Log] = None) -> list:
  """The audio files under ``folder``, each real folder walked once: a link to a folder
  is followed unless that folder was already walked (a link loop such as ``ln -s .
  loop``, or two links to one folder); what was left out is said in one line. Hidden
  files and folders (names starting with '.') are not searched."""
  paths, seen, skipped = [], set(), []
  for root, dirs, files in os.walk(folder, followlinks=True):
    real = os.path.realpath(root)
    if real in seen:  # reached again through a link
      skipped.append(root)
      dirs[:] = []
      continue
    seen.add(real)
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # as glob: no hidden
    keep = []
    for d in dirs:
      if os.path.realpath(os.path.join(root, d)) in seen:
        skipped.append(os.path.join(root, d))
      else:
        keep.append(d)
    dirs[:] = keep
    paths.extend(os.path.join(root, f) for f in files
                 if not f.startswith(".")
                 and os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS
                 and os.path.isfile(os.path.join(root, f)))
  if skipped and log is not None:
    log(f"crbm-features: skipped {len(skipped)} linked folder(s) already searched (a "
        f"link loop or a second link to one folder), e.g. {skipped[0]}")
  return paths


def find_audio(audio: Union[str, Sequence[str]], log: Optional[Log] = None
               ) -> tuple[list, Optional[str]]:
  """(sorted audio paths, base folder or None) from a folder, a list file or a file.

  A folder is searched recursively for files with an audio extension, each real folder
  once (``walk_audio``); a ``.txt`` or ``.lst`` file lists one path per line (relative
  to its folder; '#' starts a comment); a sequence is taken as the paths themselves.
  """
  if not isinstance(audio, (str, os.PathLike)):
    return [os.fspath(p) for p in audio], None
  audio = os.fspath(audio)
  if os.path.isdir(audio):
    paths = walk_audio(audio, log)
    if not paths:
      raise AutotagError(f"{audio}: no audio files (extensions "
                         f"{', '.join(AUDIO_EXTENSIONS)}) in this folder")
    return sorted(paths), audio
  if not os.path.exists(audio):
    raise AutotagError(f"{audio}: no such file or folder")
  if os.path.splitext(audio)[1].lower() in (".txt", ".lst"):
    base = os.path.dirname(os.path.abspath(audio))
    paths = []
    with open(audio, encoding="utf-8") as fh:
      for line in fh:
        line = line.split("#", 1)[0].strip()
        if line:
          paths.append(line if os.path.isabs(line) else os.path.join(base, line))
    if not paths:
      raise AutotagError(f"{audio}: the list names no audio file")
    return paths, None
  return [audio], os.path.dirname(audio)


def file_id(path: str, base: Optional[str]) -> str:
  if base is not None:
    rel = os.path.relpath(path, base)
    if not rel.startswith(".."):
      return os.path.splitext(rel)[0].replace(os.sep, "/")
  return os.path.splitext(os.path.basename(path))[0]


def extract_features(audio: Union[str, Sequence[str]], tags: Optional[str] = None, *,
                     config: features_lib.FeatureConfig = features_lib.FeatureConfig(),
                     num_workers: int = 2, cache_dir: Optional[str] = None,
                     min_clip_seconds: float = 1.0, progress: bool = True,
                     log: Log = stderr_log) -> FeatureSet:
  """Step 1 (module docstring): the features of every clip of the audio."""
  check_clip_seconds(config)
  paths, base = find_audio(audio, log)
  jobs = []  # (path, segments or None, [(item, clip id prefix or id)])
  skipped = []
  if tags is None:
    ids = [file_id(p, base) for p in paths]
    jobs = [(p, None, i) for p, i in zip(paths, ids)]
  else:
    table = tagtable.load_tag_table(tags)
    clips = np.unique(table.clip)
    path_col = extra_column(tags, "path")
    by_id, by_stem = {}, {}
    for p in paths:
      by_id.setdefault(file_id(p, base), []).append(p)
      by_stem.setdefault(os.path.splitext(os.path.basename(p))[0], []).append(p)
    track = first_values(table, "track", clips)
    start = first_values(table, "start", clips)
    duration = first_values(table, "duration", clips)
    tag_dir = base if base is not None else os.path.dirname(os.path.abspath(tags))
    segs: dict = {}
    for k, clip in enumerate(clips.tolist()):
      if path_col is not None and clip in path_col:
        p = path_col[clip]
        p = p if os.path.isabs(p) else os.path.join(tag_dir, p)
        found = [p]
      else:
        found = by_id.get(clip) or by_stem.get(clip) or (
            by_stem.get(str(track[k])) if track is not None else None) or []
      if len(found) != 1:
        skipped.append((clip, f"no audio file for clip {clip!r} (by path column, file "
                        "stem or track)" if not found else
                        f"ambiguous: {len(found)} audio files match clip {clip!r}"))
        continue
      s = float(start[k]) if start is not None else math.nan
      d = float(duration[k]) if duration is not None else math.nan
      if math.isnan(s) and math.isnan(d):
        jobs.append((found[0], None, clip))
      else:
        segs.setdefault(found[0], []).append(((s, d), clip))
    for p, entries in segs.items():
      jobs.append((p, [e[0] for e in entries], [e[1] for e in entries]))
  ext = features_lib.extract_features(
      [j[0] for j in jobs], config, num_workers=num_workers, cache_dir=cache_dir,
      progress=progress, segments=[j[1] for j in jobs], min_clip_seconds=min_clip_seconds,
      log=log)
  clip_ids, items = [], []
  for fi, si in zip(ext.file_index.tolist(), ext.segment_index.tolist()):
    _, segs_j, owner = jobs[fi]
    if segs_j is None:
      clip_ids.append(f"{owner}#{si}")
      items.append(owner)
    else:
      clip_ids.append(owner[si])
      items.append(owner[si])
  for p, reason in ext.skipped:
    skipped.append((p, reason))
  for p, k, reason in ext.skipped_segments:
    owner = next(j[2] for j in jobs if j[0] == p and j[1] is not None)
    skipped.append((owner[k], reason))
  if ext.cache.get("unwritten"):
    log(f"crbm-features: {ext.cache['unwritten']} cache entries could not be written "
        f"in {cache_dir} (e.g. an entry that is a folder); the features are complete")
  if ext.cache.get("invalid"):
    log(f"crbm-features: {ext.cache['invalid']} invalid cache entries were ignored and "
        "recomputed")
  fs = FeatureSet(
      features=ext.features, feature_names=feature_names(config),
      clip_ids=np.array(clip_ids, dtype=str), items=np.array(items, dtype=str),
      paths=np.array([jobs[i][0] for i in ext.file_index.tolist()], dtype=str),
      offsets=ext.starts, durations=ext.durations, skipped=skipped,
      config=dataclasses.asdict(config), digest=config.digest())
  if len(set(fs.clip_ids.tolist())) != fs.num_clips:
    raise AutotagError("two feature rows got the same clip id; give the files unique "
                       "names or use a tag table with unique clip ids")
  return fs


def save_features(path: str, fs: FeatureSet) -> None:
  """Writes the compact .npz (compressed; strings as unicode arrays; no pickle)."""
  if not path.endswith(".npz"):
    raise AutotagError(f"--out {path}: the features file must end in .npz")
  write_npz_atomic(
      path, compress=True, features=fs.features.astype(np.float32),
      feature_names=np.array(fs.feature_names, dtype=str), clip_ids=fs.clip_ids,
      items=fs.items, paths=fs.paths, offsets=np.asarray(fs.offsets, np.float64),
      durations=np.asarray(fs.durations, np.float64),
      skipped_what=np.array([s[0] for s in fs.skipped], dtype=str),
      skipped_reasons=np.array([s[1] for s in fs.skipped], dtype=str),
      config_json=np.array(json.dumps(fs.config, sort_keys=True)),
      digest=np.array(fs.digest), format=np.array(FEATURES_FORMAT))


def load_features(path: str) -> FeatureSet:
  """Reads a features .npz: ours, or any with ``features`` [N, F] and ``clip_ids`` [N]
  (e.g. the embedded MajorMiner features; ``feature_names`` optional)."""
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except FileNotFoundError as e:
    raise AutotagError(f"{path}: no such features file (crbm-features writes one)") from e
  except Exception as e:  # BadZipFile, object arrays, CRC errors, ...
    raise AutotagError(f"{path}: not a readable features .npz ({type(e).__name__}: "
                       f"{e})") from e
  for key in ("features", "clip_ids"):
    if key not in data:
      raise AutotagError(f"{path}: no {key!r} array (a features file holds 'features' "
                         "[clips, features] and 'clip_ids' [clips])")
  x = data["features"]
  if x.ndim != 2 or x.dtype.kind != "f":
    raise AutotagError(f"{path}: 'features' has shape {x.shape} and dtype {x.dtype}; "
                       "expected a float [clips, features] array")
  n, f = x.shape
  if not np.all(np.isfinite(x)):
    bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
    raise AutotagError(f"{path}: {bad.shape[0]} rows hold NaN or infinite features "
                       f"(first: row {bad[0]}); recompute them")
  def strings(key, default):
    v = data.get(key)
    if v is None:
      return np.array(default, dtype=str)
    if v.shape != (len(default),) or v.dtype.kind not in "U":
      raise AutotagError(f"{path}: {key!r} has shape {v.shape} and dtype {v.dtype}; "
                         f"expected {len(default)} strings")
    return v
  clip_ids = strings("clip_ids", [""] * n)
  if len(set(clip_ids.tolist())) != n:
    raise AutotagError(f"{path}: clip ids are not unique")
  names = strings("feature_names", [f"f{i}" for i in range(f)]).tolist()
  def floats(key):
    v = data.get(key)
    return np.full(n, np.nan) if v is None or v.shape != (n,) else v.astype(np.float64)
  config = {}
  if "config_json" in data:
    try:
      config = json.loads(str(data["config_json"]))
    except json.JSONDecodeError as e:
      raise AutotagError(f"{path}: 'config_json' is not JSON ({e})") from e
  skipped = []
  if "skipped_what" in data and "skipped_reasons" in data:
    skipped = list(zip(data["skipped_what"].astype(str).tolist(),
                       data["skipped_reasons"].astype(str).tolist()))
  return FeatureSet(features=x.astype(np.float32), feature_names=names,
                    clip_ids=clip_ids, items=strings("items", clip_ids.tolist()),
                    paths=strings("paths", [""] * n), offsets=floats("offsets"),
                    durations=floats("durations"), skipped=skipped, config=config,
                    digest=str(data.get("digest", "")))


def as_features(features: Union[str, FeatureSet]) -> FeatureSet:
  return load_features(features) if isinstance(features, (str, os.PathLike)) else features


