"""Benchmark: the grid search a scikit-learn user would run against ours, same 64 points.

  python experiments/bench_sklearn.py [--num_epochs 10] [--folds 5] [--n_jobs 2]
  python experiments/bench_sklearn.py --time_to_good   # adaptive vs (Halving)GridSearchCV
      (ours twice: with a cold and a warm persistent compilation cache)

scikit-learn: ``GridSearchCV(BernoulliRBM(), {n_components: 4 sizes, learning_rate: 16
values}, cv=5, n_jobs=2)`` on S-size data (N=2600, V=200, ~4% ones): 64 points x 5 folds,
scored by BernoulliRBM.score_samples (a stochastic one-bit pseudo-likelihood), no
auxiliary terms. Ours: the same 64 points x the same 5 folds (train on 4/5, validate on
1/5) in ONE call of the split-axis block trainer (``learn.block.make_split_block_fit``),
WITH the auxiliary terms (3 groups, 1300 entities) and the exact balanced validation
pseudo-likelihood every ``--eval_every`` epochs and at the end. Both measured in this run,
compiles included for ours (a second, compiled call is printed as well); the ratio is
scikit-learn's wall time over ours.
"""
from __future__ import annotations

import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from benchlib import synthetic
from crbm_jax.learn import block as block_lib
from crbm_jax.learn import space as space_lib
from crbm_jax.learn.base import Dataset, TrainConfig

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_epochs", 10, "Epochs per fit (BernoulliRBM n_iter) for both.")
flags.DEFINE_integer("folds", 5, "Cross-validation folds.")
flags.DEFINE_integer("n_jobs", 2, "GridSearchCV n_jobs.")
flags.DEFINE_integer("eval_every", 0, "Our validation schedule (0: only at the end, as "
                     "GridSearchCV scores once).")
flags.DEFINE_string("method", "vmap", "Split-axis method: vmap or map.")
flags.DEFINE_bool("skip_sklearn", False, "Time ours only.")
flags.DEFINE_bool("by_hidden", True, "--time_to_good: our adaptive search trains its "
                  "first rung in one block per hidden size (False: one padded block).")
flags.DEFINE_bool("time_to_good", False, "Time to a good model instead: the 64-point grid "
                  "WITHOUT auxiliary terms given to our adaptive search (successive "
                  "halving, learn.halving.run_halving), to GridSearchCV(BernoulliRBM) and "
                  "to HalvingGridSearchCV(BernoulliRBM) (cv=--folds, n_jobs=-1); each pick "
                  "is judged by our exhaustive grid's mean validation PL (within one s.e. "
                  "of the best?), and the wall times are compared.")

N, V, A = 2600, 200, 1300
HIDDEN = (25, 50, 100, 200)
RATES = tuple(float(x) for x in np.geomspace(0.05, 3.0, 16))


def folds(n, k, seed=0):
  order = np.random.default_rng(seed).permutation(n)
  parts = np.array_split(order, k)
  return [(np.concatenate(parts[:i] + parts[i + 1:]), parts[i]) for i in range(k)]


def ours(x, aux, cv):
  """Seconds of the first (compiling) and second call, and the mean validation PL."""
  batch = 100
  every = FLAGS.eval_every or FLAGS.num_epochs
  stack = lambda parts: jax.tree.map(lambda *a: jnp.stack(a), *parts)
  n_train = max(len(t) for t, _ in cv)
  n_train += (-n_train) % batch
  n_val = max(len(v) for _, v in cv)

  def dataset(rows, size):
    pad = size - len(rows)
    return Dataset(jnp.asarray(np.pad(x[rows], ((0, pad), (0, 0)))),
                   jnp.asarray(np.pad(aux[rows], ((0, pad), (0, 0)), constant_values=-1)),
                   jnp.asarray(np.pad(np.ones(len(rows), np.float32), (0, pad))))

  train = stack([dataset(t, n_train) for t, _ in cv])
  val = stack([dataset(v, n_val) for _, v in cv])
  fns = []
  for h in HIDDEN:  # one block per hidden size, all in one jitted call
    config = TrainConfig(num_hidden=h, batch_size=batch, num_epochs=FLAGS.num_epochs,
                         eval_every=every)
    points = space_lib.expand_grid([h], RATES, [0.0], [1e-4], aux_lr_scale=[10.0])
    fns.append((block_lib.make_split_block_fit(config, A, FLAGS.method, 16), points))
  k = len(cv)
  data_keys = jax.random.split(jax.random.key(1), k)
  blocks = []
  for i, (_, points) in enumerate(fns):
    keys = jax.random.split(jax.random.key(10 + i), k * len(points)).reshape(k, len(points))
    blocks.append((keys, space_lib.stack_hparams(points),
                   jnp.asarray(space_lib.hidden_masks(points, points[0].num_hidden)),
                   jnp.ones((len(points), 3), jnp.float32)))

  @jax.jit
  def search(blocks):
    return tuple(fn(*b, data_keys, train, val, val).best_val_pl
                 for (fn, _), b in zip(fns, blocks))

  walls = []
  for _ in range(2):
    t0 = time.perf_counter()
    out = jax.block_until_ready(search(tuple(blocks)))
    walls.append(time.perf_counter() - t0)
  best = max(float(np.mean(np.asarray(o), 0).max()) for o in out)
  return walls, best


