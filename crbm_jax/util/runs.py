"""A work directory's runs: each crbm-fit run's outputs written and switched as one unit.

Layout of ``<workdir>``::

  runs/0001/          one finished run: model/ (params.npz, model.json), metrics.json
  runs/0002/            and any extra outputs (learning_curve.png, history.csv, ...)
  current -> runs/0002   the run in use: a symbolic link, replaced atomically
  model -> current/model, metrics.json -> current/metrics.json   (fixed links, so the
                         paths of earlier versions keep working)

``publish_run`` assembles a new run in ``runs/.tmp-<host>-<pid>-<random>``, renames it to
the next free number and then replaces ``current`` with one ``os.replace`` of a new link:
a kill at any point leaves ``current`` on either the old run or the new one, never on a
mixture (model and metrics are in the same folder). What a kill can leave behind, a
``runs/.tmp-*`` folder of a process that is gone or a finished run that never became
current, is removed by ``check_workdir`` at the start of the next run (such a finished
run is kept like any old run). The newest ``KEEP_RUNS`` runs are kept; older ones are
removed when a run is published. Where the file system has no symbolic links,
``current`` is a small file holding the run's name (replaced the same way).

Outputs of earlier versions (a real ``<workdir>/model`` folder and ``metrics.json`` file)
still load; the next published run moves them into ``runs/legacy-<n>/`` and puts the
links in their place. ``check_workdir`` checks every destination before any work starts
and says in one line what to do when one cannot be written.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from typing import Dict, Iterator, Optional, Sequence

from crbm_jax.util import interrupt, model_io
from crbm_jax.util.atomic import json_text

RUNS_DIR = "runs"
CURRENT = "current"
MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
KEEP_RUNS = 5
STALE_TMP_SECONDS = 24 * 3600  # a temporary folder of another host: removed after a day
_RUN_NAME = re.compile(r"^\d{4,}$")
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname() or "host")


class DestinationError(ValueError):
  """An output place that cannot be written; the message says what to do."""


def _runs(workdir: str) -> str:
  return os.path.join(workdir, RUNS_DIR)


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # exists, owned by someone else
    return True
  return True


def _is_stale(name: str, path: str) -> bool:
  """A runs/.tmp-<host>-<pid>-* folder whose process is gone (or older than a day)."""
  m = re.match(r"^\.tmp-(.+)-(\d+)-[^-]+$", name)
  if m and m.group(1) == _HOST:
    return not _pid_alive(int(m.group(2))) or int(m.group(2)) == os.getpid()
  try:
    return time.time() - os.path.getmtime(path) > STALE_TMP_SECONDS
  except OSError:
    return False


def tmp_prefix(kind: str) -> str:
  """``.tmp-<kind>-<host>-<pid>-``: a temporary folder's name prefix that
  ``clean_stale_tmp`` can tell stale (its process gone) from in use."""
  return f".tmp-{kind}-{_HOST}-{os.getpid()}-"


def clean_stale_tmp(folder: str, kind: str) -> list:
  """Removes ``folder``'s ``tmp_prefix(kind)`` folders whose process is gone (on this
  host; another host's after a day): what a killed or interrupted run left behind."""
  done = []
  start = f".tmp-{kind}-"
  try:
    names = os.listdir(folder)
  except OSError:
    return done
  for name in sorted(names):
    path = os.path.join(folder, name)
    if not name.startswith(start) or not os.path.isdir(path):
      continue
    rest = name[len(start):]
    m = re.match(r"^(.+)-(\d+)-[^-]+$", rest)
    if m and m.group(1) == _HOST:
      stale = not _pid_alive(int(m.group(2)))
    else:
      try:
        stale = time.time() - os.path.getmtime(path) > STALE_TMP_SECONDS
      except OSError:
        stale = False
    if stale:
      shutil.rmtree(path, ignore_errors=True)
      done.append(path)
  return done


def clean_stale(workdir: str) -> list:
  """Removes what an interrupted run left behind; returns the paths removed or restored.

  runs/.tmp-* of processes that are gone; from the single-model layout of earlier
  versions, .tmp-model-* folders (an unfinished new model) and .old-model-* folders (the
  old model during a swap: renamed back to model/ when model/ is missing).
  """
  done = []
  runs = _runs(workdir)
  if os.path.isdir(runs):
    for name in sorted(os.listdir(runs)):
      path = os.path.join(runs, name)
      if name.startswith(".tmp-") and _is_stale(name, path):
        shutil.rmtree(path, ignore_errors=True)
        done.append(path)
  if os.path.isdir(workdir):
    model = os.path.join(workdir, MODEL_DIR)
    for name in sorted(os.listdir(workdir)):
      path = os.path.join(workdir, name)
      if name.startswith(".tmp-model-"):
        shutil.rmtree(path, ignore_errors=True)
        done.append(path)
      elif name.startswith(".tmp-link-") and os.path.islink(path):
        os.remove(path)
        done.append(path)
      elif name.startswith(".old-model-"):
        if not os.path.lexists(model):
          os.rename(path, model)
        else:
          shutil.rmtree(path, ignore_errors=True)
        done.append(path)
  return done


