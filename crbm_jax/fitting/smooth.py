"""Smooth a tag table with a fitted run: the step under ``crbm-smooth``.

``smooth_tag_table(workdir, tags, out)`` writes p(tag | clip) for every clip of ``tags``
under the model of ``workdir``'s current run (Section 4 of the paper: the user factored
out), optionally training that model first with ``fit.fit_tag_table``.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import numpy as np

from crbm_jax.data import aux_rows
from crbm_jax.data.tagtable import is_tsv, write_table_chunks
from crbm_jax.fitting.fit import fit_tag_table
from crbm_jax.fitting.inputs import (InputError, Log, check_output_file, load_tags,
                                     reduce_seed)

MODEL_DIR = "model"


def has_model(workdir: str) -> bool:
  """Whether ``workdir`` holds a fitted run (or the model/ folder of earlier versions)."""
  from crbm_jax.util.runs import CURRENT  # pylint: disable=import-outside-toplevel
  return os.path.isdir(os.path.join(workdir, MODEL_DIR)) or os.path.lexists(
      os.path.join(workdir, CURRENT))  # a dangling `current`: load_run_model says so


def measure_aux_effect(rng_key, params, aux: np.ndarray, groups: Sequence[str],
                       factor_out: Sequence[str], batch: int) -> dict:
  """{group: mean over clips and tags of |affinity - affinity without that group's row|}
  (``marginals.aux_effect``: exact for small H, else sampled with common random numbers;
  the 'noise' floor of the sampled measure is logged beside)."""
  from crbm_jax.model import marginals  # pylint: disable=import-outside-toplevel
  effect = marginals.aux_effect(params, aux, groups, skip=tuple(factor_out),
                                rng_key=rng_key, batch=batch)
  return {g: effect[g] for g in groups if g in effect} | {"noise": effect["noise"],
                                                         "method": effect["method"]}


def smooth_tag_table(workdir: str, tags: str, out: str, *, num_samples: int = 1000,
                     method: str = "sample", factor_out: Sequence[str] = ("user",),
                     burn_in: int = 100, thin: int = 1, seed: int = 0, batch: int = 64,
                     fmt: str = "auto", format_options: Optional[dict] = None,
                     train: bool = False, fit_options: Optional[dict] = None,
                     aux_effect: bool = True, chunk_lines: int = 1_000_000,
                     log: Log = print) -> dict:
  """Smoothed affinities of every clip of a tag table under the model of ``workdir``'s
  current run (``runs.load_run_model``).

  Writes ``out`` (columns clip, [track], tag, affinity, display). A clip's auxiliary row
  uses the model's entity names; entities the model does not know are left out and
  counted. With ``train``, first trains the model on ``tags`` with ``fit_tag_table`` (its
  validation search; ``fit_options`` are passed on, e.g. ``make_evaluate``). With
  ``aux_effect_report``, reports how much each auxiliary group moves the affinities
  (``aux_effect``). Returns a summary dict.

  The clips are smoothed and written in chunks of about ``chunk_lines`` output lines (a
  multiple of ``batch`` clips), so memory holds one chunk's lines, not every clip x tag;
  the file is the same for any chunk size (each clip draws from its own key).
  """
  import jax  # pylint: disable=import-outside-toplevel
  from crbm_jax.model import marginals  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel
  if method not in marginals.METHODS:
    raise InputError(f"unknown --method {method!r}; choose from "
                     f"{','.join(marginals.METHODS)}")
  if num_samples < 1 or burn_in < 0 or thin < 1 or batch < 1:
    raise InputError("--samples, --thin and --batch must be >= 1 and --burn_in >= 0")
  seed = reduce_seed(seed)
  check_output_file(out, "--out")
  if train:
    options = dict(fit_options or {})
    options.setdefault("aux", "auto")
    if "make_evaluate" not in options:  # issue 23: choose the model for smoothing
      from crbm_jax.fitting.inputs import parse_aux_groups  # pylint: disable=import-outside-toplevel
      from crbm_jax.smoothers import criterion  # pylint: disable=import-outside-toplevel
      columns = load_tags(tags, fmt, format_options, log, "crbm-smooth").columns()
      options["make_evaluate"] = criterion.criterion_for_groups(
          parse_aux_groups(options["aux"], columns, tags), tuple(factor_out))
    log(f"crbm-smooth: training a model on {tags} first (crbm-fit's validation search, "
        "criterion: held-out observations' tags from their aux rows alone, user left out)")
    fit_tag_table(tags, workdir, seed=seed, fmt=fmt, format_options=format_options, log=log,
                  **options)
  elif not has_model(workdir):
    raise InputError(f"--workdir {workdir} holds no model; train one with crbm-fit, or "
                     "pass --train to train one on --tags first")
  model = runs_lib.load_run_model(workdir)
  factor_out = tuple(factor_out)
  if "user" in model.groups and "user" not in factor_out:
    raise InputError("the model conditions on users and a clip has many users; smooth with "
                     "the user factored out (--factor_out=user)")
  table = load_tags(tags, fmt, format_options, log, "crbm-smooth")
  clips, first = np.unique(table.clip, return_index=True)
  names = list(clips) + (list(table.track) if table.has("track") else [])
  if is_tsv(out, "\t") and any("\t" in c or "\n" in c or "\r" in c for c in names):
    raise InputError(f"a clip or track name holds a tab or line break, which TSV cannot "
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
  effect = (measure_aux_effect(jax.random.key(seed), model.params, aux, model.groups,
                               factor_out, batch) if aux_effect else {})
  track = table.track[first] if table.has("track") else None
  columns = ["clip"] + (["track"] if track is not None else []) + ["tag", "affinity",
                                                                   "display"]
  vocab, display = model.vocab.tolist(), model.display.tolist()
  per_chunk = max(1, chunk_lines // max(len(vocab), 1) // batch) * batch

  def chunks():
    for start in range(0, len(clips), per_chunk):
      stop = min(start + per_chunk, len(clips))
      # a short last chunk padded with absent rows to the batch one call on every clip
      # would use, so each clip is computed in the same place of the same program
      rows_aux = aux[start:stop]
      width = min(batch, len(clips))
      if len(rows_aux) < width:
        rows_aux = np.concatenate([rows_aux, np.full(
            (width - len(rows_aux), aux.shape[1]), -1, aux.dtype)])
      affinity = marginals.smooth_affinities(
          jax.random.key(seed), model.params, rows_aux, num_samples=num_samples,
          method=method, burn_in=burn_in, thin=thin, batch=batch, first_index=start)
      rows = []
      for m, clip in enumerate(clips[start:stop].tolist(), start):
        lead = [clip] if track is None else [clip, str(track[m])]
        rows.extend(lead + [t, f"{a:.6g}", d]
                    for t, a, d in zip(vocab, affinity[m - start].tolist(), display))
      yield rows

  num_lines = write_table_chunks(out, columns, chunks(), mode=0o644)
  summary = {"clips": len(clips), "tags": len(vocab), "method": method,
             "samples": num_samples if method == "sample" else 0,
             "factored_out": [g for g in factor_out if g in model.groups],
             "unknown_entities": unknown, "missing_columns": missing_columns,
             "aux_effect": effect}
  for g, e in effect.items():
    if g in ("noise", "method"):
      continue
    log(f"crbm-smooth: the {g} rows move the affinities by {e:.4f} on average (mean "
        f"|affinity - affinity without the {g}|, {effect['method']}; Monte-Carlo noise "
        f"floor {effect['noise']:.4f})")
  for g, n in unknown.items():
    if n:
      log(f"crbm-smooth: {n} of {len(clips)} clips have a {g} the model has not seen "
          f"(its {g} bias is left out)")
  for g in missing_columns:
    log(f"crbm-smooth: {tags} has no {g!r} column; {g} biases are left out")
  log(f"crbm-smooth: wrote {num_lines} rows ({len(clips)} clips x {len(vocab)} tags, "
      f"method {method}) to {out}")
  return summary
