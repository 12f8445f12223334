"""Every tag-data format the tools read, by name or detected: ``load_any``.

Formats (``FORMATS``):
  tagtable       our tag table (TSV/CSV, crbm_jax.data.tagtable); several files are
                 concatenated when their columns agree
  magnatagatune  annotations_final.csv [+ clip_info_final.csv], or their folder
  mtg-jamendo    autotagging*.tsv files (e.g. a split's train/validation/test)
  msd-lastfm     Last.fm JSON track files / folders / .zip, or lastfm_tags.db
  jams           .jams files or folders of them
  majorminer     clip_tags_with_song.tsv, or its folder
  hetrec         the HetRec 2011 Last.fm folder (or its user_taggedartists.dat)

``load_any(paths, fmt="auto", **options)`` returns a TagTable; ``read_any`` also
returns what was read and skipped (``LoadInfo``), and ``LoadInfo.summary()`` is the
one line the tools print. Options (each belongs to one format; giving one to another
format is an error): ``top_tags``, ``tags``, ``split`` (magnatagatune);
``categories``, ``keep_category`` (mtg-jamendo); ``min_weight`` (msd-lastfm);
``namespaces``, ``min_confidence`` (jams).

``define_format_flags()`` defines ``--format`` and one flag per option (``--mtat_top_tags``,
``--jamendo_categories``, ``--lastfm_min_weight``, ...) for any absl tool, and
``format_from_flags(FLAGS)`` turns them back into ``(fmt, options)`` for ``load_any``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from crbm_jax.data import tagtable as tt
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable

PathLike = Union[str, os.PathLike]
FORMATS = ("tagtable", "magnatagatune", "mtg-jamendo", "msd-lastfm", "jams", "majorminer",
           "hetrec")
OPTIONS = {
    "top_tags": "magnatagatune", "tags": "magnatagatune", "split": "magnatagatune",
    "categories": "mtg-jamendo", "keep_category": "mtg-jamendo",
    "min_weight": "msd-lastfm",
    "namespaces": "jams", "min_confidence": "jams",
}


@dataclasses.dataclass(frozen=True)
class LoadInfo:
  """What ``read_any`` read: format, input paths, rows, and {reason: count} skipped."""
  format: str
  paths: Tuple[str, ...]
  num_rows: int
  skipped: Dict[str, int]

  def summary(self) -> str:
    """One line: format, rows and what was skipped."""
    where = self.paths[0] if len(self.paths) == 1 else f"{len(self.paths)} inputs"
    line = f"read {self.num_rows:,} rows from {where} (format {self.format})"
    skipped = [f"{n:,} {reason}" for reason, n in self.skipped.items() if n]
    return line + ("; skipped " + ", ".join(skipped) if skipped else "; skipped nothing")


# -- detection ---------------------------------------------------------------------------

def _head(path: str, size: int = 65536) -> str:
  """The start of a text file (``.gz`` unpacked) for sniffing."""
  import gzip  # pylint: disable=import-outside-toplevel
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        data = f.read(size)
    else:
      with open(path, "rb") as f:
        data = f.read(size)
  except (OSError, EOFError) as e:
    raise DataError(f"cannot read file: {getattr(e, 'strerror', None) or e}", path) from e
  return data.decode("utf-8", "replace").lstrip("\ufeff")


def _header_fields(first_line: str) -> List[str]:
  sep = "\t" if "\t" in first_line else ","
  return [f.strip().strip('"').strip() for f in first_line.rstrip("\r").split(sep)]


def _detect_file(path: str) -> str:
  from crbm_jax.data import jamendo, msd_lastfm  # pylint: disable=import-outside-toplevel
  name = os.path.basename(path).lower()
  base = name[:-3] if name.endswith(".gz") else name
  if base.endswith(".jams"):
    return "jams"
  if base in ("annotations_final.csv", "clip_info_final.csv"):
    return "magnatagatune"
  if base in ("user_taggedartists.dat", "user_taggedartists-timestamps.dat"):
    return "hetrec"
  if base == "clip_tags_with_song.tsv":
    return "majorminer"
  if base.endswith(".zip"):
    return "msd-lastfm"
  if msd_lastfm.is_sqlite(path):
    return "msd-lastfm"
  head = _head(path)
  if not head.strip():
    raise DataError("the file is empty" if not head else "the file holds only blank "
                    "lines", path)
  if base.endswith((".db", ".sqlite", ".sqlite3")):
    return "msd-lastfm"  # its reader says that it is not an SQLite database
  if base.endswith(".json"):
    try:
      doc = json.loads(head) if len(head) < 65536 else None
    except json.JSONDecodeError as e:
      raise DataError(f"not valid JSON: {e.msg} (column {e.colno})", path, e.lineno) from e
    if isinstance(doc, dict) and "annotations" in doc:
      return "jams"
    if isinstance(doc, dict) and "tags" in doc:
      return "msd-lastfm"
    if doc is None and '"annotations"' in head:
      return "jams"
    raise DataError("a .json file that is neither JAMS (no 'annotations') nor a Last.fm "
                    "track file (no 'tags'); give --format", path)
  first = head.split("\n", 1)[0]
  fields = _header_fields(first)
  lower = [f.lower() for f in fields]
  if jamendo.is_jamendo_header(fields):
    return "mtg-jamendo"
  if "clip_id" in lower and ("mp3_path" in lower or "segmentstart" in lower):
    return "magnatagatune"
  if ("clip" in lower or "item" in lower) and "tag" in lower:
    return "tagtable"
  parts = first.rstrip("\r").split("\t")
  if len(parts) == 7 and ":" in parts[4]:
    return "majorminer"
  if {"clip", "item", "tag"} & set(lower):
    return "tagtable"  # a tag table missing a column: its loader says which, and where
  raise DataError(f"cannot tell the format from the first line {first[:80]!r}: not a tag "
                  "table (no clip and tag columns), MagnaTagATune, MTG-Jamendo, "
                  "MajorMiner or JAMS; give --format (one of "
                  f"{', '.join(FORMATS)})", path, 1)


def _detect_folder(path: str) -> str:
  names = set(os.listdir(path))
  for marker, fmt in (("annotations_final.csv", "magnatagatune"),
                      ("user_taggedartists.dat", "hetrec"),
                      ("clip_tags_with_song.tsv", "majorminer"),
                      ("lastfm_tags.db", "msd-lastfm")):
    if marker in names:
      return fmt
  if any(n.startswith("autotagging") and n.endswith(".tsv") for n in names):
    return "mtg-jamendo"
  for _, dirs, files in os.walk(path):
    dirs.sort()
    for f in sorted(files):
      if f.lower().endswith(".jams"):
        return "jams"
      if f.lower().endswith(".json"):
        return "msd-lastfm"
  raise DataError("cannot tell the format of this folder (no annotations_final.csv, "
                  "user_taggedartists.dat, clip_tags_with_song.tsv, lastfm_tags.db, "
                  "autotagging*.tsv, .jams or .json files); give --format", path)


def detect_format(paths: Union[PathLike, Sequence[PathLike]]) -> str:
  """The format of the inputs (all must agree); DataError naming the file if unknown."""
  paths = _as_list(paths)
  found = {}
  for path in paths:
    if not os.path.exists(path):
      raise DataError("no such file or folder", path)
    found[path] = _detect_folder(path) if os.path.isdir(path) else _detect_file(path)
  kinds = sorted(set(found.values()))
  if len(kinds) > 1:
    raise DataError("the inputs are in different formats: " + ", ".join(
        f"{p} ({f})" for p, f in found.items()) + "; convert them one format at a time")
  return kinds[0]


def _as_list(paths) -> List[str]:
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  paths = [os.fspath(p) for p in paths]
  if not paths:
    raise DataError("no input given")
  return paths


# -- readers -----------------------------------------------------------------------------

def concat_tables(tables: Sequence[TagTable], source: str) -> TagTable:
  """Rows of several tables with the same columns; DataError on differing columns or a
  row key ((clip, [user], tag)) in two tables."""
  if len(tables) == 1:
    return tables[0]
  cols = tables[0].columns()
  for t in tables[1:]:
    if t.columns() != cols:
      raise DataError(f"{t.source} has columns {', '.join(t.columns())} but "
                      f"{tables[0].source} has {', '.join(cols)}; give tables with the "
                      "same columns")
  kw = {name: np.concatenate([getattr(t, name) for t in tables]) for name in cols}
  keys = list(zip(*(kw[n].tolist() for n in ("clip", "user", "tag") if n in kw)))
  owner = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
  first: Dict[tuple, int] = {}
  for k, key in enumerate(keys):
    j = first.setdefault(key, k)
    if j != k:
      raise DataError(f"row {key!r} is in both {tables[owner[j]].source} and "
                      f"{tables[owner[k]].source}")
  return TagTable(source=source, **kw)


def _read_tagtable(paths, **_):
  return concat_tables([tt.load_tag_table(p) for p in paths], ", ".join(paths)), {}


def _read_magnatagatune(paths, **options):
  from crbm_jax.data import magnatagatune  # pylint: disable=import-outside-toplevel
  annotations = clip_info = None
  for path in paths:
    if os.path.isdir(path):
      a, c = magnatagatune.find_files(path)
      pairs = [(a, "annotations"), (c, "clip_info")]
    else:
      header = [f.lower() for f in _header_fields(_head(path, 8192).split("\n", 1)[0])]
      pairs = [(path, "clip_info" if "segmentstart" in header else "annotations")]
    for p, kind in pairs:
      if p is None:
        continue
      if kind == "annotations":
        if annotations is not None:
          raise DataError(f"two annotation files given ({annotations} and {p})", p)
        annotations = p
      else:
        if clip_info is not None:
          raise DataError(f"two clip_info files given ({clip_info} and {p})", p)
        clip_info = p
  if annotations is None:
    raise DataError("MagnaTagATune needs annotations_final.csv (the 0/1 tag matrix) "
                    "besides clip_info_final.csv", paths[0])
  tags = options.pop("tags", None)
  if isinstance(tags, str):
    tags = [tags]
  if tags is not None and len(tags) == 1 and os.path.isfile(tags[0]):
    tags = magnatagatune.read_tag_names(tags[0])
  return magnatagatune.read_magnatagatune(annotations, clip_info, tags=tags, **options)


def _read_jamendo(paths, **options):
  from crbm_jax.data import jamendo  # pylint: disable=import-outside-toplevel
  files = []
  for path in paths:
    if os.path.isdir(path):
      found = sorted(n for n in os.listdir(path)
                     if n.startswith("autotagging") and n.endswith(".tsv"))
      if len(found) != 1:
        raise DataError(f"this folder has {len(found)} autotagging*.tsv files "
                        f"({', '.join(found[:4])}{', ...' if len(found) > 4 else ''}); "
                        "name the file(s) to read", path)
      files.append(os.path.join(path, found[0]))
    else:
      files.append(path)
  return jamendo.read_jamendo(files, **options)


def _read_msd_lastfm(paths, **options):
  from crbm_jax.data import msd_lastfm  # pylint: disable=import-outside-toplevel
  resolved = []
  for path in paths:
    db = os.path.join(path, "lastfm_tags.db")
    resolved.append(db if os.path.isdir(path) and os.path.isfile(db) else path)
  return msd_lastfm.read_msd_lastfm(resolved, **options)


def _read_jams(paths, **options):
  from crbm_jax.data import jams_io  # pylint: disable=import-outside-toplevel
  return jams_io.read_jams(paths, **options)


def _single(paths, what: str) -> str:
  if len(paths) != 1:
    raise DataError(f"{what} reads one input, got {len(paths)}", paths[1])
  return paths[0]


def _read_majorminer(paths, **_):
  from crbm_jax.data import majorminer  # pylint: disable=import-outside-toplevel
  path = _single(paths, "majorminer")
  if os.path.isdir(path):
    path = os.path.join(path, "clip_tags_with_song.tsv")
  return majorminer.load_majorminer_tags(path), {}


def _read_hetrec(paths, **_):
  from crbm_jax.data import hetrec  # pylint: disable=import-outside-toplevel
  path = _single(paths, "hetrec")
  if not os.path.isdir(path):
    path = os.path.dirname(os.path.abspath(path))
  return hetrec.load_hetrec_triples(path), {}


READERS: Dict[str, Callable] = {
    "tagtable": _read_tagtable, "magnatagatune": _read_magnatagatune,
    "mtg-jamendo": _read_jamendo, "msd-lastfm": _read_msd_lastfm, "jams": _read_jams,
    "majorminer": _read_majorminer, "hetrec": _read_hetrec,
}


def read_any(paths: Union[PathLike, Sequence[PathLike]], fmt: str = "auto",
             **options) -> Tuple[TagTable, LoadInfo]:
  """Reads tag data in any known format (``fmt="auto"``: detected).

  Returns:
    (TagTable, LoadInfo with the format and the skipped-record counts).
  Raises:
    DataError (one line: file, line or key, reason) for unreadable or invalid input, an
    unknown format, or an option that does not belong to the format.
  """
  paths = _as_list(paths)
  fmt = (fmt or "auto").strip().lower()
  if fmt == "auto":
    fmt = detect_format(paths)
  elif fmt not in READERS:
    raise DataError(f"unknown format {fmt!r}; choose from auto, {', '.join(FORMATS)}")
  else:
    for path in paths:
      if not os.path.exists(path):
        raise DataError("no such file or folder", path)
  for name in options:
    if name not in OPTIONS:
      raise TypeError(f"unknown format option {name!r}; known: {', '.join(OPTIONS)}")
    if OPTIONS[name] != fmt:
      raise DataError(f"option {name} applies to {OPTIONS[name]} input, but the input is "
                      f"{fmt}", paths[0])
  table, skipped = READERS[fmt](paths, **options)
  if table.num_rows and hasattr(tt, "normalize_tag"):  # as load_tag_table reads tags
    tags = np.array([tt.normalize_tag(t) for t in table.tag.tolist()], dtype=str)
    if not np.array_equal(tags, table.tag):
      table = dataclasses.replace(table, tag=tags)
  info = LoadInfo(format=fmt, paths=tuple(paths), num_rows=table.num_rows,
                  skipped=dict(skipped))
  return table, info


def load_any(path_or_paths: Union[PathLike, Sequence[PathLike]], fmt: str = "auto",
             **options) -> TagTable:
  """``read_any`` without the LoadInfo."""
  return read_any(path_or_paths, fmt, **options)[0]


# -- absl flags ----------------------------------------------------------------------------

# flag name -> (option, kind, default, help)
FLAG_OPTIONS = {
    "mtat_top_tags": ("top_tags", "integer", 0, "MagnaTagATune: keep the N tags on the "
                      "most clips (50 = the usual top-50 subset; 0 = all 188)."),
    "mtat_tags": ("tags", "list", None, "MagnaTagATune: keep only these tags "
                  "(comma-separated, or one file with a tag per line); matched ignoring "
                  "case, spaces and underscores."),
    "mtat_split": ("split", "list", None, "MagnaTagATune: keep the clips listed in these "
                   "split files (comma-separated; one clip_id or mp3_path per line, or "
                   ".npy string arrays)."),
    "jamendo_categories": ("categories", "list", None, "MTG-Jamendo: keep tags of these "
                           "categories (genre, instrument, mood/theme); default all."),
    "jamendo_keep_category": ("keep_category", "bool", True, "MTG-Jamendo: keep the "
                              "category in the tag (genre---rock); --nojamendo_keep_category"
                              " keeps only 'rock'."),
    "lastfm_min_weight": ("min_weight", "float", 0.0, "MSD Last.fm: keep tags with weight "
                          ">= this (0-100; 0 keeps all)."),
    "jams_namespaces": ("namespaces", "list", ["tag_*"], "JAMS: annotation namespaces to "
                        "read (glob patterns, comma-separated)."),
    "jams_min_confidence": ("min_confidence", "float", None, "JAMS: drop observations "
                            "whose confidence is below this (e.g. smoothed affinities)."),
}


def define_format_flags(define: Optional[Callable] = None, format_flag: str = "format"
                        ) -> None:
  """Defines ``--<format_flag>`` (auto or one of FORMATS) and the FLAG_OPTIONS flags on
  absl's global FLAGS, skipping any already defined.

  Args:
    define: ``define(define_fn, name, default, help, **kw)``, e.g. the one
      ``crbm_jax.cli.runner.make_define`` returns (a tool's own flags, which --help
      lists); default: define directly on the global FLAGS.
    format_flag: the name of the format flag (crbm-convert calls it ``from``).
  """
  from absl import flags  # pylint: disable=import-outside-toplevel

  def plain(define_fn, name, *args, **kw):
    if name not in flags.FLAGS:
      define_fn(name, *args, **kw)

  define = define or plain
  define(flags.DEFINE_enum, format_flag, "auto", ["auto", *FORMATS],
         "Input format; 'auto' detects it from file names and headers.")
  kinds = {"integer": flags.DEFINE_integer, "list": flags.DEFINE_list,
           "bool": flags.DEFINE_bool, "float": flags.DEFINE_float}
  for name, (_, kind, default, text) in FLAG_OPTIONS.items():
    define(kinds[kind], name, default, text)


def format_from_flags(flag_values, format_flag: str = "format") -> Tuple[str, dict]:
  """(format, options for load_any) from parsed flags: only the format options the user
  gave on the command line are passed, so a default never conflicts with the format."""
  fmt = getattr(flag_values, format_flag)
  options = {}
  for name, (option, _, _, _) in FLAG_OPTIONS.items():
    if name in flag_values and flag_values[name].present:
      options[option] = flag_values[name].value
  return fmt, options