def _no_aux_data(x, cv, n_train_pad):
  """Stacked (train, val) folds with no auxiliary group (aux [N, 0])."""
  stack = lambda parts: jax.tree.map(lambda *a: jnp.stack(a), *parts)
  n_val = max(len(v) for _, v in cv)

  def dataset(rows, size):
    pad = size - len(rows)
    return Dataset(jnp.asarray(np.pad(x[rows], ((0, pad), (0, 0)))),
                   jnp.zeros((size, 0), jnp.int32),
                   jnp.asarray(np.pad(np.ones(len(rows), np.float32), (0, pad))))

  return (stack([dataset(t, n_train_pad) for t, _ in cv]),
          stack([dataset(v, n_val) for _, v in cv]))


def time_to_good(x, cv):
  """Our exhaustive grid (the reference), our adaptive search, GridSearchCV and
  HalvingGridSearchCV on the same 64 points without auxiliary terms."""
  from crbm_jax.learn import engine, halving  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import compile_cache  # pylint: disable=import-outside-toplevel
  # a fresh persistent compilation cache: the first adaptive search fills it (cold), the
  # second, after this process forgets its compiled programs, reads it (warm)
  compile_cache.enable(tempfile.mkdtemp(prefix="bench_sklearn_cache_"))
  batch, k, epochs = 100, len(cv), FLAGS.num_epochs
  n_train = max(len(t) for t, _ in cv)
  n_train += (-n_train) % batch
  train, val = _no_aux_data(x, cv, n_train)
  points = space_lib.expand_grid(HIDDEN, RATES, [0.0], [0.0])          # hidden outermost
  h_max = max(HIDDEN)
  data_keys = jax.random.split(jax.random.key(1), k)
  model_keys = jax.random.split(jax.random.key(10), k * len(points)).reshape(k, -1)
  hp = space_lib.stack_hparams(points)
  masks = jnp.asarray(space_lib.hidden_masks(points, h_max))
  groups = jnp.zeros((len(points), 0), jnp.float32)
  # the reference: every point on every fold, validation after every epoch (best epoch)
  config = TrainConfig(num_hidden=h_max, batch_size=batch, num_epochs=epochs)
  fn = jax.jit(block_lib.make_split_block_fit(config, 0, FLAGS.method, 16))
  t0 = time.perf_counter()
  ex = jax.block_until_ready(fn(model_keys, hp, masks, groups, data_keys, train, val, val))
  t_ex = time.perf_counter() - t0
  per_fold = np.asarray(ex.best_val_pl)                                   # [k, 64]
  mean = per_fold.mean(0)
  best = int(np.argmax(mean))
  se = float(per_fold[:, best].std(ddof=1) / np.sqrt(k))
  good = lambda i: bool(mean[i] >= mean[best] - se)
  print(f"reference: our exhaustive grid, 64 points x {k} folds x {epochs} epochs, no aux: "
        f"{t_ex:.1f} s incl. compiles; best {points[best].num_hidden} hidden, lr "
        f"{points[best].learning_rate:.3g}: mean val PL {mean[best]:.4f} ± {se:.4f}",
        flush=True)
  rule = engine.StopRule(patience=2 ** 30, tol=0.0, num_epochs=epochs, eval_every=1,
                         diverge_margin=2.0 ** 30)
  walls = {}
  for cache in ("cold", "warm"):
    if cache == "warm":  # forget every compiled program of this process: the persistent
      jax.clear_caches()  # cache is all that is left (as for a second process)
      engine.compiled_host.cache_clear()
      engine.compiled_segments.cache_clear()
    clock = compile_cache.CompileClock()
    res = halving.run_halving(config, 0, model_keys, hp, np.asarray(masks),
                              np.asarray(groups), data_keys, train, val,
                              engine.Halving(4.0, 1, 4), rule, min_bucket=8,
                              by_hidden=FLAGS.by_hidden)
    split = clock.split()
    walls[cache] = split["seconds"]
    pick = int(np.argmax(res.mean_val_pl))
    print(f"ours adaptive (eta 4, first rung 1, first rung by hidden size: "
          f"{FLAGS.by_hidden}), {cache} compilation cache: {split['seconds']:.1f} s "
          f"({compile_cache.describe(split)}), {res.model_epochs} model-epochs "
          f"({100 * res.model_epochs / (64 * k * epochs):.0f}% of the grid's); pick {pick}: "
          f"exhaustive mean val PL {mean[pick]:.4f}, within one s.e.: {good(pick)}",
          flush=True)
  if FLAGS.skip_sklearn:
    return
  from sklearn.experimental import enable_halving_search_cv  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV  # pylint: disable=import-outside-toplevel
  from sklearn.neural_network import BernoulliRBM  # pylint: disable=import-outside-toplevel
  grid = dict(n_components=list(HIDDEN), learning_rate=list(RATES))
  index = {(p.num_hidden, p.learning_rate): i for i, p in enumerate(points)}
  for name, cls in (("GridSearchCV", GridSearchCV), ("HalvingGridSearchCV",
                                                    HalvingGridSearchCV)):
    search = cls(BernoulliRBM(batch_size=batch, n_iter=epochs, random_state=0), grid,
                 cv=cv, n_jobs=-1, refit=False, scoring=_score)
    t0 = time.perf_counter()
    search.fit(x)
    t_sk = time.perf_counter() - t0
    i = index[(search.best_params_["n_components"], search.best_params_["learning_rate"])]
    goal = 10 if name == "GridSearchCV" else 5
    print(f"scikit-learn {name}(BernoulliRBM, 64 points, cv={k}, n_jobs=-1): {t_sk:.1f} s;"
          f" pick {i}: exhaustive mean val PL {mean[i]:.4f}, within one s.e.: {good(i)} -> "
          f"ours adaptive x{t_sk / walls['cold']:.2f} faster with a cold compilation cache, "
          f"x{t_sk / walls['warm']:.2f} with a warm one (goal >= {goal}x)", flush=True)


