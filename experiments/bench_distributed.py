"""Benchmark: one model's epoch time with its minibatch rows split over 1, 2, ... devices.

  python experiments/bench_distributed.py [--host_devices 2] [--devices 1,2] [--size M]

One process; ``--host_devices`` splits the CPU into that many XLA devices (set before JAX
starts). For each device count: ``learn.distributed.fit_data_parallel`` on a mesh of the
first that many devices, without validation; the first epoch (compilation) is left out
and the median of the others reported, with the ratio to one device, and the largest
parameter difference from the one-device model. S: N=2600, V=200, H=100, 1300 entities;
M: N=13000, V=500, H=200, 4750 entities (bench_train's sizes).
"""
from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

SIZES = {"S": (2600, 200, 100, 1300), "M": (13000, 500, 200, 4750)}
FLAGS = flags.FLAGS
flags.DEFINE_integer("host_devices", 2, "XLA CPU devices in this process (0: as is).")
flags.DEFINE_list("devices", ["1", "2"], "Device counts to compare.")
flags.DEFINE_string("size", "M", "Problem size (S or M).")
flags.DEFINE_integer("num_epochs", 4, "Epochs per run (the first, compiling, is left out).")
flags.DEFINE_integer("batch_size", 100, "Observations per minibatch (global).")


def main(argv):
  del argv
  if FLAGS.host_devices:  # read when JAX starts its backends
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_"
                               f"platform_device_count={FLAGS.host_devices}")
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from benchlib import synthetic  # pylint: disable=import-outside-toplevel
  from crbm_jax import learn  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import distributed  # pylint: disable=import-outside-toplevel

  n, v, h, a = SIZES[FLAGS.size]
  x, aux = synthetic(n, v, a)
  train = learn.Dataset(x, aux, np.ones(n, np.float32))
  config = learn.TrainConfig(num_hidden=h, batch_size=FLAGS.batch_size,
                             num_epochs=FLAGS.num_epochs)
  hparams = learn.make_hparams(aux_lr_scale=10.0)
  rows, first = [], None
  for count in (int(c) for c in FLAGS.devices):
    mesh = distributed.data_mesh(jax.devices()[:count])
    stamps = []
    result = distributed.fit_data_parallel(
        jax.random.key(0), train, None, config, hparams, a, mesh,
        on_epoch=lambda e: stamps.append(time.perf_counter()))
    per_epoch = float(np.median(np.diff(stamps)))
    first = first or (per_epoch, result.params)
    diff = max(float(np.max(np.abs(np.asarray(p) - np.asarray(q))))
               for p, q in zip(result.params, first[1]))
    rows.append(dict(devices=count, size=FLAGS.size, n=n, v=v, h=h, entities=a,
                     batch=FLAGS.batch_size, seconds_per_epoch=round(per_epoch, 3),
                     ratio_to_first=round(per_epoch / first[0], 3),
                     max_param_diff=diff))
    print(json.dumps(rows[-1]), flush=True)
  # The one-device engine epoch (minibatches gathered in the graph, no host work): what
  # the data-parallel driver's per-epoch host gather and transfer cost on top of.
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from benchlib import median_time  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import engine  # pylint: disable=import-outside-toplevel
  learner = learn.cd(config, a)
  padded = learn.pad_dataset(learn.Dataset(*map(jnp.asarray, train)), FLAGS.batch_size)
  state = jax.jit(learner.init)(jax.random.key(0), padded, hparams)
  epoch = jax.jit(lambda k, s: engine.run_epoch(k, learner, s, padded, hparams,
                                                FLAGS.batch_size))
  jax.block_until_ready(epoch(jax.random.key(1), state))
  seconds, _ = median_time(lambda: jax.block_until_ready(epoch(jax.random.key(1), state)),
                           max(FLAGS.num_epochs - 1, 1))
  print(json.dumps(dict(engine_run_epoch_one_device=round(seconds, 3),
                        ratio_to_first=round(seconds / first[0], 3))), flush=True)
  print(f"load average {os.getloadavg()}, {os.cpu_count()} cores", file=sys.stderr)


if __name__ == "__main__":
  app.run(main)
