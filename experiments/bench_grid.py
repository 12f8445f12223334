"""Benchmark: a block of CRBMs (crbm_jax.learn.block, vmap over models) vs a Python loop of jitted
single models vs scikit-learn's BernoulliRBM, at the Mechanical Turk study's size.

  python experiments/bench_grid.py [--models 64] [--num_epochs 5] [--groups 1] [--repeats 3]
  python experiments/bench_grid.py --protocol   # + the whole `full` Table 2 protocol (~8 min)
  python experiments/bench_grid.py --split_methods=per_split,vmap,map --models 64 \
      --num_epochs 2    # the block over 5 splits per method, interleaved
  python experiments/bench_grid.py --adaptive=full     # the successive-halving grid stage
  python experiments/bench_grid.py --adaptive=default --adaptive_both   # vs exhaustive
  python experiments/bench_grid.py --adaptive=full --adaptive_by_hidden  # first rung
  python experiments/bench_grid.py --methods=vmap,map --protocol_epochs=6 \
      --eval_every=1,3   # the protocol per Table 2 method / validation schedule

Synthetic data: N=2600 training rows, 520 validation rows, V=200 tags (~4% ones),
H=100, 1300 auxiliary entities. A model-epoch is one CD-1 pass over the training rows
plus (for crbm_jax) the exact validation pseudo-likelihood used for early stopping.
Everything is measured in this run on this machine; GFLOP/s count the 10·N·V·H flops of a
CD-1 epoch's five V x H products against a float32 matmul peak measured here.
"""
from __future__ import annotations

import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from benchlib import best_time, matmul_peak, synthetic
from crbm_jax.learn import block as block_lib
from crbm_jax.learn import space as space_lib
from crbm_jax.learn.base import Dataset, TrainConfig

FLAGS = flags.FLAGS
flags.DEFINE_integer("models", 64, "Configurations in the vmapped block.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions (the minimum is reported).")
flags.DEFINE_integer("loop_models", 8, "Configurations timed in the Python loop.")
flags.DEFINE_integer("sklearn_models", 3, "BernoulliRBM fits timed.")
flags.DEFINE_integer("num_epochs", 5, "Epochs per fit.")
flags.DEFINE_integer("groups", 1, "Auxiliary groups used (1: grid stage, 3: all).")
flags.DEFINE_string("key_impl", "threefry2x32", "PRNG implementation.")
flags.DEFINE_integer("eval_chunk", 64, "Observations per pseudo-likelihood chunk.")
flags.DEFINE_bool("protocol", False,
                  "Also run the `full` Table 2 protocol (512-point grid x 5 splits, then the 8 "
                  "auxiliary combinations and the baseline x 5 splits, 30 epochs) on the "
                  "simulated Mechanical Turk study in a temporary workdir and time it.")
flags.DEFINE_list("methods", [], "Time the `full` protocol with each of these Table 2 "
                  "methods (vmap, map), in this one run; skips the block benchmark above.")
flags.DEFINE_list("split_methods", [], "Time a block of --models configurations on 5 "
                  "splits with each of these methods (vmap, map; per_split: a call per "
                  "split; loop: a call per model and split) in this one run, "
                  "interleaved, and exit.")
flags.DEFINE_integer("map_chunk", 16, "Models per lax.map step for --split_methods=map.")
flags.DEFINE_integer("protocol_epochs", 0, "Epochs per fit in the protocol runs (0: the "
                     "config's 30). Fewer measure a representative fraction: same blocks "
                     "and shapes, each fit shorter; the training time is extrapolated "
                     "linearly to 30 epochs and labelled as such.")
flags.DEFINE_string("adaptive", "", "Run the Table 2 grid stage of this config variant "
                    "(full / default) on the simulated study with search='adaptive' (or "
                    "'both' with --adaptive_both: the exhaustive grid as well, and whether "
                    "the picks agree within one standard error), time it and exit.")
flags.DEFINE_bool("adaptive_both", False, "With --adaptive: run the exhaustive grid too.")
flags.DEFINE_bool("adaptive_by_hidden", False, "With --adaptive: time the adaptive search "
                  "alone with its first rung in one padded block and in one block per "
                  "hidden size (group_by_hidden False / True), each twice in this run "
                  "(the second call compiled), interleaved, and exit.")
flags.DEFINE_string("protocol_variant", "full", "Table 2 config variant of the protocol "
                    "runs (--methods).")
