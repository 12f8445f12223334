"""Fewer players per clip on real clips: does smoothing help when tags are sparse?

The paper's third claim (Section 4): smoothed tags train better autotaggers, "especially
when fewer users have seen a clip". MajorMiner gives, for every (clip, tag), the number
of players who gave it. Binomial thinning -- keep each player's tag with probability p --
models a game in which fewer players heard the clip, without inventing a single tag.

For each keep probability p (``config.sparsity.keep``) and each seeded draw:
  1. thin every (clip, tag) count: n' ~ Binomial(n, p) (``thin_table``);
  2. raw labels: the paper's rule on the thinned counts (positives: the smaller of the top
     ``max_per_class`` or every clip verified by >= ``min_verified`` players; negatives:
     clips nobody gave the tag, crbm_jax.autotag.svm.select_examples);
  3. smoothed labels: a CRBM trained on the thinned observations (one per clip: the tags
     at least one kept player gave) with the learnable auxiliary groups (track; the clip
     group has one observation per clip and is not learnable), chosen by validation
     search (crbm_jax.paper.smoothing_model.select_smoothing_model), then sampled as in Table 3;
  4. the same nu-SVMs on the same album-grouped folds (fallback track) as Table 3,
     trained on each labelling and tested (a) on the thinned raw labels of the held-out
     fold (the paper's protocol) and (b) on the unthinned raw labels of the held-out
     clips (the consensus of every player: the closest to truth real data offers). The
     (b) test sets are the same clips at every p and draw (same selection seeds).

At p = 1 thinning changes nothing; in ``crbm-reproduce`` the p = 1 column is Table 3's
MajorMiner run itself (its model, labels and SVM scores), and tests (a) and (b) coincide.

Statistics (``summarize``): per tag, balanced accuracy is averaged over the scored folds
of a draw, then over draws; the column's value is the mean over tags and its error the
standard error over tags of those per-tag means (so draw-to-draw noise is inside each
tag's value). The paired difference smoothed - raw is taken per (draw, tag, fold) where
both were scored and summarised the same way; a difference is called detectable when it
exceeds 2 standard errors, and the resolution is 2 s.e. of the paired difference.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import sys
import time
from typing import List, Optional, Sequence

import jax
import numpy as np

from crbm_jax.paper import smoothing_model
from crbm_jax.autotag import features as features_lib
from crbm_jax.autotag import folds as folds_lib
from crbm_jax.autotag import protocol as protocol_lib
from crbm_jax.data import observations as obs_lib
from crbm_jax.data.aux_rows import aux_rows_from_names
from crbm_jax.data.tagtable import TagTable
from crbm_jax.model import marginals
from crbm_jax.paper.sparsity_report import (reference_baselines, summarize,
                                            summarize_baselines, write_sparsity)
from crbm_jax.util import compile_cache
from crbm_jax.util.pool import spawn_pool
from crbm_jax.util.progress import Progress

class SparsityError(ValueError):
  """Bad sparsity-experiment input (names the setting and the reason)."""


def thin_counts(counts: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
  """Binomial thinning: each of the ``counts`` players is kept with probability ``keep``."""
  if not 0.0 < keep <= 1.0:
    raise SparsityError(f"keep probability must lie in (0, 1], got {keep}")
  counts = np.asarray(counts, np.int64)
  if np.any(counts < 0):
    raise SparsityError("counts must be non-negative numbers of players")
  if keep == 1.0:
    return counts.copy()
  return rng.binomial(counts, keep).astype(np.int64)


def thin_table(table: TagTable, keep: float, rng: np.random.Generator) -> TagTable:
  """The table with every row's count thinned; rows left with count 0 are dropped."""
  counts = thin_counts(table.count, keep, rng)
  rows = counts > 0
  fields = {}
  for f in dataclasses.fields(table):
    value = getattr(table, f.name)
    if isinstance(value, np.ndarray) and value.shape[:1] == counts.shape:
      value = value[rows]
    fields[f.name] = value
  fields["count"] = counts[rows]
  return dataclasses.replace(table, **fields)


