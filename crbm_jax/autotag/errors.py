"""The autotag package's one-line error and default log."""
from __future__ import annotations

import os
import sys
from typing import Callable

Log = Callable[[str], None]


class AutotagError(ValueError):
  """A bad input or request, said in one line naming the file and what to do."""


def stderr_log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def check_output_file(out: str, flag: str, name_hint: str) -> None:
  """Before any work: ``out`` can be a file (its folder exists and it is not a folder);
  one line saying what to do otherwise."""
  out_dir = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(out_dir):
    raise AutotagError(f"{flag} {out}: folder {out_dir} does not exist; create it first")
  if os.path.isdir(out):
    raise AutotagError(f"{flag} {out} is a folder; give {name_hint}")
