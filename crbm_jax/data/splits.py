"""Train / validation / test splits that keep every auxiliary entity in training.

The paper (Sec. 3.3): "observations were shuffled, but then rearranged slightly
so that each auxiliary variable appeared at least once in the training set".
`random_split` shuffles, cuts at the given fractions, then
  1. for each entity (non-negative aux value) absent from training, moves one
     of its validation/test observations into training;
  2. moves training observations whose entities all stay covered (each has
     another training observation) back out, to whichever of val/test is most
     below its target, until training is back to its target size.
Step 2 can fail when no training observation is removable (e.g. every
training observation holds an entity seen only once in training, such as an
entity with a single observation, which must be in training); training is then
larger than its target and val/test smaller. Otherwise the sizes equal the
rounded targets (within one observation of the fractions).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class SplitError(ValueError):
  """Bad split request."""


class Split(NamedTuple):
  """Disjoint sorted int64 index arrays covering range(N)."""
  train: np.ndarray
  val: np.ndarray
  test: np.ndarray


def split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
  """Target (train, val, test) sizes: rounded train and val, test the rest."""
  f = np.asarray(fractions, np.float64)
  if f.shape != (3,) or np.any(f < 0) or abs(f.sum() - 1.0) > 1e-9:
    raise SplitError(f"fractions must be 3 non-negative numbers summing to 1, got "
                     f"{tuple(fractions)}")
  n_train = int(round(f[0] * n))
  n_val = min(int(round(f[1] * n)), n - n_train)
  return n_train, n_val, n - n_train - n_val


def _train_counts(aux: np.ndarray, in_train: np.ndarray, size: int) -> np.ndarray:
  vals = aux[in_train]
  vals = vals[vals >= 0]
  return np.bincount(vals, minlength=size)


def random_split(aux: np.ndarray, seed: int,
                 fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Split:
  """Shuffled split with every auxiliary entity covered by training.

  Args:
    aux: [N, G] int auxiliary entity indices, -1 = absent (G may be 0).
    seed: numpy seed.
    fractions: (train, val, test) fractions summing to 1.
  Returns:
    Split(train, val, test), each sorted.
  """
  aux = np.asarray(aux)
  if aux.ndim != 2:
    raise SplitError(f"aux must be [N, G], got shape {aux.shape}")
  n = aux.shape[0]
  targets = np.array(split_sizes(n, fractions))
  rng = np.random.default_rng(seed)
  perm = rng.permutation(n)
  label = np.empty(n, np.int8)  # 0 train, 1 val, 2 test
  label[perm] = np.repeat(np.arange(3, dtype=np.int8), targets)
  size = int(aux.max()) + 1 if aux.size and aux.max() >= 0 else 0
  count = _train_counts(aux, label == 0, size)
  present = np.zeros(size, bool)
  present[aux[aux >= 0]] = True
  rank = np.empty(n, np.int64)
  rank[perm] = np.arange(n)

  # 1. Cover every entity: move in its earliest (in shuffled order) held-out row.
  for e in np.flatnonzero(present & (count == 0)):
    if count[e] > 0:  # covered meanwhile by an earlier move
      continue
    cand = np.flatnonzero((aux == e).any(1) & (label != 0))
    i = cand[np.argmin(rank[cand])]
    label[i] = 0
    ents = aux[i][aux[i] >= 0]
    np.add.at(count, ents, 1)

  # 2. Rebalance: move removable training rows out while training is too big.
  while True:
    sizes = np.bincount(label, minlength=3)
    if sizes[0] <= targets[0]:
      break
    safe = np.where(aux >= 0, count[np.maximum(aux, 0)] >= 2, True).all(1)
    cand = np.flatnonzero(safe & (label == 0))
    if len(cand) == 0:
      break
    j = cand[rng.integers(len(cand))]
    deficit = targets[1:] - sizes[1:]
    label[j] = 1 + int(np.argmax(deficit))
    ents = aux[j][aux[j] >= 0]
    np.subtract.at(count, ents, 1)
  return Split(*(np.flatnonzero(label == k).astype(np.int64) for k in range(3)))


def paper_splits(aux: np.ndarray, num_splits: int = 5, seed: int = 0,
                 fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> list:
  """num_splits independent random splits (the paper's 5), seeds derived from seed."""
  children = np.random.SeedSequence(seed).spawn(num_splits)
  return [random_split(aux, int(c.generate_state(1)[0]), fractions) for c in children]
