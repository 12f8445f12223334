"""Tag your own audio: clip features, per-tag autotaggers, tags for untagged audio (no JAX).

Three steps, each a function here and a command (``crbm-features``, ``crbm-autotag
train``, ``crbm-autotag predict``):

1. ``extract_features(audio, tags=None)`` -> ``FeatureSet`` (``save_features`` writes
   the compact .npz). Audio is a folder (searched recursively), a text file listing one
   audio path per line, or one file.
   * Without a tag table every file gives the paper's evenly spaced clips
     (``FeatureConfig.num_clips`` clips of ``clip_seconds``); clip ids are
     ``<file id>#<k>`` where the file id is its path relative to the folder without the
     extension (the file stem for files directly in it).
   * With a tag table each of its clips is found as follows (documented in docs/autotag.md):
     the table's ``path`` column when it has one (relative paths are resolved against
     the audio folder, else the table's folder); otherwise the audio file whose id (see
     above) or stem equals the clip id; otherwise the file whose stem equals the clip's
     ``track``. A clip with ``start``/``duration`` is that segment (cut at the end of
     the file when it runs past it); a clip without them gets the evenly spaced clips of
     its file, ids ``<clip>#<k>``, each carrying the clip's tags.
   * Files that cannot be decoded, are silent, empty or too short, and clips whose file
     is missing or whose segment lies outside the audio, are skipped and counted with
     their reason; no feature row is ever NaN.
2. ``train(features, tags, workdir, labels='raw'|'smoothed')``: one binary classifier
   per tag (the paper's linear nu-SVM with Platt probabilities, or logistic regression
   with ``model='linear'``), on balanced examples chosen by tag affinity as in Section 4
   (``svm.select_examples``); grouped cross-validation (album, else artist, else track,
   else audio file, else clip) with balanced accuracy, ROC-AUC and PR-AUC per tag and
   per clip, tested on the raw tags of the held-out folds; then the final classifiers
   on all clips, saved without pickle (``store``).
3. ``predict(autotagger, features)`` -> ``Predictions`` (a probability per clip and
   tag); ``write_predictions`` writes a tag table (clip, tag, affinity) with ``top_k``
   / ``threshold`` filters, and track summaries (mean over each file's clips).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import sys
import time
from typing import Callable, Optional, Sequence, Union

import numpy as np

from crbm_jax.autotag import features as features_lib
from crbm_jax.autotag import folds as folds_lib
from crbm_jax.autotag import store
from crbm_jax.autotag import svm
from crbm_jax.data.errors import DataError
from crbm_jax.data import tagtable
from crbm_jax.util.atomic import (save_figure_atomic, write_bytes_atomic, write_csv_atomic,
                                  write_json_atomic, write_npz_atomic, write_text_atomic)
from crbm_jax.util.progress import Progress
from crbm_jax.util.stats import mean_stderr

FEATURES_FORMAT = "crbm_jax.features/1"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                    ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64")
LABEL_KINDS = ("raw", "smoothed")
MODELS = ("nusvc", "linear")
AUTOTAGGER_DIR = "autotagger"


class AutotagError(ValueError):
  """A bad input or request, said in one line naming the file and what to do."""


Log = Callable[[str], None]


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ features

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


def find_audio(audio: Union[str, Sequence[str]]) -> tuple[list, Optional[str]]:
  """(sorted audio paths, base folder or None) from a folder, a list file or a file.

  A folder is searched recursively for files with an audio extension; a ``.txt`` or
  ``.lst`` file lists one path per line (relative to its folder; '#' starts a comment);
  a sequence is taken as the paths themselves.
  """
  if not isinstance(audio, (str, os.PathLike)):
    return [os.fspath(p) for p in audio], None
  audio = os.fspath(audio)
  if os.path.isdir(audio):
    paths = [p for p in glob.glob(os.path.join(audio, "**", "*"), recursive=True)
             if os.path.isfile(p) and os.path.splitext(p)[1].lower() in AUDIO_EXTENSIONS]
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


def _file_id(path: str, base: Optional[str]) -> str:
  if base is not None:
    rel = os.path.relpath(path, base)
    if not rel.startswith(".."):
      return os.path.splitext(rel)[0].replace(os.sep, "/")
  return os.path.splitext(os.path.basename(path))[0]


def _extra_column(path: str, name: str) -> Optional[dict]:
  """{clip: value} of a column load_tag_table ignores (e.g. 'path'); None if absent.
  Raises DataError when one clip is given two different values."""
  text = tagtable.read_text(path)
  rows = tagtable.split_rows(text, tagtable.is_tsv(path, text.split("\n", 1)[0]), path)
  names = [f.strip().lower() for f in rows[0][1]]
  names = [tagtable.COLUMN_ALIASES.get(n, n) for n in names]
  if name not in names:
    return None
  ci, vi = names.index("clip"), names.index(name)
  out: dict = {}
  for line, fields in rows[1:]:
    clip, value = fields[ci].strip(), fields[vi].strip()
    if value and out.get(clip, value) != value:
      raise DataError(f"clip {clip!r} has two different {name}s ({out[clip]!r} and "
                      f"{value!r})", path, line)
    if value:
      out[clip] = value
  return out


def _first_values(table, column: str, clips: np.ndarray) -> np.ndarray:
  """[C] value of a column for each clip (its first row); None when absent."""
  if not table.has(column):
    return None
  names, first = np.unique(table.clip, return_index=True)
  pos = np.searchsorted(names, clips)
  return np.asarray(getattr(table, column))[first][pos]


def extract_features(audio: Union[str, Sequence[str]], tags: Optional[str] = None, *,
                     config: features_lib.FeatureConfig = features_lib.FeatureConfig(),
                     num_workers: int = 2, cache_dir: Optional[str] = None,
                     min_clip_seconds: float = 1.0, progress: bool = True,
                     log: Log = _stderr) -> FeatureSet:
  """Step 1 (module docstring): the features of every clip of the audio."""
  paths, base = find_audio(audio)
  jobs = []  # (path, segments or None, [(item, clip id prefix or id)])
  skipped = []
  if tags is None:
    ids = [_file_id(p, base) for p in paths]
    jobs = [(p, None, i) for p, i in zip(paths, ids)]
  else:
    table = tagtable.load_tag_table(tags)
    clips = np.unique(table.clip)
    path_col = _extra_column(tags, "path")
    by_id, by_stem = {}, {}
    for p in paths:
      by_id.setdefault(_file_id(p, base), []).append(p)
      by_stem.setdefault(os.path.splitext(os.path.basename(p))[0], []).append(p)
    track = _first_values(table, "track", clips)
    start = _first_values(table, "start", clips)
    duration = _first_values(table, "duration", clips)
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
      progress=progress, segments=[j[1] for j in jobs], min_clip_seconds=min_clip_seconds)
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


def _as_features(features: Union[str, FeatureSet]) -> FeatureSet:
  return load_features(features) if isinstance(features, (str, os.PathLike)) else features


# -------------------------------------------------------------------------- labels

@dataclasses.dataclass
class Labels:
  """Tags of the tag table's clips. raw: [I, T] number of users (sum of counts) per
  (clip, tag); groups: [I] fold group (album:, artist:, track: or clip:)."""
  items: np.ndarray
  tags: list
  display: list
  raw: np.ndarray
  groups: np.ndarray
  group_kind: str


def load_labels(tags: str, canonicalize: bool = True) -> Labels:
  """Raw labels of a tag table (tags canonicalised as crbm-fit does by default)."""
  table = tagtable.load_tag_table(tags)
  if table.num_rows == 0:
    raise AutotagError(f"{tags}: the tag table has no rows")
  if canonicalize:
    from crbm_jax.data import canonical  # pylint: disable=import-outside-toplevel
    table, surface = canonical.canonicalize_table(table)
  else:
    surface = {t: t for t in np.unique(table.tag).tolist()}
  items, ii = np.unique(table.clip, return_inverse=True)
  vocab, ti = np.unique(table.tag, return_inverse=True)
  raw = np.zeros((items.shape[0], vocab.shape[0]), np.int64)
  np.add.at(raw, (ii.ravel(), ti.ravel()), table.count.astype(np.int64))
  groups = np.full(items.shape[0], "", dtype=object)
  kind = "clip"
  for column in ("album", "artist", "track"):  # first non-blank of album, artist, track
    vals = _first_values(table, column, items)
    if vals is None:
      continue
    kind = column if kind == "clip" else kind
    vals = vals.astype(str)
    fill = (groups == "") & (vals != "")
    groups[fill] = [f"{column}:{v}" for v in vals[fill].tolist()]
  groups = np.where(groups == "", np.char.add("clip:", items), groups.astype(str))
  return Labels(items=items, tags=vocab.tolist(), display=[surface.get(t, t) for t in
                                                            vocab.tolist()],
                raw=raw, groups=groups.astype(str), group_kind=kind)


def load_smoothed(path: str, labels: Labels) -> tuple[np.ndarray, list]:
  """Affinities [I, T'] of a crbm-smooth output (clip, [track], tag, affinity, display)
  for labels.items, and its tags T' (NaN where a clip is missing)."""
  text = tagtable.read_text(path)
  rows = tagtable.split_rows(text, tagtable.is_tsv(path, text.split("\n", 1)[0]), path)
  if not rows:
    raise AutotagError(f"{path}: empty file; expected crbm-smooth output")
  names = [f.strip().lower() for f in rows[0][1]]
  for col in ("clip", "tag", "affinity"):
    if col not in names:
      raise AutotagError(f"{path}: no {col!r} column; expected crbm-smooth output "
                         "(clip, [track], tag, affinity, display)")
  ci, ti, ai = names.index("clip"), names.index("tag"), names.index("affinity")
  tags_seen: dict = {}
  entries = []
  for line, fields in rows[1:]:
    if len(fields) != len(names):
      raise DataError(f"expected {len(names)} fields, found {len(fields)}", path, line)
    try:
      a = float(fields[ai])
    except ValueError:
      raise DataError(f"affinity {fields[ai]!r} is not a number", path, line) from None
    if not 0.0 <= a <= 1.0:
      raise DataError(f"affinity {fields[ai]!r} is not in [0, 1]", path, line)
    tag = fields[ti].strip()
    tags_seen.setdefault(tag, len(tags_seen))
    entries.append((fields[ci].strip(), tag, a))
  row = {c: i for i, c in enumerate(labels.items.tolist())}
  out = np.full((labels.items.shape[0], len(tags_seen)), np.nan)
  for clip, tag, a in entries:
    if clip in row:
      out[row[clip], tags_seen[tag]] = a
  if np.all(np.isnan(out)):
    raise AutotagError(f"{path}: none of its clips is in the tag table; was it made "
                       "from this tag table?")
  return out, list(tags_seen)


# ---------------------------------------------------------------------- training

def _fit_tag(x_pos: np.ndarray, x_neg: np.ndarray, model: str, nu: float, seed: int
             ) -> dict:
  """One tag's classifier on standardised features -> store arrays."""
  if model == "nusvc":
    return store.from_sklearn_tag(svm.fit_tag_svm(x_pos, x_neg, nu=nu, seed=seed))
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  x = np.concatenate([x_pos, x_neg]).astype(np.float64)
  y = np.r_[np.ones(x_pos.shape[0], int), np.zeros(x_neg.shape[0], int)]
  # liblinear: ~50x faster than lbfgs on these small, nearly separable problems
  # (measured 8 ms vs 0.47 s for 200 x 133); it also regularises the intercept.
  return store.from_sklearn_tag(LogisticRegression(
      C=1.0, solver="liblinear", random_state=seed).fit(x, y))


def _standardize(x: np.ndarray, mean=None, std=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  z, mean, std = features_lib.standardize(x, mean, std)
  return z.astype(np.float64), mean, std


def _proba(arrs: dict, z: np.ndarray) -> np.ndarray:
  f = z @ arrs["coef"] + arrs["intercept"]
  return 1.0 / (1.0 + np.exp(arrs["platt_a"] * f + arrs["platt_b"]))


def roc_pr_auc(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
  """(ROC-AUC, average precision) of scores s for bool labels y; NaN without both
  classes. Exact, as sklearn's roc_auc_score and average_precision_score (ties: ROC-AUC
  counts half, average precision steps at each distinct score), without their
  per-call overhead (tested against them)."""
  y = np.asarray(y, bool)
  s = np.asarray(s, np.float64)
  n_pos = int(y.sum())
  n_neg = y.shape[0] - n_pos
  if n_pos == 0 or n_neg == 0:
    return math.nan, math.nan
  import scipy.stats  # pylint: disable=import-outside-toplevel
  ranks = scipy.stats.rankdata(s)
  roc = (ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
  order = np.argsort(-s, kind="stable")
  s_sorted, y_sorted = s[order], y[order]
  last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), y.shape[0] - 1]  # end of ties
  tp = np.cumsum(y_sorted)[last]
  precision = tp / (last + 1.0)
  recall = tp / n_pos
  ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
  return float(roc), ap




def _mean_se(v) -> tuple[float, float, int]:
  """(mean, standard error, n) of the finite values (NaN, NaN, 0 when there are none)."""
  v = np.asarray(v, np.float64)
  v = v[np.isfinite(v)]
  if v.shape[0] == 0:
    return math.nan, math.nan, 0
  return (*mean_stderr(v), int(v.shape[0]))


@dataclasses.dataclass
class TrainResult:
  """What ``train`` wrote and measured. per_tag: one dict per tag; overall: summary
  metrics (mean ± standard error over tags, or over clips for the clip-wise ones)."""
  autotagger: store.Autotagger
  per_tag: list
  overall: dict
  paths: dict
  settings: dict


def train(features: Union[str, FeatureSet], tags: str, workdir: str, *,
          labels: str = "raw", smoothed: Optional[str] = None, model: str = "nusvc",
          num_folds: int = 5, seed: int = 0, max_per_class: int = 100,
          min_verified: int = 0, min_train_per_class: int = 5, nu: float = 0.5,
          top_tags: int = 0, canonicalize: bool = True, evaluate: bool = True,
          progress: bool = True, log: Log = _stderr,
          smoother: Optional[Callable[..., str]] = None) -> TrainResult:
  """Step 2 (module docstring). Writes into workdir: autotagger/ (the classifiers),
  per_tag.csv, per_tag.md, accuracy.png (tags sorted by balanced accuracy, 1-s.e. bars
  over folds), cv.json (every number and setting) and cv_predictions.npz (out-of-fold
  probabilities).

  Args:
    labels: 'raw' (number of users who gave the tag) or 'smoothed' (CRBM affinities
      from ``smoothed``, a crbm-smooth output, or from ``smoother(tags, workdir, seed,
      log) -> path``, e.g. ``crbm_jax.autotag_cli.smooth_with_crbm``, which trains the
      CRBM with crbm-fit's search; this package itself never imports JAX).
    model: 'nusvc' (the paper: linear nu-SVM, Platt probabilities) or 'linear'
      (logistic regression: one fit per tag instead of six).
    min_verified: raw labels: a clip is a positive example (and a positive in testing)
      when at least this many users gave the tag; 0 = 2 when some clip has a tag from
      >= 2 users, else 1. Negatives are clips nobody gave the tag.
    top_tags: keep the N most used tags (0: every tag with enough examples).
    num_folds: cross-validation folds; 0 (or evaluate=False) skips cross-validation
      (e.g. fewer fold groups than folds) and only fits the final classifiers.
  """
  if labels not in LABEL_KINDS:
    raise AutotagError(f"--labels must be one of {', '.join(LABEL_KINDS)}, got {labels!r}")
  if model not in MODELS:
    raise AutotagError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
  evaluate = evaluate and num_folds != 0
  if (evaluate and num_folds < 2) or max_per_class < 2 or min_train_per_class < 2 or top_tags < 0:
    raise AutotagError("--folds must be 0 (no cross-validation) or >= 2, --max_per_class "
                       "and --min_train_per_class >= 2 and --top_tags >= 0")
  if not 0.0 < nu <= 1.0:
    raise AutotagError(f"--nu must lie in (0, 1], got {nu}")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise AutotagError(f"--workdir {workdir} is a file; give a folder")
  os.makedirs(workdir, exist_ok=True)
  start_time = time.time()
  fs = _as_features(features)
  lab = load_labels(tags, canonicalize)
  item_row = {c: i for i, c in enumerate(lab.items.tolist())}
  row_item = np.array([item_row.get(c, -1) for c in fs.items.tolist()], np.int64)
  use = row_item >= 0
  if not use.any():
    raise AutotagError(f"none of the {fs.num_clips} feature rows belongs to a clip of "
                       f"{tags}; the features' clip ids ({fs.items[:3].tolist()} ...) must "
                       "be the tag table's clip ids")
  x_all = np.asarray(fs.features[use], np.float64)
  row_item = row_item[use]
  clip_ids = fs.clip_ids[use]
  raw = lab.raw[row_item]  # [N, V]
  if min_verified <= 0:
    min_verified = 2 if lab.raw.max() >= 2 else 1
  aff, aff_tags = None, lab.tags
  if labels == "smoothed":
    if smoothed is None:
      if smoother is None:
        raise AutotagError("labels='smoothed' needs smoothed= (a crbm-smooth output) or "
                           "smoother= (e.g. crbm_jax.autotag_cli.smooth_with_crbm, which "
                           "trains the CRBM)")
      smoothed = smoother(tags, workdir, seed, log)
    aff_items, aff_tags = load_smoothed(smoothed, lab)
    aff = aff_items[row_item]
  # Tags: in the label set, with enough verified positives and negatives overall.
  vocab_pos = {t: j for j, t in enumerate(lab.tags)}
  cand = [t for t in aff_tags if t in vocab_pos]
  usage = {t: int(lab.raw[:, vocab_pos[t]].sum()) for t in cand}
  cand.sort(key=lambda t: (-usage[t], t))
  enough = [t for t in cand
            if (raw[:, vocab_pos[t]] >= min_verified).sum() >= min_train_per_class
            and (raw[:, vocab_pos[t]] == 0).sum() >= min_train_per_class]
  dropped_tags = len(cand) - len(enough)
  chosen = enough[:top_tags] if top_tags else enough
  if not chosen:
    raise AutotagError(f"{tags}: no tag has >= {min_train_per_class} clips with features "
                       f"verified by >= {min_verified} users and as many without it; "
                       "tag more clips or lower --min_train_per_class")
  tcol = np.array([vocab_pos[t] for t in chosen])
  raw_t = raw[:, tcol]
  if aff is not None:
    apos = {t: j for j, t in enumerate(aff_tags)}
    aff_t = aff[:, [apos[t] for t in chosen]]
    missing = np.isnan(aff_t).any(axis=1)
  else:
    aff_t, missing = None, np.zeros(raw_t.shape[0], bool)
  # Fold groups: the item's album/artist/track, else its audio file, else the clip.
  groups = lab.groups[row_item]
  paths = fs.paths[use]
  clip_group = np.char.startswith(groups, "clip:")
  groups = np.where(clip_group & (paths != ""), np.char.add("file:", paths), groups)
  group_kind = lab.group_kind if lab.group_kind != "clip" else (
      "audio file" if np.any(paths != "") else "clip")
  t_count, n = len(chosen), x_all.shape[0]
  display = [lab.display[vocab_pos[t]] for t in chosen]
  settings = dict(labels=labels, smoothed=None if smoothed is None else
                  os.path.abspath(smoothed), model=model, num_folds=num_folds, seed=seed,
                  max_per_class=max_per_class, min_verified=min_verified,
                  min_train_per_class=min_train_per_class, nu=nu, top_tags=top_tags,
                  canonicalize=canonicalize, fold_groups=group_kind,
                  num_clips=int(n), num_features=int(x_all.shape[1]),
                  num_tagged_clips_without_features=int(lab.items.shape[0] -
                                                        np.unique(row_item).shape[0]),
                  num_feature_rows_without_tags=int((~use).sum()),
                  num_tags=t_count, tags_with_too_few_examples=dropped_tags,
                  test_labels="raw")

  def select(j, mask, rng):
    if labels == "smoothed":
      return svm.select_examples(aff_t[:, j], mask & ~missing, "smoothed", max_per_class,
                                 min_verified, rng)
    return svm.select_examples(raw_t[:, j], mask, "raw", max_per_class, min_verified, rng)

  per_fold = np.full((t_count, num_folds, 3), np.nan)  # bal acc, roc, pr
  oof = np.full((n, t_count), np.nan)
  skipped = {"train": 0, "test": 0}
  fold_ids = None
  if evaluate:
    num_groups = np.unique(groups).shape[0]
    if num_groups < num_folds:
      raise AutotagError(f"{num_groups} fold groups ({group_kind}) cannot fill "
                         f"{num_folds} folds; lower --folds or add clips")
    fold_ids = folds_lib.grouped_folds(groups, num_folds, seed)
    bar = Progress(num_folds * t_count, "cross-validation", "(fold, tag)",
                   stream=sys.stderr if progress else None)
    for f in range(num_folds):
      train_mask, test_mask = fold_ids != f, fold_ids == f
      z, mean, std = _standardize(x_all[train_mask])
      zt, _, _ = _standardize(x_all[test_mask], mean, std)
      full = np.empty_like(x_all)
      full[train_mask] = z
      for j in range(t_count):
        rng = np.random.default_rng([seed, f, j, 0])
        pos, neg = select(j, train_mask, rng)
        if pos.shape[0] < min_train_per_class:
          skipped["train"] += 1
          bar.update(1)
          continue
        arrs = _fit_tag(full[pos], full[neg], model, nu, seed)
        p = _proba(arrs, zt)
        oof[test_mask, j] = p
        y = raw_t[test_mask, j]
        keep = (y >= min_verified) | (y == 0)
        truth = y[keep] >= min_verified
        if truth.all() or not truth.any():
          skipped["test"] += 1
        else:
          ba = svm.balanced_accuracy(truth, p[keep] >= 0.5)
          roc, pr = roc_pr_auc(truth, p[keep])
          per_fold[j, f] = (ba, roc, pr)
        bar.update(1)
    bar.close()
  # Final classifiers on every clip.
  z, mean, std = _standardize(x_all)
  per_tag_arrays, final_counts = [], []
  for j in range(t_count):
    pos, neg = select(j, np.ones(n, bool), np.random.default_rng([seed, num_folds, j, 0]))
    if pos.shape[0] < 2:
      raise AutotagError(f"tag {chosen[j]!r}: too few examples for a classifier")
    per_tag_arrays.append(_fit_tag(z[pos], z[neg], model, nu, seed))
    final_counts.append(int(pos.shape[0]))
  at = store.assemble(chosen, display, fs.feature_names, "nusvc" if model == "nusvc"
                      else "logistic", mean, std, per_tag_arrays,
                      feature_config=fs.config or None, feature_digest=fs.digest,
                      settings=settings)
  paths_out = {"autotagger": store.save(at, os.path.join(workdir, AUTOTAGGER_DIR))}
  per_tag, overall = _summarise(chosen, display, raw_t, min_verified, per_fold, oof,
                                final_counts, usage, evaluate)
  overall["skipped_selections"] = skipped
  overall["seconds"] = round(time.time() - start_time, 2)
  if evaluate:
    paths_out.update(_write_reports(workdir, per_tag, overall, settings, oof, clip_ids,
                                    fold_ids, chosen))
  log(f"crbm-autotag: {t_count} tags, {n} clips, {model} on {labels} labels; "
      + (f"cross-validated balanced accuracy {_fmt(overall['balanced_accuracy'])}, "
         f"ROC-AUC tag-wise {_fmt(overall['roc_auc_tagwise'])}, clip-wise "
         f"{_fmt(overall['roc_auc_clipwise'])}" if evaluate else "no evaluation"))
  log(f"crbm-autotag: wrote {', '.join(sorted(paths_out.values()))}")
  return TrainResult(at, per_tag, overall, paths_out, settings)


def _fmt(ms) -> str:
  m, s = ms[0], ms[1]
  if m is None or not math.isfinite(m):
    return "n/a"
  return f"{m:.3f}" + (f" ± {s:.3f}" if s is not None and math.isfinite(s) else "")


def _summarise(tags, display, raw_t, min_verified, per_fold, oof, final_counts, usage,
               evaluate):
  per_tag = []
  for j, t in enumerate(tags):
    row = {"tag": t, "display": display[j], "usage": usage[t],
           "positives": int((raw_t[:, j] >= min_verified).sum()),
           "train_examples_per_class": final_counts[j]}
    if evaluate:
      for k, name in enumerate(("balanced_accuracy", "roc_auc", "pr_auc")):
        m, s, nf = _mean_se(per_fold[j, :, k])
        row[name], row[name + "_se"] = m, s
      row["folds_scored"] = nf
      y = raw_t[:, j]
      ok = np.isfinite(oof[:, j]) & ((y >= min_verified) | (y == 0))
      row["roc_auc_pooled"], row["pr_auc_pooled"] = roc_pr_auc(y[ok] >= min_verified,
                                                         oof[ok, j])
    per_tag.append(row)
  overall: dict = {}
  if evaluate:
    for name in ("balanced_accuracy", "roc_auc", "pr_auc"):
      m, s, k = _mean_se([r[name] for r in per_tag])
      overall[name if name == "balanced_accuracy" else name + "_tagwise"] = (m, s, k)
    # Clip-wise: rank the tags of each clip (out-of-fold), positives its verified tags.
    rocs, prs = [], []
    for i in range(oof.shape[0]):
      y = raw_t[i]
      ok = np.isfinite(oof[i]) & ((y >= min_verified) | (y == 0))
      if ok.sum() == oof.shape[1]:
        r, p = roc_pr_auc(y[ok] >= min_verified, oof[i, ok])
        rocs.append(r)
        prs.append(p)
    overall["roc_auc_clipwise"] = _mean_se(rocs)
    overall["pr_auc_clipwise"] = _mean_se(prs)
  return per_tag, overall


def _write_reports(workdir, per_tag, overall, settings, oof, clip_ids, fold_ids, tags):
  paths = {k: os.path.join(workdir, v) for k, v in (
      ("per_tag_csv", "per_tag.csv"), ("per_tag_md", "per_tag.md"),
      ("figure", "accuracy.png"), ("cv_json", "cv.json"),
      ("cv_predictions", "cv_predictions.npz"))}
  cols = ["tag", "display", "usage", "positives", "train_examples_per_class",
          "balanced_accuracy", "balanced_accuracy_se", "roc_auc", "roc_auc_se", "pr_auc",
          "pr_auc_se", "roc_auc_pooled", "pr_auc_pooled", "folds_scored"]
  def cell(v):
    return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else (
        "" if isinstance(v, float) else str(v))
  order = sorted(range(len(per_tag)), key=lambda j: -np.nan_to_num(
      per_tag[j]["balanced_accuracy"], nan=-1.0))
  write_csv_atomic(paths["per_tag_csv"], cols,
                   [[cell(per_tag[j][c]) for c in cols] for j in order])
  lines = [f"# Autotaggers: {settings['model']} on {settings['labels']} labels", "",
           f"{settings['num_tags']} tags, {settings['num_clips']} clips, "
           f"{settings['num_folds']} folds grouped by {settings['fold_groups']}; tested on "
           f"the raw tags of the held-out folds (positive: >= {settings['min_verified']} "
           "users, negative: none). Mean ± standard error over tags (clip-wise: over "
           "clips).", "", "| metric | value | n |", "|---|---|---|"]
  for k, v in overall.items():
    if isinstance(v, tuple):
      lines.append(f"| {k} | {_fmt(v)} | {v[2]} |")
  lines += ["", "| tag | positives | balanced accuracy | ROC-AUC | PR-AUC | folds |",
            "|---|---|---|---|---|---|"]
  for j in order:
    r = per_tag[j]
    lines.append(f"| {r['display']} | {r['positives']} | "
                 f"{_fmt((r['balanced_accuracy'], r['balanced_accuracy_se']))} | "
                 f"{_fmt((r['roc_auc'], r['roc_auc_se']))} | "
                 f"{_fmt((r['pr_auc'], r['pr_auc_se']))} | {r['folds_scored']} |")
  write_text_atomic(paths["per_tag_md"], "\n".join(lines) + "\n")
  _plot(per_tag, order, paths["figure"], settings)
  clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v
  write_json_atomic(paths["cv_json"], {
      "overall": {k: [clean(x) for x in v] if isinstance(v, tuple) else v
                  for k, v in overall.items()},
      "per_tag": [{k: clean(v) for k, v in r.items()} for r in per_tag],
      "settings": settings}, indent=1, sort_keys=False, ensure_ascii=False,
                    allow_nan=False)
  write_npz_atomic(paths["cv_predictions"], compress=True, clip_ids=clip_ids,
                   tags=np.array(tags, dtype=str), probability=oof, fold_ids=fold_ids)
  return paths


def _plot(per_tag, order, path, settings):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  n = len(order)
  acc = np.array([per_tag[j]["balanced_accuracy"] for j in order])
  se = np.nan_to_num(np.array([per_tag[j]["balanced_accuracy_se"] for j in order]))
  fig, ax = plt.subplots(figsize=(6, max(3, 0.22 * n + 1.2)))
  ax.errorbar(acc, np.arange(n), xerr=se, fmt="o", ms=4, capsize=2)
  ax.axvline(0.5, color="grey", lw=0.8, ls="--")
  ax.set_yticks(np.arange(n), [per_tag[j]["display"] for j in order], fontsize=7)
  ax.invert_yaxis()
  ax.set_xlabel("balanced accuracy on held-out raw tags (± 1 s.e. over folds)")
  ax.set_title(f"{settings['model']} on {settings['labels']} labels, "
               f"{settings['num_folds']} folds by {settings['fold_groups']}", fontsize=9)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=120)
  plt.close(fig)


# --------------------------------------------------------------------- prediction

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
  fs = _as_features(features)
  check_compatible(at, fs, features if isinstance(features, str) else "features")
  return Predictions(fs.clip_ids, fs.items, fs.paths, list(at.tags), list(at.display),
                     at.predict_proba(fs.features), fs.offsets, fs.durations)


def predict_audio(autotagger: Union[str, store.Autotagger], audio, *,
                  num_workers: int = 2, cache_dir: Optional[str] = None,
                  progress: bool = True, log: Log = _stderr) -> tuple[Predictions, FeatureSet]:
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
  rows = []
  for i, name in enumerate(names):
    order = np.argsort(-proba[i], kind="stable")
    if top_k:
      order = order[:top_k]
    for j in order.tolist():
      if threshold is not None and proba[i, j] < threshold:
        continue
      rows.append((name, tags[j], f"{proba[i, j]:.6g}", display[j]))
  return rows


def write_predictions(pred: Predictions, out: str, *, top_k: int = 0,
                      threshold: Optional[float] = None, tracks_out: Optional[str] = "",
                      jams_dir: Optional[str] = None, log: Log = _stderr) -> dict:
  """Writes the clip tag table (clip, tag, affinity, display; TSV, or CSV for .csv; rows
  of each clip by decreasing affinity; tag is the canonical tag as crbm-smooth writes it,
  display its most common spelling), and the track summaries (track, tag, affinity,
  display, clips) to
  tracks_out ('' = beside out as <name>.tracks.<ext>; None = not written).

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
  out_dir = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(out_dir):
    raise AutotagError(f"--out {out}: folder {out_dir} does not exist; create it first")
  if os.path.isdir(out):
    raise AutotagError(f"--out {out} is a folder; give a file name (.tsv or .csv)")
  rows = _rows(pred.clip_ids.tolist(), pred.proba, pred.tags, top_k, threshold,
               pred.display)
  write_bytes_atomic(out, tagtable.table_bytes(["clip", "tag", "affinity", "display"], rows,
                                           out))
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
        ["track", "tag", "affinity", "display", "clips"], trows, tracks_out))
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
  cols = np.array([tag_index[r[1]] for r in rows])
  table = tagtable.TagTable(
      clip=np.array([r[0] for r in rows], dtype=str),
      tag=np.array([r[1] for r in rows], dtype=str), count=np.ones(len(rows), np.int64),
      track=track[idx], start=np.asarray(offsets, np.float64)[idx],
      duration=np.asarray(durations, np.float64)[idx], source="crbm-autotag predict")
  return jams_io.write_jams(table, jams_dir, confidence=pred.proba[idx, cols],
                            confidence_name="affinity",
                            values=np.array([r[3] for r in rows], dtype=str),
                            corpus="crbm-autotag predict")
