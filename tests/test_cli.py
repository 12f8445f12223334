"""Console scripts run as subprocesses (python -m crbm_jax.cli <tool>) on a small tag table."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from crbm_jax.data.tagtable import TagTable, load_tag_table, write_tag_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIT_FLAGS = ("tags", "workdir", "aux", "hidden", "epochs", "learning_rate", "momentum",
             "l1_aux", "weight_decay", "batch_size", "cd_k", "min_users", "top_tags",
             "seed", "canonicalize")
SMOOTH_FLAGS = ("workdir", "tags", "out", "samples", "method", "factor_out", "burn_in",
                "thin", "batch", "seed")


def _run(tool, *args):
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, "-m", "crbm_jax.cli", tool, *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


def _error_line(proc):
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode != 0
  assert len(lines) == 1, proc.stderr
  return lines[0]


def _write_table(path):
  """8 tracks x 3 clips x 3 users; tags drawn from a per-track topic (deterministic)."""
  rng = np.random.default_rng(0)
  tags = ["Rock", "rock!", "Jazz", "piano", "drums", "Female Vocals", "guitar", "80's"]
  rows = []
  for t in range(8):
    topic = rng.dirichlet(np.full(len(tags), 0.5))
    for c in range(3):
      for u in range(3):
        chosen = rng.choice(len(tags), size=3, replace=False, p=topic)
        for k in sorted(chosen):
          rows.append((f"t{t}c{c}", f"user{(t + c + u) % 5}", f"track{t}", tags[k]))
  clip, user, track, tag = (np.array(x) for x in zip(*rows))
  table = TagTable(clip=clip, tag=tag, count=np.ones(len(clip), np.int64), user=user,
                   track=track)
  write_tag_table(table, path)
  return table


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli")
  tags = str(root / "tags.tsv")
  _write_table(tags)
  workdir = str(root / "run")
  proc = _run("fit", f"--tags={tags}", f"--workdir={workdir}", "--aux=user,track,clip",
              "--hidden=4", "--epochs=3", "--batch_size=16")
  assert proc.returncode == 0, proc.stderr
  return tags, workdir, proc


def test_fit_writes_model_and_metrics(fitted):
  _, workdir, proc = fitted
  assert sorted(os.listdir(workdir)) == ["metrics.json", "model"]
  with open(os.path.join(workdir, "metrics.json")) as f:
    metrics = json.load(f)
  for key in ("test_balanced_pl", "baseline_test_balanced_pl", "val_balanced_pl",
              "baseline_val_balanced_pl", "num_train", "num_val", "num_test"):
    assert key in metrics
  assert metrics["test_balanced_pl"] < 0 and metrics["baseline_test_balanced_pl"] < 0
  total = metrics["num_train"] + metrics["num_val"] + metrics["num_test"]
  assert total == metrics["num_observations"] == 72
  assert "test" in proc.stdout
  from crbm_jax.util import model_io  # pylint: disable=import-outside-toplevel
  model = model_io.load_model(os.path.join(workdir, "model"))
  assert model.groups == ("user", "track", "clip") and model.num_hidden == 4
  assert "rock" in model.vocab.tolist()  # "Rock" and "rock!" canonicalised together


@pytest.mark.parametrize("out_name, method", [("smoothed.tsv", "sample"),
                                              ("smoothed.csv", "mean_field")])
def test_smooth_writes_a_readable_tag_table(fitted, tmp_path, out_name, method):
  tags, workdir, _ = fitted
  out = str(tmp_path / out_name)
  proc = _run("smooth", f"--workdir={workdir}", f"--tags={tags}", f"--out={out}",
              "--samples=50", "--burn_in=10", f"--method={method}")
  assert proc.returncode == 0, proc.stderr
  assert os.listdir(tmp_path) == [out_name]
  table = load_tag_table(out)
  clips = np.unique(load_tag_table(tags).clip)
  with open(out, newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t" if out.endswith(".tsv") else ","))
  assert list(rows[0]) == ["clip", "track", "tag", "affinity", "display"]
  affinity = np.array([float(r["affinity"]) for r in rows])
  assert np.all((affinity >= 0) & (affinity <= 1))
  num_tags = len(np.unique(table.tag))
  assert table.num_rows == len(clips) * num_tags
  np.testing.assert_array_equal(np.unique(table.clip), clips)
  assert all(r["track"] == "track" + r["clip"][1:].split("c")[0] for r in rows)


def test_smooth_leaves_out_and_reports_entities_the_model_has_not_seen(fitted, tmp_path):
  _, workdir, _ = fitted
  tags = tmp_path / "new.tsv"
  tags.write_text("clip\ttrack\ttag\nt0c0\ttrack0\trock\nnew1\ttrack0\trock\n"
                  "new2\tnewtrack\tjazz\n")
  out = tmp_path / "out.csv"
  proc = _run("smooth", f"--workdir={workdir}", f"--tags={tags}", f"--out={out}",
              "--method=mean_field")
  assert proc.returncode == 0, proc.stderr
  assert "2 of 3 clips have a clip the model has not seen" in proc.stdout
  assert "1 of 3 clips have a track the model has not seen" in proc.stdout
  table = load_tag_table(out)
  assert sorted(set(table.clip.tolist())) == ["new1", "new2", "t0c0"]


def test_smooth_rejects_a_model_from_another_format_version(fitted, tmp_path):
  tags, workdir, _ = fitted
  import shutil  # pylint: disable=import-outside-toplevel
  old = tmp_path / "old"
  shutil.copytree(workdir, old)
  meta_path = old / "model" / "model.json"
  meta = json.loads(meta_path.read_text())
  meta["format_version"] = 0
  meta_path.write_text(json.dumps(meta))
  out = tmp_path / "out.tsv"
  proc = _run("smooth", f"--workdir={old}", f"--tags={tags}", f"--out={out}")
  line = _error_line(proc)
  assert line.startswith("crbm-smooth: error:") and "format version 0" in line
  assert "crbm-fit" in line
  assert not out.exists()


def test_cooccurrence_writes_table1_with_the_exact_header(fitted, tmp_path):
  tags, _, _ = fitted
  workdir = tmp_path / "table1"
  proc = _run("cooccurrence", f"--tags={tags}", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr
  assert sorted(os.listdir(workdir)) == ["figure1.csv", "figure1.png", "table1.csv",
                                         "table1.md"]
  assert sorted(os.listdir(tmp_path)) == ["table1"]  # no temporary folder left behind
  with open(workdir / "table1.csv", newline="") as f:
    assert next(csv.reader(f)) == ["same_user", "same_track", "same_clip", "mean", "stderr",
                                   "pairs"]


def test_fit_missing_column_is_one_line_and_writes_nothing(tmp_path):
  tags = tmp_path / "bad.tsv"
  tags.write_text("clip\tuser\nc1\tu1\n")
  workdir = tmp_path / "run"
  line = _error_line(_run("fit", f"--tags={tags}", f"--workdir={workdir}"))
  assert line.startswith("crbm-fit: error:") and "missing required column" in line
  assert "bad.tsv:1" in line
  assert not workdir.exists()


@pytest.mark.parametrize("aux, reason", [("user,genre", "unknown auxiliary group 'genre'"),
                                         ("artist", "has no 'artist' column")])
def test_fit_bad_aux_group_is_one_line_and_writes_nothing(fitted, tmp_path, aux, reason):
  tags, _, _ = fitted
  workdir = tmp_path / "run"
  workdir.mkdir()
  line = _error_line(_run("fit", f"--tags={tags}", f"--workdir={workdir}", f"--aux={aux}"))
  assert reason in line
  assert os.listdir(workdir) == []


def test_help_explains_every_flag():
  fit_help = _run("fit", "--help")
  smooth_help = _run("smooth", "--help")
  # (absl's --help exits with status 1 by its own convention.)
  assert fit_help.stdout.startswith("crbm-fit:") and smooth_help.stdout.startswith(
      "crbm-smooth:")
  for name in FIT_FLAGS:
    assert f"--{name}:" in fit_help.stdout or f"--[no]{name}:" in fit_help.stdout, name
  for name in SMOOTH_FLAGS:
    assert f"--{name}:" in smooth_help.stdout, name
  assert "--out:" not in fit_help.stdout  # each tool defines only its own flags
