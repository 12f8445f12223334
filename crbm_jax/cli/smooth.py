"""crbm-smooth: a thin launcher over ``crbm_jax.fitting.smooth_tag_table``."""
from __future__ import annotations

import sys

from crbm_jax.cli import runner

PROG = "crbm-smooth"
DOC = """crbm-smooth: smoothed tag affinities p(tag | clip) from a trained model.

For every clip of --tags, draws --samples samples from the model of --workdir's current
run (<workdir>/current/model; the <workdir>/model folder of earlier versions also reads)
conditioned on the clip's track/clip/artist/album, with the user factored out (Section 4
of the paper), and writes a tag table with columns clip, [track], tag, affinity, display
(TSV or CSV by the extension of --out). With --train it first trains that model on --tags
(crbm-fit's validation search). It reports how much each auxiliary group moves the
affinities.
"""


def define_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  string, integer, real, boolean = (flags.DEFINE_string, flags.DEFINE_integer,
                                    flags.DEFINE_float, flags.DEFINE_bool)
  define(string, "workdir", None, "Folder that crbm-fit wrote (the model of its current "
         "run, <workdir>/current/model, is read).", required=True)
  define(string, "tags", None, "Tag-table file whose clips are smoothed (its clip, track, "
         "artist, album columns give the auxiliary input), or a file/folder in a public "
         "format (see --format).", required=True)
  define(string, "out", None, "Output tag table; .csv writes CSV, otherwise TSV (.gz "
         "compresses).", required=True)
  define(integer, "samples", 1000, "Samples per clip (method 'sample').")
  define(flags.DEFINE_enum, "method", "sample", ["sample", "mean_field"],
         "'sample': mean of Gibbs samples (the paper); 'mean_field': deterministic "
         "mean-field approximation.")
  define(string, "factor_out", "user", "Comma-separated auxiliary groups to leave out of "
         "every clip's input ('' = none).")
  define(integer, "burn_in", 100, "Gibbs sweeps before the first recorded sample.")
  define(integer, "thin", 1, "Gibbs sweeps between recorded samples.")
  define(integer, "batch", 64, "Clips sampled at once (memory: samples x batch x tags).")
  define(integer, "seed", 0, "Sampling seed (and, with --train, the split and training "
         "seed).")
  define(boolean, "train", False, "First train a model on --tags into --workdir with "
         "crbm-fit's defaults: the validation search over hidden units, learning rate, "
         "L1, aux_lr_scale and weight decay, judged on held-out observations of clips "
         "and tracks seen in training.")
  define(string, "aux", "auto", "With --train: the auxiliary groups (as crbm-fit --aux).")
  define(integer, "search_configs", 96, "With --train: configurations the search tries.")
  define(real, "search_seconds", 0.0, "With --train: the search's time budget in "
         "seconds (0 = none).")
  define(real, "memory_gb", 0.0, "With --train: the memory budget in GB (as crbm-fit "
         "--memory_gb; 0 = 25% of RAM).")
  define(boolean, "aux_effect", True, "Report how much each auxiliary group (track, clip, "
         "...) moves the affinities: mean |affinity - affinity without that group's "
         "row|, by mean field.")
  runner.format_flags(define)


def run(f) -> dict:
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  from crbm_jax.fitting.inputs import parse_factor_out  # pylint: disable=import-outside-toplevel
  return fitting.smooth_tag_table(
      f.workdir, f.tags, f.out, num_samples=f.samples, method=f.method,
      factor_out=parse_factor_out(f.factor_out), burn_in=f.burn_in, thin=f.thin,
      seed=f.seed, batch=f.batch, train=f.train, aux_effect=f.aux_effect,
      fit_options={"aux": f.aux, "search_configs": f.search_configs,
                   "search_seconds": f.search_seconds, "memory_gb": f.memory_gb}, **runner.format_kw(f))


def errors() -> tuple:
  from crbm_jax.learn.search import DivergenceError  # pylint: disable=import-outside-toplevel
  from crbm_jax.model.marginals import SmoothingError  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import model_io, runs  # pylint: disable=import-outside-toplevel
  return (DivergenceError, SmoothingError, model_io.ModelFormatError,
          runs.DestinationError)


def interrupted(f) -> str:
  return (f"{f.out} was not written (an older file there is unchanged); run the same "
          "command again")


def main(argv=None) -> int:
  """Console script crbm-smooth (``argv`` None: this process's command line)."""
  return runner.run_tool(sys.modules[__name__], argv)
