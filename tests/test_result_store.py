"""crbm_jax.util.result_store: the resumable store Table 2's fits are kept in."""
import threading

import pytest

from crbm_jax.util.fingerprint import stable_hash
from crbm_jax.util.result_store import ResultStore


def test_key_merges_base_and_task_fields(tmp_path):
  store = ResultStore(str(tmp_path), dict(version=3, seed=0))
  k = store.key(stage="grid", split=1)
  assert k == stable_hash(dict(version=3, seed=0, stage="grid", split=1))
  assert k != store.key(stage="grid", split=2)
  assert k != ResultStore(str(tmp_path), dict(version=3, seed=1)).key(stage="grid", split=1)


def test_save_then_load_and_missing_is_none(tmp_path):
  store = ResultStore(str(tmp_path), {})
  k = store.key(task=1)
  assert store.load(k) is None
  store.save(k, {"pl": -0.5, "values": [1, 2]})
  assert store.load(k) == {"pl": -0.5, "values": [1, 2]}
  assert store.path(k).startswith(str(tmp_path / k[:2]))
  # A fresh store over the same folder (a resumed run) sees the result.
  assert ResultStore(str(tmp_path), {}).load(k) == {"pl": -0.5, "values": [1, 2]}


def test_wait_returns_results_written_by_another_writer(tmp_path):
  store = ResultStore(str(tmp_path), {})
  keys = [store.key(task=i) for i in range(3)]
  store.save(keys[0], {"i": 0})
  seen = []
  writer = threading.Timer(0.2, lambda: [store.save(k, {"i": i})
                                         for i, k in enumerate(keys) if i])
  writer.start()
  found = store.wait(keys, timeout_s=30, on_found=lambda k, r: seen.append(r["i"]),
                     poll_s=0.05)
  writer.join()
  assert {k: r["i"] for k, r in found.items()} == {k: i for i, k in enumerate(keys)}
  assert sorted(seen) == [0, 1, 2]


def test_wait_times_out_naming_folder_and_count(tmp_path):
  store = ResultStore(str(tmp_path), {})
  with pytest.raises(TimeoutError, match=r"2 fits from other processes did not appear"):
    store.wait([store.key(task=1), store.key(task=2)], timeout_s=0.1, what="fits",
               poll_s=0.02)
