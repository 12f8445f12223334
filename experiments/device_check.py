"""Accelerator check: the JAX tests on the device's backend, bench_train, and the full
Table 2 grid (512 points x 5 splits) as ONE computation at the simulated study's size.

  python experiments/device_check.py            # on a machine with a GPU (or TPU)
  python experiments/device_check.py --quick    # a smoke run anywhere (a CPU: minutes)

Prints the backend and devices, the float32 matmul peak measured here, the tests' result,
bench_train's figures, and for the grid: model-epochs/s and the fraction of the measured
matmul peak (counting the 10·N·V·H flops of a CD-1 epoch's five products; the exact
validation pseudo-likelihood every epoch is extra work not counted). On a CPU it says
what it skipped: the test run on an accelerator backend and, unless --cpu_grid, the full
grid (minutes here; --quick runs a reduced grid instead). Writes nothing but its output
(and pytest's cache).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import app, flags
import jax
import numpy as np

from benchlib import matmul_peak

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Smoke mode: a few tests, bench_train at S only, a "
                  "reduced grid (8 points, 2 epochs).")
flags.DEFINE_bool("cpu_grid", False, "Run the full grid even on a CPU.")
flags.DEFINE_string("method", "vmap", "Table 2 method for the grid (vmap: one call).")
flags.DEFINE_integer("num_epochs", 30, "Epochs per fit in the grid (the `full` config's 30).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAX_TESTS = ("test_model.py", "test_pseudolikelihood.py", "test_learners.py",
             "test_block.py", "test_table2_methods.py", "test_persistent.py",
             "test_ais.py", "test_marginals.py", "test_clip_distance.py")
QUICK_TESTS = ("test_model.py", "test_pseudolikelihood.py")


def run(cmd, env=None) -> int:
  print("$", " ".join(cmd), flush=True)
  t0 = time.perf_counter()
  rc = subprocess.call(cmd, cwd=ROOT, env=env)
  print(f"  -> exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
  return rc


def grid(peak: float, quick: bool):
  """The grid stage of the `full` config on the simulated study in one jitted call."""
  import tempfile  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import table2 as table2_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import table2  # pylint: disable=import-outside-toplevel
  config = table2_config.get_config("full")
  config.method, config.progress, config.shard = FLAGS.method, False, False
  config.train.num_epochs = FLAGS.num_epochs
  if quick:
    config.grid.learning_rate, config.grid.l1_aux = (1.0, 3.0), (1e-4,)
    config.grid.aux_lr_scale, config.grid.weight_decay = (10.0,), (0.0,)
    config.train.num_epochs = 2
  points = table2.grid_points(config)
  prep = table2.prepare("simulated", config)
  groups = list(prep.obs.groups)
  track = prep.roles.get("track")
  tasks = [(p, (track,), s) for p in points for s in range(len(prep.splits))]
  walls = []
  for _ in range(2):  # the second call reuses the compiled stage
    with tempfile.TemporaryDirectory() as workdir:
      runner = table2.Runner(config, workdir, prep)
      t0 = time.perf_counter()
      runner.run("grid", tasks, [groups.index(track)])
      walls.append(time.perf_counter() - t0)
  n_train = int(np.mean([len(s.train) for s in prep.splits]))
  v = prep.obs.num_visible
  model_epochs = len(tasks) * config.train.num_epochs
  flops = sum(10 * n_train * v * p.num_hidden for p, _, _ in tasks) * config.train.num_epochs
  rate = model_epochs / walls[1]
  print(f"grid: {len(points)} points x {len(prep.splits)} splits x "
        f"{config.train.num_epochs} epochs (method {FLAGS.method}, one call; N_train "
        f"~{n_train}, V={v}): {walls[0]:.1f} s incl. compile, {walls[1]:.1f} s compiled = "
        f"{rate:.0f} model-epochs/s, {flops / walls[1] / 1e9:.0f} GFLOP/s = "
        f"{100 * flops / walls[1] / 1e9 / peak:.1f}% of the measured matmul peak",
        flush=True)


def main(argv):
  del argv
  backend = jax.default_backend()
  accel = backend != "cpu"
  print(f"backend {backend}: {jax.devices()}")
  peak = matmul_peak(5, 8192 if accel else 2048)
  print(f"float32 matmul peak: {peak:.0f} GFLOP/s", flush=True)
  skipped = []
  env = dict(os.environ)
  tests = QUICK_TESTS if FLAGS.quick else JAX_TESTS
  select = []
  if accel:
    env.pop("JAX_PLATFORMS", None)
    # The exactness tests compare with float32 references: no TF32 in the tests.
    env["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
    if len(jax.devices()) < 2:
      select = ["-k", "not sharded"]
      skipped.append("the tests that shard over 2 devices (one device here)")
  else:
    skipped.append("the JAX tests on an accelerator backend (none here; ran them on "
                   "the CPU)")
  rc = run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", *select,
            *[os.path.join("tests", t) for t in tests]], env=env)
  bench = [sys.executable, os.path.join("experiments", "bench_train.py")]
  if FLAGS.quick:
    bench += ["--sizes", "S", "--repeats", "1"]
  run(bench)
  if accel or FLAGS.cpu_grid or FLAGS.quick:
    grid(peak, quick=FLAGS.quick and not (accel or FLAGS.cpu_grid))
  if not (accel or FLAGS.cpu_grid):
    skipped.append("the full 512-point x 5-split grid (several minutes on a 2-core CPU; "
                   "--cpu_grid runs it" + ("; --quick ran an 8-point, 2-epoch grid"
                                           if FLAGS.quick else "") + ")")
  for s in skipped:
    print(f"SKIPPED: {s}")
  if rc:
    sys.exit(rc)


if __name__ == "__main__":
  app.run(main)
