"""Tests for the simulated Mechanical Turk study (crbm_jax.data.simulate)."""
import dataclasses
import filecmp
import functools

import numpy as np
import pytest

from crbm_jax.data import tag_kinds
from crbm_jax.data.canonical import canonical_tag
from crbm_jax.data.errors import DataError
from crbm_jax.data.simulate import (SPAM_KINDS, SimulationConfig, SimulationError,
                                    audio_features, simulate_study, write_study)


@functools.lru_cache(maxsize=None)
def study(seed=0, **kw):
  return simulate_study(SimulationConfig(seed=seed, **kw))


def clip_rows(s):
  index = {c: i for i, c in enumerate(s.clip.tolist())}
  return np.array([index[c] for c in s.hit_clip.tolist()])


def test_default_study_has_the_papers_design():
  s = study()
  assert len(s.clip) == 925 and s.num_hits == 2775
  assert len(np.unique(s.track)) == 185
  assert len(s.worker_ids) == 227
  assert set(s.worker_kind) <= {"honest", *SPAM_KINDS}
  assert (s.worker_kind != "honest").sum() == round(0.08 * 227)
  # Three distinct workers per clip; HITId shared by a clip's assignments.
  for c in range(0, 925, 37):
    rows = np.flatnonzero(s.hit_clip == s.clip[c])
    assert len(rows) == 3 and len(set(s.worker[rows])) == 3
    assert len(set(s.hit[rows])) == 1
  assert len(set(s.assignment)) == 2775
  # Five evenly spaced 10 s clips inside each track.
  pos = s.clip_position().reshape(185, 5)
  np.testing.assert_allclose(pos, np.tile([0.1, 0.3, 0.5, 0.7, 0.9], (185, 1)), atol=1e-3)
  assert (s.start >= 0).all() and (s.start + s.duration <= s.track_duration).all()
  assert (s.track_duration >= 150).all() and (s.track_duration <= 330).all()
  assert s.truth.shape == (925, len(s.tag_names)) and s.truth.dtype == bool
  assert s.features.dtype == np.float32 and s.features.shape == (925, 64)


def test_simulation_deterministic_for_a_seed(tmp_path):
  a, b = simulate_study(SimulationConfig(seed=3)), simulate_study(SimulationConfig(seed=3))
  assert a.answers == b.answers
  np.testing.assert_array_equal(a.truth, b.truth)
  np.testing.assert_array_equal(a.features, b.features)
  pa, pb = write_study(a, str(tmp_path / "a")), write_study(b, str(tmp_path / "b"))
  for name in pa:
    assert filecmp.cmp(pa[name], pb[name], shallow=False), name
  c = study(seed=4)
  assert c.answers != a.answers


def test_honest_answers_are_truth_minus_misses_plus_noise():
  s = study()
  truth = s.truth[clip_rows(s)]
  h = s.honest
  assert not (s.missed & ~truth).any()
  assert not (s.missed & s.reported).any()
  np.testing.assert_array_equal((s.missed | (s.reported & truth))[h], truth[h])
  assert not s.missed[~h].any()
  recall = (s.reported & truth)[h].sum() / truth[h].sum()
  assert 0.1 <= recall <= 0.6
  n = np.array([len(a) for a, ok in zip(s.answers, h) if ok])
  assert 5.0 <= n.mean() <= 8.0 and n.max() <= 15
  # Free-text noise: many answers are not the canonical surface form itself.
  surface = set(s.surface.tolist())
  raw = [t for a, ok in zip(s.answers, h) if ok for t in a]
  assert np.mean([t not in surface for t in raw]) > 0.1
  canon = set(s.tag_names.tolist())
  assert {"80s", "hip hop"} <= canon
  assert sum(canonical_tag(t) == "80s" and t != "80s" for t in raw) > 0


def test_filters_reject_spam_and_keep_honest_hits():
  filters = pytest.importorskip("crbm_jax.data.filters")
  s = study()
  result = filters.filter_hits(s.to_hits(), filters.load_dictionary())
  assert result.accepted[s.honest].mean() >= 0.9
  rejected = {w for w, r in result.worker_reasons.items() if r}
  spam_workers = s.worker_ids[s.worker_kind != "honest"]
  assert np.mean([w in rejected for w in spam_workers]) >= 0.9
  assert result.accepted[~s.honest].mean() <= 0.1


def _shared(a, b):
  return np.einsum("ij,ij->i", a, b)


