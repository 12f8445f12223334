"""The tag table: the one interchange format for users' tag data.

CONTRACT (other modules rely on this; extend, do not change field names):
a TagTable holds one row per (clip, [user], tag) as parallel numpy arrays.
String columns are numpy unicode arrays (dtype ``<U..``); absent optional
columns are ``None``; float columns use NaN for "unknown".
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import importlib.resources
import io
import itertools
import math
import os
import unicodedata
from typing import Optional, Union

import numpy as np

from crbm_jax.util.atomic import write_bytes_atomic, write_stream_atomic
from crbm_jax.data.errors import DataError

STRING_COLUMNS = ("clip", "tag", "user", "track", "artist", "album")
FLOAT_COLUMNS = ("start", "duration", "track_duration")
OPTIONAL_COLUMNS = ("user", "track", "artist", "album", "start", "duration",
                    "track_duration")


@dataclasses.dataclass(frozen=True)
class TagTable:
  """One row per (clip, [user], tag).

  Attributes:
    clip: [R] str, the tagged item (a clip; or an artist/track for item-level data).
    tag: [R] str, the tag as given (surface form; canonicalise separately).
    count: [R] int64 >= 1, how many times this row was observed (e.g. players).
    user: [R] str or None.
    track, artist, album: [R] str or None.
    start: [R] float seconds into the track or None (NaN = unknown).
    duration: [R] float clip length in seconds or None.
    track_duration: [R] float track length in seconds or None.
    source: where the table came from (file path or data-set name), for messages.
  """
  clip: np.ndarray
  tag: np.ndarray
  count: np.ndarray
  user: Optional[np.ndarray] = None
  track: Optional[np.ndarray] = None
  artist: Optional[np.ndarray] = None
  album: Optional[np.ndarray] = None
  start: Optional[np.ndarray] = None
  duration: Optional[np.ndarray] = None
  track_duration: Optional[np.ndarray] = None
  source: str = ""

  @property
  def num_rows(self) -> int:
    return int(self.clip.shape[0])

  def has(self, column: str) -> bool:
    return getattr(self, column) is not None

  def columns(self) -> tuple:
    """Names of the columns present, in canonical order."""
    names = ["clip", "tag", "count"] + [c for c in OPTIONAL_COLUMNS if self.has(c)]
    return tuple(names)

  def subset(self, mask_or_index) -> "TagTable":
    """Rows selected by a boolean mask or an integer index array."""
    kw = {}
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      kw[f.name] = value[mask_or_index] if isinstance(value, np.ndarray) else value
    return TagTable(**kw)


REQUIRED_COLUMNS = ("clip", "tag")
COLUMN_ALIASES = {"item": "clip"}
KNOWN_COLUMNS = STRING_COLUMNS + FLOAT_COLUMNS + ("count",)
MAX_COUNT = 10 ** 12  # larger counts are refused: sums over rows must fit in int64
NONNEGATIVE_COLUMNS = ("duration", "track_duration")


def normalize_tag(text: str) -> str:
  """Unicode NFKC form of a tag, so that one tag typed in different Unicode spellings
  (composed or decomposed accents, full-width letters, ligatures) is one tag."""
  return unicodedata.normalize("NFKC", text)

PathLike = Union[str, os.PathLike]


def is_tsv(path: str, header_line: str) -> bool:
  """TSV for .tsv/.tab, CSV for .csv (``.gz`` ignored), else TSV iff a tab
  is in the header line."""
  name = path[:-3] if path.endswith(".gz") else path
  ext = os.path.splitext(name)[1].lower()
  if ext in (".tsv", ".tab"):
    return True
  if ext == ".csv":
    return False
  return "\t" in header_line


def read_text(path: PathLike) -> str:
  """Whole file as text (``.gz`` unpacked, BOM dropped); invalid UTF-8 is
  reported as DataError with its line number."""
  path = os.fspath(path)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise DataError(f"cannot read file: {e.strerror}", path) from e
  if path.endswith(".gz"):
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as e:
      raise DataError(f"not a valid gzip file: {e}", path) from e
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise DataError(f"invalid UTF-8 byte {data[e.start:e.start + 1]!r} "
                    f"(the file must be UTF-8)", path, line) from e
  return text[1:] if text.startswith("\ufeff") else text


def split_rows(text: str, tsv: bool, path: str) -> list:
  """[(line_number, [fields])] for non-blank lines, header first."""
  if tsv:
    lines = text.split("\n")
    if "\r" in text:
      lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return [(i, line.split("\t")) for i, line in enumerate(lines, start=1)
            if line and not line.isspace()]
  reader = csv.reader(io.StringIO(text, newline=""), strict=True)
  rows = []
  start = 1
  try:
    for fields in reader:
      if any(f.strip() for f in fields):
        rows.append((start, fields))
      start = reader.line_num + 1
  except csv.Error as e:
    if "end of data" in str(e):  # a quote opened in the record that starts at `start`
      raise DataError("malformed CSV: a quoted field that starts on this line is never "
                      "closed (unbalanced \")", path, start) from e
    raise DataError(f"malformed CSV: {e}", path, reader.line_num) from e
  return rows


def _parse_header(fields: list, path: str) -> list:
  names = []
  for f in fields:
    name = f.strip().lower()
    name = COLUMN_ALIASES.get(name, name)
    if name and name in names:
      raise DataError(f"column {name!r} appears twice in the header "
                      "('item' is an alias of 'clip')", path, 1)
    names.append(name)
  missing = [c for c in REQUIRED_COLUMNS if c not in names]
  if missing:
    raise DataError(f"missing required column(s) {', '.join(missing)} in header "
                    f"{fields!r} (a header row with at least 'clip' (or 'item') "
                    "and 'tag' is required)", path, 1)
  return names


def load_tag_table(path: PathLike) -> TagTable:
  """Reads a tag-table file (TSV or CSV with a header; ``.gz`` allowed).

  TSV when the extension is .tsv/.tab, CSV when .csv, otherwise TSV if the
  header line has a tab. Columns: ``clip`` (alias ``item``) and ``tag``
  required; optional ``user``, ``track``, ``artist``, ``album``, ``start``,
  ``duration``, ``track_duration`` (floats, blank = NaN) and ``count`` (integer
  >= 1, default 1). Unknown columns are ignored.

  Raises:
    DataError naming file, line and reason for: missing required column, wrong
    number of fields, blank clip or tag, bad count (not an integer, < 1 or
    > MAX_COUNT) or number, a negative or infinite duration / track_duration,
    invalid UTF-8, an unbalanced CSV quote (at the line where it opens),
    duplicate (clip, user, tag) rows, a clip given two different tracks.

  Tags are normalised to Unicode NFKC (``normalize_tag``); other columns are
  kept exactly as written.
  """
  path = os.fspath(path)
  text = read_text(path)
  first = text.split("\n", 1)[0]
  tsv = is_tsv(path, first)
  rows = split_rows(text, tsv, path)
  if not rows:
    raise DataError("empty file: a header row is required", path, 1)
  header_line, header = rows[0]
  names = _parse_header(header, path)
  width = len(names)
  index = {n: i for i, n in enumerate(names) if n in KNOWN_COLUMNS}
  body = rows[1:]
  bad = next((r for r in body if len(r[1]) != width), None)
  if bad is not None:
    raise DataError(f"expected {width} fields (as in the header), found "
                    f"{len(bad[1])}", path, bad[0])
  lines = [line for line, _ in body]
  cols = list(zip(*[fields for _, fields in body])) if body else [()] * width
  del text, rows, body  # the per-row lists: the columns hold what is needed

  def column(name):
    return [v.strip() for v in cols[index[name]]]

  clip, tag = column("clip"), column("tag")
  raw_tag = tag
  tag = [normalize_tag(t).strip() for t in tag]
  for name, values in (("clip", clip), ("tag", tag)):
    for k, v in enumerate(values):
      if not v:
        raise DataError(f"blank {name}", path, lines[k])
  if "count" in index:
    count = []
    for k, v in enumerate(column("count")):
      if not v:
        count.append(1)
        continue
      try:
        c = int(v)
      except ValueError:
        raise DataError(f"count {v!r} is not an integer", path, lines[k]) from None
      if c < 1:
        raise DataError(f"count {c} is less than 1", path, lines[k])
      if c > MAX_COUNT:
        raise DataError(f"count {v} is too large (at most {MAX_COUNT:.0e})", path,
                        lines[k])
      count.append(c)
  else:
    count = [1] * len(clip)
  kw = {}
  for name in ("user", "track", "artist", "album"):
    if name in index:
      kw[name] = column(name)
  for name in FLOAT_COLUMNS:
    if name in index:
      values = []
      for k, v in enumerate(column(name)):
        if not v:
          values.append(math.nan)
          continue
        try:
          x = float(v)
        except ValueError:
          raise DataError(f"{name} {v!r} is not a number", path, lines[k]) from None
        if name in NONNEGATIVE_COLUMNS and not (x >= 0 and math.isfinite(x)):
          if not math.isnan(x):
            raise DataError(f"{name} {v!r} must be a finite number of seconds >= 0 "
                            "(leave it blank when unknown)", path, lines[k])
        values.append(x)
      kw[name] = values

  def strings(values):
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")

  # Vectorised checks (sorting, not a dict of every row): the first row whose key or
  # track repeats/contradicts an earlier row's, as a loop over the rows would find it.
  arrays = {"clip": strings(clip), "tag": strings(tag)}
  arrays.update({n: strings(v) for n, v in kw.items() if n in STRING_COLUMNS})
  user = kw.get("user")
  key_names = ("clip", "user", "tag") if user is not None else ("clip", "tag")
  k, j = _first_repeat([arrays[n] for n in key_names])
  if k is not None:
    key = tuple(str(kw.get(n, {"clip": clip, "tag": tag}.get(n))[k]) for n in key_names)
    what = "(clip, user, tag)" if user is not None else "(clip, tag)"
    spelling = ("" if raw_tag[k] == raw_tag[j] else
                " (the same tag in two Unicode spellings)")
    raise DataError(f"duplicate row {what} = {key!r}, first on line "
                    f"{lines[j]}{spelling} (use the count column instead)",
                    path, lines[k])
  if "track" in kw:
    k, first_k = _first_contradiction(arrays["clip"], arrays["track"])
    if k is not None:
      raise DataError(f"clip {clip[k]!r} is in track {kw['track'][k]!r} here but in track "
                      f"{kw['track'][first_k]!r} on line {lines[first_k]}",
                      path, lines[k])
  del raw_tag, cols

  out = {n: arrays[n] for n in kw if n in STRING_COLUMNS}
  out.update({n: np.array(v, dtype=np.float64) for n, v in kw.items()
              if n in FLOAT_COLUMNS})
  return TagTable(clip=arrays["clip"], tag=arrays["tag"],
                  count=np.array(count, dtype=np.int64), source=path, **out)


def _codes(columns) -> np.ndarray:
  """[R] int64 codes equal for rows equal in every column of ``columns``."""
  code = np.zeros(len(columns[0]), np.int64)
  for col in columns:
    _, inverse = np.unique(col, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    _, code = np.unique(code * (int(inverse.max(initial=0)) + 1) + inverse,
                        return_inverse=True)
    code = code.reshape(-1).astype(np.int64)
  return code


def _first_repeat(columns) -> tuple:
  """(k, j): the first row k equal (in every column) to an earlier row, and the first
  such row j; (None, None) when the rows are distinct."""
  if not len(columns[0]):
    return None, None
  _, first, inverse = np.unique(_codes(columns), return_index=True, return_inverse=True)
  first_of_row = first[inverse.reshape(-1)]
  repeats = np.flatnonzero(first_of_row != np.arange(len(first_of_row)))
  if not repeats.size:
    return None, None
  return int(repeats[0]), int(first_of_row[repeats[0]])


def _first_contradiction(key: np.ndarray, value: np.ndarray) -> tuple:
  """(k, j): the first row k whose ``value`` differs from that of the first row j with
  its ``key``; (None, None) when every key has one value."""
  if not len(key):
    return None, None
  _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
  first_of_row = first[inverse.reshape(-1)]
  bad = np.flatnonzero(value[first_of_row] != value)
  if not bad.size:
    return None, None
  return int(bad[0]), int(first_of_row[bad[0]])


def _format_float(x: float) -> str:
  return "" if math.isnan(x) else repr(float(x))


def _new_file_mode(path: str) -> int:
  """The mode an ordinary write would give: the old file's, else 0666 & ~umask."""
  try:
    return os.stat(path).st_mode & 0o777
  except OSError:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def encode_rows(columns, rows, path: str, header: bool = True) -> bytes:
  """Header + rows as TSV or CSV bytes, chosen by ``path``'s extension (tag-table rules:
  CSV with CRLF so a bare carriage return inside a value reads back the same; a value with
  a tab or line break is an error in TSV). Compression is the caller's. ``header``
  False: the rows only (a later chunk of one file)."""
  buf = io.StringIO(newline="")
  if is_tsv(path, "\t"):
    for name, col in zip(columns, zip(*rows) if rows else [()] * len(columns)):
      if any(("\t" in v or "\n" in v or "\r" in v) for v in col):
        raise DataError(f"column {name} has a value with a tab or line break, "
                        "which TSV cannot hold; write a .csv instead", path)
    if header:
      buf.write("\t".join(columns) + "\n")
    buf.writelines("\t".join(r) + "\n" for r in rows)
  else:
    writer = csv.writer(buf, lineterminator="\r\n")
    if header:
      writer.writerow(columns)
    writer.writerows(rows)
  return buf.getvalue().encode("utf-8")


