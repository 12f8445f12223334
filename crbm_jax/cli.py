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
from typing import Callable, Optional, Sequence

import numpy as np
from absl import app
from absl import flags

from crbm_jax.data import aux_rows
from crbm_jax.data.errors import DataError
from crbm_jax.data.observations import AUX_COLUMNS, ObservationError
from crbm_jax.data.splits import SplitError
from crbm_jax.data.tagtable import encode_rows, is_tsv, load_tag_table
from crbm_jax.model import marginals
from crbm_jax.util import model_io
from crbm_jax.util.atomic import write_bytes_atomic, write_json_atomic

MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
DEFAULT_AUX = ("user", "track", "clip")


class CLIError(ValueError):
  """A bad command line or input, said in one line with what to do."""


USER_ERRORS = (CLIError, DataError, ObservationError, SplitError,
               model_io.ModelFormatError, marginals.SmoothingError, OSError)


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




def format_table(columns: Sequence[str], rows, path: str) -> bytes:
  """TSV or CSV bytes (by the extension of ``path``, as tag tables; .gz compresses)."""
  data = encode_rows(columns, [tuple(map(str, r)) for r in rows], path)
  return gzip.compress(data, mtime=0) if path.endswith(".gz") else data


# -- crbm-fit ---------------------------------------------------------------------------

