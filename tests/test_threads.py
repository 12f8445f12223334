"""util.threads: JAX's CPU compute pool sized per process, in spawned workers too."""
import os

import pytest

from crbm_jax.util import pool as pool_lib
from crbm_jax.util import threads


def _pool_and_affinity():
  """In a worker: (compute threads of JAX's CPU pool, the distinct affinities of this
  process's threads, the cores the process may use)."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  (jnp.ones((64, 64)) @ jnp.ones((64, 64))).block_until_ready()
  pool, affinities = 0, set()
  for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/comm") as f:
      pool += f.read().strip() == "tf_XLAEigen"   # the pool's threads (XLA names them)
    affinities.add(tuple(sorted(os.sched_getaffinity(int(tid)))))
  return pool, affinities, tuple(sorted(os.sched_getaffinity(0)))


def _in_worker(monkeypatch, value):
  monkeypatch.setenv(threads.ENV, value)
  # One CPU device, as a user's process has (conftest forces two for the sharding tests,
  # and XLA then gives each device a thread).
  monkeypatch.setenv("XLA_FLAGS", "")
  with pool_lib.spawn_pool(1) as ex:
    return ex.submit(_pool_and_affinity).result()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or len(
    os.sched_getaffinity(0)) < 2, reason="needs Linux and at least 2 cores")
def test_spawned_worker_gets_one_compute_thread_on_every_core(monkeypatch):
  """$CRBM_JAX_THREADS=1: the worker's pool has one thread, not one per core, and every
  thread of the worker may still run on every core (the narrowing is undone)."""
  default_pool, _, cores = _in_worker(monkeypatch, "0")
  one_pool, affinities, one_cores = _in_worker(monkeypatch, "1")
  assert default_pool == len(cores) >= 2
  assert one_pool == 1
  assert affinities == {cores} and one_cores == cores


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"),
                    reason="no CPU affinities on this platform (limit then refuses)")
def test_limit_refuses_once_jax_has_started():
  """In a process whose JAX client exists (this one), the pool cannot be resized: limit
  says so rather than pretending, and leaves the affinity alone."""
  import jax  # pylint: disable=import-outside-toplevel
  jax.devices()
  before = os.sched_getaffinity(0)
  assert threads.limit(0) is False                    # JAX's default asked: nothing done
  if len(before) >= 2:
    assert threads.limit(1) is False
  assert threads.limit(len(before)) is True           # no fewer than the cores: nothing to do
  assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("value,want", [("", 0), ("1", 1), (" 2 ", 2), ("-3", 0),
                                        ("many", 0)])
def test_requested_reads_the_environment(monkeypatch, value, want):
  monkeypatch.setenv(threads.ENV, value)
  assert threads.requested() == want
