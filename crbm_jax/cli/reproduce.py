"""crbm-reproduce: a thin launcher over ``crbm_jax.paper.reproduce.run_reproduction``."""
from __future__ import annotations

import sys

from crbm_jax.cli import runner

PROG = "crbm-reproduce"
DOC = """crbm-reproduce: the paper's tables and figures on the embedded default data.

Runs Table 1 / Figure 1, Table 2 (with the Last.fm W_aux report), Table 3 / Figure 2 (with
the simulated study's recovery of hidden true tags and the sparsity experiment on
MajorMiner) and the beyond-the-paper section, each in a subfolder of --workdir, then writes
--workdir/REPORT.md and REPORT.html, opening with a scorecard of the paper's claims.
Progress goes to stderr. Table 2's finished stages are saved as they finish: a run that
is stopped and started again with the same --workdir does not redo them.
"""


def define_flags(define) -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  from crbm_jax.configs import reproduce as reproduce_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import reproduce  # pylint: disable=import-outside-toplevel
  define(flags.DEFINE_string, "workdir", None, "Folder for REPORT.md, REPORT.html and every "
         "stage's tables, figures and results (created if missing).", required=True)
  define(flags.DEFINE_enum, "config", "default", list(reproduce_config.VARIANTS),
         "smoke: about a minute on small data (what the tests run); default: the "
         "embedded run, about 10 minutes on an idle 2-core CPU (less with a warm compilation cache); full: the paper's complete "
         "grid and settings (hours).")
  define(flags.DEFINE_integer, "processes", None, "Run the stages at the same time in this "
         "many processes, longest first (default: the config's, 2 for default and full, 1 "
         "for smoke; 1: one after the other). The report and its numbers are the same.",
         lower_bound=1)
  define(flags.DEFINE_integer, "threads", None, "JAX compute threads per process "
         "(default: the config's, 1 for default and full, 0 for smoke; 0: JAX's default, "
         "one per core). One keeps the run's several processes from oversubscribing the "
         "cores. The count is part of the computation: numbers differ in the last digits "
         "between counts.", lower_bound=0)
  define(flags.DEFINE_list, "stages", None, "Run only these stages, comma-separated, "
         f"among {','.join(reproduce.STAGES)} (default: all).")


def run(f) -> None:
  import os  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import runs  # pylint: disable=import-outside-toplevel
  runs.check_folder(os.path.abspath(f.workdir), "--workdir")  # before any work
  from crbm_jax.configs import reproduce as reproduce_config  # pylint: disable=import-outside-toplevel
  from crbm_jax.paper import reproduce  # pylint: disable=import-outside-toplevel
  config = reproduce_config.get_config(f.config)
  if f.threads is not None:
    config.threads = f.threads
  if f.stages:
    unknown = [s for s in f.stages if s not in reproduce.STAGES]
    if unknown:
      raise runner.CLIError(f"unknown stage(s) {', '.join(unknown)}; choose among "
                            f"{', '.join(reproduce.STAGES)}")
  reproduce.run_reproduction(config, f.workdir, stages=f.stages, processes=f.processes)


def errors() -> tuple:
  from crbm_jax.learn.search import DivergenceError  # pylint: disable=import-outside-toplevel
  from crbm_jax.model.marginals import SmoothingError  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import model_io, runs  # pylint: disable=import-outside-toplevel
  return (DivergenceError, SmoothingError, model_io.ModelFormatError,
          runs.DestinationError)


def interrupted(f) -> str:
  return (f"finished stages and Table 2 fits in {f.workdir} are kept; run the same "
          "command again to resume")


def main(argv=None) -> int:
  """Console script crbm-reproduce (``argv`` None: this process's command line)."""
  return runner.run_tool(sys.modules[__name__], argv)
