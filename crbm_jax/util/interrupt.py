"""Ctrl-C and closed pipes for the command-line tools and launchers.

Ctrl-C (SIGINT): ``exit_on_interrupt`` makes a program end at once with one line on
stderr, ``<prog>: interrupted; <what was kept and how to resume>``, and exit status 130,
without a traceback. Python runs a signal handler only in the main thread between two
bytecodes, so a handler alone would wait for the running XLA computation (a whole
jitted training loop) to return, and raising KeyboardInterrupt there unwinds through
JAX and then tears the interpreter down while XLA's threads still run (the Table 2
launcher ended in a segmentation fault that way). Instead the C-level handler writes
the signal number to a pipe (``signal.set_wakeup_fd``) and a watcher thread wakes up at
once, prints the line and ends the process with ``os._exit(130)``: no Python unwinding,
no interpreter teardown, the same as ``kill -9`` for the files on disk. Every output of
the package is written atomically (``crbm_jax.util.atomic``, ``crbm_jax.util.runs``), so
what was finished is complete and what was not is absent. The temporary file or folder
that an output is being assembled in is registered with ``scratch`` and removed just
before the exit; ``finishing`` makes the exit wait for a rename into place that has begun
(so a Ctrl-C leaves either the finished output or nothing, never a ``.tmp-*``). Only
``kill -9`` (or a crash) leaves temporaries, which the next run removes.

Broken stdout pipe (``crbm-fit ... | head -1``): ``quiet_broken_pipe`` makes writes to a
closed stdout go nowhere, so the work goes on and every output file is written; the
program then exits quietly with its usual status.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from typing import Callable, Iterator, Union

INTERRUPTED_STATUS = 130  # 128 + SIGINT, as shells report a Ctrl-C

_lock = threading.Lock()
_scratch_lock = threading.RLock()  # reentrant: the Python-level handler runs in the main
_scratch: set = set()  # thread, possibly inside ``finishing``


@contextlib.contextmanager
def scratch(path: str) -> Iterator[str]:
  """While inside, ``path`` (a temporary file or folder an output is assembled in) is
  removed if Ctrl-C ends the process. Leave it renamed into place (``finishing``) or
  removed; it is forgotten on the way out either way."""
  with _scratch_lock:
    _scratch.add(path)
  try:
    yield path
  finally:
    with _scratch_lock:
      _scratch.discard(path)


def finishing() -> threading.RLock:
  """Hold this while renaming a scratch path into place: a Ctrl-C that comes meanwhile
  waits until the rename is done (then the output is complete and the scratch path gone)."""
  return _scratch_lock


def _remove_scratch() -> None:
  with _scratch_lock:  # never released: os._exit follows
    for path in list(_scratch):
      try:
        if os.path.isdir(path) and not os.path.islink(path):
          shutil.rmtree(path, ignore_errors=True)
        else:
          os.remove(path)
      except OSError:
        pass


def _say_and_exit(prog: str, kept: Union[str, Callable[[], str]]) -> None:
  if not _lock.acquire(blocking=False):  # a second Ctrl-C while exiting: already on it
    return
  try:
    what = kept() if callable(kept) else kept
  except Exception:  # pylint: disable=broad-except
    what = "outputs already written are complete; run the same command again"
  _kill_workers()
  flusher = threading.Thread(target=_flush_stdout, daemon=True)
  flusher.start()
  flusher.join(0.5)  # never wait long on a stdout nobody reads
  try:
    _remove_scratch()
    os.write(2, f"{prog}: interrupted; {what}\n".encode("utf-8", "replace"))
  finally:
    os._exit(INTERRUPTED_STATUS)  # pylint: disable=protected-access


def _kill_workers() -> None:
  """Ends this process's multiprocessing workers (crbm-features --workers N) at once:
  they ignore Ctrl-C themselves (a terminal sends it to the whole process group, and a
  worker's traceback is noise) and would otherwise go on, orphaned, after we exit."""
  mp = sys.modules.get("multiprocessing")
  if mp is None:
    return
  try:
    for child in mp.active_children():
      child.kill()
  except Exception:  # pylint: disable=broad-except
    pass


def _flush_stdout() -> None:
  try:
    sys.stdout.flush()
  except Exception:  # pylint: disable=broad-except
    pass


def exit_on_interrupt(prog: str, kept: Union[str, Callable[[], str]]) -> bool:
  """From now on, Ctrl-C ends the program at once: one line, exit status 130.

  Args:
    prog: the program's name, the line's prefix.
    kept: what was kept and how to resume (or a function returning it, called when
      the signal arrives).
  Returns:
    False (and installs nothing) outside the main thread, where signals cannot be
    handled.
  """
  if threading.current_thread() is not threading.main_thread():
    return False
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)

  def watch():
    while True:
      try:
        data = os.read(read_fd, 64)
      except OSError:
        return
      if not data:
        return
      if signal.SIGINT in data:
        _say_and_exit(prog, kept)

  # The Python-level handler runs too (when the main thread gets to it first); the
  # wakeup pipe reaches the watcher even while the main thread is inside XLA.
  signal.signal(signal.SIGINT, lambda signum, frame: _say_and_exit(prog, kept))
  signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
  threading.Thread(target=watch, name="crbm-interrupt", daemon=True).start()
  return True


class _QuietStream:
  """A text stream that stops writing, silently, once its reader has gone."""

  def __init__(self, stream):
    self._stream = stream
    self.closed_pipe = False

  def write(self, text):
    if self.closed_pipe:
      return len(text)
    try:
      return self._stream.write(text)
    except BrokenPipeError:
      self._close()
      return len(text)

  def flush(self):
    if self.closed_pipe:
      return
    try:
      self._stream.flush()
    except BrokenPipeError:
      self._close()

  def _close(self):
    """Points the file descriptor at /dev/null so that the interpreter's own final
    flush is quiet too."""
    self.closed_pipe = True
    try:
      devnull = os.open(os.devnull, os.O_WRONLY)
      os.dup2(devnull, self._stream.fileno())
      os.close(devnull)
    except (OSError, ValueError, AttributeError):
      pass

  def __getattr__(self, name):
    return getattr(self._stream, name)


def quiet_broken_pipe() -> None:
  """Writes to stdout after its reader has gone are dropped without an error, so the
  program finishes its work (``tool | head -1``)."""
  if not isinstance(sys.stdout, _QuietStream) and sys.stdout is not None:
    sys.stdout = _QuietStream(sys.stdout)


def finish_stdout() -> None:
  """Flushes stdout at the end of a program; quiet when the reader has gone."""
  try:
    sys.stdout.flush()
  except BrokenPipeError:
    if isinstance(sys.stdout, _QuietStream):
      return
    try:
      devnull = os.open(os.devnull, os.O_WRONLY)
      os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
      pass
