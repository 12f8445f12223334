"""The autotag package's one-line error and default log."""
from __future__ import annotations

import sys
from typing import Callable

Log = Callable[[str], None]


class AutotagError(ValueError):
  """A bad input or request, said in one line naming the file and what to do."""


def stderr_log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)
