"""Console scripts for crbm_jax: crbm-fit, crbm-smooth, crbm-cooccurrence.

  python -m crbm_jax.cli fit --tags=tags.tsv --workdir=run1
  python -m crbm_jax.cli smooth --workdir=run1 --tags=tags.tsv --out=run1/smoothed.tsv
  python -m crbm_jax.cli cooccurrence --tags=tags.tsv --workdir=run1/table1
  python -m crbm_jax.cli <tool> --help

Each tool is an importable function (``run_fit``, ``run_smooth``, ``run_cooccurrence``)
and a thin absl entry point (``fit_main``, ...). Each entry point defines only its own
flags, when it runs, so importing this module defines none. Bad input ends the tool
with one line on stderr saying what to do and exit status 1; outputs are written
atomically, so a failed run leaves no partial file in the work directory.
"""
from __future__ import annotations

import gzip
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
from absl import app
from absl import flags

from crbm_jax.data import aux_rows
from crbm_jax.data.errors import DataError
from crbm_jax.data.observations import AUX_COLUMNS, ObservationError
from crbm_jax.data.splits import SplitError
from crbm_jax.data.tagtable import is_tsv, table_bytes
from crbm_jax.learn.base import HPARAM_RANGES, check_hparams as base_check_hparams
from crbm_jax.learn.search import DivergenceError
from crbm_jax.model import marginals
from crbm_jax.util import model_io
from crbm_jax.util import interrupt
from crbm_jax.util import runs as runs_lib
from crbm_jax.util.atomic import write_bytes_atomic

MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
DEFAULT_AUX = ("user", "track", "clip")


class CLIError(ValueError):
  """A bad command line or input, said in one line with what to do."""


USER_ERRORS = (CLIError, DataError, ObservationError, SplitError, DivergenceError,
               model_io.ModelFormatError, marginals.SmoothingError,
               runs_lib.DestinationError, OSError)

SEED_MODULUS = 2 ** 32  # jax.random.key and numpy take seeds in [0, 2**32)


def reduce_seed(seed: int) -> int:
  """Any integer a user types as a PRNG seed, reduced deterministically: ``seed mod
  2**32`` (Python's modulo, so -1 -> 4294967295; seeds 0..2**32-1 are unchanged)."""
  try:
    value = int(seed)
  except (TypeError, ValueError, OverflowError):
    raise CLIError(f"--seed {seed!r} is not an integer") from None
  if value != seed and not isinstance(seed, (int, np.integer)):
    raise CLIError(f"--seed {seed!r} is not an integer")
  return value % SEED_MODULUS


def check_hparams(*, prefix: str = "--", error=None, **values) -> None:
  """``learn.base.check_hparams`` raising CLIError (one line) by default."""
  base_check_hparams(prefix=prefix, error=error or CLIError, **values)


# -- helpers ----------------------------------------------------------------------------

def parse_aux_groups(spec: str, columns: Sequence[str], source: str) -> tuple:
  """--aux value -> group names; 'auto': user, track, and clip (when there are users) as
  the table has them; 'none' or '': no auxiliary input."""
  spec = spec.strip().lower()
  if spec == "auto":  # without users a clip is one observation: its bias would memorise it
    return tuple(g for g in DEFAULT_AUX if g in columns and (g != "clip" or "user" in columns))
  if spec in ("", "none"):
    return ()
  groups = tuple(g.strip() for g in spec.split(",") if g.strip())
  for g in groups:
    if g not in AUX_COLUMNS:
      raise CLIError(f"unknown auxiliary group {g!r} in --aux; choose from "
                     f"{','.join(AUX_COLUMNS)} (or 'auto' or 'none')")
    if g not in columns:
      raise CLIError(f"--aux asks for {g!r} but {source} has no {g!r} column (columns: "
                     f"{','.join(columns)}); leave {g!r} out of --aux")
  if len(set(groups)) != len(groups):
    raise CLIError(f"--aux repeats a group: {spec!r}")
  return groups


def parse_factor_out(spec: str) -> tuple:
  groups = tuple(g.strip() for g in spec.split(",") if g.strip())
  for g in groups:
    if g not in AUX_COLUMNS:
      raise CLIError(f"unknown auxiliary group {g!r} in --factor_out; choose from "
                     f"{','.join(AUX_COLUMNS)}")
  return groups


def _canonical(table, canonicalize: bool):
  """(table with canonical tags, {tag: display form}); identity when not canonicalising."""
  if canonicalize:
    from crbm_jax.data import canonical  # pylint: disable=import-outside-toplevel
    return canonical.canonicalize_table(table)
  return table, {t: t for t in np.unique(table.tag).tolist()}




def check_output_file(path: str, flag: str) -> None:
  """Before any work: ``path`` can be written as a file (one line saying what to do)."""
  if os.path.isdir(path):
    raise CLIError(f"{flag} {path} is a folder; give a file name (e.g. "
                   f"{os.path.join(path, 'smoothed.tsv')})")
  out_dir = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(out_dir):
    raise CLIError(f"{flag} {path}: folder {out_dir} does not exist; create it first")
  if not os.access(out_dir, os.W_OK | os.X_OK) or (
      os.path.exists(path) and not os.access(path, os.W_OK)):
    raise CLIError(f"{flag} {path}: cannot write there (permission denied); choose a "
                   "place you can write to")


format_table = table_bytes  # TSV or CSV bytes by the extension of a path; .gz compresses


# -- crbm-fit ---------------------------------------------------------------------------

# The search space of ``crbm-fit --search`` (a 512-point grid; ``--search_configs`` of
# them are tried, with per-model early stopping and successive halving). The ranges were
# set before any benchmark; experiments/bench_fit.py compares the default search with an
# exhaustive search of the whole grid.
SEARCH_DEFAULTS = {
    "num_hidden": (16, 32, 64, 128),
    "learning_rate": (0.01, 0.03, 0.1, 0.3),
    "l1_aux": (0.0, 1e-4, 1e-3, 1e-2),
    "aux_lr_scale": (1.0, 10.0, 30.0, 100.0),
    "weight_decay": (0.0, 1e-4),
}
SEARCH_COLUMNS = ("conditioned", "num_hidden", "learning_rate", "l1_aux", "aux_lr_scale",
                  "weight_decay", "batch_size", "momentum", "best_val_pl", "best_epoch",
                  "epochs", "stopped")


def _cell(value) -> str:
  """A table cell: '' for None / non-finite numbers, 6 significant digits for floats."""
  if value is None or (isinstance(value, float) and not np.isfinite(value)):
    return ""
  if isinstance(value, (bool, np.bool_)):
    return "1" if value else "0"
  if isinstance(value, (float, np.floating)):
    return f"{value:.6g}"
  return str(value)


