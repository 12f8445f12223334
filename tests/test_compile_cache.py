"""JAX's persistent compilation cache as the tools and the test session use it."""
import os

import jax
import jax.numpy as jnp
import numpy as np

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


def test_a_program_compiled_again_is_loaded_from_the_session_cache():
  folder = compile_cache.active_dir()
  assert folder and os.path.isdir(folder)  # tests/conftest.py enabled it
  # A constant no other test uses, so the first compile cannot be a hit.
  salt = np.float32(np.random.default_rng().random())

  def program(x):
    for _ in range(3):
      x = jnp.tanh(x @ x.T * salt + x)
    return x.sum()

  x = jnp.ones((32, 32))
  # However fast this machine compiles, the program is worth a cache entry.
  previous = jax.config.jax_persistent_cache_min_compile_time_secs
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  try:
    first = compile_cache.CompileClock()
    a = jax.jit(program)(x)
    cold = first.split()
    jax.clear_caches()  # forget the in-memory executables; the disk cache stays
    second = compile_cache.CompileClock()
    b = jax.jit(program)(x)
    warm = second.split()
  finally:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", previous)
  assert cold["compiles"] >= 1 and cold["cache_hits"] == 0
  assert warm["cache_hits"] >= 1
  assert float(a) == float(b)  # the same executable
