"""Small generated data shared by the search, engine and memory-plan tests."""
import numpy as np

from crbm_jax import learn


def topic_track_data(n=160, v=12, seed=0, cuts=(100, 130)):
  """Tags driven by a per-track topic, so the track rows help; disjoint W_aux blocks
  (tracks 0-7, users 8-13). Returns (train, val, test, num_aux), split at ``cuts``."""
  rng = np.random.default_rng(seed)
  tracks = rng.integers(0, 8, n)
  topic = rng.random((8, v)) < 0.3
  x = ((rng.random((n, v)) < 0.1) | (topic[tracks] & (rng.random((n, v)) < 0.7)))
  aux = np.stack([tracks, 8 + rng.integers(0, 6, n)], 1).astype(np.int32)
  ds = lambda idx: learn.make_dataset(x[idx].astype(np.float32), aux[idx])
  a, b = cuts
  return ds(np.arange(0, a)), ds(np.arange(a, b)), ds(np.arange(b, n)), 14
