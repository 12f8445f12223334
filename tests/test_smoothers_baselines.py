"""Baseline smoothers (issue 23): one interface, not-applicable with reasons."""
import numpy as np
import pytest

from crbm_jax.data import observations as obs_lib
from crbm_jax.data.tagtable import TagTable
from crbm_jax.smoothers import baselines, compare, count_split


def _table(users=True, tracks=True, seed=0):
  """4 tracks x 3 clips; each track has its own tag, clips of a track share it."""
  r = np.random.default_rng(seed)
  rows = []
  for t in range(4):
    for c in range(3):
      for u in range(5):
        for tag in (f"t{t}", "common", f"x{r.integers(0, 3)}"):
          if r.random() < 0.7:
            rows.append((f"c{t}_{c}", f"tr{t}", f"u{u}", tag))
  clip, track, user, tag = (np.array(x) for x in zip(*rows))
  kw = dict(clip=clip, tag=tag, count=np.ones(len(rows), np.int64))
  if tracks:
    kw["track"] = track
  if users:
    kw["user"] = user
  table = TagTable(**kw)
  groups = tuple(g for g, on in (("user", users), ("track", tracks), ("clip", True)) if on)
  return obs_lib.build_observations(table, aux_groups=groups)


def _tune(obs):
  held = count_split.held_out_observations(obs.X, obs.counts, obs.aux, obs.groups, 0.3, 0)
  return baselines.held_out_data(obs, held)


def test_every_smoother_maps_observations_to_clip_by_tag_affinities():
  obs = _table()
  res = baselines.run_all(obs, _tune(obs), names=["raw_share", "base_rate", "track_pool",
                                                  "low_rank"])
  clips = np.unique(obs.clip)
  for name, r in res.items():
    assert r.affinities.shape == (len(clips), obs.num_visible), name
    assert np.all((r.affinities >= 0) & (r.affinities <= 1)), name
  # The track pool reads the track: a track's own tag scores higher on its clips.
  vocab = obs.vocab.tolist()
  pool = res["track_pool"].affinities
  for i, c in enumerate(clips):
    t = c[1]
    own = pool[i, vocab.index(f"t{t}")]
    assert all(own > pool[i, vocab.index(f"t{o}")] for o in range(4) if str(o) != t)
  # The base rate does not depend on the clip (the floor every smoother must beat).
  assert np.allclose(res["base_rate"].affinities, res["base_rate"].affinities[0])
  assert 0.0 <= res["track_pool"].chosen["weight"] <= 1.0


def test_not_applicable_smoothers_say_why_and_give_no_number():
  obs = _table(users=False, tracks=False)
  res = baselines.run_all(obs, _tune(obs), names=["track_pool", "dawid_skene"])
  assert res["track_pool"].affinities is None and "no tracks" in res["track_pool"].reason
  assert res["dawid_skene"].affinities is None
  assert "per-user" in res["dawid_skene"].reason or "crowd-kit" in res["dawid_skene"].reason
  scores, _ = compare.held_out_scores(obs, 0.3, 0, None, names=["raw_share", "track_pool"])
  assert set(scores["track_pool"]) == {"not_applicable"}
  assert np.isfinite(scores["raw_share"]["balanced_log_lik"])
  assert compare.strongest(scores) == "raw_share"


def test_crowd_aggregators_give_probabilities_when_installed():
  pytest.importorskip("crowdkit", reason="crowd-kit not installed (the [crowd] extra)")
  obs = _table()
  res = baselines.run_all(obs, None, names=["mv"])
  p = res["mv"].affinities
  assert p.shape == (len(np.unique(obs.clip)), obs.num_visible)
  # Majority vote's probability is the share of the clip's users who gave the tag.
  share = baselines.clip_share(baselines.from_observations(obs))
  np.testing.assert_allclose(p, share, atol=1e-9)


def test_paired_differences_against_the_crbm():
  per_tag = {compare.CRBM: np.array([0.8, 0.7, np.nan, 0.9]),
             "b": np.array([0.7, 0.7, 0.5, 0.6])}
  d = compare.paired_tag_differences(per_tag)["b"]
  diffs = np.array([-0.1, 0.0, -0.3])
  assert d["num_tags"] == 3 and d["mean"] == pytest.approx(diffs.mean())
  assert d["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))


def test_scorecard_row_b_is_judged_against_the_strongest_baseline():
  from crbm_jax.paper import scorecard as sc
  rec = {"smoothed": 0.90, "raw": 0.50, "num_positive": 500, "num_negative": 5000,
         "baselines": {"track_pool": 0.89, "base_rate": 0.6}}
  cell = sc._b("simulated", rec)  # pylint: disable=protected-access
  assert "track_pool, the strongest baseline" in cell["ours"]
  assert cell["verdict"] == sc.NOT_REPRODUCED   # 0.01 is within 2 s.e.
  cell = sc._b("simulated", dict(rec, baselines={}))  # pylint: disable=protected-access
  assert "raw_count" in cell["ours"] and cell["verdict"] == sc.REPRODUCED
