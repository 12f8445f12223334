"""The claims scorecard: each verdict is derived from the numbers and flips with them."""
import copy
import json

import pytest

from crbm_jax.paper import scorecard as sc


def _numbers():
  """A run where every claim holds on 'simulated' (users, truth) and some are untestable
  on 'majorminer' (no users, no truth)."""
  return {
      "table1": {
          "simulated": {(0, 1, 1): (1.2, 0.02), (0, 1, 0): (1.0, 0.02),
                        (0, 0, 0): (0.5, 0.01)},
          "majorminer": {(None, 1, 0): (1.5, 0.05), (None, 0, 0): (0.5, 0.01)}},
      "figure1": {"simulated": {"first": (0.8, 0.02), "last": (0.6, 0.03)}},
      "table2": {
          "simulated": {"+++": (-0.92, 0.01), "++-": (-0.91, 0.01), "+--": (-0.93, 0.01),
                        "-+-": (-1.00, 0.01), "--+": (-1.02, 0.01), "---": (-1.05, 0.01),
                        "baseline": (-1.30, 0.01)},
          "majorminer": {"-+-": (-0.90, 0.01), "---": (-1.00, 0.01),
                         "baseline": (-1.40, 0.01)}},
      "table2_missing": {"majorminer": {"+++": "user: the data have no user column"}},
      "table3": {
          "simulated": {"mean": [[57.0, 56.0], [62.0, 64.0]], "se": [[0.5, 0.5], [0.5, 0.5]]},
          "majorminer": {"mean": [[66.0, 60.0], [68.0, 63.0]], "se": [[0.5, 0.5], [0.5, 0.5]]}},
      "sparsity": {"majorminer": {"low": {"keep": 0.15, "diff": (5.0, 0.8)},
                                  "one": {"keep": 1.0, "diff": (1.0, 0.8)}}},
      "recovery": {"simulated": {"smoothed": 0.85, "raw": 0.5, "num_positive": 500,
                                 "num_negative": 5000}},
  }


def _verdicts(numbers):
  return {(row["claim"], c["dataset"]): c["verdict"] for row in sc.scorecard(numbers)
          for c in row["cells"]}


def test_every_claim_has_a_row_and_the_expected_verdicts():
  rows = sc.scorecard(_numbers())
  assert [r["claim"] for r in rows] == [c for c, _ in sc.CLAIMS]
  v = _verdicts(_numbers())
  for claim in ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "B"):
    assert v[claim, "simulated"] == sc.REPRODUCED, claim
  assert v["C1", "majorminer"] == sc.NOT_TESTABLE
  assert v["C2", "majorminer"] == sc.NOT_TESTABLE
  assert v["C5", "majorminer"] == sc.NOT_TESTABLE
  assert v["B", "majorminer"] == sc.NOT_TESTABLE
  assert v["C6", "majorminer"] == sc.REPRODUCED
  cells = {(r["claim"], c["dataset"]): c for r in rows for c in r["cells"]}
  assert "no user column" in cells["C5", "majorminer"]["reason"]
  assert "user part not testable" in cells["C4", "majorminer"]["reason"]
  assert "sparsity part not testable" in cells["C6", "simulated"]["reason"]


@pytest.mark.parametrize("claim,dataset,edit", [
    ("C1", "simulated", lambda n: n["table1"]["simulated"].update({(0, 1, 1): (1.01, 0.02)})),
    ("C1", "simulated", lambda n: n["table1"]["simulated"].update({(0, 0, 0): (1.0, 0.01)})),
    ("C2", "simulated", lambda n: n["figure1"]["simulated"].update(last=(0.75, 0.03))),
    ("C3", "simulated", lambda n: n["table2"]["simulated"].update({"---": (-1.29, 0.01)})),
    ("C4", "simulated", lambda n: n["table2"]["simulated"].update({"-+-": (-0.92, 0.01)})),
    ("C4", "majorminer", lambda n: n["table2"]["majorminer"].update({"-+-": (-0.99, 0.01)})),
    ("C5", "simulated", lambda n: n["table2"]["simulated"].update({"+++": (-0.85, 0.01)})),
    ("C6", "simulated", lambda n: n["table3"]["simulated"]["mean"][1].__setitem__(0, 57.5)),
    ("C6", "majorminer", lambda n: n["sparsity"]["majorminer"]["low"].update(diff=(2.0, 0.8))),
    ("C6", "majorminer", lambda n: n["table3"]["majorminer"]["mean"][1].__setitem__(0, 64.0)),
    ("C7", "majorminer", lambda n: n["table3"]["majorminer"]["mean"][1].__setitem__(1, 67.5)),
    ("B", "simulated", lambda n: n["recovery"]["simulated"].update(smoothed=0.51)),
])
def test_each_verdict_flips_with_the_data(claim, dataset, edit):
  before = _verdicts(_numbers())[claim, dataset]
  numbers = copy.deepcopy(_numbers())
  edit(numbers)
  after = _verdicts(numbers)[claim, dataset]
  if claim == "C7":   # fails on the base numbers (63 vs 66), holds after the edit
    assert (before, after) == (sc.NOT_REPRODUCED, sc.REPRODUCED)
  else:
    assert (before, after) == (sc.REPRODUCED, sc.NOT_REPRODUCED)


