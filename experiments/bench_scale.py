"""Benchmark: time and peak memory of crbm-fit's stages on generated tag tables of 10k to
1M (10M optional) rows, with log-log slopes.

  python experiments/bench_scale.py [--sizes 10000,100000,1000000] [--kinds items,users]
      [--search_seconds 120] [--memory_gb 0] [--out /tmp/bench_scale.json]

Tables (``generate_table``): clips of tracks of artists (4 clips a track, 10 tracks an
artist), Zipf-distributed tags (2,000 names) mixed with an artist-specific topic, about
5 tags a clip. Kind 'items': one tagging per clip (the probe's 1M-row table without
users: 200,000 observations); kind 'users': Zipf-distributed users, about 1.25 tags per
(user, clip) (the probe's 1M-row table with users: ~800,000 observations).

Each stage runs in its own child process, which reports its wall time and its peak RSS
(VmHWM):

* prep: reading the table, canonicalising, the vocabulary (--min_users 2), the
  observations and the 60/20/20 split (each timed; peak after each); observations past
  int32 indexing (observations x tags) are refused before they are built, as crbm-fit
  refuses them;
* fit: ``fitting.fit_tag_table`` with the default search and ``--search_seconds``
  (the memory plan's estimate is printed beside the measured peak), or its one-line
  refusal;
* smooth: ``fitting.smooth_tag_table`` of every clip with the fitted model (1 sample, to
  measure the scaling of the pass, not of the sampling).

Then the log-log slope of each figure against rows (least squares over the sizes run),
and a plot (``--out`` with ``.png``: time and peak memory of each stage against rows,
log-log). ``--from_json a.json,b.json`` prints the tables and draws the plot of earlier
runs (one row per kind and size, the later file winning) without running anything.

A child whose resident memory passes ``--max_rss_gb`` (polled every 0.5 s) is killed and
reported as "over N GB", so a size too large for the machine ends in one line, not an
out-of-memory kill of other work.
"""
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

flags.DEFINE_list("sizes", ["10000", "100000", "1000000"], "Table sizes (rows).")
flags.DEFINE_list("kinds", ["items", "users"], "Table kinds: items (one tagging per "
                  "clip) and/or users (user x clip x tag rows).")
flags.DEFINE_float("search_seconds", 120.0, "crbm-fit's --search_seconds.")
flags.DEFINE_float("memory_gb", 0.0, "crbm-fit's --memory_gb (0 = its default).")
flags.DEFINE_list("stages", ["prep", "fit", "smooth"], "Stages to run.")
flags.DEFINE_enum("sparse", "auto", ["auto", "always", "never"], "Observations: crbm-fit's "
                  "choice (auto: sparse past fit.SPARSE_BYTES of dense float32), always "
                  "sparse or always dense (the prep stage follows it too).")
flags.DEFINE_integer("top_tags", 0, "crbm-fit's --top_tags (0 = every tag).")
flags.DEFINE_string("aux", "auto", "crbm-fit's --aux.")
flags.DEFINE_integer("smooth_max_rows", 200_000, "Skip smoothing above this many rows: "
                     "crbm-smooth writes every clip x tag (at 1M rows 333M lines).")
flags.DEFINE_string("out", "", "Write the results as JSON here as well.")
flags.DEFINE_float("max_rss_gb", 12.0, "Kill a stage's child process above this resident "
                   "memory (GB) and report it as 'over N GB'.")
flags.DEFINE_list("from_json", [], "Print and plot these earlier --out files instead of "
                  "running (later files replace a kind and size of earlier ones).")
flags.DEFINE_string("workdir", "", "Scratch folder (default: a temporary one).")
flags.DEFINE_string("child", "", "Internal: run one stage in this process.")
flags.DEFINE_string("tags", "", "Internal: the table of a child stage.")
flags.DEFINE_string("fitdir", "", "Internal: the workdir of a child's fit.")

FLAGS = flags.FLAGS
NUM_TAGS = 2000
INT32_MAX = 2 ** 31 - 1  # learn.plan.INT32_MAX, without importing JAX


