"""JAX's persistent compilation cache as the tools and the test session use it."""
import os
import subprocess
import sys

from crbm_jax.util import compile_cache


def test_cache_dir_follows_argument_environment_and_default(monkeypatch, tmp_path):
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
  assert compile_cache.cache_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")
  assert compile_cache.cache_dir() == str(tmp_path / "env")
  for off in ("off", "0", "none", "", "OFF"):
    assert compile_cache.cache_dir(off) is None
  monkeypatch.delenv(compile_cache.ENV)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.cache_dir() == str(tmp_path / "xdg" / "crbm_jax" / "jax")


_PROGRAM = r"""
import sys
from crbm_jax.util import compile_cache
folder = compile_cache.enable(sys.argv[1])
import jax, jax.numpy as jnp
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # any machine's speed

def program(x):
  for _ in range(3):
    x = jnp.tanh(x @ x.T * 0.37 + x)
  return x.sum()

x = jnp.ones((32, 32))
first = compile_cache.CompileClock()
a = jax.jit(program)(x)
cold = first.split()
jax.clear_caches()  # forget the in-memory executables; the disk cache stays
second = compile_cache.CompileClock()
b = jax.jit(program)(x)
warm = second.split()
print(folder == compile_cache.active_dir(), cold["compiles"], cold["cache_hits"],
      warm["cache_hits"], float(a) == float(b))
"""


def test_a_program_compiled_again_is_loaded_from_the_cache(tmp_path):
  # Its own process: JAX sets its persistent cache up once per process, so the session's
  # (tests/conftest.py) cannot be swapped for an empty one here.
  env = {k: v for k, v in os.environ.items() if k != compile_cache.ENV}
  out = subprocess.run([sys.executable, "-c", _PROGRAM, str(tmp_path / "cache")], env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  same_dir, compiles, cold_hits, warm_hits, same = out.stdout.split()
  assert same_dir == "True" and same == "True"
  assert int(compiles) >= 1 and int(cold_hits) == 0  # an empty cache: compiled
  assert int(warm_hits) >= 1                         # compiled again: loaded instead
  assert os.listdir(tmp_path / "cache")


def test_worker_compilation_is_reported_apart_from_this_process_split():
  clock = compile_cache.CompileClock()
  quiet = compile_cache.CompileClock().split()
  assert "worker_compiles" not in quiet and "worker" not in compile_cache.describe(quiet)
  compile_cache.add_worker_split({"compile_seconds": 12.5, "compiles": 7, "cache_hits": 2})
  compile_cache.add_worker_split({"compile_seconds": 0.5, "compiles": 1, "cache_hits": 0})
  split = clock.split()
  assert (split["worker_compile_seconds"], split["worker_compiles"],
          split["worker_cache_hits"]) == (13.0, 8, 2)
  assert split["compile_seconds"] + split["compute_seconds"] == split["seconds"]
  assert "worker processes compiled 13.0 s more (8 programs, 2 from the cache)" in (
      compile_cache.describe(split))
  later = compile_cache.CompileClock().split()  # a clock started after them: none
  assert "worker_compiles" not in later
