"""Beyond the paper (issue 8): AIS log-likelihood, PCD / parallel tempering, distance-aware clips.

``run_beyond(config, workdir)`` (launcher: experiments/beyond_paper.py) writes
<workdir>/beyond.md (a section for the reproduction report) and beyond.json.
Everything runs on the simulated Mechanical Turk study (crbm_jax.data.datasets
'simulated'), whose hidden true tags drift with the distance between clips by
construction; costs are measured in this same run, against CD-1.
"""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax import ais, drift, persistent
from crbm_jax import model as model_lib
from crbm_jax import train as train_lib
from crbm_jax.data import datasets, splits as splits_lib
from crbm_jax.pseudolikelihood import (balanced_pseudo_likelihood, factored_log_likelihood,
                                       fit_factored, pseudo_log_likelihood)

def _hparams(c):
  return train_lib.make_hparams(c.learning_rate, c.momentum, c.weight_decay, c.l1_aux)


def _train_config(c):
  return train_lib.TrainConfig(num_hidden=c.num_hidden, cd_k=1, batch_size=c.batch_size,
                               num_epochs=c.num_epochs)


def _data(obs, idx):
  return train_lib.make_dataset(obs.X[idx], obs.aux[idx])


def _label(groups):
  return "+".join(groups) if groups else "none"


def _evaluate(key, params, test, c):
  """Test pseudo-likelihood (paper's balanced figure and per observation) and AIS LL.

  AIS runs on ``c.ais_max_test`` test observations drawn with a fixed seed (the same
  subset for every model of a split), or on all of them.
  """
  per_bit = pseudo_log_likelihood(params, test.v, test.aux)
  n = test.v.shape[0]
  sub = np.arange(n)
  if c.ais_max_test is not None and c.ais_max_test < n:
    sub = np.sort(np.random.default_rng(c.split_seed).choice(n, c.ais_max_test, replace=False))
  rep = ais.average_log_likelihood(key, params, np.asarray(test.v)[sub],
                                   np.asarray(test.aux)[sub],
                                   num_runs=c.ais_runs, num_betas=c.ais_betas,
                                   row_chunk=c.ais_row_chunk, schedule=c.ais_schedule)
  return {"pl_balanced": float(balanced_pseudo_likelihood(per_bit, test.v)),
          "log_pl_per_obs": float(jnp.mean(jnp.sum(per_bit, -1))),
          "ll_per_obs": rep.mean_ll, "ll_conservative": rep.mean_ll_conservative,
          "ll_ais_stderr": rep.ais_stderr, "ll_data_stderr": rep.data_stderr,
          "ll_per_bit": rep.per_bit, "min_ess": rep.min_ess, "median_ess": rep.median_ess,
          "max_gap": rep.max_gap, "ais_rows": rep.num_rows}


def _factored(train, test):
  per_bit = factored_log_likelihood(fit_factored(train.v), test.v)
  ll = float(jnp.mean(jnp.sum(per_bit, -1)))
  return {"pl_balanced": float(balanced_pseudo_likelihood(per_bit, test.v)),
          "log_pl_per_obs": ll, "ll_per_obs": ll, "ll_conservative": ll, "ll_ais_stderr": 0.0,
          "ll_per_bit": ll / test.v.shape[1]}


def _relayout(aux_all, obs_all, sub):
  """Aux rows in obs_all's layout -> the layout of ``sub = obs_all.select_groups(...)``."""
  out = np.full((aux_all.shape[0], len(sub.groups)), -1, np.int32)
  for j, g in enumerate(sub.groups):
    i = obs_all.groups.index(g)
    col = aux_all[:, i]
    out[:, j] = np.where(col >= 0, col - obs_all.offsets[i] + sub.offsets[j], -1)
  return out


