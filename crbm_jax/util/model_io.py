"""Saving and loading a trained conditional RBM with what is needed to use it.

A model directory holds
  params.npz  W [V, H], W_aux [num_aux, V], b [V], c [H] exactly as trained;
  model.json  format version, package version, vocabulary and display forms, the
              auxiliary groups with their entity names and W_aux offsets, the
              training configuration, metrics, the SHA-256 of params.npz and (format 2)
              the SHA-256 of the metadata itself.
Writes are atomic: the directory is assembled under a temporary name beside the target
and renamed into place, so a reader never sees a half-written model.

Loading never unpickles (``np.load(allow_pickle=False)``) and checks everything before
returning: both checksums, the four arrays (present, float, finite, no others), every
shape relation between them and the metadata (vocabulary and display length = V,
known and distinct group names, one sorted entity list per group, offsets = the
cumulative entity counts, their total = W_aux rows). Each failure is one
ModelFormatError line naming the file. Format 1 (no metadata checksum) still loads,
with every other check. Importing this module imports no JAX (only ``load_model`` does),
so the tools that only look at a work directory stay light.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from crbm_jax.util.aux_groups import AUX_GROUPS
from crbm_jax.util.atomic import (npz_bytes, replace_folder_atomic, to_jsonable,
                                  write_json_atomic)

if TYPE_CHECKING:
  from crbm_jax.model.crbm import CRBMParams

FORMAT_VERSION = 2
PARAM_FIELDS = ("W", "W_aux", "b", "c")  # PARAM_FIELDS (checked in the tests)
READABLE_VERSIONS = (1, 2)  # 1: the checksum covers params.npz only
FORMAT_NAME = "crbm_jax-model"
PARAMS_FILE = "params.npz"
META_FILE = "model.json"


class ModelFormatError(ValueError):
  """A path that is not a readable crbm_jax model directory (says what to do)."""


class DivergedModelError(ModelFormatError):
  """Parameters with NaN or infinite values, which are never written."""


@dataclasses.dataclass(frozen=True)
class SavedModel:
  """A loaded model directory.

  Attributes:
    params: CRBMParams of jnp arrays, bit-for-bit as saved.
    vocab: [V] canonical tags; display: [V] surface forms.
    groups: auxiliary group names [G]; entity_names: one sorted [E_g] str array per
      group; offsets: [G] int64 first W_aux row of each group.
    config, metrics: the dicts given to ``save_model``.
    package_version: crbm_jax version that wrote it; format_version: FORMAT_VERSION.
    path: the directory it was read from.
  """
  params: CRBMParams
  vocab: np.ndarray
  display: np.ndarray
  groups: tuple
  entity_names: tuple
  offsets: np.ndarray
  config: dict
  metrics: Optional[dict]
  package_version: str
  format_version: int
  path: str = ""

  @property
  def num_visible(self) -> int:
    return int(self.params.W.shape[0])

  @property
  def num_hidden(self) -> int:
    return int(self.params.W.shape[1])


def _package_version() -> str:
  import crbm_jax  # pylint: disable=import-outside-toplevel
  return getattr(crbm_jax, "__version__", "unknown")


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def _meta_sha256(meta: dict) -> str:
  """SHA-256 of the metadata without its own checksum, as canonical strict JSON."""
  body = {k: v for k, v in meta.items() if k != "meta_sha256"}
  text = json.dumps(to_jsonable(body), sort_keys=True, ensure_ascii=True,
                    separators=(",", ":"), allow_nan=False)
  return hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_target(path_dir: str) -> None:
  if os.path.lexists(path_dir):
    if not os.path.isdir(path_dir):
      raise ModelFormatError(f"{path_dir}: exists and is not a directory; choose another "
                             "model path")
    entries = os.listdir(path_dir)
    if entries and META_FILE not in entries:
      raise ModelFormatError(f"{path_dir}: exists, is not empty and is not a crbm_jax "
                             "model directory; choose another path or remove it")


def _arrays_and_meta(params: CRBMParams, *, vocab, display, groups, entity_names,
                     offsets, config, metrics):
  """Checked arrays and metadata (without checksums) of a model to write."""
  arrays = {k: np.asarray(v) for k, v in params._asdict().items()}
  num_visible, num_hidden = arrays["W"].shape
  vocab = [str(t) for t in vocab]
  display = vocab if display is None else [str(t) for t in display]
  groups = [str(g) for g in groups]
  entity_names = [[str(e) for e in names] for names in entity_names]
  offsets = [int(o) for o in offsets]
  if len(vocab) != num_visible or len(display) != num_visible:
    raise ValueError(f"vocab/display have {len(vocab)}/{len(display)} entries but W has "
                     f"{num_visible} visible units")
  if not len(groups) == len(entity_names) == len(offsets):
    raise ValueError("groups, entity_names and offsets must have one entry per group")
  num_aux = sum(len(e) for e in entity_names)
  if num_aux != arrays["W_aux"].shape[0]:
    raise ValueError(f"entity_names list {num_aux} entities but W_aux has "
                     f"{arrays['W_aux'].shape[0]} rows")
  meta = {
      "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
      "package_version": _package_version(),
      "num_visible": num_visible, "num_hidden": num_hidden, "num_aux": num_aux,
      "dtype": str(arrays["W"].dtype),
      "vocab": vocab, "display": display, "groups": groups,
      "entity_names": entity_names, "offsets": offsets,
      "config": config, "metrics": metrics,
  }
  return arrays, meta


def write_model_files(folder: str, params: CRBMParams, *, vocab: Sequence[str],
                      display: Optional[Sequence[str]], groups: Sequence[str],
                      entity_names: Sequence[Sequence[str]], offsets: Sequence[int],
                      config: dict, metrics: Optional[dict] = None) -> None:
  """Writes params.npz and model.json into an existing (temporary) folder.

  Raises:
    ValueError when the metadata does not fit the parameters' shapes;
    DivergedModelError (one line) when a parameter is not finite (a diverged model is
    never written as if it were trained).
  """
  arrays, meta = _arrays_and_meta(params, vocab=vocab, display=display, groups=groups,
                                  entity_names=entity_names, offsets=offsets,
                                  config=config, metrics=metrics)
  for name, a in arrays.items():
    if not np.all(np.isfinite(a)):
      raise DivergedModelError(
          f"parameter {name} has {int(np.sum(~np.isfinite(a)))} non-finite values: "
          "training diverged and nothing was saved; lower --learning_rate")
  params_bytes = npz_bytes(**arrays)
  with open(os.path.join(folder, PARAMS_FILE), "wb") as f:
    f.write(params_bytes)
  meta["params_sha256"] = hashlib.sha256(params_bytes).hexdigest()
  meta["meta_sha256"] = _meta_sha256(meta)
  write_json_atomic(os.path.join(folder, META_FILE), meta, indent=2, sort_keys=False,
                    ensure_ascii=False)


def save_model(path_dir, params: CRBMParams, *, vocab: Sequence[str],
               display: Optional[Sequence[str]], groups: Sequence[str],
               entity_names: Sequence[Sequence[str]], offsets: Sequence[int],
               config: dict, metrics: Optional[dict] = None) -> str:
  """Writes a model directory atomically (replacing an older model there).

  (crbm-fit publishes whole run folders instead: ``crbm_jax.util.runs``.)

  Args:
    path_dir: the model directory (created; its parent is created if needed).
    params: CRBMParams (jax or numpy arrays).
    vocab: [V] tags; display: [V] surface forms (None = vocab).
    groups, entity_names, offsets: as in ``crbm_jax.data.observations.Observations``.
    config: JSON-able training configuration; metrics: JSON-able numbers or None.
  Returns:
    the absolute path of the directory.
  """
  path_dir = os.path.abspath(os.fspath(path_dir))
  _arrays_and_meta(params, vocab=vocab, display=display, groups=groups,
                   entity_names=entity_names, offsets=offsets, config=config,
                   metrics=metrics)  # shape errors before touching the disk
  _check_target(path_dir)
  return replace_folder_atomic(
      path_dir, lambda tmp: write_model_files(
          tmp, params, vocab=vocab, display=display, groups=groups,
          entity_names=entity_names, offsets=offsets, config=config, metrics=metrics),
      "model")


def _damaged(path: str, reason: str) -> ModelFormatError:
  return ModelFormatError(f"{path}: {reason}; the model is damaged or was not written by "
                          "crbm-fit, train it again with crbm-fit")


def _read_arrays(params_path: str) -> dict:
  """The four parameter arrays of params.npz, as float numpy arrays (never unpickles)."""
  import zipfile  # pylint: disable=import-outside-toplevel
  try:
    with open(params_path, "rb") as f:
      head = f.read(4)
    if head != b"PK\x03\x04":
      raise _damaged(params_path, "not an .npz (zip) file")
    with zipfile.ZipFile(params_path) as zf:  # np.load does not always check CRCs
      bad = zf.testzip()
    if bad is not None:
      raise _damaged(params_path, f"cannot be read (bad CRC-32 of {bad})")
    with np.load(params_path, allow_pickle=False) as data:
      names = sorted(data.files)
      missing = [k for k in PARAM_FIELDS if k not in names]
      if missing:
        raise _damaged(params_path, f"array(s) {', '.join(missing)} missing (it holds "
                       f"{', '.join(names) or 'none'})")
      extra = [k for k in names if k not in PARAM_FIELDS]
      if extra:
        raise _damaged(params_path, f"unexpected array(s) {', '.join(extra)}")
      arrays = {}
      for k in PARAM_FIELDS:
        try:
          a = data[k]
        except ValueError as e:
          if "pickle" in str(e):
            raise _damaged(params_path, f"array {k} holds Python objects, which are "
                           "never loaded") from None
          raise
        arrays[k] = a
  except ModelFormatError:
    raise
  except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, KeyError, EOFError,
          OSError, NotImplementedError) as e:
    reason = " ".join(str(e).split()) or type(e).__name__
    raise _damaged(params_path, f"cannot be read ({type(e).__name__}: {reason})") from None
  for k, a in arrays.items():
    if a.dtype.kind != "f":
      raise _damaged(params_path, f"array {k} has dtype {a.dtype}, not a float type")
  return arrays


def check_model(arrays: dict, meta: dict, where: str) -> None:
  """Every relation between the arrays and the metadata; ModelFormatError naming
  ``where`` on the first that fails."""
  W, W_aux, b, c = (arrays[k] for k in PARAM_FIELDS)
  if W.ndim != 2:
    raise _damaged(where, f"W has shape {W.shape}, not [tags, hidden]")
  num_visible, num_hidden = W.shape
  expected = {"W_aux": (None, num_visible), "b": (num_visible,), "c": (num_hidden,)}
  for k, shape in expected.items():
    a = arrays[k]
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
      want = "[aux rows, %d]" % num_visible if k == "W_aux" else str(list(shape))
      raise _damaged(where, f"{k} has shape {list(a.shape)} but W {list(W.shape)} "
                     f"needs {want}")
  for k, a in arrays.items():
    bad = int(np.sum(~np.isfinite(a)))
    if bad:
      raise _damaged(where, f"parameter {k} has {bad} non-finite value(s) (NaN or "
                     "infinity)")
  for key, value in (("num_visible", num_visible), ("num_hidden", num_hidden),
                     ("num_aux", W_aux.shape[0])):
    if key in meta and meta[key] != value:
      raise _damaged(where, f"{key} is {meta[key]!r} but the parameters have {value}")
  for key in ("vocab", "display"):
    v = meta.get(key)
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
      raise _damaged(where, f"{key} is not a list of strings")
    if len(v) != num_visible:
      raise _damaged(where, f"{key} lists {len(v)} tags but W has {num_visible} visible "
                     "units")
  if len(set(meta["vocab"])) != num_visible:
    raise _damaged(where, "vocab repeats a tag")
  groups, names, offsets = meta.get("groups"), meta.get("entity_names"), meta.get("offsets")
  if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
    raise _damaged(where, "groups is not a list of group names")
  unknown = [g for g in groups if g not in AUX_GROUPS]
  if unknown:
    raise _damaged(where, f"unknown auxiliary group(s) {', '.join(map(repr, unknown))} "
                   f"(known: {', '.join(AUX_GROUPS)})")
  if len(set(groups)) != len(groups):
    raise _damaged(where, "groups repeats a group")
  if (not isinstance(names, list) or len(names) != len(groups)
      or not all(isinstance(e, list) and all(isinstance(x, str) for x in e) for e in names)):
    raise _damaged(where, f"entity_names must be {len(groups)} list(s) of names, one per "
                   "group")
  if (not isinstance(offsets, list) or len(offsets) != len(groups)
      or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
    raise _damaged(where, f"offsets must be {len(groups)} integer(s), one per group")
  starts = np.cumsum([0] + [len(e) for e in names])
  for g, e, o, s in zip(groups, names, offsets, starts):
    if o != s:
      raise _damaged(where, f"group {g!r} starts at W_aux row {o} but the entity lists "
                     f"before it end at row {s}")
    if e != sorted(e) or len(set(e)) != len(e):
      raise _damaged(where, f"entity names of group {g!r} are not sorted and distinct")
  if starts[-1] != W_aux.shape[0]:
    raise _damaged(where, f"the entity lists name {int(starts[-1])} auxiliary rows but "
                   f"W_aux has {W_aux.shape[0]}")


def load_model(path_dir) -> SavedModel:
  """Reads a model directory written by ``save_model`` (or inside a run folder).

  Raises:
    ModelFormatError (one line, naming the file and saying what to do) when the path is
    not a model directory, was written in another format version, or is damaged or
    inconsistent (see the module docstring).
  """
  path_dir = os.fspath(path_dir)
  meta_path = os.path.join(path_dir, META_FILE)
  params_path = os.path.join(path_dir, PARAMS_FILE)
  if not os.path.isdir(path_dir):
    raise ModelFormatError(f"{path_dir}: no such model directory; train one with crbm-fit "
                           "(it writes <workdir>/current/model)")
  if not os.path.isfile(meta_path):
    raise ModelFormatError(f"{path_dir}: not a crbm_jax model directory (no {META_FILE}); "
                           "pass the directory that crbm-fit wrote")
  try:
    with open(meta_path, encoding="utf-8") as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise ModelFormatError(f"{meta_path}: cannot be read as JSON ({e}); the model is "
                           "damaged, train it again with crbm-fit") from None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
    raise ModelFormatError(f"{meta_path}: not a crbm_jax model description; pass the "
                           "directory that crbm-fit wrote")
  version = meta.get("format_version")
  if version not in READABLE_VERSIONS:
    raise ModelFormatError(
        f"{path_dir}: model format version {version} (written by crbm_jax "
        f"{meta.get('package_version', 'unknown')}) but crbm_jax {_package_version()} "
        f"reads format versions {', '.join(map(str, READABLE_VERSIONS))}; train the model "
        "again with this version's crbm-fit, or use the crbm_jax version that wrote it")
  if version >= 2 and meta.get("meta_sha256") != _meta_sha256(meta):
    raise ModelFormatError(f"{meta_path}: checksum of the description does not match "
                           "(it was edited or damaged); train the model again with "
                           "crbm-fit")
  if not os.path.isfile(params_path):
    raise ModelFormatError(f"{path_dir}: {PARAMS_FILE} is missing; the model is "
                           "incomplete, train it again with crbm-fit")
  if _sha256(params_path) != meta.get("params_sha256"):
    raise ModelFormatError(f"{params_path}: checksum does not match {META_FILE}; the "
                           "model is damaged, train it again with crbm-fit")
  arrays = _read_arrays(params_path)
  check_model(arrays, meta, meta_path)
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from crbm_jax.model.crbm import CRBMParams  # pylint: disable=import-outside-toplevel
  params = CRBMParams(*(jnp.asarray(arrays[k]) for k in PARAM_FIELDS))
  return SavedModel(
      params=params, vocab=np.asarray(meta["vocab"], dtype=str),
      display=np.asarray(meta["display"], dtype=str), groups=tuple(meta["groups"]),
      entity_names=tuple(np.asarray(e, dtype=str).reshape(-1)
                         for e in meta["entity_names"]),
      offsets=np.asarray(meta["offsets"], np.int64), config=meta.get("config") or {},
      metrics=meta.get("metrics"), package_version=str(meta.get("package_version")),
      format_version=int(version), path=path_dir)