def counts_matrix(table: TagTable, clips: np.ndarray, vocab: np.ndarray) -> np.ndarray:
  """[C, V] int32 players per (clip, tag) (0 where the table has no row)."""
  clip_pos = {c: i for i, c in enumerate(np.asarray(clips).tolist())}
  tag_pos = {t: j for j, t in enumerate(np.asarray(vocab).tolist())}
  out = np.zeros((len(clips), len(vocab)), np.int32)
  for c, t, n in zip(table.clip.tolist(), table.tag.tolist(), table.count.tolist()):
    i, j = clip_pos.get(c), tag_pos.get(t)
    if i is not None and j is not None:
      out[i, j] += n
  return out


@dataclasses.dataclass
class SparsityInputs:
  """What every (p, draw) shares: the clips with features [C], their fold-grouping labels
  and folds, the full counts [C, V] and the scored tags (indices into vocab, most used
  first)."""
  table: TagTable
  clips: np.ndarray
  features: np.ndarray      # [C, F] standardised
  groups: np.ndarray
  fold_ids: np.ndarray
  full_raw: np.ndarray      # [C, V]
  vocab: np.ndarray         # [V]
  surface: dict
  tags: np.ndarray          # [T]
  clip_track: np.ndarray    # [C] str ('' unknown)
  aux_groups: tuple


def make_inputs(table: TagTable, features: np.ndarray, feature_clips: np.ndarray,
                vocab: np.ndarray, surface: dict, aux_groups: Sequence[str], num_tags: int,
                num_folds: int, seed: int) -> SparsityInputs:
  """Shared inputs from the full tag table and the clips' features (clips with both)."""
  feature_clips = np.asarray(feature_clips, str)
  keep = np.isin(feature_clips, np.unique(table.clip))
  clips = feature_clips[keep]
  x, _, _ = features_lib.standardize(np.asarray(features, np.float64)[keep])
  groups, _ = smoothing_model.fold_groups(table, clips)
  full_raw = counts_matrix(table, clips, vocab)
  tags = protocol_lib.top_tags(full_raw, num_tags)
  return SparsityInputs(table=table, clips=clips, features=x, groups=groups,
                        fold_ids=folds_lib.grouped_folds(groups, num_folds, seed),
                        full_raw=full_raw, vocab=np.asarray(vocab, str), surface=surface,
                        tags=tags, clip_track=smoothing_model.clip_column(table, clips, "track"),
                        aux_groups=tuple(aux_groups))


def smoothed_labels(rng_key, inputs: SparsityInputs, thinned: TagTable, config, label: str,
                    fixed: Optional[dict] = None, progress: bool = True):
  """Smoothed affinities [C, V] of every clip from a CRBM trained on ``thinned``.

  The model is chosen by ``smoothing_model.select_smoothing_model`` (validation search), or, with
  ``fixed`` (a previous selection's settings and epochs), trained with those settings.
  A clip whose thinned tags all vanished has no observation: its smoothing row keeps its
  track when another clip of the track still has one, and is empty otherwise.

  Returns:
    (affinities [C, V] float32, info dict with the selection and the aux dependence).
  """
  obs = obs_lib.build_observations(thinned, aux_groups=inputs.aux_groups,
                                   vocab=inputs.vocab)
  key_model, key_smooth = jax.random.split(rng_key)
  if fixed is None:
    params, used, info = smoothing_model.select_smoothing_model(key_model, obs, config,
                                                       int(config.seed), label, progress)
  else:
    params, used, info = smoothing_model.fit_selected(key_model, obs, config, fixed)
  values = {"track": inputs.clip_track, "clip": inputs.clips}
  factor_out = tuple(config.factor_out)
  aux_rows, unknown = aux_rows_from_names(used.groups, used.entity_names, used.offsets,
                                          values, len(inputs.clips), factor_out)
  s = config.smoothing
  # one W_aux shape for every draw (the full data's entities): one compiled sampler
  padded = smoothing_model.pad_num_aux(params, at_least=entity_rows(inputs))
  affinity = marginals.smooth_affinities(key_smooth, padded, aux_rows,
                                         int(s.num_samples), "sample", int(s.burn_in),
                                         int(s.thin), int(s.batch))
  info = dict(info, num_observations=obs.num_observations,
              clips_without_observation=int(len(inputs.clips) - len(np.unique(obs.clip))),
              unknown_entities=unknown,
              aux_dependence=smoothing_model.aux_dependence(padded, aux_rows, used.groups))
  return np.asarray(affinity, np.float32), info


def entity_rows(inputs: SparsityInputs) -> int:
  """Aux rows of the unthinned data (its clips and tracks): no draw's model has more."""
  return len(inputs.clips) + len(np.unique(inputs.clip_track))


