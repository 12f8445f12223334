"""crbm-autotag {train,predict}: tag your own audio (thin launchers over
``crbm_jax.autotag.training`` and ``crbm_jax.autotag.prediction``).

  crbm-autotag train --features=features.npz --tags=tags.tsv --workdir=run [--labels=smoothed]
  crbm-autotag predict --workdir=run --features=new.npz --out=tags.tsv [--top=5]
  crbm-autotag predict --workdir=run --audio=DIR --out=tags.tsv
  crbm-autotag train ... --model=crbm;  crbm-autotag predict ... [--given=known.tsv]

The autotag package stays JAX-free; ``train --labels=smoothed`` without ``--smoothed``
trains a CRBM (``smooth_with_crbm``: ``crbm_jax.fitting``) and so imports JAX then, as
``--model=crbm`` does (``crbm_jax.tagger.product``).
"""
from __future__ import annotations

import os
import sys
import types

from crbm_jax.cli import runner
from crbm_jax.cli.features import autotag_errors, cache_folder, default_workers

TRAIN_DOC = """crbm-autotag train: per-tag autotaggers, cross-validated, saved without pickle.

One binary classifier per tag on balanced examples chosen by tag affinity (paper,
Section 4): the linear nu-SVM with Platt probabilities (--model=nusvc, the paper) or
logistic regression (--model=linear, faster). Labels are raw (number of users who gave
the tag) or smoothed (CRBM affinities from --smoothed, a crbm-smooth output; without it a
CRBM is trained with crbm-fit's validation-selected settings and smoothed first, in
<workdir>/crbm). Grouped cross-validation (album, else artist, else track, else audio
file) reports balanced accuracy, ROC-AUC and PR-AUC per tag and per clip on the raw tags
of the held-out folds. Writes <workdir>/autotagger/ (npz + JSON), per_tag.csv,
per_tag.md, accuracy.png, cv.json and cv_predictions.npz.

--model=crbm trains one conditional RBM over all tags conditioned on the audio features
(one observation per clip and user when the tags name users; docs/crbm-autotagger.md),
cross-validated on the same folds with the same metrics; its autotagger also completes
tags someone already gave (crbm-autotag predict --given).
"""

PREDICT_DOC = """crbm-autotag predict: tag probabilities for clips nobody has tagged.

Reads <workdir>/autotagger and either --features (from crbm-features, same settings) or
--audio (features are extracted with the autotagger's settings). Writes a tag table
(clip, tag, affinity, tag_key: tag as the training tags spelled it, tag_key its canonical
key) to --out, rows of a clip by decreasing affinity, filtered by --top and --threshold,
and, when files give several clips, track summaries (mean over the file's clips) to
--tracks_out (default <out>.tracks.tsv). With a --model=crbm autotagger, --given FILE (a
tag table: clip, tag) clamps the tags already known and predicts the rest from them and
the audio.
"""


# -- train ------------------------------------------------------------------------------

def define_train_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  define(flags.DEFINE_string, "features", None, "Features .npz (crbm-features, or any "
         "npz with 'features' and 'clip_ids').", required=True)
  define(flags.DEFINE_string, "tags", None, "Tag table of the clips (TSV/CSV).",
         required=True)
  define(flags.DEFINE_string, "workdir", None, "Output folder.", required=True)
  define(flags.DEFINE_enum, "labels", "raw", ["raw", "smoothed"], "Train on raw tags or "
         "on CRBM-smoothed affinities.")
  define(flags.DEFINE_string, "smoothed", None, "crbm-smooth output for --labels="
         "smoothed (default: train a CRBM and smooth first).")
  define(flags.DEFINE_enum, "model", "nusvc", ["nusvc", "linear", "crbm"], "nusvc: "
         "linear nu-SVM with Platt probabilities (the paper); linear: logistic "
         "regression; crbm: one conditional RBM over all tags, conditioned on the audio "
         "features (docs/crbm-autotagger.md; predict --given then completes known tags).")
  define(flags.DEFINE_integer, "crbm_hidden", 8, "--model crbm: hidden units (<= 14 for "
         "exact prediction).")
  define(flags.DEFINE_integer, "crbm_epochs", 30, "--model crbm: training epochs.")
  define(flags.DEFINE_enum, "crbm_objective", "cd", ["cd", "pcd", "discriminative"],
         "--model crbm: learning rule (CD-1, PCD-1, or the exact gradient of "
         "log p(tags | audio)).")
  define(flags.DEFINE_integer, "folds", 5, "Cross-validation folds (0 = no "
         "cross-validation: only the final classifiers).")
  define(flags.DEFINE_integer, "seed", 0, "Seed of folds, example ties and calibration.")
  define(flags.DEFINE_integer, "max_per_class", 100, "Examples per class per tag (top "
         "and bottom by affinity).")
  define(flags.DEFINE_integer, "min_verified", 0, "Raw labels: users needed for a "
         "positive (0: 2 if any clip has a tag from 2 users, else 1).")
  define(flags.DEFINE_integer, "min_train_per_class", 5, "Tags with fewer positives "
         "or negatives are left out.")
  define(flags.DEFINE_float, "nu", 0.5, "nu of the nu-SVM.")
  define(flags.DEFINE_integer, "top_tags", 0, "Keep the N most used tags (0 = all).")
  define(flags.DEFINE_bool, "canonicalize", True, "Canonicalise tags as crbm-fit does.")
  define(flags.DEFINE_bool, "progress", True, "Progress on stderr.")


