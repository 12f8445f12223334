"""Helpers the benchmark scripts share (imported as ``benchlib``: the scripts' own folder
is on ``sys.path`` when they run). Timing helpers and synthetic data of the paper's sizes;
no flags and no launcher here."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np


def best_time(fn, repeats: int) -> float:
  """Fastest of ``repeats`` calls: the least disturbed by other processes."""
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return min(times)


def median_time(fn, repeats: int):
  """(median seconds of ``repeats`` calls, the last result)."""
  times, result = [], None
  for _ in range(repeats):
    t0 = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - t0)
  return float(np.median(times)), result


def matmul_peak(repeats: int, size: int = 2048) -> float:
  """float32 GFLOP/s of a size³ matmul measured here (JAX's default precision: on a GPU
  with tensor cores that may use TF32)."""
  a = jnp.ones((size, size), jnp.float32)
  mm = jax.jit(lambda a: a @ a)
  mm(a).block_until_ready()
  return 2 * size**3 / best_time(lambda: mm(a).block_until_ready(), repeats) / 1e9


def time_epochs(fn, state, repeats: int) -> float:
  """Fastest of ``repeats`` epochs ``fn(key, state) -> state`` after one compiling epoch."""
  state = jax.block_until_ready(fn(jax.random.key(0), state))
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    state = jax.block_until_ready(fn(jax.random.key(i + 1), state))
    times.append(time.perf_counter() - start)
  return min(times)


def synthetic(n: int, v: int, a: int, seed: int = 0, density: float = 0.04):
  """(x [n, v] binary, aux [n, 3]): three auxiliary groups sharing ``a`` rows."""
  rng = np.random.default_rng(seed)
  x = (rng.random((n, v)) < density).astype(np.float32)
  g = a // 3
  aux = np.stack([rng.integers(0, g, n), g + rng.integers(0, g, n),
                  2 * g + rng.integers(0, a - 2 * g, n)], 1).astype(np.int32)
  return x, aux
