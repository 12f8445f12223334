"""The sparsity experiment (crbm_jax.paper.sparsity): thinning, statistics, the driver."""
import json
import os

import jax
import numpy as np
import pytest

from crbm_jax.autotag import protocol
from crbm_jax.configs import table3 as table3_config
from crbm_jax.data.tagtable import TagTable
from crbm_jax.paper import sparsity
from crbm_jax.paper import sparsity_report


def test_thinning_is_binomial_within_monte_carlo_error():
  rng = np.random.default_rng(0)
  n, p, draws = 7, 0.3, 20000
  thinned = sparsity.thin_counts(np.full(draws, n), p, rng)
  assert thinned.min() >= 0 and thinned.max() <= n
  mean_se = np.sqrt(n * p * (1 - p) / draws)
  assert abs(thinned.mean() - n * p) < 4 * mean_se
  # Variance n p (1 - p) within 4 s.e. (s.e. of a sample variance ~ var * sqrt(2 / N)).
  var = n * p * (1 - p)
  assert abs(thinned.var() - var) < 4 * var * np.sqrt(2.0 / draws)
  np.testing.assert_array_equal(sparsity.thin_counts(np.array([0, 2, 5]), 1.0, rng),
                                [0, 2, 5])
  for bad in (0.0, 1.5, -0.1):
    with pytest.raises(sparsity.SparsityError, match="keep probability"):
      sparsity.thin_counts(np.array([1]), bad, rng)


def test_thin_table_drops_emptied_rows_and_keeps_columns():
  table = TagTable(clip=np.array(["a", "a", "b", "c"]), tag=np.array(["x", "y", "x", "y"]),
                   count=np.array([2, 50, 3, 40]), track=np.array(["t", "t", "u", "v"]))
  thinned = sparsity.thin_table(table, 0.5, np.random.default_rng(1))
  assert np.all(thinned.count > 0)
  assert thinned.num_rows <= table.num_rows
  # Rows with 40-50 players survive p = 0.5 (P(0) < 1e-12); their columns follow them.
  for clip, tag, track in (("a", "y", "t"), ("c", "y", "v")):
    i = np.flatnonzero((thinned.clip == clip) & (thinned.tag == tag))
    assert len(i) == 1 and thinned.track[i[0]] == track
  same = sparsity.thin_table(table, 1.0, np.random.default_rng(1))
  np.testing.assert_array_equal(same.count, table.count)


def test_counts_matrix_places_counts():
  table = TagTable(clip=np.array(["b", "a", "a"]), tag=np.array(["y", "x", "z"]),
                   count=np.array([3, 2, 9]))
  m = sparsity.counts_matrix(table, np.array(["a", "b", "c"]), np.array(["x", "y"]))
  np.testing.assert_array_equal(m, [[2, 0], [0, 3], [0, 0]])


