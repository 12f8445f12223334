"""Tests for crbm_jax.data.observations on a hand-made table (exact answers)."""
import numpy as np
import pytest

from crbm_jax.data.observations import (Observations, ObservationError,
                                        build_observations, select_vocabulary)
from crbm_jax.data.tagtable import TagTable

ROWS = [  # clip, user, track, tag, count
    ("c1", "u1", "t1", "rock", 1),
    ("c1", "u1", "t1", "pop", 2),
    ("c1", "u2", "t1", "rock", 1),
    ("c2", "u1", "t1", "jazz", 1),
    ("c3", "u2", "t2", "rock", 3),
    ("c3", "u3", "t2", "weird", 1),
    ("c4", "u3", "", "rock", 1),  # no track known
]


def make_table(with_user=True):
  cols = list(zip(*ROWS))
  return TagTable(clip=np.array(cols[0]), tag=np.array(cols[3]),
                  count=np.array(cols[4], np.int64),
                  user=np.array(cols[1]) if with_user else None,
                  track=np.array(cols[2]), source="hand-made")


def test_select_vocabulary_counts_distinct_users_and_orders():
  table = make_table()
  # rock: u1,u2,u3 (3); jazz, pop: u1 (1); weird: u3 (1) -> ties by name.
  np.testing.assert_array_equal(select_vocabulary(table),
                                ["rock", "jazz", "pop", "weird"])
  np.testing.assert_array_equal(select_vocabulary(table, min_users=2), ["rock"])
  np.testing.assert_array_equal(select_vocabulary(table, top_n=2), ["rock", "jazz"])


def test_select_vocabulary_counts_clips_without_users():
  table = make_table(with_user=False)
  # rock: c1,c3,c4 (3); others one clip each.
  np.testing.assert_array_equal(select_vocabulary(table, min_users=3), ["rock"])


def test_build_observations_exact_vectors_and_global_aux():
  obs = build_observations(make_table(), vocab=np.array(["rock", "pop", "jazz"]))
  # (u3, c3) has only 'weird' -> dropped.
  assert obs.num_dropped == 1
  assert obs.num_observations == 5
  assert obs.groups == ("user", "track", "clip")
  np.testing.assert_array_equal(obs.entity_names[0], ["u1", "u2", "u3"])
  np.testing.assert_array_equal(obs.entity_names[1], ["t1", "t2"])
  np.testing.assert_array_equal(obs.entity_names[2], ["c1", "c2", "c3", "c4"])
  np.testing.assert_array_equal(obs.offsets, [0, 3, 5])
  assert obs.num_aux == 9
  got = {(c, u): (tuple(x), tuple(n), tuple(a)) for c, u, x, n, a in
         zip(obs.clip, obs.user, obs.X, obs.counts, obs.aux)}
  assert got == {
      ("c1", "u1"): ((1, 1, 0), (1, 2, 0), (0, 3, 5)),
      ("c1", "u2"): ((1, 0, 0), (1, 0, 0), (1, 3, 5)),
      ("c2", "u1"): ((0, 0, 1), (0, 0, 1), (0, 3, 6)),
      ("c3", "u2"): ((1, 0, 0), (3, 0, 0), (1, 4, 7)),
      ("c4", "u3"): ((1, 0, 0), (1, 0, 0), (2, -1, 8)),
  }
  assert obs.X.dtype == np.uint8 and obs.aux.dtype == np.int32
  np.testing.assert_array_equal(obs.display, obs.vocab)


def test_select_groups_reindexes_compactly():
  obs = build_observations(make_table(), vocab=np.array(["rock", "pop", "jazz"]))
  sub = obs.select_groups(("clip", "user"))
  assert sub.groups == ("clip", "user")
  np.testing.assert_array_equal(sub.offsets, [0, 4])
  assert sub.num_aux == 7
  np.testing.assert_array_equal(sub.aux[:, 0], obs.aux[:, 2] - 5)
  np.testing.assert_array_equal(sub.aux[:, 1], obs.aux[:, 0] + 4)
  track_only = obs.select_groups(["track"])
  np.testing.assert_array_equal(np.sort(track_only.aux[:, 0]), [-1, 0, 0, 0, 1])
  empty = obs.select_groups(())
  assert empty.aux.shape == (5, 0) and empty.num_aux == 0
  with pytest.raises(ValueError, match="artist"):
    obs.select_groups(("artist",))


