"""Invariants of crbm_jax.data.splits (disjoint, complete, entities covered, sizes)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from crbm_jax.data.splits import SplitError, paper_splits, random_split, split_sizes


def check_invariants(aux, split):
  n = aux.shape[0]
  allidx = np.concatenate(split)
  assert len(allidx) == n
  np.testing.assert_array_equal(np.sort(allidx), np.arange(n))  # disjoint + complete
  entities = np.unique(aux[aux >= 0])
  train_ents = np.unique(aux[split.train][aux[split.train] >= 0])
  np.testing.assert_array_equal(train_ents, entities)


def removable_train_rows(aux, train):
  """Brute force: training rows whose entities all occur in another training row."""
  out = []
  for i in train:
    others = np.setdiff1d(train, [i])
    rest = set(aux[others].ravel().tolist())
    if all(e in rest for e in aux[i] if e >= 0):
      out.append(i)
  return out


@st.composite
def aux_arrays(draw):
  n = draw(st.integers(1, 80))
  g = draw(st.integers(0, 3))
  seed = draw(st.integers(0, 2**31 - 1))
  rng = np.random.default_rng(seed)
  cols, offset = [], 0
  for _ in range(g):
    k = draw(st.integers(1, 30))
    col = rng.integers(0, k, n) + offset
    col[rng.random(n) < draw(st.floats(0.0, 0.5))] = -1
    cols.append(col)
    offset += k
  aux = np.stack(cols, 1) if cols else np.zeros((n, 0), np.int64)
  return aux.astype(np.int32), seed


@given(aux_arrays())
def test_random_split_invariants_on_random_aux(case):
  aux, seed = case
  split = random_split(aux, seed)
  check_invariants(aux, split)
  targets = split_sizes(aux.shape[0], (0.6, 0.2, 0.2))
  sizes = [len(s) for s in split]
  if sizes[0] == targets[0]:
    assert sizes == list(targets)
  else:
    # Training could only stay too big if no training row was removable.
    assert sizes[0] > targets[0]
    assert sizes[1] <= targets[1] and sizes[2] <= targets[2]
    assert removable_train_rows(aux, split.train) == []


def test_sizes_within_one_when_feasible():
  rng = np.random.default_rng(0)
  n = 2000
  # Each of 100 users / 150 tracks / 600 clips has several observations.
  clip = rng.permutation(np.repeat(np.arange(600), 4)[:n])
  aux = np.stack([rng.integers(0, 100, n), 100 + clip // 4, 250 + clip], 1)
  for seed in range(3):
    split = random_split(aux, seed)
    check_invariants(aux, split)
    for part, frac in zip(split, (0.6, 0.2, 0.2)):
      assert abs(len(part) - frac * n) <= 1


def test_single_observation_entity_goes_to_train():
  aux = np.array([[0], [1], [1], [1], [1], [1], [1], [1], [1], [1]])
  for seed in range(10):
    split = random_split(aux, seed)
    assert 0 in split.train
    check_invariants(aux, split)


def test_random_split_deterministic_and_paper_splits_differ():
  aux = np.random.default_rng(1).integers(-1, 20, (300, 2))
  a, b = random_split(aux, 7), random_split(aux, 7)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  splits = paper_splits(aux, num_splits=5, seed=0)
  assert len(splits) == 5
  assert len({tuple(s.test.tolist()) for s in splits}) == 5
  again = paper_splits(aux, num_splits=5, seed=0)
  for s, t in zip(splits, again):
    np.testing.assert_array_equal(s.test, t.test)
  for s in splits:
    check_invariants(aux, s)


def test_bad_fractions_raise():
  with pytest.raises(SplitError, match="fractions"):
    random_split(np.zeros((5, 1), int), 0, fractions=(0.5, 0.2, 0.2))
