"""The default reproduction's Table 3 stage (with the sparsity experiment), timed, with its
XLA compilations counted and named.

    PYTHONPATH=$PWD python experiments/bench_reproduce_table3.py --workdir /tmp/t3 \
        [--cache /tmp/t3cache] [--part all|datasets|sparsity] [--json out.json]

Runs ``crbm_jax.paper.table3.run_autotagging`` on ``configs/reproduce.py``'s default
Table 3 config, exactly as ``crbm-reproduce --stages table3`` does, with JAX's persistent
compilation cache in ``--cache`` (default: a fresh temporary folder, i.e. a cold cache).
Prints the stage's seconds, its compile seconds (``util.compile_cache.CompileClock``:
tracing, lowering and XLA compilation), the number of XLA compilations, and the
compiled functions by count and seconds (from JAX's compile log). ``--part datasets``
turns the sparsity experiment off; ``--part sparsity`` runs it alone (p = 1 computed
there, not taken from Table 3).
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import sys
import tempfile
import time


class _CompileLog(logging.Handler):
  """Collects 'Finished XLA compilation of NAME in T sec' from JAX's log."""

  pattern = re.compile(r"Finished XLA compilation of (.+?) in ([0-9.eE+-]+) sec")

  def __init__(self):
    super().__init__(logging.DEBUG)
    self.events = []

  def emit(self, record):
    m = self.pattern.search(record.getMessage())
    if m:
      self.events.append((m.group(1), float(m.group(2)), time.perf_counter()))


def _draws(config, keeps, num_draws) -> list:
  """``sparsity.smoothed_labels`` of draws 0..num_draws-1 at each p, with the keys, seeds
  and settings reuse of ``run_sparsity``: seconds, the chosen model and a digest of the
  affinities (equal digests: the same numbers)."""
  import hashlib  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import sparsity  # pylint: disable=import-outside-toplevel
  inputs = sparsity.load_inputs(config)
  root = jax.random.fold_in(jax.random.key(int(config.seed)), 1000)
  all_keep = [float(p) for p in config.sparsity.keep]
  out = []
  for p in keeps:
    i = all_keep.index(p)
    selected = None
    for d in range(num_draws):
      start = time.perf_counter()
      rng = np.random.default_rng([int(config.seed), d, int(round(p * 1000))])
      thinned = sparsity.thin_table(inputs.table, p, rng)
      key = jax.random.fold_in(jax.random.fold_in(root, i), d)
      aff, info = sparsity.smoothed_labels(key, inputs, thinned, config, f"p={p:g} d{d}",
                                           None if d == 0 else selected, progress=False)
      if d == 0:
        selected = dict(info["selected"], best_epoch=info.get("best_epoch", 0))
      out.append(dict(p=p, draw=d, seconds=round(time.perf_counter() - start, 1),
                      selected=info["selected"], mean=float(np.mean(aff)),
                      digest=hashlib.sha256(np.ascontiguousarray(aff).tobytes()).hexdigest()[:16]))
      print(json.dumps(out[-1]), flush=True)
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--cache", default=None, help="compile cache folder (default: fresh)")
  ap.add_argument("--part", default="all", choices=("all", "datasets", "sparsity", "draws"))
  ap.add_argument("--keep", default="0.5,0.75", help="--part draws: the keep probabilities")
  ap.add_argument("--draws", type=int, default=2, help="--part draws: draws per p")
  ap.add_argument("--json", default=None)
  args = ap.parse_args(argv)
  cache = args.cache or tempfile.mkdtemp(prefix="crbm_cc_")
  from crbm_jax.util import compile_cache  # pylint: disable=import-outside-toplevel
  compile_cache.enable(cache)
  import jax  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_log_compiles", True)
  handler = _CompileLog()
  for name in ("jax._src.interpreters.pxla", "jax._src.dispatch", "jax._src.pjit"):
    lg = logging.getLogger(name)
    lg.addHandler(handler)
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
  from crbm_jax.configs import reproduce as reproduce_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import sparsity, table3  # pylint: disable=import-outside-toplevel
  config = reproduce_config.get_config("default").table3
  clock = compile_cache.CompileClock()
  start = time.perf_counter()
  if args.part == "draws":  # the sparsity experiment's model + smoothing of a few draws
    extra = {"draws": _draws(config, [float(p) for p in args.keep.split(",")], args.draws)}
  elif args.part == "sparsity":
    res = sparsity.run_sparsity(config, os.path.join(args.workdir, "sparsity"),
                                jax.random.fold_in(jax.random.key(int(config.seed)), 1000))
    extra = {"sparsity_seconds": res["seconds"]}
  else:
    if args.part == "datasets":
      config.sparsity.enabled = False
    res = table3.run_autotagging(config, args.workdir)
    extra = {"sparsity_seconds": (res.get("sparsity") or {}).get("seconds"),
             "datasets": {k: v.get("timings_s") for k, v in res["datasets"].items()}}
  split = clock.split()
  by_name = collections.defaultdict(lambda: [0, 0.0])
  for name, sec, _ in handler.events:
    by_name[name][0] += 1
    by_name[name][1] += sec
  out = dict(part=args.part, cache=cache, seconds=round(time.perf_counter() - start, 1),
             compile_seconds=round(split["compile_seconds"], 1),
             compiles=split["compiles"], cache_hits=split["cache_hits"],
             # the sparsity label workers' compilations (spawned processes: JAX's log
             # below does not see them; ``by_name`` is this process's only)
             **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in split.items()
                if k.startswith("worker_")},
             xla_compiles_logged=len(handler.events),
             xla_seconds_logged=round(sum(e[1] for e in handler.events), 1),
             by_name={k: [v[0], round(v[1], 2)] for k, v in
                      sorted(by_name.items(), key=lambda kv: -kv[1][1])}, **extra)
  print(json.dumps({k: v for k, v in out.items() if k != "by_name"}, indent=1))
  print("compiled functions in this process (count, XLA seconds), most expensive first"
        + (" (the label workers' are counted only in worker_*)" if "worker_compiles" in out
           else "") + ":")
  for k, (n, s) in list(out["by_name"].items())[:40]:
    print(f"  {n:4d} {s:8.2f}  {k}")
  if args.json:
    with open(args.json, "w") as fh:
      json.dump(out, fh, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
