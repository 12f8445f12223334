"""Tests for crbm_jax.autotag folds, svm and protocol (the Table 3 / Figure 2 SVM protocol)."""
import csv
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crbm_jax.autotag import folds, svm
from crbm_jax.autotag import protocol as table3
from crbm_jax.paper import published
from crbm_jax.util.stats import recovery_auc


# ------------------------------------------------------------------ folds

@given(st.lists(st.integers(1, 9), min_size=5, max_size=60), st.integers(2, 5),
       st.integers(0, 3))
def test_grouped_folds_keep_groups_whole_and_balance_sizes(sizes, num_folds, seed):
  groups = np.repeat(np.arange(len(sizes)), sizes)
  fold = folds.grouped_folds(groups, num_folds, seed)
  for g in range(len(sizes)):
    assert np.unique(fold[groups == g]).shape[0] == 1
  counts = np.bincount(fold, minlength=num_folds)
  assert counts.min() > 0
  assert counts.max() - counts.min() <= max(sizes)
  np.testing.assert_array_equal(fold, folds.grouped_folds(groups, num_folds, seed))


def test_grouped_folds_equal_groups_split_exactly_evenly_for_string_labels():
  groups = np.repeat([f"album{i}" for i in range(20)], 5)
  fold = folds.grouped_folds(groups, 5, seed=1)
  np.testing.assert_array_equal(np.bincount(fold), [20] * 5)


def test_grouped_folds_rejects_too_few_groups():
  with pytest.raises(ValueError, match="3 groups cannot fill 5 folds"):
    folds.grouped_folds([0, 0, 1, 2], 5)


# ------------------------------------------------------------------ selection

def test_select_smoothed_takes_top_and_bottom_of_candidates():
  aff = np.array([0.9, 0.1, 0.5, 0.95, 0.0, 0.3, 0.8, 0.2])
  mask = np.ones(8, bool)
  mask[3] = False  # the best clip is in the test fold
  pos, neg = svm.select_examples(aff, mask, "smoothed", max_per_class=2)
  np.testing.assert_array_equal(pos, [0, 6])
  np.testing.assert_array_equal(neg, [4, 1])


def test_select_smoothed_with_few_candidates_gives_disjoint_halves():
  aff = np.array([0.9, 0.1, 0.5, 0.7, 0.2])
  pos, neg = svm.select_examples(aff, np.ones(5, bool), "smoothed", max_per_class=100)
  np.testing.assert_array_equal(pos, [0, 3])
  np.testing.assert_array_equal(neg, [1, 4])


def test_select_raw_positives_are_verified_by_at_least_two_users():
  counts = np.array([5, 0, 1, 3, 0, 2, 0, 1, 0, 0, 0])
  pos, neg = svm.select_examples(counts, np.ones(11, bool), "raw", max_per_class=100)
  np.testing.assert_array_equal(pos, [0, 3, 5])  # counts 5, 3, 2; never count 1
  assert neg.shape == (3,) and np.all(counts[neg] == 0)
  pos2, _ = svm.select_examples(counts, np.ones(11, bool), "raw", max_per_class=2)
  np.testing.assert_array_equal(pos2, [0, 3])  # the top 2 when fewer than verified


def test_select_raw_balances_when_few_zero_count_clips():
  counts = np.array([4, 3, 2, 2, 0, 1])
  pos, neg = svm.select_examples(counts, np.ones(6, bool), "raw")
  np.testing.assert_array_equal(pos, [0])
  np.testing.assert_array_equal(neg, [4])


def test_select_respects_candidate_mask_and_is_seeded():
  counts = np.random.default_rng(0).integers(0, 4, size=200)
  mask = np.arange(200) % 3 == 0
  a = svm.select_examples(counts, mask, "raw", 10, rng=np.random.default_rng(5))
  b = svm.select_examples(counts, mask, "raw", 10, rng=np.random.default_rng(5))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
    assert np.all(mask[x])


# ------------------------------------------------------------------ classifier

def test_balanced_accuracy_known_cases():
  y = np.array([1, 1, 1, 1, 0, 0], bool)
  assert svm.balanced_accuracy(y, y) == 1.0
  assert svm.balanced_accuracy(y, np.ones(6, bool)) == 0.5
  assert svm.balanced_accuracy(y, ~y) == 0.0
  assert svm.balanced_accuracy(y, [1, 1, 1, 0, 0, 1]) == pytest.approx(0.5 * (0.75 + 0.5))
  with pytest.raises(ValueError, match="both classes"):
    svm.balanced_accuracy([1, 1], [1, 0])


