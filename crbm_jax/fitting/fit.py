"""Fit a CRBM to a tag table: the step under ``crbm-fit`` (and ``crbm-smooth --train``,
``crbm-autotag train --labels smoothed``).

``fit_tag_table(tags, workdir)`` checks its settings and every destination before any
work, reads and splits the table (``inputs.prepare_fit_data``), runs the validation search
(``learn.select.fit_and_compare``: per-model early stopping and successive halving, or
exactly the given configuration), evaluates the chosen model once on test against the
best unconditional model and the factored baseline, and publishes one run folder
(``util.runs.publish_run``: model/, metrics.json, search.csv, history.csv,
learning_curve.png) made current atomically. The selection criterion is pluggable:
``make_evaluate(config) -> evaluate_fn(params_block, val) -> [M]`` (higher is better;
default: balanced validation pseudo-likelihood, ``learn.block.make_block_evaluate``).
"""
from __future__ import annotations

import os
import time
from typing import Callable, Optional, Sequence

import numpy as np

from crbm_jax.configs import search as search_spec
from crbm_jax.fitting import report
from crbm_jax.fitting.inputs import (InputError, Log, check_hparams, prepare_fit_data,
                                     reduce_seed)
from crbm_jax.util import compile_cache

# The search space of ``crbm-fit --search`` (a 512-point grid; ``--search_configs`` of
# them are tried, with per-model early stopping and successive halving): the searched
# hyperparameters of the one search spec (``configs/search.py``). The ranges were set
# before any benchmark; experiments/bench_fit.py compares the default search with an
# exhaustive search of the whole grid.
# The validation observations the search's criterion reads at most (a seeded random
# subset when there are more; 0 = all): the criterion's cost is rows x tags x hidden units
# per model and evaluation, ~35 s for 4 models on 40,000 rows x 2,000 tags on the 2-core
# machine, which a time budget could not pay for at a million rows. Every data set the
# paper's tables use has fewer validation observations (docs/scaling.md).
SEARCH_VAL_ROWS = 10_000
# Observations whose dense float32 Datasets (all rows x tags x 4 bytes) would pass this
# are kept sparse end to end: CSR on the host, padded tag indices on the device, made
# dense one minibatch (or one evaluation chunk) at a time (docs/scaling.md).
SPARSE_BYTES = 512 * 2 ** 20
SEARCHED = ("num_hidden", "learning_rate", "l1_aux", "aux_lr_scale", "weight_decay")
SEARCH_DEFAULTS = {name: search_spec.SPACE_DEFAULTS[name] for name in SEARCHED}
def flag_of(name: str) -> str:
  """The crbm-fit flag of a searched hyperparameter."""
  return "--hidden" if name == "num_hidden" else f"--{name}"


def around(name: str, value) -> tuple:
  """The values searched around a flag given with --search: the value and its neighbours
  in the spec's default list (the nearest one below and the nearest one above; the two
  nearest when it lies outside the list's range)."""
  cast = int if name == "num_hidden" else float
  grid = sorted(SEARCH_DEFAULTS[name])
  below = [v for v in grid if v < value]
  above = [v for v in grid if v > value]
  near = below[-1:] + above[:1]
  if not below:
    near = above[:2]
  elif not above:
    near = below[-2:]
  return tuple(sorted({cast(value), *near}))


def check_fit_options(*, num_hidden: int, num_epochs: int, learning_rate: float,
                      momentum: float, weight_decay: float, l1_aux: float,
                      aux_lr_scale: float, batch_size: int, cd_k: int, min_users: int,
                      top_tags: int, search_configs: int, search_seconds: float,
                      patience: int, tol: float, eval_every: int,
                      learner: str = "cd") -> None:
  """InputError (one line naming the flags) unless every setting is usable."""
  from crbm_jax.learn import engine  # pylint: disable=import-outside-toplevel
  if learner not in engine.LEARNERS:
    raise InputError(f"--learner {learner!r}: use one of {', '.join(engine.LEARNERS)}")
  if min(num_hidden, num_epochs, batch_size, cd_k, min_users) < 1 or top_tags < 0:
    raise InputError("--hidden, --num_epochs, --batch_size, --cd_k and --min_users must "
                     "be >= 1 and --top_tags >= 0")
  check_hparams(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay,
                l1_aux=l1_aux, aux_lr_scale=aux_lr_scale)
  if patience < 1 or eval_every < 1 or search_configs < 1 or not (
      np.isfinite(search_seconds) and search_seconds >= 0) or not (
      np.isfinite(tol) and tol >= 0):
    raise InputError("--patience, --eval_every and --search_configs must be >= 1, --tol a "
                     "finite number >= 0 and --search_seconds a finite number >= 0 (0 = "
                     f"no limit; got {search_seconds:g})")


