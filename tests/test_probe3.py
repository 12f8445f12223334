"""The probe of issue 27 (bad inputs and interruptions, round 3), kept as tests.

One test (or parametrised group) per item: the failures (crbm-convert never deletes what it
did not write, repeated JAMS inputs, MTG-Jamendo read without quoting, Ctrl-C in the first
second, a symlink loop under --audio, a too-short --clip_seconds, an edited autotagger
description, crbm-autotag train's run folders) and the weak cases. Most run in-process;
the Ctrl-C cases need real console-script processes: a representative few run by default,
the full matrix (every console script at 0.1, 0.5 and 1 s) is marked slow.
"""
import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import clitools
from crbm_jax.cli import convert
from crbm_jax.data import formats, jams_io
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable, load_tag_table, write_tag_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


_run_tool = clitools.run_tool


def _error_line(result) -> str:
  """The one error line of a failed tool run."""
  assert result.returncode == 1, (result.stdout, result.stderr)
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and "error:" in lines[0], result.stderr
  return lines[0]


_tree = clitools.tree


def _one_track(path):
  path.write_text("clip\ttag\tuser\ttrack\nc1\trock\tu1\tt1\nc2\tjazz\tu1\tt1\n"
                  "c2\trock\tu2\tt1\n")
  return str(path)


def _two_tracks(path):
  path.write_text("clip\ttag\tuser\ttrack\nc1\trock\tu1\tt1\nc2\tjazz\tu1\tt2\n")
  return str(path)


# -- failure 1: crbm-convert never deletes what it did not write --------------------------

def test_f1_convert_refuses_a_folder_holding_other_files_and_keeps_them(tmp_path):
  tags = _one_track(tmp_path / "one_track.tsv")
  precious = tmp_path / "precious"
  precious.mkdir()
  (precious / "thesis.txt").write_text("years of work")
  (precious / "notes.md").write_text("notes")
  before = _tree(precious)
  line = _error_line(_run_tool("convert", tags, f"--out={precious}"))
  assert "already holds" in line and "--force" in line
  assert _tree(precious) == before


def test_f1_convert_force_adds_only_its_jams_and_deletes_nothing(tmp_path):
  tags = _two_tracks(tmp_path / "two.tsv")
  out = tmp_path / "precious"
  out.mkdir()
  (out / "thesis.txt").write_text("years of work")
  (out / "t1.jams").write_text("old")  # replaced: a file of the name written
  (out / "sub").mkdir()
  (out / "sub" / "x.jams").write_text("kept")
  r = _run_tool("convert", tags, f"--out={out}", "--force")
  assert r.returncode == 0, r.stderr
  tree = _tree(out)
  assert tree["thesis.txt"] == b"years of work" and tree["sub/x.jams"] == b"kept"
  assert sorted(tree) == ["sub/x.jams", "t1.jams", "t2.jams", "thesis.txt"]
  assert jams_io.read_jams([str(out / "t1.jams"), str(out / "t2.jams")])[0].num_rows == 2


