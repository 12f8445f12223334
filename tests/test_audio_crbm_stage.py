"""The 'tags from audio and context' report stage (crbm_jax.paper.audio_tags): hiding
tags, the co-occurrence baseline, fold scoring and the scorecard rule."""
import math

import numpy as np
import pytest

from crbm_jax.paper import audio_tags as at
from crbm_jax.tagger import core
from crbm_jax.tagger.scoring import score_folds


def test_hiding_keeps_and_hides_at_least_one_positive_of_each_eligible_clip():
  rng = np.random.default_rng(0)
  raw = (rng.random((200, 12)) < 0.3).astype(int) * 2
  for share in (0.3, 0.7):
    observed, hidden, eligible = at.hide_tags(raw, np.zeros(200, int), share, 0)
    pos = raw >= 2
    assert np.array_equal(eligible, pos.sum(1) >= 2)
    assert np.all(hidden <= pos) and np.all((observed > 0) <= pos)
    assert not np.any(hidden & (observed > 0))
    k = pos.sum(1)[eligible]
    h = hidden.sum(1)[eligible]
    assert np.all((h >= 1) & (h <= k - 1))
    assert np.array_equal(hidden[eligible].sum(1) + observed[eligible].sum(1), k)
    assert not observed[~eligible].any() and not hidden[~eligible].any()
  # A larger share hides more on average.
  h30 = at.hide_tags(raw, np.zeros(200, int), 0.3, 0)[1].sum()
  h70 = at.hide_tags(raw, np.zeros(200, int), 0.7, 0)[1].sum()
  assert h70 > h30


def test_cooccurrence_ranks_the_partner_of_a_kept_tag_first():
  raw = np.zeros((50, 4), int)
  raw[:25, 0] = raw[:25, 1] = 2       # tags 0 and 1 always together
  raw[25:, 2] = 2
  raw[::3, 3] = 2
  observed = np.zeros((1, 4), np.float32)
  observed[0, 0] = 1
  s = at.cooccurrence_scores(raw, np.ones(50, bool), observed)
  assert np.argmax(np.where(observed[0] > 0, -np.inf, s[0])) == 1


def test_fold_scores_match_direct_computation():
  rng = np.random.default_rng(1)
  labels = (rng.random((60, 3)) < 0.4).astype(int) * 2
  oof = np.clip(labels / 2 * 0.6 + rng.random((60, 3)) * 0.5, 0, 1)
  fold_ids = np.arange(60) % 3
  thresholds = np.full((3, 3), 0.5)
  per_fold = score_folds(oof, thresholds, labels, fold_ids)
  for k in range(3):
    for j in range(3):
      test = fold_ids == k
      y = labels[test, j] >= 2
      pred = oof[test, j] >= 0.5
      want = 0.5 * (pred[y].mean() + (~pred[~y]).mean())
      assert math.isclose(per_fold[j, k, 0], want)


def _numbers(diff, se):
  method = {"raw": {m: [0.7, 0.01, 40] for m in at.METRICS}}
  return {"majorminer": {
      "methods": {"crbm": method, "nusvc": method, "logistic": method},
      "paired": {"raw": {b: {"roc_auc_tagwise": (diff, se, 40),
                             "balanced_accuracy": (0, 1, 40),
                             "pr_auc_tagwise": (0, 1, 40)} for b in ("nusvc", "logistic")}}}}


@pytest.mark.parametrize("diff,se,verdict", [(0.05, 0.01, "reproduced"),
                                             (0.015, 0.01, "not reproduced"),
                                             (-0.05, 0.01, "not reproduced")])
def test_scorecard_row_follows_the_two_standard_error_rule(diff, se, verdict):
  row = at.claim_row(_numbers(diff, se))
  assert row["verdict"] == verdict
  assert ("worse by > 2 s.e." in row["reason"]) == (diff < -2 * se)
  assert at.claim_row({})["verdict"] == "not testable"


def test_expected_calibration_error_is_zero_for_calibrated_and_large_for_inverted():
  rng = np.random.default_rng(2)
  p = rng.random(20000)
  y = rng.random(20000) < p
  assert at.expected_calibration_error(p, y) < 0.02
  assert at.expected_calibration_error(1 - p, y) > 0.3


def test_tagger_config_rejects_impossible_settings():
  with pytest.raises(ValueError, match="objective"):
    core.TaggerConfig(objective="magic").check()
  with pytest.raises(ValueError, match="exact prediction"):
    core.TaggerConfig(num_hidden=20).check()
  core.TaggerConfig(num_hidden=20, predict="mean_field", objective="cd").check()


def test_thinned_table_lists_every_method_and_paired_difference():
  r = {"keep": 0.5, "positives_kept": 0.4,
       "methods": {"crbm": {"roc_auc_tagwise": [0.7, 0.01, 40]},
                   "nusvc": {"roc_auc_tagwise": [0.6, 0.02, 40]}},
       "paired": {"nusvc": (0.1, 0.01, 40)}}
  text = at.thinned_markdown([r])
  row = [l for l in text.splitlines() if l.startswith("| 0.5 |")][0]
  assert row == "| 0.5 | 40% | 0.700 ± 0.010 | 0.600 ± 0.020 | +0.100 ± 0.010 |"