@pytest.mark.parametrize("decision", ["probability", "sign"])
def test_svm_separates_separable_clusters(decision):
  rng = np.random.default_rng(0)
  x_pos, x_neg = rng.normal(2.0, 1.0, (30, 5)), rng.normal(-2.0, 1.0, (30, 5))
  clf = svm.fit_tag_svm(x_pos, x_neg)
  t_pos, t_neg = rng.normal(2.0, 1.0, (20, 5)), rng.normal(-2.0, 1.0, (20, 5))
  pred = svm.predict_labels(clf, np.concatenate([t_pos, t_neg]), decision)
  truth = np.r_[np.ones(20, bool), np.zeros(20, bool)]
  assert svm.balanced_accuracy(truth, pred) >= 0.95


# ------------------------------------------------------------------ table 3

def _synthetic(num_clips=400, num_tags=6, informative=True, seed=0):
  """Clips in tracks of 5; features carry a latent factor per tag when informative."""
  rng = np.random.default_rng(seed)
  groups = np.repeat(np.arange(num_clips // 5), 5)
  latent = rng.normal(size=(num_clips, num_tags))
  smoothed = 1 / (1 + np.exp(-2 * latent))
  raw = rng.binomial(3, 0.6 * smoothed)
  feats = rng.normal(size=(num_clips, 20))
  if informative:
    feats[:, :num_tags] += 1.5 * latent
  return feats, raw, smoothed, groups, [f"tag{t}" for t in range(num_tags)]


def test_table3_informative_features_give_accuracy_well_above_chance():
  feats, raw, smoothed, groups, names = _synthetic()
  r = table3.run_table3(feats, raw, smoothed, groups, names, num_tags=6, progress=False)
  assert r.mean.shape == (2, 2) and np.all(np.isfinite(r.se))
  assert r.mean[1, 1] > 75.0  # trained and tested on smoothed
  assert np.all(r.mean > 60.0)
  np.testing.assert_array_equal(r.fold_ids, folds.grouped_folds(groups, 5, 0))
  assert sum(r.skipped.values()) == 0


def test_table3_random_features_give_chance_accuracy_within_statistical_bound():
  feats, raw, smoothed, groups, names = _synthetic(num_tags=8, informative=False, seed=1)
  r = table3.run_table3(feats, raw, smoothed, groups, names, num_tags=8, progress=False)
  # Under the null (features independent of labels) each (tag, fold) balanced
  # accuracy on k positives and k negatives has mean 1/2 and variance at most
  # (0.25 / k + 0.25 / k) / 4, independently across folds and tags. Bound each
  # cell's mean over tags of fold means by 5 standard deviations.
  tag_idx = [names.index(t) for t in r.tag_names]
  for j, (kind, labels) in enumerate([("raw", raw), ("smoothed", smoothed)]):
    var = 0.0
    for t in tag_idx:
      ks = [svm.select_examples(labels[:, t], r.fold_ids == f, kind, 20)[0].shape[0]
            for f in range(5)]
      ks = [k for k in ks if k >= 2]
      var += sum(0.125 / k for k in ks) / len(ks) ** 2
    sd = 100.0 * np.sqrt(var) / len(tag_idx)
    for i in range(2):
      assert abs(r.mean[i, j] - 50.0) < 5 * sd, (i, j, r.mean, sd)


def test_table3_picks_most_used_tags_and_counts_skipped_tags():
  feats, raw, smoothed, groups, names = _synthetic(num_tags=4)
  raw[:, 3] = 0
  raw[:3, 3] = 2  # tag3 has 3 verified clips: too few positives in every fold
  raw[:, 0] *= 5  # tag0 the most used
  r = table3.run_table3(feats, raw, smoothed, groups, names, num_tags=4, progress=False,
                        min_train_per_class=5)
  assert r.tag_names[0] == "tag0" and r.tag_names[-1] == "tag3"
  assert r.skipped["train_raw"] == 5
  assert np.all(np.isnan(r.per_tag[3, 0]))  # never trained on raw
  assert np.all(np.isfinite(r.per_tag[3, 1, 1]))
  np.testing.assert_array_equal(r.num_tags_scored[0], [3, 3])
  r2 = table3.run_table3(feats, raw, smoothed, groups, names, num_tags=2, progress=False)
  assert r2.tag_names == ["tag0", r.tag_names[1]]


def test_table3_rejects_bad_labels_with_clear_errors():
  feats, raw, smoothed, groups, names = _synthetic(num_tags=2)
  with pytest.raises(ValueError, match=r"smoothed affinities must lie in \[0, 1\]"):
    table3.run_table3(feats, raw, smoothed * 2, groups, names, progress=False)
  with pytest.raises(ValueError, match="2 tag names for 3 tags"):
    table3.run_table3(feats, np.c_[raw, raw[:, :1]], np.c_[smoothed, smoothed[:, :1]],
                      groups, names, progress=False)


def test_table3_mean_and_se_are_over_tags_of_fold_means():
  feats, raw, smoothed, groups, names = _synthetic(num_tags=3)
  r = table3.run_table3(feats, raw, smoothed, groups, names, num_tags=3, progress=False)
  per_tag = np.nanmean(r.per_fold, axis=1)
  np.testing.assert_allclose(r.per_tag, per_tag)
  np.testing.assert_allclose(r.mean, per_tag.mean(axis=0))
  np.testing.assert_allclose(r.se, per_tag.std(axis=0, ddof=1) / np.sqrt(3))


def test_write_table3_and_plot_figure2_write_readable_files(tmp_path):
  feats, raw, smoothed, groups, names = _synthetic(num_tags=3)
  r = table3.run_table3(feats, raw, smoothed, groups, names, num_tags=3, progress=False)
  paths = table3.write_table3(r, str(tmp_path), "mturk", published.TABLE3["mturk"])
  md = open(paths["markdown"]).read()
  assert "paper 63.40 ± 0.35" in md and f"{r.mean[1, 1]:.2f}" in md
  rows = list(csv.reader(open(paths["csv"])))
  assert len(rows) == 4 and rows[0][2] == "train_raw_test_raw"
  blob = json.load(open(paths["json"]))
  np.testing.assert_allclose(blob["mean"], r.mean)
  csv_path = table3.plot_figure2(r, str(tmp_path / "fig2.png"), top=50,
                                 surface_forms={"tag0": "Tag Zero"})
  assert (tmp_path / "fig2.png").stat().st_size > 1000
  fig_rows = list(csv.reader(open(csv_path)))
  assert len(fig_rows) == 4 and "Tag Zero" in [row[0] for row in fig_rows]
  smoothed_acc = [float(row[1]) for row in fig_rows[1:]]
  assert smoothed_acc == sorted(smoothed_acc, reverse=True)


# ------------------------------------------------------------------ recovery AUC

def test_recovery_auc_matches_pair_counting_and_respects_mask():
  rng = np.random.default_rng(0)
  truth = rng.random((30, 4)) < 0.4
  scores = truth + rng.normal(0, 0.8, truth.shape)
  mask = rng.random((30, 4)) < 0.7

  def brute(t, s):
    p, n = s[t], s[~t]
    return np.mean((p[:, None] > n[None, :]) + 0.5 * (p[:, None] == n[None, :]))

  out = recovery_auc(truth, scores, mask)
  assert out["overall"] == pytest.approx(brute(truth[mask], scores[mask]))
  for j in range(4):
    assert out["per_tag"][j] == pytest.approx(brute(truth[mask[:, j], j],
                                                    scores[mask[:, j], j]))
  assert out["num_entries"] == mask.sum()
  assert recovery_auc(truth, truth.astype(float))["overall"] == 1.0
  assert recovery_auc(truth, -truth.astype(float))["overall"] == 0.0


def test_recovery_auc_equals_scikit_learns_roc_auc_with_ties():
  """The rank statistic gives roc_auc_score's values (ties included) to float rounding."""
  from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(4)
  truth = rng.random((200, 6)) < 0.2
  scores = np.round(truth + rng.normal(0, 1.0, truth.shape), 1)  # many ties
  mask = rng.random((200, 6)) < 0.8
  out = recovery_auc(truth, scores, mask)
  assert abs(out["overall"] - roc_auc_score(truth[mask], scores[mask])) < 1e-12
  for j in range(6):
    m = mask[:, j]
    assert abs(out["per_tag"][j] - roc_auc_score(truth[m, j], scores[m, j])) < 1e-12


def test_recovery_auc_gives_nan_for_tag_with_one_class():
  truth = np.zeros((6, 2), bool)
  truth[:3, 0] = True
  out = recovery_auc(truth, np.random.default_rng(1).random((6, 2)))
  assert np.isfinite(out["per_tag"][0]) and np.isnan(out["per_tag"][1])
  assert out["num_tags_scored"] == 1
