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

  label, count = _cover_entities(aux, label, count, present, rank)
  label = _rebalance(aux, label, count, targets, rng)
  return Split(*(np.flatnonzero(label == k).astype(np.int64) for k in range(3)))


def _cover_entities(aux, label, count, present, rank):
  """Step 1, vectorised. In entity order, an uncovered entity moves its earliest held-out
  row (in shuffled order) into training, unless an earlier move already covered it. An
  entity's candidate row does not depend on the earlier moves (a moved row that holds it
  covers it), so the candidates are found at once; the order only decides which entities
  are skipped: e is skipped when an earlier *moving* entity's row holds it. That is a
  DAG on the entities (edges from smaller to larger), resolved in rounds."""
  n, g = aux.shape
  uncovered = present & (count == 0)
  if not uncovered.any():
    return label, count
  rows = np.repeat(np.arange(n), g)
  ents = aux.ravel()
  ok = ents >= 0
  ok[ok] = uncovered[ents[ok]]
  ok &= label[rows] != 0
  r, e = rows[ok], ents[ok]
  order = np.lexsort((rank[r], e))
  ue, first = np.unique(e[order], return_index=True)
  cand = np.full(len(uncovered), -1, np.int64)
  cand[ue] = r[order][first]
  src = np.repeat(ue, g)
  dst = aux[cand[ue]].ravel().astype(np.int64)
  keep = dst > src                      # aux -1 never passes; entities are distinct per row
  keep[keep] = uncovered[dst[keep]]
  src, dst = src[keep], dst[keep]
  state = np.zeros(len(uncovered), np.int8)  # 0 unresolved, 1 moves, 2 skipped
  while True:
    pending = uncovered & (state == 0)
    if not pending.any():
      break
    live = state[src] != 2              # edges from entities not (yet) skipped
    blocked = np.zeros(len(uncovered), bool)
    blocked[dst[live & (state[src] == 0)]] = True
    killed = np.zeros(len(uncovered), bool)
    killed[dst[state[src] == 1]] = True
    state[pending & killed] = 2
    state[pending & ~killed & ~blocked] = 1
  moved = cand[np.flatnonzero(state == 1)]
  label = label.copy()
  label[moved] = 0
  ents = aux[moved].ravel()
  np.add.at(count, ents[ents >= 0], 1)
  return label, count


def _rebalance(aux, label, count, targets, rng):
  """Step 2: while training is too big, move a random removable training row (one whose
  entities all have another training row; drawn as ``rng.integers(#candidates)`` among
  them in row order) to whichever of val/test is most below its target. Candidates only
  leave (counts only fall), so they are kept in a Fenwick tree for the k-th lookup, and an
  entity whose count falls to 1 removes its one remaining training row."""
  sizes = np.bincount(label, minlength=3)
  if sizes[0] <= targets[0]:
    return label
  n, g = aux.shape
  label = label.copy()
  in_train = label == 0
  safe = np.where(aux >= 0, count[np.maximum(aux, 0)] >= 2, True).all(1)
  is_cand = safe & in_train
  # entity -> its training rows (CSR)
  rows = np.repeat(np.arange(n), g)
  ents = aux.ravel()
  ok = (ents >= 0) & in_train[rows]
  order = np.argsort(ents[ok], kind="stable")
  ent_rows = rows[ok][order]
  starts = np.searchsorted(ents[ok][order], np.arange(len(count) + 1))
  tree = _Fenwick(is_cand)
  count = count.copy()
  aux_list = aux.tolist()
  sizes = [int(x) for x in sizes]
  targets = [int(x) for x in targets]
  is_cand = is_cand.tolist()
  in_train = in_train.tolist()
  while sizes[0] > targets[0]:
    total = tree.total
    if total == 0:
      break
    j = tree.kth(int(rng.integers(total)))
    dest = 1 if targets[1] - sizes[1] >= targets[2] - sizes[2] else 2  # argmax: first
    label[j] = dest
    sizes[0] -= 1
    sizes[dest] += 1
    in_train[j] = False
    is_cand[j] = False
    tree.remove(j)
    for e in aux_list[j]:
      if e < 0:
        continue
      count[e] -= 1
      if count[e] == 1:
        for i in ent_rows[starts[e]:starts[e + 1]].tolist():
          if in_train[i] and is_cand[i]:
            is_cand[i] = False
            tree.remove(i)
  return label


class _Fenwick:
  """Indicator set over range(n): remove and k-th smallest (0-based) in O(log n)."""

  def __init__(self, mask: np.ndarray):
    n = len(mask)
    tree = np.zeros(n + 1, np.int64)
    # tree[i] = the count over rows (i - lowbit(i), i]
    prefix = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    idx = np.arange(1, n + 1)
    low = idx & -idx
    tree[1:] = prefix[idx] - prefix[idx - low]
    self.tree = tree.tolist()
    self.n = n
    self.total = int(prefix[-1])
    self.top = 1 << max(n.bit_length() - 1, 0) if n else 0

  def remove(self, i: int) -> None:
    i += 1
    tree, n = self.tree, self.n
    while i <= n:
      tree[i] -= 1
      i += i & -i
    self.total -= 1

  def kth(self, k: int) -> int:
    pos, tree, n = 0, self.tree, self.n
    step = self.top
    while step:
      nxt = pos + step
      if nxt <= n and tree[nxt] <= k:
        pos = nxt
        k -= tree[nxt]
      step >>= 1
    return pos


def paper_splits(aux: np.ndarray, num_splits: int = 5, seed: int = 0,
                 fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> list:
  """num_splits independent random splits (the paper's 5), seeds derived from seed."""
  children = np.random.SeedSequence(seed).spawn(num_splits)
  return [random_split(aux, int(c.generate_state(1)[0]), fractions) for c in children]