def run_fit(tags: str, workdir: str, *, aux: str = "auto", num_hidden: int = 100,
            num_epochs: int = 30, learning_rate: float = 0.05, momentum: float = 0.5,
            weight_decay: float = 1e-4, l1_aux: float = 1e-3, batch_size: int = 100,
            cd_k: int = 1, min_users: int = 2, top_tags: int = 0, seed: int = 0,
            canonicalize: bool = True, log: Callable[[str], None] = print) -> dict:
  """Tag table -> vocabulary, aux indices, 60/20/20 split, CD training with best-epoch
  selection on validation, test evaluation; writes <workdir>/model and metrics.json.

  Returns:
    the metrics dict written to metrics.json.
  """
  import jax  # pylint: disable=import-outside-toplevel
  from crbm_jax import learn  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import training  # pylint: disable=import-outside-toplevel
  from crbm_jax.data import observations as obs_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.splits import random_split  # pylint: disable=import-outside-toplevel
  from crbm_jax.model import pseudolikelihood as pl  # pylint: disable=import-outside-toplevel

  start_time = time.time()
  if min(num_hidden, num_epochs, batch_size, cd_k, min_users) < 1 or top_tags < 0:
    raise CLIError("--hidden, --epochs, --batch_size, --cd_k and --min_users must be >= 1 "
                   "and --top_tags >= 0")
  table = load_tag_table(tags)
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

  def dataset(idx):
    return learn.make_dataset(obs.X[idx], obs.aux[idx])

  train, val, test = dataset(split.train), dataset(split.val), dataset(split.test)
  settings = training.get_config(num_hidden=num_hidden, cd_k=cd_k, batch_size=batch_size,
                                 num_epochs=num_epochs, learning_rate=learning_rate,
                                 momentum=momentum, weight_decay=weight_decay, l1_aux=l1_aux)
  config, hparams = learn.from_config(settings)
  log(f"crbm-fit: {obs.num_observations} observations x {obs.num_visible} tags, aux groups "
      f"{list(groups) or 'none'} ({obs.num_aux} entities); training {num_epochs} epochs")
  result = learn.fit(jax.random.key(seed), train, val, config, hparams, num_aux=obs.num_aux)
  # One pseudo-likelihood pass over all observations (one compilation), then per split.
  per_bit = pl.pseudo_log_likelihood(result.params, jax.numpy.asarray(obs.X, "float32"),
                                     jax.numpy.asarray(obs.aux))
  parts = (("train", split.train, train), ("val", split.val, val), ("test", split.test, test))
  crbm_pl = {name: float(pl.balanced_pseudo_likelihood(per_bit[idx], d.v))
             for name, idx, d in parts}
  base_pl = {name: pl.factored_baseline_pl(train.v, d.v) for name, _, d in parts[1:]}
  metrics = {
      "test_balanced_pl": crbm_pl["test"], "baseline_test_balanced_pl": base_pl["test"],
      "val_balanced_pl": crbm_pl["val"], "baseline_val_balanced_pl": base_pl["val"],
      "train_balanced_pl": crbm_pl["train"], "best_epoch": int(result.best_epoch),
      "val_pl_by_epoch": np.asarray(result.history.val_pl).tolist(),
      "recon_error_by_epoch": np.asarray(result.history.recon_error).tolist(),
      "num_train": len(split.train), "num_val": len(split.val), "num_test": len(split.test),
      "num_observations": obs.num_observations, "num_dropped": obs.num_dropped,
      "num_visible": obs.num_visible, "num_hidden": num_hidden, "num_aux": obs.num_aux,
      "aux_groups": list(groups),
      "entities_per_group": {g: len(e) for g, e in zip(obs.groups, obs.entity_names)},
      "seconds": round(time.time() - start_time, 2),
  }
  run_config = {
      "tags": os.path.abspath(tags), "aux": list(groups), "num_hidden": num_hidden,
      "num_epochs": num_epochs, "learning_rate": learning_rate, "momentum": momentum,
      "weight_decay": weight_decay, "l1_aux": l1_aux, "batch_size": batch_size,
      "cd_k": cd_k, "min_users": min_users, "top_tags": top_tags, "seed": seed,
      "canonicalize": canonicalize, "split_fractions": [0.6, 0.2, 0.2],
  }
  os.makedirs(workdir, exist_ok=True)
  model_dir = model_io.save_model(
      os.path.join(workdir, MODEL_DIR), result.params, vocab=obs.vocab,
      display=obs.display, groups=obs.groups, entity_names=obs.entity_names,
      offsets=obs.offsets, config=run_config, metrics=metrics)
  write_json_atomic(os.path.join(workdir, METRICS_FILE), metrics, indent=2, sort_keys=False,
                    ensure_ascii=False)
  log(f"crbm-fit: best epoch {metrics['best_epoch'] + 1}/{num_epochs}; balanced log "
      f"pseudo-likelihood test {metrics['test_balanced_pl']:.4f} (factored baseline "
      f"{metrics['baseline_test_balanced_pl']:.4f}), val {metrics['val_balanced_pl']:.4f}; "
      f"split {len(split.train)}/{len(split.val)}/{len(split.test)}")
  log(f"crbm-fit: wrote {model_dir} and "
      f"{os.path.abspath(os.path.join(workdir, METRICS_FILE))}")
  return metrics


# -- crbm-smooth ------------------------------------------------------------------------

def run_smooth(workdir: str, tags: str, out: str, *, num_samples: int = 1000,
               method: str = "sample", factor_out: Sequence[str] = ("user",),
               burn_in: int = 100, thin: int = 1, seed: int = 0, batch: int = 64,
               log: Callable[[str], None] = print) -> dict:
  """Smoothed affinities of every clip of a tag table under <workdir>/model.

  Writes ``out`` (columns clip, [track], tag, affinity, display). A clip's auxiliary row
  uses the model's entity names; entities the model does not know are left out and
  counted. Returns a summary dict.
  """
  import jax  # pylint: disable=import-outside-toplevel

  if method not in marginals.METHODS:
    raise CLIError(f"unknown --method {method!r}; choose from {','.join(marginals.METHODS)}")
  if num_samples < 1 or burn_in < 0 or thin < 1 or batch < 1:
    raise CLIError("--samples, --thin and --batch must be >= 1 and --burn_in >= 0")
  out_dir = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(out_dir):
    raise CLIError(f"--out {out}: folder {out_dir} does not exist; create it first")
  model = model_io.load_model(os.path.join(workdir, MODEL_DIR))
  factor_out = tuple(factor_out)
  if "user" in model.groups and "user" not in factor_out:
    raise CLIError("the model conditions on users and a clip has many users; smooth with "
                   "the user factored out (--factor_out=user)")
  table = load_tag_table(tags)
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
             "unknown_entities": unknown, "missing_columns": missing_columns}
  for g, n in unknown.items():
    if n:
      log(f"crbm-smooth: {n} of {len(clips)} clips have a {g} the model has not seen "
          f"(its {g} bias is left out)")
  for g in missing_columns:
    log(f"crbm-smooth: {tags} has no {g!r} column; {g} biases are left out")
  log(f"crbm-smooth: wrote {len(rows)} rows ({len(clips)} clips x {len(vocab)} tags, "
      f"method {method}) to {out}")
  return summary


