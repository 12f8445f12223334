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


def _reference_split(aux, seed, fractions=(0.6, 0.2, 0.2)):
  """The loop-over-entities implementation random_split replaced (kept as the reference:
  the vectorised one must give the same split for the same seed)."""
  from crbm_jax.data.splits import Split, _train_counts  # pylint: disable=import-outside-toplevel
  aux = np.asarray(aux)
  n = aux.shape[0]
  targets = np.array(split_sizes(n, fractions))
  rng = np.random.default_rng(seed)
  perm = rng.permutation(n)
  label = np.empty(n, np.int8)
  label[perm] = np.repeat(np.arange(3, dtype=np.int8), targets)
  size = int(aux.max()) + 1 if aux.size and aux.max() >= 0 else 0
  count = _train_counts(aux, label == 0, size)
  present = np.zeros(size, bool)
  present[aux[aux >= 0]] = True
  rank = np.empty(n, np.int64)
  rank[perm] = np.arange(n)
  for e in np.flatnonzero(present & (count == 0)):
    if count[e] > 0:
      continue
    cand = np.flatnonzero((aux == e).any(1) & (label != 0))
    i = cand[np.argmin(rank[cand])]
    label[i] = 0
    ents = aux[i][aux[i] >= 0]
    np.add.at(count, ents, 1)
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


@given(aux_arrays())
def test_vectorised_split_equals_the_reference_loop(case):
  aux, seed = case
  new, old = random_split(aux, seed), _reference_split(aux, seed)
  for a, b in zip(new, old):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_vectorised_split_equals_the_reference_on_a_user_track_clip_table(seed):
  """Zipf-like users, tracks with a few clips each, many single-observation entities:
  step 1 moves many rows and step 2 moves them back out."""
  rng = np.random.default_rng(seed)
  n = 3000
  clip = rng.integers(0, 900, n)
  track = clip // 3 + 900
  user = 900 + 300 + np.minimum(rng.zipf(1.5, n), 700) - 1
  aux = np.stack([user, track, clip], 1).astype(np.int32)
  aux[rng.random(n) < 0.05, 0] = -1
  new, old = random_split(aux, seed), _reference_split(aux, seed)
  for a, b in zip(new, old):
    np.testing.assert_array_equal(a, b)
  check_invariants(aux, new)
