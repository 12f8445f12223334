"""The console scripts: one small module per tool, thin launchers over the library.

  crbm-reproduce     cli/reproduce.py     -> crbm_jax.paper.reproduce.run_reproduction
  crbm-fit           cli/fit.py           -> crbm_jax.fitting.fit_tag_table
  crbm-smooth        cli/smooth.py        -> crbm_jax.fitting.smooth_tag_table
  crbm-cooccurrence  cli/cooccurrence.py  -> crbm_jax.paper.table1.run_table1
  crbm-convert       cli/convert.py       -> crbm_jax.data.formats / jams_io
  crbm-features      cli/features.py      -> crbm_jax.autotag.featureset
  crbm-autotag       cli/autotag.py       -> crbm_jax.autotag.training / prediction

``cli/runner.py`` is the plumbing they share (flags on a FlagValues of their own, one-line
errors, the Ctrl-C handler installed before any heavy import, closed stdout pipes). Each
tool module has ``main(argv=None) -> exit status``; ``python -m crbm_jax.cli <tool>
[flags]`` runs one by name. Importing this package or a tool module imports neither JAX
nor numpy.

Names of the former single module ``crbm_jax.cli`` (``run_fit``, ``run_smooth``, ...)
still resolve here, lazily, to their new homes (``_MOVED``).

A console script (``sys.argv[0]`` named ``crbm-*``) gets a minimal Ctrl-C handler the
moment this package is imported, before anything else of the tool is: a Ctrl-C then
ends it with one line and status 130 (the runner later installs the full handler).
"""
import os as _os
import signal as _signal
import sys as _sys


def _install_early_interrupt() -> None:
  prog = _os.path.basename(_sys.argv[0]) if _sys.argv and _sys.argv[0] else ""
  if (not prog.startswith("crbm-")
      or _signal.getsignal(_signal.SIGINT) is not _signal.default_int_handler):
    return
  if "multiprocessing.spawn" in _sys.modules:
    # A worker the tool spawned (it re-imports the script): Ctrl-C is the tool's to
    # handle (a terminal sends it to every process of the group); a worker's own
    # KeyboardInterrupt would print a traceback.
    try:
      _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    except ValueError:
      pass
    return

  def handler(signum, frame):  # pylint: disable=unused-argument
    try:
      _os.write(2, f"{prog}: interrupted; nothing was written; run the same command "
                "again\n".encode("utf-8", "replace"))
    finally:
      _os._exit(130)  # pylint: disable=protected-access

  try:
    _signal.signal(_signal.SIGINT, handler)
  except ValueError:  # not the main thread
    pass


_install_early_interrupt()

import importlib  # pylint: disable=wrong-import-position

TOOLS = {"reproduce": "crbm_jax.cli.reproduce", "fit": "crbm_jax.cli.fit",
         "smooth": "crbm_jax.cli.smooth", "cooccurrence": "crbm_jax.cli.cooccurrence",
         "convert": "crbm_jax.cli.convert", "features": "crbm_jax.cli.features",
         "autotag": "crbm_jax.cli.autotag"}

# Former names -> (module, name) now.
_MOVED = {
    "run_fit": ("crbm_jax.fitting.fit", "fit_tag_table"),
    "run_smooth": ("crbm_jax.fitting.smooth", "smooth_tag_table"),
    "prepare_fit_data": ("crbm_jax.fitting.inputs", "prepare_fit_data"),
    "FitData": ("crbm_jax.fitting.inputs", "FitData"),
    "load_tags": ("crbm_jax.fitting.inputs", "load_tags"),
    "reduce_seed": ("crbm_jax.fitting.inputs", "reduce_seed"),
    "check_hparams": ("crbm_jax.fitting.inputs", "check_hparams"),
    "SEARCH_DEFAULTS": ("crbm_jax.fitting.fit", "SEARCH_DEFAULTS"),
    "fit_summary": ("crbm_jax.fitting.report", "fit_summary"),
    "run_cooccurrence": ("crbm_jax.cli.cooccurrence", "run_cooccurrence"),
    "run_convert": ("crbm_jax.cli.convert", "run_convert"),
}


def __getattr__(name):
  if name not in _MOVED:
    raise AttributeError(f"module 'crbm_jax.cli' has no attribute {name!r}")
  module, attr = _MOVED[name]
  return getattr(importlib.import_module(module), attr)