def baseline_labels(inputs: SparsityInputs, thinned: TagTable, config,
                    names: Sequence[str]) -> tuple[dict, dict]:
  """The baseline smoothers ``names`` (crbm_jax.smoothers.baselines) on a thinned draw:
  ({name: [C, V] affinities over inputs.clips}, {name: reason not applicable}).

  Tunable settings (the track pool's weight, the rank) are chosen by the smoothing
  criterion on count-split held-out observations, as for the CRBM. A clip whose thinned
  tags all vanished gets the mean of its track's clips (the pool's own answer for a
  clip without tags of its own), or the tags' base rate when its track has none left.
  """
  from crbm_jax.smoothers import compare as smoother_compare  # pylint: disable=import-outside-toplevel
  obs = obs_lib.build_observations(thinned, aux_groups=inputs.aux_groups,
                                   vocab=inputs.vocab)
  scores, full = smoother_compare.held_out_scores(
      obs, float(config.selection.val_fraction), int(config.seed), None, list(names))
  out, reasons = {}, {}
  names_seen = np.unique(np.asarray(obs.clip).astype(str))
  pos = np.clip(np.searchsorted(names_seen, inputs.clips), 0, len(names_seen) - 1)
  seen = names_seen[pos] == inputs.clips
  for n in names:
    res = full.get(n)
    if res is None or res.affinities is None:
      reasons[n] = scores.get(n, {}).get("not_applicable", "not run")
      continue
    a = np.asarray(res.affinities, np.float64)
    rows = np.tile(a.mean(0), (len(inputs.clips), 1))
    rows[seen] = a[pos[seen]]
    for track in np.unique(inputs.clip_track[~seen]):
      if track == "":
        continue
      mates = seen & (inputs.clip_track == track)
      if mates.any():
        rows[~seen & (inputs.clip_track == track)] = rows[mates].mean(0)
    out[n] = rows
  return out, reasons


def score_unit(x: np.ndarray, raw_thin: np.ndarray, smoothed: np.ndarray,
               full_raw: np.ndarray, fold_ids: np.ndarray, tags: np.ndarray,
               settings: dict, baselines: Optional[dict] = None):
  """[T, F, 2 (train raw, smoothed), 2 (test thinned, unthinned)] balanced accuracy.

  The unthinned test labelling is scored at position 0 of the test list, so its example
  selection (and hence its test clips) is Table 3's raw test selection, at every p. When
  nothing was thinned (p = 1) the two labellings are one and are scored once.

  With ``baselines`` ({name: [C, V] affinities}, the baseline smoothers'), SVMs are also
  trained on each of them (after raw and smoothed in the training list, so the raw and
  smoothed examples, and scores, are the same as without) and the result is
  (per_fold, [T, F, K, 2] of the baselines).
  """
  same = np.array_equal(raw_thin, full_raw)
  tests = [("unthinned", full_raw, "raw")] + ([] if same else [("thinned", raw_thin, "raw")])
  extra = [(n, a, "smoothed") for n, a in (baselines or {}).items()]
  per_fold, _ = protocol_lib.score_autotaggers(
      x, [("raw", raw_thin, "raw"), ("smoothed", smoothed, "smoothed")] + extra, tests,
      fold_ids, tags, progress=False, **settings)
  per_fold = (np.concatenate([per_fold, per_fold], axis=-1) if same
              else per_fold[..., ::-1])
  if baselines is None:
    return per_fold
  return per_fold[:, :, :2], per_fold[:, :, 2:]


def _protocol_settings(config) -> dict:
  t3 = config.table3
  return dict(seed=int(config.seed), max_per_class=int(t3.max_per_class),
              min_verified=int(t3.min_verified), nu=float(t3.nu), decision=str(t3.decision))


# --------------------------------------------------------------------------- statistics


def _log(msg: str) -> None:
  sys.stderr.write(f"[sparsity {time.strftime('%H:%M:%S')}] {msg}\n")
  sys.stderr.flush()


