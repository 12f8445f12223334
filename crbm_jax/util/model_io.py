"""Saving and loading a trained conditional RBM with what is needed to use it.

A model directory holds
  params.npz  W [V, H], W_aux [num_aux, V], b [V], c [H] exactly as trained;
  model.json  format version, package version, vocabulary and display forms, the
              auxiliary groups with their entity names and W_aux offsets, the
              training configuration, metrics, and the SHA-256 of params.npz.
Writes are atomic: the directory is assembled under a temporary name beside the target
and renamed into place, so a reader never sees a half-written model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Optional, Sequence

import jax.numpy as jnp
import numpy as np

from crbm_jax.model.crbm import CRBMParams
from crbm_jax.util.atomic import npz_bytes, write_json_atomic

FORMAT_VERSION = 1
FORMAT_NAME = "crbm_jax-model"
PARAMS_FILE = "params.npz"
META_FILE = "model.json"


class ModelFormatError(ValueError):
  """A path that is not a readable crbm_jax model directory (says what to do)."""


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


def _check_target(path_dir: str) -> None:
  if os.path.lexists(path_dir):
    if not os.path.isdir(path_dir):
      raise ModelFormatError(f"{path_dir}: exists and is not a directory; choose another "
                             "model path")
    entries = os.listdir(path_dir)
    if entries and META_FILE not in entries:
      raise ModelFormatError(f"{path_dir}: exists, is not empty and is not a crbm_jax "
                             "model directory; choose another path or remove it")


def save_model(path_dir, params: CRBMParams, *, vocab: Sequence[str],
               display: Optional[Sequence[str]], groups: Sequence[str],
               entity_names: Sequence[Sequence[str]], offsets: Sequence[int],
               config: dict, metrics: Optional[dict] = None) -> str:
  """Writes a model directory atomically (replacing an older model there).

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
  _check_target(path_dir)
  parent = os.path.dirname(path_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-model-", dir=parent)
  old = None
  try:
    params_path = os.path.join(tmp, PARAMS_FILE)
    with open(params_path, "wb") as f:  # inside the temporary directory
      f.write(npz_bytes(**arrays))
    meta = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "params_sha256": _sha256(params_path),
        "num_visible": num_visible, "num_hidden": num_hidden, "num_aux": num_aux,
        "dtype": str(arrays["W"].dtype),
        "vocab": vocab, "display": display, "groups": groups,
        "entity_names": entity_names, "offsets": offsets,
        "config": config, "metrics": metrics,
    }
    write_json_atomic(os.path.join(tmp, META_FILE), meta, indent=2, sort_keys=False,
                      ensure_ascii=False)
    os.chmod(tmp, 0o755)
    if os.path.isdir(path_dir):
      old = tempfile.mkdtemp(prefix=".old-model-", dir=parent)
      os.rmdir(old)
      os.rename(path_dir, old)
    os.rename(tmp, path_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if old is not None and not os.path.exists(path_dir):
      os.rename(old, path_dir)
    raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)
  return path_dir


def load_model(path_dir) -> SavedModel:
  """Reads a model directory written by ``save_model``.

  Raises:
    ModelFormatError (one line, saying what to do) when the path is not a model
    directory, was written in another format version, or is damaged.
  """
  path_dir = os.fspath(path_dir)
  meta_path = os.path.join(path_dir, META_FILE)
  params_path = os.path.join(path_dir, PARAMS_FILE)
  if not os.path.isdir(path_dir):
    raise ModelFormatError(f"{path_dir}: no such model directory; train one with crbm-fit "
                           "(it writes <workdir>/model)")
  if not os.path.isfile(meta_path):
    raise ModelFormatError(f"{path_dir}: not a crbm_jax model directory (no {META_FILE}); "
                           "pass the directory that crbm-fit wrote (<workdir>/model)")
  try:
    with open(meta_path, encoding="utf-8") as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise ModelFormatError(f"{meta_path}: cannot be read as JSON ({e}); the model is "
                           "damaged, train it again with crbm-fit") from None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
    raise ModelFormatError(f"{meta_path}: not a crbm_jax model description; pass the "
                           "directory that crbm-fit wrote (<workdir>/model)")
  version = meta.get("format_version")
  if version != FORMAT_VERSION:
    raise ModelFormatError(
        f"{path_dir}: model format version {version} (written by crbm_jax "
        f"{meta.get('package_version', 'unknown')}) but crbm_jax {_package_version()} "
        f"reads format version {FORMAT_VERSION}; train the model again with this "
        "version's crbm-fit, or use the crbm_jax version that wrote it")
  if not os.path.isfile(params_path):
    raise ModelFormatError(f"{path_dir}: {PARAMS_FILE} is missing; the model is "
                           "incomplete, train it again with crbm-fit")
  if _sha256(params_path) != meta.get("params_sha256"):
    raise ModelFormatError(f"{params_path}: checksum does not match {META_FILE}; the "
                           "model is damaged, train it again with crbm-fit")
  with np.load(params_path, allow_pickle=False) as data:
    params = CRBMParams(*(jnp.asarray(data[k]) for k in CRBMParams._fields))
  return SavedModel(
      params=params, vocab=np.asarray(meta["vocab"], dtype=str),
      display=np.asarray(meta["display"], dtype=str), groups=tuple(meta["groups"]),
      entity_names=tuple(np.asarray(e, dtype=str).reshape(-1)
                         for e in meta["entity_names"]),
      offsets=np.asarray(meta["offsets"], np.int64), config=meta.get("config") or {},
      metrics=meta.get("metrics"), package_version=str(meta.get("package_version")),
      format_version=int(version), path=path_dir)
