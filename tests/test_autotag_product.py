"""Tag your own audio (issue 19): features -> autotaggers -> tags, on synthetic audio whose
tags follow audible differences (tones vs noise, slow vs fast pulses)."""
import contextlib
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from crbm_jax.autotag import features as F
from crbm_jax.autotag import product, store, svm

SR = 22050
CONFIG = F.FeatureConfig(num_clips=1, clip_seconds=2.5)
SECONDS = 3.0
PULSE_HZ = {"slow": 2.0, "fast": 6.0}


def _signal(kind, pace, rng):
  t = np.arange(int(SECONDS * SR)) / SR
  if kind == "tonal":
    y = sum(0.25 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
            for f in rng.uniform(200, 1500, size=2))
  else:
    y = 0.3 * rng.normal(size=t.shape)
  phase = rng.uniform(0, 1)
  gate = ((t * PULSE_HZ[pace] + phase) % 1.0) < 0.35
  return (y * (0.05 + gate)).astype(np.float32)


def _write_set(folder, n_per_combo, seed):
  """Files <kind>_<pace>_<seed>_<k>.wav and a tag table (clip = file stem, two files per
  track)."""
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  rows, truth = [], {}
  for kind in ("tonal", "noisy"):
    for pace in ("slow", "fast"):
      for k in range(n_per_combo):
        stem = f"{kind}_{pace}_{seed}_{k}"
        soundfile.write(os.path.join(folder, stem + ".wav"), _signal(kind, pace, rng), SR)
        track = f"{kind}_{pace}_{seed}_track{k // 2}"  # two files per track
        rows += [f"{stem}\t{kind}\t{track}", f"{stem}\t{pace}\t{track}"]
        truth[stem] = {kind, pace}
  tags = os.path.join(folder, "tags.tsv")
  with open(tags, "w") as f:
    f.write("clip\ttag\ttrack\n" + "\n".join(rows) + "\n")
  return tags, truth


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic")
  train_tags, _ = _write_set(str(root / "train"), 6, seed=1)
  test_tags, truth = _write_set(str(root / "test"), 3, seed=2)
  train_fs = product.extract_features(str(root / "train"), train_tags, config=CONFIG,
                                      num_workers=1, progress=False)
  test_fs = product.extract_features(str(root / "test"), None, config=CONFIG,
                                     num_workers=1, progress=False)
  return dict(root=root, train_tags=train_tags, train_fs=train_fs, test_fs=test_fs,
              truth=truth)


def _held_out_accuracy(pred, truth):
  acc = {}
  stems = [c.split("#")[0] for c in pred.clip_ids.tolist()]
  for j, tag in enumerate(pred.display):  # the tags as written (pred.tags: canonical)
    y = np.array([tag in truth[s] for s in stems])
    acc[tag] = svm.balanced_accuracy(y, pred.proba[:, j] >= 0.5)
  return acc


@pytest.mark.parametrize("model", ["nusvc", "linear"])
def test_autotagger_learns_audible_tags_on_held_out_files(data, tmp_path, model):
  fs = data["train_fs"]
  assert fs.num_clips == 24 and fs.features.shape[1] == 389 and not fs.skipped
  res = product.train(fs, data["train_tags"], str(tmp_path / "run"), model=model,
                      num_folds=3, progress=False, log=lambda m: None)
  assert res.settings["min_verified"] == 1 and res.settings["fold_groups"] == "track"
  assert sorted(res.autotagger.tags) == ["fast", "noisi", "slow", "tonal"]
  # Cross-validated (grouped by track) and on new files never seen in training.
  assert res.overall["balanced_accuracy"][0] >= 0.9, res.per_tag
  pred = product.predict(str(tmp_path / "run"), data["test_fs"])
  acc = _held_out_accuracy(pred, data["truth"])
  assert min(acc.values()) >= 0.9, acc
  for name in ("per_tag_csv", "per_tag_md", "figure", "cv_json", "cv_predictions"):
    assert os.path.getsize(res.paths[name]) > 0
  cv = json.load(open(res.paths["cv_json"]))
  assert set(cv["overall"]) >= {"balanced_accuracy", "roc_auc_tagwise", "pr_auc_tagwise",
                                "roc_auc_clipwise", "pr_auc_clipwise"}


