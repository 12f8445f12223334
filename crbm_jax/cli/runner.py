"""The plumbing every console script shares: flags, one-line errors, Ctrl-C, closed pipes.

A tool is a module with ``PROG``, ``DOC``, ``define_flags(define)``, ``run(flags)`` (or
``run(flags, args)`` with ``TAKES_ARGS``), and optionally ``errors()`` (the exception
types that are the user's mistakes, beyond ``BASE_ERRORS``; called only when one is
raised, so it may import what the tool already imported) and ``interrupted(flags)``
(what a Ctrl-C keeps). ``run_tool(tool, argv)`` runs it:

1. As a program (``argv`` None: a console script or ``python -m crbm_jax.cli``), the
   Ctrl-C handler (``util.interrupt``) and the closed-pipe guard are installed first,
   before any heavy import, so a Ctrl-C at any moment ends the tool with one line and
   status 130. Called in-process with an explicit ``argv`` (tests, other programs),
   nothing process-wide is installed.
2. The tool's flags are defined on a fresh ``absl.flags.FlagValues`` of its own (never
   the global ``FLAGS``), so a tool defines only its own flags and tools can run one after
   another in one process. ``--help`` (``-h``, ``--helpshort``, ``--helpfull``) prints
   ``DOC`` and the flags and exits 0.
3. ``run`` is called; a user error (a bad flag value, ``BASE_ERRORS``, ``errors()``)
   ends it with ``<prog>: error: <one line>`` on stderr and status 1.

The tool modules import nothing heavy at module level: JAX, numpy and the data layer are
imported inside ``run`` (and ``define_flags`` where a flag's choices need them), so a tool
that does not need JAX never imports it.
"""
from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from crbm_jax.util import compile_cache, interrupt

HELP_ARGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")
GENERIC_KEPT = "outputs already written are complete; run the same command again"


class CLIError(ValueError):
  """A bad command line, said in one line with what to do."""


def base_errors() -> tuple:
  """The user errors every tool reports in one line (no JAX: these modules are light)."""
  from crbm_jax.data.errors import DataError  # pylint: disable=import-outside-toplevel
  from crbm_jax.fitting.inputs import InputError  # pylint: disable=import-outside-toplevel
  return (CLIError, InputError, DataError, OSError)


def make_define(flag_values, prog: str) -> Callable:
  """``define(define_fn, name, default, help, **kw)`` on ``flag_values``, the flags
  registered under ``prog`` (for --help); a name already defined is skipped."""
  def define(define_fn, name: str, *args, **kw) -> None:
    if name not in flag_values:
      define_fn(name, *args, flag_values=flag_values, module_name=prog, **kw)
  return define


def tool_flags(tool):
  """A fresh ``FlagValues`` holding exactly ``tool``'s flags (unparsed): for --help, and
  for anyone who wants to list a tool's flags (e.g. documentation checks)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  tool.define_flags(make_define(flag_values, tool.PROG))
  return flag_values


def help_text(tool, flag_values) -> str:
  return f"{tool.DOC.rstrip()}\n\nflags:\n{flag_values.module_help(tool.PROG)}\n"


def parsed(flag_values) -> bool:
  return flag_values is not None and flag_values.is_parsed()


def format_flags(define, format_flag: str = "format") -> None:
  """Defines ``--<format_flag>`` and the public formats' option flags (``data.formats``)."""
  from crbm_jax.data import formats  # pylint: disable=import-outside-toplevel
  formats.define_format_flags(define, format_flag=format_flag)


def format_kw(f, format_flag: str = "format") -> dict:
  """{'fmt', 'format_options'} from parsed format flags (only options given are passed)."""
  from crbm_jax.data import formats  # pylint: disable=import-outside-toplevel
  fmt, options = formats.format_from_flags(f, format_flag)
  return {"fmt": fmt, "format_options": options}


def describe(error: BaseException) -> str:
  """The error as one line; an OSError as ``<file>: <reason>`` without the raw
  ``[Errno N]`` text."""
  if isinstance(error, OSError) and error.strerror:
    names = [n for n in (error.filename, error.filename2) if n is not None]
    text = (" -> ".join(str(n) for n in names) + ": " if names else "") + error.strerror
  else:
    text = str(error)
  return " ".join(text.split())


def one_line(prog: str, error: BaseException) -> None:
  message = describe(error)
  print(f"{prog}: error: {message}", file=sys.stderr)


def run_tool(tool, argv: Optional[Sequence[str]] = None, *,
             as_program: Optional[bool] = None) -> int:
  """Runs ``tool`` (module docstring) on ``argv`` (default ``sys.argv``; ``argv[0]`` is
  the program name); returns the exit status. ``as_program`` (default: ``argv`` is None)
  installs the Ctrl-C handler and the closed-pipe guard first."""
  prog = tool.PROG
  state = {"flags": None}
  if as_program is None:
    as_program = argv is None
  if as_program:
    kept = getattr(tool, "interrupted", None)
    interrupt.exit_on_interrupt(prog, lambda: kept(state["flags"]) if kept and parsed(
        state["flags"]) else GENERIC_KEPT)
    interrupt.quiet_broken_pipe()  # `crbm-fit ... | head -1`: finish the work quietly
  argv = list(sys.argv if argv is None else argv)
  import warnings  # pylint: disable=import-outside-toplevel
  # A title or tag with a character the plot font lacks (an emoji in a file name):
  # matplotlib draws a box and must not print a warning with a source line.
  warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
  import logging  # pylint: disable=import-outside-toplevel
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # backend probing
  from absl import flags  # pylint: disable=import-outside-toplevel
  flag_values = tool_flags(tool)
  args = argv[1:]
  options = args[:args.index("--")] if "--" in args else args
  if any(a in HELP_ARGS for a in options):
    print(help_text(tool, flag_values), end="")
    return 0
  try:
    rest = flag_values([prog] + args)[1:]
    if rest and not getattr(tool, "TAKES_ARGS", False):
      raise CLIError(f"unexpected arguments {rest}; all inputs are flags (see --help)")
  except (flags.Error, CLIError) as e:
    one_line(prog, e)
    return 1
  state["flags"] = flag_values
  compile_cache.enable(flag_values["compile_cache"].value
                       if "compile_cache" in flag_values else None)
  errors = getattr(tool, "errors", tuple)
  try:
    if getattr(tool, "TAKES_ARGS", False):
      tool.run(flag_values, rest)
    else:
      tool.run(flag_values)
  except Exception as e:  # pylint: disable=broad-except
    if not isinstance(e, base_errors()) and not isinstance(e, tuple(errors())):
      raise
    one_line(prog, e)
    return 1
  finally:
    interrupt.finish_stdout()
  return 0
