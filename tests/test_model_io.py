"""Model directories: bit-for-bit round trip, atomic writes, clear errors."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax
from crbm_jax.util import model_io
from crbm_jax.model import CRBMParams


def _params(seed=0, num_visible=5, num_hidden=3, num_aux=4):
  rng = np.random.default_rng(seed)
  W = rng.normal(size=(num_visible, num_hidden)).astype(np.float32)
  W[0, 0] = np.float32(1e-45)  # a denormal
  W[1, 1] = np.float32(-0.0)
  W_aux = rng.normal(size=(num_aux, num_visible)).astype(np.float32)
  b = rng.normal(size=num_visible).astype(np.float32)
  c = rng.normal(size=num_hidden).astype(np.float32)
  return CRBMParams(*(jnp.asarray(x) for x in (W, W_aux, b, c)))


META = dict(vocab=["rock", "jazz", "hip hop", "café", "80s"],
            display=["Rock", "Jazz", "hip-hop", "Café", "80's"],
            groups=("user", "clip"), entity_names=(["u1", "u2"], ["c1", "c2"]),
            offsets=(0, 2), config={"num_hidden": 3, "lr": 0.05},
            metrics={"test_balanced_pl": np.float32(-0.9), "by_epoch": np.arange(3.0)})


def _save(path, params=None, **overrides):
  kw = dict(META, **overrides)
  return model_io.save_model(path, _params() if params is None else params, **kw)


def test_save_load_round_trip_is_bit_for_bit(tmp_path):
  params = _params()
  path = _save(tmp_path / "model", params)
  saved = model_io.load_model(path)
  for name in CRBMParams._fields:
    got, want = np.asarray(getattr(saved.params, name)), np.asarray(getattr(params, name))
    assert isinstance(getattr(saved.params, name), jnp.ndarray)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
  np.testing.assert_array_equal(saved.vocab, META["vocab"])
  np.testing.assert_array_equal(saved.display, META["display"])
  assert saved.groups == ("user", "clip")
  assert [e.tolist() for e in saved.entity_names] == [["u1", "u2"], ["c1", "c2"]]
  np.testing.assert_array_equal(saved.offsets, [0, 2])
  assert saved.config == META["config"]
  assert saved.metrics["by_epoch"] == [0.0, 1.0, 2.0]
  assert saved.package_version == crbm_jax.__version__
  assert saved.format_version == model_io.FORMAT_VERSION
  assert (saved.num_visible, saved.num_hidden) == (5, 3)


def test_load_rejects_other_format_version_with_instructions(tmp_path):
  path = _save(tmp_path / "model")
  meta_path = os.path.join(path, model_io.META_FILE)
  with open(meta_path) as f:
    meta = json.load(f)
  meta["format_version"] = model_io.FORMAT_VERSION + 1
  meta["package_version"] = "9.9.9"
  with open(meta_path, "w") as f:
    json.dump(meta, f)
  with pytest.raises(model_io.ModelFormatError) as err:
    model_io.load_model(path)
  message = str(err.value)
  assert "format version" in message and "9.9.9" in message and "crbm-fit" in message
  assert "\n" not in message


@pytest.mark.parametrize("make, reason", [
    (lambda p: None, "no such model directory"),
    (lambda p: os.makedirs(p), "not a crbm_jax model directory"),
])
def test_load_rejects_non_model_directories(tmp_path, make, reason):
  path = str(tmp_path / "x")
  make(path)
  with pytest.raises(model_io.ModelFormatError, match=reason):
    model_io.load_model(path)


def test_load_detects_damaged_parameters(tmp_path):
  path = _save(tmp_path / "model")
  with open(os.path.join(path, model_io.PARAMS_FILE), "r+b") as f:
    f.seek(-20, os.SEEK_END)
    f.write(b"\x00" * 4)
  with pytest.raises(model_io.ModelFormatError, match="checksum"):
    model_io.load_model(path)


def test_save_replaces_an_old_model_and_leaves_no_temporary_files(tmp_path):
  _save(tmp_path / "model", _params(0))
  _save(tmp_path / "model", _params(1))
  assert sorted(os.listdir(tmp_path)) == ["model"]
  saved = model_io.load_model(tmp_path / "model")
  np.testing.assert_array_equal(saved.params.W, _params(1).W)


def test_failed_save_keeps_the_old_model_and_writes_nothing(tmp_path, monkeypatch):
  _save(tmp_path / "model", _params(0))

  def broken(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(model_io, "npz_bytes", broken)
  with pytest.raises(OSError, match="disk full"):
    _save(tmp_path / "model", _params(1))
  assert sorted(os.listdir(tmp_path)) == ["model"]
  np.testing.assert_array_equal(model_io.load_model(tmp_path / "model").params.W,
                                _params(0).W)


def test_save_refuses_a_non_model_directory_and_inconsistent_metadata(tmp_path):
  other = tmp_path / "notes"
  other.mkdir()
  (other / "keep.txt").write_text("mine")
  with pytest.raises(model_io.ModelFormatError, match="not a crbm_jax model"):
    _save(other)
  assert os.listdir(other) == ["keep.txt"]
  with pytest.raises(ValueError, match="visible units"):
    _save(tmp_path / "m2", vocab=["a", "b"], display=None)
  with pytest.raises(ValueError, match="W_aux has 4 rows"):
    _save(tmp_path / "m3", entity_names=(["u1"], ["c1", "c2"]))
  assert sorted(os.listdir(tmp_path)) == ["notes"]
