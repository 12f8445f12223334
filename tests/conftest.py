"""Shared test configuration: a deterministic Hypothesis profile (as JAX's test_util does)
and one JAX compilation cache for the whole session.

The session's cache (a temporary folder unless CRBM_JAX_COMPILE_CACHE names one) is turned
on before anything compiles, and its folder is exported, so that the console scripts the
tests start as subprocesses share it: a program compiled once, in any test or process, is
loaded from the cache afterwards (identical programs built by fresh closures included).
"""
import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
# pytest-xdist's "-n auto" (pyproject.toml): one process per core, at most 4 (each process
# holds its own JAX runtime and compiled programs; past 4 the memory grows faster than the
# speed). The processes share the compilation cache below.
os.environ.setdefault("PYTEST_XDIST_AUTO_NUM_WORKERS", str(min(4, os.cpu_count() or 1)))
os.environ.setdefault("CRBM_JAX_COMPILE_CACHE",
                      tempfile.mkdtemp(prefix="crbm-jax-test-compile-cache-"))

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from crbm_jax.util import compile_cache  # noqa: E402

jax.config.update("jax_enable_x64", False)
compile_cache.enable()

settings.register_profile(
    "deterministic",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=25,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
  """An ``extended`` test is also ``slow``: the README's default command
  (``-m "not slow"``) leaves it out, ``-m slow`` and CI's ``-m extended`` step run it.
  Runs before pytest's own -m selection (tryfirst)."""
  for item in items:
    if item.get_closest_marker("extended") is not None:
      item.add_marker(pytest.mark.slow)