def check_folder(path: str, what: str) -> None:
  """Proves ``path`` writable, or creatable in its nearest existing parent, without
  creating it (one line on failure): a failed run leaves no empty folder behind."""
  if os.path.lexists(path) and not os.path.isdir(path):
    raise DestinationError(f"{what} {path} is a file, not a folder; give a folder path "
                           "(or move the file away)")
  existing = path
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise DestinationError(f"{what} {path}: {existing} is a file, not a folder; give a "
                           "folder path (or move the file away)")
  try:
    probe = tempfile.mkdtemp(prefix=".tmp-probe-", dir=existing)
    os.rmdir(probe)
  except OSError as e:
    raise DestinationError(f"{what} {path}: cannot write there ({e.strerror or e}); "
                           "choose a folder you can write to (or fix its permissions)"
                           ) from None


def check_workdir(workdir: str) -> str:
  """Checks, before any work, that a run can be published in ``workdir``; creates it and
  removes what an interrupted run left behind. Returns its absolute path.

  Raises:
    DestinationError (one line saying what to do) when workdir or runs/ is a file, a
    folder cannot be written, or model / metrics.json / current are something crbm-fit
    did not write (e.g. metrics.json is a folder).
  """
  workdir = os.path.abspath(os.fspath(workdir))
  check_folder(workdir, "--workdir")
  runs = _runs(workdir)
  if os.path.lexists(runs) and not os.path.isdir(runs):
    raise DestinationError(f"{runs} is a file, not crbm-fit's runs folder; move it away "
                           "or choose another --workdir")
  check_folder(runs, "--workdir")
  current = os.path.join(workdir, CURRENT)
  if os.path.lexists(current) and not (os.path.islink(current) or os.path.isfile(current)):
    raise DestinationError(f"{current} is a folder, not crbm-fit's pointer to the current "
                           "run; move it away or choose another --workdir")
  metrics = os.path.join(workdir, METRICS_FILE)
  if os.path.isdir(metrics) and not os.path.islink(metrics):
    raise DestinationError(f"{metrics} is a folder, not a metrics file; move it away or "
                           "choose another --workdir")
  model = os.path.join(workdir, MODEL_DIR)
  if os.path.lexists(model) and not os.path.islink(model):
    if not os.path.isdir(model):
      raise DestinationError(f"{model} is a file, not a model folder; move it away or "
                             "choose another --workdir")
    if os.listdir(model) and not os.path.isfile(os.path.join(model, model_io.META_FILE)):
      raise DestinationError(f"{model} is a folder that crbm-fit did not write; move it "
                             "away or choose another --workdir")
  clean_stale(workdir)
  return workdir


def current_run(workdir: str) -> Optional[str]:
  """The absolute path of the current run folder, or None when there is none."""
  current = os.path.join(workdir, CURRENT)
  if os.path.islink(current):
    name = os.path.basename(os.readlink(current).rstrip("/"))
  elif os.path.isfile(current):
    with open(current, encoding="utf-8") as f:
      name = f.read().strip()
  else:
    return None
  if not _RUN_NAME.match(name):
    raise model_io.ModelFormatError(f"{current}: does not name a run folder ({name!r}); "
                                    "run crbm-fit again")
  path = os.path.join(_runs(workdir), name)
  if not os.path.isdir(path):
    runs = _runs(workdir)
    others = _run_numbers(runs) if os.path.isdir(runs) else []
    hint = (f"; {RUNS_DIR}/{others[-1]:04d} exists: point {CURRENT} at it (ln -sfn "
            f"{RUNS_DIR}/{others[-1]:04d} {current}) or" if others else ";")
    raise model_io.ModelFormatError(f"{current}: points to {path}, which is missing"
                                    f"{hint} run crbm-fit again")
  return path


def _run_numbers(runs: str) -> list:
  return sorted(int(n) for n in os.listdir(runs) if _RUN_NAME.match(n))