def _throttled(prog: str, every: float = 5.0) -> Callable[[str], None]:
  """A progress callback printing at most one line per ``every`` seconds to stderr."""
  last = [0.0]

  def report(message: str) -> None:
    now = time.time()
    if now - last[0] >= every:
      last[0] = now
      print(f"{prog}: {message}", file=sys.stderr, flush=True)
  return report


def fit_summary(metrics: dict, comparison) -> list:
  """The lines crbm-fit logs: what was chosen, why it stopped, the honest comparison."""
  chosen = metrics["selected"]
  lines = []
  if metrics["search"]:
    lines.append(f"searched {metrics['configurations_tried']} configurations in "
                 f"{metrics['search_seconds']:.1f} s; selected on validation: hidden "
                 f"{chosen['num_hidden']}, learning rate {chosen['learning_rate']:g}, L1 "
                 f"{chosen['l1_aux']:g}, aux_lr_scale {chosen['aux_lr_scale']:g}, weight "
                 f"decay {chosen['weight_decay']:g}")
  why = {"converged": "validation PL stopped improving (patience exhausted)",
         "max_epochs": "it reached --epochs (raise --epochs: it may not have converged)",
         "halved": "successive halving stopped it", "budget": "the time budget ran out",
         "diverged": "it diverged (kept the best epoch before; --allow_divergence)"}
  space = metrics.get("search_space") or {}
  for name, values in space.items():
    value = chosen.get(name)
    if len(values) > 1 and value in (min(values), max(values)) and value != 0:
      side = "largest" if value == max(values) else "smallest"
      flag = f"--search_{name}"
      lines.append(f"the chosen {name} {value:g} is the {side} value searched; the best may "
                   f"lie beyond it: add {'larger' if side == 'largest' else 'smaller'} values "
                   f"to {flag}")
  lines.append(f"training stopped after {metrics['epochs_trained']} epochs because "
               f"{why.get(metrics['stopped'], metrics['stopped'])}; best epoch "
               f"{metrics['best_epoch'] + 1}")
  test = comparison.test
  lines.append(f"test balanced log pseudo-likelihood: CRBM {test['crbm']:.4f}"
               + (f", unconditional RBM {test['unconditional']:.4f}"
                  if "unconditional" in test else "")
               + f", factored baseline {test['baseline']:.4f}")
  for name, d in comparison.differences.items():
    a, b = name.split("_minus_")
    z = d["difference"] / d["stderr"] if d["stderr"] and np.isfinite(d["stderr"]) else 0.0
    verdict = ("better" if z > 2 else "worse" if z < -2 else "not distinguishable (|z| < 2)")
    lines.append(f"  {a} - {b}: {d['difference']:+.4f} +/- {d['stderr']:.4f} (paired s.e. "
                 f"over test observations): {a} is {verdict}")
  return lines


class FitData(NamedTuple):
  """A tag table made ready for training: observations, their split, the groups."""
  obs: object        # data.observations.Observations
  split: object      # data.splits.Split (train / val / test indices)
  groups: tuple      # auxiliary groups


def prepare_fit_data(tags: str, aux: str = "auto", *, min_users: int = 2,
                     top_tags: int = 0, seed: int = 0, canonicalize: bool = True,
                     fmt: str = "auto", format_options: Optional[dict] = None,
                     log: Callable[[str], None] = print) -> FitData:
  """What crbm-fit trains on: the table read (any format), canonicalised, its vocabulary,
  observations and the 60/20/20 split with every auxiliary entity in training. Raises
  CLIError (one line) when the table cannot give a split."""
  from crbm_jax.data import observations as obs_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.splits import random_split  # pylint: disable=import-outside-toplevel

  table = load_tags(tags, fmt, format_options, log, "crbm-fit")
  if table.num_rows == 0:
    raise CLIError(f"{tags}: the table has a header but no rows; add one row per "
                   "(clip, [user], tag)")
  groups = parse_aux_groups(aux, table.columns(), tags)
  table, surface = _canonical(table, canonicalize)
  vocab = obs_lib.select_vocabulary(table, min_users=min_users, top_n=top_tags or None)
  holder = "users" if table.has("user") else "items"
  if len(vocab) == 0:
    raise CLIError(f"{tags}: no tag is used by >= {min_users} {holder}; lower --min_users")
  obs = obs_lib.build_observations(table, aux_groups=groups, vocab=vocab, display=surface)
  split = random_split(obs.aux, seed)
  if min(len(split.train), len(split.val), len(split.test)) == 0:
    if obs.num_observations < 5:
      raise CLIError(f"{tags}: {obs.num_observations} observations are too few for a "
                     "60/20/20 split; give more tagged items (or lower --min_users)")
    single = [g for g, col in zip(groups, obs.aux.T)
              if np.all(np.bincount(col[col >= 0]) <= 1)]
    raise CLIError(f"{tags}: the 60/20/20 split left no validation or test observation "
                   "because every auxiliary entity must be in training and "
                   f"{'group(s) ' + ','.join(single) if single else 'some entities'} occur "
                   "in one observation each; leave such groups out of --aux")

  return FitData(obs, split, groups)