def search_plan(search: bool, search_space: Optional[dict], search_configs: int, *,
                num_hidden: int, learning_rate: float, l1_aux: float, aux_lr_scale: float,
                weight_decay: float, batch_size: int, momentum: float,
                around_given: Sequence[str] = ()):
  """(SearchSpace, Halving or None, configurations to try or None, what it does in
  words): the ``search_space`` lists (default SEARCH_DEFAULTS, each value checked) with
  successive halving, or exactly the given configuration (then ``search_space`` must be
  empty: an InputError names the list given). ``around_given``: searched
  hyperparameters given as single values (``--learning_rate`` with ``--search``): the
  search tries values around them (``around``) instead of its default list; one also
  given as a list (``--search_learning_rate``) is an InputError."""
  from crbm_jax.learn import search as search_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn.base import HPARAM_RANGES  # pylint: disable=import-outside-toplevel
  if not search:
    if search_space:
      name = next(iter(search_space))
      raise InputError(f"--search_{name} given with --nosearch, which trains one "
                       f"configuration: give {flag_of(name)} instead (or drop --nosearch)")
    point = search_lib.Point(num_hidden, learning_rate, momentum, weight_decay, l1_aux,
                             aux_lr_scale, batch_size)
    return (search_lib.SearchSpace.of_point(point), None, None,
            "training the given configuration")
  given = dict(search_space or {})
  values = dict(num_hidden=num_hidden, learning_rate=learning_rate, l1_aux=l1_aux,
                aux_lr_scale=aux_lr_scale, weight_decay=weight_decay)
  for name in around_given:
    if name in given:
      raise InputError(f"{flag_of(name)} and --search_{name} both given; with --search "
                       f"give the list --search_{name} (or one value {flag_of(name)} to "
                       "search around it)")
    given[name] = around(name, values[name])
  space = search_lib.SearchSpace(
      **{name: tuple(given.get(name, default)) for name, default in SEARCH_DEFAULTS.items()},
      batch_size=(batch_size,), momentum=(momentum,))
  for name, values in space._asdict().items():
    if name in HPARAM_RANGES:
      for value in values:
        check_hparams(prefix="--search_", **{name: value})
  what = (f"searching {min(search_configs or space.size(), space.size())} of "
          f"{space.size()} configurations")
  return space, search_lib.Halving(), search_configs, what


def _divergence(at: str, lr: float, scale: float, search: bool, has_groups: bool):
  """The DivergenceError that names what to lower."""
  from crbm_jax.learn.search import DivergenceError  # pylint: disable=import-outside-toplevel
  lowered = "--learning_rate" if not search else "the --search_learning_rate values"
  scaled = "--aux_lr_scale" if not search else "the --search_aux_lr_scale values"
  return DivergenceError(
      f"training diverged {at} (validation pseudo-likelihood non-finite or far below the "
      f"untrained model's); lower {lowered} (now {lr:g})"
      + (f" or {scaled} (now {scale:g})" if has_groups else "")
      + "; nothing was saved" + ("" if search else
                                 " (--allow_divergence keeps the best epoch before it)"))


def _balanced_pl(params, data, chunk_size: int):
  import jax  # pylint: disable=import-outside-toplevel
  from crbm_jax.model import pseudolikelihood as pl  # pylint: disable=import-outside-toplevel
  return jax.jit(pl.balanced_log_pl, static_argnums=2)(params, data, chunk_size)


def _train_statistics(params, train, obs, split) -> tuple:
  """(balanced training PL, fraction of zero W_aux entries in rows seen in training)."""
  # fused over chunks of rows (the [N, V] per-bit values are never stored) and jitted
  train_pl = float(_balanced_pl(params, train, 64))
  w_aux = np.asarray(params.W_aux)
  used_rows = np.unique(obs.aux[split.train][obs.aux[split.train] >= 0])
  zero_fraction = float(np.mean(w_aux[used_rows] == 0)) if used_rows.size else float("nan")
  return train_pl, zero_fraction