# -- crbm-cooccurrence ------------------------------------------------------------------

def run_cooccurrence(tags: str, workdir: str, *, canonicalize: bool = True,
                     name: Optional[str] = None, paper: bool = False, num_bins: int = 5,
                     log: Callable[[str], None] = print) -> dict:
  """Table 1 (table1.csv, table1.md) and Figure 1 (figure1.png, figure1.csv) for a tag
  table, written to a temporary folder and then moved into ``workdir``."""
  from crbm_jax.paper import table1  # pylint: disable=import-outside-toplevel

  if num_bins < 1:
    raise CLIError("--num_bins must be >= 1")
  table, _ = _canonical(load_tag_table(tags), canonicalize)
  name = name or os.path.splitext(os.path.basename(tags))[0]
  workdir = os.path.abspath(workdir)
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


# -- absl entry points ------------------------------------------------------------------

FIT_DOC = """crbm-fit: train a conditional RBM (Eq. 2) on a tag table.

Reads a tag table (TSV/CSV with columns clip (or item) and tag; optional user, track,
artist, album, count), canonicalises tags, keeps tags used by >= --min_users users (or
items when there are no users), splits the observations 60/20/20 with every auxiliary
entity in training, trains with CD-k keeping the epoch with the best validation
pseudo-likelihood, evaluates on test against a factored baseline and writes
<workdir>/model and <workdir>/metrics.json.
"""

