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


def topic_tag_table(path, tags, num_tracks=8, clips_per_track=3, seed=0):
  """Writes a tag table with users: ``num_tracks`` tracks x ``clips_per_track`` clips x 3
  users, each task 3 tags drawn from a per-track Dirichlet topic over ``tags``
  (deterministic given ``seed``). Returns ``path``."""
  from crbm_jax.data.tagtable import TagTable, write_tag_table  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  rows = []
  for t in range(num_tracks):
    topic = rng.dirichlet(np.full(len(tags), 0.5))
    for c in range(clips_per_track):
      for u in range(3):
        for k in sorted(rng.choice(len(tags), size=3, replace=False, p=topic)):
          rows.append((f"t{t}c{c}", f"user{(t + c + u) % 5}", f"track{t}", tags[k]))
  clip, user, track, tag = (np.array(x) for x in zip(*rows))
  write_tag_table(TagTable(clip=clip, tag=tag, count=np.ones(len(clip), np.int64),
                           user=user, track=track), path)
  return path