def _truth_setup(bundle, obs_all, split):
  """Clip rows (user factored out), truth [C, V'], seen-in-training [C, V'], tag columns."""
  names, clip_aux = drift.clip_aux_rows(obs_all, factor_out=("user",))
  row_of = {n: i for i, n in enumerate(bundle.feature_clips.tolist())}
  truth_tags = list(bundle.extra["truth_tags"])
  cols = [i for i, t in enumerate(obs_all.vocab.tolist()) if t in truth_tags]
  tcols = [truth_tags.index(obs_all.vocab[i]) for i in cols]
  truth = bundle.truth[np.array([row_of[n] for n in names])][:, tcols]
  ccol = obs_all.groups.index("clip")
  ent = obs_all.aux[split.train, ccol] - obs_all.offsets[ccol]
  seen = np.zeros((len(names), obs_all.num_visible), bool)
  np.logical_or.at(seen, ent, obs_all.X[split.train] > 0)
  train_count = np.bincount(ent, minlength=len(names))
  # Non-model reference: each tag's frequency among the training observations of the track.
  tcol = obs_all.groups.index("track")
  trk = obs_all.aux[split.train, tcol]
  sums = np.zeros((obs_all.num_aux, obs_all.num_visible))
  np.add.at(sums, trk, obs_all.X[split.train])
  freq = sums / np.maximum(np.bincount(trk, minlength=obs_all.num_aux), 1)[:, None]
  return dict(clip_aux=clip_aux, truth=truth, seen=seen[:, cols], cols=cols,
              few=train_count <= 1, track_freq=freq[clip_aux[:, tcol]][:, cols])


def _recovery(affinity, ts):
  out = drift.truth_recovery(affinity, ts["truth"], ts["seen"])
  few = ts["few"]
  out["auc_hidden_few"] = drift.truth_recovery(affinity[few], ts["truth"][few],
                                               ts["seen"][few])["auc_hidden"]
  out["few_clips"] = int(few.sum())
  return out


def time_epochs(fn, state, num):
  """Fastest of ``num`` timed epochs (after one compiling epoch): the least disturbed by
  other processes on a shared machine."""
  state = jax.block_until_ready(fn(jax.random.key(0), state))  # compile + warm up
  times = []
  for i in range(num):
    start = time.perf_counter()
    state = jax.block_until_ready(fn(jax.random.key(i + 1), state))
    times.append(time.perf_counter() - start)
  return min(times)


def _benchmark(c, obs, split, nb, train_obs):
  """Seconds per epoch of CD-1, PCD, PT, drift on the same data; AIS per 1000 betas."""
  config, hp = _train_config(c), _hparams(c)
  data = train_lib.pad_dataset(_data(obs, split.train), c.batch_size)
  params = model_lib.init_params(jax.random.key(0), obs.num_visible, c.num_hidden,
                                 obs.num_aux, visible_mean=np.asarray(data.v).mean(0))
  ts = train_lib.init_state(params, hp)
  out = {"cd1": time_epochs(jax.jit(lambda k, s: train_lib.run_epoch(k, s, data, hp, config)[0]),
                             ts, c.bench_epochs)}
  for name, temps in (("pcd", 1), ("pt", c.pt_temperatures)):
    betas = jnp.asarray(persistent.temperature_ladder(temps, c.pt_min_beta), jnp.float32)
    st = persistent.PersistentState(ts, persistent.init_chains(
        jax.random.key(1), data, temps, 1, c.batch_size))
    fn = jax.jit(lambda k, s, b=betas: persistent.run_epoch_persistent(
        k, s, data, hp, config, b)[0])
    out[name] = time_epochs(fn, st, c.bench_epochs)
  ell = jnp.asarray(0.3)
  out["drift"] = time_epochs(jax.jit(lambda k, s: drift.run_epoch_drift(
      k, s, data, hp, ell, nb, config)[0]), ts, c.bench_epochs)
  rows, _ = ais.distinct_rows(obs.aux[split.test])
  rows = jnp.asarray(rows)
  num_betas = 100
  fwd = jax.jit(lambda k: ais.ais_log_partition(k, params, rows, c.ais_runs, num_betas).log_z)
  jax.block_until_ready(fwd(jax.random.key(0)))
  times = []
  for i in range(2):
    start = time.perf_counter()
    jax.block_until_ready(fwd(jax.random.key(i + 1)))
    times.append(time.perf_counter() - start)
  out["ais_per_1000_betas"] = min(times) * 1000 / num_betas
  out["ais_rows"], out["ais_runs"] = int(rows.shape[0]), c.ais_runs
  out["ratios_vs_cd1"] = {k: out[k] / out["cd1"] for k in ("cd1", "pcd", "pt", "drift",
                                                           "ais_per_1000_betas")}
  out["train_observations"], out["pt_temperatures"] = train_obs, c.pt_temperatures
  return out


