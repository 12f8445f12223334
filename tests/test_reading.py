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
