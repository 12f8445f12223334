"""The probe of issue 18, kept: bad inputs, divergence, interruption, outputs as a unit.

One parametrised test per case of the issue (items 1-18; items 19-20, the audio feature
cache, are tested with the cache), plus cheap checks of what the probe found working:
file:line errors for malformed tables, byte-identical results for the same seed, typed
AudioError for corrupt or silent audio, and Table 2's resume after an interruption.
Training runs in-process on a 72-observation table; a few cases (Ctrl-C, a closed
stdout) need a real process.
"""
import hashlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import clitools
import datagen
from crbm_jax import fitting
from crbm_jax.cli.cooccurrence import run_cooccurrence
from crbm_jax.data import canonical
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable, load_tag_table, write_tag_table
from crbm_jax.model import CRBMParams
from crbm_jax.util import atomic, model_io
from crbm_jax.util import runs as runs_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIT = dict(num_hidden=4, num_epochs=2, batch_size=16, search=False, show_progress=False)
FIT_FLAGS = ("--hidden=4", "--batch_size=16", "--nosearch")


def _table(path, seed=0):
  """8 tracks x 3 clips x 3 users, 3 tags per task from a per-track topic."""
  return datagen.topic_tag_table(
      path, ["rock", "jazz", "piano", "drums", "female vocals", "guitar", "80s"], seed=seed)


def _quiet(lines):
  return lines.append


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
  """(tags, workdir, metrics, log): a real crbm-fit run (slow tests only)."""
  root = tmp_path_factory.mktemp("probe")
  tags = _table(str(root / "tags.tsv"))
  workdir = str(root / "run")
  log = []
  metrics = fitting.fit_tag_table(tags, workdir, log=_quiet(log), **FIT)
  return tags, workdir, metrics, log


@pytest.fixture(scope="module")
def published(tmp_path_factory):
  """(tags, workdir, None, []): the tag table and a run published without training (a
  model conditioned on track and clip whose entities are the table's)."""
  root = tmp_path_factory.mktemp("published")
  tags = _table(str(root / "tags.tsv"))
  table = load_tag_table(tags)
  vocab = sorted(set(table.tag.tolist()))
  tracks, clips = sorted(set(table.track.tolist())), sorted(set(table.clip.tolist()))
  rng = np.random.default_rng(1)
  params = CRBMParams(*(rng.normal(size=s).astype(np.float32) for s in (
      (len(vocab), 4), (len(tracks) + len(clips), len(vocab)), (len(vocab),), (4,))))
  workdir = str(root / "run")
  runs_lib.check_workdir(workdir)
  runs_lib.publish_run(workdir, params, vocab=vocab, display=vocab,
                       groups=("track", "clip"), entity_names=(tracks, clips),
                       offsets=(0, len(tracks)), config={"tag": "p"},
                       metrics={"tag": "p"})
  return tags, workdir, None, []


def _one_line(e) -> str:
  text = str(e.value if hasattr(e, "value") else e)
  assert "\n" not in text and text.strip(), text
  return text


def _strict_json(path):
  def no(constant):
    raise AssertionError(f"{path}: {constant} is not JSON")
  with open(path, encoding="utf-8") as f:
    return json.load(f, parse_constant=no)


_tree = clitools.tree
_run_tool = clitools.run_tool


# -- what the probe found working -----------------------------------------------------

