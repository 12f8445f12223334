"""The smoothing CRBM of Section 4: chosen by a validation search, fitted, and measured.

Shared by Table 3 (``paper.table3``) and the sparsity experiment (``paper.sparsity``):
the learnable auxiliary groups of a data set, the held-out observations of entities seen
in training, ``select_smoothing_model`` (``learn.search.select_model`` over hidden units,
learning rate, L1, aux_lr_scale, weight decay and batch size), the refit of a selected
configuration, how much the affinities depend on each group's rows, and the clips' fold
groups.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Sequence

import jax
import numpy as np

from crbm_jax import learn
from crbm_jax.learn import search as learn_search
from crbm_jax.configs import training as training_config
from crbm_jax.data import splits
from crbm_jax.data.observations import Observations
from crbm_jax.model import marginals
from crbm_jax.smoothers import count_split
from crbm_jax.smoothers import criterion as smoothing_criterion

# The numeric fields of the training schema (what a hyperparameter JSON may set).
HPARAM_KEYS = tuple(k for k, v in training_config.DEFAULTS.items() if not isinstance(v, bool))


class ExperimentError(ValueError):
  """Bad experiment input (names the file or setting and the reason)."""


def log(msg: str) -> None:
  """A progress line on stderr, as the Table 3 stage prints them."""
  sys.stderr.write(f"[autotag {time.strftime('%H:%M:%S')}] {msg}\n")
  sys.stderr.flush()


def load_hparams(path: str, dataset: str) -> dict:
  """Selected hyperparameters from a JSON file.

  Accepted layouts: a flat object with any of HPARAM_KEYS, or such an object under
  the data set's name, optionally wrapped in "hparams", "best" or "selected"
  (e.g. {"simulated": {"best": {"num_hidden": 50, "learning_rate": 0.1}}}), or the
  table2.json of experiments/table2_pseudolikelihood.py ({"datasets": [{"name":
  ..., "selected": {...}}, ...]}).
  """
  try:
    with open(path) as fh:
      blob = json.load(fh)
  except (OSError, json.JSONDecodeError) as e:
    raise ExperimentError(f"{path}: cannot read hyperparameters: {e}") from e
  if isinstance(blob, dict) and isinstance(blob.get("datasets"), list):
    entries = [d for d in blob["datasets"] if isinstance(d, dict) and d.get("name") == dataset]
    if not entries:
      raise ExperimentError(f"{path}: no entry named {dataset!r} in its 'datasets' list")
    blob = entries[0]
  for key in (dataset, "hparams", "best", "selected"):
    if isinstance(blob, dict) and isinstance(blob.get(key), dict):
      blob = blob[key]
  if not isinstance(blob, dict):
    raise ExperimentError(f"{path}: expected a JSON object of hyperparameters")
  found = {k: blob[k] for k in HPARAM_KEYS if k in blob}
  if not found:
    raise ExperimentError(f"{path}: no hyperparameters for {dataset!r}; expected some "
                          f"of {list(HPARAM_KEYS)} (flat or under {dataset!r})")
  for k, v in found.items():
    if not isinstance(v, (int, float)) or isinstance(v, bool):
      raise ExperimentError(f"{path}: hyperparameter {k!r} must be a number, got {v!r}")
  return found


def model_config(config, name: str):
  """The smoothing model's training config: ``config.model`` with the data set's entries
  of ``config.hparams_json`` (a new ConfigDict; ``config`` is not changed)."""
  model = config.model.to_dict()
  if config.hparams_json:
    model.update({k: type(training_config.DEFAULTS[k])(v)
                  for k, v in load_hparams(config.hparams_json, name).items()})
  return training_config.get_config(**model)


def train_crbm(rng_key, obs: Observations, model, val_fraction: float, refit_all: bool,
               seed: int):
  """Trains the smoothing CRBM; returns (CRBMParams, info dict).

  Args:
    model: a training config (``crbm_jax/configs/training.py``, or a mapping of its
      fields).
    val_fraction: share of the observations held out to choose the best epoch. The
      validation split keeps every auxiliary entity in training (data.splits.random_split)
      when it can; where that leaves under half the wanted validation rows (e.g. one
      observation per clip with clip conditioning) it is a plain shuffled split instead.
    refit_all: then retrain on all observations for the best number of epochs.
  """
  n, vf = obs.num_observations, float(val_fraction)
  if not 0.0 < vf < 1.0:
    raise ExperimentError(f"selection.val_fraction must lie in (0, 1), got {vf}")
  n_val = int(round(vf * n))
  split = splits.random_split(obs.aux, seed, (1.0 - vf, vf, 0.0))
  tr, va, kind = split.train, split.val, "entities covered by training"
  if len(va) < max(1, n_val // 2):
    perm = np.random.default_rng(seed).permutation(n)
    tr, va, kind = np.sort(perm[n_val:]), np.sort(perm[:n_val]), "plain shuffle"
  if len(va) == 0 or len(tr) == 0:
    raise ExperimentError(f"{n} observations are too few for a {vf:.0%} validation split")
  config, hparams = learn.from_config(model)
  key_fit, key_refit = jax.random.split(rng_key)
  data = lambda idx: learn.make_dataset(obs.X[idx], obs.aux[idx])
  result = learn.fit(key_fit, data(tr), data(va), config, hparams, obs.num_aux)
  best_epoch = int(result.best_epoch)
  params = result.params
  info = dict(split=kind, num_train=int(len(tr)), num_val=int(len(va)),
              best_epoch=best_epoch, best_val_pl=float(result.best_val_pl),
              val_pl_history=np.asarray(result.history.val_pl).tolist(),
              refit_all=bool(refit_all))
  if refit_all:  # same epochs on all data (keeps its best training-PL epoch)
    every = data(np.arange(n))
    refit = learn.fit(key_refit, every, every,
                      dataclasses.replace(config, num_epochs=best_epoch + 1),
                      hparams, obs.num_aux)
    params = refit.params
    info["refit_train_pl"] = float(refit.best_val_pl)
  return params, info


def learnable_groups(obs: Observations, count_splitting: bool = False,
                     factor_out: Sequence[str] = ("user",)) -> tuple[tuple, dict]:
  """The auxiliary groups whose rows a validation split can judge.

  With ``count_splitting`` and data without users (aggregated counts: MajorMiner, every
  thinned draw), every group with an entity is learnable: binomial count splitting
  (``smoothers.count_split``) gives each clip a held-out observation of itself. Otherwise
  a group is learnable when at least one of its entities has two or more observations:
  only then can a held-out observation of an entity also in training exist. Returns
  (kept groups, {dropped group: reason}).
  """
  split_counts = count_splitting and not count_split.has_users(obs.groups, factor_out)
  kept, dropped = [], {}
  for g, name in enumerate(obs.groups):
    col = obs.aux[:, g]
    counts = np.bincount(col[col >= 0], minlength=obs.num_aux) if obs.num_aux else []
    if len(counts) and (np.max(counts) >= 2 or (split_counts and np.max(counts) >= 1)):
      kept.append(name)
    else:
      dropped[name] = (f"every {name} has a single observation, so no held-out "
                       f"observation of a {name} seen in training exists")
  return tuple(kept), dropped


def search_space(config) -> "learn_search.SearchSpace":
  """The SearchSpace of ``config.search`` (value lists of the searched settings)."""
  s = config.search
  return learn_search.SearchSpace(
      num_hidden=tuple(int(v) for v in s.num_hidden),
      learning_rate=tuple(float(v) for v in s.learning_rate),
      l1_aux=tuple(float(v) for v in s.l1_aux),
      aux_lr_scale=tuple(float(v) for v in s.aux_lr_scale),
      weight_decay=tuple(float(v) for v in s.weight_decay),
      batch_size=tuple(int(v) for v in s.batch_size),
      momentum=tuple(float(v) for v in s.momentum))


def _validation_split(obs: Observations, val_fraction: float, seed: int):
  """(train index, val index): held-out observations whose entities are all in training."""
  vf = float(val_fraction)
  if not 0.0 < vf < 1.0:
    raise ExperimentError(f"selection.val_fraction must lie in (0, 1), got {vf}")
  split = splits.random_split(obs.aux, seed, (1.0 - vf, vf, 0.0))
  if len(split.val) == 0 or len(split.train) == 0:
    raise ExperimentError(f"{obs.num_observations} observations leave no held-out "
                          f"observation of an entity seen in training (groups "
                          f"{list(obs.groups)})")
  return split.train, split.val


CRITERIA = ("smoothing", "pl")


def _criterion(config) -> str:
  name = str(config.selection.get("criterion", "smoothing"))
  if name not in CRITERIA:
    raise ExperimentError(f"selection.criterion must be one of {list(CRITERIA)}, got "
                          f"{name!r}")
  return name


def _plain(row: dict) -> dict:
  return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def select_smoothing_model(rng_key, obs: Observations, config, seed: int,
                           label: str = "", progress: bool = True):
  """The smoothing CRBM, chosen by validation search (issues 13 and 23).

  ``config.selection.criterion`` (default 'smoothing'):
    'smoothing': the use's criterion (``smoothers.criterion``): affinities from each
      held-out observation's aux rows alone (no tag observed, no user), scored by the
      balanced per-bit log loss of its tags. Held-out observations of clips that stay in
      training come from held-out users' observations, or, for aggregated counts, from
      binomial count splitting (``smoothers.count_split``), so the clip group is kept
      and judged. The best ``config.selection.rescore_top`` configurations are trained
      again from a second initialisation and ranked by the mean of the two scores; their
      spread is reported.
    'pl': balanced validation pseudo-likelihood of held-out observations of entities in
      training (the earlier default; Table 2's criterion).
  ``crbm_jax.learn.search.select_model`` searches ``config.search`` with early stopping
  and successive halving; with ``config.selection.refit_all`` the chosen configuration is
  then retrained on every observation for its best number of epochs. With
  ``config.search.enabled`` False (or ``config.hparams_json`` set) the fixed
  ``config.model`` is trained instead (``train_crbm``).

  Returns:
    (params, obs restricted to the groups used, info dict).
  """
  fixed = (not config.search.enabled) or bool(config.hparams_json)
  crit = "pl" if fixed else _criterion(config)
  groups, dropped = learnable_groups(obs, count_splitting=crit == "smoothing")
  used = obs.select_groups(groups)
  info = dict(groups=list(groups), dropped_groups=dropped,
              method="fixed" if fixed else "validation search")
  if fixed:
    model = model_config(config, label or "")
    params, train_info = train_crbm(rng_key, used, model, config.selection.val_fraction,
                                    config.selection.refit_all, seed)
    info.update(training=train_info, selected=dict(model.to_dict()))
    return params, used, info
  if crit == "smoothing":
    try:
      held = count_split.held_out_observations(
          used.X, used.counts, used.aux, used.groups, config.selection.val_fraction, seed)
    except count_split.CountSplitError as e:
      raise ExperimentError(f"{label or 'data'}: {e}") from None
    train = learn.make_dataset(held.X_train, held.aux_train)
    val = smoothing_criterion.aggregate_rows(held.X_val, held.aux_val)
    make_evaluate = smoothing_criterion.smoothing_criterion()
    num_train, num_val, holdout = len(held.X_train), len(held.X_val), held.kind
  else:
    tr, va = _validation_split(used, config.selection.val_fraction, seed)
    train = learn.make_dataset(used.X[tr], used.aux[tr])
    val = learn.make_dataset(used.X[va], used.aux[va])
    make_evaluate = learn_search.make_block_evaluate
    num_train, num_val, holdout = len(tr), len(va), "entities covered by training"
  s = config.search
  rule = learn_search.StopRule(patience=int(s.patience), tol=float(s.tol),
                               num_epochs=int(s.num_epochs), eval_every=int(s.eval_every))
  halving = (learn_search.Halving(eta=float(s.halving_eta), first_rung=int(s.first_rung))
             if s.halving_eta else None)
  base, _ = learn.from_config(config.model)
  last = [0.0]

  def report(msg):  # at most one line every 2 s
    now = time.monotonic()
    if now - last[0] >= 2.0:
      last[0] = now
      log(f"{label} search: {msg}")
  key_search, key_refit = jax.random.split(rng_key)
  search = lambda key, **kw: learn_search.select_model(
      key, train, val, used.num_aux, search_space(config), rule=rule, base=base,
      seed=seed, progress=report if progress else None, make_evaluate=make_evaluate, **kw)
  sel = search(key_search, num_configs=int(s.num_configs) if s.num_configs else None,
               seconds=float(s.seconds) if s.seconds else None, halving=halving)
  table = [_plain(row) for row in sel.table]
  chosen = _plain(sel.config)
  score, best_epoch, params = float(sel.val_pl), int(sel.best_epoch), sel.params
  rescored = []
  top = int(config.selection.get("rescore_top", 0)) if crit == "smoothing" else 0
  if top > 0:  # a second initialisation of the best few: mean score, spread reported
    ranked = sorted((r for r in table if np.isfinite(r["best_val_pl"])
                     and r["best_epoch"] >= 0 and r.get("conditioned", True)),
                    key=lambda r: -r["best_val_pl"])[:top]
    configs = [{f: r[f] for f in learn_search.SPACE_FIELDS} for r in ranked]
    again = search(jax.random.fold_in(key_search, 1), configs=configs, halving=None)
    for r in ranked:
      r2 = next(x for x in again.table
                if all(x[f] == r[f] for f in learn_search.SPACE_FIELDS))
      both = [float(r["best_val_pl"]), float(r2["best_val_pl"])]
      if not np.isfinite(both[1]) or int(r2["best_epoch"]) < 0:
        both = both[:1]
      rescored.append(dict(config={f: r[f] for f in learn_search.SPACE_FIELDS},
                           scores=both, mean=float(np.mean(both)),
                           spread=float(np.max(both) - np.min(both)),
                           best_epochs=[int(r["best_epoch"]), int(r2["best_epoch"])],
                           _params=(learn_search.row_params(sel.results, r),
                                    learn_search.row_params(again.results, r2))))
    best = max(rescored, key=lambda r: r["mean"])
    chosen, score = _plain(best["config"]), best["mean"]
    best_epoch = int(round(float(np.mean(best["best_epochs"][:len(best["scores"])]))))
    pick = int(np.argmax(best["scores"]))
    params = best["_params"][pick]
    for r in rescored:
      r.pop("_params")
      r["config"] = _plain(r["config"])
  info.update(selected=chosen, criterion=crit, best_epoch=best_epoch,
              num_train=int(num_train), num_val=int(num_val), holdout=holdout,
              search_seconds=round(float(sel.seconds), 3), search_table=table)
  if crit == "smoothing":
    info.update(criterion_name=smoothing_criterion.NAME, val_criterion=score,
                rescored=rescored,
                val_spread=max((r["spread"] for r in rescored), default=float("nan")),
                val_auc=_held_out_auc(params, held))
  else:
    info["val_pl"] = score
  if config.selection.refit_all:  # the chosen settings on every observation
    model = training_config.get_config(**dict(
        config.model.to_dict(), num_hidden=int(chosen["num_hidden"]),
        batch_size=int(chosen["batch_size"]), num_epochs=int(best_epoch) + 1,
        learning_rate=float(chosen["learning_rate"]), momentum=float(chosen["momentum"]),
        weight_decay=float(chosen["weight_decay"]), l1_aux=float(chosen["l1_aux"]),
        aux_lr_scale=float(chosen["aux_lr_scale"])))
    cfg, hparams = learn.from_config(model)
    every = learn.make_dataset(used.X, used.aux)
    refit = learn.fit(key_refit, every, every, cfg, hparams, used.num_aux)
    params = refit.params
    info["refit_train_pl"] = float(refit.best_val_pl)
  info["refit_all"] = bool(config.selection.refit_all)
  return params, used, info


VAL_ROW_BUCKET = 256
_affinities = jax.jit(smoothing_criterion.model_affinities)  # one jit: compiled per shape


def _held_out_auc(params, held) -> dict:
  """ROC-AUC (and the criterion) of the chosen search model's affinities on the held-out
  observations, one row per observation (reported beside the criterion)."""
  aux = np.asarray(held.aux_val, np.int32)
  n = len(aux)
  if int(params.W.shape[1]) <= smoothing_criterion.EXACT_MAX_HIDDEN:
    # exact affinities are per row: -1 rows padded to a bucket change none of them
    aux = np.concatenate([aux, np.full(((-n) % VAL_ROW_BUCKET, aux.shape[1]), -1,
                                       np.int32)])
  p = np.asarray(_affinities(pad_num_aux(params), aux))[:n]
  sc = smoothing_criterion.score_affinities(p, held.X_val)
  return dict(balanced_log_lik=sc.balanced_log_lik, auc=sc.auc, mean_tag_auc=sc.mean_tag_auc)


def fit_selected(rng_key, obs: Observations, config, selected: dict):
  """Trains a previously selected configuration (``select_smoothing_model``'s
  ``info['selected']`` with ``best_epoch``) on every observation of the learnable groups,
  for best_epoch + 1 epochs. Returns (params, obs used, info) like the selection."""
  groups, dropped = learnable_groups(obs, count_splitting=_criterion(config) == "smoothing")
  used = obs.select_groups(groups)
  names = ("num_hidden", "batch_size", "learning_rate", "momentum", "weight_decay",
           "l1_aux", "aux_lr_scale")
  model = training_config.get_config(**dict(
      config.model.to_dict(), num_epochs=int(selected.get("best_epoch", 0)) + 1,
      **{k: type(training_config.DEFAULTS[k])(selected[k]) for k in names if k in selected}))
  cfg, hparams = learn.from_config(model)
  every = learn.make_dataset(used.X, used.aux)
  result = learn.fit(rng_key, every, every, cfg, hparams, used.num_aux)
  return result.params, used, dict(groups=list(groups), dropped_groups=dropped,
                                   method="settings selected on the first draw",
                                   selected={k: selected[k] for k in names if k in selected},
                                   best_epoch=int(selected.get("best_epoch", 0)),
                                   refit_train_pl=float(result.best_val_pl))


# W_aux rows are padded (with zero rows no aux row points to) to a multiple of this before
# sampling, so that the thinned draws of the sparsity experiment, whose entity counts
# differ, share one compiled sampler per hidden size (``pad_num_aux``).
AUX_ROW_BUCKET = 512


def pad_num_aux(params, multiple: int = AUX_ROW_BUCKET, at_least: int = 0):
  """``params`` with W_aux [A, V] padded by zero rows to max(A, ``at_least``) rounded up
  to a multiple of ``multiple``.

  Exact: p(v | a) gathers the rows the aux indices name (all < A), and nothing draws
  random numbers over the W_aux rows, so every affinity, sampled or exact, is unchanged;
  only the compiled shapes are shared between models whose A differ (``at_least``: one
  shape for every draw of an experiment, e.g. the full data's entity count)."""
  num_aux = int(params.W_aux.shape[0])
  rows = -(-max(num_aux, int(at_least)) // int(multiple)) * int(multiple)
  if rows == num_aux:
    return params
  W_aux = np.asarray(params.W_aux)
  return params._replace(W_aux=np.concatenate(
      [W_aux, np.zeros((rows - num_aux,) + W_aux.shape[1:], W_aux.dtype)], 0))


def aux_dependence(params, aux_rows: np.ndarray, groups: Sequence[str],
                   skip: Sequence[str] = ("user",)) -> dict:
  """How much the smoothed affinities depend on each auxiliary term:
  ``marginals.aux_effect`` (exact for H <= 12, else sampled with common random numbers
  and a noise floor; W_aux padded by ``pad_num_aux``, which changes no value)."""
  return marginals.aux_effect(pad_num_aux(params), aux_rows, groups, skip=skip)


def clip_column(table, clips: np.ndarray, column: str) -> np.ndarray:
  """[C] value of a table column for each clip (its first row; '' when absent)."""
  out = np.full(len(clips), "", dtype=object)
  if not table.has(column):
    return out.astype(str)
  names, first = np.unique(table.clip, return_index=True)
  values = np.asarray(getattr(table, column)).astype(str)[first]
  pos = np.clip(np.searchsorted(names, clips), 0, max(len(names) - 1, 0))
  found = names[pos] == clips
  out[found] = values[pos[found]]
  return out.astype(str)


def fold_groups(table, clips: np.ndarray) -> tuple[np.ndarray, str]:
  """[C] fold-grouping label per clip: album when the table has one, else track.

  Clips with a blank album fall back to their track, then to the clip itself.
  Returns (groups, description).
  """
  track = clip_column(table, clips, "track")
  track = np.where(track != "", np.char.add("track:", track), np.char.add("clip:", clips))
  if table.has("album"):
    album = clip_column(table, clips, "album")
    return np.where(album != "", np.char.add("album:", album), track), "album"
  return track, "track"
