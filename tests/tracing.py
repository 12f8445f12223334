"""Counting compilations: a sweep over traced hyperparameters must trace once (STYLE.md
item 12, as chex's assert_max_traces)."""
import jax


def counted_jit(fn):
  """(jitted fn, traces): ``traces`` grows by one each time ``fn`` is traced."""
  traces = []

  def counted(*args):
    traces.append(1)
    return fn(*args)

  return jax.jit(counted), traces