def test_f1_convert_into_a_new_or_empty_folder_still_works(tmp_path):
  tags = _two_tracks(tmp_path / "two.tsv")
  for out in (tmp_path / "new", tmp_path / "empty"):
    if out.name == "empty":
      out.mkdir()
    r = _run_tool("convert", tags, f"--out={out}{os.sep}")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["t1.jams", "t2.jams"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_f1_write_jams_refuses_a_non_empty_folder_without_force(tmp_path):
  table = load_tag_table(_two_tracks(tmp_path / "two.tsv"))
  out = tmp_path / "out"
  out.mkdir()
  (out / "keep.txt").write_text("x")
  with pytest.raises(DataError, match="already holds 1 entry"):
    jams_io.write_jams(table, out)
  assert sorted(os.listdir(out)) == ["keep.txt"]


def test_f1_output_that_is_an_input_is_refused_and_the_input_is_intact(tmp_path):
  src = tmp_path / "jams_with_extra"
  jams_io.write_jams(load_tag_table(_two_tracks(tmp_path / "two.tsv")), src)
  (src / "README.txt").write_text("read me")
  (src / "audio").mkdir()
  (src / "audio" / "a.wav").write_bytes(b"RIFF")
  before = _tree(src)
  for out in (f"{src}{os.sep}", str(src)):
    line = _error_line(_run_tool("convert", "--from=jams", str(src), f"--out={out}"))
    assert "is the input" in line
    line = _error_line(_run_tool("convert", "--from=jams", str(src), f"--out={out}",
                                 "--force"))
    assert "is the input" in line
  line = _error_line(_run_tool("convert", "--from=jams", str(src),
                               f"--out={src / 'sub'}{os.sep}"))
  assert "lies inside the input" in line
  one = src / "t1.jams"
  line = _error_line(_run_tool("convert", "--from=jams", str(one), f"--out={one}"))
  assert "is the input" in line
  table = _two_tracks(tmp_path / "again.tsv")
  line = _error_line(_run_tool("convert", table, f"--out={table}"))
  assert "is the input" in line
  line = _error_line(_run_tool("convert", "--from=jams", str(one), "--force",
                               f"--out={tmp_path}"))
  assert "holds the input" in line
  assert _tree(src) == before


# -- failure 2: the same JAMS file or folder twice -----------------------------------------

@pytest.mark.parametrize("twice", ["file", "folder", "file_in_folder", "link"])
def test_f2_repeated_jams_inputs_are_refused(tmp_path, twice):
  folder = tmp_path / "jams"
  jams_io.write_jams(load_tag_table(_two_tracks(tmp_path / "two.tsv")), folder)
  one = str(folder / "t1.jams")
  if twice == "link":
    os.symlink(one, tmp_path / "link.jams")
  inputs = {"file": [one, one], "folder": [str(folder), str(folder)],
            "file_in_folder": [str(folder), one],
            "link": [one, str(tmp_path / "link.jams")]}[twice]
  line = _error_line(_run_tool("convert", "--from=jams", *inputs,
                               f"--out={tmp_path / 't.tsv'}"))
  assert "given twice" in line
  assert not os.path.exists(tmp_path / "t.tsv")
  with pytest.raises(DataError, match="given twice"):  # the library too
    jams_io.read_jams(inputs)


# -- failure 3: MTG-Jamendo without quoting; tab/newline blamed on the input -------------

JAMENDO_HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"


def test_f3_jamendo_stray_quote_does_not_swallow_rows(tmp_path):
  path = tmp_path / "autotagging.tsv"
  quote = '"'
  rows = [f"track_{i}\tartist_1\talbum_1\t1/{i}.mp3\t100.0\t"
          f"{quote if i in (3, 17) else ''}genre---rock\tmood/theme---happy\n"
          for i in range(30)]
  path.write_text(JAMENDO_HEADER + "".join(rows))
  table, info = formats.read_any(str(path), "mtg-jamendo")
  assert info.num_rows == 60 and len(set(table.clip.tolist())) == 30
  assert max(len(t) for t in table.tag.tolist()) < 40
  assert '"genre---rock' in table.tag.tolist()  # read as written, not as CSV quoting
  r = _run_tool("convert", "--from=mtg-jamendo", str(path), f"--out={tmp_path / 'j.csv'}")
  assert r.returncode == 0 and "read 60 rows" in r.stdout, r.stderr


def test_f3_jamendo_line_break_in_a_field_names_the_input_and_line(tmp_path):
  path = tmp_path / "autotagging.tsv"
  path.write_text(JAMENDO_HEADER + "t1\ta\tb\tp\t1.0\tgenre---rock\n"
                  "t2\ta\tb\tp\t1.0\tgenre---ro\rck\n", newline="")
  out = tmp_path / "j.tsv"
  line = _error_line(_run_tool("convert", "--from=mtg-jamendo", str(path), f"--out={out}"))
  assert f"{path}:3:" in line and "line break" in line and not out.exists()


def test_f3_jams_tag_with_a_tab_names_the_input_file(tmp_path):
  doc = {"annotations": [{"namespace": "tag_open", "data": [
      {"time": 0, "duration": 1, "value": "rock\tpop", "confidence": 1}]}]}
  path = tmp_path / "a.jams"
  path.write_text(json.dumps(doc))
  out = tmp_path / "t.tsv"
  line = _error_line(_run_tool("convert", str(path), f"--out={out}"))
  assert str(path) in line and "annotations[0].data[0].value" in line
  assert "tab or line break" in line and not out.exists()


def test_f3_tsv_output_of_a_value_with_a_line_break_blames_the_input(tmp_path):
  src = tmp_path / "in.csv"
  src.write_text('clip,tag\nc1,"rock\nroll"\nc2,jazz\n')
  out = tmp_path / "out.tsv"
  line = _error_line(_run_tool("convert", str(src), f"--out={out}"))
  assert f"{src}:" in line and "'rock\\nroll'" in line and "TSV" in line
  assert not out.exists()
  r = _run_tool("convert", str(src), f"--out={tmp_path / 'out.csv'}")  # CSV can hold it
  assert r.returncode == 0, r.stderr


# -- failure 4: Ctrl-C in the first second; JAX only where needed --------------------------

def test_f4_light_tools_import_no_jax(tmp_path):
  tags = _one_track(tmp_path / "one.tsv")
  code = f"""
import sys
from crbm_jax.cli import convert, cooccurrence, features, autotag
assert convert.main(["crbm-convert", {tags!r}, "--out={tmp_path / 'o.jams'}"]) == 0
assert cooccurrence.main(["crbm-cooccurrence", "--tags={tags}",
                          "--workdir={tmp_path / 'co'}"]) == 0
assert features.main(["crbm-features", "--audio={tmp_path / 'none'}",
                      "--out={tmp_path / 'f.npz'}"]) == 1
print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'optax')))
"""
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().endswith("[]"), proc.stdout[-2000:]


def _big_table(path, rows=400_000):
  """A tag table that takes the light tools well over a second to read and write (120k
  rows took crbm-convert 0.95 s in all on an idle 2-core machine: too close to 1 s)."""
  with open(path, "w", encoding="utf-8") as f:
    f.write("clip\tuser\ttrack\ttag\n")
    f.writelines(f"c{i // 8}\tu{i % 8}\ttrack{i // 40}\ttag{(i * 7919) % 50}_{i % 8}\n"
                 for i in range(rows))
  return str(path)


def _wavs(folder, n=6, seconds=30.0):
  import soundfile  # pylint: disable=import-outside-toplevel
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  for k in range(n):
    soundfile.write(os.path.join(folder, f"a{k}.wav"),
                    (0.1 * rng.normal(size=int(22050 * seconds))).astype(np.float32), 22050)
  return str(folder)


@pytest.fixture(scope="module")
def sigint_setup(tmp_path_factory):
  """Inputs for one long-enough command per console script: {tool: (args, output)}."""
  root = tmp_path_factory.mktemp("sigint")
  big = _big_table(root / "big.tsv")
  small = root / "small.tsv"
  rng = np.random.default_rng(0)
  small.write_text("clip\tuser\ttrack\ttag\n" + "".join(
      f"t{t}c{c}\tuser{u}\ttrack{t}\ttag{k}\n" for t in range(6) for c in range(3)
      for u in range(3) for k in sorted(rng.choice(6, 3, replace=False))))
  audio = None
  try:
    audio = _wavs(root / "audio")
  except ImportError:
    pass
  # crbm-smooth needs a published run: a model without training.
  from crbm_jax.model import CRBMParams  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel
  table = load_tag_table(str(small))
  vocab = sorted(set(table.tag.tolist()))
  tracks, clips = sorted(set(table.track.tolist())), sorted(set(table.clip.tolist()))
  params = CRBMParams(*(rng.normal(size=s).astype(np.float32) for s in (
      (len(vocab), 4), (len(tracks) + len(clips), len(vocab)), (len(vocab),), (4,))))
  run = str(root / "run")
  runs_lib.check_workdir(run)
  runs_lib.publish_run(run, params, vocab=vocab, display=vocab, groups=("track", "clip"),
                       entity_names=(tracks, clips), offsets=(0, len(tracks)),
                       config={"tag": "p"}, metrics={"tag": "p"})
  features = os.path.join(os.path.dirname(jams_io.__file__), "embedded",
                          "majorminer_features.npz")
  with np.load(features, allow_pickle=False) as data:
    feature_clips = data["clip_ids"].tolist()
  mm_tags = root / "mm_tags.tsv"
  mm_tags.write_text("clip\ttag\n" + "".join(
      f"{c}\ttag{(k * 31 + j) % 7}\n" for k, c in enumerate(feature_clips) for j in (0, 3)))

  def out(name):
    return str(root / "out" / name)

  os.makedirs(root / "out", exist_ok=True)
  cases = {
      "convert": ([big], "--out", "{out}.csv"),
      "cooccurrence": ([f"--tags={big}"], "--workdir=", "{out}"),
      "features": ([f"--audio={audio}", "--workers=1", "--cache_dir=none"], "--out=",
                   "{out}.npz") if audio else None,
      "fit": ([f"--tags={small}", "--num_epochs=100000", "--patience=100000", "--hidden=4",
               "--nosearch"], "--workdir=", "{out}"),
      "smooth": ([f"--workdir={run}", f"--tags={small}"], "--out=", "{out}.tsv"),
      "reproduce": ([], "--workdir=", "{out}"),
      "autotag": (["train", f"--features={features}", f"--tags={mm_tags}"],
                  "--workdir=", "{out}"),
  }
  return types.SimpleNamespace(root=root, cases=cases, out=out)


def _script(tool):
  path = os.path.join(BIN, f"crbm-{tool}")
  if not os.path.exists(path):
    pytest.skip(f"console script crbm-{tool} is not installed beside {sys.executable}")
  return path


def _interrupt_at(setup, tool, delay):
  case = setup.cases[tool]
  if case is None:
    pytest.skip("needs soundfile")
  args, flag, out_pattern = case
  out = out_pattern.format(out=setup.out(f"{tool}-{delay}"))
  argv = [_script(tool), *args] + ([flag, out] if flag == "--out" else [flag + out])
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.Popen(argv, env=env, cwd=str(setup.root), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  time.sleep(delay)
  running = proc.poll() is None
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  return running, proc.returncode, err, out


def _before_any_package_code(code, err) -> bool:
  """A Ctrl-C that came while Python itself was still starting (site, the console
  script's first import), before any line of crbm_jax ran: Python's own
  KeyboardInterrupt, which no package can catch. Nothing can have been written."""
  return (code in (1, -signal.SIGINT, 128 + signal.SIGINT)
          and err.rstrip().endswith("KeyboardInterrupt")
          and os.path.join(ROOT, "crbm_jax") not in err)


def _check_interrupted(setup, tool, delay):
  running, code, err, out = _interrupt_at(setup, tool, delay)
  assert running, f"crbm-{tool} ended before {delay} s; the test needs a longer job"
  files = (list(_tree(out)) if os.path.isdir(out)
           else [out] if os.path.lexists(out) else [])
  assert files == [], f"{files} written after the Ctrl-C"  # (an empty folder may be)
  if delay < 0.5 and _before_any_package_code(code, err):
    return  # a loaded machine had not even reached the package (docs/robustness.md)
  lines = [x for x in err.splitlines() if x.strip()]
  assert code == 130, err[-3000:]
  # the last line says so (progress lines of the work done so far may precede it)
  assert lines[-1].startswith(f"crbm-{tool}") and ": interrupted; " in lines[-1], err[-3000:]
  for problem in ("Traceback", "Exception ignored", "KeyboardInterrupt", "Error"):
    assert problem not in err, err[-3000:]
  parent = os.path.dirname(out)
  leftovers = [n for n in os.listdir(parent) if n.startswith((".tmp", ".old"))]
  assert leftovers == [], leftovers  # a Ctrl-C removes its temporaries (util.interrupt)


@pytest.mark.parametrize("tool, delay", [("convert", 0.1), ("convert", 0.5),
                                         ("convert", 1.0), ("cooccurrence", 1.0)])
def test_f4_ctrl_c_in_the_first_second_ends_light_tools(sigint_setup, tool, delay):
  _check_interrupted(sigint_setup, tool, delay)


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["convert", "cooccurrence", "features", "fit", "smooth",
                                  "reproduce", "autotag"])
@pytest.mark.parametrize("delay", [0.1, 0.5, 1.0])
def test_f4_ctrl_c_matrix_every_console_script(sigint_setup, tool, delay):
  _check_interrupted(sigint_setup, tool, delay)


# -- failure 5: a symlink loop under --audio -----------------------------------------------

def _in_thread(fn, seconds=60):
  """fn() in a thread; fails (instead of hanging the suite) when it takes too long."""
  import threading  # pylint: disable=import-outside-toplevel
  box = {}
  thread = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
  thread.start()
  thread.join(seconds)
  assert not thread.is_alive(), f"still running after {seconds} s"
  return box["value"]


def test_f5_symlink_loop_under_audio_is_walked_once_and_said(tmp_path):
  from crbm_jax.autotag import featureset  # pylint: disable=import-outside-toplevel
  audio = tmp_path / "audio"
  (audio / "sub").mkdir(parents=True)
  for p in (audio / "a.wav", audio / "sub" / "b.wav", audio / ".hidden.wav"):
    p.write_bytes(b"RIFF")
  os.symlink(".", audio / "loop")
  os.symlink(os.path.join("..", "sub"), audio / "sub" / "again")
  os.symlink(str(tmp_path / "elsewhere"), audio / "dangling")
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "c.wav").write_bytes(b"RIFF")
  os.symlink(str(tmp_path / "other"), audio / "linked")  # a real folder, once: followed
  log = []
  paths, base = _in_thread(lambda: featureset.find_audio(str(audio), log.append))
  assert base == str(audio)
  assert sorted(os.path.relpath(p, audio) for p in paths) == [
      "a.wav", os.path.join("linked", "c.wav"), os.path.join("sub", "b.wav")]
  assert len(log) == 1 and "skipped 2 linked folder(s) already searched" in log[0], log


