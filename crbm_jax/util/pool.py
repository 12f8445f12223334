"""Pools of spawned worker processes, one way for the whole package.

``spawn_pool`` gives a ``concurrent.futures.ProcessPoolExecutor`` whose workers are
spawned (never forked: JAX and XLA's threads do not survive a fork), ignore Ctrl-C (a
terminal sends it to the whole process group; the main process ends the run with one line,
``crbm_jax.util.interrupt``, and kills the workers), size JAX's CPU thread pool as
``$CRBM_JAX_THREADS`` asks (``crbm_jax.util.threads``; inherited, so workers of workers
do too), and run an optional initializer.

When a Ctrl-C ends the main process at once (``os._exit``), multiprocessing's resource
tracker removes the pool's semaphores itself and would print a warning about "leaked
semaphore objects" after the "interrupted" line; the tracker is started with this
process's -W options, so the option added here keeps it quiet (it still cleans up).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from typing import Callable, Optional

QUIET_TRACKER = "ignore:resource_tracker:UserWarning"


def quiet_resource_tracker() -> None:
  """Adds the -W option that keeps the resource tracker's leak warning quiet (before the
  first pool starts the tracker)."""
  if QUIET_TRACKER not in sys.warnoptions:
    sys.warnoptions.append(QUIET_TRACKER)


def can_spawn() -> bool:
  """Spawned workers re-import the main module: impossible when it is read from stdin
  or a notebook cell with a fake file name (then the work must run in this process)."""
  main_file = getattr(sys.modules.get("__main__"), "__file__", None)
  return main_file is None or os.path.exists(main_file)


def _worker_start(initializer: Optional[Callable], initargs: tuple) -> None:
  import signal  # pylint: disable=import-outside-toplevel
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  from crbm_jax.util import threads  # pylint: disable=import-outside-toplevel
  threads.apply_requested()
  if initializer is not None:
    initializer(*initargs)


def spawn_pool(workers: int, initializer: Optional[Callable] = None,
               initargs: tuple = ()) -> concurrent.futures.ProcessPoolExecutor:
  """A pool of ``workers`` spawned processes that ignore Ctrl-C and first run
  ``initializer(*initargs)`` (a module-level function, as pickling requires)."""
  quiet_resource_tracker()
  return concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=multiprocessing.get_context("spawn"),
      initializer=_worker_start, initargs=(initializer, tuple(initargs)))
