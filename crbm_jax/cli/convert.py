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
folders given after the flags. Prints what was read and how many records were skipped;
on an error prints one line (file, line or key, reason) and writes nothing.
"""


def define_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  define(flags.DEFINE_string, "out", None, "Output: a tag table (.tsv/.csv, .gz "
         "compresses), a .jams file (one track), or a folder of .jams files (ends with / "
         "or exists).", required=True)
  define(flags.DEFINE_enum, "to", "auto", ["auto", "tagtable", "jams"], "Output kind; "
         "auto: JAMS for .jams or a folder, otherwise a tag table.")
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


def run_convert(inputs: Sequence[str], out: str, *, fmt: str = "auto", to: str = "auto",
                format_options: Optional[dict] = None, log=print) -> dict:
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
  as_jams = _jams_output(out, to)
  out_dir = os.path.dirname(os.path.abspath(out.rstrip("/" + os.sep) or out))
  if not os.path.isdir(out_dir):
    raise runner.CLIError(f"--out {out}: folder {out_dir} does not exist; create it first")
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
                                 confidence_name="affinity", values=display)
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
    written = jams_io.write_jams(table, out)
  else:
    write_tag_table(table, out)
    written = [out]
  log(f"{PROG}: wrote {table.num_rows:,} rows ({', '.join(table.columns())}) to "
      f"{out}" + (f" ({len(written)} .jams files)" if as_jams else ""))
  return {"format": info.format, "rows": table.num_rows, "skipped": info.skipped,
          "written": written}


def run(f, args) -> dict:
  kw = runner.format_kw(f, "from")
  return run_convert(args, f.out, fmt=kw["fmt"], to=f.to,
                     format_options=kw["format_options"])


def main(argv=None) -> int:
  """Console script crbm-convert (``argv`` None: this process's command line)."""
  return runner.run_tool(sys.modules[__name__], argv)
