"""crbm-convert: public tag data sets -> a tag table (or JAMS). Imports no JAX."""
from __future__ import annotations

import gzip
import os
import sys
from typing import Optional, Sequence

from crbm_jax.cli import runner

PROG = "crbm-convert"
TAKES_ARGS = True
DOC = """crbm-convert: public tag data sets -> a tag table (or JAMS).

  crbm-convert --from magnatagatune annotations_final.csv clip_info_final.csv --out mtat.tsv
  crbm-convert --from mtg-jamendo autotagging-train.tsv autotagging-test.tsv --out j.tsv
  crbm-convert --from msd-lastfm lastfm_tags.db --lastfm_min_weight 50 --out lastfm.tsv
  crbm-convert --from jams annotations/ --out tags.tsv
  crbm-convert tags.tsv --out jams_folder/          (a tag table, crbm-smooth output or
                                                     crbm-autotag predict output -> one
                                                     .jams file per track)

Formats (--from, default auto = detected from names and headers): tagtable,
magnatagatune, mtg-jamendo, msd-lastfm, jams, majorminer, hetrec. Inputs are files or
folders given after the flags, each once. Prints what was read and how many records were
skipped; on an error prints one line (file, line or key, reason) and writes nothing.
JAMS output goes into a new or empty folder; a folder that holds anything is refused
unless --force, which adds or replaces only the .jams files written. The output is never
one of the inputs (nor inside one).
"""


def define_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  define(flags.DEFINE_string, "out", None, "Output: a tag table (.tsv/.csv, .gz "
         "compresses), a .jams file (one track), or a folder of .jams files (ends with / "
         "or exists).", required=True)
  define(flags.DEFINE_enum, "to", "auto", ["auto", "tagtable", "jams"], "Output kind; "
         "auto: JAMS for .jams or a folder, otherwise a tag table.")
  define(flags.DEFINE_bool, "force", False, "JAMS output into a folder that already "
         "holds files: add or replace only the .jams files written (nothing else there is "
         "deleted). Without it such a folder is refused.")
  runner.format_flags(define, "from")


def _jams_output(out: str, to: str) -> bool:
  if to == "auto":
    return (out.lower().endswith(".jams") or out.endswith(("/", os.sep))
            or os.path.isdir(out))
  if to not in ("tagtable", "jams"):
    raise runner.CLIError(f"unknown --to {to!r}; choose from auto, tagtable, jams")
  return to == "jams"


def _first_line_fields(path: str) -> list:
  try:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
      first = f.readline().rstrip("\r\n")
  except (OSError, EOFError, UnicodeDecodeError):
    return []
  sep = "\t" if "\t" in first else ","
  return [f.strip().strip('"').lower() for f in first.split(sep)]


def _inside(path: str, folder: str) -> bool:
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_not_an_input(inputs: Sequence[str], out: str, as_jams: bool = True) -> None:
  """CLIError when ``out`` is one of ``inputs`` or holds one (the same file or folder
  after resolving links), or is JAMS output inside an input folder (its files would be
  read as input next time): an output never overwrites what it reads."""
  target = os.path.realpath(out)
  for path in inputs:
    real = os.path.realpath(path)
    if target == real:
      how = "is"
    elif _inside(real, target):
      how = "holds"
    elif as_jams and _inside(target, real):
      how = "lies inside"
    else:
      continue
    raise runner.CLIError(f"--out {out} {how} the input {path}; write to another path "
                          "(an output never replaces what it reads)")


def check_repeated_inputs(inputs: Sequence[str]) -> None:
  """CLIError naming an input given twice (the same file or folder after resolving links,
  or a file inside a folder also given)."""
  seen = {}
  for path in inputs:
    real = os.path.realpath(path)
    for other, first in seen.items():
      if _inside(real, other) or _inside(other, real):
        raise runner.CLIError(f"input {path} is given twice (also as {first}); give each "
                              "file or folder once")
    seen[real] = path


def check_table_values(table, inputs: Sequence[str], out: str) -> None:
  """DataError naming the INPUT (not the output) when a value cannot be written to the
  tag table ``out``: a tab or line break in a TSV table, white space at either end, a
  blank clip or tag."""
  from crbm_jax.data import tagtable as tt  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.errors import DataError  # pylint: disable=import-outside-toplevel
  where = inputs[0] if len(inputs) == 1 else ", ".join(inputs)
  tsv = tt.is_tsv(out, "\t")
  for name in table.columns():
    if name not in tt.STRING_COLUMNS:
      continue
    import numpy as np  # pylint: disable=import-outside-toplevel
    column = getattr(table, name)
    for value in np.unique(column).tolist():  # each distinct value once
      value = str(value)
      if tsv and any(c in value for c in "\t\n\r"):
        reason = ("holds a tab or line break, which a TSV table cannot hold; write a "
                  ".csv table instead")
      elif value != value.strip():
        reason = "has white space at either end"
      elif not value and name in ("clip", "tag"):
        reason = "is blank"
      else:
        continue
      r = int(np.flatnonzero(column == value)[0])
      raise DataError(f"{name} {value!r} (clip {table.clip[r]!r}) {reason}; nothing "
                      f"written to {out}", where)


