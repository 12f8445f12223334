"""``crbm-autotag train --model crbm`` and ``crbm-autotag predict [--given FILE]`` for the
CRBM autotagger (JAX; imported only for these).

The saved autotagger has the product's format: a folder ``<workdir>/autotagger`` with
``autotagger.npz`` (arrays, read with ``allow_pickle=False``) and ``autotagger.json``
(format ``crbm_jax.autotagger``, kind ``crbm``, tags, feature names and settings, the
model settings, and the SHA-256 of the npz), written as a unit; the run folder holds the
same per_tag.csv / per_tag.md / accuracy.png / cv.json / cv_predictions.npz as the
per-tag classifiers'.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
import zipfile
from typing import Optional, Union

import numpy as np

from crbm_jax.autotag import folds as folds_lib
from crbm_jax.autotag import report
from crbm_jax.autotag import store
from crbm_jax.autotag import training
from crbm_jax.autotag.errors import AutotagError, Log, stderr_log
from crbm_jax.autotag.featureset import FeatureSet, as_features
from crbm_jax.autotag.prediction import Predictions, check_compatible
from crbm_jax.tagger.scoring import score_folds
from crbm_jax.util.atomic import (npz_bytes, replace_folder_atomic, write_bytes_atomic,
                                  write_json_atomic)

KIND = "crbm"
ARRAYS = ("mean", "std", "thresholds", "W", "b", "c", "W_x", "U_x")


@dataclasses.dataclass
class CRBMAutotagger:
  """A trained CRBM autotagger: tags [T], feature_names [F], the standardisation
  (mean, std [F]), the model arrays (W [T, H], b [T], c [H], W_x [F, T], U_x [F, H or
  0]; the user rows are not kept: users are factored out), the balanced-accuracy
  thresholds [T] and the settings."""
  tags: list
  display: list
  feature_names: list
  mean: np.ndarray
  std: np.ndarray
  thresholds: np.ndarray
  W: np.ndarray
  b: np.ndarray
  c: np.ndarray
  W_x: np.ndarray
  U_x: np.ndarray
  config: dict
  feature_config: Optional[dict] = None
  feature_digest: str = ""
  settings: dict = dataclasses.field(default_factory=dict)
  kind: str = KIND

  def tagger_config(self):
    from crbm_jax.tagger import core  # pylint: disable=import-outside-toplevel
    return core.TaggerConfig(**self.config)

  def params(self):
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    from crbm_jax.model.conditioned import AudioCRBMParams  # pylint: disable=import-outside-toplevel
    from crbm_jax.model.crbm import CRBMParams  # pylint: disable=import-outside-toplevel
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    crbm = CRBMParams(f32(self.W), jnp.zeros((0, len(self.tags)), jnp.float32),
                      f32(self.b), f32(self.c))
    return AudioCRBMParams(crbm, f32(self.W_x), f32(self.U_x))

  def predict_proba(self, x: np.ndarray, given: Optional[np.ndarray] = None,
                    observed: Optional[np.ndarray] = None, seed: int = 0) -> np.ndarray:
    """[N, T] p(tag | audio[, the given tags]) for raw features x [N, F]."""
    from crbm_jax.tagger import core  # pylint: disable=import-outside-toplevel
    z = ((np.asarray(x, np.float64) - self.mean) / self.std).astype(np.float32)
    return core.predict_params(self.tagger_config(), self.params(), z, given, observed,
                               seed)


def is_crbm_autotagger(workdir_or_folder: str) -> bool:
  """True when the folder (or its autotagger/) holds a kind 'crbm' autotagger."""
  for folder in (os.path.join(workdir_or_folder, training.AUTOTAGGER_DIR),
                 workdir_or_folder):
    try:
      with open(os.path.join(folder, store.JSON_NAME), encoding="utf-8") as fh:
        return json.load(fh).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
      continue
  return False


def validate(at: CRBMAutotagger, where: str) -> None:
  t, f = len(at.tags), len(at.feature_names)
  h = at.W.shape[1] if at.W.ndim == 2 else -1
  shapes = {"mean": (f,), "std": (f,), "thresholds": (t,), "W": (t, h), "b": (t,),
            "c": (h,), "W_x": (f, t)}
  def bad(msg):
    raise store.StoreError(f"{where}: {msg}")
  if t == 0 or len(at.display) != t or len(set(at.tags)) != t:
    bad("no tags, a tag listed twice, or display names that do not match the tags")
  for name, shape in shapes.items():
    if getattr(at, name).shape != shape:
      bad(f"array {name!r} has shape {getattr(at, name).shape}, expected {shape}")
  if at.U_x.shape not in ((f, h), (f, 0)):
    bad(f"array 'U_x' has shape {at.U_x.shape}, expected ({f}, {h}) or ({f}, 0)")
  for name in ARRAYS:
    a = getattr(at, name)
    if a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
      bad(f"array {name!r} holds NaN, infinite or non-numeric values")
  if np.any(at.std <= 0):
    bad("array 'std' holds values <= 0")
  try:
    at.tagger_config().check()
  except (TypeError, ValueError) as e:
    bad(f"model settings not understood ({e})")


def save(at: CRBMAutotagger, folder: str) -> str:
  """Writes the folder as a unit (replacing an old one); returns its absolute path."""
  validate(at, "autotagger")
  folder = os.path.abspath(folder)
  data = npz_bytes(compress=True, **{k: np.asarray(getattr(at, k), np.float64)
                                     for k in ARRAYS})
  meta = {"format": store.FORMAT, "version": store.FORMAT_VERSION, "kind": KIND,
          "tags": at.tags, "display": at.display, "feature_names": at.feature_names,
          "feature_config": at.feature_config, "feature_digest": at.feature_digest,
          "settings": at.settings, "model": at.config,
          "npz_sha256": hashlib.sha256(data).hexdigest()}

  def fill(tmp):
    write_bytes_atomic(os.path.join(tmp, store.NPZ_NAME), data)
    write_json_atomic(os.path.join(tmp, store.JSON_NAME), meta, indent=1,
                      sort_keys=False, ensure_ascii=False, allow_nan=False)
  return replace_folder_atomic(folder, fill, "autotagger", store.StoreError(
      f"{folder}: exists and is not a folder"))


def load(workdir_or_folder: str) -> CRBMAutotagger:
  """Reads and checks a saved CRBM autotagger (StoreError, one line, if unusable)."""
  sub = os.path.join(workdir_or_folder, training.AUTOTAGGER_DIR)
  folder = sub if os.path.isdir(sub) else workdir_or_folder
  jpath, npath = os.path.join(folder, store.JSON_NAME), os.path.join(folder, store.NPZ_NAME)
  try:
    with open(jpath, encoding="utf-8") as fh:
      meta = json.load(fh)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise store.StoreError(f"{jpath}: not a readable autotagger description ({e})") from e
  if not isinstance(meta, dict) or meta.get("format") != store.FORMAT or \
      meta.get("kind") != KIND:
    raise store.StoreError(f"{jpath}: not a CRBM autotagger")
  if meta.get("version") != store.FORMAT_VERSION:
    raise store.StoreError(f"{jpath}: format version {meta.get('version')!r}; this "
                           f"crbm_jax reads version {store.FORMAT_VERSION}")
  for key, typ in (("tags", list), ("display", list), ("feature_names", list),
                   ("npz_sha256", str), ("settings", dict), ("model", dict),
                   ("feature_digest", str)):
    if not isinstance(meta.get(key), typ):
      raise store.StoreError(f"{jpath}: field {key!r} missing or not a {typ.__name__}")
  try:
    with open(npath, "rb") as fh:
      data = fh.read()
  except OSError as e:
    raise store.StoreError(f"{npath}: cannot read ({e.strerror})") from e
  if hashlib.sha256(data).hexdigest() != meta["npz_sha256"]:
    raise store.StoreError(f"{npath}: SHA-256 differs from {store.JSON_NAME} (changed or "
                           "corrupt)")
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      arrays = {k: np.asarray(z[k], np.float64) for k in ARRAYS}
  except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise store.StoreError(f"{npath}: not a readable npz of the CRBM's arrays ({e})") from e
  at = CRBMAutotagger(tags=meta["tags"], display=meta["display"],
                      feature_names=meta["feature_names"], config=meta["model"],
                      feature_config=meta.get("feature_config"),
                      feature_digest=meta["feature_digest"], settings=meta["settings"],
                      **arrays)
  validate(at, npath)
  return at


# -- training ---------------------------------------------------------------------------

def _observations(tags: str, fs: FeatureSet, data: training.TrainingData,
                  canonicalize: bool):
  """Per (clip, user) observations when the tag table names users, else per clip."""
  from crbm_jax.data import tagtable  # pylint: disable=import-outside-toplevel
  from crbm_jax.tagger import core  # pylint: disable=import-outside-toplevel
  table = tagtable.load_tag_table(tags)
  if not table.has("user"):
    return core.clip_observations(data.raw, data.min_verified)
  if canonicalize:
    from crbm_jax.data import canonical  # pylint: disable=import-outside-toplevel
    table, _ = canonical.canonicalize_table(table)
  item_of = dict(zip(fs.clip_ids.tolist(), fs.items.tolist()))
  rows_of: dict = {}
  for r, cid in enumerate(data.clip_ids.tolist()):
    rows_of.setdefault(item_of.get(cid, cid), []).append(r)
  col = {t: j for j, t in enumerate(data.tags)}
  rows, users, cols = [], [], []
  for clip, user, tag in zip(table.clip.tolist(), table.user.tolist(), table.tag.tolist()):
    if tag in col:
      for r in rows_of.get(clip, ()):
        rows.append(r)
        users.append(user)
        cols.append(col[tag])
  if not rows:
    return core.clip_observations(data.raw, data.min_verified)
  return core.user_observations(np.array(rows), np.array(users, str), np.array(cols),
                                len(data.tags))


def train(features: Union[str, FeatureSet], tags: str, workdir: str, *,
          num_folds: int = 5, seed: int = 0, min_verified: int = 0,
          min_train_per_class: int = 5, top_tags: int = 0, canonicalize: bool = True,
          config=None, log: Log = stderr_log) -> dict:
  """Cross-validates (same grouped folds and metrics as the per-tag classifiers) and
  trains the final CRBM autotagger on every clip; writes the run folder. Returns
  {'overall', 'per_tag', 'paths', 'settings'}."""
  from crbm_jax.tagger import core  # pylint: disable=import-outside-toplevel
  config = config or core.TaggerConfig()
  try:
    config.check()
  except ValueError as e:
    raise AutotagError(f"--model crbm: {e}") from e
  if num_folds == 1 or num_folds < 0:
    raise AutotagError("--folds must be 0 (no cross-validation) or >= 2")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise AutotagError(f"--workdir {workdir} is a file; give a folder")
  os.makedirs(workdir, exist_ok=True)
  start = time.time()
  fs = as_features(features)
  data = training.prepare_training_data(
      fs, tags, workdir, labels="raw", smoothed=None, smoother=None, seed=seed,
      min_verified=min_verified, min_train_per_class=min_train_per_class,
      top_tags=top_tags, canonicalize=canonicalize, log=log)
  skipped = data.stats["num_tagged_clips_without_features"]
  if skipped:
    log(f"crbm-autotag: {skipped} tagged clips of {tags} have no features: skipped")
  obs = _observations(tags, fs, data, canonicalize)
  n, t = data.raw.shape
  settings = dict(labels="raw", model=KIND, num_folds=num_folds, seed=seed,
                  min_verified=data.min_verified, min_train_per_class=min_train_per_class,
                  top_tags=top_tags, canonicalize=canonicalize,
                  fold_groups=data.group_kind, num_clips=int(n),
                  num_features=int(data.x.shape[1]), num_tags=t,
                  num_observations=int(obs.v.shape[0]),
                  observations="per (clip, user)" if obs.users else "per clip",
                  num_tagged_clips_without_features=skipped,
                  num_feature_rows_without_tags=data.stats["num_feature_rows_without_tags"],
                  tags_with_too_few_examples=data.stats["tags_with_too_few_examples"],
                  test_labels="raw", balanced_accuracy_threshold="mean training probability")
  paths = {}
  overall, per_tag = {}, []
  if num_folds:
    num_groups = np.unique(data.groups).shape[0]
    if num_groups < num_folds:
      raise AutotagError(f"{num_groups} fold groups ({data.group_kind}) cannot fill "
                         f"{num_folds} folds; lower --folds or add clips")
    fold_ids = folds_lib.grouped_folds(data.groups, num_folds, seed)
    log(f"crbm-autotag: cross-validating the CRBM ({num_folds} folds, one vmapped fit)")
    fits = core.cross_validated_fits(data.x, obs, fold_ids, config, seed)
    oof = np.full((n, t), np.nan)
    for k in range(num_folds):
      oof[fold_ids == k] = fits.proba[k][fold_ids == k]
    per_fold = score_folds(oof, fits.thresholds, data.raw, fold_ids, data.min_verified)
    per_tag, overall = report.summarise(
        data.tags, data.display, data.raw, data.min_verified, per_fold, oof,
        [int((data.raw[:, j] >= data.min_verified).sum()) for j in range(t)], data.usage,
        True)
  log("crbm-autotag: training the final CRBM on every clip")
  params, mean, std, thresholds, _ = core.fit_all(data.x, obs, config, seed)
  at = CRBMAutotagger(
      tags=list(data.tags), display=list(data.display),
      feature_names=list(fs.feature_names), mean=np.asarray(mean, np.float64),
      std=np.asarray(std, np.float64), thresholds=np.asarray(thresholds, np.float64),
      W=np.asarray(params.crbm.W, np.float64), b=np.asarray(params.crbm.b, np.float64),
      c=np.asarray(params.crbm.c, np.float64), W_x=np.asarray(params.W_x, np.float64),
      U_x=np.asarray(params.U_x, np.float64),
      config={k: getattr(config, k) for k in config.__dataclass_fields__},
      feature_config=fs.config or None, feature_digest=fs.digest, settings=settings)
  paths["autotagger"] = save(at, os.path.join(workdir, training.AUTOTAGGER_DIR))
  overall["seconds"] = round(time.time() - start, 2)
  if num_folds:
    paths.update(report.write_reports(workdir, per_tag, overall, settings, oof,
                                      data.clip_ids, fold_ids, data.tags))
    log(f"crbm-autotag: {t} tags, {n} clips, CRBM on raw labels; cross-validated "
        f"balanced accuracy {report.fmt(overall['balanced_accuracy'])}, ROC-AUC tag-wise "
        f"{report.fmt(overall['roc_auc_tagwise'])}, clip-wise "
        f"{report.fmt(overall['roc_auc_clipwise'])}")
  log(f"crbm-autotag: wrote {', '.join(sorted(paths.values()))}")
  return {"overall": overall, "per_tag": per_tag, "paths": paths, "settings": settings}


# -- prediction -------------------------------------------------------------------------

def read_given(path: str, at: CRBMAutotagger, fs: FeatureSet, log: Log):
  """(given [N, T], observed [N, T]) from a tag table of tags already known (clip, tag);
  a row's clip is a feature row id or a tag-table clip (item). Tags outside the
  vocabulary and clips without features are reported and ignored."""
  from crbm_jax.data import tagtable  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.errors import DataError  # pylint: disable=import-outside-toplevel
  try:
    table = tagtable.load_tag_table(path)
  except (DataError, OSError) as e:
    raise AutotagError(f"--given {path}: {e}") from e
  if at.settings.get("canonicalize", True):
    from crbm_jax.data import canonical  # pylint: disable=import-outside-toplevel
    table, _ = canonical.canonicalize_table(table)
  col = {t: j for j, t in enumerate(at.tags)}
  rows_of: dict = {}
  for r, (cid, item) in enumerate(zip(fs.clip_ids.tolist(), fs.items.tolist())):
    rows_of.setdefault(cid, []).append(r)
    if item != cid:
      rows_of.setdefault(item, []).append(r)
  n = fs.features.shape[0]
  given = np.zeros((n, len(at.tags)), np.float32)
  unknown_tags, unknown_clips, used = {}, set(), 0
  for clip, tag in zip(table.clip.tolist(), table.tag.tolist()):
    if tag not in col:
      unknown_tags[tag] = unknown_tags.get(tag, 0) + 1
      continue
    rows = rows_of.get(clip)
    if not rows:
      unknown_clips.add(clip)
      continue
    given[rows, col[tag]] = 1.0
    used += 1
  if unknown_tags:
    names = sorted(unknown_tags, key=lambda t: (-unknown_tags[t], t))
    log(f"crbm-autotag: --given {path}: {len(unknown_tags)} tags are not in the "
        f"autotagger's vocabulary and were ignored ({', '.join(names[:5])}"
        f"{', ...' if len(names) > 5 else ''})")
  if unknown_clips:
    log(f"crbm-autotag: --given {path}: {len(unknown_clips)} clips are not among the "
        "features and were ignored")
  log(f"crbm-autotag: --given {path}: {used} known (clip, tag) pairs clamped")
  return given, given.copy()


def predict(at: CRBMAutotagger, features: Union[str, FeatureSet],
            given: Optional[str] = None, log: Log = stderr_log) -> Predictions:
  """p(tag | audio) of every clip, or p(tag | audio, the --given tags) (given tags come
  out with probability 1)."""
  fs = as_features(features)
  check_compatible(at, fs, features if isinstance(features, str) else "features")
  g = o = None
  if given is not None:
    g, o = read_given(given, at, fs, log)
  return Predictions(fs.clip_ids, fs.items, fs.paths, list(at.tags), list(at.display),
                     at.predict_proba(fs.features, g, o), fs.offsets, fs.durations)
