"""The report's reading is derived from the numbers: each verdict flips with the data."""
import csv

from crbm_jax.paper import reading


def _write_csv(path, header, rows):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)
  return str(path)


def _table1(tmp_path, same_clip, same_track):
  return _write_csv(tmp_path / "t1.csv", ["same_user", "same_track", "same_clip", "mean",
                                          "stderr", "pairs"],
                    [[1, 1, 1, 6.0, 0.03, 100], [1, 1, 0, 2.4, 0.05, 10],
                     [1, 0, 0, 1.2, 0.01, 1000], [0, 1, 1, same_clip, 0.01, 50],
                     [0, 1, 0, same_track, 0.01, 50], [0, 0, 0, 0.52, 0.001, 10000]])


def test_table1_ordering_verdict_follows_the_numbers(tmp_path):
  good = reading._table1("x", {"table1_csv": _table1(tmp_path, 1.11, 1.00)})
  assert "the paper's ordering" in good[0] and "NOT" not in good[0]
  bad = reading._table1("x", {"table1_csv": _table1(tmp_path, 0.90, 1.00)})
  assert "NOT the paper's ordering" in bad[0]


def test_table2_verdicts(tmp_path):
  rows = [dict(pattern="+--", values=[-0.9] * 5, mean=-0.90, stderr=0.01),
          dict(pattern="---", values=[-1.0] * 5, mean=-1.00, stderr=0.01),
          dict(pattern="baseline", values=[-1.3] * 5, mean=-1.30, stderr=0.01),
          dict(pattern="++-", values=None, missing="user: no users")]
  out = reading._table2(dict(name="d", label="D", rows=rows))
  assert "better by more than 2 standard errors, as in the paper" in out[0]
  assert "conditioning helps" in out[1]
  assert "rows ++- cannot be computed on these data (user: no users)" in out[2]
  rows[0].update(mean=-0.995)
  rows[2].update(mean=-0.9)
  out = reading._table2(dict(name="d", label="D", rows=rows))
  assert "worse, unlike the paper" in out[0] and "no clear gain" in out[1]
  rows[2].update(mean=-1.005)
  out = reading._table2(dict(name="d", label="D", rows=rows))
  assert "not significantly different" in out[0]


def test_table3_verdict_uses_standard_errors():
  summary = {"table3": {"mean": [[60.0, 58.0], [63.0, 64.0]], "se": [[0.5, 0.5], [0.5, 0.5]]}}
  assert "better, as in the paper" in reading._table3("m", summary)[0]
  summary["table3"]["mean"][1][0] = 60.5
  assert "not significantly different" in reading._table3("m", summary)[0]
  summary["table3"]["mean"][1][0] = 55.0
  assert "worse, unlike the paper" in reading._table3("m", summary)[0]


def _sparsity_summary(diff_low, se=0.5):
  def d(mean):
    sig = "smoothed" if mean > 2 * se else "raw" if mean < -2 * se else "neither"
    return dict(mean=mean, se=se, num_tags=40, resolution=2 * se, significant=sig)
  return {"dataset": "majorminer", "summary": {
      "keep": [0.15, 1.0],
      "tests": {"thinned": {"diff": [d(diff_low), d(0.2)]},
                "unthinned": {"diff": [d(diff_low), d(0.2)]}}}}


def test_sparsity_sentences_follow_the_numbers():
  out = reading.reading({"table3": {"sparsity": _sparsity_summary(3.0)}})
  assert len(out) == 2
  assert "smoothing wins beyond two standard errors at p = 0.15" in out[0]
  assert "detectable at every p" in out[0] and "not detectable" not in out[0]
  out = reading.reading({"table3": {"sparsity": _sparsity_summary(-4.0, se=1.5)}})
  assert "smoothing never wins" in out[0] and "raw wins beyond two standard errors at p = 0.15" in out[0]
  assert "not detectable at every p" in out[0]


def test_smoothing_model_sentence_reports_selection_and_dependence():
  summary = {"table3": {"mean": [[60.0, 58.0], [61.0, 64.0]], "se": [[0.5] * 2] * 2},
             "training": {"method": "validation search", "groups": ["track"],
                          "dropped_groups": {"clip": "one observation"},
                          "selected": {"num_hidden": 50, "learning_rate": 0.6,
                                       "batch_size": 100},
                          "search_table": [{}] * 32},
             "smoothing": {"aux_dependence": {"method": "exact", "track": 0.0003,
                                              "all": 0.0003, "relative": 0.003}}}
  out = reading._table3("majorminer", summary)
  assert "validation search among 32 configurations" in out[1]
  assert "H 50" in out[1] and "not on clip" in out[1]
  assert "barely uses the clip's own entities" in out[1]
  summary["smoothing"]["aux_dependence"].update(track=0.05, all=0.05, relative=0.4)
  assert "barely" not in reading._table3("majorminer", summary)[1]
  assert "40.0% of the mean affinity" in reading._table3("majorminer", summary)[1]
