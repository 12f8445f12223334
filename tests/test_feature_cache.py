"""Issue 18 items 19-20: a bad feature-cache entry is ignored, counted and recomputed.

Each case writes a broken entry where the cache would look, then checks that
extract_features returns the freshly computed features (never the entry's content, never
NaN), counts the entry as invalid, and rewrites it so that the next call is a cache hit.
"""
import glob
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import soundfile

from crbm_jax.autotag import features as F
from crbm_jax.util.atomic import npz_bytes

SR = 22050
CONFIG = F.FeatureConfig(num_clips=2, clip_seconds=1.5)


@pytest.fixture(scope="module")
def track(tmp_path_factory):
  path = tmp_path_factory.mktemp("audio") / "track.wav"
  t = np.arange(int(3.5 * SR)) / SR
  y = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t))
  y += 0.05 * np.random.default_rng(0).normal(size=t.shape)
  soundfile.write(path, y.astype(np.float32), SR)
  fresh = F.extract_features([str(path)], CONFIG, num_workers=1, progress=False)
  return str(path), fresh.features


def _entry(cache_dir):
  files = glob.glob(os.path.join(cache_dir, "*.npz"))
  assert len(files) == 1
  return files[0]


def _valid_arrays(path):
  with np.load(path, allow_pickle=False) as z:
    return {k: z[k] for k in z.files}


def _object_array_npz():
  buf = io.BytesIO()
  np.savez(buf, features=np.array([{"a": 1}], dtype=object))
  return buf.getvalue()


def _corruptions():
  def with_(**changes):
    def make(arrays):
      arrays = dict(arrays)
      arrays.update(changes)
      return npz_bytes(**arrays)
    return make

  def drop(key):
    def make(arrays):
      return npz_bytes(**{k: v for k, v in arrays.items() if k != key})
    return make

  def scaled_nan(arrays):
    f = arrays["features"].copy()
    f[0, 3] = np.nan
    return npz_bytes(**dict(arrays, features=f))

  def wrong_shape(arrays):
    return npz_bytes(**dict(arrays, features=arrays["features"][:, :100]))

  def wrong_dtype(arrays):
    return npz_bytes(**dict(arrays, features=arrays["features"].astype(np.float64)))

  def truncated(arrays):
    return npz_bytes(**arrays)[:200]

  def bad_crc(arrays):
    data = bytearray(npz_bytes(**arrays))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)

  return {
      "garbage bytes": lambda a: b"not a zip file at all" * 10,
      "empty file": lambda a: b"",
      "truncated zip": truncated,
      "bad crc": bad_crc,
      "pickled object array": lambda a: _object_array_npz(),
      "pickle file": lambda a: pickle.dumps({"features": np.zeros((2, 389))}),
      "nan features": scaled_nan,
      "wrong shape": wrong_shape,
      "float64 features": wrong_dtype,
      "wrong digest": with_(key=np.array("0" * 24)),
      "missing key array": drop("key"),
      "missing features": drop("features"),
      "index out of range": with_(kept=np.array([0, 7])),
      "no clips": lambda a: npz_bytes(**dict(a, features=a["features"][:0],
                                             kept=a["kept"][:0], starts=a["starts"][:0],
                                             durations=a["durations"][:0])),
  }


@pytest.mark.parametrize("case", sorted(_corruptions()))
def test_invalid_cache_entry_is_ignored_counted_and_recomputed(track, tmp_path, case):
  path, fresh = track
  cache = str(tmp_path / "cache")
  first = F.extract_features([path], CONFIG, num_workers=1, cache_dir=cache,
                             progress=False)
  assert first.cache == {"hit": 0, "miss": 1, "invalid": 0}
  entry = _entry(cache)
  arrays = _valid_arrays(entry)
  with open(entry, "wb") as f:
    f.write(_corruptions()[case](arrays))
  out = F.extract_features([path], CONFIG, num_workers=1, cache_dir=cache,
                           progress=False)
  assert out.cache == {"hit": 0, "miss": 0, "invalid": 1}
  assert np.all(np.isfinite(out.features))
  np.testing.assert_array_equal(out.features, fresh)
  assert out.skipped == []
  again = F.extract_features([path], CONFIG, num_workers=1, cache_dir=cache,
                             progress=False)
  assert again.cache == {"hit": 1, "miss": 0, "invalid": 0}
  np.testing.assert_array_equal(again.features, fresh)


def test_a_valid_entry_is_a_hit_and_holds_no_pickle(track, tmp_path):
  path, fresh = track
  cache = str(tmp_path / "cache")
  F.extract_features([path], CONFIG, num_workers=1, cache_dir=cache, progress=False)
  with zipfile.ZipFile(_entry(cache)) as zf:
    for name in zf.namelist():
      header = zf.read(name)[:128]
      assert b"'descr': '|O'" not in header
  out = F.extract_features([path], CONFIG, num_workers=1, cache_dir=cache, progress=False)
  assert out.cache["hit"] == 1
  np.testing.assert_array_equal(out.features, fresh)


def test_cache_entries_are_keyed_by_segments_and_settings(track, tmp_path):
  path, _ = track
  cache = str(tmp_path / "cache")
  F.extract_features([path], CONFIG, num_workers=1, cache_dir=cache, progress=False)
  seg = F.extract_features([path], CONFIG, num_workers=1, cache_dir=cache, progress=False,
                           segments=[[(0.5, 1.0)]])
  other = F.extract_features([path], F.FeatureConfig(num_clips=1, clip_seconds=1.5),
                             num_workers=1, cache_dir=cache, progress=False)
  assert seg.cache["miss"] == 1 and other.cache["miss"] == 1
  assert len(glob.glob(os.path.join(cache, "*.npz"))) == 3
  assert seg.features.shape == (1, 389) and other.features.shape == (1, 389)
