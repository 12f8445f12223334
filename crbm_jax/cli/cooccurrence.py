"""crbm-cooccurrence: Table 1 and Figure 1 of the paper for a tag table."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Optional

from crbm_jax.cli import runner

PROG = "crbm-cooccurrence"
DOC = """crbm-cooccurrence: Table 1 and Figure 1 of the paper for a tag table.

Writes table1.csv (same_user, same_track, same_clip, mean, stderr, pairs), table1.md,
figure1.png and figure1.csv to --workdir.
"""


def define_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  define(flags.DEFINE_string, "tags", None, "Tag-table file (TSV/CSV), or a file/folder in "
         "a public format: MagnaTagATune, MTG-Jamendo, MSD Last.fm, JAMS, MajorMiner, "
         "HetRec (see --format).", required=True)
  define(flags.DEFINE_string, "workdir", None, "Output folder for table1.csv, table1.md, "
         "figure1.png and figure1.csv.", required=True)
  define(flags.DEFINE_bool, "canonicalize", True, "Canonicalise tags first.")
  define(flags.DEFINE_string, "name", None, "Data-set name for titles (default: the file "
         "name).")
  define(flags.DEFINE_bool, "paper", False, "Print the paper's Table 1 values beside ours.")
  define(flags.DEFINE_integer, "num_bins", 5, "Separation bins of Figure 1.")
  runner.format_flags(define)


def run_cooccurrence(tags: str, workdir: str, *, canonicalize: bool = True,
                     name: Optional[str] = None, paper: bool = False, num_bins: int = 5,
                     fmt: str = "auto", format_options: Optional[dict] = None,
                     log=print) -> dict:
  """Table 1 (table1.csv, table1.md) and Figure 1 (figure1.png, figure1.csv) for a tag
  table, written to a temporary folder and then moved into ``workdir``."""
  from crbm_jax.fitting.inputs import canonical_table, load_tags  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import table1  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import interrupt  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel

  if num_bins < 1:
    raise runner.CLIError("--num_bins must be >= 1")
  table, _ = canonical_table(load_tags(tags, fmt, format_options, log, PROG), canonicalize)
  name = name or os.path.splitext(os.path.basename(tags))[0]
  workdir = os.path.abspath(workdir)
  runs_lib.check_folder(workdir, "--workdir")  # before any work
  parent = os.path.dirname(workdir)
  os.makedirs(parent, exist_ok=True)
  runs_lib.clean_stale_tmp(parent, "cooccurrence")  # of an interrupted earlier run
  tmp = tempfile.mkdtemp(prefix=runs_lib.tmp_prefix("cooccurrence"), dir=parent)
  with interrupt.scratch(tmp):  # a Ctrl-C removes it
    try:
      paths = table1.run_table1(table, tmp, name, paper=paper, num_bins=num_bins)
      final = {}
      with interrupt.finishing():  # a Ctrl-C waits for every file to be in place
        os.makedirs(workdir, exist_ok=True)
        for kind, path in paths.items():
          final[kind] = os.path.join(workdir, os.path.basename(path))
          os.replace(path, final[kind])
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  with open(final["table1_md"], encoding="utf-8") as f:
    log(f.read())
  log(f"{PROG}: wrote {', '.join(sorted(final.values()))}")
  return final


def run(f) -> dict:
  return run_cooccurrence(f.tags, f.workdir, canonicalize=f.canonicalize, name=f.name,
                          paper=f.paper, num_bins=f.num_bins, **runner.format_kw(f))


def errors() -> tuple:
  from crbm_jax.util import runs  # pylint: disable=import-outside-toplevel
  return (runs.DestinationError,)


def interrupted(f) -> str:
  return f"nothing new was written to {f.workdir}; run the same command again"


def main(argv=None) -> int:
  """Console script crbm-cooccurrence (``argv`` None: this process's command line)."""
  return runner.run_tool(sys.modules[__name__], argv)
