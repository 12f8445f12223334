"""crbm-fit: a thin launcher over ``crbm_jax.fitting.fit_tag_table``."""
from __future__ import annotations

import os
import sys

from crbm_jax.cli import runner

PROG = "crbm-fit"
DOC = """crbm-fit: train a conditional RBM (Eq. 2) on a tag table.

Reads a tag table (TSV/CSV with columns clip (or item) and tag; optional user, track,
artist, album, count), canonicalises tags, keeps tags used by >= --min_users users (or
items when there are no users), splits the observations 60/20/20 with every auxiliary
entity in training, and chooses a model on validation:

  * by default (--search) a validation search over hidden units, learning rate, L1,
    aux_lr_scale and weight decay (--search_configs of the --search_* grid, trained as
    one vectorised block with per-model early stopping and successive halving);
  * with --nosearch, exactly the given hyperparameters, with early stopping;
  * with --search and one of --hidden, --learning_rate, --l1_aux, --aux_lr_scale,
    --weight_decay given, the search tries values around the given one (never ignores it).

Every model stops when validation pseudo-likelihood has not improved by --tol for
--patience evaluations (or at --num_epochs); the log says why. A model that diverges stops
with an error naming the value to lower. The test split is used once, after selection:
the chosen CRBM, the best unconditional RBM of the same search and the factored baseline,
with paired differences and standard errors. Writes one run folder (model, metrics.json,
search.csv, history.csv, learning_curve.png) under <workdir>/runs and points
<workdir>/current at it.
"""

# Flags the search chooses (flag -> hyperparameter): given with --search, the search tries
# values around the one given (fitting.fit.around), and says so.
SEARCHED_FLAGS = {"hidden": "num_hidden", "learning_rate": "learning_rate",
                  "l1_aux": "l1_aux", "aux_lr_scale": "aux_lr_scale",
                  "weight_decay": "weight_decay"}


def define_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import search as spec  # pylint: disable=import-outside-toplevel
  from crbm_jax.fitting.fit import SEARCH_DEFAULTS, SEARCH_VAL_ROWS  # pylint: disable=import-outside-toplevel
  stop = spec.STOP_DEFAULTS
  string, integer, real, boolean = (flags.DEFINE_string, flags.DEFINE_integer,
                                    flags.DEFINE_float, flags.DEFINE_bool)
  define(string, "tags", None, "Tag-table file (TSV/CSV; columns clip or item, tag; "
         "optional user, track, artist, album, count).", required=True)
  define(string, "workdir", None, "Output folder: each run is written whole to "
         "<workdir>/runs/NNNN (model/, metrics.json, search.csv, history.csv, "
         "learning_curve.png) and <workdir>/current (with the links <workdir>/model and "
         "<workdir>/metrics.json) then points to it.", required=True)
  define(string, "aux", "auto", "Comma-separated auxiliary groups among "
         "user,track,clip,artist,album; 'auto' = user, track and (when the table has "
         "users) clip, as the table has them; 'none' = an unconditional RBM.")
  define(boolean, "search", True, "Choose hidden units, learning rate, L1, aux_lr_scale "
         "and weight decay by a validation search (one vectorised block of models with "
         "per-model early stopping and successive halving). --nosearch trains exactly "
         "the values of --hidden, --learning_rate, --l1_aux, --aux_lr_scale and "
         "--weight_decay.")
  define(string, "learner", spec.DEFAULTS["learner"], "The learning algorithm: cd "
         "(contrastive divergence, CD-k), pcd (persistent CD) or pt (parallel tempering).")
  define(integer, "search_configs", spec.DEFAULTS["num_configs"], "Configurations the search tries, drawn from the "
         "grid of the --search_* lists (plus a third as many unconditional ones, for the "
         "comparison).")
  define(real, "search_seconds", 0.0, "Wall-clock budget of the search in seconds, "
         "counted from the start (data preparation included); models still training when "
         "it runs out stop (0 = no limit).")
  define(real, "memory_gb", 0.0, "Memory budget in GB (0 = 25% of the machine's RAM): "
         "the search trains its models in chunks and validates in chunks of rows to stay "
         "within it, and refuses before training when even one model does not fit.")
  define(integer, "search_val_rows", SEARCH_VAL_ROWS, "The search validates on at most "
         "this many validation observations (a random subset drawn with --seed when "
         "there are more; 0 = all): the criterion costs rows x tags x hidden units per "
         "model and evaluation.")
  for name, values in SEARCH_DEFAULTS.items():
    define(flags.DEFINE_list, f"search_{name}", [f"{v:g}" for v in values],
           f"Values of {name} the search tries (comma-separated).")
  define(integer, "hidden", 64, "Number of hidden units (with --nosearch; with --search, "
         "given: the search tries it and its neighbours in --search_num_hidden's defaults).")
  define(integer, "num_epochs", stop["num_epochs"], "The most epochs a model trains; early "
         "stopping on validation pseudo-likelihood usually stops it sooner (see "
         "--patience).")
  define(integer, "epochs", None, "Renamed --num_epochs (the one spelling of epochs); "
         "refused, with a line naming --num_epochs.")
  define(integer, "patience", stop["patience"], "Stop a model after this many evaluations without a "
         "validation improvement larger than --tol.")
  define(real, "tol", stop["tol"], "The validation improvement (balanced log PL per bit) that "
         "counts for --patience.")
  define(integer, "eval_every", stop["eval_every"], "Epochs between validation evaluations.")
  define(boolean, "allow_divergence", False, "If the model diverges (validation PL "
         "non-finite or far below the untrained model's), keep its best epoch before "
         "that instead of stopping with an error.")
  define(real, "learning_rate", 0.05, "SGD learning rate (with --nosearch; with --search, "
         "given: the search tries it and its neighbours in --search_learning_rate's "
         "defaults).")
  define(real, "momentum", 0.5, "SGD momentum on W, b, c.")
  define(real, "l1_aux", 0.0, "L1 penalty on the auxiliary biases W_aux (with "
         "--nosearch).")
  define(real, "aux_lr_scale", 10.0, "Multiplies the learning rate of W_aux (with "
         "--nosearch): an entity's row gets 1/batch of each observation's gradient, so "
         "rare entities (clips, users) need a larger step.")
  define(real, "weight_decay", 1e-4, "L2 weight decay on W (with --nosearch).")
  define(integer, "batch_size", 100, "Observations per minibatch.")
  define(integer, "cd_k", 1, "Gibbs steps per contrastive-divergence update.")
  define(integer, "min_users", 2, "Keep tags used by at least this many users (distinct "
         "items when the table has no user column).")
  define(integer, "top_tags", 0, "Keep only the N most used tags (0 = all).")
  define(integer, "seed", 0, "Seed of the split and of training.")
  define(boolean, "canonicalize", True, "Canonicalise tags (case, punctuation, stems); "
         "--nocanonicalize keeps them as given.")
  define(string, "compile_cache", None, "Folder of JAX's persistent compilation cache "
         "(a second run on data of the same shapes reuses the compiled programs); 'off' "
         "disables it. Default: $CRBM_JAX_COMPILE_CACHE, else ~/.cache/crbm_jax/jax "
         "(under $XDG_CACHE_HOME when set). Safe to share between processes.")
  runner.format_flags(define)


