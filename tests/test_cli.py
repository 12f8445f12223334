"""Console scripts on a small tag table, run in-process through each tool's
``main(argv)`` (crbm_jax/cli/<tool>.py); the import-weight and Ctrl-C-order checks run in
a subprocess (a fresh interpreter)."""
import contextlib
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import clitools
from crbm_jax import cli
from crbm_jax.cli import runner
from crbm_jax.data.tagtable import TagTable, load_tag_table, write_tag_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIT_FLAGS = ("tags", "workdir", "aux", "hidden", "num_epochs", "learning_rate", "momentum",
             "l1_aux", "aux_lr_scale", "weight_decay", "batch_size", "cd_k", "min_users",
             "top_tags", "seed", "canonicalize", "search", "search_configs",
             "search_seconds", "search_num_hidden", "search_learning_rate", "search_l1_aux",
             "search_aux_lr_scale", "search_weight_decay", "patience", "tol", "eval_every",
             "allow_divergence", "format")
SMOOTH_FLAGS = ("workdir", "tags", "out", "samples", "method", "factor_out", "burn_in",
                "thin", "batch", "seed", "train", "aux_effect", "format")


_run = clitools.run_tool


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
              "--hidden=4", "--num_epochs=3", "--batch_size=16", "--nosearch")
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
  assert fit_help.returncode == 0 and smooth_help.returncode == 0
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


@pytest.mark.extended
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


# -- the front doors: flags, import weight, Ctrl-C order, the fit library step -----------

def test_bad_flags_and_stray_arguments_are_one_line_errors(tmp_path):
  line = _error_line(_run("fit", "--tags=t.tsv", f"--workdir={tmp_path}", "--bogus=1"))
  assert line.startswith("crbm-fit: error:") and "bogus" in line
  line = _error_line(_run("smooth", "stray", "--tags=t.tsv", "--out=o.tsv",
                          f"--workdir={tmp_path}"))
  assert line.startswith("crbm-smooth: error: unexpected arguments ['stray']")
  line = _error_line(_run("cooccurrence", f"--workdir={tmp_path}"))
  assert "--tags" in line  # a required flag missing
  assert os.listdir(tmp_path) == []
  from crbm_jax.cli.__main__ import dispatch  # pylint: disable=import-outside-toplevel
  with contextlib.redirect_stderr(io.StringIO()) as err:
    assert dispatch(["crbm_jax.cli", "nosuchtool"]) == 2
  assert "usage: python -m crbm_jax.cli" in err.getvalue()


def test_renamed_and_search_only_flags_are_refused_in_one_line_never_ignored(tmp_path):
  tags = str(tmp_path / "tags.tsv")
  _write_table(tags)
  base = (f"--tags={tags}", f"--workdir={tmp_path / 'run'}")
  line = _error_line(_run("fit", *base, "--epochs=3"))
  assert "--epochs is now --num_epochs" in line
  line = _error_line(_run("fit", *base, "--nosearch", "--search_learning_rate=0.1,0.2"))
  assert "--search_learning_rate given with --nosearch" in line and "--learning_rate" in line
  line = _error_line(_run("fit", *base, "--nosearch", "--search_configs=4"))
  assert "--search_configs given with --nosearch" in line
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["hidden", "learning_rate", "l1_aux", "aux_lr_scale",
                                  "weight_decay"])
def test_a_searched_flag_given_with_search_is_searched_around_its_value(flag):
  from crbm_jax.cli.fit import SEARCHED_FLAGS  # pylint: disable=import-outside-toplevel
  from crbm_jax.fitting import fit  # pylint: disable=import-outside-toplevel
  name = SEARCHED_FLAGS[flag]
  given = dict(num_hidden=20, learning_rate=0.2, l1_aux=3e-4, aux_lr_scale=20.0,
               weight_decay=5e-5)
  space, _, _, _ = fit.search_plan(True, None, 8, **given, batch_size=100, momentum=0.5,
                                   around_given=[name])
  values = getattr(space, name)
  assert given[name] in values and len(values) == 3
  assert values == fit.around(name, given[name])
  others = [n for n in fit.SEARCH_DEFAULTS if n != name]
  assert all(tuple(getattr(space, n)) == tuple(fit.SEARCH_DEFAULTS[n]) for n in others)
  with pytest.raises(fit.InputError, match=f"--search_{name} both given"):
    fit.search_plan(True, {name: (1,)}, 8, **given, batch_size=100, momentum=0.5,
                    around_given=[name])


def test_every_tool_defines_only_its_own_flags_and_tools_run_one_after_another(tmp_path):
  names = {tool: set(runner.tool_flags(__import__(module, fromlist=["x"])))
           for tool, module in cli.TOOLS.items() if tool != "autotag"}
  assert {"tags", "workdir", "search_configs"} <= names["fit"] and "out" not in names["fit"]
  assert {"out", "from"} <= names["convert"] and "workdir" not in names["convert"]
  # A required flag of one tool never leaks into the next run in the same process.
  tags = tmp_path / "t.tsv"
  tags.write_text("clip\ttag\nc1\trock\nc2\tjazz\n")
  assert _run("convert", str(tags), f"--out={tmp_path / 'o.csv'}").returncode == 0
  assert load_tag_table(str(tmp_path / "o.csv")).num_rows == 2


def test_smooth_method_choices_are_the_smoothers_methods():
  from crbm_jax.cli import smooth  # pylint: disable=import-outside-toplevel
  from crbm_jax.model import marginals  # pylint: disable=import-outside-toplevel
  assert runner.tool_flags(smooth)["method"].parser.enum_values == list(marginals.METHODS)


