"""Console scripts crbm-features and crbm-autotag (train, predict): tag your own audio.

  crbm-features --audio=DIR [--tags=tags.tsv] --out=features.npz
  crbm-autotag train --features=features.npz --tags=tags.tsv --workdir=run [--labels=smoothed]
  crbm-autotag predict --workdir=run --features=new.npz --out=tags.tsv [--top=5]
  crbm-autotag predict --workdir=run --audio=DIR --out=tags.tsv

Thin absl launchers over ``crbm_jax.autotag.product`` (the Python API of the same
steps), built with crbm_jax.cli's ``_define``/``_run_tool`` (one-line errors, exit 1).
They live beside ``crbm_jax/cli.py``, not in ``crbm_jax/autotag``, because they use the
CRBM tools (``smooth_with_crbm``): the autotag package stays below them and JAX-free.
Importing this module loads neither absl flags nor JAX; ``crbm-autotag train
--labels=smoothed`` without ``--smoothed`` trains a CRBM and so imports JAX then.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

FEATURES_DOC = """crbm-features: timbral and rhythmic features of audio clips (389 per clip).

--audio is a folder (searched recursively), a .txt list of audio paths, or one file.
Without --tags every file gives the paper's 5 evenly spaced 10-second clips (ids
<file id>#<k>; the file id is its path under the folder without the extension). With
--tags (a tag table) each clip is found by the table's 'path' column, else the audio file
whose id or stem equals the clip id, else the file whose stem equals the clip's 'track';
the table's start/duration cut the clip (without them: the file's evenly spaced clips,
ids <clip>#<k>). Files that cannot be decoded, are silent or too short are skipped and
counted. Writes a compressed .npz: features, feature_names, clip_ids, items (the tag-table
clip of each row), paths, offsets, durations, the skipped entries and the settings.
Features are cached by the audio's content hash (--cache_dir).
"""

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
"""

PREDICT_DOC = """crbm-autotag predict: tag probabilities for clips nobody has tagged.

Reads <workdir>/autotagger and either --features (from crbm-features, same settings) or
--audio (features are extracted with the autotagger's settings). Writes a tag table
(clip, tag, affinity) to --out, rows of a clip by decreasing affinity, filtered by --top
and --threshold, and, when files give several clips, track summaries (mean over the
file's clips) to --tracks_out (default <out>.tracks.tsv).
"""


def _errors():
  from crbm_jax.autotag import audio, product, store  # pylint: disable=import-outside-toplevel
  return (product.AutotagError, store.StoreError, audio.AudioError)


def _wrap(body):
  """Re-raises this package's errors as crbm_jax.cli.CLIError (one line, exit 1)."""
  def run(f):
    from crbm_jax.cli import CLIError  # pylint: disable=import-outside-toplevel
    try:
      return body(f)
    except _errors() as e:
      raise CLIError(str(e)) from e
  return run


def _default_workers() -> int:
  return max(1, min(4, os.cpu_count() or 1))


def _define_features_flags() -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  from crbm_jax.cli import _define  # pylint: disable=import-outside-toplevel
  _define(flags.DEFINE_string, "audio", None, "Folder of audio files (searched "
          "recursively), a .txt file listing audio paths, or one audio file.",
          required=True)
  _define(flags.DEFINE_string, "tags", None, "Optional tag table whose clips to cut (see "
          "above for how clips are matched to files).")
  _define(flags.DEFINE_string, "out", None, "Output .npz.", required=True)
  _define(flags.DEFINE_string, "cache_dir", "auto", "Feature cache folder; 'auto' = "
          "<out folder>/.crbm-features-cache; 'none' = no cache.")
  _define(flags.DEFINE_integer, "workers", _default_workers(), "Worker processes.")
  _define(flags.DEFINE_integer, "num_clips", 5, "Evenly spaced clips per file (when the "
          "tag table gives no start/duration).")
  _define(flags.DEFINE_float, "clip_seconds", 10.0, "Length of the evenly spaced clips.")
  _define(flags.DEFINE_float, "min_clip_seconds", 1.0, "Tag-table segments with less "
          "audio than this are skipped.")
  _define(flags.DEFINE_bool, "progress", True, "Progress on stderr.")


def _cache_dir(spec: str, out: str):
  if spec == "none":
    return None
  if spec == "auto":
    return os.path.join(os.path.dirname(os.path.abspath(out)), ".crbm-features-cache")
  return spec


