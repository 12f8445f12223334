"""Auxiliary rows for inputs the model did not train on: one per clip, or from names.

Smoothing (Section 4) conditions the model on each clip's own entities (track, clip,
artist, album) with the factored-out groups (the user) absent; a saved model meets new
tag tables whose entities it knows only by name.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from crbm_jax.data.observations import AUX_COLUMNS, ObservationError, Observations


def check_factor_out(factor_out: Sequence[str]) -> tuple:
  if isinstance(factor_out, str):
    factor_out = (factor_out,)
  unknown = [g for g in factor_out if g not in AUX_COLUMNS]
  if unknown:
    raise ObservationError(f"cannot factor out unknown auxiliary group(s) {unknown}; "
                           f"choose from {list(AUX_COLUMNS)}")
  return tuple(factor_out)


def clip_aux_rows(obs: Observations, factor_out: Sequence[str] = ("user",)):
  """One auxiliary row per distinct clip, with the factored-out groups absent.

  Args:
    obs: observations (one per (user, clip) task).
    factor_out: groups set to -1 in every row (default: the user, as in the paper).
      A group the observations do not have is ignored.
  Returns:
    (clip_names [M] str sorted, aux_rows [M, G] int32): for each kept group, the
    clip's entity (the largest index over the clip's observations, which all agree
    because a clip lies in one track), -1 for the factored-out groups.
  """
  factor_out = check_factor_out(factor_out)
  clips, code = np.unique(obs.clip, return_inverse=True)
  code = code.ravel()
  num_groups = obs.aux.shape[1]
  rows = np.full((len(clips), num_groups), -1, np.int32)
  for g, name in enumerate(obs.groups):
    if name in factor_out:
      continue
    np.maximum.at(rows[:, g], code, obs.aux[:, g].astype(np.int32))
  return clips, rows


def aux_rows_from_names(groups: Sequence[str], entity_names: Sequence[np.ndarray],
                        offsets: Sequence[int], values: Mapping[str, np.ndarray],
                        num_rows: int, factor_out: Sequence[str] = ("user",)):
  """Auxiliary rows from entity names (e.g. a saved model's) for new rows.

  Args:
    groups: the model's auxiliary groups [G].
    entity_names: [E_g] str per group, as in ``Observations.entity_names``.
    offsets: [G] first W_aux row of each group.
    values: {group: [num_rows] str} the entity of each row ('' = unknown); a model
      group missing from ``values`` is absent in every row.
    num_rows: M.
    factor_out: groups set to -1.
  Returns:
    (aux_rows [M, G] int32, unknown {group: number of rows whose non-blank entity the
    model does not know (those are left absent)}).
  """
  factor_out = check_factor_out(factor_out)
  aux = np.full((num_rows, len(groups)), -1, np.int32)
  unknown = {}
  for g, name in enumerate(groups):
    if name in factor_out or name not in values:
      continue
    names = np.asarray(entity_names[g], dtype=str)
    col = np.asarray(values[name], dtype=str)
    if len(names) == 0:
      unknown[name] = int(np.sum(col != ""))
      continue
    pos = np.clip(np.searchsorted(names, col), 0, len(names) - 1)  # names are sorted
    found = names[pos] == col
    aux[found, g] = offsets[g] + pos[found]
    unknown[name] = int(np.sum(~found & (col != "")))
  return aux, unknown


def relayout(aux: np.ndarray, source: Observations, target: Observations) -> np.ndarray:
  """Aux rows in ``source``'s layout -> the layout of ``target`` (a ``select_groups`` of
  it): each of target's groups takes source's column, re-offset; other groups drop."""
  out = np.full((aux.shape[0], len(target.groups)), -1, np.int32)
  for j, g in enumerate(target.groups):
    i = source.groups.index(g)
    col = aux[:, i]
    out[:, j] = np.where(col >= 0, col - source.offsets[i] + target.offsets[j], -1)
  return out
