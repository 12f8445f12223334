"""Beyond the paper (issue 8): AIS log-likelihood, PCD / parallel tempering, distance-aware clips.

``run_beyond(config, workdir)`` (launcher: experiments/beyond_paper.py) writes
<workdir>/beyond.md (a section for the reproduction report) and beyond.json.
Everything runs on the simulated Mechanical Turk study (crbm_jax.data.datasets
'simulated'), whose hidden true tags drift with the distance between clips by
construction; costs are measured in this same run, against CD-1.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax import learn
from crbm_jax.data import datasets, splits as splits_lib
from crbm_jax.data.aux_rows import clip_aux_rows, relayout
from crbm_jax.learn import clip_distance
from crbm_jax.model import ais
from crbm_jax.model.gibbs import sample_visible
from crbm_jax.model.pseudolikelihood import (balanced_pseudo_likelihood, factored_baseline,
                                             pseudo_log_likelihood)
from crbm_jax.util.atomic import write_json_atomic, write_text_atomic
from crbm_jax.util.stats import format_mean_se, mean_stderr, recovery_auc


# Jitted here, at the top, so that models of one shape share a program: run eagerly, the
# pseudo-likelihood's lax.switch over closures compiled afresh at every call.
_per_bit_pl = jax.jit(pseudo_log_likelihood, static_argnames=("chunk_size",))
_sample_visible = jax.jit(sample_visible, static_argnames=("num_samples", "burn_in", "thin"))


def _data(obs, idx):
  return learn.make_dataset(obs.X[idx], obs.aux[idx])


def _label(groups):
  return "+".join(groups) if groups else "none"


def _evaluate(key, params, test, c):
  """Test pseudo-likelihood (paper's balanced figure and per observation) and AIS LL.

  AIS runs on ``c.ais_max_test`` test observations drawn with a fixed seed (the same
  subset for every model of a split), or on all of them.
  """
  per_bit = _per_bit_pl(params, test.v, test.aux)
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
  per_bit = factored_baseline(train.v, test.v)
  ll = float(jnp.mean(jnp.sum(per_bit, -1)))
  return {"pl_balanced": float(balanced_pseudo_likelihood(per_bit, test.v)),
          "log_pl_per_obs": ll, "ll_per_obs": ll, "ll_conservative": ll, "ll_ais_stderr": 0.0,
          "ll_per_bit": ll / test.v.shape[1]}


def _truth_setup(bundle, obs_all, split):
  """Clip rows (user factored out), truth [C, V'], seen-in-training [C, V'], tag columns."""
  names, clip_aux = clip_aux_rows(obs_all, factor_out=("user",))
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
  """ROC-AUC of affinities against the true tags: every clip-tag pair, the pairs no
  training observation reported (hidden), and those of clips with <= 1 observation."""
  truth, hidden, few = ts["truth"], ~ts["seen"], ts["few"]
  return {"auc_all": recovery_auc(truth, affinity)["overall"],
          "auc_hidden": recovery_auc(truth, affinity, hidden)["overall"],
          "hidden_positives": int(np.sum(truth & hidden)),
          "auc_hidden_few": recovery_auc(truth[few], affinity[few], hidden[few])["overall"],
          "few_clips": int(few.sum())}


def _masked_groups(obs_all, groups):
  """``obs_all`` with the aux columns of the groups not in ``groups`` absent (-1): the
  model of ``obs_all.select_groups(groups)`` in the layout of all groups. An absent entry
  adds exactly 0 to W_a a and leaves its row at 0, so fits and evaluations give the same
  numbers, and the fits of Table 2 and of the samplers, of one shape, share their compiled
  programs (the fit, the pseudo-likelihood, the sampler)."""
  unknown = sorted(set(groups) - set(obs_all.groups))
  if unknown:
    raise ValueError(f"aux groups {unknown} are not among {list(obs_all.groups)}")
  keep = np.isin(np.asarray(obs_all.groups), list(groups))
  return dataclasses.replace(obs_all, aux=np.where(keep, obs_all.aux, -1).astype(
      obs_all.aux.dtype))


def _compiled(cache, name, make_fit_fn, *args):
  """The fit ``make_fit_fn()`` compiled ahead of time for arguments shaped like ``args``,
  once per (name, shapes) in ``cache`` (shared by every split of the run)."""
  leaves, tree = jax.tree.flatten(args)
  key = (name, tree, tuple((x.shape, x.dtype) for x in leaves))
  if key not in cache:
    cache[key] = jax.jit(make_fit_fn()).lower(*args).compile()
  return cache[key]


def _timed(compiled, *args):
  """(result, seconds of the run alone, compilation excluded)."""
  start = time.perf_counter()
  result = jax.block_until_ready(compiled(*args))
  return result, time.perf_counter() - start


def _run_split(s, bundle, obs_all, split, c, compiled):
  key = jax.random.fold_in(jax.random.key(c.train_seed), s)
  config, hp = learn.from_config(c.train)
  res = {"table2": {}, "samplers": {}, "drift": {}, "truth": {}}
  seconds = {}
  fitted = {}

  def fit(name, learner, args):  # one program per learner: every row shares the layout
    return _timed(_compiled(compiled, name, lambda: learn.make_fit(config, obs_all.num_aux,
                                                                   learner), *args), *args)

  for groups in c.table2_groups:
    obs = _masked_groups(obs_all, groups)
    train, val, test = (_data(obs, i) for i in split)
    r, seconds[("CD-1", _label(groups))] = fit(
        "CD-1", None, (key, hp, learn.pad_dataset(train, config.batch_size), val))
    fitted[tuple(groups)] = (obs, r.params)
    res["table2"][_label(groups)] = _evaluate(jax.random.fold_in(key, 1), r.params, test, c)
  res["table2"]["factored baseline"] = _factored(*(_data(obs_all, i) for i in (split.train,
                                                                               split.test)))
  obs = _masked_groups(obs_all, c.sampler_groups)
  train, val, test = (_data(obs, i) for i in split)
  learners = {"CD-1": None,  # make_fit's default, CD-k: the Table 2 rows' compiled fit
              "PCD": learn.pcd(config, obs.num_aux, chain_mode=c.pcd_chain_mode),
              f"PT ({c.pt_temperatures} temperatures)": learn.parallel_tempering(
                  config, obs.num_aux, c.pt_temperatures, c.pt_min_beta)}
  args = (key, hp, learn.pad_dataset(train, config.batch_size), val)
  for name, learner in learners.items():
    r, seconds[(name, _label(c.sampler_groups))] = fit(name, learner, args)
    res["samplers"][name] = _evaluate(jax.random.fold_in(key, 2), r.params, test, c)
    res["samplers"][name]["best_epoch"] = int(r.best_epoch)
  # Distance-aware clip model: ℓ grid x {sum kernel (K(0) = 1), normalised kernel}.
  groups = tuple(c.drift_prefix) + ("clip",)
  obs = obs_all.select_groups(groups)
  train, val, test = (_data(obs, i) for i in split)
  per_length, fitted_drift = {}, {}
  for normalize in (False, True):
    nb = clip_distance.clip_neighbours(obs, normalize=normalize)
    kind = "mean" if normalize else "sum"
    for ell in c.drift_lengths:
      args = (key, hp._replace(kernel_length=jnp.asarray(ell, jnp.float32)),
              learn.pad_dataset(train, config.batch_size), val,
              clip_distance.neighbour_table(nb))
      # ℓ and the table are traced: one compilation serves both kernels and the ℓ grid
      r, sec = _timed(_compiled(compiled, "distance-aware", lambda: clip_distance.
                                make_distance_fit(config, obs.num_aux, nb.offset, nb.column),
                                *args), *args)
      seconds.setdefault((f"distance-aware, {kind} kernel", _label(groups)), sec)
      test_pl = balanced_pseudo_likelihood(_per_bit_pl(r.params, test.v, test.aux),
                                           test.v)
      per_length[f"{kind} {ell}"] = {"val_pl": float(r.best_val_pl), "test_pl": float(test_pl)}
      fitted_drift[(kind, ell)] = (float(r.best_val_pl), r.params)
  chosen = max(fitted_drift, key=lambda k: fitted_drift[k][0])
  finite = [k for k in fitted_drift if 0 < k[1] < np.inf]
  best_finite = max(finite, key=lambda k: fitted_drift[k][0]) if finite else chosen
  res["drift"] = {"groups": _label(groups), "per_length": per_length,
                  "chosen": f"{chosen[0]} kernel, ℓ={chosen[1]}",
                  "best_finite": f"{best_finite[0]} kernel, ℓ={best_finite[1]}",
                  "model": _evaluate(jax.random.fold_in(key, 3), fitted_drift[chosen][1], test, c)}
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
    for name, (o, params) in models.items():
      aux = relayout(ts["clip_aux"], obs_all, o)
      aux = np.where(o.aux.max(axis=0, initial=-1) >= 0, aux, -1)  # groups o leaves out
      aff = np.asarray(jnp.mean(_sample_visible(jax.random.fold_in(key, 4), params,
                                                jnp.asarray(aux), c.affinity_samples,
                                                burn_in=c.affinity_burn_in), 0))
      res["truth"][name] = _recovery(aff[:, ts["cols"]], ts)
    res["truth"]["track tag frequency (no model)"] = _recovery(ts["track_freq"], ts)
  if s == 0:
    res["cost"] = [{"method": m, "aux": a, "seconds_per_epoch": t / config.num_epochs,
                    "vs_cd1": t / seconds[("CD-1", a)] if ("CD-1", a) in seconds else None}
                   for (m, a), t in seconds.items()]
  return res


def _aggregate(per_split):
  """Nested dicts of numbers -> {key: [mean, stderr over splits]} (same nesting; the
  error is None with one split)."""
  first = per_split[0]
  if isinstance(first, dict):
    return {k: _aggregate([p[k] for p in per_split]) for k in first}
  if isinstance(first, (int, float)) and not isinstance(first, bool):
    mean, se = mean_stderr(per_split)
    return [mean, se if np.isfinite(se) else None]
  return first


def _fmt(ms, digits=3):
  return format_mean_se(ms[0], ms[1], digits)


def _markdown(agg, cost, c, description):
  n = c.num_splits
  lines = ["## Beyond the paper: AIS log-likelihood, PCD / PT, distance-aware clips", "",
           f"Data: {description} (SIMULATED), top {c.top_n} tags, {n} split(s) 60/20/20; "
           f"{c.train.num_hidden} hidden units, {c.train.num_epochs} epochs, lr "
           f"{c.train.learning_rate}. "
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
            "| method | PL (balanced) | log p(v\\|a) / obs [AIS ±] | conservative |",
            "|---|---|---|---|"]
  for name, r in agg["samplers"].items():
    lines.append(f"| {name} | {_fmt(r['pl_balanced'])} | {_fmt(r['ll_per_obs'], 2)} "
                 f"[{r['ll_ais_stderr'][0]:.3f}] | {_fmt(r['ll_conservative'], 2)} |")
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
            f"Seconds per training epoch of the fits above ({cost['train_observations']} "
            f"training observations, batch {c.train.batch_size}, {c.train.num_hidden} hidden "
            "units; the validation pseudo-likelihood of every epoch included, compilation "
            "excluded), against CD-1 on the same auxiliary groups. AIS and per-epoch costs "
            "on larger data: `python experiments/bench_beyond.py`.", "",
            "| method | aux | s / epoch | x CD-1 |", "|---|---|---|---|"]
  for r in cost["fits"]:
    ratio = "" if r["vs_cd1"] is None else f"{r['vs_cd1']:.2f}"
    lines.append(f"| {r['method']} | {r['aux']} | {r['seconds_per_epoch']:.4f} | {ratio} |")
  return "\n".join(lines) + "\n"


def run_beyond(config, workdir: str) -> dict:
  """Runs everything in the config; writes beyond.md and beyond.json; returns the results."""
  c = config
  bundle = datasets.load_dataset(c.dataset, seed=c.seed, **c.sim.to_dict())
  obs_all = bundle.to_observations(("user", "track", "clip"), top_n=c.top_n)
  splits = splits_lib.paper_splits(obs_all.aux, c.num_splits, c.split_seed)
  start = time.perf_counter()
  compiled = {}  # fits compiled for this run, by learner and shapes: splits share them
  per_split = [_run_split(s, bundle, obs_all, sp, c, compiled) for s, sp in enumerate(splits)]
  cost = {"train_observations": len(splits[0].train), "fits": per_split[0].pop("cost")}
  agg = _aggregate(per_split)
  for k in ("chosen", "best_finite"):
    agg["drift"][k] = per_split[0]["drift"][k]
  out = {"config": c.to_dict(), "description": bundle.description, "results": agg,
         "per_split": per_split, "cost": cost,
         "seconds": time.perf_counter() - start}
  write_text_atomic(os.path.join(workdir, "beyond.md"),
                    _markdown(agg, cost, c, bundle.description))
  write_json_atomic(os.path.join(workdir, "beyond.json"), out, sort_keys=False)
  return out
