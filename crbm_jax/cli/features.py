"""crbm-features: clip features of audio files (a thin launcher over
``crbm_jax.autotag.featureset``). Imports no JAX."""
from __future__ import annotations

import os
import sys

from crbm_jax.cli import runner

PROG = "crbm-features"
DOC = """crbm-features: timbral and rhythmic features of audio clips (389 per clip).

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


def default_workers() -> int:
  return max(1, min(4, os.cpu_count() or 1))


def cache_folder(spec: str, out: str):
  """--cache_dir value -> a folder or None ('auto': beside --out; 'none': no cache)."""
  if spec == "none":
    return None
  if spec == "auto":
    return os.path.join(os.path.dirname(os.path.abspath(out)), ".crbm-features-cache")
  return spec


def autotag_errors() -> tuple:
  """The autotag package's one-line errors (shared with crbm-autotag)."""
  from crbm_jax.autotag import audio, store  # pylint: disable=import-outside-toplevel
  from crbm_jax.autotag.errors import AutotagError  # pylint: disable=import-outside-toplevel
  return (AutotagError, store.StoreError, audio.AudioError)


errors = autotag_errors


def define_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  define(flags.DEFINE_string, "audio", None, "Folder of audio files (searched "
         "recursively), a .txt file listing audio paths, or one audio file.", required=True)
  define(flags.DEFINE_string, "tags", None, "Optional tag table whose clips to cut (see "
         "above for how clips are matched to files).")
  define(flags.DEFINE_string, "out", None, "Output .npz.", required=True)
  define(flags.DEFINE_string, "cache_dir", "auto", "Feature cache folder; 'auto' = "
         "<out folder>/.crbm-features-cache; 'none' = no cache.")
  define(flags.DEFINE_integer, "workers", default_workers(), "Worker processes.")
  define(flags.DEFINE_integer, "num_clips", 5, "Evenly spaced clips per file (when the "
         "tag table gives no start/duration).")
  define(flags.DEFINE_float, "clip_seconds", 10.0, "Length of the evenly spaced clips.")
  define(flags.DEFINE_float, "min_clip_seconds", 1.0, "Tag-table segments with less "
         "audio than this are skipped.")
  define(flags.DEFINE_bool, "progress", True, "Progress on stderr.")


def run_features(audio: str, out: str, *, tags=None, cache_dir="auto", workers=2,
                 num_clips=5, clip_seconds=10.0, min_clip_seconds=1.0, progress=True,
                 log=print) -> dict:
  """crbm-features as a function; returns a summary dict."""
  from crbm_jax.autotag import featureset, features  # pylint: disable=import-outside-toplevel
  from crbm_jax.autotag.errors import AutotagError, check_output_file  # pylint: disable=import-outside-toplevel
  if not out.endswith(".npz"):
    raise AutotagError(f"--out {out}: the features file must end in .npz")
  check_output_file(out, "--out", "a .npz file name")
  if workers < 1 or num_clips < 1 or not clip_seconds > 0 or min_clip_seconds < 0:
    raise AutotagError("--workers and --num_clips must be >= 1, --clip_seconds > 0 and "
                       "--min_clip_seconds >= 0")
  config = features.FeatureConfig(num_clips=num_clips, clip_seconds=clip_seconds)
  fs = featureset.extract_features(audio, tags, config=config, num_workers=workers,
                                   cache_dir=cache_folder(cache_dir, out),
                                   min_clip_seconds=min_clip_seconds, progress=progress,
                                   log=log)
  if fs.num_clips == 0:
    raise AutotagError(f"{audio}: no clip could be used "
                       f"({featureset.count_reasons(r for _, r in fs.skipped)}); nothing "
                       "written")
  featureset.save_features(out, fs)
  counts = fs.skip_counts()
  log(f"{PROG}: {fs.num_clips} clips x {fs.features.shape[1]} features from "
      f"{len(set(fs.paths.tolist()))} files -> {out}"
      + (f"; skipped {len(fs.skipped)}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
         if fs.skipped else ""))
  for what, reason in fs.skipped[:10]:
    log(f"{PROG}: skipped {what}: {reason}")
  if len(fs.skipped) > 10:
    log(f"{PROG}: ... and {len(fs.skipped) - 10} more (listed in {out})")
  return {"clips": fs.num_clips, "skipped": counts}


def run(f) -> dict:
  return run_features(f.audio, f.out, tags=f.tags, cache_dir=f.cache_dir,
                      workers=f.workers, num_clips=f.num_clips,
                      clip_seconds=f.clip_seconds, min_clip_seconds=f.min_clip_seconds,
                      progress=f.progress)


def main(argv=None) -> int:
  """Console script crbm-features (``argv`` None: this process's command line)."""
  return runner.run_tool(sys.modules[__name__], argv)