def test_names_of_the_former_cli_module_resolve_to_their_new_homes():
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  from crbm_jax.cli import convert, cooccurrence  # pylint: disable=import-outside-toplevel
  assert cli.run_fit is fitting.fit_tag_table and cli.run_smooth is fitting.smooth_tag_table
  assert cli.prepare_fit_data is fitting.prepare_fit_data
  assert cli.SEARCH_DEFAULTS is fitting.SEARCH_DEFAULTS
  assert cli.run_convert is convert.run_convert
  assert cli.run_cooccurrence is cooccurrence.run_cooccurrence
  with pytest.raises(AttributeError):
    cli.no_such_name  # pylint: disable=pointless-statement


_FRESH = """
import importlib, sys
from crbm_jax.cli import TOOLS
from crbm_jax.util import interrupt

HEAVY = ("jax", "numpy", "absl", "sklearn", "scipy", "matplotlib")
def heavy():
  return sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))

class Installed(Exception):
  pass

def spy(prog, kept):  # stands in for the Ctrl-C handler: what was imported by then?
  seen[prog] = heavy()
  raise Installed

seen = {}
interrupt.exit_on_interrupt = spy
modules = {tool: importlib.import_module(name) for tool, name in TOOLS.items()}
print("after import", heavy())
for tool, module in modules.items():
  sys.argv = [f"crbm-{tool}"] + (["train"] if tool == "autotag" else []) + ["--help"]
  try:
    module.main()
  except Installed:
    pass
print("at the handler", seen)
"""


def test_tools_import_nothing_heavy_before_the_ctrl_c_handler():
  out = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True,
                       cwd=ROOT, timeout=120, check=True).stdout.splitlines()
  assert out[0] == "after import []", out
  seen = eval(out[1][len("at the handler "):])  # pylint: disable=eval-used
  assert sorted(seen) == sorted(["crbm-reproduce", "crbm-fit", "crbm-smooth",
                                 "crbm-cooccurrence", "crbm-convert", "crbm-features",
                                 "crbm-autotag train"])
  assert all(v == [] for v in seen.values()), seen


_NO_JAX = """
import contextlib, io, sys
from crbm_jax.cli import autotag, convert, features
tags, out = sys.argv[1], sys.argv[2]
with contextlib.redirect_stdout(io.StringIO()):
  assert convert.main(["crbm-convert", tags, "--out=" + out]) == 0
  assert features.main(["crbm-features", "--help"]) == 0
  assert autotag.main(["crbm-autotag", "predict", "--help"]) == 0
print(sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "optax")))
"""


def test_convert_features_and_autotag_help_run_without_jax(tmp_path):
  tags = tmp_path / "t.tsv"
  tags.write_text("clip\tuser\ttag\nc1\tu1\tRock\nc2\tu2\tjazz\n")
  proc = subprocess.run([sys.executable, "-c", _NO_JAX, str(tags), str(tmp_path / "o.csv")],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]", proc.stdout
  assert load_tag_table(str(tmp_path / "o.csv")).num_rows == 2


def make_shifted_evaluate(config):
  """The default criterion plus one: the same ranking, so the same selection and test
  numbers, with every validation figure moved by exactly +1."""
  from crbm_jax.learn.block import make_block_evaluate  # pylint: disable=import-outside-toplevel
  evaluate = make_block_evaluate(config)
  return lambda params, val: evaluate(params, val) + 1.0


@pytest.mark.extended
def test_the_fit_step_takes_the_selection_criterion(fitted, tmp_path):
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  tags, workdir, _ = fitted  # crbm-fit --aux=user,track,clip --hidden=4 --num_epochs=3 ...
  with open(os.path.join(workdir, "metrics.json")) as f:
    plain = json.load(f)
  shifted = fitting.fit_tag_table(
      tags, str(tmp_path / "b"), aux="user,track,clip", num_hidden=4, num_epochs=3,
      batch_size=16, search=False, show_progress=False, log=lambda _: None,
      make_evaluate=make_shifted_evaluate)
  assert shifted["val_balanced_pl"] == pytest.approx(plain["val_balanced_pl"] + 1.0,
                                                     abs=1e-5)
  assert shifted["best_epoch"] == plain["best_epoch"]
  assert shifted["test_balanced_pl"] == pytest.approx(plain["test_balanced_pl"], abs=1e-6)


@pytest.mark.parametrize("out_name, method", [("s.tsv", "sample"), ("s.csv", "sample"),
                                              ("s.tsv.gz", "mean_field")])
def test_smoothing_in_chunks_of_clips_writes_the_same_file(fitted, tmp_path, out_name,
                                                          method):
  from crbm_jax import fitting  # pylint: disable=import-outside-toplevel
  tags, workdir, _ = fitted
  files = {}
  for name, chunk_lines in (("whole", 10 ** 9), ("chunked", 1)):
    out = str(tmp_path / f"{name}-{out_name}")
    lines = []
    summary = fitting.smooth_tag_table(workdir, tags, out, num_samples=20, burn_in=5,
                                       method=method, batch=5, aux_effect=False,
                                       chunk_lines=chunk_lines, log=lines.append)
    assert summary["clips"] == 24  # chunks of 5 clips: the last one short (4 clips)
    with open(out, "rb") as f:
      files[name] = f.read()
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o644)
  assert files["whole"] == files["chunked"]
  assert sorted(os.listdir(tmp_path)) == sorted(f"{n}-{out_name}" for n in files)