def smooth_with_crbm(tags: str, workdir: str, seed: int = 0, log=print) -> str:
  """Trains the smoothing CRBM (``fitting.fit_tag_table``, with its validation-selected
  settings) and smooths (``fitting.smooth_tag_table``); returns the smoothed table's
  path. Imports JAX (only here)."""
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  crbm_dir = os.path.join(workdir, "crbm")
  log(f"crbm-autotag: no --smoothed file; training a CRBM on {tags} in {crbm_dir}")
  fitting.fit_tag_table(tags, crbm_dir, seed=seed, log=log)
  out = os.path.join(crbm_dir, "smoothed.tsv")
  fitting.smooth_tag_table(crbm_dir, tags, out, seed=seed, log=log)
  return out


def run_train(f):
  if f.model == "crbm":
    from crbm_jax.tagger import core, product  # pylint: disable=import-outside-toplevel
    if f.labels != "raw":
      from crbm_jax.autotag.errors import AutotagError  # pylint: disable=import-outside-toplevel
      raise AutotagError("--model crbm trains on the raw tags (one observation per clip "
                         "and user); leave out --labels=smoothed")
    return product.train(
        f.features, f.tags, f.workdir, num_folds=f.folds, seed=f.seed,
        min_verified=f.min_verified, min_train_per_class=f.min_train_per_class,
        top_tags=f.top_tags, canonicalize=f.canonicalize, log=print,
        config=core.TaggerConfig(num_hidden=f.crbm_hidden, num_epochs=f.crbm_epochs,
                                 objective=f.crbm_objective))
  from crbm_jax.autotag import training  # pylint: disable=import-outside-toplevel
  return training.train(
      f.features, f.tags, f.workdir, labels=f.labels, smoothed=f.smoothed, model=f.model,
      num_folds=f.folds, seed=f.seed, max_per_class=f.max_per_class,
      min_verified=f.min_verified, min_train_per_class=f.min_train_per_class, nu=f.nu,
      top_tags=f.top_tags, canonicalize=f.canonicalize, progress=f.progress, log=print,
      smoother=smooth_with_crbm)


def train_errors() -> tuple:
  """With --labels=smoothed the CRBM's errors too (JAX is loaded only if it trained)."""
  extra = ()
  if "crbm_jax.learn.search" in sys.modules:
    from crbm_jax.cli import smooth  # pylint: disable=import-outside-toplevel
    extra = smooth.errors()
  return autotag_errors() + extra


# -- predict ----------------------------------------------------------------------------

def define_predict_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  define(flags.DEFINE_string, "workdir", None, "Folder crbm-autotag train wrote (or its "
         "autotagger/ folder).", required=True)
  define(flags.DEFINE_string, "features", None, "Features .npz of the clips to tag.")
  define(flags.DEFINE_string, "audio", None, "Or: audio folder/list/file to tag.")
  define(flags.DEFINE_string, "given", None, "Tag table (clip, tag) of tags already known "
         "for some clips (a --model crbm autotagger only): the rest are predicted given "
         "them and the audio; tags outside the vocabulary are reported and ignored.")
  define(flags.DEFINE_string, "out", None, "Output tag table (clip, tag, affinity, "
         "tag_key); .csv writes CSV, otherwise TSV (.gz compresses).", required=True)
  define(flags.DEFINE_integer, "top", 0, "Keep each clip's K most likely tags (0 = all).")
  define(flags.DEFINE_float, "threshold", None, "Keep only affinities >= this.")
  define(flags.DEFINE_string, "tracks_out", "", "Track summaries file ('' = "
         "<out>.tracks.<ext>; 'none' = not written).")
  define(flags.DEFINE_string, "jams", None, "Also write JAMS tag_open files into this "
         "folder (when crbm_jax.data.jams_io is available).")
  define(flags.DEFINE_string, "cache_dir", "auto", "Feature cache for --audio ('auto': "
         "<out folder>/.crbm-features-cache; 'none').")
  define(flags.DEFINE_integer, "workers", default_workers(), "Worker processes (--audio).")
  define(flags.DEFINE_bool, "progress", True, "Progress on stderr.")