# -- failure 6: --clip_seconds too short for the feature settings -------------------------

@pytest.mark.parametrize("seconds", ["0.001", "0.1"])
def test_f6_too_short_clip_seconds_is_one_line_before_any_work(tmp_path, seconds):
  audio = tmp_path / "audio"
  audio.mkdir()
  (audio / "a.wav").write_bytes(b"RIFF")
  line = _error_line(_run_tool("features", f"--audio={audio}", f"--out={tmp_path / 'f.npz'}",
                               f"--clip_seconds={seconds}", "--cache_dir=none"))
  assert f"--clip_seconds {seconds} is too short" in line and "0.139 s" in line
  assert sorted(os.listdir(tmp_path)) == ["audio"]


# -- failures 7, 8: the autotagger's description is checksummed; train publishes runs -----

@pytest.fixture(scope="module")
def small_features(tmp_path_factory):
  """(FeatureSet of 240 MajorMiner clips, tag table path): linear training in ~1 s."""
  from crbm_jax.autotag import featureset  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("autotag")
  path = os.path.join(os.path.dirname(jams_io.__file__), "embedded",
                      "majorminer_features.npz")
  fs = featureset.load_features(path)
  keep = np.arange(240)
  import dataclasses  # pylint: disable=import-outside-toplevel
  fs = dataclasses.replace(fs, features=fs.features[keep], clip_ids=fs.clip_ids[keep],
                           items=fs.items[keep], paths=fs.paths[keep],
                           offsets=fs.offsets[keep], durations=fs.durations[keep])
  rng = np.random.default_rng(0)
  tags = root / "tags.tsv"
  names = ["Rock", "Jazz", "Piano", "Drums"]
  tags.write_text("clip\ttag\tuser\n" + "".join(
      f"{c}\t{names[j]}\tu{u}\n" for c in fs.items.tolist()
      for j in sorted(rng.choice(4, 2, replace=False)) for u in range(2)))
  return fs, str(tags)


