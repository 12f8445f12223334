"""Helpers the CLI tests share: run a console script in this process, read a folder."""
import contextlib
import importlib
import io
import os
import types


def run_tool(tool, *args):
  """``crbm-<tool> args`` in this process (its ``main(argv)``): returncode, stdout, stderr."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = importlib.import_module(f"crbm_jax.cli.{tool}").main([f"crbm-{tool}", *args])
  return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def tree(path):
  """{relative path: bytes} of every file below ``path`` (to check nothing changed)."""
  out = {}
  for folder, _, files in os.walk(path):
    for name in files:
      p = os.path.join(folder, name)
      with open(p, "rb") as f:
        out[os.path.relpath(p, path)] = f.read()
  return out
