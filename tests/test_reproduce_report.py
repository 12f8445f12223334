"""The reproduction report gives compile time and compute time per stage (issue 25 item 3)."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crbm_jax.configs import reproduce as reproduce_config
from crbm_jax.paper import reproduce


def _stage(config, workdir):
  del config, workdir
  # A fresh closure each call: a program jit has not seen in this process.
  scale = np.float32(np.random.default_rng(0).random())
  out = jax.jit(lambda x: jnp.tanh(x @ x.T * scale).sum())(jnp.ones((64, 64)))
  return {"markdown": f"value {float(out):.3f}", "data": {}}


def test_report_splits_each_stage_into_compile_and_compute(tmp_path, monkeypatch):
  monkeypatch.setattr(reproduce, "STAGES", {"tiny": ("A tiny stage", _stage)})
  config = reproduce_config.get_config("smoke")
  config["tiny"] = {}
  out = reproduce.run_reproduction(config, str(tmp_path), stages=["tiny"],
                                   reading_fn=lambda results: [])
  split = out["compile"]["tiny"]
  assert split["compiles"] >= 1 and split["compile_seconds"] > 0
  assert abs(split["compile_seconds"] + split["compute_seconds"] - split["seconds"]) < 1e-6
  assert out["timings"]["tiny"] == split["seconds"]
  report = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
  line = next(l for l in report.splitlines() if l.startswith("- Compile vs compute:"))
  assert "tiny" in line and "s compile +" in line and "programs from the cache" in line
  saved = json.loads((tmp_path / "timings.json").read_text(encoding="utf-8"))
  assert saved["stages"]["tiny"]["compiles"] == split["compiles"]
  assert saved["variant"] == "smoke"
  assert os.path.exists(tmp_path / "REPORT.html")
  assert "previous run" not in report  # the first run in this workdir


def test_a_rerun_reports_its_time_against_the_previous_run(tmp_path, monkeypatch):
  monkeypatch.setattr(reproduce, "STAGES", {"tiny": ("A tiny stage", _stage)})
  config = reproduce_config.get_config("smoke")
  config["tiny"] = {}
  run = lambda: reproduce.run_reproduction(config, str(tmp_path), stages=["tiny"],
                                           reading_fn=lambda results: [])
  first = run()["compile"]["tiny"]
  second = run()["compile"]["tiny"]
  report = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
  line = next(l for l in report.splitlines()
              if l.startswith("- Against the previous run in this workdir"))
  assert f"tiny {first['seconds']:.0f} → {second['seconds']:.0f} s" in line
  ratio = first["seconds"] / second["seconds"]
  assert f"({ratio:.1f}x)" in line
  # A previous run of another variant is not compared.
  other = reproduce_config.get_config("default")
  other["tiny"] = {}
  reproduce.run_reproduction(other, str(tmp_path), stages=["tiny"],
                             reading_fn=lambda results: [])
  report = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
  assert "Against the previous run" not in report


def test_a_stage_claim_joins_the_scorecard(tmp_path, monkeypatch):
  row = {"claim": "A1 (2011 follow-up): the CRBM autotagger beats independent classifiers",
         "dataset": "majorminer", "paper": "better", "ours": "+0.03 ± 0.01",
         "verdict": "reproduced", "reason": "gain exceeds 2 s.e."}
  fake = lambda config, workdir: {"markdown": "body", "data": {"scorecard": row}}
  monkeypatch.setattr(reproduce, "STAGES", {"audio_tags": ("Audio", fake)})
  reproduce.run_reproduction(reproduce_config.get_config("smoke"), str(tmp_path),
                             stages=["audio_tags"], reading_fn=lambda results: [])
  report = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
  line = next(l for l in report.splitlines() if l.startswith("| A1: "))
  assert "the CRBM autotagger beats independent classifiers (2011 follow-up)" in line
  assert "**reproduced**" in line and "+0.03 ± 0.01" in line
  saved = json.loads((tmp_path / "scorecard.json").read_text(encoding="utf-8"))
  assert saved[-1]["claim"] == "A1" and saved[-1]["cells"][0]["dataset"] == "majorminer"


def _untimed(value):
  """A stage's JSON without what depends on the clock or the folder (seconds, paths)."""
  if isinstance(value, dict):
    return {k: _untimed(v) for k, v in value.items()
            if not any(w in k for w in ("seconds", "timings", "path"))}
  if isinstance(value, list):
    return [_untimed(v) for v in value]
  return value


def _stage_files(workdir, stages):
  """Every Markdown and CSV file the stages wrote, and their JSON untimed, by path."""
  out = {}
  for stage in stages:
    for root, _, files in os.walk(os.path.join(workdir, stage)):
      for name in files:
        if name.endswith((".md", ".csv", ".json")) and "results" not in root.split(os.sep):
          path = os.path.join(root, name)
          with open(path, encoding="utf-8") as f:
            text = f.read()
          out[os.path.relpath(path, workdir)] = (
              _untimed(json.loads(text)) if name.endswith(".json") else text)
  return out


@pytest.mark.extended
def test_stages_in_two_processes_give_the_same_report(tmp_path):
  """--processes 2 runs the stages at the same time in spawned workers; every table,
  the scorecard and the report's sections equal those of one process."""
  stages = ["table1", "table2"]
  config = reproduce_config.get_config("smoke")
  one = reproduce.run_reproduction(config, str(tmp_path / "one"), stages=stages,
                                   processes=1)
  two = reproduce.run_reproduction(config, str(tmp_path / "two"), stages=stages,
                                   processes=2)
  files_one, files_two = (_stage_files(str(tmp_path / d), stages) for d in ("one", "two"))
  assert files_one and sorted(files_one) == sorted(files_two)
  for path, text in files_one.items():
    assert files_two[path] == text, path
  assert one["results"].keys() == two["results"].keys()
  for name in ("scorecard.json",):
    assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
  body = lambda d: (tmp_path / d / "REPORT.md").read_text(encoding="utf-8").split(
      "## Claims scorecard", 1)[1]
  assert body("one") == body("two")  # all but the header's timings
  saved = json.loads((tmp_path / "two" / "timings.json").read_text(encoding="utf-8"))
  assert saved["processes"] == 2 and list(saved["stages"]) == stages
  header = (tmp_path / "two" / "REPORT.md").read_text(encoding="utf-8")
  assert "of stage time in 2 processes at once" in header
