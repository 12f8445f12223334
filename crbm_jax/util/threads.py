"""How many threads JAX computes with on a CPU, per process.

JAX sizes the CPU client's compute thread pool from the process's CPU affinity when the
client is created, and offers no option for it; setting the affinity is the way JAX's
maintainers give (jax-ml/jax#1539). ``limit(n)`` narrows the affinity to ``n`` cores,
creates the client (its pool then has ``n`` threads), and widens every thread's affinity
back, so the operating system still places the process on any core.

Why: ``crbm-reproduce`` runs several processes at once on a 2-core machine (two stage
processes, and under Table 3 its label and SVM workers). Each JAX process otherwise
starts one compute thread per core, so 4-6 processes share 2 cores with 8-12 busy
threads, and the threads spin and switch instead of computing. Measured on the 2-core
machine (``docs/benchmarks.md``): two label workers side by side took x0.77 and x0.91 the
CPU time with one thread each (two pairs), the whole default reproduction x0.95 (one).

The thread count is part of the computation: XLA splits some reductions by thread, so
one thread and two give numbers that differ in the last bits (and then, through the
random searches, in later digits). With one thread the pool no longer depends on the
machine's core count (numbers across machines are not tested: the compiled code may
still differ by CPU model).

``ENV`` carries the setting to spawned workers (``util.pool`` applies it in each worker
before any JAX work), including workers that spawn workers of their own.
"""
from __future__ import annotations

import os
from typing import Optional

ENV = "CRBM_JAX_THREADS"


def _backend_ready() -> Optional[bool]:
  """Whether JAX's backends exist already (None: this JAX does not say)."""
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):
    return None


def requested() -> int:
  """The thread count ``ENV`` asks for (0: JAX's default, one per core)."""
  value = os.environ.get(ENV, "").strip()
  try:
    return max(0, int(value)) if value else 0
  except ValueError:
    return 0


def limit(threads: int) -> bool:
  """Gives this process's JAX CPU client ``threads`` compute threads (see the module
  docstring). Must run before JAX's first computation or ``jax.devices()``. Returns
  whether the pool has at most ``threads`` threads: True when applied or when the
  process may use no more cores than that anyway; False for ``threads`` <= 0 (JAX's
  default asked), a platform that cannot set affinities, or a client that exists
  already (its pool keeps its size)."""
  if threads <= 0 or not hasattr(os, "sched_getaffinity"):
    return False
  cores = sorted(os.sched_getaffinity(0))
  if threads >= len(cores):
    return True
  if _backend_ready() is not False:
    return False
  os.sched_setaffinity(0, cores[:threads])
  try:
    import jax  # pylint: disable=import-outside-toplevel
    jax.devices()   # creates the client; its pool takes the narrowed affinity's size
  finally:
    _widen(cores)
  return True


def _widen(cores) -> None:
  """Every thread of this process (the client's pool was made under the narrow affinity
  and inherited it) may run on any of ``cores`` again."""
  try:
    tids = os.listdir("/proc/self/task")
  except OSError:
    tids = ["0"]   # no /proc: this thread only
  for tid in tids:
    try:
      os.sched_setaffinity(int(tid), cores)
    except OSError:   # a thread that ended meanwhile
      pass


def apply_requested() -> bool:
  """``limit(requested())``: what each spawned worker runs first."""
  return limit(requested())