def over_budget_note(budget_seconds: Optional[float], seconds: float,
                     first_round_seconds: Optional[float], log: Log) -> bool:
  """Says in the log why a search ran past ``--search_seconds`` (True when it did, by more
  than 5% + 1 s): the budget is checked between training segments (``engine.run_host``),
  but compilation, the data preparation, the first segment and the evaluation that closes
  a round run whole once started."""
  if not budget_seconds or seconds <= budget_seconds * 1.05 + 1.0:
    return False
  first = ("" if first_round_seconds is None else
           f"; the first round alone ended after {first_round_seconds:.1f} s")
  log(f"crbm-fit: the search took {seconds:.1f} s of a --search_seconds "
      f"{budget_seconds:g} budget: the budget is checked between training segments, and "
      f"the data preparation, compilation, the first segment and each evaluation run "
      f"whole once started{first}. Fewer --search_configs, fewer validation rows or a "
      "warm compilation cache shorten them")
  return True


def budget_notes(results: dict) -> list:
  """Lines saying where the time budget stopped a search (``select_model``'s results:
  batch size -> (configs, SearchResult)): the epoch it cut, the models never trained."""
  lines = []
  for batch, (configs, result) in sorted(results.items()):
    cut = getattr(result, "budget_cut", None)
    if cut is not None:
      epoch, done, steps = cut
      lines.append(f"the --search_seconds budget ran out in epoch {epoch + 1} after "
                   f"{done:,} of its {steps:,} steps (batch {batch}): the models were "
                   "evaluated there and stopped ('budget' in search.csv)")
    skipped = getattr(result, "skipped", 0)
    if skipped:
      lines.append(f"{skipped} of the {len(configs)} models of batch {batch} were never "
                   "trained: the budget was spent before their chunk (memory plan); "
                   "raise --search_seconds or --memory_gb, or lower --search_configs")
  return lines