def test_true_tag_overlap_decreases_with_clip_distance():
  """The OU distance structure, on clip-level tags only."""
  s = study()
  clip_level = np.isin(s.tag_kind, tag_kinds.CLIP_KINDS)
  T = s.truth[:, clip_level].astype(np.float64).reshape(185, 5, -1)
  near = np.mean([_shared(T[:, i], T[:, i + 1]) for i in range(4)], 0)  # per track
  far = _shared(T[:, 0], T[:, 4])
  diff = near - far
  assert diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(len(diff))
  # Control: without drift (and without section bumps) the overlap does not depend
  # on distance.
  flat_s = study(drift_scale=0.0, section_peak=0.0)
  flat = flat_s.truth[:, clip_level].astype(np.float64).reshape(185, 5, -1)
  d0 = np.mean([_shared(flat[:, i], flat[:, i + 1]) for i in range(4)], 0) - \
      _shared(flat[:, 0], flat[:, 4])
  assert abs(d0.mean()) < 4 * d0.std(ddof=1) / np.sqrt(len(d0)) + 1e-12
  assert diff.mean() > d0.mean()


def test_whole_track_tags_are_constant_within_a_track():
  s = study()
  track_level = np.isin(s.tag_kind, tag_kinds.TRACK_KINDS)
  assert track_level.sum() > 100 and (~track_level).sum() > 30
  T = s.truth.reshape(185, 5, -1)
  assert (T[:, :, track_level] == T[:, :1, track_level]).all()
  # ... while clip-level tags change inside tracks.
  assert (T[:, :, ~track_level] != T[:, :1, ~track_level]).any(axis=(1, 2)).mean() > 0.5
  # Sections sit where they belong: intros at the start, outros at the end.
  intro = s.truth[:, list(s.surface).index("intro")].reshape(185, 5).mean(0)
  outro = s.truth[:, list(s.surface).index("outro")].reshape(185, 5).mean(0)
  assert intro[0] > intro[4] + 0.2 and outro[4] > outro[0] + 0.2


def test_every_simulator_tag_has_a_listed_kind():
  s = study()
  kinds = tag_kinds.load_tag_kinds()
  assert [kinds[str(t)].kind for t in s.surface] == list(s.tag_kind)
  assert set(s.tag_kind) >= {"genre", "era", "locale", "opinion", "instrument", "vocals",
                             "mood", "tempo", "section"}
  for tag, kind in [("rock", "genre"), ("80s", "era"), ("british", "locale"),
                    ("party", "opinion"), ("guitar", "instrument"),
                    ("female vocalists", "vocals"), ("mellow", "mood"), ("fast", "tempo"),
                    ("intro", "section")]:
    assert kinds[tag].kind == kind


def test_tag_kinds_file_errors_name_the_line():
  with pytest.raises(DataError, match=r"x\.tsv:3: tag 'bongo' has unknown kind 'drum'"):
    tag_kinds.load_tag_kinds("# c\nrock\tgenre\nbongo\tdrum\n", "x.tsv")
  with pytest.raises(DataError, match=r"x\.tsv:2: clip-level tag 'bongos' needs a base"):
    tag_kinds.load_tag_kinds("rock\tgenre\nbongos\tinstrument\n", "x.tsv")
  with pytest.raises(DataError, match=r"x\.tsv:2: tag 'rock' listed twice, first on line 1"):
    tag_kinds.load_tag_kinds("rock\tgenre\nrock\tgenre\n", "x.tsv")
  with pytest.raises(DataError, match="no kind, first 'zydeco'"):
    tag_kinds.kinds_of(["rock", "zydeco"])


def test_table1_structure_on_accepted_hits():
  filters = pytest.importorskip("crbm_jax.data.filters")
  s = study()
  result = filters.filter_hits(s.to_hits(), filters.load_dictionary())
  idx = np.flatnonzero(result.accepted)
  vocab = {t: i for i, t in enumerate(sorted({t for h in idx for t in result.canonical_tags[h]}))}
  X = np.zeros((len(idx), len(vocab)), np.float32)
  for j, h in enumerate(idx):
    X[j, [vocab[t] for t in result.canonical_tags[h]]] = 1
  S = X @ X.T
  clip = clip_rows(s)[idx]
  track = clip // 5
  user = s.worker[idx]
  su, st, sc = (user[:, None] == user), (track[:, None] == track), (clip[:, None] == clip)
  upper = np.triu(np.ones_like(su), 1)

  def cell(mask):
    v = S[mask & upper]
    return v.mean(), v.std() / np.sqrt(len(v))

  rows = {
      "same user, track": cell(su & st & ~sc), "same user": cell(su & ~st),
      "same clip": cell(~su & sc), "same track": cell(~su & st & ~sc),
      "nothing": cell(~su & ~st)}
  tags_per_hit = X.sum(1).mean()
  assert 5.0 <= tags_per_hit <= 8.0

  def greater(a, b):
    (ma, sa), (mb, sb) = rows[a], rows[b]
    assert ma - mb > 3 * np.hypot(sa, sb), (a, b, rows)

  greater("same clip", "same track")
  greater("same track", "nothing")
  greater("same user", "nothing")
  greater("same user, track", "same track")


