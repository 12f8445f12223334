"""Atomic file writes: every output of the package goes through these.

A temporary file in the target's folder, then ``os.replace``, so a reader never sees a
half-written file and a failure leaves the old file (or none).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import zipfile
from typing import Iterable, Sequence

import numpy as np

from crbm_jax.util import interrupt


def write_stream_atomic(path: str, write, mode: int = 0o644):
  """``write(f)`` writes the file through the binary file object ``f`` (any number of
  writes: memory holds what it writes at a time), into a temporary file beside ``path``
  that then replaces it; a Ctrl-C removes the temporary (``interrupt.scratch``). Returns
  what ``write`` returns."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
  with interrupt.scratch(tmp):
    try:
      with os.fdopen(fd, "wb") as f:
        result = write(f)
      os.chmod(tmp, mode)
      with interrupt.finishing():
        os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
  return result


def write_bytes_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
  write_stream_atomic(path, lambda f: f.write(data), mode)


def replace_folder_atomic(folder: str, fill, kind: str, not_a_folder=None) -> str:
  """Writes a folder as a unit: ``fill(tmp)`` writes its files into a new folder
  ``.tmp-<kind>-*`` beside it, which then replaces ``folder`` (an older one is moved to
  ``.old-<kind>-*`` and removed; restored if the switch fails). A Ctrl-C removes the
  temporary folder and waits for a switch that has begun (``interrupt``).

  Args:
    folder: the folder to write; kind: the temporaries' name part;
    not_a_folder: the exception to raise when ``folder`` exists and is not a folder
      (None: such a path is replaced as well).
  Returns:
    the absolute path of ``folder``.
  """
  import shutil  # pylint: disable=import-outside-toplevel
  folder = os.path.abspath(folder)
  parent = os.path.dirname(folder)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".tmp-{kind}-", dir=parent)
  old = None
  with interrupt.scratch(tmp):
    try:
      fill(tmp)
      os.chmod(tmp, 0o755)
      with interrupt.finishing():  # a Ctrl-C waits for both renames
        if os.path.lexists(folder):
          if not_a_folder is not None and (not os.path.isdir(folder)
                                           or os.path.islink(folder)):
            raise not_a_folder
          old = tempfile.mkdtemp(prefix=f".old-{kind}-", dir=parent)
          os.rmdir(old)
          os.replace(folder, old)
        os.replace(tmp, folder)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      if old is not None and not os.path.lexists(folder):
        os.replace(old, folder)
      raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)
  return folder


def write_text_atomic(path: str, text: str) -> None:
  write_bytes_atomic(path, text.encode("utf-8"))


def to_jsonable(x):
  """Numpy scalars and arrays (nested in dicts, lists, tuples) as plain Python values;
  NaN and +-infinity become None (JSON null), so the result is strict JSON."""
  if isinstance(x, dict):
    return {str(k): to_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [to_jsonable(v) for v in x]
  if isinstance(x, np.ndarray) or hasattr(x, "__array__") and not isinstance(x, str):
    return to_jsonable(np.asarray(x).tolist())
  if isinstance(x, np.generic):
    return to_jsonable(x.item())
  if isinstance(x, float) and not math.isfinite(x):
    return None
  return x


def json_text(obj, **json_kw) -> str:
  """``obj`` as strict JSON text (RFC 8259: no NaN or Infinity; non-finite floats are
  written as null). Default: indent=1, sorted keys; numpy values as Python values,
  anything else JSON cannot hold as a string."""
  kw = dict(indent=1, sort_keys=True, default=str)
  kw.update(json_kw)
  kw["allow_nan"] = False  # to_jsonable has removed every non-finite float
  return json.dumps(to_jsonable(obj), **kw) + "\n"


def write_json_atomic(path: str, obj, **json_kw) -> None:
  """``obj`` as strict JSON (see ``json_text``), written atomically."""
  write_text_atomic(path, json_text(obj, **json_kw))


def csv_cell(x):
  """A CSV cell: an empty cell for a NaN or infinite float (no value), else ``x``."""
  if isinstance(x, (float, np.floating)) and not math.isfinite(float(x)):
    return ""
  return x


def write_csv_atomic(path: str, header: Sequence[str], rows: Iterable[Sequence],
                     delimiter: str = ",") -> None:
  """A CSV (or TSV) with a header row; '\\n' line ends; non-finite floats are written as
  empty cells (readers: an empty cell is "no value", e.g. a pattern without pairs)."""
  buf = io.StringIO()
  writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
  writer.writerow(header)
  writer.writerows([csv_cell(x) for x in row] for row in rows)
  write_text_atomic(path, buf.getvalue())


def npz_bytes(compress: bool = False, **arrays) -> bytes:
  """An ``np.load``-able .npz with fixed zip timestamps (same arrays, same bytes); no
  pickled objects."""
  buf = io.BytesIO()
  method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
  with zipfile.ZipFile(buf, "w", compression=method) as zf:
    for name, value in arrays.items():
      info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = method
      array = io.BytesIO()
      np.lib.format.write_array(array, np.asarray(value), allow_pickle=False)
      zf.writestr(info, array.getvalue())
  return buf.getvalue()


def write_npz_atomic(path: str, compress: bool = False, **arrays) -> None:
  write_bytes_atomic(path, npz_bytes(compress, **arrays))


def save_figure_atomic(fig, path: str, **savefig_kw) -> None:
  """``fig.savefig`` into memory (format from the extension), then one atomic write."""
  buf = io.BytesIO()
  fmt = os.path.splitext(path)[1].lstrip(".") or "png"
  import warnings  # pylint: disable=import-outside-toplevel
  with warnings.catch_warnings():  # e.g. "Glyph ... missing from font" for an emoji in a
    warnings.simplefilter("ignore")  # title (from a file name): never on the console
    fig.savefig(buf, format=fmt, **savefig_kw)
  write_bytes_atomic(path, buf.getvalue())
