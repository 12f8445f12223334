r"""Benchmark of the public-format loaders at MagnaTagATune's size (issue 17).

  python experiments/bench_formats.py [--repeats=5] [--clips=25863] [--tags=188]

Writes a synthetic MagnaTagATune pair (tools/make_mtat_synthetic.py: 25,863 clips x 188
tags, every field quoted) to a temporary folder, then times (median of --repeats runs):

1. loading it: ``formats.read_any(folder)`` (detection, both files, the join) — target
   <= 2 s; beside it, in the same run, ``load_tag_table`` of the same rows written as our
   TSV (the baseline every tool already pays) and the plain ``csv.reader`` pass over the
   two files alone (the floor of any csv-module loader);
2. Table 1 on it: canonical tags, ``build_tasks`` and ``table1`` — target <= 5 s; and
   the whole ``run_table1`` (Table 1, Figure 1, the files) for reference.
"""
import csv
import importlib.util
import os
import tempfile

from absl import app
from absl import flags

from benchlib import median_time
from crbm_jax.data import canonical, formats
from crbm_jax.data.tagtable import load_tag_table, write_tag_table
from crbm_jax.paper import cooccurrence as co
from crbm_jax.paper import table1 as table1_lib

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs of each step.")
_CLIPS = flags.DEFINE_integer("clips", 25_863, "Clips of the synthetic file.")
_TAGS = flags.DEFINE_integer("tags", 188, "Tags of the synthetic file.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic file.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
  spec = importlib.util.spec_from_file_location(
      "make_mtat_synthetic", os.path.join(ROOT, "tools", "make_mtat_synthetic.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _csv_pass(paths):
  n = 0
  for path in paths:
    with open(path, newline="", encoding="utf-8") as f:
      for row in csv.reader(f, delimiter="\t"):
        n += len(row)
  return n


def main(argv):
  del argv
  r = _REPEATS.value
  with tempfile.TemporaryDirectory() as folder:
    paths = _tool().write_synthetic_mtat(folder, _CLIPS.value, _TAGS.value, _SEED.value)
    size = sum(os.path.getsize(p) for p in paths) / 1e6
    load_s, (table, info) = median_time(lambda: formats.read_any(folder), r)
    print(f"synthetic MagnaTagATune: {_CLIPS.value:,} clips x {_TAGS.value} tags, "
          f"{size:.1f} MB; {info.summary()}")
    tsv = os.path.join(folder, "mtat.tsv")
    write_tag_table(table, tsv)
    tsv_s, _ = median_time(lambda: load_tag_table(tsv), r)
    csv_s, _ = median_time(lambda: _csv_pass(paths), r)
    print(f"load (median of {r}): read_any {load_s:.3f} s [target <= 2 s]; "
          f"load_tag_table of the same {table.num_rows:,} rows as TSV {tsv_s:.3f} s "
          f"(ratio {load_s / tsv_s:.2f}); csv.reader pass alone {csv_s:.3f} s")

    def table1():
      canon, _ = canonical.canonicalize_table(table)
      tasks = co.build_tasks(canon)
      return tasks, co.table1(tasks)

    t1_s, (tasks, rows) = median_time(table1, r)
    print(f"Table 1 (canonical tags + build_tasks + table1, median of {r}): {t1_s:.3f} s "
          f"[target <= 5 s] on {tasks.num_tasks:,} tasks, "
          f"{sum(x.pairs for x in rows[1:]):,} pairs")
    for x in rows:
      print(f"  track {int(x.same_track)} clip {int(x.same_clip)}: {x.mean:.4f} ± "
            f"{x.stderr:.4f} ({x.pairs:,} pairs)")
    out = os.path.join(folder, "t1")
    full_s, _ = median_time(lambda: table1_lib.run_table1(
        canonical.canonicalize_table(table)[0], out, "synthetic MTAT", paper=False), 1)
    print(f"run_table1 (Table 1 + Figure 1 + files, one run): {full_s:.3f} s")


if __name__ == "__main__":
  app.run(main)