def _replace_link(path: str, target: str, fallback_text: Optional[str]) -> None:
  """Atomically makes ``path`` a symbolic link to ``target`` (relative); where links
  cannot be made, a small file holding ``fallback_text`` (nothing when None)."""
  folder = os.path.dirname(path)
  tmp = os.path.join(folder, f".tmp-link-{os.getpid()}-{os.urandom(4).hex()}")
  try:
    os.symlink(target, tmp)
  except (OSError, NotImplementedError):
    if fallback_text is None:
      return
    from crbm_jax.util.atomic import write_text_atomic  # pylint: disable=import-outside-toplevel
    write_text_atomic(path, fallback_text + "\n")
    return
  try:
    os.replace(tmp, path)
  except BaseException:
    if os.path.lexists(tmp):
      os.remove(tmp)
    raise


def _adopt_legacy(workdir: str) -> None:
  """Moves a real model/ folder and metrics.json file of an earlier version into
  runs/legacy-<n>/ and puts the fixed links in their place."""
  model = os.path.join(workdir, MODEL_DIR)
  metrics = os.path.join(workdir, METRICS_FILE)
  legacy = [p for p in (model, metrics) if os.path.lexists(p) and not os.path.islink(p)]
  if legacy:
    runs = _runs(workdir)
    existing = [n for n in os.listdir(runs) if n.startswith("legacy-")]
    dest = os.path.join(runs, f"legacy-{len(existing) + 1}")
    os.makedirs(dest, exist_ok=True)
    for p in legacy:
      os.replace(p, os.path.join(dest, os.path.basename(p)))
  for name in (MODEL_DIR, METRICS_FILE):
    path = os.path.join(workdir, name)
    if not os.path.lexists(path):
      _replace_link(path, os.path.join(CURRENT, name), None)


def _prune(runs: str, keep: int, current: str) -> None:
  numbers = _run_numbers(runs)
  for n in numbers[:max(0, len(numbers) - keep)]:
    path = os.path.join(runs, f"{n:04d}")
    if os.path.abspath(path) != os.path.abspath(current):
      shutil.rmtree(path, ignore_errors=True)


def publish_run(workdir: str, params, *, vocab: Sequence[str],
                display: Optional[Sequence[str]], groups: Sequence[str],
                entity_names: Sequence[Sequence[str]], offsets: Sequence[int],
                config: dict, metrics: dict, files: Optional[Dict[str, bytes]] = None,
                keep: int = KEEP_RUNS) -> str:
  """Writes one run (model/, metrics.json, ``files``) and makes it current atomically.

  Args:
    workdir: the work directory (``check_workdir`` has been called on it, or is now).
    params, vocab, display, groups, entity_names, offsets, config: the model, as
      ``model_io.save_model`` takes them; metrics: the run's metrics (also stored in
      model.json); written as strict JSON (non-finite numbers become null).
    files: extra outputs {file name: bytes} (e.g. learning_curve.png, history.csv),
      written into the same run folder; plain names only.
    keep: how many run folders to keep (the newest; the current one always).
  Returns:
    the absolute path of the new run folder (also <workdir>/current).
  Raises:
    ValueError for a bad file name or a model whose metadata does not fit its
    parameters or whose parameters are not finite; OSError when writing fails (the
    previous run stays current).
  """
  workdir = os.path.abspath(os.fspath(workdir))
  files = dict(files or {})
  for name in files:
    if (not name or os.path.basename(name) != name or name.startswith(".")
        or name in (MODEL_DIR, METRICS_FILE)):
      raise ValueError(f"extra output name {name!r} must be a plain file name other than "
                       f"{MODEL_DIR!r} and {METRICS_FILE!r}")
  runs = _runs(workdir)
  os.makedirs(runs, exist_ok=True)
  with _assembling(runs) as tmp:
    model_dir = os.path.join(tmp, MODEL_DIR)
    os.mkdir(model_dir)
    model_io.write_model_files(model_dir, params, vocab=vocab, display=display,
                               groups=groups, entity_names=entity_names, offsets=offsets,
                               config=config, metrics=metrics)
    with open(os.path.join(tmp, METRICS_FILE), "w", encoding="utf-8") as f:
      f.write(json_text(metrics, indent=2, sort_keys=False, ensure_ascii=False))
    for name, data in files.items():
      with open(os.path.join(tmp, name), "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.chmod(model_dir, 0o755)
    final = _rename_to_next_number(tmp, runs)
  name = os.path.basename(final)
  _replace_link(os.path.join(workdir, CURRENT), os.path.join(RUNS_DIR, name), name)
  _adopt_legacy(workdir)
  _prune(runs, max(1, keep), final)
  return final


@contextlib.contextmanager
def _assembling(runs: str) -> Iterator[str]:
  """A new folder runs/.tmp-<host>-<pid>-*, removed on the way out unless it was renamed
  into place, and removed by a Ctrl-C (``interrupt.scratch``)."""
  tmp = tempfile.mkdtemp(prefix=f".tmp-{_HOST}-{os.getpid()}-", dir=runs)
  with interrupt.scratch(tmp):
    try:
      yield tmp
    finally:
      if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)