def _train(small_features, workdir, **kw):
  from crbm_jax.autotag import training  # pylint: disable=import-outside-toplevel
  fs, tags = small_features
  kw = dict(dict(model="linear", num_folds=0, progress=False, log=lambda m: None), **kw)
  return training.train(fs, tags, str(workdir), **kw)


@pytest.mark.parametrize("edit", ["swap_tags_display", "feature_config", "settings"])
def test_f7_edited_autotagger_description_is_refused(small_features, tmp_path, edit):
  from crbm_jax.autotag import prediction, store  # pylint: disable=import-outside-toplevel
  _train(small_features, tmp_path / "w")
  folder = str(tmp_path / "w" / "autotagger")
  path = os.path.join(folder, store.JSON_NAME)
  meta = json.load(open(path, encoding="utf-8"))
  assert store.load(folder).tags == meta["tags"]  # loads before the edit
  if edit == "swap_tags_display":
    meta["tags"], meta["display"] = meta["display"], meta["tags"]
  elif edit == "feature_config":
    meta["feature_config"] = dict(meta["feature_config"] or {}, clip_seconds=5.0)
  else:
    meta["settings"]["model"] = "nusvc"
  with open(path, "w", encoding="utf-8") as f:
    json.dump(meta, f)
  with pytest.raises(store.StoreError) as e:
    prediction.load_autotagger(str(tmp_path / "w"))
  text = str(e.value)
  assert "\n" not in text and path in text and "checksum of the description" in text


