"""Simulated Mechanical Turk study vs the paper's published data statistics.

Prints, for each statistic the paper publishes about its data (Table 1's six means
and Section 2's counts), the published value, the simulated mean +- sd over seeds
(default 0-4) of the default SimulationConfig, the relative error and whether it
lies within its tolerance. Only these statistics are targets: never Table 2 or 3
(those are what the simulation is for).

Calibration procedure (--search): a coordinate search over the calibrated fields
of SimulationConfig (CALIBRATED below), each over a few multiplicative steps
around the current value, repeated for --rounds rounds, minimising

    objective = sum over targets s of ((sim_s - published_s) / (tol_s * published_s))^2

with sim_s the mean over --search_seeds (default seeds 0 and 1). A target within its
tolerance contributes at most 1. The search starts from the defaults and prints the
best config; the defaults in crbm_jax/data/simulate.py were then set to it by hand
(rounded) and checked over seeds 0-4 with the plain command.

Usage:
  python tools/calibrate_simulation.py [--seeds 0,1,2,3,4]
  python tools/calibrate_simulation.py --search [--rounds 2] [--search_seeds 0,1]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from crbm_jax.data import filters, mturk
from crbm_jax.data.simulate import SimulationConfig, simulate_study
from crbm_jax.paper import cooccurrence as co
from crbm_jax.paper.published import TABLE1

# name -> (published value, relative tolerance, where the paper gives it)
TARGETS = {
    "table1 +++ tags per HIT": (TABLE1[(1, 1, 1)][0], 0.15, "Table 1"),
    "table1 ++- same user, same track": (TABLE1[(1, 1, 0)][0], 0.15, "Table 1"),
    "table1 +-- same user": (TABLE1[(1, 0, 0)][0], 0.15, "Table 1"),
    "table1 -++ same clip": (TABLE1[(0, 1, 1)][0], 0.15, "Table 1"),
    "table1 -+- same track": (TABLE1[(0, 1, 0)][0], 0.15, "Table 1"),
    "table1 --- nothing shared": (TABLE1[(0, 0, 0)][0], 0.15, "Table 1"),
    "HITs posted": (2775, 0.0, "Sec. 2"),
    "HITs accepted": (2566, 0.02, "Sec. 2"),
    "(user, tag, clip) triples": (15500, 0.10, "Sec. 2 ('15,500')"),
    "workers (accepted HITs)": (209, 0.05, "Sec. 2"),
    "unique tags": (2100, 0.15, "Sec. 2 ('2100')"),
    "tags used by >= 10 workers": (113, 0.15, "Sec. 2"),
    "triples of those tags": (13000, 0.10, "Sec. 2 ('13,000')"),
    # The paper's pair counts mix ordered and unordered pairs (docs/deviations.md);
    # we count unordered pairs, so the tolerance spans both readings (113,503-227,006).
    "table1 +-- pairs": (TABLE1[(1, 0, 0)][2], 0.5, "Table 1 pair count"),
}
# Reported beside the targets, not fitted (see docs/deviations.md: the paper's pair counts
# mix ordered and unordered pairs).
INFO = {
    "table1 ++- pairs": (TABLE1[(1, 1, 0)][2], "Table 1 (pair count)"),
    "min tags per accepted HIT": (5, "Sec. 2 (asked 5-15)"),
    "max tags per accepted HIT": (15, "Sec. 2 (asked 5-15)"),
}
# Fields fitted by --search: name -> multiplicative steps tried around the value.
CALIBRATED = {
    "track_tags": (0.7, 0.85, 1.2, 1.4),
    "track_spread": (0.5, 0.75, 1.5, 2.0),
    "association": (0.5, 0.75, 1.25, 1.5),
    "drift_scale": (0.5, 0.75, 1.25, 1.5),
    "worker_bias_scale": (0.6, 0.8, 1.25, 1.5),
    "kind_bias_scale": (0.5, 0.75, 1.5, 2.0),
    "pet_bias": (0.6, 0.8, 1.25, 1.5),
    "false_positive_weight": (0.5, 0.75, 1.5, 2.0),
    "extra_tags": (0.7, 0.85, 1.2, 1.4),
    "tail_rate": (0.7, 0.85, 1.2, 1.4),
    "short_hit_rate": (0.5, 0.75, 1.5, 2.0),
}
_KEYS = {(1, 1, 1): "+++ tags per HIT", (1, 1, 0): "++- same user, same track",
         (1, 0, 0): "+-- same user", (0, 1, 1): "-++ same clip",
         (0, 1, 0): "-+- same track", (0, 0, 0): "--- nothing shared"}


def statistics(config: SimulationConfig) -> dict:
  """Every target and info statistic of one simulated study (after the spam filters)."""
  study = simulate_study(config)
  hits = study.to_hits()
  result = filters.filter_hits(hits, filters.load_dictionary())
  clips = {c: mturk.ClipInfo(t, s, d, td) for c, t, s, d, td in zip(
      study.clip.tolist(), study.track.tolist(), study.start.tolist(),
      study.duration.tolist(), study.track_duration.tolist())}
  table, _ = mturk.hits_to_tag_table(hits, result.accepted, clips=clips)
  rows = co.table1(co.build_tasks(table))
  out = {}
  for r in rows:
    key = (int(r.same_user), int(r.same_track), int(r.same_clip))
    out["table1 " + _KEYS[key]] = r.mean
    if key in ((1, 0, 0), (1, 1, 0)):
      out[f"table1 {_KEYS[key][:3]} pairs"] = r.pairs
  s = result.summary(min_workers=10)
  out["HITs posted"] = s["hits_total"]
  out["HITs accepted"] = s["hits_accepted"]
  out["(user, tag, clip) triples"] = s["triples"]
  out["workers (accepted HITs)"] = s["workers_accepted"]
  out["unique tags"] = s["unique_tags"]
  out["tags used by >= 10 workers"] = s["tags_used_by_10_workers"]
  out["triples of those tags"] = s["triples_with_tags_used_by_10_workers"]
  n = [len(set(result.canonical_tags[h])) for h in np.flatnonzero(result.accepted)]
  out["min tags per accepted HIT"] = min(n)
  out["max tags per accepted HIT"] = max(n)
  return out


def over_seeds(config: SimulationConfig, seeds) -> dict:
  """{statistic: [value per seed]}."""
  runs = [statistics(dataclasses.replace(config, seed=s)) for s in seeds]
  return {k: np.array([r[k] for r in runs], float) for k in runs[0]}


def objective(means: dict) -> float:
  total = 0.0
  for name, (pub, tol, _) in TARGETS.items():
    scale = max(tol, 0.005) * pub
    total += ((means[name] - pub) / scale) ** 2
  return float(total)


def within(name: str, value: float) -> bool:
  pub, tol, _ = TARGETS[name]
  return abs(value - pub) <= tol * pub + 1e-9


def report(values: dict, out=sys.stdout) -> list:
  """Prints the markdown table; returns the names of targets outside tolerance."""
  bad = []
  print("| statistic | published | simulated (mean ± sd) | rel. error | tolerance | ok |",
        file=out)
  print("| --- | --- | --- | --- | --- | --- |", file=out)
  for name, (pub, tol, where) in TARGETS.items():
    v = values[name]
    ok = within(name, v.mean())
    bad += [] if ok else [name]
    print(f"| {name} ({where}) | {pub:g} | {v.mean():.4g} ± {v.std(ddof=1) if len(v) > 1 else 0:.3g}"
          f" | {(v.mean() - pub) / pub:+.1%} | ±{tol:.0%} | {'yes' if ok else 'NO'} |",
          file=out)
  for name, (pub, where) in INFO.items():
    v = values[name]
    print(f"| {name} ({where}; not fitted) | {pub:g} | {v.mean():.4g} ± "
          f"{v.std(ddof=1) if len(v) > 1 else 0:.3g} | {(v.mean() - pub) / pub:+.1%} | - | - |",
          file=out)
  return bad


def search(config: SimulationConfig, seeds, rounds: int) -> SimulationConfig:
  """Coordinate search on the objective (see the module docstring)."""
  def score(cfg):
    vals = over_seeds(cfg, seeds)
    return objective({k: v.mean() for k, v in vals.items()})
  best, best_score = config, score(config)
  print(f"start: objective {best_score:.2f}", flush=True)
  for r in range(rounds):
    for field, steps in CALIBRATED.items():
      base = getattr(best, field)
      for m in steps:
        value = round(base * m, 4)
        cand = dataclasses.replace(best, **{field: value})
        sc = score(cand)
        if sc < best_score:
          best, best_score = cand, sc
      print(f"round {r + 1} {field} = {getattr(best, field):g}: objective "
            f"{best_score:.2f}", flush=True)
  return best


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds to report over")
  parser.add_argument("--search", action="store_true", help="run the coordinate search")
  parser.add_argument("--search_seeds", default="0,1")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--set", default="{}",
                      help="JSON of SimulationConfig overrides to start from / report")
  args = parser.parse_args(argv)
  config = dataclasses.replace(SimulationConfig(), **json.loads(args.set))
  if args.search:
    config = search(config, [int(s) for s in args.search_seeds.split(",")], args.rounds)
    print("best:", json.dumps({f: getattr(config, f) for f in CALIBRATED}))
  seeds = [int(s) for s in args.seeds.split(",")]
  t = time.time()
  values = over_seeds(config, seeds)
  print(f"\nseeds {seeds} ({(time.time() - t) / len(seeds):.1f} s per study); "
        f"objective of the means {objective({k: v.mean() for k, v in values.items()}):.2f}\n")
  bad = report(values)
  print(f"\n{len(TARGETS) - len(bad)}/{len(TARGETS)} targets within tolerance"
        + (f"; outside: {', '.join(bad)}" if bad else ""))
  return 0


if __name__ == "__main__":
  sys.exit(main())