def _run_split(s, bundle, obs_all, split, c):
  key = jax.random.fold_in(jax.random.key(c.train_seed), s)
  config, hp = _train_config(c), _hparams(c)
  res = {"table2": {}, "samplers": {}, "drift": {}, "truth": {}}
  fitted = {}
  for groups in c.table2_groups:
    obs = obs_all.select_groups(tuple(groups))
    train, val, test = (_data(obs, i) for i in split)
    fit_fn = jax.jit(train_lib.make_fit(config, obs.num_aux))
    r = fit_fn(key, hp, train_lib.pad_dataset(train, c.batch_size), val)
    fitted[tuple(groups)] = (obs, r.params)
    res["table2"][_label(groups)] = _evaluate(jax.random.fold_in(key, 1), r.params, test, c)
  res["table2"]["factored baseline"] = _factored(*(_data(obs_all, i) for i in (split.train,
                                                                               split.test)))
  obs = obs_all.select_groups(tuple(c.sampler_groups))
  train, val, test = (_data(obs, i) for i in split)
  fits = {"CD-1": train_lib.make_fit(config, obs.num_aux),
          "PCD": persistent.make_fit_persistent(config, obs.num_aux, "pcd",
                                                chain_mode=c.pcd_chain_mode),
          f"PT ({c.pt_temperatures} temperatures)": persistent.make_fit_persistent(
              config, obs.num_aux, "pt", num_temperatures=c.pt_temperatures,
              min_beta=c.pt_min_beta)}
  for name, fit_fn in fits.items():
    r = jax.jit(fit_fn)(key, hp, train_lib.pad_dataset(train, c.batch_size), val)
    res["samplers"][name] = _evaluate(jax.random.fold_in(key, 2), r.params, test, c)
    res["samplers"][name]["best_epoch"] = int(r.best_epoch)
  # Distance-aware clip model: ℓ grid x {sum kernel (K(0) = 1), normalised kernel}.
  groups = tuple(c.drift_prefix) + ("clip",)
  obs = obs_all.select_groups(groups)
  train, val, test = (_data(obs, i) for i in split)
  per_length, fitted_drift = {}, {}
  for normalize in (False, True):
    nb = drift.clip_neighbours(obs, normalize=normalize)
    kind = "mean" if normalize else "sum"
    fit_fn = jax.jit(lambda k, h, tr, va, ell, nb=nb: drift.make_fit_drift(
        config, obs.num_aux, nb)(k, h, tr, va, length=ell))
    for ell in c.drift_lengths:
      r = fit_fn(key, hp, train_lib.pad_dataset(train, c.batch_size), val, jnp.asarray(ell))
      eff = drift.effective_params(r.params, nb, jnp.asarray(ell))
      test_pl = balanced_pseudo_likelihood(pseudo_log_likelihood(eff, test.v, test.aux), test.v)
      per_length[f"{kind} {ell}"] = {"val_pl": float(r.best_val_pl), "test_pl": float(test_pl)}
      fitted_drift[(kind, ell)] = (float(r.best_val_pl), eff)
  chosen = max(fitted_drift, key=lambda k: fitted_drift[k][0])
  finite = [k for k in fitted_drift if 0 < k[1] < np.inf]
  best_finite = max(finite, key=lambda k: fitted_drift[k][0]) if finite else chosen
  res["drift"] = {"groups": _label(groups), "per_length": per_length,
                  "chosen": f"{chosen[0]} kernel, ℓ={chosen[1]}",
                  "best_finite": f"{best_finite[0]} kernel, ℓ={best_finite[1]}",
                  "model": _evaluate(jax.random.fold_in(key, 3), fitted_drift[chosen][1], test, c)}
  nb = drift.clip_neighbours(obs)
  # Truth recovery on the simulated study: sampled marginals with the user factored out.
  if bundle.truth is not None:
    ts = _truth_setup(bundle, obs_all, split)
    models = {f"drift, chosen ({res['drift']['chosen']})": (obs, fitted_drift[chosen][1])}
    if best_finite != chosen:
      models[f"drift, best finite ℓ ({res['drift']['best_finite']})"] = (
          obs, fitted_drift[best_finite][1])
    for g in ((tuple(c.drift_prefix) + ("clip",)), tuple(c.drift_prefix)):
      if g in fitted:
        models[f"CD-1 {_label(g)}"] = fitted[g]
    sample_fn = jax.jit(lambda k, p, a: model_lib.sample_visible(
        k, p, a, c.affinity_samples, burn_in=c.affinity_burn_in))
    for name, (o, params) in models.items():
      aux = _relayout(ts["clip_aux"], obs_all, o)
      aff = np.asarray(jnp.mean(sample_fn(jax.random.fold_in(key, 4), params, jnp.asarray(aux)),
                                0))
      res["truth"][name] = _recovery(aff[:, ts["cols"]], ts)
    res["truth"]["track tag frequency (no model)"] = _recovery(ts["track_freq"], ts)
  if s == 0:
    res["benchmark"] = _benchmark(c, obs, split, nb, len(split.train))
  return res