def test_f7_autotagger_of_format_1_still_loads(small_features, tmp_path):
  from crbm_jax.autotag import store  # pylint: disable=import-outside-toplevel
  res = _train(small_features, tmp_path / "w")
  folder = str(tmp_path / "w" / "autotagger")
  path = os.path.join(folder, store.JSON_NAME)
  meta = json.load(open(path, encoding="utf-8"))
  assert meta["version"] == 2 and meta["meta_sha256"] == store.meta_digest(meta)
  del meta["meta_sha256"]
  meta["version"] = 1
  with open(path, "w", encoding="utf-8") as f:
    json.dump(meta, f)
  assert store.load(folder).tags == res.autotagger.tags


class _Killed(BaseException):
  """A kill -9 stand-in: nothing catches it."""


def test_f8_train_runs_are_published_whole_and_folds_0_shows_no_old_reports(
    small_features, tmp_path, monkeypatch):
  from crbm_jax.autotag import prediction, report  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "w"
  first = _train(small_features, workdir, num_folds=3)
  assert sorted(os.listdir(workdir)) == sorted(
      ["accuracy.png", "autotagger", "current", "cv.json", "cv_predictions.npz",
       "per_tag.csv", "per_tag.md", "runs"])
  before = _tree(workdir / "current")
  # A kill after autotagger/ is written and before the reports: the old run stays whole.
  def killed(*args, **kw):
    raise _Killed()
  with monkeypatch.context() as m:
    m.setattr(report, "write_reports", killed)
    with pytest.raises(_Killed):
      _train(small_features, workdir, num_folds=3, seed=1)
  assert os.readlink(workdir / "current") == os.path.join("runs", "0001")
  assert _tree(workdir / "current") == before
  assert prediction.load_autotagger(str(workdir)).kind == first.autotagger.kind
  # --folds 0 over a cross-validated run: the old CV reports are no longer shown.
  _train(small_features, workdir, num_folds=0)
  assert os.readlink(workdir / "current") == os.path.join("runs", "0002")
  assert sorted(os.listdir(workdir)) == ["autotagger", "current", "runs"]
  assert sorted(os.listdir(workdir / "runs")) == ["0001", "0002"]  # leftovers removed
  assert prediction.load_autotagger(str(workdir)).kind == "logistic"


def test_f8_a_workdir_of_the_single_folder_layout_is_adopted(small_features, tmp_path):
  workdir = tmp_path / "w"
  _train(small_features, workdir, num_folds=3)
  current = os.path.realpath(workdir / "current")
  for name in os.listdir(workdir):  # rebuild the layout of earlier versions
    if os.path.islink(workdir / name):
      os.remove(workdir / name)
  for name in os.listdir(current):
    os.replace(os.path.join(current, name), workdir / name)
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.rmtree(workdir / "runs")
  _train(small_features, workdir, num_folds=0)
  assert sorted(os.listdir(workdir)) == ["autotagger", "current", "runs"]
  legacy = workdir / "runs" / "legacy-1"
  assert sorted(os.listdir(legacy)) == sorted(
      ["accuracy.png", "autotagger", "cv.json", "cv_predictions.npz", "per_tag.csv",
       "per_tag.md"])


# -- weak cases ----------------------------------------------------------------------------

def test_weak_empty_file_says_it_is_empty(tmp_path):
  empty = tmp_path / "empty.tsv"
  empty.write_bytes(b"")
  line = _error_line(_run_tool("convert", str(empty), f"--out={tmp_path / 'o.tsv'}"))
  assert line.endswith(f"{empty}: the file is empty"), line
  blank = tmp_path / "blank.tsv"
  blank.write_text("\n  \n")
  with pytest.raises(DataError, match="holds only blank lines"):
    formats.read_any(str(blank))


def test_weak_reproduce_workdir_that_is_a_file(tmp_path):
  afile = tmp_path / "afile"
  afile.write_text("x")
  line = _error_line(_run_tool("reproduce", f"--workdir={afile}"))
  assert "is a file, not a folder" in line and "Errno" not in line


def test_weak_os_errors_are_one_line_without_errno():
  from crbm_jax.cli import runner  # pylint: disable=import-outside-toplevel
  e = FileExistsError(17, "File exists", "afile")
  assert runner.describe(e) == "afile: File exists"
  assert runner.describe(OSError("plain")) == "plain"


def test_weak_emoji_in_a_file_name_leaks_no_plot_warning(tmp_path):
  import warnings  # pylint: disable=import-outside-toplevel
  tags = _one_track(tmp_path / "tags_\U0001F3B8.tsv")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r = _run_tool("cooccurrence", f"--tags={tags}", f"--workdir={tmp_path / 'co'}")
  assert r.returncode == 0, r.stderr
  assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
  assert "Glyph" not in r.stderr and os.path.exists(tmp_path / "co" / "figure1.png")


