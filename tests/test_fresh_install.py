"""As a new user would: install into a brand-new virtual environment, run the README's main
command with the smoke configuration, and check the report, tables and figures."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _readme_main_command():
  text = (REPO / "README.md").read_text(encoding="utf-8")
  block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
  assert len(block) == 2, "README must open with exactly two commands"
  return block[0]


# Its own CI step (.ci/run), not the default suite: an install plus the smoke reproduction
# takes minutes on the 2-core machine.
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CRBM_SKIP_INSTALL_TEST") == "1",
                    reason="CRBM_SKIP_INSTALL_TEST=1")
def test_readme_main_command_in_a_fresh_virtualenv(tmp_path):
  command = _readme_main_command()
  assert command.startswith("pip install -e . && crbm-reproduce --workdir ")
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  bin_dir = venv / "bin"
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
  env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
  env["VIRTUAL_ENV"] = str(venv)
  # A non-editable install: proves the package data (embedded data, demo audio) ships.
  install = subprocess.run([str(bin_dir / "pip"), "install", "--quiet", str(REPO)], env=env,
                           capture_output=True, text=True)
  assert install.returncode == 0, install.stderr[-3000:]
  workdir = tmp_path / "results"
  run = subprocess.run([str(bin_dir / "crbm-reproduce"), "--workdir", str(workdir),
                        "--config", "smoke"], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-5000:]
  report = (workdir / "REPORT.md").read_text(encoding="utf-8")
  for heading in ("Table 1", "Figure 1", "Table 2", "Table 3", "Figure 2", "Smoothers compared",
                  "Compile vs compute"):
    assert heading in report, heading
  pngs = [workdir / m for m in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)]
  assert len(pngs) >= 2
  for png in pngs:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
  html = (workdir / "REPORT.html").read_text(encoding="utf-8")
  assert "data:image/png;base64," in html and "<table>" in html