def test_saved_autotagger_loads_back_and_predicts_identically_and_matches_sklearn(data):
  fs = data["train_fs"]
  z, mean, std = F.standardize(fs.features)
  z = z.astype(np.float64)
  rng = np.random.default_rng(0)
  pos, neg = np.arange(0, 12), np.arange(12, 24)
  clf = svm.fit_tag_svm(z[pos], z[neg], seed=3)
  arrays = store.from_sklearn_tag(clf)
  at = store.assemble(["t"], ["T"], fs.feature_names, "nusvc", mean, std, [arrays])
  x = fs.features + rng.normal(size=fs.features.shape).astype(np.float32) * 0.1
  zx = (x.astype(np.float64) - mean) / std
  svc = svm.svm_of(clf)
  np.testing.assert_allclose(at.decision_function(x)[:, 0], svc.decision_function(zx),
                             rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(at.predict_proba(x)[:, 0], clf.predict_proba(zx)[:, 1],
                             rtol=1e-9, atol=1e-12)
  folder = store.save(at, os.path.join(str(data["root"]), "saved"))
  back = store.load(folder)
  np.testing.assert_array_equal(back.predict_proba(x), at.predict_proba(x))
  np.testing.assert_array_equal(back.decision_function(x), at.decision_function(x))
  assert back.tags == ["t"] and back.kind == "nusvc" and back.sv.shape == arrays["sv"].shape


def test_training_is_deterministic_for_a_seed(data, tmp_path):
  kw = dict(num_folds=2, progress=False, log=lambda m: None, seed=5)
  a = product.train(data["train_fs"], data["train_tags"], str(tmp_path / "a"), **kw)
  b = product.train(data["train_fs"], data["train_tags"], str(tmp_path / "b"), **kw)
  for name in store.ARRAYS:
    np.testing.assert_array_equal(getattr(a.autotagger, name), getattr(b.autotagger, name))
  pa = product.predict(a.autotagger, data["test_fs"]).proba
  pb = product.predict(str(tmp_path / "b"), data["test_fs"]).proba
  np.testing.assert_array_equal(pa, pb)
  assert [r["balanced_accuracy"] for r in a.per_tag] == [r["balanced_accuracy"]
                                                        for r in b.per_tag]


def test_bad_files_and_unmatched_clips_are_skipped_with_counts(data, tmp_path):
  folder = tmp_path / "mixed"
  folder.mkdir()
  good = _signal("tonal", "slow", np.random.default_rng(0))
  soundfile.write(folder / "good.wav", good, SR)
  soundfile.write(folder / "silent.wav", np.zeros_like(good), SR)
  soundfile.write(folder / "short.wav", good[:SR], SR)
  (folder / "corrupt.wav").write_bytes(b"RIFF????WAVEgarbage" * 10)
  sub = folder / "sub"
  sub.mkdir()
  soundfile.write(sub / "long.flac", np.concatenate([good, good]), SR)
  tags = tmp_path / "tags.tsv"
  tags.write_text("clip\ttag\tstart\tduration\tpath\n"
                  "good\ta\t\t\t\nsilent\ta\t\t\t\nshort\ta\t\t\t\ncorrupt\ta\t\t\t\n"
                  "absent\ta\t\t\t\n"
                  "seg1\ta\t0.5\t2.0\tsub/long.flac\nseg2\ta\t5.0\t3.0\tsub/long.flac\n"
                  "seg3\ta\t9.0\t1.0\tsub/long.flac\nseg4\ta\t5.8\t1.0\tsub/long.flac\n")
  fs = product.extract_features(str(folder), str(tags), config=CONFIG, num_workers=1,
                                progress=False, min_clip_seconds=0.5)
  assert np.all(np.isfinite(fs.features))
  assert fs.clip_ids.tolist() == ["good#0", "seg1", "seg2"]
  np.testing.assert_allclose(fs.offsets, [0.25, 0.5, 5.0], atol=1 / SR)
  np.testing.assert_allclose(fs.durations, [2.5, 2.0, 1.0])  # seg2 cut at the end
  assert fs.skip_counts() == {"after the end": 1, "cannot decode": 1, "no audio file": 1,
                              "silent": 1, "too short": 2}
  out = tmp_path / "f.npz"
  product.save_features(str(out), fs)
  back = product.load_features(str(out))
  np.testing.assert_array_equal(back.features, fs.features)
  assert back.clip_ids.tolist() == fs.clip_ids.tolist() and back.skipped == fs.skipped
  assert back.digest == CONFIG.digest() and back.config["clip_seconds"] == 2.5
  with np.load(out, allow_pickle=False) as z:  # no object arrays anywhere
    assert all(z[k].dtype != object for k in z.files)


def test_smoothed_labels_from_a_crbm_smooth_file(data, tmp_path):
  # A crbm-smooth-shaped table whose affinities rank the clips correctly but noisily.
  rng = np.random.default_rng(0)
  lab = product.load_labels(data["train_tags"])
  lines = ["clip\ttag\taffinity\tdisplay"]
  for i, clip in enumerate(lab.items.tolist()):
    for j, tag in enumerate(lab.tags):
      a = np.clip(0.7 * (lab.raw[i, j] > 0) + 0.3 * rng.random(), 0, 1)
      lines.append(f"{clip}\t{tag}\t{a:.4f}\t{tag}")
  smoothed = tmp_path / "smoothed.tsv"
  smoothed.write_text("\n".join(lines) + "\n")
  res = product.train(data["train_fs"], data["train_tags"], str(tmp_path / "run"),
                      labels="smoothed", smoothed=str(smoothed), num_folds=0,
                      max_per_class=8, progress=False, log=lambda m: None)
  assert res.settings["labels"] == "smoothed"
  acc = _held_out_accuracy(product.predict(res.autotagger, data["test_fs"]), data["truth"])
  assert min(acc.values()) >= 0.9, acc


def test_write_predictions_top_threshold_and_track_summaries(tmp_path):
  pred = product.Predictions(
      clip_ids=np.array(["a#0", "a#1", "b#0"]), items=np.array(["a", "a", "b"]),
      paths=np.array(["/x/a.wav", "/x/a.wav", "/x/b.wav"]), tags=["t1", "t2", "t3"],
      display=["T1", "T2", "T3"],
      proba=np.array([[0.9, 0.2, 0.5], [0.7, 0.4, 0.1], [0.1, 0.8, 0.3]]))
  out = tmp_path / "p.tsv"
  r = product.write_predictions(pred, str(out), top_k=2, threshold=0.3, log=lambda m: None)
  lines = out.read_text().splitlines()
  # tag: as the user spelled it; tag_key: the canonical key
  assert lines == ["clip\ttag\taffinity\ttag_key", "a#0\tT1\t0.9\tt1", "a#0\tT3\t0.5\tt3",
                   "a#1\tT1\t0.7\tt1", "a#1\tT2\t0.4\tt2", "b#0\tT2\t0.8\tt2",
                   "b#0\tT3\t0.3\tt3"]
  tracks = open(r["tracks"]).read().splitlines()
  assert r["tracks"].endswith("p.tracks.tsv")
  assert tracks[:3] == ["track\ttag\taffinity\ttag_key\tclips", "/x/a.wav\tT1\t0.8\tt1\t2",
                        "/x/a.wav\tT2\t0.3\tt2\t2"]  # tie: tag order


@pytest.mark.skipif(not product.jams_available(), reason="no crbm_jax.data.jams_io")
def test_predictions_as_jams_tag_open_read_back(tmp_path):
  from crbm_jax.data import jams_io  # pylint: disable=import-outside-toplevel
  pred = product.Predictions(
      clip_ids=np.array(["a#0", "a#1", "b#0"]), items=np.array(["a", "a", "b"]),
      paths=np.array(["/x/a.wav", "/x/a.wav", "/x/b.wav"]), tags=["t1", "t2"],
      display=["T1", "T2"], proba=np.array([[0.9, 0.2], [0.7, 0.4], [0.1, 0.8]]),
      offsets=np.array([0.0, 10.0, 0.0]), durations=np.array([10.0, 10.0, 10.0]))
  r = product.write_predictions(pred, str(tmp_path / "p.tsv"), threshold=0.3,
                                jams_dir=str(tmp_path / "jams"), log=lambda m: None)
  assert sorted(os.path.basename(p) for p in r["jams"]) == ["a.jams", "b.jams"]
  doc = json.load(open(tmp_path / "jams" / "a.jams"))
  assert {a["namespace"] for a in doc["annotations"]} == {"tag_open"}
  obs = sorted((o["time"], o["value"], round(o["confidence"], 6))
               for a in doc["annotations"] for o in a["data"])
  assert obs == [(0.0, "T1", 0.9), (10.0, "T1", 0.7), (10.0, "T2", 0.4)]
  back = jams_io.load_jams(str(tmp_path / "jams"))
  assert back.num_rows == 4


@pytest.mark.parametrize("case", ["sha", "nan", "shape", "json", "kind", "missing"])
def test_tampered_autotagger_is_refused_in_one_line(data, tmp_path, case):
  fs = data["train_fs"]
  res = product.train(fs, data["train_tags"], str(tmp_path / "run"), model="linear",
                      num_folds=0, progress=False, log=lambda m: None)
  folder = res.paths["autotagger"]
  npz, meta_path = os.path.join(folder, store.NPZ_NAME), os.path.join(folder, store.JSON_NAME)
  meta = json.load(open(meta_path))
  arrays = dict(np.load(npz))
  from crbm_jax.util.atomic import npz_bytes
  import hashlib

  def rewrite(**changes):
    data_bytes = npz_bytes(**dict(arrays, **changes))
    open(npz, "wb").write(data_bytes)
    meta["npz_sha256"] = hashlib.sha256(data_bytes).hexdigest()
    json.dump(meta, open(meta_path, "w"))

  if case == "sha":
    open(npz, "ab").write(b"x")
  elif case == "nan":
    coef = arrays["coef"].copy()
    coef[0, 0] = np.nan
    rewrite(coef=coef)
  elif case == "shape":
    rewrite(coef=arrays["coef"][:-1])
  elif case == "json":
    open(meta_path, "w").write("{not json")
  elif case == "kind":
    meta["kind"] = "rbf"
    json.dump(meta, open(meta_path, "w"))
  else:
    os.remove(npz)
  with pytest.raises(store.StoreError) as e:
    store.load(folder)
  assert "\n" not in str(e.value) and folder in str(e.value)


def test_embedded_majorminer_features_load_as_a_feature_set():
  import crbm_jax.data  # pylint: disable=import-outside-toplevel
  path = os.path.join(os.path.dirname(crbm_jax.data.__file__), "embedded",
                      "majorminer_features.npz")
  fs = product.load_features(path)
  assert fs.features.shape == (2359, 133) and fs.items.tolist() == fs.clip_ids.tolist()
  assert fs.feature_names[0] == "lowlevel.mfcc.mean[0]" and fs.config == {}


def test_command_line_tools_end_to_end(data, tmp_path):
  from crbm_jax.cli import autotag as autotag_cli  # pylint: disable=import-outside-toplevel
  from crbm_jax.cli import features as features_cli  # pylint: disable=import-outside-toplevel
  res = product.train(data["train_fs"], data["train_tags"], str(tmp_path / "run"),
                      model="linear", num_folds=0, progress=False, log=lambda m: None)
  assert res.autotagger.kind == "logistic"
  feats = tmp_path / "test.npz"
  features_cli.run_features(str(data["root"] / "test"), str(feats), cache_dir="none",
                            workers=1, num_clips=1, clip_seconds=2.5, progress=False,
                            log=lambda m: None)
  out = tmp_path / "tags.csv"
  autotag_cli.run_predict(str(tmp_path / "run"), str(out), features=str(feats), top=1,
                          log=lambda m: None)
  with open(out, newline="") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["clip", "tag", "affinity", "tag_key"] and len(rows) == 1 + 12
  # Tags as the tag table spelled them; the canonical (stemmed) key beside them.
  assert {r[1] for r in rows[1:]} <= {"tonal", "noisy", "slow", "fast"}
  assert res.autotagger.tags == ["fast", "noisi", "slow", "tonal"]
  assert res.autotagger.display == ["fast", "noisy", "slow", "tonal"]
  spelled = dict(zip(res.autotagger.tags, res.autotagger.display))
  assert all(r[1] == spelled[r[3]] for r in rows[1:])
  # crbm-convert reads the predictions back: JAMS values are the tags as spelled.
  from crbm_jax.cli import convert  # pylint: disable=import-outside-toplevel
  written = convert.run_convert([str(out)], str(tmp_path / "jams") + os.sep,
                                log=lambda m: None)["written"]
  values = [o["value"] for p in written for a in json.load(open(p))["annotations"]
            for o in a["data"]]
  assert len(values) == 12 and set(values) <= {"tonal", "noisy", "slow", "fast"}
  # The console script, in this process: one line on stderr and exit status 1 for a bad
  # workdir.
  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    code = autotag_cli.main(["crbm-autotag", "predict", f"--workdir={tmp_path / 'nowhere'}",
                             f"--features={feats}", f"--out={out}"])
  assert code == 1 and err.getvalue().count("\n") == 1, err.getvalue()
  assert "no such autotagger folder" in err.getvalue()
  # Predicting imports no JAX (a fresh interpreter).
  code = ("import sys; from crbm_jax.cli import autotag; "
          f"assert autotag.main(['crbm-autotag', 'predict', '--workdir={tmp_path / 'run'}', "
          f"'--features={feats}', '--out={tmp_path / 'again.tsv'}', '--noprogress']) == 0; "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'optax')))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0 and proc.stdout.strip().endswith("[]"), proc.stderr


