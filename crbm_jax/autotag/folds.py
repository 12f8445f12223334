"""Cross-validation folds that keep every group (track or album) in one fold.

The paper (Section 4) avoids the "album effect" by putting all clips of a
track (Mechanical Turk) or of an album (MajorMiner) in the same fold.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def grouped_folds(groups: Sequence, num_folds: int = 5, seed: int = 0) -> np.ndarray:
  """Assigns each clip to a fold so that no group spans two folds.

  Greedy balancing: groups are taken largest first (ties in size broken by a
  permutation drawn from ``np.random.default_rng(seed)``) and each goes to the
  fold with the fewest clips so far (ties: the lowest fold id). Fold sizes
  then differ by at most the largest group's size. Deterministic given seed.

  Args:
    groups: [C] group label per clip (str or int).
  Returns:
    [C] int64 fold ids in [0, num_folds).
  Raises:
    ValueError: num_folds < 2 or more folds than groups.
  """
  groups = np.asarray(groups)
  if groups.ndim != 1:
    raise ValueError(f"groups must be 1-D, got shape {groups.shape}")
  if num_folds < 2:
    raise ValueError(f"num_folds must be >= 2, got {num_folds}")
  uniq, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
  if uniq.shape[0] < num_folds:
    raise ValueError(f"{uniq.shape[0]} groups cannot fill {num_folds} folds")
  rng = np.random.default_rng(seed)
  tie_break = rng.permutation(uniq.shape[0])
  order = np.lexsort((tie_break, -sizes))  # largest first, seeded ties
  fold_of_group = np.empty(uniq.shape[0], np.int64)
  fold_sizes = np.zeros(num_folds, np.int64)
  for g in order:
    f = int(np.argmin(fold_sizes))
    fold_of_group[g] = f
    fold_sizes[f] += sizes[g]
  return fold_of_group[inverse]
