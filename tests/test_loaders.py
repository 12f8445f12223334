"""Loaders of MTurk batches, clip metadata, MajorMiner, Essentia and HetRec data."""
import math
import pathlib

import numpy as np
import pytest

from crbm_jax.data import hetrec, majorminer
from crbm_jax.data.errors import DataError
from crbm_jax.data.filters import filter_hits, load_dictionary
from crbm_jax.data.mturk import (ClipInfo, hits_to_tag_table, load_clip_metadata,
                                 load_mturk_batch)
from crbm_jax.data.tagtable import TagTable

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data")


def _expect_error(fn, path, line, reason):
  with pytest.raises(DataError) as info:
    fn(path)
  assert info.value.line == line, str(info.value)
  assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
  assert reason in str(info.value)


# --- Mechanical Turk -------------------------------------------------------

def test_mturk_batch_reads_ids_and_splits_answer_tags():
  hits = load_mturk_batch(FIXTURES / "mturk_batch.csv")
  assert hits.num_hits == 3
  assert hits.worker.tolist() == ["W1", "W2", "W1"]
  assert hits.hit.tolist() == ["H1", "H2", "H3"]
  assert hits.assignment.tolist() == ["A1", "A2", "A3"]
  assert hits.clip.tolist() == ["c1", "c1", "c2"]
  assert hits.tags == [["rock", "drums", "male vocals", "80's", "guitar"],
                       ["Rock", "Drums", "fast"], ["jazz", "piano"]]
  assert hits.line.tolist() == [2, 3, 7]  # the 2nd answer spans 4 lines


def test_mturk_batch_reads_numbered_tag_fields_in_numeric_order():
  hits = load_mturk_batch(FIXTURES / "mturk_numbered.csv")
  assert hits.clip.tolist() == ["c1", "c2"]  # from Input.clip_id
  assert hits.tags == [["first", "second", "tenth"], ["only"]]


@pytest.mark.parametrize("name, line, reason", [
    ("mturk_missing_worker.csv", 1, "missing required column(s) WorkerId"),
    ("mturk_no_tags.csv", 1, "missing the tag column"),
    ("mturk_bad_utf8.csv", 3, "invalid UTF-8"),
    ("mturk_dup_assignment.csv", 3, "duplicate AssignmentId 'A1'"),
    ("mturk_blank_worker.csv", 3, "blank WorkerId"),
])
def test_bad_mturk_batch_gives_data_error_with_file_and_line(name, line, reason):
  _expect_error(load_mturk_batch, FIXTURES / name, line, reason)


def test_mturk_malformed_row_is_reported(tmp_path):
  p = tmp_path / "b.csv"
  p.write_text("WorkerId,HITId,AssignmentId,Input.clip,Answer.tags\nW,H,A,c\n")
  _expect_error(load_mturk_batch, p, 2, "expected 5 fields")


def test_clip_metadata_reads_tracks_and_positions():
  clips = load_clip_metadata(FIXTURES / "clips.csv")
  assert clips["c2"] == ClipInfo("t1", 45.0, 10.0, 100.0)
  assert clips["c3"].track == "t2" and math.isnan(clips["c3"].start)


def test_clip_with_no_track_gives_data_error():
  _expect_error(load_clip_metadata, FIXTURES / "clips_no_track.csv", 3,
                "clip 'c2' has no track")


def test_hits_to_tag_table_joins_clip_metadata_and_canonicalises():
  hits = load_mturk_batch(FIXTURES / "mturk_batch.csv")
  clips = load_clip_metadata(FIXTURES / "clips.csv")
  table, surface = hits_to_tag_table(hits, np.array([True, True, False]), clips)
  rows = set(zip(table.clip.tolist(), table.user.tolist(), table.tag.tolist()))
  assert rows == {("c1", "W1", "rock"), ("c1", "W1", "drum"), ("c1", "W1", "male vocal"),
                  ("c1", "W1", "80s"), ("c1", "W1", "guitar"), ("c1", "W2", "rock"),
                  ("c1", "W2", "drum"), ("c1", "W2", "fast")}
  assert set(table.track.tolist()) == {"t1"} and set(table.start.tolist()) == {0.0}
  assert set(table.track_duration.tolist()) == {100.0}
  assert surface["drum"] == "drums" and surface["80s"] == "80's"


def test_hits_to_tag_table_without_canonicalisation_keeps_surface_forms():
  hits = load_mturk_batch(FIXTURES / "mturk_batch.csv")
  table, surface = hits_to_tag_table(hits, None, None, canonicalize=False)
  assert table.track is None
  assert sorted(table.tag[table.user == "W2"].tolist()) == ["drums", "fast", "rock"]
  assert surface["male vocals"] == "male vocals"


def test_hits_to_tag_table_reports_a_clip_missing_from_the_metadata():
  hits = load_mturk_batch(FIXTURES / "mturk_batch.csv")
  clips = {"c1": ClipInfo("t1", 0.0, 10.0, 100.0)}
  with pytest.raises(DataError, match=r"mturk_batch.csv:7: clip 'c2'.*has no track"):
    hits_to_tag_table(hits, None, clips)