def run_fit(tags: str, workdir: str, *, aux: str = "auto", num_hidden: int = 64,
            num_epochs: int = 300, learning_rate: float = 0.05, momentum: float = 0.5,
            weight_decay: float = 1e-4, l1_aux: float = 0.0, aux_lr_scale: float = 10.0,
            batch_size: int = 100, cd_k: int = 1, min_users: int = 2, top_tags: int = 0,
            seed: int = 0, canonicalize: bool = True, search: bool = True,
            search_configs: int = 96, search_seconds: float = 0.0,
            search_space: Optional[dict] = None, patience: int = 8, tol: float = 1e-4,
            eval_every: int = 1, allow_divergence: bool = False, show_progress: bool = True,
            ignored_flags: Sequence[str] = (), fmt: str = "auto",
            format_options: Optional[dict] = None,
            log: Callable[[str], None] = print) -> dict:
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
  Returns:
    the metrics dict written to metrics.json.
  Raises:
    DivergenceError: the chosen model diverged (unless ``allow_divergence``).
  """
  import jax  # pylint: disable=import-outside-toplevel
  from crbm_jax import learn  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import search as search_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import select as select_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.model import pseudolikelihood as pl  # pylint: disable=import-outside-toplevel

  start_time = time.time()
  if min(num_hidden, num_epochs, batch_size, cd_k, min_users) < 1 or top_tags < 0:
    raise CLIError("--hidden, --epochs, --batch_size, --cd_k and --min_users must be >= 1 "
                   "and --top_tags >= 0")
  check_hparams(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay,
                l1_aux=l1_aux, aux_lr_scale=aux_lr_scale)
  if patience < 1 or eval_every < 1 or search_configs < 1 or search_seconds < 0 or not (
      np.isfinite(tol) and tol >= 0):
    raise CLIError("--patience, --eval_every and --search_configs must be >= 1, --tol a "
                   "finite number >= 0 and --search_seconds >= 0")
  search_space = dict(search_space or {})
  seed = reduce_seed(seed)
  workdir = runs_lib.check_workdir(workdir)  # every destination, before any work
  data = prepare_fit_data(tags, aux, min_users=min_users, top_tags=top_tags, seed=seed,
                          canonicalize=canonicalize, fmt=fmt,
                          format_options=format_options, log=log)
  obs, split, groups = data.obs, data.split, data.groups
  if batch_size > len(split.train):
    log(f"crbm-fit: --batch_size {batch_size} is more than the {len(split.train)} "
        f"training observations; using batches of {len(split.train)}")
    batch_size = len(split.train)

  def dataset(idx):
    return learn.make_dataset(obs.X[idx], obs.aux[idx])

  train, val, test = dataset(split.train), dataset(split.val), dataset(split.test)
  rule = search_lib.StopRule(patience=patience, tol=tol, max_epochs=num_epochs,
                             eval_every=eval_every)
  base = learn.TrainConfig(num_hidden=num_hidden, cd_k=cd_k, batch_size=batch_size)
  if search:
    space = search_lib.SearchSpace(
        num_hidden=tuple(search_space.get("num_hidden", SEARCH_DEFAULTS["num_hidden"])),
        learning_rate=tuple(search_space.get("learning_rate",
                                             SEARCH_DEFAULTS["learning_rate"])),
        l1_aux=tuple(search_space.get("l1_aux", SEARCH_DEFAULTS["l1_aux"])),
        aux_lr_scale=tuple(search_space.get("aux_lr_scale",
                                            SEARCH_DEFAULTS["aux_lr_scale"])),
        weight_decay=tuple(search_space.get("weight_decay",
                                            SEARCH_DEFAULTS["weight_decay"])),
        batch_size=(batch_size,), momentum=(momentum,))
    for name, values in space._asdict().items():
      if name in HPARAM_RANGES:
        for value in values:
          check_hparams(prefix="--search_", **{name: value})
    halving = search_lib.Halving()
    what = (f"searching {min(search_configs or space.size(), space.size())} of "
            f"{space.size()} configurations")
  else:
    space = search_lib.SearchSpace(
        num_hidden=(num_hidden,), learning_rate=(learning_rate,), l1_aux=(l1_aux,),
        aux_lr_scale=(aux_lr_scale,), weight_decay=(weight_decay,),
        batch_size=(batch_size,), momentum=(momentum,))
    halving, search_configs = None, None
    what = "training the given configuration"
  if search and ignored_flags:
    log(f"crbm-fit: --search chooses {', '.join('--' + f for f in ignored_flags)}; the "
        "values given are not used (pass --nosearch to train exactly them)")
  log(f"crbm-fit: {obs.num_observations} observations x {obs.num_visible} tags, aux groups "
      f"{list(groups) or 'none'} ({obs.num_aux} entities); {what} with early stopping "
      f"(patience {patience} evaluations, tol {tol:g}, at most {num_epochs} epochs)")
  report = _throttled("crbm-fit") if show_progress else None
  def diverged(at: str, lr: float, scale: float) -> DivergenceError:
    lowered = "--learning_rate" if not search else "the --search_learning_rate values"
    scaled = "--aux_lr_scale" if not search else "the --search_aux_lr_scale values"
    return DivergenceError(
        f"training diverged {at} (validation pseudo-likelihood non-finite or far below the "
        f"untrained model's); lower {lowered} (now {lr:g})"
        + (f" or {scaled} (now {scale:g})" if groups else "")
        + "; nothing was saved" + ("" if search else
                                   " (--allow_divergence keeps the best epoch before it)"))

  try:
    comparison = select_lib.fit_and_compare(
        jax.random.key(seed), train, val, test, obs.num_aux, space, rule=rule,
        num_configs=search_configs, seconds=search_seconds or None, halving=halving,
        base=base, seed=seed, progress=report)
  except DivergenceError:
    raise diverged("in the first epoch", max(space.learning_rate),
                   max(space.aux_lr_scale)) from None
  selection = comparison.selected
  chosen = selection.config
  curve = comparison.curve
  if curve["stopped"] == "diverged" and not allow_divergence:
    raise diverged(f"at epoch {curve['epochs']}", chosen["learning_rate"],
                   chosen["aux_lr_scale"])
  params = selection.params
  per_bit = np.asarray(pl.pseudo_log_likelihood(params, train.v, train.aux))
  train_pl = float(pl.balanced_pseudo_likelihood(per_bit, train.v))
  w_aux = np.asarray(params.W_aux)
  used_rows = np.unique(obs.aux[split.train][obs.aux[split.train] >= 0])
  zero_fraction = float(np.mean(w_aux[used_rows] == 0)) if used_rows.size else float("nan")
  uncond = comparison.unconditional
  metrics = {
      "test_balanced_pl": comparison.test["crbm"],
      "baseline_test_balanced_pl": comparison.test["baseline"],
      "unconditional_test_balanced_pl": comparison.test.get("unconditional"),
      "val_balanced_pl": comparison.val["crbm"],
      "baseline_val_balanced_pl": comparison.val["baseline"],
      "unconditional_val_balanced_pl": comparison.val.get("unconditional"),
      "train_balanced_pl": train_pl,
      "test_differences": comparison.differences,
      "selected": {k: (bool(v) if k == "conditioned" else v) for k, v in chosen.items()},
      "unconditional": None if uncond is None else {
          k: uncond[k] for k in search_lib.SPACE_FIELDS if k != "conditioned"},
      "search": bool(search), "configurations_tried": len(comparison.table),
      "search_space": ({k: list(getattr(space, k)) for k in SEARCH_DEFAULTS}
                       if search else None),
      "search_seconds": round(selection.seconds, 2),
      "best_epoch": curve["best_epoch"], "epochs_trained": curve["epochs"],
      "stopped": curve["stopped"],
      "val_pl_by_evaluation": curve["val_pl"], "evaluation_epochs": curve["eval_epoch"],
      "recon_error_by_epoch": curve["recon_error"],
      "w_aux_zero_fraction": zero_fraction,
      "num_train": len(split.train), "num_val": len(split.val), "num_test": len(split.test),
      "num_observations": obs.num_observations, "num_dropped": obs.num_dropped,
      "num_visible": obs.num_visible, "num_hidden": int(chosen["num_hidden"]),
      "num_aux": obs.num_aux, "aux_groups": list(groups),
      "entities_per_group": {g: len(e) for g, e in zip(obs.groups, obs.entity_names)},
      "seconds": round(time.time() - start_time, 2),
  }
  run_config = {
      "tags": os.path.abspath(tags), "aux": list(groups),
      "num_hidden": int(chosen["num_hidden"]), "max_epochs": num_epochs,
      "learning_rate": chosen["learning_rate"], "momentum": chosen["momentum"],
      "weight_decay": chosen["weight_decay"], "l1_aux": chosen["l1_aux"],
      "aux_lr_scale": chosen["aux_lr_scale"], "batch_size": int(chosen["batch_size"]),
      "cd_k": cd_k, "min_users": min_users, "top_tags": top_tags, "seed": seed,
      "canonicalize": canonicalize, "split_fractions": [0.6, 0.2, 0.2],
      "search": bool(search), "patience": patience, "tol": tol, "eval_every": eval_every,
  }
  files = {
      "search.csv": format_table(SEARCH_COLUMNS, [[_cell(r[c]) for c in SEARCH_COLUMNS]
                                                  for r in comparison.table], "search.csv"),
      "history.csv": format_table(
          ["epoch", "recon_error", "val_pl"],
          [[e + 1, f"{r:.6g}", _cell(dict(zip(curve["eval_epoch"], curve["val_pl"])).get(e))]
           for e, r in enumerate(curve["recon_error"])], "history.csv"),
      "learning_curve.png": select_lib.learning_curve_png(
          curve, comparison.val["baseline"],
          f"crbm-fit on {os.path.basename(tags)}: H={chosen['num_hidden']}, "
          f"lr={chosen['learning_rate']:g}, L1={chosen['l1_aux']:g}, "
          f"aux_lr_scale={chosen['aux_lr_scale']:g}, wd={chosen['weight_decay']:g}"),
  }
  # One run folder (model, metrics.json and any extra outputs) made current atomically.
  run_dir = runs_lib.publish_run(
      workdir, params, vocab=obs.vocab, display=obs.display, groups=obs.groups,
      entity_names=obs.entity_names, offsets=obs.offsets, config=run_config,
      metrics=metrics, files=files)
  for line in fit_summary(metrics, comparison):
    log(f"crbm-fit: {line}")
  log(f"crbm-fit: wrote {run_dir} (model/, {METRICS_FILE}); "
      f"{os.path.join(workdir, runs_lib.CURRENT)} points to it")
  return metrics


# -- crbm-smooth ------------------------------------------------------------------------

def run_smooth(workdir: str, tags: str, out: str, *, num_samples: int = 1000,
               method: str = "sample", factor_out: Sequence[str] = ("user",),
               burn_in: int = 100, thin: int = 1, seed: int = 0, batch: int = 64,
               fmt: str = "auto", format_options: Optional[dict] = None,
               train: bool = False, fit_options: Optional[dict] = None,
               aux_effect: bool = True, log: Callable[[str], None] = print) -> dict:
  """Smoothed affinities of every clip of a tag table under the model of ``workdir``'s
  current run (``runs.load_run_model``).

  Writes ``out`` (columns clip, [track], tag, affinity, display). A clip's auxiliary row
  uses the model's entity names; entities the model does not know are left out and
  counted. With ``train``, first trains the model on ``tags`` with ``run_fit`` (its
  validation search; ``fit_options`` are passed on). With ``aux_effect``, reports how much
  each auxiliary group moves the affinities: the mean over clips and tags of
  |affinity − affinity without that group's row|, computed by mean field (deterministic,
  so no Monte-Carlo noise enters the difference). Returns a summary dict.
  """
  import jax  # pylint: disable=import-outside-toplevel

  if method not in marginals.METHODS:
    raise CLIError(f"unknown --method {method!r}; choose from {','.join(marginals.METHODS)}")
  if num_samples < 1 or burn_in < 0 or thin < 1 or batch < 1:
    raise CLIError("--samples, --thin and --batch must be >= 1 and --burn_in >= 0")
  seed = reduce_seed(seed)
  check_output_file(out, "--out")
  if train:
    options = dict(fit_options or {})
    options.setdefault("aux", "auto")
    log(f"crbm-smooth: training a model on {tags} first (crbm-fit's validation search)")
    run_fit(tags, workdir, seed=seed, fmt=fmt, format_options=format_options, log=log,
            **options)
  elif not _has_model(workdir):
    raise CLIError(f"--workdir {workdir} holds no model; train one with crbm-fit, or pass "
                   "--train to train one on --tags first")
  model = runs_lib.load_run_model(workdir)
  factor_out = tuple(factor_out)
  if "user" in model.groups and "user" not in factor_out:
    raise CLIError("the model conditions on users and a clip has many users; smooth with "
                   "the user factored out (--factor_out=user)")
  table = load_tags(tags, fmt, format_options, log, "crbm-smooth")
  clips, first = np.unique(table.clip, return_index=True)
  names = list(clips) + (list(table.track) if table.has("track") else [])
  if is_tsv(out, "\t") and any("\t" in c or "\n" in c or "\r" in c for c in names):
    raise CLIError(f"a clip or track name holds a tab or line break, which TSV cannot "
                   f"hold; write a .csv --out instead of {out}")
  values, missing_columns = {}, []
  for g in model.groups:
    if g in factor_out:
      continue
    if g == "clip":
      values[g] = clips
    elif table.has(g):
      values[g] = getattr(table, g)[first]
    else:
      missing_columns.append(g)
  aux, unknown = aux_rows.aux_rows_from_names(
      model.groups, model.entity_names, model.offsets, values, len(clips), factor_out)
  affinity = marginals.smooth_affinities(
      jax.random.key(seed), model.params, aux, num_samples=num_samples, method=method,
      burn_in=burn_in, thin=thin, batch=batch)
  effect = {}
  if aux_effect:
    base = marginals.smooth_affinities(jax.random.key(seed), model.params, aux,
                                       method="mean_field", batch=batch)
    for col, g in enumerate(model.groups):
      if g in factor_out or not np.any(aux[:, col] >= 0):
        continue
      without = aux.copy()
      without[:, col] = -1
      other = marginals.smooth_affinities(jax.random.key(seed), model.params, without,
                                          method="mean_field", batch=batch)
      effect[g] = float(np.mean(np.abs(np.asarray(base) - np.asarray(other))))
  track = table.track[first] if table.has("track") else None
  columns = ["clip"] + (["track"] if track is not None else []) + ["tag", "affinity",
                                                                   "display"]
  vocab, display = model.vocab.tolist(), model.display.tolist()
  rows = []
  for m, clip in enumerate(clips.tolist()):
    lead = [clip] if track is None else [clip, str(track[m])]
    rows.extend(lead + [t, f"{a:.6g}", d]
                for t, a, d in zip(vocab, affinity[m].tolist(), display))
  write_bytes_atomic(out, format_table(columns, rows, out))
  summary = {"clips": len(clips), "tags": len(vocab), "method": method,
             "samples": num_samples if method == "sample" else 0,
             "factored_out": [g for g in factor_out if g in model.groups],
             "unknown_entities": unknown, "missing_columns": missing_columns,
             "aux_effect": effect}
  for g, e in effect.items():
    log(f"crbm-smooth: the {g} rows move the affinities by {e:.4f} on average (mean "
        f"|affinity - affinity without the {g}|, mean field)")
  for g, n in unknown.items():
    if n:
      log(f"crbm-smooth: {n} of {len(clips)} clips have a {g} the model has not seen "
          f"(its {g} bias is left out)")
  for g in missing_columns:
    log(f"crbm-smooth: {tags} has no {g!r} column; {g} biases are left out")
  log(f"crbm-smooth: wrote {len(rows)} rows ({len(clips)} clips x {len(vocab)} tags, "
      f"method {method}) to {out}")
  return summary


def _has_model(workdir: str) -> bool:
  return os.path.isdir(os.path.join(workdir, MODEL_DIR)) or os.path.exists(
      os.path.join(workdir, runs_lib.CURRENT))


# -- crbm-cooccurrence ------------------------------------------------------------------

def run_cooccurrence(tags: str, workdir: str, *, canonicalize: bool = True,
                     name: Optional[str] = None, paper: bool = False, num_bins: int = 5,
                     fmt: str = "auto", format_options: Optional[dict] = None,
                     log: Callable[[str], None] = print) -> dict:
  """Table 1 (table1.csv, table1.md) and Figure 1 (figure1.png, figure1.csv) for a tag
  table, written to a temporary folder and then moved into ``workdir``."""
  from crbm_jax.paper import table1  # pylint: disable=import-outside-toplevel

  if num_bins < 1:
    raise CLIError("--num_bins must be >= 1")
  table, _ = _canonical(load_tags(tags, fmt, format_options, log, "crbm-cooccurrence"),
                        canonicalize)
  name = name or os.path.splitext(os.path.basename(tags))[0]
  workdir = os.path.abspath(workdir)
  runs_lib.check_folder(workdir, "--workdir")  # before any work
  parent = os.path.dirname(workdir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-cooccurrence-", dir=parent)
  try:
    paths = table1.run_table1(table, tmp, name, paper=paper, num_bins=num_bins)
    os.makedirs(workdir, exist_ok=True)
    final = {}
    for kind, path in paths.items():
      final[kind] = os.path.join(workdir, os.path.basename(path))
      os.replace(path, final[kind])
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  with open(final["table1_md"], encoding="utf-8") as f:
    log(f.read())
  log(f"crbm-cooccurrence: wrote {', '.join(sorted(final.values()))}")
  return final


# -- crbm-convert -----------------------------------------------------------------------

def load_tags(tags, fmt: str = "auto", format_options: Optional[dict] = None,
              log: Callable[[str], None] = print, prog: str = "crbm"):
  """A TagTable from a tag table or any public format ``formats.read_any`` reads
  (detected when ``fmt`` is 'auto'); logs what was read and skipped unless the input is
  a plain tag table with nothing skipped."""
  from crbm_jax.data import formats  # pylint: disable=import-outside-toplevel
  table, info = formats.read_any(tags, fmt, **(format_options or {}))
  if info.format != "tagtable" or info.skipped:
    log(f"{prog}: {info.summary()}")
  if table.num_rows == 0:
    if info.format == "tagtable" and not info.skipped:
      raise CLIError(f"{tags}: the table has a header but no rows; add one row per "
                     "(clip, [user], tag)")
    raise CLIError(f"{tags}: no (clip, tag) rows to use ({info.summary()})")
  return table


def _jams_output(out: str, to: str) -> bool:
  if to == "auto":
    return (out.lower().endswith(".jams") or out.endswith(("/", os.sep))
            or os.path.isdir(out))
  if to not in ("tagtable", "jams"):
    raise CLIError(f"unknown --to {to!r}; choose from auto, tagtable, jams")
  return to == "jams"


def run_convert(inputs: Sequence[str], out: str, *, fmt: str = "auto", to: str = "auto",
                format_options: Optional[dict] = None,
                log: Callable[[str], None] = print) -> dict:
  """Reads ``inputs`` (any format ``formats.read_any`` knows) and writes ``out``: a tag
  table (TSV/CSV by extension, .gz compresses) or JAMS (a .jams file for one track, or a
  folder of one .jams per track). crbm-smooth output (an ``affinity`` column) becomes
  JAMS with the affinity as each tag's confidence. Nothing is written on an error.

  Returns:
    {"format", "rows", "skipped", "written"}.
  """
  from crbm_jax.data import formats, jams_io  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.tagtable import write_tag_table  # pylint: disable=import-outside-toplevel
  inputs = [os.fspath(p) for p in inputs]
  if not inputs:
    raise CLIError("give one or more inputs: crbm-convert --from FORMAT IN... --out FILE")
  as_jams = _jams_output(out, to)
  out_dir = os.path.dirname(os.path.abspath(out.rstrip("/" + os.sep) or out))
  if not os.path.isdir(out_dir):
    raise CLIError(f"--out {out}: folder {out_dir} does not exist; create it first")
  if not as_jams and os.path.isdir(out):
    raise CLIError(f"--out {out} is a folder; give a file name for a tag table, or "
                   "--to=jams to write one .jams file per track into it")
  affinity_input = (len(inputs) == 1 and fmt in ("auto", "tagtable")
                    and os.path.isfile(inputs[0]) and not format_options
                    and "affinity" in _first_line_fields(inputs[0]))
  if affinity_input:
    if not as_jams:
      raise CLIError(f"{inputs[0]} is crbm-smooth output (an affinity per clip and tag); "
                     "convert it to JAMS (--out FILE.jams or a folder) to keep the "
                     "affinities as confidences")
    table, affinity, display = jams_io.load_affinity_table(inputs[0])
    written = jams_io.write_jams(table, out, confidence=affinity,
                                 confidence_name="affinity", values=display)
    log(f"crbm-convert: read {table.num_rows:,} affinities from {inputs[0]}; wrote "
        f"{len(written)} JAMS file(s) to {out}")
    return {"format": "smoothed", "rows": table.num_rows, "skipped": {},
            "written": written}
  table, info = formats.read_any(inputs, fmt, **(format_options or {}))
  log(f"crbm-convert: {info.summary()}")
  if table.num_rows == 0:
    raise CLIError(f"no (clip, tag) rows left to write ({info.summary()}); nothing "
                   "written")
  if as_jams:
    written = jams_io.write_jams(table, out)
  else:
    write_tag_table(table, out)
    written = [out]
  log(f"crbm-convert: wrote {table.num_rows:,} rows ({', '.join(table.columns())}) to "
      f"{out}" + (f" ({len(written)} .jams files)" if as_jams else ""))
  return {"format": info.format, "rows": table.num_rows, "skipped": info.skipped,
          "written": written}


def _first_line_fields(path: str) -> list:
  try:
    first = _load_first_line(path)
  except (OSError, EOFError, UnicodeDecodeError):
    return []
  sep = "\t" if "\t" in first else ","
  return [f.strip().strip('"').lower() for f in first.split(sep)]


def _load_first_line(path: str) -> str:
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8-sig") as f:
    return f.readline().rstrip("\r\n")


CONVERT_DOC = """crbm-convert: public tag data sets -> a tag table (or JAMS).

  crbm-convert --from magnatagatune annotations_final.csv clip_info_final.csv --out mtat.tsv
  crbm-convert --from mtg-jamendo autotagging-train.tsv autotagging-test.tsv --out j.tsv
  crbm-convert --from msd-lastfm lastfm_tags.db --lastfm_min_weight 50 --out lastfm.tsv
  crbm-convert --from jams annotations/ --out tags.tsv
  crbm-convert tags.tsv --out jams_folder/          (a tag table or crbm-smooth output
                                                     -> one .jams file per track)