def test_weak_text_file_named_db_is_not_an_sqlite_database(tmp_path):
  fake = tmp_path / "lastfm_tags.db"
  fake.write_text("hello\n")
  for args in ([str(fake)], ["--from=msd-lastfm", str(fake)]):
    line = _error_line(_run_tool("convert", *args, f"--out={tmp_path / 'o.tsv'}"))
    assert "not an SQLite database" in line and "JSON" not in line


def test_weak_unreadable_audio_says_why(tmp_path):
  from crbm_jax.autotag import audio  # pylint: disable=import-outside-toplevel
  folder = tmp_path / "x.wav"
  folder.mkdir()
  with pytest.raises(audio.AudioError, match="is a folder, not an audio file"):
    audio.load_audio(str(folder))
  if os.geteuid() != 0:  # root reads anything
    locked = tmp_path / "locked.wav"
    locked.write_bytes(b"RIFF")
    locked.chmod(0)
    with pytest.raises(audio.AudioError, match="cannot read the file: permission denied"):
      audio.load_audio(str(locked))


@pytest.fixture(scope="module")
def one_wav(tmp_path_factory):
  import soundfile  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("wav")
  rng = np.random.default_rng(0)
  soundfile.write(str(root / "a.wav"), (0.1 * rng.normal(size=3 * 22050)).astype(np.float32),
                  22050)
  return str(root / "a.wav")


def _features(one_wav, out, cache):
  from crbm_jax.cli import features  # pylint: disable=import-outside-toplevel
  log = []
  summary = features.run_features(one_wav, str(out), cache_dir=str(cache), workers=1,
                                  num_clips=1, clip_seconds=2.0, progress=False,
                                  log=log.append)
  return summary, log


@pytest.mark.parametrize("kind", ["file", "read_only", "entry_is_a_folder"])
def test_weak_unusable_feature_cache_is_said_once_and_the_run_goes_on(one_wav, tmp_path,
                                                                      kind, monkeypatch):
  from crbm_jax.autotag import features  # pylint: disable=import-outside-toplevel
  cache = tmp_path / "cache"
  if kind == "file":
    cache.write_text("x")
  elif kind == "read_only":
    cache.mkdir()
    real_mkstemp = features.tempfile.mkstemp
    def denied(*args, **kw):  # the cache folder refuses writes, also for root
      if os.path.abspath(kw.get("dir", "")) == str(cache):
        raise PermissionError(13, "Permission denied")
      return real_mkstemp(*args, **kw)
    monkeypatch.setattr(features.tempfile, "mkstemp", denied)
  else:
    _features(one_wav, tmp_path / "first.npz", cache)
    for name in os.listdir(cache):
      os.remove(cache / name)
      os.mkdir(cache / name)
  summary, log = _features(one_wav, tmp_path / "f.npz", cache)
  assert summary["clips"] == 1 and os.path.exists(tmp_path / "f.npz")
  said = [m for m in log if "cache" in m]
  expected = {"file": "cannot be used (it is a file, not a folder)",
              "read_only": "cannot be used (cannot write there: permission denied)",
              "entry_is_a_folder": "1 cache entries could not be written"}[kind]
  assert len(said) == 1 and expected in said[0], log
  assert "Errno" not in " ".join(log)


def _children(pid):
  """The process ids of ``pid``'s children (Linux /proc; empty where there is none)."""
  try:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
      return f.read().split()
  except OSError:
    return []