flags.DEFINE_integer("grid_stride", 1, "Protocol runs: keep every k-th grid point (all "
                     "hidden sizes stay; the grid stage's time is extrapolated x k).")
flags.DEFINE_list("eval_every", ["1"], "Validation schedules (epochs between evaluations) "
                  "to time in the protocol runs.")

N, N_VAL, V, H, A = 2600, 520, 200, 100, 1300


def _dataset(x, aux):
  return Dataset(jnp.asarray(x), jnp.asarray(aux, jnp.int32),
                 jnp.ones((x.shape[0],), jnp.float32))


def main(argv):
  del argv
  if FLAGS.methods:
    compare_methods()
    return
  if FLAGS.split_methods:
    compare_split_methods()
    return
  if FLAGS.adaptive and FLAGS.adaptive_by_hidden:
    compare_adaptive_first_rung()
    return
  if FLAGS.adaptive:
    run_adaptive()
    return
  peak = matmul_peak(FLAGS.repeats)
  x, aux = synthetic(N + 2 * N_VAL, V, A)
  aux = aux[:, 3 - FLAGS.groups:]
  train = _dataset(x[:N], aux[:N])
  val = _dataset(x[N:N + N_VAL], aux[N:N + N_VAL])
  test = _dataset(x[N + N_VAL:], aux[N + N_VAL:])
  config = TrainConfig(num_hidden=H, batch_size=100, num_epochs=FLAGS.num_epochs,
                       eval_chunk=FLAGS.eval_chunk)
  fn = jax.jit(block_lib.make_block_fit(config, A))
  points = space_lib.expand_grid([H], np.geomspace(0.01, 0.3, 16), [1e-4, 1e-3], [1e-4, 1e-3])
  root = jax.random.key(0, impl=FLAGS.key_impl)
  data_key = jax.random.key(1, impl=FLAGS.key_impl)
  m = FLAGS.models
  pts = (points * (-(-m // len(points))))[:m]
  keys = jax.random.split(root, m)
  gmask = np.ones((m, FLAGS.groups), np.float32)

  def block(k, p, g):
    return jax.block_until_ready(block_lib.run_block(fn, k, p, g, H, data_key, train, val, test))

  t0 = time.perf_counter()
  block(keys, pts, gmask)
  compile_s = time.perf_counter() - t0
  t_vmap = best_time(lambda: block(keys, pts, gmask), FLAGS.repeats)
  rate_vmap = m * FLAGS.num_epochs / t_vmap
  gflop = 10 * N * V * H / 1e9
  print(f"float32 matmul peak: {peak:.0f} GFLOP/s on {jax.devices()[0]}")
  print(f"vmap block of {m} models x {FLAGS.num_epochs} epochs (G={FLAGS.groups}): "
        f"{t_vmap:.2f} s = {rate_vmap:.1f} model-epochs/s, {rate_vmap * gflop:.1f} GFLOP/s "
        f"({100 * rate_vmap * gflop / peak:.0f}% of peak); first call incl. compile "
        f"{compile_s:.1f} s", flush=True)
  floor = matmul_floor(m, FLAGS.repeats)
  steps = N // 100
  print(f"the five CD-1 products alone, at these shapes (3 batched [{m}, 100, .] products, "
        f"2 shared [100, {m}*{H}] ones): {floor * 1e3:.2f} ms per step -> at most "
        f"{m / (steps * floor):.0f} model-epochs/s with nothing else (no sampling, "
        f"auxiliary terms, updates or validation)", flush=True)
  k = FLAGS.loop_models
  if k == 0:
    return
  block(keys[:1], pts[:1], gmask[:1])  # compile the single-model shape
  t_loop = best_time(lambda: [block(keys[i:i + 1], pts[i:i + 1], gmask[:1])
                              for i in range(k)], FLAGS.repeats)
  rate_loop = k * FLAGS.num_epochs / t_loop
  print(f"Python loop of jitted single models ({k} timed): {rate_loop:.1f} model-epochs/s "
        f"-> vmap is x{rate_vmap / rate_loop:.2f}", flush=True)
  from sklearn.neural_network import BernoulliRBM  # pylint: disable=import-outside-toplevel
  xs = np.asarray(x[:N])
  t_sk = best_time(lambda: [BernoulliRBM(n_components=H, batch_size=100, n_iter=FLAGS.num_epochs,
                                         learning_rate=0.05, random_state=i).fit(xs)
                            for i in range(FLAGS.sklearn_models)], FLAGS.repeats)
  rate_sk = FLAGS.sklearn_models * FLAGS.num_epochs / t_sk
  print(f"scikit-learn BernoulliRBM (no auxiliary terms, no validation): {rate_sk:.1f} "
        f"model-epochs/s -> vmap is x{rate_vmap / rate_sk:.2f}", flush=True)
  if FLAGS.protocol:
    run_protocol()
  fits = 500 * 5 * 30 + 8 * 5 * 30
  print(f"full protocol at this size (500 points x 5 splits + 8 combinations x 5 splits, "
        f"30 epochs = {fits} model-epochs; 60% of N per epoch in the protocol): "
        f"~{fits / rate_vmap * 0.6 / 60:.1f} min extrapolated from the vmap rate")


def matmul_floor(m, repeats, batch=100):
  """Seconds per CD-1 step spent in its five products for a block of m models, measured
  here: the negative phase's three batched products and the two shared ones."""
  k = jax.random.split(jax.random.key(0), 5)
  h = jax.random.uniform(k[0], (m, batch, H))
  v = jax.random.uniform(k[1], (m, batch, V))
  W = jax.random.normal(k[2], (m, V, H))
  v0 = jax.random.uniform(k[3], (batch, V))
  W_stacked = jax.random.normal(k[4], (V, m * H))
  fn = jax.jit(lambda h, v, W, v0, Ws: (
      jnp.einsum("mbh,mvh->mbv", h, W), jnp.einsum("mbv,mvh->mbh", v, W),
      jnp.einsum("mbv,mbh->mvh", v, h), v0 @ Ws, v0.T @ (v0 @ Ws)))
  args = (h, v, W, v0, W_stacked)
  jax.block_until_ready(fn(*args))
  reps = 20
  return best_time(lambda: [jax.block_until_ready(fn(*args)) for _ in range(reps)],
                   repeats) / reps


def compare_split_methods(num_splits: int = 5):
  """--models configurations x 5 splits x --num_epochs: one call over (split, model) ('vmap'),
  lax.map over chunks ('map'), a call per split ('per_split') or per model and split
  ('loop'); same keys, so the same
  fits. Repetitions interleaved, the fastest of each reported."""
  x, aux = synthetic(N + N_VAL, V, A)
  aux = aux[:, 3 - FLAGS.groups:]
  m = FLAGS.models
  config = TrainConfig(num_hidden=H, batch_size=100, num_epochs=FLAGS.num_epochs,
                       eval_chunk=FLAGS.eval_chunk)
  points = space_lib.expand_grid([H], np.geomspace(0.01, 0.3, 16), [1e-4, 1e-3],
                                 [1e-4, 1e-3])
  pts = (points * (-(-m // len(points))))[:m]
  hp = space_lib.stack_hparams(pts)
  masks = jnp.asarray(space_lib.hidden_masks(pts, H))
  gmask = jnp.ones((m, FLAGS.groups), jnp.float32)
  splits = []
  for s in range(num_splits):
    order = np.random.default_rng(s).permutation(N + N_VAL)
    tr, va = order[:N], order[N:]
    splits.append((_dataset(x[tr], aux[tr]), _dataset(x[va], aux[va])))
  model_keys = jax.random.split(jax.random.key(0), num_splits * m).reshape(num_splits, m)
  data_keys = jax.random.split(jax.random.key(1), num_splits)
  stack = lambda parts: jax.tree.map(lambda *a: jnp.stack(a), *parts)
  train, val = stack([t for t, _ in splits]), stack([v for _, v in splits])
  runs = {}
  for method in FLAGS.split_methods:
    if method == "per_split":  # a call per split (Table 2 computes whole stages)
      fn = jax.jit(block_lib.make_block_fit(config, A))
      runs[method] = lambda fn=fn: [jax.block_until_ready(fn(
          model_keys[s], hp, masks, gmask, data_keys[s], *splits[s], splits[s][1]))
                                    for s in range(num_splits)]
    elif method == "loop":  # a call per model and split
      fn = jax.jit(block_lib.make_block_fit(config, A))
      one = lambda x, i: x[i:i + 1]
      runs[method] = lambda fn=fn: [jax.block_until_ready(fn(
          one(model_keys[s], i), jax.tree.map(lambda x, i=i: one(x, i), hp),
          one(masks, i), one(gmask, i), data_keys[s], *splits[s], splits[s][1]))
                                    for s in range(num_splits) for i in range(m)]
    else:
      fn = jax.jit(block_lib.make_split_block_fit(config, A, method, FLAGS.map_chunk))
      runs[method] = lambda fn=fn: jax.block_until_ready(
          fn(model_keys, hp, masks, gmask, data_keys, train, val, val))
    t0 = time.perf_counter()
    runs[method]()
    print(f"{method}: first call (compile + run) {time.perf_counter() - t0:.1f} s",
          flush=True)
  best = {k: float("inf") for k in runs}
  for _ in range(FLAGS.repeats):
    for method, run in runs.items():
      t0 = time.perf_counter()
      run()
      best[method] = min(best[method], time.perf_counter() - t0)
  work = num_splits * m * FLAGS.num_epochs
  base = best[FLAGS.split_methods[0]]
  for method, t in best.items():
    print(f"{method:9s}: {t:.2f} s for {m} models x {num_splits} splits x {FLAGS.num_epochs} "
          f"epochs = {work / t:.1f} model-epochs/s (x{base / t:.2f} vs "
          f"{FLAGS.split_methods[0]})", flush=True)


def run_adaptive():
  """The adaptive (successive-halving) grid stage, and optionally the exhaustive one."""
  import tempfile  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import table2 as table2_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import table2  # pylint: disable=import-outside-toplevel
  config = table2_config.get_config(FLAGS.adaptive)
  config.search = "both" if FLAGS.adaptive_both else "adaptive"
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    out = table2.run_table2(config, workdir, datasets=("simulated",))
    wall = time.perf_counter() - t0
  res = out["datasets"][0]
  a = res["adaptive"]
  print(f"{FLAGS.adaptive} grid ({len(table2.grid_points(config))} points x "
        f"{config.num_splits} splits, {config.train.num_epochs} epochs), search="
        f"{config.search}: adaptive {a['seconds']:.1f} s (compiles included), "
        f"{a['model_epochs']} model-epochs = {100 * a['model_epochs'] / a['exhaustive_model_epochs']:.1f}% "
        f"of the exhaustive grid's, buckets {a['buckets']}; picked {a['selected']} (mean "
        f"val PL {a['mean_val_pl']:.4f}); whole run {wall:.1f} s", flush=True)
  if "exhaustive_selected" in a:
    print(f"exhaustive grid stage {a['exhaustive_seconds']:.1f} s: picked "
          f"{a['exhaustive_selected']}, mean val PL {a['exhaustive_mean_val_pl']:.4f} ± "
          f"{a['exhaustive_val_pl_stderr']:.4f}; the adaptive pick's exhaustive mean val PL "
          f"{a['pick_exhaustive_mean_val_pl']:.4f}: within one s.e.: "
          f"{a['within_one_stderr']}; adaptive x{a['exhaustive_seconds'] / a['seconds']:.1f} "
          f"faster", flush=True)


def compare_adaptive_first_rung():
  """The adaptive grid stage alone (``Runner.adaptive``) on the simulated study, first rung
  padded vs per hidden size, interleaved, each twice (compiles: first minus second)."""
  import os  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import table2 as table2_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import table2  # pylint: disable=import-outside-toplevel
  config = table2_config.get_config(FLAGS.adaptive)
  config.search, config.progress = "adaptive", False
  prep = table2.prepare("simulated", config)
  points = table2.grid_points(config)
  groups, roles = list(prep.obs.groups), prep.roles
  grid_group = roles.get("track", roles.get("item", roles.get("user")))
  cols, gg = [groups.index(grid_group)], (grid_group,)
  runs = {}
  with tempfile.TemporaryDirectory() as workdir:
    for rep in range(2):
      for by_hidden in (False, True):
        config.group_by_hidden = by_hidden
        runner = table2.Runner(config, workdir, prep)
        cpu0, load = time.process_time(), os.getloadavg()[0]
        a = runner.adaptive(points, gg, cols)
        cpu = time.process_time() - cpu0
        runs.setdefault(by_hidden, []).append(a["seconds"])
        name = "per hidden size" if by_hidden else "padded to H max"
        print(f"run {rep + 1}, first rung {name}: {a['seconds']:.1f} s wall, {cpu:.1f} s "
              f"CPU (load {load:.1f}); {a['model_epochs']} model-epochs, buckets "
              f"{a['buckets']}, first-rung blocks {a.get('first_rung')}; picked "
              f"{a['selected']} (mean val PL {a['mean_val_pl']:.4f})", flush=True)
  for by_hidden, (cold, warm) in runs.items():
    name = "per hidden size" if by_hidden else "padded to H max"
    print(f"{name}: {cold:.1f} s first call = {warm:.1f} s compute (second call) + "
          f"{max(cold - warm, 0.0):.1f} s compiling", flush=True)
  print(f"per hidden size / padded: cold x{runs[False][0] / runs[True][0]:.2f}, compiled "
        f"x{runs[False][1] / runs[True][1]:.2f} faster", flush=True)


def compare_methods():
  """The `full` protocol on the simulated study with each method (and validation
  schedule), in this run: a first run (compiles included) and a second in a fresh
  workdir (compiled functions reused: the computation alone)."""
  import tempfile  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import table2 as table2_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import table2  # pylint: disable=import-outside-toplevel
  rows = []
  for every in map(int, FLAGS.eval_every):
    for method in FLAGS.methods:
      config = table2_config.get_config(FLAGS.protocol_variant)
      config.method, config.progress = method, False
      full_epochs = config.train.num_epochs
      if FLAGS.protocol_epochs:
        config.train.num_epochs = FLAGS.protocol_epochs
      config.train.eval_every = every
      epochs = config.train.num_epochs
      stride = FLAGS.grid_stride
      if stride > 1:  # keep every k-th point (the grid's product order: all sizes stay)
        keep = table2.grid_points(config)[::stride]
        grid_of = table2.grid_points
        table2.grid_points = lambda c, keep=keep: list(keep)
      walls = []
      for _ in range(2):
        with tempfile.TemporaryDirectory() as workdir:
          t0 = time.perf_counter()
          out = table2.run_table2(config, workdir, datasets=("simulated",))
          walls.append(time.perf_counter() - t0)
      if stride > 1:
        table2.grid_points = grid_of
      res = out["datasets"][0]
      compile_s = max(walls[0] - walls[1], 0.0)
      # the compiled run's time, scaled to 30 epochs and the whole grid (the grid stage
      # dominates: 8 combination fits per split against len(grid) grid fits)
      extrapolated = walls[1] * full_epochs / epochs * stride + compile_s
      label = "" if (epochs == full_epochs and stride == 1) else (
          f" -> EXTRAPOLATED to {full_epochs} epochs and the whole grid (x{stride} the "
          f"points): {extrapolated / 60:.2f} min")
      rows.append((method, every, walls, extrapolated))
      print(f"method={method} eval_every={every} epochs={epochs}: first run {walls[0]:.1f} s "
            f"(compiles included), second {walls[1]:.1f} s (compute; compiles "
            f"~{compile_s:.1f} s){label}; selected {res['selected']}; +++ test PL "
            f"{res['rows'][0].get('mean', float('nan')):.4f}; rows "
            f"{[(r['pattern'], round(r['mean'], 4)) for r in res['rows'] if 'mean' in r]}",
            flush=True)
  base = rows[0][3]
  for method, every, walls, extrapolated in rows:
    print(f"  {method:9s} eval_every={every}: {extrapolated / 60:.2f} min for the full "
          f"protocol (x{base / extrapolated:.2f} vs {rows[0][0]} eval_every={rows[0][1]})")


def run_protocol():
  """Times table2.run_table2 with the `full` config on 'simulated' (compiles included)."""
  import tempfile  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import table2 as table2_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import table2  # pylint: disable=import-outside-toplevel
  config = table2_config.get_config("full")
  grid_size = len(table2.grid_points(config))
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    table2.run_table2(config, workdir, datasets=("simulated",))
    wall = time.perf_counter() - t0
  fits = grid_size * config.num_splits + 8 * config.num_splits
  print(f"full Table 2 protocol on the simulated study ({grid_size} grid points x "
        f"{config.num_splits} splits + 8 combinations x {config.num_splits} splits = {fits} "
        f"fits of {config.train.num_epochs} epochs, + the baseline): {wall / 60:.1f} min wall "
        f"({fits * config.train.num_epochs / wall:.0f} model-epochs/s at 60% of N, "
        f"compiles included)", flush=True)


if __name__ == "__main__":
  app.run(main)
