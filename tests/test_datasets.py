"""Smoke tests: every named data set loads with the expected columns."""
import functools

import numpy as np
import pytest

from crbm_jax.data.datasets import DatasetBundle, load_dataset
from crbm_jax.data.errors import DataError
from crbm_jax.data.splits import random_split


@functools.lru_cache(maxsize=None)
def bundle(name):
  return load_dataset(name)


def test_simulated_dataset_columns_truth_and_filters():
  b = bundle("simulated")
  assert isinstance(b, DatasetBundle) and b.simulated
  assert set(b.table.columns()) >= {"clip", "tag", "user", "track", "start",
                                    "track_duration"}
  assert b.features.shape == (925, 64) and b.truth.shape[0] == 925
  assert len(b.extra["truth_tags"]) == b.truth.shape[1]
  s = b.extra["filter_summary"]
  assert s["hits_total"] == 2775 and s["hits_accepted"] < 2775
  # Only accepted workers remain; every tag is canonical (in the surface map).
  assert set(b.table.tag.tolist()) <= set(b.surface)
  rejected = {w for w, r in b.extra["filter_result"].worker_reasons.items() if r}
  assert not rejected & set(b.table.user.tolist())
  obs = b.to_observations(min_users=2)
  assert obs.groups == ("user", "track", "clip")
  assert (obs.aux >= 0).all() and obs.num_aux == sum(map(len, obs.entity_names))
  split = random_split(obs.aux, seed=0)
  assert sum(map(len, split)) == obs.num_observations


def test_majorminer_dataset_has_features_for_clips():
  b = bundle("majorminer")
  assert not b.simulated
  assert set(b.table.columns()) >= {"clip", "tag", "count", "track"}
  assert b.features.shape[0] == len(b.feature_clips)
  assert set(b.table.clip.tolist()) <= set(b.feature_clips.tolist())
  obs = b.to_observations()
  assert obs.groups == ("track", "clip") and obs.user is None


def test_hetrec_dataset_has_real_users():
  b = bundle("hetrec")
  assert not b.simulated and b.features is None
  assert set(b.table.columns()) >= {"clip", "tag", "user"}
  obs = b.to_observations()
  assert obs.groups == ("user", "clip")
  assert obs.num_observations == len(set(zip(b.table.user.tolist(), b.table.clip.tolist())))


def test_lastfm_simulated_is_flagged_and_seeded():
  b = bundle("lastfm-simulated")
  assert b.simulated and "SIMULATED" in b.description
  again = load_dataset("lastfm-simulated", num_observations=500, seed=1)
  other = load_dataset("lastfm-simulated", num_observations=500, seed=1)
  np.testing.assert_array_equal(again.table.tag, other.table.tag)
  assert b.to_observations().groups == ("clip",)


def test_paths_load_tables_and_study_folders(tmp_path):
  from crbm_jax.data.simulate import SimulationConfig, simulate_study, write_study
  path = tmp_path / "t.tsv"
  path.write_text("clip\tuser\ttag\nc1\tu1\trock\nc2\tu1\tpop\n")
  b = load_dataset(str(path))
  assert b.table.num_rows == 2 and not b.simulated
  study = simulate_study(SimulationConfig(num_tracks=20, num_workers=30, seed=2))
  write_study(study, str(tmp_path / "study"))
  folder = load_dataset(str(tmp_path / "study"))
  direct = load_dataset("simulated", num_tracks=20, num_workers=30, seed=2)
  assert folder.extra["filter_summary"] == direct.extra["filter_summary"]
  np.testing.assert_array_equal(np.sort(folder.table.tag), np.sort(direct.table.tag))
  np.testing.assert_array_equal(folder.features, direct.features)
  assert folder.truth.sum() == direct.truth.sum()


def test_unknown_name_is_a_clear_error():
  with pytest.raises(DataError, match="unknown data set 'nope'.*simulated"):
    load_dataset("nope")