def test_subset_keeps_entity_indexing():
  obs = build_observations(make_table(), vocab=np.array(["rock", "pop", "jazz"]))
  sub = obs.subset(np.array([4, 0]))
  np.testing.assert_array_equal(sub.aux, obs.aux[[4, 0]])
  np.testing.assert_array_equal(sub.X, obs.X[[4, 0]])
  np.testing.assert_array_equal(sub.clip, obs.clip[[4, 0]])
  assert sub.num_aux == obs.num_aux and sub.entity_names == obs.entity_names


def test_missing_group_error_names_group_and_columns():
  table = make_table(with_user=False)
  with pytest.raises(ValueError, match=r"'user'.*columns available.*'clip'"):
    build_observations(table)
  with pytest.raises(ObservationError, match="hand-made"):
    build_observations(table, aux_groups=("artist",))


def test_item_level_observations_without_users():
  obs = build_observations(make_table(with_user=False), aux_groups=("clip",),
                           display={"rock": "Rock"})
  assert obs.user is None
  np.testing.assert_array_equal(obs.clip, ["c1", "c2", "c3", "c4"])
  np.testing.assert_array_equal(obs.X.sum(1), [2, 1, 2, 1])
  assert obs.display[list(obs.vocab).index("rock")] == "Rock"
  assert isinstance(obs, Observations)


def test_sparse_counts_read_like_the_dense_sums_they_replace():
  from crbm_jax.data.observations import SparseCounts  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  n, v = 40, 7
  rows, cols = rng.integers(0, n, 300), rng.integers(0, v, 300)
  rows[:5] = 3  # repeated (row, col) entries are summed
  cols[:5] = 2
  values = rng.integers(1, 5, 300)
  dense = np.zeros((n, v), np.int64)
  np.add.at(dense, (rows, cols), values)
  sparse = SparseCounts.from_coo(rows, cols, values, (n, v))
  np.testing.assert_array_equal(np.asarray(sparse), dense)
  assert sparse.values.size == (dense > 0).sum() < n * v
  mask = rng.random(n) < 0.4
  np.testing.assert_array_equal(sparse[mask], dense[mask])
  idx = np.array([5, 0, 39, 5])
  np.testing.assert_array_equal(sparse[idx], dense[idx])
  np.testing.assert_array_equal(sparse[7], dense[7])
  np.testing.assert_array_equal(np.asarray(sparse.subset(idx)), dense[idx])
  np.testing.assert_array_equal(np.asarray(sparse.subset(mask)), dense[mask])
  empty = SparseCounts.from_coo(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), (3, 2))
  np.testing.assert_array_equal(np.asarray(empty), np.zeros((3, 2)))


def test_observation_subsets_keep_their_counts():
  obs = build_observations(make_table(), vocab=np.array(["rock", "pop", "jazz"]))
  keep = np.array([True, False, True, True, False])
  sub = obs.subset(keep)
  np.testing.assert_array_equal(np.asarray(sub.counts), np.asarray(obs.counts)[keep])
  np.testing.assert_array_equal(sub.X, obs.X[keep])


def test_max_elements_refuses_in_one_line_before_building():
  table = make_table()  # 6 (clip, user) observations x 4 tags = 24 elements
  assert build_observations(table, max_elements=24).X.shape == (6, 4)
  with pytest.raises(ObservationError) as e:
    build_observations(table, max_elements=23)
  message = str(e.value)
  assert "\n" not in message
  assert "6 x 4 tags = 24 elements" in message and "more than 23" in message
