"""JAX's persistent compilation cache for the console scripts, and compile-time accounting.

``enable()`` points JAX's persistent compilation cache at a user-level folder, so that a
second ``crbm-fit`` (or ``crbm-reproduce``) on data of the same shapes loads its
compiled programs instead of compiling them again. The folder is, in order:

* the ``path`` argument (the tools' ``--compile_cache`` flag);
* the environment variable ``CRBM_JAX_COMPILE_CACHE``;
* ``$XDG_CACHE_HOME/crbm_jax/jax`` (default ``~/.cache/crbm_jax/jax``).

The value ``off`` (or ``0``, ``none``, empty) disables it. The cache is bounded
(``MAX_BYTES``, least recently used entries evicted), which makes JAX guard every read
and write with a file lock: two processes may share the folder.

``CompileClock`` measures, over a stretch of work, the seconds JAX spent tracing,
lowering and compiling (and how many compilations the cache served), so that logs and
reports give compile time and compute time separately.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional

ENV = "CRBM_JAX_COMPILE_CACHE"
OFF = ("off", "0", "none", "false", "")
MAX_BYTES = 2 * 1024 ** 3
# Programs that compile faster than this are not worth a file (JAX's default is 1 s; the
# rounds of a short fit compile in about that).
MIN_COMPILE_SECONDS = 0.2


def cache_dir(path: Optional[str] = None) -> Optional[str]:
  """The folder ``enable`` would use (None: disabled); see the module docstring."""
  value = path if path is not None else os.environ.get(ENV)
  if value is None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".cache")
    return os.path.join(base, "crbm_jax", "jax")
  if value.strip().lower() in OFF:
    return None
  return os.path.abspath(os.path.expanduser(value))


def enable(path: Optional[str] = None) -> Optional[str]:
  """Turns JAX's persistent compilation cache on (module docstring); returns the folder
  used, or None when disabled. A folder that cannot be made disables it (training never
  fails for want of a cache)."""
  folder = cache_dir(path)
  if folder is None:
    return None
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError:
    return None
  settings = {"jax_compilation_cache_dir": folder,
              "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_SECONDS,
              "jax_persistent_cache_min_entry_size_bytes": 0}
  try:  # JAX bounds the cache (LRU) only with filelock, a dependency; without it: unbounded
    import filelock  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    settings["jax_compilation_cache_max_size"] = MAX_BYTES
  except ImportError:
    pass
  if "jax" in sys.modules:
    import jax  # pylint: disable=import-outside-toplevel
    for name, value in settings.items():
      jax.config.update(name, value)
  else:  # JAX reads these when it is imported: a tool that never needs JAX never loads it
    for name, value in settings.items():
      os.environ[name.upper()] = str(value)
  return folder


def active_dir() -> Optional[str]:
  """The persistent-cache folder JAX is using now (None: none), whoever enabled it."""
  if "jax" in sys.modules:
    import jax  # pylint: disable=import-outside-toplevel
    return jax.config.jax_compilation_cache_dir or None
  return os.environ.get("JAX_COMPILATION_CACHE_DIR") or None


_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_lock = threading.Lock()
_totals = {"seconds": 0.0, "compiles": 0, "hits": 0}
_workers = {"seconds": 0.0, "compiles": 0, "hits": 0}  # compiled by worker processes
_installed = []


def _on_duration(event: str, duration: float, **_) -> None:
  if event in _COMPILE_EVENTS:
    with _lock:
      _totals["seconds"] += duration
      if event == _COMPILE_EVENTS[-1]:
        _totals["compiles"] += 1


def _on_event(event: str, **_) -> None:
  if event == _HIT_EVENT:
    with _lock:
      _totals["hits"] += 1


def _install() -> None:
  if not _installed:
    from jax import monitoring  # pylint: disable=import-outside-toplevel
    monitoring.register_event_duration_secs_listener(_on_duration)
    monitoring.register_event_listener(_on_event)
    _installed.append(True)


def add_worker_split(split: dict) -> None:
  """Records a worker process's ``CompileClock.split()`` (compilation done on this
  process's behalf, elsewhere): every clock running here reports it apart, as
  ``worker_compile_seconds`` / ``worker_compiles`` / ``worker_cache_hits`` (it overlaps
  this process's wall time, so it is not part of compile + compute)."""
  with _lock:
    _workers["seconds"] += float(split.get("compile_seconds", 0.0))
    _workers["compiles"] += int(split.get("compiles", 0))
    _workers["hits"] += int(split.get("cache_hits", 0))


class CompileClock:
  """Wall time split into compile and compute over the work since it was made:

      clock = CompileClock()
      ... work ...
      clock.split()  # {'seconds', 'compile_seconds', 'compute_seconds', 'compiles',
                     #  'cache_hits'}

  Compile time is JAX's tracing, lowering and backend compilation (a program loaded
  from the persistent cache counts its loading); compute is the rest of the wall time.
  """

  def __init__(self):
    _install()
    self._start = time.perf_counter()
    with _lock:
      self._base = dict(_totals)
      self._base_workers = dict(_workers)

  def split(self) -> dict:
    with _lock:
      now, workers = dict(_totals), dict(_workers)
    wall = time.perf_counter() - self._start
    compile_s = min(now["seconds"] - self._base["seconds"], wall)
    out = {"seconds": wall, "compile_seconds": compile_s,
           "compute_seconds": wall - compile_s,
           "compiles": now["compiles"] - self._base["compiles"],
           "cache_hits": now["hits"] - self._base["hits"]}
    if workers["compiles"] > self._base_workers["compiles"]:
      out.update(worker_compile_seconds=workers["seconds"] - self._base_workers["seconds"],
                 worker_compiles=workers["compiles"] - self._base_workers["compiles"],
                 worker_cache_hits=workers["hits"] - self._base_workers["hits"])
    return out

  def line(self) -> str:
    """'compile 8.1 s (12 programs, 9 from the cache), compute 6.3 s'."""
    return describe(self.split())


def describe(split: dict) -> str:
  """A ``CompileClock.split()`` in words: 'compile 8.1 s (12 programs, 9 from the cache),
  compute 6.3 s'."""
  text = (f"compile {split['compile_seconds']:.1f} s ({split['compiles']} programs, "
          f"{split['cache_hits']} from the cache), compute {split['compute_seconds']:.1f} s")
  if split.get("worker_compiles"):
    text += (f"; its worker processes compiled {split['worker_compile_seconds']:.1f} s more "
             f"({split['worker_compiles']} programs, {split['worker_cache_hits']} from the "
             "cache)")
  return text