@pytest.mark.slow
def test_weak_ctrl_c_with_two_workers_is_one_line_and_leaves_no_worker(tmp_path):
  script = _script("features")
  audio = _wavs(tmp_path / "audio", n=48, seconds=30.0)  # 24 files: 2.75 s in all, idle
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.Popen([script, f"--audio={audio}", f"--out={tmp_path / 'f.npz'}",
                           "--workers=2", "--cache_dir=none", "--noprogress"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  deadline = time.monotonic() + 60
  while len(_children(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)  # until the workers run (a fixed sleep was too long on a fast machine)
  time.sleep(1.0)
  os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
  _, err = proc.communicate(timeout=60)  # a worker left running would hold the pipes
  lines = [x for x in err.splitlines() if x.strip()]
  assert proc.returncode != 0 or "clips x" not in err, "finished before the Ctrl-C: too short"
  assert proc.returncode == 130 and len(lines) == 1, err
  assert lines[0].startswith("crbm-features: interrupted; ")
  assert "leaked" not in err and "Traceback" not in err
  assert not os.path.exists(tmp_path / "f.npz")


def test_weak_autotag_says_which_clips_and_tags_it_leaves_out(small_features, tmp_path):
  fs, tags = small_features
  extra = tmp_path / "tags.tsv"
  text = open(tags, encoding="utf-8").read()
  extra.write_text(text + "".join(f"{c}\tEverywhere\tu0\n" for c in fs.items.tolist())
                   + "ghost1\tGhosttag\tu0\nghost2\tGhosttag\tu1\nghost2\tRock\tu1\n")
  log = []
  from crbm_jax.autotag import training  # pylint: disable=import-outside-toplevel
  res = training.train(fs, str(extra), str(tmp_path / "w"), model="linear", num_folds=0,
                       progress=False, log=log.append)
  kept = [d.lower() for d in res.autotagger.display]
  assert "everywhere" not in kept and "ghosttag" not in kept and "rock" in kept
  left = [m.lower() for m in log if "left out" in m]
  assert any("2 of 242 tagged clips have no features" in m and "'ghost1'" in m
             and "1 tag(s) only they have are left out too: 'ghosttag'" in m
             for m in left), log
  assert any("1 tag(s) on every clip with features are left out" in m
             and "'everywhere'" in m for m in left), log


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_weak_fit_search_seconds_must_be_finite(tmp_path, value):
  tags = _two_tracks(tmp_path / "t.tsv")
  line = _error_line(_run_tool("fit", f"--tags={tags}", f"--workdir={tmp_path / 'w'}",
                               f"--search_seconds={value}"))
  assert "--search_seconds a finite number >= 0" in line
  assert not os.path.exists(tmp_path / "w")


def test_weak_stale_cooccurrence_temp_folders_are_removed(tmp_path):
  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  host = runs_lib.tmp_prefix("cooccurrence").split("-")[2]
  stale = tmp_path / f".tmp-cooccurrence-{host}-{dead.pid}-abc123"
  live = tmp_path / f".tmp-cooccurrence-{host}-{os.getpid()}-def456"  # in use: kept
  for p in (stale, live):
    p.mkdir()
    (p / "table1.csv").write_text("partial")
  tags = _one_track(tmp_path / "tags.tsv")
  r = _run_tool("cooccurrence", f"--tags={tags}", f"--workdir={tmp_path / 'co'}")
  assert r.returncode == 0, r.stderr
  assert not stale.exists() and live.exists()
  assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".tmp")) == [live.name]


def test_weak_current_pointing_at_a_missing_run_names_the_existing_run(tmp_path):
  from crbm_jax.model import CRBMParams  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel
  tags = _one_track(tmp_path / "tags.tsv")
  table = load_tag_table(tags)
  vocab = sorted(set(table.tag.tolist()))
  tracks, clips = sorted(set(table.track.tolist())), sorted(set(table.clip.tolist()))
  rng = np.random.default_rng(0)
  params = CRBMParams(*(rng.normal(size=s).astype(np.float32) for s in (
      (len(vocab), 2), (len(tracks) + len(clips), len(vocab)), (len(vocab),), (2,))))
  workdir = tmp_path / "w"
  runs_lib.check_workdir(str(workdir))
  runs_lib.publish_run(str(workdir), params, vocab=vocab, display=vocab,
                       groups=("track", "clip"), entity_names=(tracks, clips),
                       offsets=(0, len(tracks)), config={}, metrics={})
  os.remove(workdir / "current")
  os.symlink(os.path.join("runs", "0002"), workdir / "current")
  line = _error_line(_run_tool("smooth", f"--workdir={workdir}", f"--tags={tags}",
                               f"--out={tmp_path / 's.tsv'}"))
  assert "points to" in line and "0002, which is missing" in line
  assert "runs/0001 exists" in line and "holds no model" not in line


# -- keep: what the probe found working stays so ------------------------------------------

class _FullDiskOs:
  """``os`` for crbm_jax.util.atomic on a full disk: every file it writes fails with
  ENOSPC after the temporary file was created."""

  def __init__(self, real):
    self._real = real

  def __getattr__(self, name):
    return getattr(self._real, name)

  def fdopen(self, fd, *args, **kw):
    import errno  # pylint: disable=import-outside-toplevel
    self._real.close(fd)
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("tool", ["convert", "features", "cooccurrence"])
def test_keep_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, tool,
                                                        one_wav):
  from crbm_jax.util import atomic  # pylint: disable=import-outside-toplevel
  (tmp_path / "in").mkdir()
  tags = _one_track(tmp_path / "in" / "t.tsv")
  out = tmp_path / "out"
  out.mkdir()
  args = {"convert": [tags, f"--out={out / 't.tsv'}"],
          "features": [f"--audio={one_wav}", f"--out={out / 'f.npz'}", "--cache_dir=none",
                       "--workers=1", "--num_clips=1", "--clip_seconds=2", "--noprogress"],
          "cooccurrence": [f"--tags={tags}", f"--workdir={out / 'co'}"]}[tool]
  monkeypatch.setattr(atomic, "os", _FullDiskOs(os))
  line = _error_line(_run_tool(tool, *args))
  assert "No space left on device" in line and "Errno" not in line
  assert _tree(out) == {}, _tree(out)
  assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def test_keep_zip_member_paths_never_leave_the_archive(tmp_path, monkeypatch):
  import zipfile  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(tmp_path)
  doc = {"artist": "a", "title": "t", "track_id": "TR1", "tags": [["rock", "100"]],
         "similars": [], "timestamp": ""}
  with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
    z.writestr("../../escaped/TR1.json", json.dumps(doc))
    z.writestr("/abs_escaped/TR2.json", json.dumps(dict(doc, track_id="TR2")))
  (tmp_path / "sub").mkdir()
  table, info = formats.read_any(str(tmp_path / "evil.zip"))
  assert info.format == "msd-lastfm" and table.num_rows == 2  # read in memory
  assert sorted(os.listdir(tmp_path)) == ["evil.zip", "sub"]
  assert not os.path.exists("/abs_escaped") and not os.path.exists(
      tmp_path.parent.parent / "escaped")


