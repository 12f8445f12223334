"""The one error type raised by every data loader: bad input, said for people."""
from __future__ import annotations

import os
from typing import Optional, Union


class DataError(ValueError):
  """Bad input data; the message reads ``path:line: reason``.

  Args:
    reason: what is wrong, in words.
    path: the file, when known.
    line: the 1-based line number in that file, when known.
  """

  def __init__(self, reason: str, path: Optional[Union[str, os.PathLike]] = None,
               line: Optional[int] = None):
    self.reason = reason
    self.path = None if path is None else os.fspath(path)
    self.line = line
    prefix = ""
    if self.path is not None:
      prefix = self.path + ":"
    if line is not None:
      prefix += f"{line}:"
    super().__init__(f"{prefix} {reason}" if prefix else reason)