def test_mturk_fixture_end_to_end_through_the_spam_rules():
  hits = load_mturk_batch(FIXTURES / "mturk_batch.csv")
  result = filter_hits(hits, load_dictionary())
  # HIT 1 passes the HIT rules (5 known tags), but W1's other HIT is short:
  # half of W1's HITs broke a HIT rule, so W1 is rejected as a whole.
  assert result.reasons[0] == ("worker_rejected_hits",)
  assert "hit_too_few_tags" in result.reasons[1]
  assert "hit_too_few_tags" in result.reasons[2]


# --- MajorMiner -------------------------------------------------------------

def test_majorminer_tags_unescape_and_parse_start_times():
  t = majorminer.load_majorminer_tags(FIXTURES / "majorminer_small.tsv")
  assert t.num_rows == 4 and t.user is None
  assert t.track.tolist()[:3] == ["The Band - Let's Go"] * 3
  assert t.start.tolist() == [30.0, 30.0, 65.0, 120.0]
  assert t.count.tolist() == [3, 2, 2, 4]
  assert t.duration.tolist() == [10.0] * 4 and np.isnan(t.track_duration).all()


@pytest.mark.parametrize("name, line, reason", [
    ("majorminer_bad_start.tsv", 2, "clip_start '1.5' is not m:ss"),
    ("majorminer_two_songs.tsv", 2, "clip 'm1' is ('A - U'"),
    ("mturk_batch.csv", 1, "expected 7 tab-separated fields"),
])
def test_bad_majorminer_file_gives_data_error(name, line, reason):
  _expect_error(majorminer.load_majorminer_tags, FIXTURES / name, line, reason)


def test_essentia_features_of_fixture_file():
  doc = majorminer.parse_essentia_file(FIXTURES / "essentia_mini.sig")
  assert doc["metadata"]["version"]["essentia"] == "1.2.2"
  features, names, durations = majorminer.load_essentia_features(
      FIXTURES, ["essentia_mini"])
  assert features.shape == (1, 133) and features.dtype == np.float32
  assert len(names) == 133 == len(set(names))
  assert durations.tolist() == [10.0310201645]
  mfcc = np.array(doc["lowlevel"]["mfcc"]["mean"], dtype=np.float32)
  np.testing.assert_array_equal(features[0, :13], mfcc)
  cov = np.array(doc["lowlevel"]["mfcc"]["cov"])
  assert features[0, names.index("lowlevel.mfcc.cov[2,5]")] == np.float32(cov[2, 5])
  assert features[0, names.index("rhythm.bpm")] == np.float32(93.8488693237)


def test_missing_essentia_file_or_descriptor_is_reported(tmp_path):
  with pytest.raises(DataError, match="no Essentia features for clip 'nope'"):
    majorminer.load_essentia_features(FIXTURES, ["nope"])
  p = tmp_path / "x.sig"
  p.write_text("metadata:\n    audio_properties:\n        length: 10\n")
  with pytest.raises(DataError, match="has no 'lowlevel.mfcc.mean'"):
    majorminer.load_essentia_features(tmp_path, ["x"])
  p.write_text("lowlevel:\n  - oops\n")
  _expect_error(majorminer.parse_essentia_file, p, 2, "cannot read Essentia line")


def test_embedded_majorminer_matches_its_documented_shape():
  table, features, names, clip_ids = majorminer.load_embedded_majorminer()
  assert table.num_rows == 9087 and len(set(table.clip.tolist())) == 2359
  assert len(set(table.track.tolist())) == 1501
  assert features.shape == (2359, len(names)) and np.isfinite(features).all()
  assert sorted(set(table.clip.tolist())) == clip_ids.tolist()
  assert (table.duration > 0).all() and (table.duration < 11).all()


# --- HetRec / Last.fm --------------------------------------------------------

def test_hetrec_triples_decode_latin1_tags_and_utf8_artists():
  t = hetrec.load_hetrec_triples(FIXTURES / "hetrec_mini")
  assert list(zip(t.user.tolist(), t.clip.tolist(), t.tag.tolist())) == [
      ("2", "Björk", "rock"), ("2", "Björk", "café"), ("3", "Björk", "rock"),
      ("3", "Air", "jazz"), ("4", "artist 99", "rock")]
  assert t.artist.tolist() == t.clip.tolist() and t.count.tolist() == [1] * 5


def test_hetrec_duplicate_assignment_and_unknown_tag_are_reported(tmp_path):
  for name in ("tags.dat", "artists.dat"):
    (tmp_path / name).write_bytes((FIXTURES / "hetrec_mini" / name).read_bytes())
  path = tmp_path / "user_taggedartists.dat"
  path.write_text("userID\tartistID\ttagID\n2\t10\t1\n2\t10\t1\n")
  with pytest.raises(DataError, match=r"user_taggedartists.dat:3: duplicate"):
    hetrec.load_hetrec_triples(tmp_path)
  path.write_text("userID\tartistID\ttagID\n2\t10\t77\n")
  with pytest.raises(DataError, match=r"user_taggedartists.dat:2: tagID 77"):
    hetrec.load_hetrec_triples(tmp_path)