def run_features(audio: str, out: str, *, tags=None, cache_dir="auto", workers=2,
                 num_clips=5, clip_seconds=10.0, min_clip_seconds=1.0, progress=True,
                 log=print) -> dict:
  """crbm-features as a function; returns a summary dict."""
  from crbm_jax.autotag import features, product  # pylint: disable=import-outside-toplevel
  if not out.endswith(".npz"):
    raise product.AutotagError(f"--out {out}: the features file must end in .npz")
  out_dir = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(out_dir):
    raise product.AutotagError(f"--out {out}: folder {out_dir} does not exist; create it")
  if os.path.isdir(out):
    raise product.AutotagError(f"--out {out} is a folder; give a .npz file name")
  if workers < 1 or num_clips < 1 or not clip_seconds > 0 or min_clip_seconds < 0:
    raise product.AutotagError("--workers and --num_clips must be >= 1, --clip_seconds > 0 "
                               "and --min_clip_seconds >= 0")
  config = features.FeatureConfig(num_clips=num_clips, clip_seconds=clip_seconds)
  fs = product.extract_features(audio, tags, config=config, num_workers=workers,
                                cache_dir=_cache_dir(cache_dir, out),
                                min_clip_seconds=min_clip_seconds, progress=progress,
                                log=log)
  if fs.num_clips == 0:
    raise product.AutotagError(f"{audio}: no clip could be used "
                               f"({product.count_reasons(r for _, r in fs.skipped)}); "
                               "nothing written")
  product.save_features(out, fs)
  counts = fs.skip_counts()
  log(f"crbm-features: {fs.num_clips} clips x {fs.features.shape[1]} features from "
      f"{len(set(fs.paths.tolist()))} files -> {out}"
      + (f"; skipped {len(fs.skipped)}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
         if fs.skipped else ""))
  for what, reason in fs.skipped[:10]:
    log(f"crbm-features: skipped {what}: {reason}")
  if len(fs.skipped) > 10:
    log(f"crbm-features: ... and {len(fs.skipped) - 10} more (listed in {out})")
  return {"clips": fs.num_clips, "skipped": counts}


def features_main() -> None:
  """Console script crbm-features."""
  from crbm_jax.cli import _run_tool  # pylint: disable=import-outside-toplevel
  _run_tool("crbm-features", FEATURES_DOC, _define_features_flags, _wrap(
      lambda f: run_features(f.audio, f.out, tags=f.tags, cache_dir=f.cache_dir,
                             workers=f.workers, num_clips=f.num_clips,
                             clip_seconds=f.clip_seconds,
                             min_clip_seconds=f.min_clip_seconds, progress=f.progress)))


def _define_train_flags() -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  from crbm_jax.cli import _define  # pylint: disable=import-outside-toplevel
  _define(flags.DEFINE_string, "features", None, "Features .npz (crbm-features, or any "
          "npz with 'features' and 'clip_ids').", required=True)
  _define(flags.DEFINE_string, "tags", None, "Tag table of the clips (TSV/CSV).",
          required=True)
  _define(flags.DEFINE_string, "workdir", None, "Output folder.", required=True)
  _define(flags.DEFINE_enum, "labels", "raw", ["raw", "smoothed"], "Train on raw tags or "
          "on CRBM-smoothed affinities.")
  _define(flags.DEFINE_string, "smoothed", None, "crbm-smooth output for --labels="
          "smoothed (default: train a CRBM and smooth first).")
  _define(flags.DEFINE_enum, "model", "nusvc", ["nusvc", "linear"], "nusvc: linear "
          "nu-SVM with Platt probabilities (the paper); linear: logistic regression.")
  _define(flags.DEFINE_integer, "folds", 5, "Cross-validation folds (0 = no "
          "cross-validation: only the final classifiers).")
  _define(flags.DEFINE_integer, "seed", 0, "Seed of folds, example ties and calibration.")
  _define(flags.DEFINE_integer, "max_per_class", 100, "Examples per class per tag (top "
          "and bottom by affinity).")
  _define(flags.DEFINE_integer, "min_verified", 0, "Raw labels: users needed for a "
          "positive (0: 2 if any clip has a tag from 2 users, else 1).")
  _define(flags.DEFINE_integer, "min_train_per_class", 5, "Tags with fewer positives "
          "or negatives are left out.")
  _define(flags.DEFINE_float, "nu", 0.5, "nu of the nu-SVM.")
  _define(flags.DEFINE_integer, "top_tags", 0, "Keep the N most used tags (0 = all).")
  _define(flags.DEFINE_bool, "canonicalize", True, "Canonicalise tags as crbm-fit does.")
  _define(flags.DEFINE_bool, "progress", True, "Progress on stderr.")


def smooth_with_crbm(tags: str, workdir: str, seed: int = 0, log=print) -> str:
  """Trains the smoothing CRBM (``crbm_jax.cli.run_fit``, with its validation-selected
  settings) and smooths (``run_smooth``); returns the smoothed table's path. Imports JAX
  (only here)."""
  from crbm_jax import cli  # pylint: disable=import-outside-toplevel
  crbm_dir = os.path.join(workdir, "crbm")
  log(f"crbm-autotag: no --smoothed file; training a CRBM on {tags} in {crbm_dir}")
  cli.run_fit(tags, crbm_dir, seed=seed, log=log)
  out = os.path.join(crbm_dir, "smoothed.tsv")
  cli.run_smooth(crbm_dir, tags, out, seed=seed, log=log)
  return out


