"""Held-out observations of clips that stay in training (issue 23, part 2).

The smoothing criterion (``smoothers.criterion``) scores a smoother by how well the
affinities of an observation's auxiliary rows predict that observation's tags. For the
clip row to be judged, the held-out observation must be of a clip that is also in
training. Two ways, by what the data hold:

* **data with users** (one observation per user and clip): hold out some users'
  observations. The held-out observation's user row is removed (smoothing never knows the
  user), so only its track / clip / artist / album entities must stay in training
  (``data.splits.random_split`` over the aux rows without the user column).
* **aggregated counts** (MajorMiner, MagnaTagATune, every thinned draw of the sparsity
  experiment: one observation per clip, n users per (clip, tag)): binomial count
  splitting. Each count n becomes n_train ~ Binomial(n, q) and n_val = n - n_train, two
  independent observations of the same clip when the n users tag independently. Both
  keep the clip's aux row, so every clip is in training and in validation.

Everything here is numpy and seeded: the same seed gives the same split.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from crbm_jax.data import splits


class CountSplitError(ValueError):
  """Bad input to count splitting (one line: what and why)."""


class HeldOut(NamedTuple):
  """Training and validation observations for the smoothing criterion.

  X_train [N_tr, V] uint8 and aux_train [N_tr, G]: what the candidate models train on;
  X_val [N_va, V] and aux_val [N_va, G]: held-out observations, their factored-out
  groups' rows (the user) set to -1, as the smoother will see them. kind: 'count
  splitting' or 'held-out users' observations'.
  """
  X_train: np.ndarray
  aux_train: np.ndarray
  X_val: np.ndarray
  aux_val: np.ndarray
  kind: str
  train_rows: np.ndarray   # the input rows they come from
  val_rows: np.ndarray


def split_counts(seed: int, counts, q: float) -> tuple[np.ndarray, np.ndarray]:
  """Binomial count splitting: (n_train ~ Binomial(n, q), n_val = n - n_train).

  Totals are preserved exactly (n_train + n_val == n) and the split is a function of the
  seed alone. Refuses counts that are not non-negative whole numbers.
  """
  counts = np.asarray(counts)
  if not 0.0 < float(q) < 1.0:
    raise CountSplitError(f"count splitting: q must lie in (0, 1), got {q}")
  if counts.size and (not np.all(np.isfinite(counts)) or np.any(counts < 0)
                      or np.any(counts != np.round(counts))):
    bad = counts[~(np.isfinite(counts) & (counts >= 0) & (counts == np.round(counts)))]
    raise CountSplitError(f"count splitting needs whole non-negative counts; got "
                          f"{bad.ravel()[0]!r} ({bad.size} such entries)")
  n = counts.astype(np.int64)
  train = np.random.default_rng(seed).binomial(n, float(q))
  return train, n - train


def has_users(groups: Sequence[str], factor_out: Sequence[str] = ("user",)) -> bool:
  """Whether the observations are per user (some group is factored out at smoothing)."""
  return any(g in factor_out for g in groups)


def factor_out_rows(aux: np.ndarray, groups: Sequence[str],
                    factor_out: Sequence[str] = ("user",)) -> np.ndarray:
  """A copy of ``aux`` with the factored-out groups' columns set to -1 (absent)."""
  aux = np.array(aux, np.int32, copy=True)
  for g, name in enumerate(groups):
    if name in factor_out:
      aux[:, g] = -1
  return aux


def held_out_observations(X, counts, aux, groups: Sequence[str], val_fraction: float,
                          seed: int, factor_out: Sequence[str] = ("user",)) -> HeldOut:
  """Held-out observations of entities that stay in training (module docstring).

  Args:
    X: [N, V] binary observations; counts: [N, V] whole counts (users per clip and tag;
      used for aggregated data); aux: [N, G] rows (-1 absent); groups: [G] names.
    val_fraction: share held out (users' observations), or 1 - q of count splitting.
  Raises:
    CountSplitError: no held-out observation can be made, or counts not whole.
  """
  X, aux = np.asarray(X), np.asarray(aux, np.int32)
  vf = float(val_fraction)
  if not 0.0 < vf < 1.0:
    raise CountSplitError(f"val_fraction must lie in (0, 1), got {vf}")
  if has_users(groups, factor_out):
    seen = factor_out_rows(aux, groups, factor_out)
    split = splits.random_split(seen, seed, (1.0 - vf, vf, 0.0))
    if len(split.val) == 0 or len(split.train) == 0:
      raise CountSplitError(f"{X.shape[0]} observations leave no held-out user "
                            "observation of a clip that stays in training")
    return HeldOut(X[split.train].astype(np.uint8), aux[split.train],
                   X[split.val].astype(np.uint8), seen[split.val],
                   "held-out users' observations", split.train, split.val)
  n_train, n_val = split_counts(seed, counts, 1.0 - vf)
  if not np.any(n_val > 0):
    raise CountSplitError("count splitting left no held-out tag (every count is 0?)")
  rows = np.arange(X.shape[0])
  return HeldOut((n_train > 0).astype(np.uint8), aux, (n_val > 0).astype(np.uint8),
                 aux.copy(), "count splitting", rows, rows.copy())
