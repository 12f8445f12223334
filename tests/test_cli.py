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
             "l1_aux", "aux_lr_scale", "weight_decay", "batch_size", "cd_k", "min_users",
             "top_tags", "seed", "canonicalize", "search", "search_configs",
             "search_seconds", "search_num_hidden", "search_learning_rate", "search_l1_aux",
             "search_aux_lr_scale", "search_weight_decay", "patience", "tol", "eval_every",
             "allow_divergence", "format")
SMOOTH_FLAGS = ("workdir", "tags", "out", "samples", "method", "factor_out", "burn_in",
                "thin", "batch", "seed", "train", "aux_effect", "format")


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
              "--hidden=4", "--epochs=3", "--batch_size=16", "--nosearch")
  assert proc.returncode == 0, proc.stderr
  return tags, workdir, proc


def test_fit_writes_model_and_metrics(fitted):
  _, workdir, proc = fitted
  assert sorted(os.listdir(workdir)) == ["current", "metrics.json", "model", "runs"]
  assert sorted(os.listdir(os.path.join(workdir, "current"))) == [
      "history.csv", "learning_curve.png", "metrics.json", "model", "search.csv"]
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
    assert f"--{name}:" in smooth_help.stdout or f"--[no]{name}:" in smooth_help.stdout, name
  assert "--out:" not in fit_help.stdout  # each tool defines only its own flags


def test_fit_searches_by_default_stops_by_itself_and_compares_honestly(tmp_path):
  tags = str(tmp_path / "tags.tsv")
  _write_table(tags)
  workdir = tmp_path / "run"
  proc = _run("fit", f"--tags={tags}", f"--workdir={workdir}", "--batch_size=16",
              "--search_configs=3", "--search_num_hidden=3,6", "--learning_rate=0.2")
  assert proc.returncode == 0, proc.stderr
  assert "--search chooses --learning_rate" in proc.stdout       # the given value is unused
  assert "searched" in proc.stdout and "training stopped after" in proc.stdout
  with open(workdir / "metrics.json") as f:
    metrics = json.load(f)
  assert metrics["search"] and metrics["stopped"] in ("converged", "max_epochs")
  with open(workdir / "current" / "search.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  # 3 conditioned configurations and 1 unconditional one (a third as many)
  assert sorted(r["conditioned"] for r in rows) == ["0", "1", "1", "1"]
  chosen = max((r for r in rows if r["conditioned"] == "1"),
               key=lambda r: float(r["best_val_pl"]))
  assert int(chosen["num_hidden"]) == metrics["selected"]["num_hidden"]
  assert float(chosen["best_val_pl"]) == pytest.approx(metrics["val_balanced_pl"], abs=1e-5)
  diff = metrics["test_differences"]["crbm_minus_baseline"]
  assert diff["difference"] == pytest.approx(
      metrics["test_balanced_pl"] - metrics["baseline_test_balanced_pl"], abs=1e-6)
  assert "paired s.e." in proc.stdout


def test_smooth_trains_when_asked_and_reports_the_auxiliary_effect(tmp_path):
  tags = str(tmp_path / "tags.tsv")
  _write_table(tags)
  workdir, out = tmp_path / "run", tmp_path / "smoothed.tsv"
  proc = _run("smooth", f"--workdir={workdir}", f"--tags={tags}", f"--out={out}")
  assert "holds no model" in _error_line(proc) and not out.exists()
  proc = _run("smooth", f"--workdir={workdir}", f"--tags={tags}", f"--out={out}", "--train",
              "--search_configs=2", "--method=mean_field")
  assert proc.returncode == 0, proc.stderr
  assert "training a model" in proc.stdout and (workdir / "current").exists()
  assert "the track rows move the affinities by" in proc.stdout
  assert load_tag_table(str(out)).num_rows > 0