def test_keep_locked_sqlite_file_is_one_line(tmp_path):
  import sqlite3  # pylint: disable=import-outside-toplevel
  db = tmp_path / "lastfm_tags.db"
  con = sqlite3.connect(db)
  con.executescript("create table tids(tid text); create table tags(tag text); "
                    "create table tid_tag(tid int, tag int, val real); "
                    "insert into tids values ('TR1'); insert into tags values ('rock'); "
                    "insert into tid_tag values (1, 1, 100);")
  con.commit()
  con.execute("begin exclusive")
  try:
    line = _error_line(_run_tool("convert", str(db), f"--out={tmp_path / 't.tsv'}"))
  finally:
    con.rollback()
    con.close()
  assert str(db) in line and "locked" in line
  assert not os.path.exists(tmp_path / "t.tsv")
  r = _run_tool("convert", str(db), f"--out={tmp_path / 't.tsv'}")  # unlocked: fine
  assert r.returncode == 0, r.stderr


def test_keep_two_runs_published_into_one_workdir_at_once(tmp_path):
  import threading  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import model_io  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import runs as runs_lib  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / "w")
  runs_lib.check_workdir(workdir)
  vocab = ["a", "b", "c"]
  barrier = threading.Barrier(4)
  errors = []

  def publish(k):
    rng = np.random.default_rng(k)
    from crbm_jax.model import CRBMParams  # pylint: disable=import-outside-toplevel
    params = CRBMParams(*(rng.normal(size=s).astype(np.float32) for s in (
        (3, 2), (2, 3), (3,), (2,))))
    try:
      barrier.wait()
      runs_lib.publish_run(workdir, params, vocab=vocab, display=vocab, groups=("track",),
                           entity_names=(["t1", "t2"],), offsets=(0,),
                           config={"k": k}, metrics={"k": k})
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=publish, args=(k,)) for k in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(60)
  assert errors == []
  assert sorted(os.listdir(os.path.join(workdir, "runs"))) == ["0001", "0002", "0003",
                                                              "0004"]
  model = model_io.load_model(os.path.join(workdir, "current", "model"))
  with open(os.path.join(workdir, "current", "metrics.json"), encoding="utf-8") as f:
    assert json.load(f) == model.metrics  # model and metrics of one run


def test_f1_predict_jams_into_a_folder_holding_files_is_refused_without_force_advice(
    tmp_path):
  from crbm_jax.autotag import prediction  # pylint: disable=import-outside-toplevel
  pred = prediction.Predictions(
      clip_ids=np.array(["a#0"]), items=np.array(["a"]), paths=np.array(["a.wav"]),
      tags=["rock"], display=["Rock"], proba=np.array([[0.9]]),
      offsets=np.array([0.0]), durations=np.array([10.0]))
  jams = tmp_path / "jams"
  jams.mkdir()
  (jams / "notes.md").write_text("mine")
  from crbm_jax.autotag.errors import AutotagError  # pylint: disable=import-outside-toplevel
  with pytest.raises(AutotagError) as e:
    prediction.write_predictions(pred, str(tmp_path / "p.tsv"), jams_dir=str(jams),
                                 log=lambda m: None)
  assert "already holds files" in str(e.value) and "--force" not in str(e.value)
  assert sorted(os.listdir(jams)) == ["notes.md"] and not (tmp_path / "p.tsv").exists()
  table = load_tag_table(_two_tracks(tmp_path / "two.tsv"))  # the library's own hint
  with pytest.raises(DataError) as e:
    jams_io.write_jams(table, jams, force_hint=None)
  assert "already holds 1 entry" in str(e.value) and "force" not in str(e.value)


def test_weak_fit_says_why_the_search_ran_past_its_budget():
  from crbm_jax.fitting import fit  # pylint: disable=import-outside-toplevel
  log = []
  assert fit.over_budget_note(5.0, 11.4, 9.8, log.append)
  assert len(log) == 1
  assert "took 11.4 s of a --search_seconds 5 budget" in log[0]
  assert "the first round alone ended after 9.8 s" in log[0]
  assert not fit.over_budget_note(5.0, 5.2, 3.0, log.append)    # within 5% + 1 s
  assert not fit.over_budget_note(None, 100.0, 3.0, log.append)  # no budget
  assert not fit.over_budget_note(0.0, 100.0, 3.0, log.append)   # 0: no limit
  assert len(log) == 1


@pytest.mark.slow  # a real search (compiling): ~10 s idle
def test_weak_fit_logs_the_overrun_of_a_tiny_search_budget(tmp_path):
  rng = np.random.default_rng(0)
  rows = ["clip\ttag\tuser\ttrack"] + [
      f"c{c}\ttag{t}\tu{u}\tt{c % 6}" for c in range(40) for u in range(3)
      for t in range(5) if rng.random() < 0.4]
  tags = tmp_path / "t.tsv"
  tags.write_text("\n".join(rows) + "\n")
  res = _run_tool("fit", f"--tags={tags}", f"--workdir={tmp_path / 'w'}",
                  "--search_seconds=0.01", "--search_configs=2", "--num_epochs=4")
  assert res.returncode == 0, res.stderr
  assert "of a --search_seconds 0.01 budget" in res.stdout, res.stdout
