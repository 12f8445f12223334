"""Benchmark: does the default ``crbm-fit`` find a model as good as an exhaustive search?

  python experiments/bench_fit.py [--datasets majorminer,synthetic] [--exhaustive]

For each data set, in one run and on the same 60/20/20 split:

* the default ``crbm-fit`` (``fitting.fit_tag_table`` with its defaults: a 24-configuration
  validation search with per-model early stopping and successive halving): its test
  balanced log PL and its wall time (reading the table, the search, the test evaluation
  and writing the run; compilation included);
* with ``--exhaustive``, every point of the same 512-point grid (``fitting.SEARCH_DEFAULTS``),
  each trained with the same early stopping and no halving (blocks of ``--block``
  models), the best by validation, its test PL and the wall time.

Data sets: the embedded MajorMiner table (clips with tracks, no users) and a synthetic
6,000 x 50 table (1,500 tracks x 4 clips, one tagging per clip, no users;
``data.synthetic``). Target (issue 15): the default within 0.01 of the exhaustive best,
in <= 60 s on the idle 2-core machine.
"""
import dataclasses
import importlib.resources
import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

from crbm_jax import fitting
from crbm_jax import learn
from crbm_jax.data import majorminer
from crbm_jax.data.synthetic import synthetic_tag_table
from crbm_jax.data.tagtable import write_tag_table
from crbm_jax.learn import search, select

flags.DEFINE_list("datasets", ["majorminer", "synthetic"], "Data sets to run.")
flags.DEFINE_bool("exhaustive", True, "Also run the exhaustive 512-point search.")
flags.DEFINE_integer("block", 128, "Models per block in the exhaustive search.")
flags.DEFINE_integer("seed", 0, "Seed of the split and of training.")
flags.DEFINE_string("json_out", None, "Also write the figures as JSON here.")
FLAGS = flags.FLAGS


def synthetic_table_path(folder: str) -> str:
  table = synthetic_tag_table(num_tracks=1500, clips_per_track=4, users_per_clip=1,
                              num_users=1500, num_tags=50, seed=0)
  table = dataclasses.replace(table, user=None)
  path = os.path.join(folder, "synthetic_6000x50.tsv")
  write_tag_table(table, path)
  return path


def exhaustive(tags: str, seed: int, block: int) -> dict:
  """Every grid point, early stopping, no halving; the best by validation, on test."""
  start = time.perf_counter()
  data = fitting.prepare_fit_data(tags, "auto", seed=seed, log=lambda _: None)
  obs, split = data.obs, data.split
  ds = lambda idx: learn.make_dataset(obs.X[idx], obs.aux[idx])
  train, val, test = ds(split.train), ds(split.val), ds(split.test)
  space = search.SearchSpace(**{k: tuple(v) for k, v in fitting.SEARCH_DEFAULTS.items()},
                             batch_size=(100,), momentum=(0.5,))
  configs = search.sample_points(space, None, seed)
  rows = []
  for b in range(0, len(configs), block):
    part = configs[b: b + block]
    sel = search.select_model(jax.random.fold_in(jax.random.key(seed), b), train, val,
                              obs.num_aux, space, configs=part, halving=None)
    rows.append((sel.val_pl, sel))
    print(f"  exhaustive: {b + len(part)}/{len(configs)} configurations, "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
  val_pl, best = max(rows, key=lambda r: r[0])
  test_pl = float(select.contributions(select.model_per_bit(best.params, test),
                                       np.asarray(test.v)).sum())
  return {"test_pl": test_pl, "val_pl": val_pl, "config": best.config,
          "seconds": time.perf_counter() - start, "configs": len(configs)}


def main(argv):
  del argv
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    paths = {"majorminer": str(importlib.resources.files("crbm_jax.data") / "embedded" /
                               majorminer.EMBEDDED_TAGS)}
    if "synthetic" in FLAGS.datasets:
      paths["synthetic"] = synthetic_table_path(tmp)
    for name in FLAGS.datasets:
      tags = paths[name]
      start = time.perf_counter()
      metrics = fitting.fit_tag_table(tags, os.path.join(tmp, name), seed=FLAGS.seed,
                            show_progress=False, log=lambda _: None)
      default = {"test_pl": metrics["test_balanced_pl"],
                 "val_pl": metrics["val_balanced_pl"], "config": metrics["selected"],
                 "seconds": time.perf_counter() - start,
                 "epochs": metrics["epochs_trained"], "stopped": metrics["stopped"],
                 "configs": metrics["configurations_tried"],
                 "unconditional_test_pl": metrics["unconditional_test_balanced_pl"],
                 "baseline_test_pl": metrics["baseline_test_balanced_pl"]}
      print(f"{name}: {metrics['num_observations']} observations x "
            f"{metrics['num_visible']} tags")
      print(f"  default crbm-fit: test PL {default['test_pl']:.4f} (val "
            f"{default['val_pl']:.4f}) in {default['seconds']:.1f} s; "
            f"{default['configs']} configurations; selected {default['config']}; "
            f"stopped ({default['stopped']}) after {default['epochs']} epochs; "
            f"unconditional {default['unconditional_test_pl']:.4f}, baseline "
            f"{default['baseline_test_pl']:.4f}")
      results[name] = {"default": default}
      if FLAGS.exhaustive:
        ex = exhaustive(tags, FLAGS.seed, FLAGS.block)
        results[name]["exhaustive"] = ex
        print(f"  exhaustive {ex['configs']}-point search: test PL {ex['test_pl']:.4f} "
              f"(val {ex['val_pl']:.4f}) in {ex['seconds']:.1f} s; selected {ex['config']}")
        print(f"  default - exhaustive test PL: {default['test_pl'] - ex['test_pl']:+.4f} "
              f"(target > -0.01); time ratio exhaustive / default: "
              f"{ex['seconds'] / default['seconds']:.1f}x")
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
  app.run(main)