def _mean_se(values):
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def _aggregate(per_split):
  """Nested dicts of numbers -> {key: [mean, stderr over splits]} (same nesting)."""
  first = per_split[0]
  if isinstance(first, dict):
    return {k: _aggregate([p[k] for p in per_split]) for k in first}
  if isinstance(first, (int, float)) and not isinstance(first, bool):
    return list(_mean_se(per_split))
  return first


def _fmt(ms, digits=3):
  m, s = ms
  return f"{m:.{digits}f} ± {s:.{digits}f}" if s else f"{m:.{digits}f}"


def _markdown(agg, bench, c, description):
  n = c.num_splits
  lines = ["## Beyond the paper: AIS log-likelihood, PCD / PT, distance-aware clips", "",
           f"Data: {description} (SIMULATED), top {c.top_n} tags, {n} split(s) 60/20/20; "
           f"{c.num_hidden} hidden units, {c.num_epochs} epochs, lr {c.learning_rate}. "
           f"AIS: {c.ais_runs} runs x {c.ais_betas} intermediate distributions per distinct "
           f"aux row of {c.ais_max_test or 'all'} test observations (mean-field base, sigmoid schedule). ± is the standard error over "
           "splits (1 split: none); [AIS ±] is the AIS noise of the mean.", "",
           "log p(v|a) is the average test log-likelihood per observation (-F - log Ẑ, "
           "forward AIS: optimistic in expectation); 'conservative' uses reverse AIS from "
           "the forward chains' final states (an upper bound on log Z only for exact start "
           "samples). PL: the paper's balanced per-bit log pseudo-likelihood; log PL/obs: "
           "the sum over bits of log p(v_i|v_-i, a).", "",
           "### Table 2 rows with the true log-likelihood", "",
           "| aux | PL (balanced) | log PL / obs | log p(v\\|a) / obs [AIS ±] | conservative "
           "| min ESS | max rev-fwd gap |", "|---|---|---|---|---|---|---|"]
  for name, r in agg["table2"].items():
    ess = _fmt(r["min_ess"], 1) if "min_ess" in r else "exact"
    gap = _fmt(r["max_gap"]) if "max_gap" in r else "-"
    lines.append(f"| {name} | {_fmt(r['pl_balanced'])} | {_fmt(r['log_pl_per_obs'], 2)} | "
                 f"{_fmt(r['ll_per_obs'], 2)} [{r['ll_ais_stderr'][0]:.3f}] | "
                 f"{_fmt(r['ll_conservative'], 2)} | {ess} | {gap} |")
  lines += ["", f"### CD-1 vs PCD vs parallel tempering ({_label(c.sampler_groups)} aux)", "",
            "| method | PL (balanced) | log p(v\\|a) / obs [AIS ±] | conservative | "
            "s / epoch | x CD-1 |", "|---|---|---|---|---|---|"]
  cost = {"CD-1": "cd1", "PCD": "pcd"}
  for name, r in agg["samplers"].items():
    k = cost.get(name, "pt")
    lines.append(f"| {name} | {_fmt(r['pl_balanced'])} | {_fmt(r['ll_per_obs'], 2)} "
                 f"[{r['ll_ais_stderr'][0]:.3f}] | {_fmt(r['ll_conservative'], 2)} | "
                 f"{bench[k]:.3f} | {bench['ratios_vs_cd1'][k]:.2f} |")
  d = agg["drift"]
  lines += ["", f"### Distance-aware clip model ({d['groups']} aux; clip term of clip i = "
            "Σ_j K(d_ij) W_clip[j] over the clips j of its track, K(d) = exp(-d/ℓ), d in "
            "track fractions)", "",
            "'sum': K(0) = 1, ℓ = 0 is exactly the track+clip model, ℓ = inf adds a second "
            "track term (sharing without distance, the control); 'mean': weights divided by "
            "their sum, ℓ = inf is the mean of the track's clip rows.", "",
            "| kernel, ℓ | val PL | test PL |", "|---|---|---|"]
  for ell, r in d["per_length"].items():
    lines.append(f"| {ell} | {_fmt(r['val_pl'])} | {_fmt(r['test_pl'])} |")
  m = d["model"]
  lines += ["", f"Chosen on validation (split 0): {d['chosen']} (best finite ℓ: "
            f"{d['best_finite']}); its test PL {_fmt(m['pl_balanced'])}, log p(v|a)/obs "
            f"{_fmt(m['ll_per_obs'], 2)} (conservative {_fmt(m['ll_conservative'], 2)}).", ""]
  if agg.get("truth"):
    lines += ["#### Recovery of the simulator's hidden true tags (ROC-AUC)", "",
              f"Affinities: p(v_i = 1 | a) per clip with the user factored out, the mean of "
              f"{c.affinity_samples} Gibbs samples (as the paper's smoothing). "
              "'hidden': only clip-tag pairs no training observation of the clip reported "
              "(true tags every worker missed vs false tags); 'few-tag clips': clips with <= 1 "
              "training observation.", "",
              "| affinities | AUC all | AUC hidden | AUC hidden, few-tag clips |",
              "|---|---|---|---|"]
    for name, r in agg["truth"].items():
      lines.append(f"| {name} | {_fmt(r['auc_all'])} | {_fmt(r['auc_hidden'])} | "
                   f"{_fmt(r['auc_hidden_few'])} |")
  lines += ["", "### Cost, measured in this run (split 0)", "",
            f"Training epoch on {bench['train_observations']} observations "
            f"({_label(tuple(c.drift_prefix) + ('clip',))} aux, batch {c.batch_size}, "
            f"{c.num_hidden} hidden); AIS: forward, {bench['ais_rows']} test aux rows x "
            f"{bench['ais_runs']} runs.", "", "| method | seconds | x CD-1 epoch |",
            "|---|---|---|"]
  names = {"cd1": "CD-1 epoch", "pcd": "PCD epoch",
           "pt": f"PT epoch ({bench['pt_temperatures']} temperatures)",
           "drift": "drift-model epoch (CD-1)", "ais_per_1000_betas": "AIS, 1000 distributions"}
  for k, label in names.items():
    lines.append(f"| {label} | {bench[k]:.4f} | {bench['ratios_vs_cd1'][k]:.2f} |")
  return "\n".join(lines) + "\n"


def run_beyond(config, workdir: str) -> dict:
  """Runs everything in the config; writes beyond.md and beyond.json; returns the results."""
  c = config
  bundle = datasets.load_dataset(c.dataset, seed=c.seed, **c.sim.to_dict())
  obs_all = bundle.to_observations(("user", "track", "clip"), top_n=c.top_n)
  splits = splits_lib.paper_splits(obs_all.aux, c.num_splits, c.split_seed)
  start = time.perf_counter()
  per_split = [_run_split(s, bundle, obs_all, sp, c) for s, sp in enumerate(splits)]
  bench = per_split[0].pop("benchmark")
  agg = _aggregate(per_split)
  for k in ("chosen", "best_finite"):
    agg["drift"][k] = per_split[0]["drift"][k]
  out = {"config": c.to_dict(), "description": bundle.description, "results": agg,
         "per_split": per_split, "benchmark": bench,
         "seconds": time.perf_counter() - start}
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "beyond.md"), "w") as f:
    f.write(_markdown(agg, bench, c, bundle.description))
  with open(os.path.join(workdir, "beyond.json"), "w") as f:
    json.dump(out, f, indent=1, default=str)
  return out