def train_main() -> None:
  """crbm-autotag train."""
  from crbm_jax.autotag import product  # pylint: disable=import-outside-toplevel
  from crbm_jax.cli import _run_tool  # pylint: disable=import-outside-toplevel
  _run_tool("crbm-autotag train", TRAIN_DOC, _define_train_flags, _wrap(
      lambda f: product.train(
          f.features, f.tags, f.workdir, labels=f.labels, smoothed=f.smoothed,
          model=f.model, num_folds=f.folds, seed=f.seed, max_per_class=f.max_per_class,
          min_verified=f.min_verified, min_train_per_class=f.min_train_per_class,
          nu=f.nu, top_tags=f.top_tags, canonicalize=f.canonicalize,
          progress=f.progress, log=print, smoother=smooth_with_crbm)))


def _define_predict_flags() -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  from crbm_jax.cli import _define  # pylint: disable=import-outside-toplevel
  _define(flags.DEFINE_string, "workdir", None, "Folder crbm-autotag train wrote (or its "
          "autotagger/ folder).", required=True)
  _define(flags.DEFINE_string, "features", None, "Features .npz of the clips to tag.")
  _define(flags.DEFINE_string, "audio", None, "Or: audio folder/list/file to tag.")
  _define(flags.DEFINE_string, "out", None, "Output tag table (clip, tag, affinity); .csv "
          "writes CSV, otherwise TSV (.gz compresses).", required=True)
  _define(flags.DEFINE_integer, "top", 0, "Keep each clip's K most likely tags (0 = all).")
  _define(flags.DEFINE_float, "threshold", None, "Keep only affinities >= this.")
  _define(flags.DEFINE_string, "tracks_out", "", "Track summaries file ('' = "
          "<out>.tracks.<ext>; 'none' = not written).")
  _define(flags.DEFINE_string, "jams", None, "Also write JAMS tag_open files into this "
          "folder (when crbm_jax.data.jams_io is available).")
  _define(flags.DEFINE_string, "cache_dir", "auto", "Feature cache for --audio ('auto': "
          "<out folder>/.crbm-features-cache; 'none').")
  _define(flags.DEFINE_integer, "workers", _default_workers(), "Worker processes (--audio).")
  _define(flags.DEFINE_bool, "progress", True, "Progress on stderr.")


def run_predict(workdir: str, out: str, *, features=None, audio=None, top=0,
                threshold=None, tracks_out="", jams=None, cache_dir="auto", workers=2,
                progress=True, log=print) -> dict:
  """crbm-autotag predict as a function; returns write_predictions' summary."""
  from crbm_jax.autotag import product  # pylint: disable=import-outside-toplevel
  if (features is None) == (audio is None):
    raise product.AutotagError("give exactly one of --features and --audio")
  if jams and not product.jams_available():
    raise product.AutotagError("--jams needs crbm_jax.data.jams_io, which this version "
                               "lacks; leave out --jams")
  at = product.load_autotagger(workdir)
  if features is not None:
    pred = product.predict(at, features)
  else:
    pred, _ = product.predict_audio(at, audio, num_workers=workers,
                                    cache_dir=_cache_dir(cache_dir, out),
                                    progress=progress, log=log)
  return product.write_predictions(pred, out, top_k=top, threshold=threshold,
                                   tracks_out=None if tracks_out == "none" else tracks_out,
                                   jams_dir=jams, log=log)


def predict_main() -> None:
  """crbm-autotag predict."""
  from crbm_jax.cli import _run_tool  # pylint: disable=import-outside-toplevel
  _run_tool("crbm-autotag predict", PREDICT_DOC, _define_predict_flags, _wrap(
      lambda f: run_predict(f.workdir, f.out, features=f.features, audio=f.audio,
                            top=f.top, threshold=f.threshold, tracks_out=f.tracks_out,
                            jams=f.jams, cache_dir=f.cache_dir, workers=f.workers,
                            progress=f.progress)))


COMMANDS = {"train": train_main, "predict": predict_main}


def autotag_main(argv: Sequence[str] = None) -> None:
  """Console script crbm-autotag: ``crbm-autotag {train,predict} [flags]``."""
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] not in COMMANDS:
    print("usage: crbm-autotag {train,predict} [flags]  (crbm-autotag train --help for a "
          "command's flags)", file=sys.stderr)
    sys.exit(2)
  command = argv[1]
  sys.argv = [f"crbm-autotag {command}"] + argv[2:]
  COMMANDS[command]()


if __name__ == "__main__":
  autotag_main()
