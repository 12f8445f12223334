"""A small progress display on stderr: done/total, rate and estimated time left.

    progress = Progress(total=2500, label="grid")
    progress.update(16)          # 16 more units finished
    progress.close()

Rate and ETA count only units done in this session (``skip`` marks units found already
finished, e.g. on resume, so they do not inflate the rate).
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def format_seconds(seconds: float) -> str:
  """Seconds as ``h:mm:ss`` or ``m:ss``; ``?`` when unknown."""
  if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
    return "?"
  seconds = int(round(max(seconds, 0.0)))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
  """Counts finished units and prints ``label: done/total, rate/s, ETA`` lines.

  Args:
    total: number of units in all.
    label: prefix of each line.
    unit: name of a unit in the rate ("fits", "configs", ...).
    stream: where to print (default stderr); None prints nothing.
    min_interval: seconds between printed lines (the last line always prints).
    clock: time source (for tests).
  """

  def __init__(self, total: int, label: str = "", unit: str = "it",
               stream: Optional[TextIO] = sys.stderr, min_interval: float = 1.0,
               clock=time.perf_counter):
    self.total, self.label, self.unit = int(total), label, unit
    self.stream, self.min_interval, self.clock = stream, min_interval, clock
    self.done = 0
    self.skipped = 0
    self.start = clock()
    self._last_print = -float("inf")
    self._last_done = -1

  def skip(self, n: int) -> None:
    """Marks n units as already done (not counted in the rate)."""
    self.done += n
    self.skipped += n
    self._maybe_print()

  def update(self, n: int = 1) -> None:
    """Marks n more units finished in this session."""
    self.done += n
    self._maybe_print()

  @property
  def rate(self) -> float:
    """Units per second finished in this session."""
    elapsed = self.clock() - self.start
    worked = self.done - self.skipped
    return worked / elapsed if elapsed > 0 and worked > 0 else float("nan")

  @property
  def eta(self) -> float:
    """Estimated seconds left (NaN until a unit has finished)."""
    rate = self.rate
    return (self.total - self.done) / rate if rate == rate and rate > 0 else float("nan")

  def line(self) -> str:
    pct = 100.0 * self.done / self.total if self.total else 100.0
    rate = self.rate
    rate_s = f"{rate:.2f} {self.unit}/s" if rate == rate else f"- {self.unit}/s"
    elapsed = format_seconds(self.clock() - self.start)
    return (f"{self.label + ': ' if self.label else ''}{self.done}/{self.total} "
            f"({pct:.0f}%) {rate_s}, elapsed {elapsed}, ETA {format_seconds(self.eta)}")

  def _maybe_print(self, force: bool = False) -> None:
    if self.stream is None:
      return
    now = self.clock()
    if self.done == self._last_done:
      return
    if force or self.done >= self.total or now - self._last_print >= self.min_interval:
      self._last_print, self._last_done = now, self.done
      print(self.line(), file=self.stream, flush=True)

  def close(self) -> None:
    self._maybe_print(force=True)