def test_aggregate_and_select_subset_by_brute_force():
  t = hetrec.load_hetrec_triples(FIXTURES / "hetrec_mini")
  artists, tags, counts = hetrec.aggregate_artist_tags(t)
  assert artists.tolist() == ["Air", "Björk", "artist 99"]
  assert tags.tolist() == ["café", "jazz", "rock"]
  np.testing.assert_array_equal(counts, [[0, 1, 0], [1, 0, 2], [0, 0, 1]])
  sub = hetrec.select_lastfm_subset(t, min_artists_per_tag=2, num_artists=1)
  # only 'rock' is on >= 2 artists; Björk has the most rock applications
  assert sub.clip.tolist() == ["Björk", "Björk"] and set(sub.tag.tolist()) == {"rock"}


def test_simulated_users_follow_truncated_normalised_probabilities():
  counts = np.array([[1, 1, 2, 6], [0, 0, 0, 1]])
  n = 4000
  sim = hetrec.simulate_lastfm_users(["a", "b"], ["w", "x", "y", "z"], counts, n, 0)
  users = np.unique(sim.user)
  assert len(users) <= n and all(u.startswith("sim") for u in users.tolist())
  # one artist per simulated user
  pairs = set(zip(sim.user.tolist(), sim.clip.tolist()))
  assert len(pairs) == len(users)
  n_a = len({u for u, c in pairs if c == "a"})
  n_b = len({u for u, c in pairs if c == "b"})
  assert n_a + n_b == n  # no observation is empty here (y, z have p = 1)
  assert abs(n_a - n / 2) < 5 * math.sqrt(n / 4)
  a = sim.clip == "a"
  # p = min(5 * count / 10, 1) = 0.5, 0.5, 1, 1 for artist a; z only for b
  assert np.sum(a & (sim.tag == "y")) == n_a and np.sum(a & (sim.tag == "z")) == n_a
  for tag in ("w", "x"):
    k = np.sum(a & (sim.tag == tag))
    assert abs(k - n_a / 2) < 5 * math.sqrt(n_a / 4)
  assert set(sim.tag[~a].tolist()) == {"z"}
  again = hetrec.simulate_lastfm_users(["a", "b"], ["w", "x", "y", "z"], counts, n, 0)
  assert again.user.tolist() == sim.user.tolist() and again.tag.tolist() == sim.tag.tolist()


def test_simulation_rejects_bad_counts():
  with pytest.raises(ValueError, match="shape"):
    hetrec.simulate_lastfm_users(["a"], ["x", "y"], np.ones((2, 2)), 5, 0)
  with pytest.raises(ValueError, match="positive sum"):
    hetrec.simulate_lastfm_users(["a"], ["x"], np.zeros((1, 1)), 5, 0)


def test_embedded_hetrec_subset_has_documented_size():
  t = hetrec.load_embedded_hetrec()
  assert isinstance(t, TagTable) and t.num_rows == 29406
  assert len(set(t.clip.tolist())) == 200 and len(set(t.tag.tolist())) == 99
  assert t.user is not None


# --- the full originals (only where ../shared/data exists) -------------------

@needs_shared
def test_full_majorminer_counts():
  t = majorminer.load_majorminer_tags(SHARED / "majorminer" / "clip_tags_with_song.tsv")
  assert t.num_rows == 9087
  assert len(set(t.clip.tolist())) == 2359 and len(set(t.track.tolist())) == 1501
  assert len(set(t.tag.tolist())) == 40 and t.count.min() >= 2
  assert "Let's Bring It Back" in " ".join(set(t.track.tolist()))


@needs_shared
def test_essentia_line_parser_agrees_with_pyyaml():
  yaml = pytest.importorskip("yaml")
  files = sorted((SHARED / "majorminer" / "essentia_features").glob("*.sig"))[:3]
  for path in files:
    with open(path) as f:
      expected = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    got = majorminer.parse_essentia_file(path)
    assert _same(got, expected), path


def _same(a, b) -> bool:
  if isinstance(b, dict):
    return isinstance(a, dict) and a.keys() == b.keys() and all(
        _same(a[k], b[k]) for k in b)
  if isinstance(b, list):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  if isinstance(b, (int, float)) and not isinstance(b, bool):
    return a == float(b) or (math.isnan(a) and math.isnan(b))
  return a == b


@needs_shared
def test_full_hetrec_counts_and_embedded_subset_is_reproducible():
  t = hetrec.load_hetrec_triples(SHARED / "hetrec2011-lastfm-2k")
  assert t.num_rows == 186478
  assert len(set(t.user.tolist())) == 1892
  assert len(set(t.clip.tolist())) == 12523 and len(set(t.tag.tolist())) == 9749
  sub = hetrec.select_lastfm_subset(t)
  emb = hetrec.load_embedded_hetrec()
  key = lambda x: sorted(zip(x.clip.tolist(), x.user.tolist(), x.tag.tolist()))
  assert key(sub) == key(emb)