@pytest.mark.slow
def test_smoothed_labels_from_a_crbm_the_command_trains(data, tmp_path):
  from crbm_jax.cli.autotag import smooth_with_crbm  # pylint: disable=import-outside-toplevel
  res = product.train(data["train_fs"], data["train_tags"], str(tmp_path / "run"),
                      labels="smoothed", num_folds=3, progress=False, log=lambda m: None,
                      smoother=smooth_with_crbm)
  assert os.path.exists(tmp_path / "run" / "crbm" / "smoothed.tsv")
  assert res.settings["smoothed"].endswith(os.path.join("crbm", "smoothed.tsv"))
  acc = _held_out_accuracy(product.predict(res.autotagger, data["test_fs"]), data["truth"])
  assert min(acc.values()) >= 0.9, acc


def test_product_store_and_cli_modules_do_not_load_jax():
  code = ("import sys, crbm_jax.autotag.product, crbm_jax.autotag.store, "
          "crbm_jax.autotag.training, crbm_jax.autotag.prediction, crbm_jax.autotag.crossval, "
          "crbm_jax.cli.autotag, crbm_jax.cli.features; "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'optax')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, timeout=120)
  assert out.stdout.strip() == "[]", out.stdout


def test_roc_pr_auc_equals_sklearn_with_and_without_ties():
  from sklearn.metrics import average_precision_score, roc_auc_score  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  for n in (2, 7, 50, 300):
    for digits in (None, 1):
      y = rng.random(n) < 0.3
      y[0], y[1] = True, False
      s = rng.random(n) if digits is None else np.round(rng.random(n), digits)
      roc, ap = product.roc_pr_auc(y, s)
      assert abs(roc - roc_auc_score(y, s)) < 1e-12
      assert abs(ap - average_precision_score(y, s)) < 1e-12
  assert all(np.isnan(product.roc_pr_auc(np.ones(4, bool), np.arange(4.0))))
