"""Benchmark: time per epoch of CD-1, PCD, PT (k temperatures) and the drift model, and AIS
per 1000 intermediate distributions, with ratios against CD-1 measured in the same run.

  python experiments/bench_beyond.py [--num_observations 1500] [--num_visible 100]
      [--num_hidden 50] [--batch_size 20] [--temperatures 3,5,10] [--ais_rows 500]
      [--ais_runs 8] [--repeats 3]

Synthetic data shaped like the simulated Mechanical Turk study's training split: user,
track and clip aux (5 evenly spaced clips per track), ~5% of the bits on.
"""
from __future__ import annotations


from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from benchlib import time_epochs
from crbm_jax import learn
from crbm_jax.learn.clip_distance import ClipNeighbours
from crbm_jax.model import ais

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_observations", 1500, "Training observations.")
flags.DEFINE_integer("num_visible", 100, "Tags.")
flags.DEFINE_integer("num_hidden", 50, "Hidden units.")
flags.DEFINE_integer("batch_size", 20, "Minibatch size.")
flags.DEFINE_integer("num_tracks", 185, "Tracks (5 clips each).")
flags.DEFINE_integer("num_users", 200, "Users.")
flags.DEFINE_list("temperatures", ["3", "5", "10"], "PT ladder sizes to time.")
flags.DEFINE_integer("ais_rows", 500, "Distinct aux rows for AIS.")
flags.DEFINE_integer("ais_runs", 8, "AIS runs per row.")
flags.DEFINE_integer("ais_betas", 200, "Intermediate distributions in the timed AIS call.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions (the minimum is reported).")


def synthetic(n, v, num_users, num_tracks, seed=0, density=0.05):
  """(x [n, v], aux [n, 3] user/track/clip global rows, ClipNeighbours)."""
  rng = np.random.default_rng(seed)
  x = (rng.random((n, v)) < density).astype(np.float32)
  clip = rng.integers(0, 5 * num_tracks, n)
  aux = np.stack([rng.integers(0, num_users, n), num_users + clip // 5,
                  num_users + num_tracks + clip], 1).astype(np.int32)
  offset = num_users + num_tracks
  e = np.arange(5 * num_tracks)
  pos = (e % 5 + 0.5) / 5
  rows = np.zeros((len(e), 5), np.int32)
  dist = np.zeros((len(e), 5), np.float32)
  for i in e:
    order = np.concatenate([[i], [j for j in range(i - i % 5, i - i % 5 + 5) if j != i]])
    rows[i], dist[i] = offset + order, np.abs(pos[order] - pos[i])
  return x, aux, ClipNeighbours(rows, dist, offset, 2), offset + len(e)


def main(argv):
  del argv
  x, aux, nb, num_aux = synthetic(FLAGS.num_observations, FLAGS.num_visible, FLAGS.num_users,
                                  FLAGS.num_tracks)
  config = learn.TrainConfig(num_hidden=FLAGS.num_hidden, batch_size=FLAGS.batch_size,
                             weight_scale=0.1)
  hp = learn.make_hparams(kernel_length=0.3)
  data = learn.pad_dataset(learn.make_dataset(x, aux), FLAGS.batch_size)

  def epoch_seconds(learner):
    state = learner.init(jax.random.key(0), data, hp)
    fn = jax.jit(lambda k, s: learn.run_epoch(k, learner, s, data, hp, FLAGS.batch_size)[0])
    return time_epochs(fn, state, FLAGS.repeats)

  cd1 = epoch_seconds(learn.cd(config, num_aux))
  rows = [("CD-1 epoch", cd1), ("PCD epoch", epoch_seconds(learn.pcd(config, num_aux)))]
  rows += [(f"PT epoch ({t} temperatures)",
            epoch_seconds(learn.parallel_tempering(config, num_aux, int(t))))
           for t in FLAGS.temperatures]
  rows.append(("distance-aware clip model epoch (CD-1, ℓ = 0.3)",
               epoch_seconds(learn.distance_aware(config, num_aux, nb))))
  params = learn.cd(config, num_aux).init(jax.random.key(0), data, hp).params
  ais_aux = jnp.asarray(aux[:FLAGS.ais_rows])
  fwd = jax.jit(lambda k, p: ais.ais_log_partition(k, p, ais_aux, FLAGS.ais_runs,
                                                    FLAGS.ais_betas).log_z)
  t = time_epochs(lambda k, p: (jax.block_until_ready(fwd(k, p)), p)[1], params, FLAGS.repeats)
  rows.append((f"AIS per 1000 distributions ({ais_aux.shape[0]} rows x {FLAGS.ais_runs} runs)",
               t * 1000 / FLAGS.ais_betas))
  print(f"N={FLAGS.num_observations} V={FLAGS.num_visible} H={FLAGS.num_hidden} "
        f"batch={FLAGS.batch_size} aux rows={num_aux}; backend {jax.default_backend()}, "
        f"{jax.device_count()} device(s); best of {FLAGS.repeats}")
  print(f"{'method':<58} {'seconds':>10} {'x CD-1':>8}")
  for name, sec in rows:
    print(f"{name:<58} {sec:>10.4f} {sec / cd1:>8.2f}")


if __name__ == "__main__":
  app.run(main)