def search_space(f) -> dict:
  """The --search_* lists given, as numbers (one line naming the flag when one is not);
  the others are the search spec's defaults."""
  from crbm_jax.fitting.fit import SEARCH_DEFAULTS  # pylint: disable=import-outside-toplevel
  space = {}
  for name in SEARCH_DEFAULTS:
    if not f[f"search_{name}"].present:
      continue
    values = []
    for text in getattr(f, f"search_{name}"):
      try:
        values.append(int(text) if name == "num_hidden" else float(text))
      except ValueError:
        raise runner.CLIError(f"--search_{name}: {text!r} is not a number") from None
    if not values:
      raise runner.CLIError(f"--search_{name} is empty; give at least one value")
    if name == "num_hidden" and min(values) < 1:
      raise runner.CLIError("--search_num_hidden values must be >= 1")
    space[name] = tuple(values)
  return space


def run(f) -> dict:
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  if f["epochs"].present:
    raise runner.CLIError("--epochs is now --num_epochs (the one spelling of epochs); "
                          "pass --num_epochs")
  if not f.search and f["search_configs"].present:
    raise runner.CLIError("--search_configs given with --nosearch, which trains one "
                          "configuration: drop one of them")
  return fitting.fit_tag_table(
      f.tags, f.workdir, aux=f.aux, num_hidden=f.hidden, num_epochs=f.num_epochs,
      learning_rate=f.learning_rate, momentum=f.momentum, weight_decay=f.weight_decay,
      l1_aux=f.l1_aux, aux_lr_scale=f.aux_lr_scale, batch_size=f.batch_size, cd_k=f.cd_k,
      min_users=f.min_users, top_tags=f.top_tags, seed=f.seed,
      canonicalize=f.canonicalize, search=f.search, search_configs=f.search_configs,
      search_seconds=f.search_seconds, search_space=search_space(f),
      patience=f.patience, tol=f.tol, eval_every=f.eval_every,
      allow_divergence=f.allow_divergence, memory_gb=f.memory_gb,
      search_val_rows=f.search_val_rows,
      learner=f.learner,
      ignored_flags=[h for n, h in SEARCHED_FLAGS.items() if f[n].present],
      **runner.format_kw(f))


def errors() -> tuple:
  from crbm_jax.learn.search import DivergenceError  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import model_io, runs  # pylint: disable=import-outside-toplevel
  return (DivergenceError, model_io.ModelFormatError, runs.DestinationError)


def interrupted(f) -> str:
  from crbm_jax.util import runs  # pylint: disable=import-outside-toplevel
  try:
    run_dir = runs.current_run(os.path.abspath(f.workdir))
  except (OSError, ValueError):
    run_dir = None
  kept = f"the current run is still {run_dir}" if run_dir else "no run was saved"
  return f"{kept} (a run is saved whole or not at all); run the same command again"


def main(argv=None) -> int:
  """Console script crbm-fit (``argv`` None: this process's command line)."""
  return runner.run_tool(sys.modules[__name__], argv)