def test_summarize_exact_small_case():
  nan = np.nan
  # One p, two draws, three tags, two folds; train (raw, smoothed) x test (thinned, unthinned).
  pf = np.full((2, 3, 2, 2, 2), nan)
  # tag 0: raw 60, smoothed 64 everywhere (both tests).
  pf[:, 0, :, 0, :], pf[:, 0, :, 1, :] = 60.0, 64.0
  # tag 1: raw 70 / smoothed 66 in draw 0, raw 72 / smoothed 70 in draw 1.
  pf[0, 1, :, 0, :], pf[0, 1, :, 1, :] = 70.0, 66.0
  pf[1, 1, :, 0, :], pf[1, 1, :, 1, :] = 72.0, 70.0
  # tag 2: raw never trained (too few verified positives); smoothed 55.
  pf[:, 2, :, 1, :] = 55.0
  out = sparsity_report.summarize([0.5], [pf], ["drums", "rock", "slow"], np.array([30, 20, 10]))
  for test in sparsity_report.TESTS:
    e = out["tests"][test]
    raw_tags = np.array([60.0, 71.0])
    smooth_tags = np.array([64.0, 68.0, 55.0])
    assert e["raw"][0][0] == pytest.approx(raw_tags.mean())
    assert e["raw"][0][1] == pytest.approx(raw_tags.std(ddof=1) / np.sqrt(2))
    assert e["raw"][0][2] == 2
    assert e["smoothed"][0][0] == pytest.approx(smooth_tags.mean())
    assert e["smoothed"][0][2] == 3
    d = e["diff"][0]
    diffs = np.array([4.0, -3.0])       # tag 1: mean of draws (-4, -2)
    assert d["mean"] == pytest.approx(diffs.mean())
    assert d["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(2))
    assert d["num_tags"] == 2 and (d["wins"], d["losses"]) == (1, 1)
    # Draw means over the paired tags: draw 0 (4 - 4) / 2 = 0, draw 1 (4 - 2) / 2 = 1.
    assert d["se_draws"] == pytest.approx(np.std([0.0, 1.0], ddof=1) / np.sqrt(2))
    assert d["resolution"] == pytest.approx(2 * d["se"])
    assert d["detectable"] is False and d["significant"] == "neither"
    assert e["smoothed_only"] == [1]
    assert e["by_kind"]["instrument"][0][:1] == (4.0,)
    assert e["by_kind"]["genre"][0][0] == pytest.approx(-3.0)
    assert np.isnan(e["by_kind"]["tempo"][0][0])  # slow: no paired score
  assert out["frequency_bin"] == [2, 1, 0]


def test_summarize_flags_a_significant_resolved_difference():
  rng = np.random.default_rng(0)
  t = 40
  pf = np.zeros((3, t, 5, 2, 2))
  pf[..., 0, :] = 60.0 + rng.normal(0, 1, (3, t, 5, 1))
  pf[..., 1, :] = pf[..., 0, :] + 3.0 + rng.normal(0, 1, (3, t, 5, 1))
  out = sparsity_report.summarize([0.25], [pf], [f"t{i}" for i in range(t)], np.arange(t))
  d = out["tests"]["thinned"]["diff"][0]
  assert d["detectable"] and d["significant"] == "smoothed"
  pf[..., 1, :] = pf[..., 0, :] - 3.0
  d = sparsity_report.summarize([0.25], [pf], [f"t{i}" for i in range(t)],
                         np.arange(t))["tests"]["thinned"]["diff"][0]
  assert d["significant"] == "raw"


def test_unthinned_test_sets_are_table3s_raw_test_sets():
  """score_unit scores the unthinned labels with Table 3's raw-test example seeds."""
  rng = np.random.default_rng(3)
  c, v = 120, 3
  x = rng.normal(size=(c, 4))
  full = rng.integers(0, 4, size=(c, v))
  full[rng.random((c, v)) < 0.5] = 0
  smoothed = rng.random((c, v))
  groups = np.array([f"g{i // 2}" for i in range(c)])
  ref = protocol.run_table3(x, full, smoothed, groups, ["a", "b", "c"], num_tags=v,
                            max_per_class=10, progress=False, standardize=False)
  tags = protocol.top_tags(full, v)
  pf = sparsity.score_unit(x, full, smoothed, full, ref.fold_ids, tags,
                           dict(seed=0, max_per_class=10, min_verified=2, nu=0.5,
                                decision="probability"))
  np.testing.assert_array_equal(pf[..., 1], ref.per_fold[..., 0])   # unthinned
  np.testing.assert_array_equal(pf[..., 0], pf[..., 1])             # p = 1: same labels


def _fast_config():
  config = table3_config.get_config("smoke")
  config.search.enabled = False          # the fixed smoke model: seconds
  config.model.update(dict(num_hidden=2, num_epochs=2, batch_size=100))
  config.smoothing.update(dict(num_samples=10, burn_in=5))
  config.sparsity.update(dict(keep=(0.25, 1.0), num_tags=3))
  return config


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  config = _fast_config()
  workdir = str(tmp_path_factory.mktemp("sparsity"))
  return config, sparsity.run_sparsity(config, workdir, jax.random.key(0), progress=False)


@pytest.mark.extended
def test_smoke_run_writes_table_figure_and_json(smoke):
  config, res = smoke
  paths = res["paths"]
  for key in ("markdown", "png", "csv", "json"):
    assert os.path.getsize(paths[key]) > 0, key
  md = open(paths["markdown"]).read()
  assert "p = 0.25" in md and "smoothed − raw (paired)" in md and "sparsity.png" in md
  with open(paths["json"]) as fh:
    blob = json.load(fh)
  assert blob["keep"] == [0.25, 1.0] and blob["num_draws"] == [1, 1]
  assert len(blob["tag_names"]) == 3
  for test in sparsity_report.TESTS:
    for name in sparsity_report.TRAIN:
      for mean, _, n in blob["tests"][test][name]:
        assert n == 0 or 0.0 <= mean <= 100.0
  for name in sparsity_report.TRAIN:   # at p = 1 every test has tags to score
    assert all(n > 0 for _, _, n in (blob["tests"][t][name][-1] for t in sparsity_report.TESTS))
  # Each draw's model says which groups it conditioned on and why the clip was dropped.
  info = blob["models"]["p=0.25 draw=0"]
  assert info["groups"] == ["track"] and "clip" in info["dropped_groups"]
  assert set(info["aux_dependence"]) >= {"track", "all", "method"}
  assert info["clips_without_observation"] > 0      # thinning empties some clips


@pytest.mark.extended
def test_smoke_run_p1_tests_coincide(smoke):
  _, res = smoke
  for name in sparsity_report.TRAIN:
    a = res["summary"]["tests"]["thinned"][name][1]
    b = res["summary"]["tests"]["unthinned"][name][1]
    assert a[2] == b[2] and a[2] > 0
    assert a[0] == pytest.approx(b[0])


def test_reference_from_other_folds_is_refused(tmp_path):
  config = _fast_config()
  inputs = sparsity.load_inputs(config)
  reference = dict(clips=inputs.clips, fold_ids=(inputs.fold_ids + 1) % 5,
                   vocab=inputs.vocab, raw=inputs.full_raw, per_fold=None)
  with pytest.raises(sparsity.SparsityError, match="other clips, tags, counts or folds"):
    sparsity.run_sparsity(config, str(tmp_path), jax.random.key(0), reference=reference,
                          progress=False)


def test_tag_kinds_cover_majorminer():
  config = _fast_config()
  inputs = sparsity.load_inputs(config)
  kinds = {sparsity_report.tag_kind(t) for t in inputs.vocab.tolist()}
  assert "other" not in kinds
  assert kinds == {"instrument", "vocals", "genre", "mood", "tempo"}


def test_summarize_baselines_pairs_with_raw_and_the_crbm():
  nan = np.nan
  # One p, one draw, two tags, two folds; [D, T, F, train (raw, smoothed), test].
  pf = np.full((1, 2, 2, 2, 2), nan)
  pf[0, :, :, 0, :], pf[0, :, :, 1, :] = 60.0, 64.0
  base = np.full((1, 2, 2, 1, 2), nan)
  base[0, 0, :, 0, :] = 70.0           # tag 0: 70 in both folds
  base[0, 1, 0, 0, :] = 50.0           # tag 1: fold 0 only
  out = sparsity_report.summarize_baselines([0.5], [pf], [base], ["track_pool"])
  for test in sparsity_report.TESTS:
    e = out["tests"][test]["track_pool"]
    assert e["acc"][0][0] == pytest.approx(60.0) and e["acc"][0][2] == 2
    crbm = np.array([70.0 - 64.0, 50.0 - 64.0])
    assert e["vs_crbm"][0]["mean"] == pytest.approx(crbm.mean())
    assert e["vs_crbm"][0]["se"] == pytest.approx(crbm.std(ddof=1) / np.sqrt(2))
    assert (e["vs_crbm"][0]["wins"], e["vs_crbm"][0]["losses"]) == (1, 1)
    assert e["vs_raw"][0]["mean"] == pytest.approx(np.mean([10.0, -10.0]))


@pytest.mark.extended
def test_smoke_run_has_the_baseline_smoothers_at_every_p(smoke):
  _, res = smoke
  base = res["summary"]["baselines"]
  assert "track_pool" in base["names"] or "track_pool" in base["not_applicable"]
  for name in base["names"]:
    for test in sparsity_report.TESTS:
      assert len(base["tests"][test][name]["vs_crbm"]) == len(res["summary"]["keep"])
  assert "Baseline smoothers at every p" in open(res["paths"]["markdown"]).read()


@pytest.mark.extended
def test_labels_in_two_processes_give_the_same_experiment(smoke, tmp_path):
  """sparsity.label_processes = 2 computes each p's labels in a spawned process; the
  summary and every draw's model equal the one-process run's (the smoke fixture)."""
  config, one = smoke
  assert int(config.sparsity.label_processes) == 1
  config = _fast_config()
  config.sparsity.label_processes = 2
  two = sparsity.run_sparsity(config, str(tmp_path), jax.random.key(0), progress=False)
  np.testing.assert_equal(two["summary"], one["summary"])
  untimed = lambda info: {k: v for k, v in info.items() if "seconds" not in k}
  assert list(two["models"]) == list(one["models"])
  for name in one["models"]:
    np.testing.assert_equal(untimed(two["models"][name]), untimed(one["models"][name]))


@pytest.mark.extended
def test_labels_started_early_give_the_same_experiment(smoke, tmp_path):
  """``start_labels`` (as crbm-reproduce's Table 3 stage calls it before its data sets)
  then ``run_sparsity(labels=...)`` gives the one-process run's summary and models."""
  config, one = smoke
  config = _fast_config()
  config.sparsity.label_processes = 2
  labels = sparsity.start_labels(config, jax.random.key(0), with_reference=False,
                                 progress=False)
  assert labels.pool is not None and len(labels.futures) == len(labels.by_p)
  early = sparsity.run_sparsity(config, str(tmp_path), jax.random.key(0), progress=False,
                                labels=labels)
  assert labels.pool is None  # closed by run_sparsity
  np.testing.assert_equal(early["summary"], one["summary"])
  assert list(early["models"]) == list(one["models"])


def test_labels_started_for_another_p1_column_are_refused(tmp_path):
  """Labels started without p = 1 (Table 3's run was to give it) cannot serve a run
  that has no reference: p = 1 would be missing."""
  config = _fast_config()
  assert 1.0 in [float(p) for p in config.sparsity.keep]
  labels = sparsity.start_labels(config, jax.random.key(0), with_reference=True,
                                 progress=False)
  assert labels.pool is None and all(p != 1.0 for _, p, _ in labels.units)
  with pytest.raises(sparsity.SparsityError, match="another p = 1 column"):
    sparsity.run_sparsity(config, str(tmp_path), jax.random.key(0), progress=False,
                          labels=labels)