def _score(estimator, x, y=None):
  """BernoulliRBM has no ``score``: its mean ``score_samples`` (what a user would pass)."""
  del y
  return float(np.mean(estimator.score_samples(x)))


def main(argv):
  del argv
  x, aux = synthetic(N, V, A)
  cv = folds(N, FLAGS.folds)
  if FLAGS.time_to_good:
    time_to_good(x, cv)
    return
  model_epochs = len(HIDDEN) * len(RATES) * FLAGS.folds * FLAGS.num_epochs
  walls, best = ours(x, aux, cv)
  print(f"ours: 64 points x {FLAGS.folds} folds x {FLAGS.num_epochs} epochs with aux terms and "
        f"exact validation PL (every {FLAGS.eval_every or FLAGS.num_epochs} epochs), one call "
        f"({FLAGS.method}): {walls[0]:.1f} s incl. compiles, {walls[1]:.1f} s compiled "
        f"({model_epochs / walls[1]:.0f} model-epochs/s); best mean val PL {best:.4f}",
        flush=True)
  if FLAGS.skip_sklearn:
    return
  from sklearn.model_selection import GridSearchCV  # pylint: disable=import-outside-toplevel
  from sklearn.neural_network import BernoulliRBM  # pylint: disable=import-outside-toplevel
  search = GridSearchCV(BernoulliRBM(batch_size=100, n_iter=FLAGS.num_epochs, random_state=0),
                        dict(n_components=list(HIDDEN), learning_rate=list(RATES)),
                        cv=cv, n_jobs=FLAGS.n_jobs, refit=False, scoring=_score)
  t0 = time.perf_counter()
  search.fit(x)
  t_sk = time.perf_counter() - t0
  print(f"scikit-learn GridSearchCV(BernoulliRBM, 64 points, cv={FLAGS.folds}, "
        f"n_jobs={FLAGS.n_jobs}, no aux terms, stochastic one-bit PL score): {t_sk:.1f} s "
        f"-> ours x{t_sk / walls[0]:.2f} faster incl. compiles, x{t_sk / walls[1]:.2f} "
        f"compiled", flush=True)


if __name__ == "__main__":
  app.run(main)