def test_c5_is_reproduced_when_the_clip_adds_nothing_and_refuted_when_it_helps():
  n = _numbers()
  assert _verdicts(n)["C5", "simulated"] == sc.REPRODUCED       # +++ a bit below ++-
  n["table2"]["simulated"]["+++"] = (-0.89, 0.01)                # +0.02 with s.e. 0.014
  assert _verdicts(n)["C5", "simulated"] == sc.REPRODUCED
  n["table2"]["simulated"]["+++"] = (-0.87, 0.01)
  assert _verdicts(n)["C5", "simulated"] == sc.NOT_REPRODUCED


def test_hanley_mcneil_standard_error():
  # Hanley & McNeil (1982), Table 1 style check: A = 0.5, n1 = n2 = 50 -> var =
  # (0.25 + 49 (1/3 - 1/4) + 49 (1/3 - 1/4)) / 2500.
  expected = ((0.25 + 2 * 49 * (1 / 3 - 0.25)) / 2500) ** 0.5
  assert sc.hanley_mcneil_se(0.5, 50, 50) == pytest.approx(expected)
  assert sc.hanley_mcneil_se(0.9, 0, 10) != sc.hanley_mcneil_se(0.9, 0, 10)  # NaN


def test_markdown_lists_every_claim_and_the_rules():
  md = sc.scorecard_markdown(sc.scorecard(_numbers()))
  for claim, text in sc.CLAIMS:
    assert f"{claim}: {text}" in md
  assert "Decision rules" in md and "**not testable**" in md


def test_collect_reads_stage_outputs(tmp_path):
  t1 = tmp_path / "table1.csv"
  t1.write_text("same_user,same_track,same_clip,mean,stderr,pairs\n"
                "0,1,1,1.2,0.02,10\n0,1,0,1.0,0.02,10\n0,0,0,0.5,0.01,10\n")
  fig = tmp_path / "figure1.csv"
  fig.write_text("measure,user_relation,pairs,above_baseline,error_bar\n"
                 "shared_tags,different,30,0.8,0.02\nshared_tags,different,5,0.1,0.5\n"
                 "shared_tags,different,25,0.6,0.03\n")
  rec = tmp_path / "recovery.json"
  rec.write_text(json.dumps({"report": {"missed_by_all": {
      "num_positive": 10, "num_negative": 90,
      "smoothed_sampled": {"overall": 0.8}, "raw_count": {"overall": 0.5}}}}))
  results = {
      "table1": {"sim": {"table1_csv": str(t1), "figure1_csv": str(fig)}},
      "table2": {"datasets": [{"name": "sim", "rows": [
          {"pattern": "---", "values": [1], "mean": -1.0, "stderr": 0.01},
          {"pattern": "+++", "values": None, "missing": "no users"}]}]},
      "table3": {"datasets": {"sim": {"table3": {"mean": [[1, 2], [3, 4]],
                                                  "se": [[0, 0], [0, 0]]},
                                      "paths": {"recovery_json": str(rec)}}},
                 "sparsity": {"dataset": "mm", "summary": {
                     "keep": [0.25, 1.0], "tests": {"thinned": {"diff": [
                         {"mean": 3.0, "se": 1.0}, {"mean": 1.0, "se": 0.5}]}}}}}}
  n = sc.collect(results)
  assert n["table1"]["sim"][(0, 1, 1)] == (1.2, 0.02)
  assert n["figure1"]["sim"] == {"first": (0.8, 0.02), "last": (0.6, 0.03)}
  assert n["table2"]["sim"] == {"---": (-1.0, 0.01)}
  assert n["table2_missing"]["sim"] == {"+++": "no users"}
  assert n["recovery"]["sim"]["num_positive"] == 10
  assert n["sparsity"]["mm"] == {"low": {"keep": 0.25, "diff": (3.0, 1.0)},
                                 "one": {"keep": 1.0, "diff": (1.0, 0.5)}}
