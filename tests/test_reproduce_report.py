"""The reproduction report gives compile time and compute time per stage (issue 25 item 3)."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

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
  assert saved["tiny"]["compiles"] == split["compiles"]
  assert os.path.exists(tmp_path / "REPORT.html")