def run_convert(inputs: Sequence[str], out: str, *, fmt: str = "auto", to: str = "auto",
                format_options: Optional[dict] = None, force: bool = False,
                log=print) -> dict:
  """Reads ``inputs`` (any format ``formats.read_any`` knows) and writes ``out``: a tag
  table (TSV/CSV by extension, .gz compresses) or JAMS (a .jams file for one track, or a
  folder of one .jams per track). A table with an ``affinity`` column (crbm-smooth or
  crbm-autotag predict output) becomes JAMS with the affinity as each tag's confidence.
  Nothing is written on an error.

  Returns:
    {"format", "rows", "skipped", "written"}.
  """
  from crbm_jax.data import formats, jams_io  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.tagtable import write_tag_table  # pylint: disable=import-outside-toplevel
  inputs = [os.fspath(p) for p in inputs]
  if not inputs:
    raise runner.CLIError("give one or more inputs: crbm-convert --from FORMAT IN... "
                          "--out FILE")
  check_repeated_inputs(inputs)
  as_jams = _jams_output(out, to)
  check_not_an_input(inputs, out, as_jams)
  out_dir = os.path.dirname(os.path.abspath(out.rstrip("/" + os.sep) or out))
  if not os.path.isdir(out_dir):
    raise runner.CLIError(f"--out {out}: folder {out_dir} does not exist; create it first")
  if (as_jams and not force and not out.lower().endswith(".jams") and os.path.isdir(out)
      and os.listdir(out)):  # before any reading (write_jams checks again)
    raise runner.CLIError(f"--out {out} is a folder that already holds files; give a new "
                          "or empty folder, or --force to add or replace only the .jams "
                          "files written (nothing else in it is deleted)")
  if not as_jams and os.path.isdir(out):
    raise runner.CLIError(f"--out {out} is a folder; give a file name for a tag table, or "
                          "--to=jams to write one .jams file per track into it")
  affinity_input = (len(inputs) == 1 and fmt in ("auto", "tagtable")
                    and os.path.isfile(inputs[0]) and not format_options
                    and "affinity" in _first_line_fields(inputs[0]))
  if affinity_input:
    if not as_jams:
      raise runner.CLIError(f"{inputs[0]} holds affinities (crbm-smooth or crbm-autotag "
                            "predict output); convert it to JAMS (--out FILE.jams or a "
                            "folder) to keep the affinities as confidences")
    table, affinity, display = jams_io.load_affinity_table(inputs[0])
    written = jams_io.write_jams(table, out, confidence=affinity,
                                 confidence_name="affinity", values=display,
                                 force=force)
    log(f"{PROG}: read {table.num_rows:,} affinities from {inputs[0]}; wrote "
        f"{len(written)} JAMS file(s) to {out}")
    return {"format": "smoothed", "rows": table.num_rows, "skipped": {},
            "written": written}
  table, info = formats.read_any(inputs, fmt, **(format_options or {}))
  log(f"{PROG}: {info.summary()}")
  if table.num_rows == 0:
    raise runner.CLIError(f"no (clip, tag) rows left to write ({info.summary()}); nothing "
                          "written")
  if as_jams:
    written = jams_io.write_jams(table, out, force=force)
  else:
    check_table_values(table, inputs, out)
    write_tag_table(table, out)
    written = [out]
  log(f"{PROG}: wrote {table.num_rows:,} rows ({', '.join(table.columns())}) to "
      f"{out}" + (f" ({len(written)} .jams files)" if as_jams else ""))
  return {"format": info.format, "rows": table.num_rows, "skipped": info.skipped,
          "written": written}


def run(f, args) -> dict:
  kw = runner.format_kw(f, "from")
  return run_convert(args, f.out, fmt=kw["fmt"], to=f.to,
                     format_options=kw["format_options"], force=f.force)


def main(argv=None) -> int:
  """Console script crbm-convert (``argv`` None: this process's command line)."""
  return runner.run_tool(sys.modules[__name__], argv)