def table_bytes(columns, rows, path: str) -> bytes:
  """A table's file bytes: TSV or CSV by the extension of ``path`` (as ``encode_rows``;
  cells are converted with ``str``), gzip-compressed (reproducibly) for ``.gz``."""
  data = encode_rows(columns, [tuple(map(str, r)) for r in rows], path)
  return gzip.compress(data, mtime=0) if path.endswith(".gz") else data


def write_table_chunks(path: str, columns, chunks, mode: Optional[int] = None) -> int:
  """Writes a table whose rows come in chunks (an iterable of lists of row tuples of
  str), atomically, holding one chunk at a time: the same bytes as
  ``write_bytes_atomic(path, table_bytes(columns, all_rows, path))`` (``.gz``: the same
  gzip stream, compressed as it is written). Returns the number of rows."""
  import zlib  # pylint: disable=import-outside-toplevel
  # gzip.compress(data, 9, mtime=0) is zlib.compress(data, 9, wbits=31); deflate's
  # output does not depend on how its input is split.
  packer = zlib.compressobj(9, zlib.DEFLATED, 31) if path.endswith(".gz") else None

  def write(f) -> int:
    count = 0
    for k, rows in enumerate(itertools.chain([[]], chunks)):
      data = encode_rows(columns, [tuple(map(str, r)) for r in rows], path,
                         header=(k == 0))
      count += len(rows)
      f.write(packer.compress(data) if packer else data)
    if packer:
      f.write(packer.flush())
    return count
  return write_stream_atomic(path, write, _new_file_mode(path) if mode is None else mode)


