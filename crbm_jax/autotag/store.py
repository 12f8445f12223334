"""Per-tag autotaggers as plain arrays, saved as npz + JSON (no pickle anywhere).

An ``Autotagger`` holds, for T tags over F features:
  * the standardisation of the features: ``mean``, ``std`` [F] (z = (x - mean) / std);
  * a linear decision function per tag: ``coef`` [T, F], ``intercept`` [T]
    (f = z @ coef.T + intercept);
  * Platt's sigmoid per tag: ``platt_a``, ``platt_b`` [T], P(tag) = 1 / (1 + exp(a f + b))
    (scikit-learn's ``_SigmoidCalibration``; a = -1, b = 0 for logistic regression);
  * for nu-SVMs, the support vectors ``sv`` [S, F] (standardised), their dual
    coefficients ``sv_dual`` [S] and the tag each belongs to ``sv_tag`` [S]: the SVM's
    own form, from which ``coef`` = sum over a tag's support vectors of dual * sv (a
    linear kernel). Loading checks the two agree.

``decision_function`` and ``predict_proba`` are numpy expressions of these arrays, so a
classifier predicts the same numbers before saving and after loading (bit for bit), and
the same numbers as the scikit-learn objects it was converted from (to ~1e-12; tested).

A saved autotagger is a folder with ``autotagger.npz`` (the arrays, read with
``allow_pickle=False``) and ``autotagger.json`` (tags, feature names, the feature
configuration, training settings, the SHA-256 of the npz and (format 2) the SHA-256 of
the description itself, ``meta_sha256``, as ``model.json`` has). A folder from elsewhere
is safe to load: nothing is executed or unpickled, and every shape, value and both
digests are checked, each failure reported in one line naming the file, so an edited
description (tags and display swapped, another feature configuration) is refused.
Format 1 (no description checksum) still loads, with every other check.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from typing import Optional

import numpy as np

from crbm_jax.util.atomic import (json_text, npz_bytes, replace_folder_atomic,
                                  write_bytes_atomic, write_json_atomic)

FORMAT = "crbm_jax.autotagger"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no checksum of the description itself
NPZ_NAME = "autotagger.npz"
JSON_NAME = "autotagger.json"
KINDS = ("nusvc", "logistic")
ARRAYS = ("mean", "std", "coef", "intercept", "platt_a", "platt_b", "sv", "sv_dual",
          "sv_tag")


class StoreError(ValueError):
  """A saved autotagger that cannot be used (the message names the file and reason)."""


@dataclasses.dataclass
class Autotagger:
  """Per-tag binary classifiers over standardised features (module docstring)."""
  tags: list
  display: list
  feature_names: list
  kind: str
  mean: np.ndarray
  std: np.ndarray
  coef: np.ndarray
  intercept: np.ndarray
  platt_a: np.ndarray
  platt_b: np.ndarray
  sv: np.ndarray
  sv_dual: np.ndarray
  sv_tag: np.ndarray
  feature_config: Optional[dict] = None  # FeatureConfig fields, None: features from elsewhere
  feature_digest: str = ""
  settings: dict = dataclasses.field(default_factory=dict)

  @property
  def num_tags(self) -> int:
    return len(self.tags)

  def standardize(self, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
      raise ValueError(f"features of shape {x.shape}; this autotagger expects "
                       f"[clips, {self.mean.shape[0]}]")
    return (x - self.mean) / self.std

  def decision_function(self, x: np.ndarray) -> np.ndarray:
    """[M, T] float64 decision values of features x: [M, F] (positive: the tag)."""
    return self.standardize(x) @ self.coef.T + self.intercept

  def predict_proba(self, x: np.ndarray) -> np.ndarray:
    """[M, T] float64 probabilities P(tag | clip) (Platt-calibrated)."""
    f = self.decision_function(x)
    return 1.0 / (1.0 + np.exp(self.platt_a * f + self.platt_b))

  def predict(self, x: np.ndarray) -> np.ndarray:
    """[M, T] bool: probability >= 0.5."""
    return self.predict_proba(x) >= 0.5


def from_sklearn_tag(model) -> dict:
  """Arrays of one tag's fitted scikit-learn classifier (in standardised features).

  Args:
    model: the ``svm.PlattSVM`` that ``svm.fit_tag_svm`` returns (or the
      ``CalibratedClassifierCV(NuSVC(kernel='linear'), method='sigmoid',
      ensemble=False)`` it computes), or a binary
      ``LogisticRegression``.
  Returns:
    {'coef' [F], 'intercept', 'platt_a', 'platt_b', 'sv' [S, F], 'sv_dual' [S]}.
  """
  from sklearn.calibration import CalibratedClassifierCV  # pylint: disable=import-outside-toplevel
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  from crbm_jax.autotag import svm as svm_lib  # pylint: disable=import-outside-toplevel
  if isinstance(model, (svm_lib.PlattSVM, CalibratedClassifierCV)):
    if (isinstance(model, CalibratedClassifierCV)
        and len(model.calibrated_classifiers_) != 1):
      raise ValueError("expected one calibrated classifier (ensemble=False)")
    svm = svm_lib.svm_of(model)
    platt_a, platt_b = svm_lib.sigmoid_of(model)
    if getattr(svm, "kernel", None) != "linear" or list(svm.classes_) != [0, 1]:
      raise ValueError("expected a binary linear-kernel SVM with classes 0, 1")
    sv = np.asarray(svm.support_vectors_, np.float64)
    dual = np.asarray(svm.dual_coef_, np.float64).ravel()
    return {"coef": dual @ sv, "intercept": float(svm.intercept_[0]),
            "platt_a": float(platt_a), "platt_b": float(platt_b),
            "sv": sv, "sv_dual": dual}
  if isinstance(model, LogisticRegression):
    if list(model.classes_) != [0, 1]:
      raise ValueError("expected a binary logistic regression with classes 0, 1")
    f = model.coef_.shape[1]
    return {"coef": np.asarray(model.coef_[0], np.float64),
            "intercept": float(model.intercept_[0]), "platt_a": -1.0, "platt_b": 0.0,
            "sv": np.zeros((0, f)), "sv_dual": np.zeros(0)}
  raise TypeError(f"cannot convert {type(model).__name__}")


def assemble(tags, display, feature_names, kind: str, mean, std, per_tag: list,
             feature_config: Optional[dict] = None, feature_digest: str = "",
             settings: Optional[dict] = None) -> Autotagger:
  """An Autotagger from the ``from_sklearn_tag`` dicts of each tag."""
  f = len(feature_names)
  sv = [np.asarray(p["sv"], np.float64).reshape(-1, f) for p in per_tag]
  return Autotagger(
      tags=list(tags), display=list(display), feature_names=list(feature_names),
      kind=kind, mean=np.asarray(mean, np.float64), std=np.asarray(std, np.float64),
      coef=np.stack([np.asarray(p["coef"], np.float64) for p in per_tag]).reshape(-1, f),
      intercept=np.array([p["intercept"] for p in per_tag], np.float64),
      platt_a=np.array([p["platt_a"] for p in per_tag], np.float64),
      platt_b=np.array([p["platt_b"] for p in per_tag], np.float64),
      sv=np.concatenate(sv) if sv else np.zeros((0, f)),
      sv_dual=np.concatenate([np.asarray(p["sv_dual"], np.float64) for p in per_tag])
      if per_tag else np.zeros(0),
      sv_tag=np.concatenate([np.full(s.shape[0], t, np.int64) for t, s in enumerate(sv)])
      if sv else np.zeros(0, np.int64),
      feature_config=feature_config, feature_digest=feature_digest,
      settings=dict(settings or {}))


def validate(at: Autotagger, where: str = "autotagger") -> None:
  """Checks every shape relation and that every number is finite; StoreError if not."""
  t, f = len(at.tags), len(at.feature_names)
  def bad(msg):
    raise StoreError(f"{where}: {msg}")
  if at.kind not in KINDS:
    bad(f"unknown classifier kind {at.kind!r} (expected one of {', '.join(KINDS)})")
  if t == 0:
    bad("no tags")
  if len(at.display) != t or len(set(at.tags)) != t:
    bad(f"{t} tags with {len(at.display)} display names, or a tag listed twice")
  shapes = {"mean": (f,), "std": (f,), "coef": (t, f), "intercept": (t,),
            "platt_a": (t,), "platt_b": (t,), "sv_dual": (at.sv.shape[0],),
            "sv_tag": (at.sv.shape[0],)}
  for name, shape in shapes.items():
    a = getattr(at, name)
    if not isinstance(a, np.ndarray) or a.shape != shape:
      bad(f"array {name!r} has shape {getattr(a, 'shape', None)}, expected {shape} "
          f"({t} tags, {f} features)")
  if at.sv.ndim != 2 or at.sv.shape[1] != f:
    bad(f"array 'sv' has shape {at.sv.shape}, expected [support vectors, {f}]")
  for name in ARRAYS:
    a = getattr(at, name)
    if a.dtype.kind not in "fiu":
      bad(f"array {name!r} has dtype {a.dtype}, expected numbers")
    if not np.all(np.isfinite(a)):
      bad(f"array {name!r} holds NaN or infinite values")
  if np.any(at.std <= 0):
    bad("array 'std' holds values <= 0")
  if at.sv.shape[0]:
    if at.sv_tag.min() < 0 or at.sv_tag.max() >= t:
      bad("array 'sv_tag' names a tag out of range")
    coef = np.zeros((t, f))
    np.add.at(coef, at.sv_tag, at.sv_dual[:, None] * at.sv)
    scale = max(1.0, float(np.abs(at.coef).max()))
    if not np.allclose(coef, at.coef, rtol=1e-7, atol=1e-9 * scale):
      bad("'coef' disagrees with the support vectors and dual coefficients")
  elif at.kind == "nusvc":
    bad("a nu-SVM autotagger without support vectors")


def _digest(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def meta_digest(meta: dict) -> str:
  """SHA-256 of the description without its own checksum, as canonical strict JSON."""
  body = {k: v for k, v in meta.items() if k != "meta_sha256"}
  text = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                    allow_nan=False)
  return _digest(text.encode("ascii"))


def save(at: Autotagger, folder: str) -> str:
  """Writes the folder (replacing an old one as a unit); returns its absolute path."""
  validate(at)
  folder = os.path.abspath(folder)
  data = npz_bytes(compress=True, **{k: getattr(at, k) for k in ARRAYS})
  meta = {"format": FORMAT, "version": FORMAT_VERSION, "kind": at.kind, "tags": at.tags,
          "display": at.display, "feature_names": at.feature_names,
          "feature_config": at.feature_config, "feature_digest": at.feature_digest,
          "settings": at.settings, "npz_sha256": _digest(data)}
  meta = json.loads(json_text(meta, sort_keys=False))  # the form load() will see
  meta["meta_sha256"] = meta_digest(meta)

  def fill(tmp):
    write_bytes_atomic(os.path.join(tmp, NPZ_NAME), data)
    write_json_atomic(os.path.join(tmp, JSON_NAME), meta, indent=1, sort_keys=False,
                      ensure_ascii=False, allow_nan=False)
  return replace_folder_atomic(folder, fill, "autotagger", StoreError(
      f"{folder}: exists and is not a folder; remove it or choose another --workdir"))


def load(folder: str) -> Autotagger:
  """Reads and validates a saved autotagger folder (StoreError with one line if bad)."""
  jpath, npath = os.path.join(folder, JSON_NAME), os.path.join(folder, NPZ_NAME)
  if not os.path.isdir(folder):
    raise StoreError(f"{folder}: no such autotagger folder (crbm-autotag train writes "
                     "<workdir>/autotagger)")
  try:
    with open(jpath, encoding="utf-8") as fh:
      meta = json.load(fh)
  except FileNotFoundError as e:
    raise StoreError(f"{jpath}: missing") from e
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise StoreError(f"{jpath}: not a readable JSON file ({e})") from e
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise StoreError(f"{jpath}: not an autotagger description (format "
                     f"{meta.get('format') if isinstance(meta, dict) else None!r})")
  if meta.get("version") not in READABLE_VERSIONS:
    raise StoreError(f"{jpath}: format version {meta.get('version')!r}; this crbm_jax "
                     f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
  for key, typ in (("tags", list), ("display", list), ("feature_names", list),
                   ("kind", str), ("npz_sha256", str), ("settings", dict),
                   ("feature_digest", str)):
    if not isinstance(meta.get(key), typ):
      raise StoreError(f"{jpath}: field {key!r} missing or not a {typ.__name__}")
  if not all(isinstance(s, str) for s in meta["tags"] + meta["display"]
             + meta["feature_names"]):
    raise StoreError(f"{jpath}: tags, display names and feature names must be strings")
  if meta.get("feature_config") is not None and not isinstance(meta["feature_config"], dict):
    raise StoreError(f"{jpath}: field 'feature_config' must be an object or null")
  try:
    with open(npath, "rb") as fh:
      data = fh.read()
  except OSError as e:
    raise StoreError(f"{npath}: cannot read ({e.strerror})") from e
  if _digest(data) != meta["npz_sha256"]:
    raise StoreError(f"{npath}: SHA-256 differs from {JSON_NAME} (changed or corrupt)")
  arrays = {}
  try:
    import io  # pylint: disable=import-outside-toplevel
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      for name in ARRAYS:
        if name not in z.files:
          raise StoreError(f"{npath}: array {name!r} missing")
        arrays[name] = z[name]
  except StoreError:
    raise
  except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
    raise StoreError(f"{npath}: not a readable npz of numeric arrays "
                     f"({type(e).__name__}: {e})") from e
  at = Autotagger(tags=meta["tags"], display=meta["display"],
                  feature_names=meta["feature_names"], kind=meta["kind"],
                  feature_config=meta.get("feature_config"),
                  feature_digest=meta["feature_digest"], settings=meta["settings"],
                  **arrays)
  validate(at, npath)
  if meta["version"] >= 2 and meta.get("meta_sha256") != meta_digest(meta):
    raise StoreError(f"{jpath}: checksum of the description does not match (it was "
                     "edited or damaged); train the autotagger again with crbm-autotag "
                     "train")
  at.sv_tag = at.sv_tag.astype(np.int64)
  for name in ARRAYS[:-1]:
    setattr(at, name, getattr(at, name).astype(np.float64))
  return at
