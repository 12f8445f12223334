"""A resumable store of finished results: one JSON file per task, named by a stable hash.

A stage that computes many independent results (Table 2's fits, one per grid point, group
set and split) asks the store first and computes only what is missing, so a run that was
stopped resumes where it was, and processes that share a workdir (``jax.distributed``, or
``task_shard``) each compute a share and read the others' files.

A task's key is ``stable_hash`` of the store's ``base`` fields (everything a result depends
on besides the task: code version, data fingerprint, seed, training settings) merged with
the task's own fields. Results are written atomically, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, Iterable, Optional

from crbm_jax.util.atomic import write_json_atomic
from crbm_jax.util.fingerprint import stable_hash


class ResultStore:
  """Results under ``root/<key[:2]>/<key>.json``; ``base`` is part of every key."""

  def __init__(self, root: str, base: dict):
    self.root, self.base = root, dict(base)

  def key(self, **fields) -> str:
    return stable_hash({**self.base, **fields})

  def path(self, key: str) -> str:
    return os.path.join(self.root, key[:2], key + ".json")

  def load(self, key: str) -> Optional[dict]:
    """The stored result, or None when the task has not finished."""
    path = self.path(key)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  def save(self, key: str, result: dict) -> dict:
    write_json_atomic(self.path(key), result)
    return result

  def wait(self, keys: Iterable[str], timeout_s: float, what: str = "results",
           on_found=None, poll_s: float = 0.5) -> Dict[str, dict]:
    """Polls until every key's result exists (written by other processes); returns
    {key: result}. ``on_found(key, result)`` is called as each one appears. Raises
    TimeoutError naming the folder and the number missing after ``timeout_s``."""
    keys = list(dict.fromkeys(keys))
    found: Dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while True:
      for k in keys:
        if k not in found:
          r = self.load(k)
          if r is not None:
            found[k] = r
            if on_found is not None:
              on_found(k, r)
      if len(found) == len(keys):
        return found
      if time.monotonic() > deadline:
        raise TimeoutError(f"{self.root}: {len(keys) - len(found)} {what} from other "
                           f"processes did not appear within {timeout_s} s")
      time.sleep(poll_s)