def write_tag_table(table: TagTable, path: PathLike) -> None:
  """Writes ``table`` as TSV or CSV (by extension; ``.gz`` compresses).

  The write is atomic (temporary file in the same folder, then os.replace) and
  ``load_tag_table`` reads back exactly the same table. TSV cannot hold tabs or
  line breaks inside a value; such a value raises DataError (use .csv).
  """
  path = os.fspath(path)
  names = table.columns()
  columns = []
  for name in names:
    values = getattr(table, name)
    if name in FLOAT_COLUMNS:
      columns.append([_format_float(x) for x in values.tolist()])
    elif name == "count":
      columns.append([str(int(x)) for x in values.tolist()])
    else:
      col = [str(x) for x in values.tolist()]
      if any(v != v.strip() for v in col):
        raise DataError(f"cannot write a {name} with leading or trailing "
                        "white space (it would not read back the same)", path)
      if name in REQUIRED_COLUMNS and not all(col):
        raise DataError(f"cannot write a blank {name}", path)
      columns.append(col)
  rows = list(zip(*columns)) if table.num_rows else []
  data = encode_rows(names, rows, path)
  if path.endswith(".gz"):
    data = gzip.compress(data, compresslevel=9, mtime=0)
  write_bytes_atomic(path, data, mode=_new_file_mode(path))


def load_embedded_table(name: str) -> TagTable:
  """Loads the committed tag table ``crbm_jax/data/embedded/<name>``."""
  resource = importlib.resources.files("crbm_jax.data") / "embedded" / name
  with importlib.resources.as_file(resource) as path:
    table = load_tag_table(path)
  return dataclasses.replace(table, source=f"embedded:{name}")


def files_under(folder: str, suffix: str) -> list:
  """Every file under ``folder`` whose name ends with ``suffix`` (case-insensitive), walked
  in sorted order; DataError naming the folder when there is none."""
  found = []
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    found.extend(os.path.join(root, f) for f in sorted(files)
                 if f.lower().endswith(suffix))
  if not found:
    raise DataError(f"no {suffix} files in this folder", folder)
  return found