def load_inputs(config) -> SparsityInputs:
  """The shared inputs for ``config.sparsity.dataset`` (embedded MajorMiner by default)."""
  from crbm_jax.data.datasets import load_dataset  # pylint: disable=import-outside-toplevel
  sp = config.sparsity
  bundle = load_dataset(str(sp.dataset))
  if bundle.features is None:
    raise SparsityError(f"sparsity.dataset {sp.dataset!r} has no clip features")
  if bundle.table.has("user"):
    raise SparsityError(f"sparsity.dataset {sp.dataset!r} has users; thinning models "
                        "(clip, tag, number of players) counts such as MajorMiner's")
  groups_cfg = config.aux_groups.get(str(sp.dataset), None)
  aux_groups = tuple(groups_cfg) if groups_cfg else bundle.aux_groups
  vocab = obs_lib.select_vocabulary(bundle.table, min_users=int(config.min_users))
  return make_inputs(bundle.table, bundle.features, bundle.feature_clips, vocab,
                     bundle.surface, aux_groups, int(sp.num_tags),
                     int(config.table3.num_folds), int(config.seed))


def labels_of_p(config, key_data: np.ndarray, inputs: SparsityInputs, i: int, p: float,
                draws: Sequence[int], base_names: Sequence[str],
                progress: bool = True) -> List[dict]:
  """The labels of every draw ``draws`` of keep probability ``p`` (index ``i``): thinned
  counts, the CRBM's smoothed affinities (draw 0 searches; the others reuse its settings
  unless ``search_every_draw``) and the baseline smoothers'. ``key_data`` is the
  experiment's key (``jax.random.key_data``), so a spawned process draws what this one
  would. Returns one dict per draw: i, p, d, raw_thin, smoothed, info, base, reasons."""
  rng_key = jax.random.wrap_key_data(np.asarray(key_data))
  out, selected = [], None
  for d in draws:
    rng = np.random.default_rng([int(config.seed), d, int(round(p * 1000))])
    thinned = thin_table(inputs.table, p, rng)
    key = jax.random.fold_in(jax.random.fold_in(rng_key, i), d)
    fixed = None if (d == 0 or config.sparsity.search_every_draw) else selected
    smoothed, info = smoothed_labels(key, inputs, thinned, config,
                                     f"sparsity p={p:g} draw {d}", fixed, progress)
    if d == 0:
      selected = dict(info["selected"], best_epoch=info.get(
          "best_epoch", info.get("training", {}).get("best_epoch", 0)))
    base, reasons = (baseline_labels(inputs, thinned, config, base_names) if base_names
                     else (None, {}))
    out.append(dict(i=i, p=p, d=d, raw_thin=counts_matrix(thinned, inputs.clips,
                                                          inputs.vocab),
                    smoothed=smoothed, info=info, base=base, reasons=reasons))
  return out


def _labels_in_worker(*args):
  """``labels_of_p`` in a worker process, with its compile/compute split."""
  clock = compile_cache.CompileClock()
  return labels_of_p(*args), clock.split()


class LabelJobs:
  """The labels of every keep probability, started (``start_labels``): the shared
  inputs, the units (i, p, d), the draws of each p and, with ``label_processes`` > 1,
  the spawned pool and its futures (else the labels are computed when collected)."""

  def __init__(self, config, rng_key, progress: bool = True):
    sp = config.sparsity
    self.keep = [float(p) for p in sp.keep]
    if not self.keep or any(not 0.0 < p <= 1.0 for p in self.keep):
      raise SparsityError(f"sparsity.keep must be probabilities in (0, 1], got {self.keep}")
    if int(sp.num_draws) < 1:
      raise SparsityError(f"sparsity.num_draws must be >= 1, got {sp.num_draws}")
    self.config, self.progress = config, progress
    self.inputs = load_inputs(config)
    self.base_names = tuple(sp.get("baselines", ()))
    self.key_data = np.asarray(jax.random.key_data(rng_key))
    self.pool, self.futures = None, None
    self.units, self.by_p, self.with_reference = None, None, None  # set by start()
    self.started = time.monotonic()

  def start(self, with_reference: bool) -> "LabelJobs":
    """Submits the labels of every p (p = 1 left out ``with_reference``: Table 3's run
    gives it)."""
    sp, keep = self.config.sparsity, self.keep
    self.with_reference = bool(with_reference)
    self.units = [(i, p, d) for i, p in enumerate(keep)
                  if not (p == 1.0 and with_reference)
                  for d in range(1 if p == 1.0 else int(sp.num_draws))]
    by_p = [(i, p, [d for (j, _, d) in self.units if j == i]) for i, p in enumerate(keep)]
    self.by_p = [u for u in by_p if u[2]]
    processes = max(1, min(int(sp.get("label_processes", 1) or 1), len(self.by_p)))
    if processes > 1:  # the draws of each p in spawned processes (same numbers)
      self.pool = spawn_pool(processes, compile_cache.enable,
                             (compile_cache.active_dir() or "off",))
      _log(f"labels of {len(self.by_p)} keep probabilities in {processes} processes")
      self.futures = [self.pool.submit(_labels_in_worker, self.config, self.key_data,
                                       self.inputs, i, p, draws, self.base_names,
                                       self.progress) for i, p, draws in self.by_p]
    return self

  def results(self):
    """Yields the label dicts of each p in turn (``labels_of_p``), waiting for its
    worker when one computes them."""
    for n, (i, p, draws) in enumerate(self.by_p):
      if self.futures is not None:
        got, split = self.futures[n].result()
        compile_cache.add_worker_split(split)  # the stage's report counts it apart
      else:
        got = labels_of_p(self.config, self.key_data, self.inputs, i, p, draws,
                          self.base_names, self.progress)
      yield from got

  def close(self) -> None:
    if self.pool is not None:
      self.pool.shutdown(cancel_futures=True)
      self.pool = None