SMOOTH_DOC = """crbm-smooth: smoothed tag affinities p(tag | clip) from a trained model.

For every clip of --tags, draws --samples samples from the model of <workdir>/model
conditioned on the clip's track/clip/artist/album, with the user factored out (Section 4
of the paper), and writes a tag table with columns clip, [track], tag, affinity, display
(TSV or CSV by the extension of --out).
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
              body: Callable[[flags.FlagValues], object]) -> None:
  sys.modules["__main__"].__doc__ = doc
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # backend probing
  define_flags()

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}; all inputs are flags")
    try:
      body(flags.FLAGS)
    except USER_ERRORS as e:
      message = " ".join(str(e).split())
      print(f"{prog}: error: {message}", file=sys.stderr)
      return 1
    return 0

  app.run(main)


_STR, _INT, _FLOAT, _BOOL = (flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float,
                             flags.DEFINE_bool)


def _define_fit_flags() -> None:
  _define(_STR, "tags", None, "Tag-table file (TSV/CSV; columns clip or item, tag; optional "
          "user, track, artist, album, count).", required=True)
  _define(_STR, "workdir", None, "Output folder: <workdir>/model and <workdir>/metrics.json "
          "are written there.", required=True)
  _define(_STR, "aux", "auto", "Comma-separated auxiliary groups among "
          "user,track,clip,artist,album; 'auto' = user, track and (when the table has "
          "users) clip, as the table has them; 'none' = an unconditional RBM.")
  _define(_INT, "hidden", 100, "Number of hidden units.")
  _define(_INT, "epochs", 30, "Training epochs (the best by validation is kept).")
  _define(_FLOAT, "learning_rate", 0.05, "SGD learning rate.")
  _define(_FLOAT, "momentum", 0.5, "SGD momentum on W, b, c.")
  _define(_FLOAT, "l1_aux", 1e-3, "L1 penalty on the auxiliary biases W_aux.")
  _define(_FLOAT, "weight_decay", 1e-4, "L2 weight decay on W.")
  _define(_INT, "batch_size", 100, "Observations per minibatch.")
  _define(_INT, "cd_k", 1, "Gibbs steps per contrastive-divergence update.")
  _define(_INT, "min_users", 2, "Keep tags used by at least this many users (distinct items "
          "when the table has no user column).")
  _define(_INT, "top_tags", 0, "Keep only the N most used tags (0 = all).")
  _define(_INT, "seed", 0, "Seed of the split and of training.")
  _define(_BOOL, "canonicalize", True, "Canonicalise tags (case, punctuation, stems); "
          "--nocanonicalize keeps them as given.")


def _define_smooth_flags() -> None:
  _define(_STR, "workdir", None, "Folder that crbm-fit wrote (the model is read from "
          "<workdir>/model).", required=True)
  _define(_STR, "tags", None, "Tag-table file whose clips are smoothed (its clip, track, "
          "artist, album columns give the auxiliary input).", required=True)
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
  _define(_INT, "seed", 0, "Sampling seed.")


def _define_cooccurrence_flags() -> None:
  _define(_STR, "tags", None, "Tag-table file (TSV/CSV).", required=True)
  _define(_STR, "workdir", None, "Output folder for table1.csv, table1.md, figure1.png and "
          "figure1.csv.", required=True)
  _define(_BOOL, "canonicalize", True, "Canonicalise tags first.")
  _define(_STR, "name", None, "Data-set name for titles (default: the file name).")
  _define(_BOOL, "paper", False, "Print the paper's Table 1 values beside ours.")
  _define(_INT, "num_bins", 5, "Separation bins of Figure 1.")


def fit_main() -> None:
  """Console script crbm-fit."""
  _run_tool("crbm-fit", FIT_DOC, _define_fit_flags, lambda f: run_fit(
      f.tags, f.workdir, aux=f.aux, num_hidden=f.hidden, num_epochs=f.epochs,
      learning_rate=f.learning_rate, momentum=f.momentum, weight_decay=f.weight_decay,
      l1_aux=f.l1_aux, batch_size=f.batch_size, cd_k=f.cd_k, min_users=f.min_users,
      top_tags=f.top_tags, seed=f.seed, canonicalize=f.canonicalize))


def smooth_main() -> None:
  """Console script crbm-smooth."""
  _run_tool("crbm-smooth", SMOOTH_DOC, _define_smooth_flags, lambda f: run_smooth(
      f.workdir, f.tags, f.out, num_samples=f.samples, method=f.method,
      factor_out=parse_factor_out(f.factor_out), burn_in=f.burn_in, thin=f.thin,
      seed=f.seed, batch=f.batch))


def cooccurrence_main() -> None:
  """Console script crbm-cooccurrence."""
  _run_tool("crbm-cooccurrence", COOCCURRENCE_DOC, _define_cooccurrence_flags,
            lambda f: run_cooccurrence(f.tags, f.workdir, canonicalize=f.canonicalize,
                                       name=f.name, paper=f.paper, num_bins=f.num_bins))


REPRODUCE_DOC = """crbm-reproduce: the paper's tables and figures on the embedded default data.

Runs Table 1 / Figure 1, Table 2 (with the Last.fm W_aux report), Table 3 / Figure 2 (with
the simulated study's recovery of hidden true tags) and the beyond-the-paper section, each
in a subfolder of --workdir, then writes --workdir/REPORT.md and REPORT.html. Progress goes
to stderr. Table 2's finished configurations are saved as they finish: a run that is
stopped and started again with the same --workdir does not redo them.
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
