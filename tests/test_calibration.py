"""The simulated study against the paper's published data statistics.

tools/calibrate_simulation.py defines the targets (Table 1's six means, Section 2's
counts) and their tolerances; the test holds the mean over seeds 0-4 of every target
within its tolerance (the calibration claim in docs/design.md). Five studies take about
4 s, so the full check runs in the default suite.
"""
import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("snowballstemmer")

_PATH = os.path.join(os.path.dirname(__file__), "..", "tools", "calibrate_simulation.py")


@pytest.fixture(scope="module")
def calib():
  spec = importlib.util.spec_from_file_location("calibrate_simulation", _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_targets_are_the_papers_published_numbers(calib):
  from crbm_jax.paper.published import TABLE1
  assert {calib.TARGETS[f"table1 {k}"][0] for k in calib._KEYS.values()} == \
      {v[0] for v in TABLE1.values()}
  assert calib.TARGETS["HITs accepted"][0] == 2566
  assert calib.TARGETS["workers (accepted HITs)"][0] == 209
  # Table 2 and Table 3 results are never targets.
  assert not any("table2" in k.lower() or "table3" in k.lower() for k in calib.TARGETS)
  # objective: a target exactly at its published value adds 0, one at its tolerance 1.
  at = {k: v[0] for k, v in calib.TARGETS.items()}
  assert calib.objective(at) == 0.0
  k = "unique tags"
  at[k] = calib.TARGETS[k][0] * (1 + calib.TARGETS[k][1])
  assert calib.objective(at) == pytest.approx(1.0)


def test_mean_over_five_seeds_is_within_every_tolerance(calib):
  """The calibration claim: seeds 0-4 of the default config (about 4 s in all)."""
  from crbm_jax.data.simulate import SimulationConfig
  values = calib.over_seeds(SimulationConfig(), range(5))
  bad = {k: float(np.mean(values[k])) for k in calib.TARGETS
         if not calib.within(k, np.mean(values[k]))}
  assert not bad, bad
  # The task asked for 5-15 tags: every accepted HIT of every seed has 5 to 15.
  assert values["min tags per accepted HIT"].min() >= 5
  assert values["max tags per accepted HIT"].max() <= 15


def _table1_csv(path, means):
  rows = ["same_user,same_track,same_clip,mean,stderr,pairs"]
  for (u, t, c), m in means.items():
    rows.append(f"{u},{t},{c},{m},0.01,100")
  path.write_text("\n".join(rows) + "\n")
  return str(path)


def test_report_reading_names_the_calibration_and_its_distance(tmp_path):
  from crbm_jax.paper import reading
  from crbm_jax.paper.published import TABLE1
  means = {k: v[0] for k, v in TABLE1.items()}
  means[(0, 0, 0)] = 0.524 * 0.9  # 10% below the paper
  out = reading._table1("simulated", {"table1_csv": _table1_csv(tmp_path / "a.csv", means)})
  line = [s for s in out if "calibrated" in s]
  assert len(line) == 1 and "within 10%" in line[0] and "---: 0.47 vs 0.52" in line[0]
  means[(1, 0, 0)] = 1.2006 * 1.3
  out = reading._table1("simulated", {"table1_csv": _table1_csv(tmp_path / "b.csv", means)})
  assert "within 30%" in [s for s in out if "calibrated" in s][0]
  # Real data sets are not described as calibrated.
  out = reading._table1("x", {"table1_csv": _table1_csv(tmp_path / "c.csv", means)})
  assert not [s for s in out if "calibrated" in s]