def start_labels(config, rng_key, with_reference: bool, progress: bool = True) -> LabelJobs:
  """Starts the labels of the experiment (the CRBM searches, smoothing and baselines of
  every thinned draw) in ``config.sparsity.label_processes`` spawned processes, so that
  they run while the caller does other work (``crbm-reproduce``'s Table 3 stage starts
  them before its own data sets); ``run_sparsity(..., labels=)`` collects them. The same
  numbers as computing them there."""
  return LabelJobs(config, rng_key, progress).start(with_reference)


def run_sparsity(config, workdir: str, rng_key, reference: Optional[dict] = None,
                 pool: Optional[concurrent.futures.Executor] = None,
                 progress: bool = True, labels: Optional[LabelJobs] = None) -> dict:
  """Runs the experiment (module docstring); writes <workdir>/sparsity.{md,png,csv,json}.

  Args:
    config: the Table 3 config (``config.sparsity``, ``config.table3``, ``search``...).
    reference: Table 3's MajorMiner run for the p = 1 column: {'clips' [C], 'fold_ids'
      [C], 'vocab' [V], 'raw' [C, V] (must equal this experiment's), 'per_fold'
      [T3, F, 2, 2] (or a zero-argument callable returning it), 'model' (its selection
      info)}. Without it p = 1 is computed here like every other p.
    pool: an executor for the SVM scoring (None: a spawned worker process when
      ``config.sparsity.processes`` > 0, else in this process).
    labels: the labels as ``start_labels`` started them (with ``with_reference`` as
      ``reference`` is given; None: started here). This function closes them.
  Returns:
    {'summary', 'paths', 'models', 'seconds'}.
  """
  start = time.monotonic()
  sp = config.sparsity
  own_pool = None
  try:
    if labels is None:
      labels = LabelJobs(config, rng_key, progress)
    elif (labels.units is not None and 1.0 in labels.keep
          and labels.with_reference != (reference is not None)):
      raise SparsityError("the labels were started for another p = 1 column than the "
                          "reference given")
    keep, inputs, base_names = labels.keep, labels.inputs, labels.base_names
    if reference is not None:
      same = (np.array_equal(np.asarray(reference["clips"], str), inputs.clips)
              and np.array_equal(np.asarray(reference["fold_ids"]), inputs.fold_ids)
              and np.array_equal(np.asarray(reference["vocab"], str), inputs.vocab)
              and np.array_equal(np.asarray(reference["raw"]), inputs.full_raw))
      if not same:
        raise SparsityError("the Table 3 reference run has other clips, tags, counts or "
                            "folds than the sparsity experiment; use the same data set, "
                            "seed, min_users and num_folds")
      if int(config.sparsity.num_tags) > int(config.table3.num_tags):
        raise SparsityError(f"sparsity.num_tags ({config.sparsity.num_tags}) exceeds "
                            f"table3.num_tags ({config.table3.num_tags}), whose run gives "
                            "the p = 1 column")
    if labels.units is None:
      labels.start(reference is not None)
    units = labels.units
    settings = _protocol_settings(config)
    if pool is None and int(sp.get("processes", 0)) > 0:
      own_pool = pool = spawn_pool(int(sp.processes))
    bar = Progress(len(units), "sparsity", "draws", stream=sys.stderr if progress else None)
    jobs, models = {}, {}
    not_applicable, base_per_fold = {}, []
    try:
      for unit in labels.results():
        i, p, d = unit["i"], unit["p"], unit["d"]
        models[f"p={p:g} draw={d}"] = unit["info"]
        not_applicable.update(unit["reasons"])
        args = (inputs.features, unit["raw_thin"], unit["smoothed"], inputs.full_raw,
                inputs.fold_ids, inputs.tags, settings, unit["base"])
        jobs[i, d] = (pool.submit(score_unit, *args) if pool is not None
                      else score_unit(*args))
        bar.update(1)
      per_fold = []
      for i, p in enumerate(keep):
        if p == 1.0 and reference is not None:
          ref = reference["per_fold"]
          ref = np.asarray(ref() if callable(ref) else ref)[:len(inputs.tags)]
          per_fold.append(np.stack([ref[..., 0], ref[..., 0]], -1)[None])
          models[f"p={p:g} (Table 3)"] = reference.get("model", {})
          if base_names:
            base_per_fold.append(reference_baselines(reference, base_names,
                                                      len(inputs.tags)))
          continue
        draws = sorted(d for (k, d) in jobs if k == i)
        got = [jobs[i, d].result() if pool is not None else jobs[i, d] for d in draws]
        if base_names:
          base_per_fold.append(np.stack([g[1] for g in got]))
          got = [g[0] for g in got]
        per_fold.append(np.stack(got))
    finally:
      bar.close()
  finally:
    if labels is not None:
      labels.close()
    if own_pool is not None:
      own_pool.shutdown(cancel_futures=True)
  tag_names = [str(inputs.vocab[t]) for t in inputs.tags]
  usage = inputs.full_raw.sum(axis=0)[inputs.tags]
  summary = summarize(keep, per_fold, tag_names, usage)
  if base_names:
    trained = [n for n in base_names if n not in not_applicable]
    summary["baselines"] = summarize_baselines(
        keep, per_fold, [b[:, :, :, [base_names.index(n) for n in trained]]
                         for b in base_per_fold], trained)
    summary["baselines"]["not_applicable"] = not_applicable
  # from the labels' start (``start_labels`` may have started them earlier)
  seconds = round(time.monotonic() - min(start, labels.started), 2)
  notes = _notes(inputs, config, reference is not None) + [
      f"{len(units)} thinning draws (model selection, smoothing, SVMs) in {seconds:.0f} s."]
  paths = write_sparsity(summary, workdir, notes,
                         extra=dict(models=models, seconds=seconds,
                                    settings=dict(settings, num_folds=int(
                                        config.table3.num_folds),
                                                  search_every_draw=bool(
                                                      sp.search_every_draw))))
  _log(f"done in {seconds:.1f} s: " + "; ".join(
      f"p={p:g} diff(b) {d['mean']:+.2f} ± {d['se']:.2f}" for p, d in
      zip(keep, summary["tests"]["unthinned"]["diff"])))
  return {"summary": summary, "paths": paths, "models": models, "seconds": seconds}