def run_predict(workdir: str, out: str, *, features=None, audio=None, top=0,
                threshold=None, tracks_out="", jams=None, cache_dir="auto", workers=2,
                progress=True, log=print, given=None) -> dict:
  """crbm-autotag predict as a function; returns write_predictions' summary."""
  from crbm_jax.autotag import prediction  # pylint: disable=import-outside-toplevel
  from crbm_jax.autotag.errors import AutotagError  # pylint: disable=import-outside-toplevel
  if (features is None) == (audio is None):
    raise AutotagError("give exactly one of --features and --audio")
  if jams and not prediction.jams_available():
    raise AutotagError("--jams needs crbm_jax.data.jams_io, which this version lacks; "
                       "leave out --jams")
  from crbm_jax.tagger.product import is_crbm_autotagger  # pylint: disable=import-outside-toplevel
  if is_crbm_autotagger(workdir):
    from crbm_jax.tagger import product  # pylint: disable=import-outside-toplevel
    at = product.load(workdir)
    if features is None:
      from crbm_jax.autotag.featureset import extract_features  # pylint: disable=import-outside-toplevel
      from crbm_jax.autotag import features as features_lib  # pylint: disable=import-outside-toplevel
      if not at.feature_config:
        raise AutotagError("this autotagger was trained on features made elsewhere; give "
                           "--features extracted the same way instead of --audio")
      features = extract_features(audio, None, config=features_lib.FeatureConfig(
          **at.feature_config), num_workers=workers,
                                  cache_dir=cache_folder(cache_dir, out), progress=progress,
                                  log=log)
    pred = product.predict(at, features, given=given, log=log)
    return prediction.write_predictions(
        pred, out, top_k=top, threshold=threshold,
        tracks_out=None if tracks_out == "none" else tracks_out, jams_dir=jams, log=log)
  if given is not None:
    raise AutotagError("--given needs an autotagger trained with --model crbm (per-tag "
                       "classifiers cannot use known tags)")
  at = prediction.load_autotagger(workdir)
  if features is not None:
    pred = prediction.predict(at, features)
  else:
    pred, _ = prediction.predict_audio(at, audio, num_workers=workers,
                                       cache_dir=cache_folder(cache_dir, out),
                                       progress=progress, log=log)
  return prediction.write_predictions(
      pred, out, top_k=top, threshold=threshold,
      tracks_out=None if tracks_out == "none" else tracks_out, jams_dir=jams, log=log)


def run_predict_flags(f) -> dict:
  return run_predict(f.workdir, f.out, features=f.features, audio=f.audio, top=f.top,
                     threshold=f.threshold, tracks_out=f.tracks_out, jams=f.jams,
                     cache_dir=f.cache_dir, workers=f.workers, progress=f.progress,
                     given=f.given)


# -- the console script -----------------------------------------------------------------

TRAIN = types.SimpleNamespace(PROG="crbm-autotag train", DOC=TRAIN_DOC,
                              define_flags=define_train_flags, run=run_train,
                              errors=train_errors)
PREDICT = types.SimpleNamespace(PROG="crbm-autotag predict", DOC=PREDICT_DOC,
                                define_flags=define_predict_flags, run=run_predict_flags,
                                errors=autotag_errors)
COMMANDS = {"train": TRAIN, "predict": PREDICT}
PROG = "crbm-autotag"


def main(argv=None) -> int:
  """Console script crbm-autotag: ``crbm-autotag {train,predict} [flags]`` (``argv``
  None: this process's command line)."""
  args = list(sys.argv if argv is None else argv)
  if len(args) < 2 or args[1] not in COMMANDS:
    print("usage: crbm-autotag {train,predict} [flags]  (crbm-autotag train --help for a "
          "command's flags)", file=sys.stderr)
    return 2
  command = COMMANDS[args[1]]
  return runner.run_tool(command, [command.PROG] + args[2:], as_program=argv is None)