def _rename_to_next_number(tmp: str, runs: str) -> str:
  """Renames the finished folder ``tmp`` to runs/<next free number> and returns that path;
  a concurrent publisher that takes the number first makes us take the next."""
  while True:
    numbers = _run_numbers(runs)
    final = os.path.join(runs, f"{(numbers[-1] if numbers else 0) + 1:04d}")
    try:
      with interrupt.finishing():  # a Ctrl-C waits for the rename
        os.rename(tmp, final)
      return final
    except OSError:
      if not os.path.lexists(final):
        raise


def publish_outputs(workdir: str, write, names: Sequence[str],
                    keep: int = KEEP_RUNS) -> str:
  """``publish_run`` for any tool's outputs: ``write(folder)`` writes the run's files into
  a new folder runs/.tmp-*, which becomes runs/<next number> and then ``current`` with
  one atomic switch. ``names`` are the outputs the tool may write; each gets a fixed link
  ``<workdir>/<name> -> current/<name>`` while the current run has it, and loses it when
  the current run does not (so no output of an earlier run is ever shown beside a newer
  one). Real files or folders of those names, from the single-folder layout of earlier
  versions, move into runs/legacy-<n>/ first. A kill at any point leaves ``current`` on
  the old run or the new one.

  Returns:
    the absolute path of the new run folder.
  """
  workdir = os.path.abspath(os.fspath(workdir))
  runs = _runs(workdir)
  os.makedirs(runs, exist_ok=True)
  clean_stale(workdir)
  with _assembling(runs) as tmp:
    write(tmp)
    os.chmod(tmp, 0o755)
    final = _rename_to_next_number(tmp, runs)
  legacy = [os.path.join(workdir, n) for n in names
            if os.path.lexists(os.path.join(workdir, n))
            and not os.path.islink(os.path.join(workdir, n))]
  if legacy:  # before the switch: a reader sees the old files or the links
    existing = [n for n in os.listdir(runs) if n.startswith("legacy-")]
    dest = os.path.join(runs, f"legacy-{len(existing) + 1}")
    os.makedirs(dest, exist_ok=True)
    for p in legacy:
      os.replace(p, os.path.join(dest, os.path.basename(p)))
  name = os.path.basename(final)
  _replace_link(os.path.join(workdir, CURRENT), os.path.join(RUNS_DIR, name), name)
  for n in names:
    link = os.path.join(workdir, n)
    if os.path.lexists(os.path.join(final, n)):
      if not os.path.islink(link):
        _replace_link(link, os.path.join(CURRENT, n), None)
    elif os.path.islink(link):
      os.remove(link)
  _prune(runs, max(1, keep), final)
  return final


def current_output(workdir: str, name: str) -> Optional[str]:
  """The path of output ``name`` of the current run (``publish_outputs``), or of the
  single-folder layout of earlier versions; None when there is none."""
  run = current_run(workdir)
  if run is not None:
    path = os.path.join(run, name)
    return path if os.path.lexists(path) else None
  path = os.path.join(workdir, name)
  return path if os.path.lexists(path) else None


def run_model_dir(workdir: str) -> str:
  """The model folder that ``load_run_model`` reads (see there)."""
  workdir = os.fspath(workdir)
  if not os.path.isdir(workdir):
    raise model_io.ModelFormatError(
        f"--workdir {workdir}: no such folder; train a model first with crbm-fit "
        f"--workdir={workdir}" if not os.path.lexists(workdir) else
        f"--workdir {workdir} is a file; pass the folder that crbm-fit wrote")
  run = current_run(workdir)
  if run is not None:
    return os.path.join(run, MODEL_DIR)
  legacy = os.path.join(workdir, MODEL_DIR)
  if os.path.isdir(legacy):
    return legacy
  if os.path.isfile(os.path.join(workdir, model_io.META_FILE)):
    return workdir  # a model folder given directly
  raise model_io.ModelFormatError(
      f"{workdir}: holds no trained model (no {CURRENT} run and no {MODEL_DIR}/ folder); "
      f"train one with crbm-fit --workdir={workdir}")


def load_run_model(workdir: str) -> model_io.SavedModel:
  """The model of ``workdir``'s current run; also reads the <workdir>/model folder of
  earlier versions, or a model folder given directly. ModelFormatError (one line) when
  there is none or it is damaged."""
  return model_io.load_model(run_model_dir(workdir))