def _notes(inputs: SparsityInputs, config, with_reference: bool) -> List[str]:
  sp = config.sparsity
  notes = [
      f"{len(inputs.clips)} clips, {len(inputs.tags)} tags, {int(config.table3.num_folds)} "
      f"folds grouped by album (fallback track): the same folds as Table 3.",
      "Thinning keeps each player's tag with probability p (n' ~ Binomial(n, p)); the "
      "embedded MajorMiner data hold only verified tags (n >= 2), so a thinned count of 1 "
      "comes from a tag once verified: unverified single-player tags of a real sparser "
      "game are absent here.",
      "Smoothing CRBM per draw: trained on one observation per clip (the tags at least one "
      "kept player gave), conditioned on the learnable auxiliary groups (MajorMiner: "
      "track; the clip has one observation and cannot be validated), chosen by validation "
      "search" + ("" if sp.search_every_draw else
                  " on the first draw of each p and retrained with those settings on the "
                  "others") + ".",
      "Paired difference: per (draw, tag, fold) where both were scored; resolution = 2 "
      "s.e. of the paired difference over tags (a 2-point difference is detectable when "
      "the resolution is <= 2).",
  ]
  if with_reference:
    notes.append("p = 1 is Table 3's MajorMiner run (its CRBM, labels and SVM scores); "
                 "at p = 1 tests (a) and (b) coincide.")
  return notes
