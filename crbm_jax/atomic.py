"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``, so a
reader never sees a half-written file and a failure leaves the old file (or none)."""
from __future__ import annotations

import json
import os
import tempfile


def write_bytes_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text_atomic(path: str, text: str) -> None:
  write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, obj, **json_kw) -> None:
  """``obj`` as JSON (default: indent=1, sort_keys, numpy scalars via float)."""
  kw = dict(indent=1, sort_keys=True, default=float)
  kw.update(json_kw)
  write_text_atomic(path, json.dumps(obj, **kw) + "\n")
