"""Stable digests of JSON-able objects (result keys, data fingerprints, per-task seeds)."""
from __future__ import annotations

import hashlib
import json


def stable_hash(obj) -> str:
  """Hex SHA-256 of a JSON-serialisable object (sorted keys): stable across runs."""
  text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def stable_int(obj) -> int:
  """A 31-bit integer from ``stable_hash`` (for ``jax.random.fold_in``)."""
  return int(stable_hash(obj)[:8], 16) & 0x7FFFFFFF
