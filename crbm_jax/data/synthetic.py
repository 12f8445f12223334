"""A random tag table shaped like the paper's study, for tests, smoke runs and benchmarks.

Unlike ``simulate`` (the calibrated Mechanical Turk study with ground truth), this is a
fast generator of tables with users, tracks and clips whose Table 1 relations differ.
"""
from __future__ import annotations

import numpy as np

from crbm_jax.data.tagtable import TagTable


def synthetic_tag_table(num_tracks: int = 185, clips_per_track: int = 5,
                        users_per_clip: int = 3, num_users: int = 209,
                        num_tags: int = 100, tags_per_task: float = 6.0,
                        seed: int = 0) -> TagTable:
  """A random study shaped like the paper's (for tests, smoke runs, benchmarks).

  Tags mix a global popularity, a per-track and a drifting per-clip topic and a
  per-user vocabulary, so the relations of Table 1 differ; clips are evenly
  spaced in each track and carry start / track_duration.
  """
  rng = np.random.default_rng(seed)
  pop = rng.dirichlet(np.full(num_tags, 0.3))
  track_topic = rng.dirichlet(np.full(num_tags, 0.1), size=num_tracks)
  drift = rng.dirichlet(np.full(num_tags, 0.1), size=num_tracks)
  user_voc = rng.dirichlet(np.full(num_tags, 0.1), size=num_users)
  user_rate = rng.pareto(1.5, size=num_users) + 0.2
  cols = {k: [] for k in ("clip", "user", "tag", "track", "start", "dur")}
  for k in range(num_tracks):
    duration = float(rng.uniform(120, 360))
    for c in range(clips_per_track):
      frac = (c + 0.5) / clips_per_track
      clip_p = (1 - frac) * track_topic[k] + frac * drift[k]
      users = rng.choice(num_users, size=min(users_per_clip, num_users),
                         replace=False, p=user_rate / user_rate.sum())
      for u in users:
        p = 0.3 * pop + 0.45 * clip_p + 0.25 * user_voc[u]
        m = int(np.clip(rng.poisson(tags_per_task), 1, num_tags))
        tags = rng.choice(num_tags, size=m, replace=False, p=p / p.sum())
        for t in tags:
          cols["clip"].append(f"t{k:05d}c{c}")
          cols["user"].append(f"u{u:05d}")
          cols["tag"].append(f"tag{t:04d}")
          cols["track"].append(f"t{k:05d}")
          cols["start"].append(frac * duration - 5.0)
          cols["dur"].append(duration)
  r = len(cols["clip"])
  return TagTable(clip=np.asarray(cols["clip"]), tag=np.asarray(cols["tag"]),
                  count=np.ones(r, np.int64), user=np.asarray(cols["user"]),
                  track=np.asarray(cols["track"]),
                  start=np.asarray(cols["start"], float),
                  duration=np.full(r, 10.0),
                  track_duration=np.asarray(cols["dur"], float),
                  source=f"synthetic(seed={seed})")