Formats (--from, default auto = detected from names and headers): tagtable,
magnatagatune, mtg-jamendo, msd-lastfm, jams, majorminer, hetrec. Inputs are files or
folders given after the flags. Prints what was read and how many records were skipped;
on an error prints one line (file, line or key, reason) and writes nothing.
"""


def _define_format_flags(format_flag: str = "format") -> None:
  from crbm_jax.data import formats  # pylint: disable=import-outside-toplevel
  formats.define_format_flags(_define, format_flag=format_flag)


def _format_kw(f, format_flag: str = "format") -> dict:
  from crbm_jax.data import formats  # pylint: disable=import-outside-toplevel
  fmt, options = formats.format_from_flags(f, format_flag)
  return {"fmt": fmt, "format_options": options}


def _define_convert_flags() -> None:
  _define(_STR, "out", None, "Output: a tag table (.tsv/.csv, .gz compresses), a .jams "
          "file (one track), or a folder of .jams files (ends with / or exists).",
          required=True)
  _define(flags.DEFINE_enum, "to", "auto", ["auto", "tagtable", "jams"], "Output kind; "
          "auto: JAMS for .jams or a folder, otherwise a tag table.")
  _define_format_flags("from")


def convert_main() -> None:
  """Console script crbm-convert."""
  def body(f, args):
    kw = _format_kw(f, "from")
    run_convert(args, f.out, fmt=kw["fmt"], to=f.to, format_options=kw["format_options"])

  _run_tool("crbm-convert", CONVERT_DOC, _define_convert_flags, body, takes_args=True)


# -- absl entry points ------------------------------------------------------------------

FIT_DOC = """crbm-fit: train a conditional RBM (Eq. 2) on a tag table.