def generate_table(rows: int, seed: int = 0, users: bool = False):
  """A TagTable of ``rows`` rows (module docstring)."""
  from crbm_jax.data.tagtable import TagTable  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  per_obs = 1.25 if users else 5.0
  n_obs = max(int(rows / per_obs), 1)
  n_clips = max(n_obs // 4, 1) if users else n_obs
  clip = (rng.permutation(n_obs) % n_clips) if not users else rng.integers(0, n_clips, n_obs)
  obs_of_row = np.sort(rng.integers(0, n_obs, rows))
  obs_of_row[:n_obs] = np.arange(n_obs)  # every observation has a row
  row_clip = clip[obs_of_row]
  zipf = np.minimum(rng.zipf(1.3, rows), NUM_TAGS) - 1
  topic = ((row_clip // 40) * 37 + rng.zipf(1.6, rows)) % NUM_TAGS  # the artist's
  tag = np.where(rng.random(rows) < 0.5, zipf, topic)
  names = lambda prefix, x: np.char.add(prefix, x.astype(str))
  row_user = np.zeros(rows, np.int64)
  if users:
    n_users = max(n_obs // 3, 1)
    user_of_obs = np.minimum(rng.zipf(1.2, n_obs), n_users) - 1
    user_of_obs = (user_of_obs + rng.integers(0, n_users, n_obs) * (rng.random(n_obs) < 0.7)
                   ) % n_users
    row_user = user_of_obs[obs_of_row]
  # repeated (clip, user, tag) rows become counts
  keys, count = np.unique(np.stack([row_clip, row_user, tag], 1), axis=0, return_counts=True)
  row_clip, row_user, tag = keys.T
  kw = {"user": names("u", row_user)} if users else {}
  return TagTable(clip=names("c", row_clip), tag=names("tag", tag),
                  count=count.astype(np.int64), track=names("t", row_clip // 4),
                  artist=names("a", row_clip // 40), source="generated", **kw)


def _peak_gb() -> float:
  """This process's peak RSS: VmHWM (ru_maxrss would carry the parent's peak across
  exec on Linux)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 2 ** 20  # kB -> GB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _sparse_above():
  """Elements past which the observations are kept sparse (``--sparse``)."""
  from crbm_jax.fitting import fit  # pylint: disable=import-outside-toplevel
  if FLAGS.sparse == "always":
    fit.SPARSE_BYTES = 0
  elif FLAGS.sparse == "never":
    fit.SPARSE_BYTES = 2 ** 62
  return fit.SPARSE_BYTES // 4


def child_prep(tags: str) -> dict:
  from crbm_jax.data import observations as obs_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.splits import random_split  # pylint: disable=import-outside-toplevel
  from crbm_jax.fitting.inputs import canonical_table, load_tags  # pylint: disable=import-outside-toplevel
  out = {}
  t = time.perf_counter()
  table = load_tags(tags, log=lambda _: None)
  out["load"] = (time.perf_counter() - t, _peak_gb())
  t = time.perf_counter()
  table, surface = canonical_table(table, True)
  out["canonical"] = (time.perf_counter() - t, _peak_gb())
  t = time.perf_counter()
  vocab = obs_lib.select_vocabulary(table, min_users=2, top_n=FLAGS.top_tags or None)
  groups = ("user", "track", "clip") if table.has("user") else ("track",)
  try:  # crbm-fit's limits: dense observations past int32 indexing are refused before
    # they are built; past fit.SPARSE_BYTES of float32 they are kept sparse (CSR)
    obs = obs_lib.build_observations(table, aux_groups=groups, vocab=vocab,
                                     display=surface, max_elements=INT32_MAX,
                                     sparse_above=_sparse_above())
  except obs_lib.ObservationError as e:
    out["observations"] = (time.perf_counter() - t, _peak_gb())
    out["prep_outcome"] = f"refused: {e}"
    return out
  out["observations"] = (time.perf_counter() - t, _peak_gb())
  t = time.perf_counter()
  random_split(obs.aux, 0)
  out["split"] = (time.perf_counter() - t, _peak_gb())
  out["shape"] = [obs.num_observations, obs.num_visible, obs.num_aux]
  out["sparse"] = bool(obs.sparse)
  return out


def child_fit(tags: str, fitdir: str) -> dict:
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  from crbm_jax.fitting.inputs import InputError  # pylint: disable=import-outside-toplevel
  lines = []
  def log(line):
    lines.append(line)
    print(line, file=sys.stderr, flush=True)
  _sparse_above()
  t = time.perf_counter()
  try:
    fitting.fit_tag_table(tags, fitdir, search_seconds=FLAGS.search_seconds,
                          memory_gb=FLAGS.memory_gb, show_progress=False, log=log,
                          top_tags=FLAGS.top_tags, aux=FLAGS.aux)
    outcome = "ok"
  except InputError as e:
    outcome = f"refused: {e}"
  plan = next((l for l in lines if "memory plan" in l), "")
  budget = " ".join(l for l in lines if "budget ran out" in l or "never trained" in l)
  return {"fit": (time.perf_counter() - t, _peak_gb()), "outcome": outcome, "plan": plan,
          "budget": budget, "fit_sparse": any("kept sparse" in l for l in lines)}


def child_smooth(tags: str, fitdir: str) -> dict:
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  t = time.perf_counter()
  out = os.path.join(fitdir, "smoothed.tsv")
  fitting.smooth_tag_table(fitdir, tags, out, num_samples=1, burn_in=1,
                           factor_out=("user",), log=lambda _: None, aux_effect=False)
  return {"smooth": (time.perf_counter() - t, _peak_gb())}


def run_child(stage: str, tags: str, fitdir: str) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), f"--child={stage}", f"--tags={tags}",
         f"--fitdir={fitdir}", f"--search_seconds={FLAGS.search_seconds}",
         f"--memory_gb={FLAGS.memory_gb}", f"--sparse={FLAGS.sparse}",
         f"--top_tags={FLAGS.top_tags}", f"--aux={FLAGS.aux}"]
  t = time.perf_counter()
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
    over = _watch(proc, FLAGS.max_rss_gb)
    wall = time.perf_counter() - t
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  if over:
    return {"error": f"over {FLAGS.max_rss_gb:g} GB (killed at {over:.2f} GB after "
                     f"{wall:.0f} s)", "wall": wall}
  last = [l for l in stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not last:
    tail = (stderr or stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: {' | '.join(tail)}", "wall": wall}
  result = json.loads(last[-1])
  result["wall"] = wall
  return result


def _rss_gb(pid: int) -> float:
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 2 ** 20
  except OSError:
    pass
  return 0.0


def _watch(proc: subprocess.Popen, limit_gb: float) -> float:
  """Waits for ``proc``, polling its resident memory every 0.5 s; kills it above
  ``limit_gb`` and returns the figure it was killed at (0.0 when it finished)."""
  while proc.poll() is None:
    rss = _rss_gb(proc.pid)
    if limit_gb > 0 and rss > limit_gb:
      proc.kill()
      proc.wait()
      return rss
    time.sleep(0.5)
  return 0.0


STAGES = ("load", "canonical", "observations", "split", "fit", "smooth")


def plot(results: list, path: str) -> None:
  """Time and peak memory of each stage against rows, log-log, one line per kind and
  stage, written to ``path`` (PNG)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
  styles = {"items": "-", "users": "--"}
  for kind in sorted({r["kind"] for r in results}):
    rows = sorted((r for r in results if r["kind"] == kind), key=lambda r: r["rows"])
    for k, stage in enumerate(STAGES):
      have = [r for r in rows if stage in r]
      if not have:
        continue
      x = [r["rows"] for r in have]
      for ax, j in zip(axes, (0, 1)):
        ax.plot(x, [max(r[stage][j], 1e-3) for r in have], styles.get(kind, ":"),
                marker="o", markersize=3, color=f"C{k}", label=f"{kind} {stage}")
  for ax, label in zip(axes, ("seconds", "peak RSS (GB)")):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows of the tag table")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
  axes[1].legend(fontsize=6, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def merge_json(paths) -> list:
  """Rows of earlier --out files; a later file's row replaces one of the same kind and
  size."""
  merged = {}
  for path in paths:
    with open(path) as f:
      for row in json.load(f):
        key = (row["kind"], row["rows"])
        merged[key] = {**merged.get(key, {}), **row}
  return [merged[k] for k in sorted(merged)]


def slope(xs, ys) -> float:
  xs, ys = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
  if len(xs) < 2:
    return float("nan")
  return float(np.polyfit(xs, ys, 1)[0])


def main(argv):
  del argv
  if FLAGS.child:
    fn = {"prep": lambda: child_prep(FLAGS.tags),
          "fit": lambda: child_fit(FLAGS.tags, FLAGS.fitdir),
          "smooth": lambda: child_smooth(FLAGS.tags, FLAGS.fitdir)}[FLAGS.child]
    print(json.dumps(fn()), flush=True)
    return
  if FLAGS.from_json:
    report(merge_json(FLAGS.from_json))
    return
  from crbm_jax.data.tagtable import write_table_chunks  # pylint: disable=import-outside-toplevel
  root = FLAGS.workdir or tempfile.mkdtemp(prefix="bench_scale_")
  os.makedirs(root, exist_ok=True)
  results = []
  for kind in FLAGS.kinds:
    for size in [int(s) for s in FLAGS.sizes]:
      tags = os.path.join(root, f"{kind}_{size}.tsv")
      t = time.perf_counter()
      table = generate_table(size, users=(kind == "users"))
      columns = table.columns()  # written 1M rows at a time (write_tag_table's bytes)
      write_table_chunks(tags, columns, (
          list(zip(*[getattr(table, c)[i:i + 1_000_000].tolist() for c in columns]))
          for i in range(0, table.num_rows, 1_000_000)))
      row = {"kind": kind, "rows": table.num_rows, "generate_s": time.perf_counter() - t}
      del table
      fitdir = os.path.join(root, f"fit_{kind}_{size}")
      for stage in FLAGS.stages:
        if stage == "smooth" and (row.get("outcome") != "ok"
                                  or row["rows"] > FLAGS.smooth_max_rows):
          continue
        res = run_child(stage, tags, fitdir)
        row.update({f"{stage}_{k}" if k in ("wall", "error") else k: v
                    for k, v in res.items()})
        print(f"{kind} {size}: {stage} {json.dumps(res)}", flush=True)
      results.append(row)
  report(results)


def report(results: list) -> None:
  """The table, the slopes; the JSON and the plot when --out is given."""
  print("\nkind   rows       stage         seconds   peak GB")
  for row in results:
    for stage in STAGES:
      if stage in row:
        s, gb = row[stage]
        print(f"{row['kind']:6} {row['rows']:>9,}  {stage:12} {s:9.2f} {gb:9.2f}")
    if "prep_outcome" in row:
      print(f"{'':17} prep: {row['prep_outcome'][:200]}")
    if "outcome" in row:
      path = " (sparse observations)" if row.get("fit_sparse") else ""
      print(f"{'':17} fit{path}: {row['outcome'][:150]}")
      print(f"{'':17} {row['plan'][10:200]}")
      if row.get("budget"):
        print(f"{'':17} {row['budget'][10:300]}")
    for key in [k for k in row if k.endswith("_error")]:
      print(f"{row['kind']:6} {row['rows']:>9,}  {key[:-6]:12} {row[key][:200]}")
  print("\nlog-log slope against rows (time, peak memory):")
  for kind in sorted({r["kind"] for r in results}):
    rows = [r for r in results if r["kind"] == kind]
    for stage in STAGES:
      have = [r for r in rows if stage in r]
      if len(have) >= 2:
        print(f"  {kind:6} {stage:12} time {slope([r['rows'] for r in have], [max(r[stage][0], 1e-3) for r in have]):5.2f}"
              f"  memory {slope([r['rows'] for r in have], [r[stage][1] for r in have]):5.2f}")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(results, f, indent=1)
    png = os.path.splitext(FLAGS.out)[0] + ".png"
    plot(results, png)
    print(f"wrote {FLAGS.out} and {png}")


if __name__ == "__main__":
  app.run(main)