@pytest.mark.parametrize("text, line, reason", [
    ("clip\ttag\nc1\trock\nc2\n", 3, "expected 2 fields"),
    ("clip\ttag\tcount\nc1\trock\t1\nc1\tjazz\tx\n", 3, "not an integer"),
    ("clip\ttag\nc1\trock\nc1\t \n", 3, "blank tag"),
    ("clip\ttag\nc1\trock\nc1\trock\n", 3, "duplicate row"),
    ("clip\ttag\nc1\trock\nc2\tr\xff\n", 3, "invalid UTF-8"),
])
def test_working_malformed_table_gives_file_line_reason(tmp_path, text, line, reason):
  path = tmp_path / "t.tsv"
  path.write_bytes(text.encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
  with pytest.raises(DataError) as e:
    load_tag_table(path)
  assert _one_line(e).startswith(f"{path}:{line}:") and reason in str(e.value)


def test_working_same_seed_gives_byte_identical_smoothing(published, tmp_path):
  tags, workdir, _, _ = published
  outs = [str(tmp_path / n) for n in ("a.tsv", "b.tsv")]
  for out in outs:
    fitting.smooth_tag_table(workdir, tags, out, num_samples=20, burn_in=2, log=_quiet([]))
  with open(outs[0], "rb") as fa, open(outs[1], "rb") as fb:
    assert fa.read() == fb.read()


@pytest.mark.slow
def test_working_same_seed_gives_byte_identical_outputs(fitted, tmp_path):
  tags, workdir, metrics, _ = fitted
  again = str(tmp_path / "again")
  fitting.fit_tag_table(tags, again, log=_quiet([]), **FIT)
  first, second = (_tree(os.path.join(w, "current")) for w in (workdir, again))
  assert set(first) == set(second) and "model/params.npz" in first
  for name in first:  # the same bytes, but for the clock in the metrics: wall and compile
    if name.endswith(".json"):  # times, and how many programs the warm cache spared
      a, b = (json.loads(x[name]) for x in (first, second))
      for m in (a, b, a.get("metrics") or {}, b.get("metrics") or {}):
        for key in [k for k in m if k.endswith("seconds")
                    or k in ("compiled_programs", "cache_hits")]:
          m.pop(key)
        m.pop("meta_sha256", None)
      assert a == b, name
    else:
      assert first[name] == second[name], name
  out_a, out_b = (str(tmp_path / n) for n in ("a.tsv", "b.tsv"))
  for out in (out_a, out_b):
    fitting.smooth_tag_table(workdir, tags, out, num_samples=20, burn_in=2, log=_quiet([]))
  with open(out_a, "rb") as fa, open(out_b, "rb") as fb:
    assert fa.read() == fb.read()


def test_working_corrupt_or_silent_audio_is_a_typed_audio_error(tmp_path):
  soundfile = pytest.importorskip("soundfile")
  from crbm_jax.autotag import audio  # pylint: disable=import-outside-toplevel
  corrupt = tmp_path / "corrupt.ogg"
  corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
  silent = tmp_path / "silent.wav"
  soundfile.write(silent, np.zeros(22050 * 12, np.float32), 22050)
  for path in (corrupt, silent):
    with pytest.raises(audio.AudioError) as e:
      audio.load_audio(path)
    assert isinstance(e.value, ValueError) and str(path) in _one_line(e)


# -- 1, 2: flags in range; divergence; strict JSON ---------------------------------------

@pytest.mark.parametrize("flag, value", [
    ("learning_rate", math.nan), ("learning_rate", math.inf), ("learning_rate", -1.0),
    ("learning_rate", 0.0), ("momentum", math.nan), ("momentum", 1.0),
    ("momentum", -0.1), ("weight_decay", math.inf), ("weight_decay", -1e-4),
    ("l1_aux", -1.0), ("l1_aux", math.nan)])
def test_item01_training_flags_must_be_finite_and_in_range(tmp_path, flag, value):
  tags = _table(str(tmp_path / "tags.tsv"))
  workdir = tmp_path / "run"
  with pytest.raises(fitting.InputError) as e:
    fitting.fit_tag_table(tags, str(workdir), log=_quiet([]), **{flag: value, **FIT})
  assert f"--{flag}" in _one_line(e)
  assert not workdir.exists()  # refused before anything is written


def test_item01_check_hparams_covers_aux_lr_scale_and_names_estimator_arguments():
  fitting.inputs.check_hparams(learning_rate=0.1, momentum=0.0, weight_decay=0.0, l1_aux=0.0,
                    aux_lr_scale=30.0)
  with pytest.raises(ValueError, match=r"^aux_lr_scale is 0.0; it must be > 0$"):
    fitting.inputs.check_hparams(prefix="", aux_lr_scale=0.0)
  with pytest.raises(ValueError, match="finite"):
    fitting.inputs.check_hparams(learning_rate=float("nan"))


def _problems(stderr):
  """stderr lines other than progress and absl's info lines."""
  return [x for x in stderr.splitlines() if x.strip() and not x.startswith("I")
          and "models training" not in x]


@pytest.mark.extended
def test_item02_exploding_learning_rate_stops_with_one_line_and_saves_nothing(tmp_path):
  tags = _table(str(tmp_path / "tags.tsv"))
  workdir = tmp_path / "run"
  proc = _run_tool("fit", f"--tags={tags}", f"--workdir={workdir}", "--learning_rate=1e6",
                   "--num_epochs=20", *FIT_FLAGS)
  lines = _problems(proc.stderr)
  assert proc.returncode == 1 and len(lines) == 1, proc.stderr
  assert lines[0].startswith("crbm-fit: error: training diverged")
  assert "lower --learning_rate" in lines[0] and "nothing was saved" in lines[0]
  assert not workdir.exists()  # nothing saved, not even an empty folder


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_item02_json_writers_write_strict_json(tmp_path, value):
  path = str(tmp_path / "m.json")
  atomic.write_json_atomic(path, {"best": value, "history": [1.0, value],
                                  "array": np.array([value, 2.0])})
  assert _strict_json(path) == {"best": None, "history": [1.0, None], "array": [None, 2.0]}


@pytest.mark.slow
def test_item02_metrics_json_is_strict(fitted):
  _, workdir, _, _ = fitted
  metrics = _strict_json(os.path.join(workdir, "current", "metrics.json"))
  assert metrics == _strict_json(os.path.join(workdir, "metrics.json"))  # the fixed link
  model_json = _strict_json(os.path.join(workdir, "current", "model", "model.json"))
  assert model_json["metrics"] == metrics


def test_item02_non_finite_parameters_are_never_written(tmp_path):
  params = _params()
  params = params._replace(W=params.W.copy())
  params.W[0, 0] = np.inf
  with pytest.raises(model_io.DivergedModelError) as e:
    runs_lib.publish_run(str(tmp_path), params, config={}, metrics={}, **_META)
  assert "learning_rate" in _one_line(e)
  assert not os.path.lexists(tmp_path / "current")
  assert [n for n in os.listdir(tmp_path / "runs")] == []


# -- model files ------------------------------------------------------------------------

_META = dict(vocab=["rock", "jazz", "piano"], display=["Rock", "Jazz", "Piano"],
             groups=("track", "clip"), entity_names=(["t1", "t2"], ["c1", "c2", "c3"]),
             offsets=(0, 2))


def _params(seed=0, num_visible=3, num_hidden=2, num_aux=5):
  rng = np.random.default_rng(seed)
  return CRBMParams(rng.normal(size=(num_visible, num_hidden)).astype(np.float32),
                    rng.normal(size=(num_aux, num_visible)).astype(np.float32),
                    rng.normal(size=num_visible).astype(np.float32),
                    rng.normal(size=num_hidden).astype(np.float32))


def _model_dir(tmp_path, tag="a"):
  folder = tmp_path / f"model-{tag}"
  folder.mkdir()
  model_io.write_model_files(str(folder), _params(), config={"tag": tag},
                             metrics={"tag": tag}, **_META)
  return folder


def _npz_with(**arrays) -> bytes:
  """An .npz that may hold object arrays (written with pickling allowed)."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as zf:
    for name, value in arrays.items():
      array = io.BytesIO()
      np.lib.format.write_array(array, np.asarray(value), allow_pickle=True)
      zf.writestr(name + ".npy", array.getvalue())
  return buf.getvalue()


def _tamper(folder, params_bytes=None, **meta_changes):
  """Rewrites a model folder as someone elsewhere would: new content, both checksums
  recomputed, so only the load-time checks can find the problem."""
  meta_path = folder / model_io.META_FILE
  meta = json.loads(meta_path.read_text())
  if params_bytes is not None:
    (folder / model_io.PARAMS_FILE).write_bytes(params_bytes)
  meta.update(meta_changes)
  meta["params_sha256"] = hashlib.sha256(
      (folder / model_io.PARAMS_FILE).read_bytes()).hexdigest()
  meta["meta_sha256"] = model_io._meta_sha256(meta)  # pylint: disable=protected-access
  meta_path.write_text(json.dumps(meta))


def _arrays(**changes):
  base = dict(_params()._asdict())
  base.update(changes)
  return {k: v for k, v in base.items() if v is not None}


def _npz_prefix():
  return atomic.npz_bytes(**_arrays())


def _bad_crc():
  """The npz with the last byte of W's data changed (its CRC no longer matches)."""
  data = bytearray(_npz_prefix())
  info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("W.npy")
  start = info.header_offset + 30 + len(info.filename) + len(info.extra)
  data[start + info.file_size - 1] ^= 0x01
  return bytes(data)


@pytest.mark.parametrize("case, params_bytes, meta, reason", [
    # item 3: a NaN in W (any parameter)
    ("nan in W", lambda: atomic.npz_bytes(**_arrays(W=np.full((3, 2), np.nan, np.float32))),
     {}, "non-finite"),
    ("inf in c", lambda: atomic.npz_bytes(**_arrays(c=np.array([1, np.inf], np.float32))),
     {}, "non-finite"),
    # item 9: seven corrupt files
    ("truncated npz", lambda: _npz_prefix()[:300], {}, "cannot be read"),
    ("bad CRC", _bad_crc, {}, "cannot be read"),
    ("not a zip", lambda: b"\x93NUMPY garbage" * 10, {}, "not an .npz"),
    ("missing W_aux", lambda: atomic.npz_bytes(**_arrays(W_aux=None)), {}, "W_aux missing"),
    ("object array", lambda: _npz_with(**_arrays(b=np.array(["x", None, 1], object))), {},
     "Python objects"),
    ("wrong W shape", lambda: atomic.npz_bytes(**_arrays(W=np.zeros((4, 2), np.float32))),
     {}, "shape"),
    ("unknown group", None, {"groups": ["track", "planet"]}, "unknown auxiliary group"),
    # item 8: metadata that disagrees with the shapes
    ("one tag fewer", None, {"vocab": ["rock", "jazz"]}, "vocab lists 2 tags"),
    ("one tag more", None, {"vocab": ["rock", "jazz", "piano", "x"]}, "vocab lists 4"),
    ("display short", None, {"display": ["Rock"]}, "display lists 1"),
    ("entity fewer", None, {"entity_names": [["t1"], ["c1", "c2", "c3"]]}, "starts at"),
    ("entity more", None, {"entity_names": [["t1", "t2"], ["c1", "c2", "c3", "c4"]]},
     "W_aux has 5"),
    ("group missing", None, {"groups": ["track"]}, "one per group"),
    # item 16: offsets out of range, with the file named
    ("offsets out of range", None, {"offsets": [0, 1000095]}, "starts at W_aux row 1000095"),
])
def test_items03_08_09_16_damaged_model_is_one_line_naming_the_file(
    tmp_path, case, params_bytes, meta, reason):
  folder = _model_dir(tmp_path)
  _tamper(folder, None if params_bytes is None else params_bytes(), **meta)
  with pytest.raises(model_io.ModelFormatError) as e:
    model_io.load_model(folder)
  text = _one_line(e)
  assert reason in text, (case, text)
  assert str(folder) in text


def test_item08_checksum_covers_the_metadata(tmp_path):
  folder = _model_dir(tmp_path)
  meta_path = folder / model_io.META_FILE
  meta = json.loads(meta_path.read_text())
  meta["vocab"][0] = "metal"  # edited by hand, checksums left as they were
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(model_io.ModelFormatError, match="checksum of the description"):
    model_io.load_model(folder)


def test_item08_models_of_format_1_still_load(tmp_path):
  folder = _model_dir(tmp_path)
  meta_path = folder / model_io.META_FILE
  meta = json.loads(meta_path.read_text())
  meta["format_version"] = 1
  del meta["meta_sha256"]
  meta_path.write_text(json.dumps(meta))
  model = model_io.load_model(folder)
  assert model.format_version == 1 and model.vocab.tolist() == _META["vocab"]
  _tamper(folder, vocab=["rock"])  # format 1 gets every shape check too
  with pytest.raises(model_io.ModelFormatError, match="vocab lists 1"):
    model_io.load_model(folder)


def test_item03_crbm_smooth_refuses_a_nan_model_in_one_line(published, tmp_path):
  tags, workdir, _, _ = published
  copy = tmp_path / "w"
  model = copy / "model"
  model.mkdir(parents=True)
  for name in (model_io.PARAMS_FILE, model_io.META_FILE):
    with open(os.path.join(workdir, "current", "model", name), "rb") as f:
      (model / name).write_bytes(f.read())
  with np.load(model / model_io.PARAMS_FILE) as data:
    arrays = {k: data[k] for k in data.files}
  arrays["W"][0, 0] = np.nan
  _tamper(model, atomic.npz_bytes(**arrays))
  for method in ("mean_field", "sample"):
    with pytest.raises(model_io.ModelFormatError) as e:
      fitting.smooth_tag_table(str(copy), tags, str(tmp_path / "o.tsv"), method=method,
                     num_samples=5, burn_in=1, log=_quiet([]))
    assert "non-finite" in _one_line(e)
  assert not (tmp_path / "o.tsv").exists()


# -- 4: co-occurrence tables without pairs ------------------------------------------------

@pytest.mark.parametrize("rows", [
    ["c1,u1,rock"],
    ["c1,u1,rock", "c2,u2,jazz"],
    ["c1,u1,rock", "c2,u1,jazz", "c3,u2,piano", "c4,u3,drums"],  # every tag used once
])
def test_item04_cooccurrence_writes_empty_cells_and_says_why(tmp_path, rows):
  tags = tmp_path / "t.csv"
  tags.write_text("clip,user,tag\n" + "\n".join(rows) + "\n")
  log = []
  paths = run_cooccurrence(str(tags), str(tmp_path / "out"), log=_quiet(log))
  for kind in ("table1_csv", "figure1_csv", "table1_md"):
    with open(paths[kind], encoding="utf-8") as f:
      assert "nan" not in f.read().lower(), kind
  with open(paths["table1_csv"], encoding="utf-8") as f:
    table = list(__import__("csv").DictReader(f))
  empty = [r for r in table if r["pairs"] == "0"]
  assert empty and all(r["mean"] == "" and r["stderr"] == "" for r in empty)
  printed = "\n".join(log)
  assert printed.count("has no pairs:") == len(empty)


# -- 5, 6, 7: outputs as a unit -----------------------------------------------------------

class _Killed(BaseException):
  """Stands for a kill: no cleanup code runs after it (rmtree is disabled too)."""


def _publish(workdir, tag, **kw):
  return runs_lib.publish_run(str(workdir), _params(seed=hash(tag) % 100),
                              config={"tag": tag}, metrics={"tag": tag}, **_META, **kw)


def _consistent(workdir):
  """The current model and metrics come from the same run; returns its tag."""
  model = runs_lib.load_run_model(str(workdir))
  metrics = _strict_json(os.path.join(workdir, "metrics.json"))
  assert model.config["tag"] == model.metrics["tag"] == metrics["tag"]
  return metrics["tag"]


@pytest.mark.parametrize("kill_at", [
    "writing the model", "naming the run folder", "switching current",
    "adopting the old layout", "removing old runs"])
def test_items05_06_a_kill_at_any_point_leaves_one_whole_run(tmp_path, monkeypatch,
                                                             kill_at):
  workdir = tmp_path / "w"
  runs_lib.check_workdir(str(workdir))
  for k in range(runs_lib.KEEP_RUNS):
    _publish(workdir, f"old{k}")
  old = f"old{runs_lib.KEEP_RUNS - 1}"
  if kill_at == "adopting the old layout":  # a model folder of the earlier layout
    os.remove(workdir / "model")
    os.remove(workdir / "metrics.json")
    legacy = workdir / "model"
    legacy.mkdir()
    model_io.write_model_files(str(legacy), _params(), config={"tag": "legacy"},
                               metrics={"tag": "legacy"}, **_META)
    (workdir / "metrics.json").write_text('{"tag": "legacy"}')
  real_rename, real_replace = os.rename, os.replace

  def kill(*_a, **_k):
    raise _Killed()

  monkeypatch.setattr(runs_lib.shutil, "rmtree", lambda *a, **k: None)
  if kill_at == "writing the model":
    monkeypatch.setattr(runs_lib.model_io, "write_model_files", kill)
  elif kill_at == "naming the run folder":
    monkeypatch.setattr(runs_lib.os, "rename", lambda a, b: kill() if "/runs/0" in str(b)
                        else real_rename(a, b))
  elif kill_at == "switching current":
    monkeypatch.setattr(runs_lib.os, "replace", lambda a, b: kill()
                        if str(b).endswith("current") else real_replace(a, b))
  elif kill_at == "adopting the old layout":
    monkeypatch.setattr(runs_lib.os, "replace", lambda a, b: kill()
                        if "legacy-" in str(b) and str(b).endswith("model")
                        else real_replace(a, b))
  else:
    monkeypatch.setattr(runs_lib, "_prune", kill)
  with pytest.raises(_Killed):
    _publish(workdir, "new")
  monkeypatch.undo()
  tag = _consistent(workdir) if kill_at != "adopting the old layout" else None
  if kill_at in ("writing the model", "naming the run folder", "switching current"):
    assert tag == old
  elif kill_at == "removing old runs":
    assert tag == "new"
  runs_lib.check_workdir(str(workdir))  # the next run cleans up
  _publish(workdir, "next")
  assert _consistent(workdir) == "next"
  leftovers = [n for n in os.listdir(workdir / "runs") + os.listdir(workdir)
               if n.startswith(".")]
  assert leftovers == []
  numbered = [n for n in os.listdir(workdir / "runs") if n.isdigit()]
  assert len(numbered) == runs_lib.KEEP_RUNS


def test_item05_a_real_kill_during_the_switch_keeps_the_old_run(tmp_path):
  workdir = tmp_path / "w"
  script = f"""
import os, sys
sys.path.insert(0, {os.path.join(ROOT, 'tests')!r})
from test_probe import _publish
from crbm_jax.util import runs
_publish({str(workdir)!r}, "old")
real = os.replace
def dying(a, b):
  if str(b).endswith("current"):
    os._exit(137)
  return real(a, b)
os.replace = dying
_publish({str(workdir)!r}, "new")
"""
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 137, proc.stderr
  assert _consistent(workdir) == "old"
  assert sorted(os.listdir(workdir / "runs")) == ["0001", "0002"]  # new but not current
  runs_lib.check_workdir(str(workdir))
  assert not [n for n in os.listdir(workdir) if n.startswith(".tmp")]


def test_item06_leftovers_of_the_earlier_swap_are_cleaned(tmp_path):
  workdir = tmp_path / "w"
  workdir.mkdir()
  old = workdir / ".old-model-abc"
  old.mkdir()
  model_io.write_model_files(str(old), _params(), config={"tag": "old"},
                             metrics={"tag": "old"}, **_META)
  (workdir / ".tmp-model-xyz").mkdir()
  with pytest.raises(model_io.ModelFormatError, match="no trained model"):
    runs_lib.load_run_model(str(workdir))  # what crbm-smooth saw
  runs_lib.check_workdir(str(workdir))
  assert sorted(os.listdir(workdir)) == ["model"]  # checked first: nothing created
  assert runs_lib.load_run_model(str(workdir)).config["tag"] == "old"


def test_item07_a_bad_destination_is_refused_before_any_work(published, tmp_path):
  tags, _, _, _ = published
  workdir = tmp_path / "w"
  (workdir / "metrics.json").mkdir(parents=True)
  log = []
  with pytest.raises(runs_lib.DestinationError) as e:
    fitting.fit_tag_table(tags, str(workdir), log=_quiet(log), **FIT)
  assert "metrics.json is a folder" in _one_line(e) and log == []
  assert sorted(os.listdir(workdir)) == ["metrics.json"]  # checked first: nothing created


def test_items05_07_old_layout_is_read_and_then_adopted(tmp_path):
  workdir = tmp_path / "w"
  model_io.save_model(str(workdir / "model"), _params(), config={"tag": "legacy"},
                      metrics={"tag": "legacy"}, **_META)
  (workdir / "metrics.json").write_text('{"tag": "legacy"}')
  assert runs_lib.load_run_model(str(workdir)).config["tag"] == "legacy"
  _publish(workdir, "new")
  assert _consistent(workdir) == "new"
  adopted = workdir / "runs" / "legacy-1"
  assert sorted(os.listdir(adopted)) == ["metrics.json", "model"]


# -- flags and values ---------------------------------------------------------------------

class _Stop(Exception):
  pass


def test_items10_11_training_gets_a_clamped_batch_and_a_reduced_seed(published, tmp_path,
                                                                    monkeypatch):
  from crbm_jax.learn import select  # pylint: disable=import-outside-toplevel
  tags, _, _, _ = published
  seen = {}

  def capture(key, train, *args, base=None, seed=None, **kw):
    seen.update(batch=base.batch_size, seed=seed, num_train=train.v.shape[0])
    raise _Stop()

  monkeypatch.setattr(select, "fit_and_compare", capture)
  log = []
  with pytest.raises(_Stop):
    fitting.fit_tag_table(tags, str(tmp_path / "w"), log=_quiet(log),
                **{**FIT, "batch_size": 100000}, seed=99999999999999999999)
  assert seen == dict(batch=seen["num_train"], seed=99999999999999999999 % 2**32,
                      num_train=seen["num_train"])
  assert any("using batches of" in line for line in log)


@pytest.mark.slow
def test_items10_11_huge_batch_and_any_integer_seed(fitted, tmp_path):
  tags, _, _, _ = fitted
  log = []
  metrics = fitting.fit_tag_table(tags, str(tmp_path / "w"), log=_quiet(log),
                        **{**FIT, "batch_size": 100000}, seed=99999999999999999999)
  assert any("using batches of" in line for line in log)
  assert math.isfinite(metrics["test_balanced_pl"])
  model = runs_lib.load_run_model(str(tmp_path / "w"))
  assert model.config["seed"] == 99999999999999999999 % 2**32
  assert model.config["batch_size"] == metrics["num_train"]
  summary = fitting.smooth_tag_table(str(tmp_path / "w"), tags, str(tmp_path / "o.tsv"), seed=-1,
                           num_samples=5, burn_in=1, log=_quiet([]))
  assert summary["clips"] == 24


@pytest.mark.parametrize("seed, expected", [(0, 0), (7, 7), (-1, 2**32 - 1),
                                            (2**32, 0), (99999999999999999999,
                                                         99999999999999999999 % 2**32)])
def test_item11_seed_reduction_rule(seed, expected):
  assert fitting.inputs.reduce_seed(seed) == expected


@pytest.mark.parametrize("text, line, reason", [
    # 12: count overflow
    ("clip\ttag\tcount\nc1\trock\t1\nc2\tjazz\t100000000000000000000000\n", 3,
     "too large"),
    # 15: negative durations
    ("clip\ttag\tduration\nc1\trock\t10\nc2\tjazz\t-3\n", 3, "duration '-3'"),
    ("clip\ttag\ttrack_duration\nc1\trock\t10\nc2\tjazz\t-inf\n", 3, "track_duration"),
    ("clip\ttag\ttrack_duration\nc1\trock\tinf\n", 2, "finite"),
])
def test_items12_15_bad_values_are_refused_with_file_and_line(tmp_path, text, line,
                                                             reason):
  path = tmp_path / "t.tsv"
  path.write_text(text)
  with pytest.raises(DataError) as e:
    load_tag_table(path)
  assert _one_line(e).startswith(f"{path}:{line}:") and reason in str(e.value)


def test_item15_unbalanced_quote_is_reported_where_it_opens(tmp_path):
  path = tmp_path / "t.csv"
  path.write_text('clip,tag\nc1,rock\nc2,"jazz\nc3,pop\nc4,piano\n')
  with pytest.raises(DataError) as e:
    load_tag_table(path)
  assert _one_line(e).startswith(f"{path}:3:") and "never closed" in str(e.value)


def test_item13_nfc_and_nfd_spellings_are_one_tag(tmp_path):
  nfc, nfd = "caf\u00e9", "cafe\u0301"
  path = tmp_path / "t.tsv"
  path.write_text(f"clip\ttag\nc1\t{nfc}\nc2\t{nfd}\nc3\t\uff52\uff4f\uff43\uff4b\n",
                  encoding="utf-8")
  table = load_tag_table(path)
  assert table.tag.tolist() == [nfc, nfc, "rock"]
  assert canonical.canonical_tag(nfc) == canonical.canonical_tag(nfd)
  built = TagTable(clip=np.array(["a", "b"]), tag=np.array([nfc, nfd]),
                   count=np.ones(2, np.int64))
  canon, _ = canonical.canonicalize_table(built)
  assert len(set(canon.tag.tolist())) == 1


def test_item14_header_only_table_says_it_has_no_rows(tmp_path):
  path = tmp_path / "t.tsv"
  path.write_text("clip\tuser\ttag\n")
  with pytest.raises(fitting.InputError) as e:
    fitting.fit_tag_table(str(path), str(tmp_path / "w"), min_users=1, log=_quiet([]), **FIT)
  assert "no rows" in _one_line(e) and "min_users" not in str(e.value)


def test_item16_destinations_are_checked_first_with_what_to_do(published, tmp_path):
  tags, workdir, _, _ = published
  a_file = tmp_path / "file"
  a_file.write_text("x")
  with pytest.raises(runs_lib.DestinationError) as e:
    fitting.fit_tag_table(tags, str(a_file), log=_quiet([]), **FIT)
  assert "is a file, not a folder" in _one_line(e) and "Errno" not in str(e.value)
  out_dir = tmp_path / "outdir"
  out_dir.mkdir()
  with pytest.raises(fitting.InputError) as e:
    fitting.smooth_tag_table(workdir, tags, str(out_dir), num_samples=5, log=_quiet([]))
  assert "is a folder; give a file name" in _one_line(e)
  with pytest.raises(runs_lib.DestinationError, match="is a file"):
    run_cooccurrence(tags, str(a_file), log=_quiet([]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_item16_read_only_workdir_is_one_line_before_any_work(published, tmp_path):
  tags, _, _, _ = published
  ro = tmp_path / "ro"
  ro.mkdir()
  ro.chmod(0o555)
  try:
    with pytest.raises(runs_lib.DestinationError) as e:
      fitting.fit_tag_table(tags, str(ro), log=_quiet([]), **FIT)
    assert "cannot write there" in _one_line(e) and "Errno" not in str(e.value)
  finally:
    ro.chmod(0o755)


def test_item16_unwritable_workdir_is_one_line_before_any_work(published, tmp_path,
                                                              monkeypatch):
  tags, _, _, _ = published

  def denied(*_a, dir=None, **_k):  # pylint: disable=redefined-builtin
    raise PermissionError(13, "Permission denied", os.path.join(dir, ".tmp-x"))

  monkeypatch.setattr(runs_lib.tempfile, "mkdtemp", denied)  # as a read-only folder does
  log = []
  with pytest.raises(runs_lib.DestinationError) as e:
    fitting.fit_tag_table(tags, str(tmp_path / "w"), log=_quiet(log), **FIT)
  assert "cannot write there (Permission denied)" in _one_line(e)
  assert "Errno" not in str(e.value) and log == []


# -- 17, 18: Ctrl-C and a closed stdout ----------------------------------------------------

def _start(args, **kw):
  env = dict(os.environ, PYTHONUNBUFFERED="1",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _interrupt_after_first_line(proc):
  first = proc.stdout.readline()
  time.sleep(0.5)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=60)
  return first, out, err


def test_item17_ctrl_c_ends_crbm_fit_with_one_line_and_status_130(tmp_path):
  tags = _table(str(tmp_path / "tags.tsv"))
  workdir = tmp_path / "w"
  proc = _start(["-m", "crbm_jax.cli", "fit", f"--tags={tags}", f"--workdir={workdir}",
                 "--num_epochs=1000000", "--patience=1000000", *FIT_FLAGS])
  first, _, err = _interrupt_after_first_line(proc)
  assert "training" in first
  lines = [x for x in err.splitlines() if x.strip() and not x.startswith("I")]
  assert proc.returncode == 130
  assert lines == ["crbm-fit: interrupted; no run was saved (a run is saved whole or not "
                   "at all); run the same command again"], err
  runs = workdir / "runs"
  assert (not runs.exists() or os.listdir(runs) == []) and not os.path.lexists(
      workdir / "current")


@pytest.mark.slow
def test_item17_ctrl_c_in_the_table2_launcher_exits_130_and_resume_is_exact(tmp_path):
  launcher = os.path.join(ROOT, "experiments", "table2_pseudolikelihood.py")
  config = os.path.join(ROOT, "crbm_jax", "configs", "table2.py") + ":smoke"
  args = [launcher, f"--config={config}", "--config.shard=False"]
  proc = _start(args + [f"--workdir={tmp_path / 'a'}"])
  results = tmp_path / "a" / "results"
  deadline = time.time() + 120
  while time.time() < deadline and not any(
      n.endswith(".json") for _, _, files in os.walk(results) for n in files):
    time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err and "Segmentation" not in err
  assert "interrupted; finished fits are kept" in err
  for workdir in ("a", "b"):
    done = subprocess.run([sys.executable] + args + [f"--workdir={tmp_path / workdir}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
  tables = [(tmp_path / w / "table2.csv").read_text() for w in ("a", "b")]
  assert tables[0] == tables[1]


def test_item18_closed_stdout_cooccurrence_finishes_quietly(tmp_path):
  tags = _table(str(tmp_path / "tags.tsv"))
  out = tmp_path / "co"
  proc = _start(["-m", "crbm_jax.cli", "cooccurrence", f"--tags={tags}",
                 f"--workdir={out}"])
  proc.stdout.readline()
  proc.stdout.close()  # `| head -1`
  err = proc.stderr.read()
  proc.wait(timeout=120)
  assert proc.returncode == 0 and _problems(err) == [], err
  assert sorted(os.listdir(out)) == ["figure1.csv", "figure1.png", "table1.csv",
                                     "table1.md"]


@pytest.mark.slow
def test_item18_closed_stdout_finishes_quietly_with_outputs_complete(tmp_path):
  tags = _table(str(tmp_path / "tags.tsv"))
  workdir = tmp_path / "w"
  proc = _start(["-m", "crbm_jax.cli", "fit", f"--tags={tags}", f"--workdir={workdir}",
                 "--num_epochs=2", *FIT_FLAGS])
  proc.stdout.readline()
  proc.stdout.close()  # `| head -1`
  err = proc.stderr.read()
  proc.wait(timeout=120)
  assert proc.returncode == 0 and _problems(err) == [], err
  assert _consistent_fit(workdir)


def _consistent_fit(workdir):
  model = runs_lib.load_run_model(str(workdir))
  metrics = _strict_json(os.path.join(workdir, "current", "metrics.json"))
  return model.metrics == metrics and metrics["num_hidden"] == 4