Reads a tag table (TSV/CSV with columns clip (or item) and tag; optional user, track,
artist, album, count), canonicalises tags, keeps tags used by >= --min_users users (or
items when there are no users), splits the observations 60/20/20 with every auxiliary
entity in training, and chooses a model on validation:

  * by default (--search) a validation search over hidden units, learning rate, L1,
    aux_lr_scale and weight decay (--search_configs of the --search_* grid, trained as
    one vectorised block with per-model early stopping and successive halving);
  * with --nosearch, exactly the given hyperparameters, with early stopping.

Every model stops when validation pseudo-likelihood has not improved by --tol for
--patience evaluations (or at --epochs); the log says why. A model that diverges stops
with an error naming the value to lower. The test split is used once, after selection:
the chosen CRBM, the best unconditional RBM of the same search and the factored baseline,
with paired differences and standard errors. Writes one run folder (model, metrics.json,
search.csv, history.csv, learning_curve.png) under <workdir>/runs and points
<workdir>/current at it.
"""

SMOOTH_DOC = """crbm-smooth: smoothed tag affinities p(tag | clip) from a trained model.

For every clip of --tags, draws --samples samples from the model of --workdir's current
run (<workdir>/current/model; the <workdir>/model folder of earlier versions also reads)
conditioned on the clip's track/clip/artist/album, with the user factored out (Section 4
of the paper), and writes a tag table with columns clip, [track], tag, affinity, display
(TSV or CSV by the extension of --out). With --train it first trains that model on --tags
(crbm-fit's validation search). It reports how much each auxiliary group moves the
affinities.
"""

COOCCURRENCE_DOC = """crbm-cooccurrence: Table 1 and Figure 1 of the paper for a tag table.

Writes table1.csv (same_user, same_track, same_clip, mean, stderr, pairs), table1.md,
figure1.png and figure1.csv to --workdir.
"""


def _define(define_fn, name: str, *args, **kw) -> None:
  """Defines one flag on the global FLAGS (once) as a key flag of the running program,
  so that --help lists it whatever the program is called."""
  if name in flags.FLAGS:
    return
  holder = define_fn(name, *args, **kw)
  flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[holder.name])


def _run_tool(prog: str, doc: str, define_flags: Callable[[], None],
              body: Callable[..., object], takes_args: bool = False) -> None:
  """Runs ``body(FLAGS)`` (``body(FLAGS, args)`` with positional ``args`` when
  ``takes_args``) as an absl program; user errors end it with one line and status 1."""
  sys.modules["__main__"].__doc__ = doc
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # backend probing
  define_flags()

  def main(argv):
    if len(argv) > 1 and not takes_args:
      raise app.UsageError(f"unexpected arguments {argv[1:]}; all inputs are flags")
    interrupt.quiet_broken_pipe()  # `crbm-fit ... | head -1`: finish the work quietly
    interrupt.exit_on_interrupt(prog, lambda: interrupted_message(prog, flags.FLAGS))
    try:
      if takes_args:
        body(flags.FLAGS, argv[1:])
      else:
        body(flags.FLAGS)
    except USER_ERRORS as e:
      message = " ".join(str(e).split())
      print(f"{prog}: error: {message}", file=sys.stderr)
      return 1
    finally:
      interrupt.finish_stdout()
    return 0

  app.run(main)


def interrupted_message(prog: str, f) -> str:
  """What a Ctrl-C keeps, and how to go on (the line after '<prog>: interrupted; ')."""
  def flag(name):
    return f[name].value if name in f else None

  if prog == "crbm-fit" and flag("workdir"):
    try:
      run = runs_lib.current_run(os.path.abspath(flag("workdir")))
    except (OSError, ValueError):
      run = None
    kept = f"the current run is still {run}" if run else "no run was saved"
    return f"{kept} (a run is saved whole or not at all); run the same command again"
  if prog == "crbm-smooth" and flag("out"):
    return (f"{flag('out')} was not written (an older file there is unchanged); run the "
            "same command again")
  if prog == "crbm-cooccurrence" and flag("workdir"):
    return f"nothing new was written to {flag('workdir')}; run the same command again"
  if prog == "crbm-reproduce" and flag("workdir"):
    return (f"finished stages and Table 2 fits in {flag('workdir')} are kept; run the "
            "same command again to resume")
  return "outputs already written are complete; run the same command again"


_STR, _INT, _FLOAT, _BOOL = (flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float,
                             flags.DEFINE_bool)


def _define_fit_flags() -> None:
  _define(_STR, "tags", None, "Tag-table file (TSV/CSV; columns clip or item, tag; optional "
          "user, track, artist, album, count).", required=True)
  _define(_STR, "workdir", None, "Output folder: each run is written whole to "
          "<workdir>/runs/NNNN (model/, metrics.json, search.csv, history.csv, "
          "learning_curve.png) and <workdir>/current (with the links <workdir>/model and "
          "<workdir>/metrics.json) then points to it.", required=True)
  _define(_STR, "aux", "auto", "Comma-separated auxiliary groups among "
          "user,track,clip,artist,album; 'auto' = user, track and (when the table has "
          "users) clip, as the table has them; 'none' = an unconditional RBM.")
  _define(_BOOL, "search", True, "Choose hidden units, learning rate, L1, aux_lr_scale and "
          "weight decay by a validation search (one vectorised block of models with "
          "per-model early stopping and successive halving). --nosearch trains exactly "
          "the values of --hidden, --learning_rate, --l1_aux, --aux_lr_scale and "
          "--weight_decay.")
  _define(_INT, "search_configs", 96, "Configurations the search tries, drawn from the "
          "grid of the --search_* lists (plus a third as many unconditional ones, for the "
          "comparison).")
  _define(_FLOAT, "search_seconds", 0.0, "Wall-clock budget of the search in seconds; "
          "models still training when it runs out stop (0 = no limit).")
  for name, values in SEARCH_DEFAULTS.items():
    _define(flags.DEFINE_list, f"search_{name}", [f"{v:g}" for v in values],
            f"Values of {name} the search tries (comma-separated).")
  _define(_INT, "hidden", 64, "Number of hidden units (with --nosearch).")
  _define(_INT, "epochs", 300, "The most epochs a model trains; early stopping on "
          "validation pseudo-likelihood usually stops it sooner (see --patience).")
  _define(_INT, "patience", 8, "Stop a model after this many evaluations without a "
          "validation improvement larger than --tol.")
  _define(_FLOAT, "tol", 1e-4, "The validation improvement (balanced log PL per bit) that "
          "counts for --patience.")
  _define(_INT, "eval_every", 1, "Epochs between validation evaluations.")
  _define(_BOOL, "allow_divergence", False, "If the model diverges (validation PL "
          "non-finite or far below the untrained model's), keep its best epoch before "
          "that instead of stopping with an error.")
  _define(_FLOAT, "learning_rate", 0.05, "SGD learning rate (with --nosearch).")
  _define(_FLOAT, "momentum", 0.5, "SGD momentum on W, b, c.")
  _define(_FLOAT, "l1_aux", 0.0, "L1 penalty on the auxiliary biases W_aux (with "
          "--nosearch).")
  _define(_FLOAT, "aux_lr_scale", 10.0, "Multiplies the learning rate of W_aux (with "
          "--nosearch): an entity's row gets 1/batch of each observation's gradient, so "
          "rare entities (clips, users) need a larger step.")
  _define(_FLOAT, "weight_decay", 1e-4, "L2 weight decay on W (with --nosearch).")
  _define(_INT, "batch_size", 100, "Observations per minibatch.")
  _define(_INT, "cd_k", 1, "Gibbs steps per contrastive-divergence update.")
  _define(_INT, "min_users", 2, "Keep tags used by at least this many users (distinct items "
          "when the table has no user column).")
  _define(_INT, "top_tags", 0, "Keep only the N most used tags (0 = all).")
  _define(_INT, "seed", 0, "Seed of the split and of training.")
  _define(_BOOL, "canonicalize", True, "Canonicalise tags (case, punctuation, stems); "
          "--nocanonicalize keeps them as given.")
  _define_format_flags()


def _define_smooth_flags() -> None:
  _define(_STR, "workdir", None, "Folder that crbm-fit wrote (the model of its current "
          "run, <workdir>/current/model, is read).", required=True)
  _define(_STR, "tags", None, "Tag-table file whose clips are smoothed (its clip, track, "
          "artist, album columns give the auxiliary input), or a file/folder in a public "
          "format (see --format).", required=True)
  _define(_STR, "out", None, "Output tag table; .csv writes CSV, otherwise TSV (.gz "
          "compresses).", required=True)
  _define(_INT, "samples", 1000, "Samples per clip (method 'sample').")
  _define(flags.DEFINE_enum, "method", "sample", list(marginals.METHODS),
          "'sample': mean of Gibbs samples (the paper); 'mean_field': deterministic "
          "mean-field approximation.")
  _define(_STR, "factor_out", "user", "Comma-separated auxiliary groups to leave out of "
          "every clip's input ('' = none).")
  _define(_INT, "burn_in", 100, "Gibbs sweeps before the first recorded sample.")
  _define(_INT, "thin", 1, "Gibbs sweeps between recorded samples.")
  _define(_INT, "batch", 64, "Clips sampled at once (memory: samples x batch x tags).")
  _define(_INT, "seed", 0, "Sampling seed (and, with --train, the split and training "
          "seed).")
  _define(_BOOL, "train", False, "First train a model on --tags into --workdir with "
          "crbm-fit's defaults: the validation search over hidden units, learning rate, "
          "L1, aux_lr_scale and weight decay, judged on held-out observations of clips "
          "and tracks seen in training.")
  _define(_STR, "aux", "auto", "With --train: the auxiliary groups (as crbm-fit --aux).")
  _define(_INT, "search_configs", 96, "With --train: configurations the search tries.")
  _define(_FLOAT, "search_seconds", 0.0, "With --train: the search's time budget in "
          "seconds (0 = none).")
  _define(_BOOL, "aux_effect", True, "Report how much each auxiliary group (track, clip, "
          "...) moves the affinities: mean |affinity - affinity without that group's "
          "row|, by mean field.")
  _define_format_flags()


def _define_cooccurrence_flags() -> None:
  _define(_STR, "tags", None, "Tag-table file (TSV/CSV), or a file/folder in a public "
          "format: MagnaTagATune, MTG-Jamendo, MSD Last.fm, JAMS, MajorMiner, HetRec (see "
          "--format).", required=True)
  _define(_STR, "workdir", None, "Output folder for table1.csv, table1.md, figure1.png and "
          "figure1.csv.", required=True)
  _define(_BOOL, "canonicalize", True, "Canonicalise tags first.")
  _define(_STR, "name", None, "Data-set name for titles (default: the file name).")
  _define(_BOOL, "paper", False, "Print the paper's Table 1 values beside ours.")
  _define(_INT, "num_bins", 5, "Separation bins of Figure 1.")
  _define_format_flags()


def fit_main() -> None:
  """Console script crbm-fit."""
  _run_tool("crbm-fit", FIT_DOC, _define_fit_flags, lambda f: run_fit(
      f.tags, f.workdir, aux=f.aux, num_hidden=f.hidden, num_epochs=f.epochs,
      learning_rate=f.learning_rate, momentum=f.momentum, weight_decay=f.weight_decay,
      l1_aux=f.l1_aux, aux_lr_scale=f.aux_lr_scale, batch_size=f.batch_size, cd_k=f.cd_k,
      min_users=f.min_users, top_tags=f.top_tags, seed=f.seed,
      canonicalize=f.canonicalize, search=f.search, search_configs=f.search_configs,
      search_seconds=f.search_seconds, search_space=_search_space_flags(f),
      patience=f.patience, tol=f.tol, eval_every=f.eval_every,
      allow_divergence=f.allow_divergence,
      ignored_flags=[n for n in SEARCHED_FLAGS if f[n].present], **_format_kw(f)))


SEARCHED_FLAGS = ("hidden", "learning_rate", "l1_aux", "aux_lr_scale", "weight_decay")


def _search_space_flags(f) -> dict:
  """The --search_* lists as numbers (one line naming the flag when one is not)."""
  space = {}
  for name in SEARCH_DEFAULTS:
    values = []
    for text in getattr(f, f"search_{name}"):
      try:
        values.append(int(text) if name == "num_hidden" else float(text))
      except ValueError:
        raise CLIError(f"--search_{name}: {text!r} is not a number") from None
    if not values:
      raise CLIError(f"--search_{name} is empty; give at least one value")
    if name == "num_hidden" and min(values) < 1:
      raise CLIError("--search_num_hidden values must be >= 1")
    space[name] = tuple(values)
  return space


def smooth_main() -> None:
  """Console script crbm-smooth."""
  _run_tool("crbm-smooth", SMOOTH_DOC, _define_smooth_flags, lambda f: run_smooth(
      f.workdir, f.tags, f.out, num_samples=f.samples, method=f.method,
      factor_out=parse_factor_out(f.factor_out), burn_in=f.burn_in, thin=f.thin,
      seed=f.seed, batch=f.batch, train=f.train, aux_effect=f.aux_effect,
      fit_options={"aux": f.aux, "search_configs": f.search_configs,
                   "search_seconds": f.search_seconds}, **_format_kw(f)))


def cooccurrence_main() -> None:
  """Console script crbm-cooccurrence."""
  _run_tool("crbm-cooccurrence", COOCCURRENCE_DOC, _define_cooccurrence_flags,
            lambda f: run_cooccurrence(f.tags, f.workdir, canonicalize=f.canonicalize,
                                       name=f.name, paper=f.paper, num_bins=f.num_bins,
                                       **_format_kw(f)))


REPRODUCE_DOC = """crbm-reproduce: the paper's tables and figures on the embedded default data.

Runs Table 1 / Figure 1, Table 2 (with the Last.fm W_aux report), Table 3 / Figure 2 (with
the simulated study's recovery of hidden true tags and the sparsity experiment on
MajorMiner) and the beyond-the-paper section, each in a subfolder of --workdir, then writes
--workdir/REPORT.md and REPORT.html, opening with a scorecard of the paper's claims.
Progress goes to stderr. Table 2's finished stages are saved as they finish: a run that
is stopped and started again with the same --workdir does not redo them.
"""


def _define_reproduce_flags() -> None:
  from crbm_jax.paper import reproduce  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import reproduce as reproduce_config  # pylint: disable=import-outside-toplevel
  _define(_STR, "workdir", None, "Folder for REPORT.md, REPORT.html and every stage's "
          "tables, figures and results (created if missing).", required=True)
  _define(flags.DEFINE_enum, "config", "default", list(reproduce_config.VARIANTS),
          "smoke: about a minute on small data (what the tests run); default: the "
          "embedded run, about 4-5 minutes on a 2-core CPU; full: the paper's complete "
          "grid and settings (hours).")
  _define(flags.DEFINE_list, "stages", None, "Run only these stages, comma-separated, "
          f"among {','.join(reproduce.STAGES)} (default: all).")


def _run_reproduce(f) -> None:
  from crbm_jax.paper import reproduce  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import reproduce as reproduce_config  # pylint: disable=import-outside-toplevel
  config = reproduce_config.get_config(f.config)
  if f.stages:
    unknown = [s for s in f.stages if s not in reproduce.STAGES]
    if unknown:
      raise CLIError(f"unknown stage(s) {', '.join(unknown)}; choose among "
                     f"{', '.join(reproduce.STAGES)}")
  reproduce.run_reproduction(config, f.workdir, stages=f.stages)


def reproduce_main() -> None:
  """Console script crbm-reproduce."""
  _run_tool("crbm-reproduce", REPRODUCE_DOC, _define_reproduce_flags, _run_reproduce)


TOOLS = {"fit": fit_main, "smooth": smooth_main, "cooccurrence": cooccurrence_main,
         "convert": convert_main,
         "reproduce": reproduce_main}


def dispatch(argv: Sequence[str]) -> None:
  """``python -m crbm_jax.cli <tool> [flags]``."""
  if len(argv) < 2 or argv[1] not in TOOLS:
    print(f"usage: python -m crbm_jax.cli {{{','.join(TOOLS)}}} [flags] (--help for a "
          "tool's flags)", file=sys.stderr)
    sys.exit(2)
  tool = argv[1]
  sys.argv = [f"crbm-{tool}"] + list(argv[2:])
  TOOLS[tool]()


if __name__ == "__main__":
  dispatch(sys.argv)
