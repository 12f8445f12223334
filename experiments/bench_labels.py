"""One sparsity keep probability's labels, timed cold, against another commit.

    PYTHONPATH=$PWD python experiments/bench_labels.py [--p 0.5] [--repeats 3] \
        [--against REV]

``paper.sparsity.labels_of_p`` (the default config's Table 3 settings; draws 0 and 1:
draw 0's smoothing search with its criterion, the refit of draw 1, the smoothed
affinities and two baseline smoothers) in a fresh process with a new, empty compilation
cache, so every program compiles: the work one label worker does per keep probability
in ``crbm-reproduce``. With ``--against REV`` each repeat runs it once in this checkout
and once in a temporary ``git worktree`` of REV, in alternating order; prints wall and
CPU seconds, the compile/compute split (``util.compile_cache.CompileClock``), the
programs compiled, the medians and the paired CPU ratios, and whether both checkouts'
labels are equal (a digest of every array they return). ``CRBM_JAX_THREADS=1`` in the
environment gives the children one JAX compute thread each, as crbm-reproduce's workers
have (``util/threads.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in the child, in the checkout on its PYTHONPATH: prints one JSON line.
CHILD = r"""
import hashlib, json, sys, tempfile, time
from crbm_jax.util import threads
threads.apply_requested()   # $CRBM_JAX_THREADS, as crbm-reproduce's workers do
import jax, numpy as np
from crbm_jax.configs import reproduce as rc
from crbm_jax.paper import sparsity
from crbm_jax.util import compile_cache
compile_cache.enable(tempfile.mkdtemp())
config = rc.get_config("default").table3
inputs = sparsity.load_inputs(config)
key = jax.random.fold_in(jax.random.key(0), 1000)
clock = compile_cache.CompileClock()
t, c = time.perf_counter(), time.process_time()
out = sparsity.labels_of_p(config, np.asarray(jax.random.key_data(key)), inputs, 2,
                           float(sys.argv[1]), [0, 1], ("track_pool", "low_rank"),
                           progress=False)
wall, cpu = time.perf_counter() - t, time.process_time() - c
digest = hashlib.sha256()
for row in out:
  for name in ("raw_thin", "smoothed"):
    digest.update(np.ascontiguousarray(np.asarray(row[name])).tobytes())
  for name in sorted(row["base"] or {}):
    digest.update(np.ascontiguousarray(np.asarray(row["base"][name])).tobytes())
split = clock.split()
print(json.dumps(dict(wall=wall, cpu=cpu, compile=split["compile_seconds"],
                      compute=split["compute_seconds"], programs=split["compiles"],
                      digest=digest.hexdigest())))
"""


def run_arm(root: str, p: float) -> dict:
  env = dict(os.environ, PYTHONPATH=root)
  env.pop("CRBM_JAX_COMPILE_CACHE", None)
  done = subprocess.run([sys.executable, "-c", CHILD, str(p)], cwd=root, env=env,
                        capture_output=True, text=True, check=False)
  if done.returncode:
    raise SystemExit(f"bench_labels: the run in {root} failed:\n{done.stderr[-2000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--p", type=float, default=0.5, help="keep probability")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--against", default=None,
                      help="a git revision to compare with (a temporary worktree)")
  args = parser.parse_args(argv)
  arms = {"here": ROOT}
  tmp = None
  if args.against:
    tmp = tempfile.mkdtemp(prefix="bench-labels-")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", tmp,
                    args.against], check=True)
    arms[args.against] = tmp
  try:
    results = {name: [] for name in arms}
    names = list(arms)
    for r in range(args.repeats):
      for name in (names if r % 2 == 0 else names[::-1]):
        res = run_arm(arms[name], args.p)
        results[name].append(res)
        print(f"repeat {r} {name:>10s}: wall {res['wall']:6.1f} s  CPU {res['cpu']:6.1f} s"
              f"  compile {res['compile']:5.1f} s  compute {res['compute']:5.1f} s"
              f"  programs {res['programs']}", flush=True)
    for name, rows in results.items():
      med = lambda k: statistics.median(x[k] for x in rows)
      print(f"{name:>10s} medians: wall {med('wall'):.1f} s, CPU {med('cpu'):.1f} s, "
            f"compile {med('compile'):.1f} s, compute {med('compute'):.1f} s")
    if args.against:
      ratios = [h["cpu"] / a["cpu"] for h, a in zip(results["here"],
                                                    results[args.against])]
      digests = {x["digest"] for rows in results.values() for x in rows}
      print(f"paired CPU ratios here / {args.against}: "
            + ", ".join(f"{x:.3f}" for x in ratios)
            + f" (median {statistics.median(ratios):.3f})")
      print("labels equal in both checkouts:", len(digests) == 1)
  finally:
    if tmp:
      subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tmp],
                     check=False)


if __name__ == "__main__":
  main()