def test_features_hear_only_audible_tags():
  s = study()
  audible = np.isin(s.tag_kind, tag_kinds.AUDIBLE_KINDS)
  assert not audible[list(s.surface).index("80s")] and audible[list(s.surface).index("rock")]
  track = np.repeat(np.arange(185), 5)

  def feats(truth):
    return audio_features(np.random.default_rng([0, 1]), truth, audible, track, s.config)

  np.testing.assert_array_equal(feats(s.truth), s.features)
  # Changing every inaudible tag (era, locale, opinion, section) changes nothing ...
  other = s.truth.copy()
  other[:, ~audible] = np.random.default_rng(5).random((925, (~audible).sum())) < 0.5
  np.testing.assert_array_equal(feats(other), s.features)
  # ... changing audible ones does.
  other[:, audible] = ~other[:, audible]
  assert np.abs(feats(other) - s.features).mean() > 0.1
  # Audible truth explains much of the features, but not all, and not linearly.
  A = np.concatenate([s.truth[:, audible].astype(np.float64), np.ones((925, 1))], 1)
  coef, *_ = np.linalg.lstsq(A, s.features, rcond=None)
  r2 = 1 - (s.features - A @ coef).var() / s.features.var()
  assert 0.2 < r2 < 0.9


def test_written_study_round_trips_through_the_loaders(tmp_path):
  mturk = pytest.importorskip("crbm_jax.data.mturk")
  s = study()
  paths = write_study(s, str(tmp_path))
  hits = mturk.load_mturk_batch(paths["batch"])
  np.testing.assert_array_equal(hits.worker, s.worker)
  np.testing.assert_array_equal(hits.clip, s.hit_clip)
  assert hits.tags == [[t.strip() for t in a] for a in s.answers]
  meta = mturk.load_clip_metadata(paths["clips"])
  assert len(meta) == 925
  info = meta[s.clip[7]]
  assert info.track == s.track[7]
  assert info.start == pytest.approx(s.start[7])
  assert info.track_duration == pytest.approx(s.track_duration[7], abs=0.05)
  with np.load(paths["features"]) as f:
    np.testing.assert_array_equal(f["features"], s.features)
  lines = open(paths["truth"]).read().splitlines()
  assert lines[0] == "clip\ttag" and len(lines) == 1 + s.truth.sum()


def test_config_is_frozen_and_infeasible_configs_raise():
  cfg = SimulationConfig()
  with pytest.raises(dataclasses.FrozenInstanceError):
    cfg.seed = 1  # type: ignore[misc]
  with pytest.raises(SimulationError, match="spammers"):
    simulate_study(SimulationConfig(num_tracks=2, num_workers=50))
  with pytest.raises(SimulationError, match="workers_per_clip"):
    simulate_study(SimulationConfig(num_workers=2))


@pytest.mark.parametrize("seed", [1, 2])
def test_small_studies_assign_distinct_workers(seed):
  s = simulate_study(SimulationConfig(num_tracks=12, num_workers=25, seed=seed))
  assert s.num_hits == 12 * 5 * 3
  pairs = set(zip(s.worker.tolist(), s.hit_clip.tolist()))
  assert len(pairs) == s.num_hits
  assert set(s.worker.tolist()) == set(s.worker_ids.tolist())


def test_majorminer_tag_kinds_are_a_checked_committed_list():
  from crbm_jax.data import tag_kinds  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.errors import DataError  # pylint: disable=import-outside-toplevel
  kinds = tag_kinds.load_majorminer_kinds()
  assert kinds["drums"] == "instrument" and kinds["female"] == "vocals"
  assert kinds["rock"] == "genre" and kinds["fast"] == "tempo" and kinds["quiet"] == "mood"
  assert set(kinds.values()) <= set(tag_kinds.KINDS)
  with pytest.raises(DataError, match=r"^k\.tsv:3: tag 'hiss' has unknown kind 'noise'"):
    tag_kinds.load_majorminer_kinds("# c\nrock\tgenre\nhiss\tnoise\n", "k.tsv")
  with pytest.raises(DataError, match=r"^k\.tsv:2: tag 'rock' listed twice, first on line 1"):
    tag_kinds.load_majorminer_kinds("rock\tgenre\nrock\tmood\n", "k.tsv")