def fit_tag_table(tags: str, workdir: str, *, aux: str = "auto", num_hidden: int = 64,
                  num_epochs: int = 300, learning_rate: float = 0.05, momentum: float = 0.5,
                  weight_decay: float = 1e-4, l1_aux: float = 0.0,
                  aux_lr_scale: float = 10.0, batch_size: int = 100, cd_k: int = 1,
                  min_users: int = 2, top_tags: int = 0, seed: int = 0,
                  canonicalize: bool = True, search: bool = True,
                  search_configs: int = 96, search_seconds: float = 0.0,
                  search_space: Optional[dict] = None, patience: int = 8,
                  tol: float = 1e-4, eval_every: int = 1, allow_divergence: bool = False,
                  show_progress: bool = True, ignored_flags: Sequence[str] = (),
                  fmt: str = "auto", format_options: Optional[dict] = None,
                  make_evaluate: Optional[Callable] = None, learner: str = "cd",
                  log: Log = print, memory_gb: float = 0.0,
                  search_val_rows: int = SEARCH_VAL_ROWS) -> dict:
  """Tag table -> vocabulary, aux indices, 60/20/20 split, a validation search (or the
  given configuration) with per-model early stopping, one test evaluation of the chosen
  model against the best unconditional model and the factored baseline; writes one run
  folder (model, metrics.json, search.csv, history.csv, learning_curve.png) made current
  atomically.

  Args:
    num_epochs: the most epochs a model trains (early stopping usually stops it first).
    search: search ``search_space`` (default ``SEARCH_DEFAULTS``) for ``search_configs``
      configurations (or until ``search_seconds``, if > 0); False trains exactly the given
      hyperparameters.
    ignored_flags: searched hyperparameters the user gave as one value: the search tries
      values around each (``around``; logged).
    learner: the learning algorithm by name ('cd', 'pcd', 'pt'; ``engine.LEARNERS``).
    make_evaluate: the validation criterion's factory (module docstring; hashable, since
      compiled searches are cached on it); None: balanced pseudo-likelihood.
    memory_gb: the memory budget (0: a share of RAM); ``learn.plan`` chunks the models
      and validation rows to fit it, or refuses in one line before training.
    search_val_rows: the search (and the reported validation figures) reads at most this
      many validation observations, a random subset drawn with ``seed`` (0: all).
  Returns:
    the metrics dict written to metrics.json.
  Raises:
    InputError: a bad setting or input (one line; nothing written).
    DivergenceError: the chosen model diverged (unless ``allow_divergence``).
  """
  import jax  # pylint: disable=import-outside-toplevel
  from crbm_jax import learn  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import block as block_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import engine  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import search as search_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import select as select_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn.search import DivergenceError  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel

  start_time = time.time()
  clock = compile_cache.CompileClock()
  check_fit_options(num_hidden=num_hidden, num_epochs=num_epochs,
                    learning_rate=learning_rate, momentum=momentum,
                    weight_decay=weight_decay, l1_aux=l1_aux, aux_lr_scale=aux_lr_scale,
                    batch_size=batch_size, cd_k=cd_k, min_users=min_users,
                    top_tags=top_tags, search_configs=search_configs,
                    search_seconds=search_seconds, patience=patience, tol=tol,
                    eval_every=eval_every, learner=learner)
  seed = reduce_seed(seed)
  from crbm_jax.learn import plan as plan_lib  # pylint: disable=import-outside-toplevel
  try:
    budget = plan_lib.budget_from_gb(memory_gb)
  except plan_lib.PlanError as e:
    raise InputError(str(e)) from None
  workdir = runs_lib.check_workdir(workdir)  # every destination, before any work
  data = prepare_fit_data(tags, aux, min_users=min_users, top_tags=top_tags, seed=seed,
                          canonicalize=canonicalize, fmt=fmt,
                          format_options=format_options, log=log,
                          max_elements=plan_lib.INT32_MAX,
                          sparse_above=SPARSE_BYTES // 4)
  obs, split, groups = data
  max_tags = None
  if obs.sparse:
    max_tags = int(np.diff(obs.X.indptr).max())
    log(f"crbm-fit: the observations are kept sparse ({obs.num_observations:,} x "
        f"{obs.num_visible:,} tags, {len(obs.X.indices):,} tags set, at most {max_tags} a "
        f"row; dense float32 they would be "
        f"{4 * obs.num_observations * obs.num_visible / 2 ** 30:.1f} GB > "
        f"{SPARSE_BYTES / 2 ** 30:.1f} GB): minibatches and evaluation chunks are made "
        "dense on the device")
  if search_val_rows < 0:
    raise InputError(f"--search_val_rows must be >= 0 (0 = all), got {search_val_rows}")
  val_rows = np.asarray(split.val)
  if search_val_rows and len(val_rows) > search_val_rows:
    val_rows = np.sort(np.random.default_rng([seed, 28]).choice(
        val_rows, search_val_rows, replace=False))
    log(f"crbm-fit: the search validates on {len(val_rows):,} of the {len(split.val):,} "
        "validation observations (a random subset; --search_val_rows)")
  if batch_size > len(split.train):
    log(f"crbm-fit: --batch_size {batch_size} is more than the {len(split.train)} "
        f"training observations; using batches of {len(split.train)}")
    batch_size = len(split.train)

  def dataset(idx):
    if obs.sparse:
      from crbm_jax.model.sparse_rows import from_csr  # pylint: disable=import-outside-toplevel
      rows = obs.csr(idx)
      return learn.make_sparse_dataset(
          from_csr(rows.indptr, rows.indices, obs.num_visible), obs.aux[idx])
    return learn.make_dataset(obs.X[idx], obs.aux[idx])

  rule = search_lib.StopRule(patience=patience, tol=tol, num_epochs=num_epochs,
                             eval_every=eval_every)
  base = learn.TrainConfig(num_hidden=num_hidden, cd_k=cd_k, batch_size=batch_size)
  space, halving, num_configs, what = search_plan(
      search, search_space, search_configs, num_hidden=num_hidden,
      learning_rate=learning_rate, l1_aux=l1_aux, aux_lr_scale=aux_lr_scale,
      weight_decay=weight_decay, batch_size=batch_size, momentum=momentum,
      around_given=ignored_flags if search else ())
  if search and ignored_flags:
    log(f"crbm-fit: --search chooses {', '.join(map(flag_of, ignored_flags))} around "
        "the values given: " + "; ".join(
            f"{f} {', '.join(f'{v:g}' for v in getattr(space, f))}" for f in ignored_flags)
        + " (pass --nosearch to train exactly them)")
  log(f"crbm-fit: {obs.num_observations} observations x {obs.num_visible} tags, aux groups "
      f"{list(groups) or 'none'} ({obs.num_aux} entities); {what} with early stopping "
      f"(patience {patience} evaluations, tol {tol:g}, at most {num_epochs} epochs)")
  memory = plan_lib.plan_search(
      select_lib.search_models(space, num_configs, bool(groups), seed), obs.num_observations,
      obs.num_visible, max(space.num_hidden), obs.num_aux, batch_size, budget,
      num_val_rows=len(val_rows), num_train_rows=len(split.train),
      num_test_rows=len(split.test),
      num_groups=len(groups), eval_chunk=base.eval_chunk, chunk_rows=make_evaluate is None,
      max_tags=max_tags)
  if not memory.fits:
    raise InputError(f"{memory.message}; nothing was trained")
  log(f"crbm-fit: {memory.describe()}")
  train, val, test = dataset(split.train), dataset(val_rows), dataset(split.test)
  budget_seconds = search_seconds
  if search_seconds:  # the budget covers the data preparation too
    search_seconds = max(search_seconds - (time.time() - start_time), 1e-3)
  throttled = report.throttled("crbm-fit") if show_progress else None
  first_round = []

  def progress(message: str) -> None:
    if not first_round:  # the first evaluation: everything before it was mostly compiling
      first_round.append(time.time() - start_time)
      log(f"crbm-fit: first round done after {first_round[0]:.1f} s ({clock.line()})")
    if throttled is not None:
      throttled(message)

  try:
    comparison = select_lib.fit_and_compare(
        jax.random.key(seed), train, val, test, obs.num_aux, space, rule=rule,
        num_configs=num_configs, seconds=search_seconds or None, halving=halving,
        base=base, seed=seed, progress=progress,
        make_evaluate=make_evaluate or plan_lib.make_evaluate_for(
            memory, block_lib.make_block_evaluate),
        learner=engine.learner_factory(learner),
        models_per_chunk=memory.models_per_chunk if memory.num_chunks > 1 else None)
  except DivergenceError:
    raise _divergence("in the first epoch", max(space.learning_rate),
                      max(space.aux_lr_scale), search, bool(groups)) from None
  for line in budget_notes(comparison.selected.results):
    log(f"crbm-fit: {line}")
  over_budget_note(budget_seconds, time.time() - start_time,
                   first_round[0] if first_round else None, log)
  point, curve = comparison.selected.point, comparison.curve
  if curve["stopped"] == "diverged" and not allow_divergence:
    raise _divergence(f"at epoch {curve['epochs']}", point.learning_rate,
                      point.aux_lr_scale, search, bool(groups))
  params = comparison.selected.params
  train_pl, zero_fraction = _train_statistics(params, train, obs, split)
  metrics = report.fit_metrics(
      comparison, data, search=search,
      space=({k: list(getattr(space, k)) for k in SEARCH_DEFAULTS} if search else None),
      search_fields=search_lib.SPACE_FIELDS, train_pl=train_pl,
      zero_fraction=zero_fraction, seconds=time.time() - start_time)
  timing = clock.split()
  metrics.update(compile_seconds=round(timing["compile_seconds"], 2),
                 compute_seconds=round(timing["compute_seconds"], 2),
                 compiled_programs=timing["compiles"], cache_hits=timing["cache_hits"],
                 first_round_seconds=round(first_round[0], 2) if first_round else None,
                 num_val_searched=int(len(val_rows)))
  run_config = {
      "tags": os.path.abspath(tags), "aux": list(groups),
      **point.training(), "num_hidden": int(point.num_hidden),
      "batch_size": int(point.batch_size), "num_epochs": num_epochs,
      "cd_k": cd_k, "min_users": min_users, "top_tags": top_tags, "seed": seed,
      "canonicalize": canonicalize, "split_fractions": [0.6, 0.2, 0.2],
      "search": bool(search), "learner": learner, "patience": patience, "tol": tol,
      "eval_every": eval_every,
  }
  # One run folder (model, metrics.json and any extra outputs) made current atomically.
  run_dir = runs_lib.publish_run(
      workdir, params, vocab=obs.vocab, display=obs.display, groups=obs.groups,
      entity_names=obs.entity_names, offsets=obs.offsets, config=run_config,
      metrics=metrics, files=report.run_files(comparison, tags))
  for line in report.fit_summary(metrics, comparison):
    log(f"crbm-fit: {line}")
  log(f"crbm-fit: {clock.line()}")
  log(f"crbm-fit: wrote {run_dir} (model/, {report.METRICS_FILE}); "
      f"{os.path.join(workdir, runs_lib.CURRENT)} points to it")
  return metrics
