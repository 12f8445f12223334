"""crbm-autotag train --model crbm / predict --given (crbm_jax.tagger.product) on planted
features: users' tags follow the features, so held-out clips can be tagged."""
import dataclasses
import json
import os

import numpy as np
import pytest

from crbm_jax.autotag import svm
from crbm_jax.autotag.errors import AutotagError
from crbm_jax.autotag.featureset import load_features
from crbm_jax.autotag.store import StoreError
from crbm_jax.cli import autotag as cli
from crbm_jax.tagger import core, product

TAGS = ("loud", "quiet", "fast", "slow")
CONFIG = core.TaggerConfig(num_hidden=3, num_epochs=15, batch_size=40, learning_rate=0.1)


def planted(seed, num_clips, num_features=6):
  """Features whose first two coordinates decide loud/quiet and fast/slow."""
  rng = np.random.default_rng(seed)
  x = rng.normal(0, 1, (num_clips, num_features)).astype(np.float32)
  truth = np.stack([x[:, 0] > 0, x[:, 0] <= 0, x[:, 1] > 0, x[:, 1] <= 0], 1)
  return x, truth


def write_features(path, x, ids):
  np.savez(path, features=x, clip_ids=np.array(ids),
           feature_names=np.array([f"f{i}" for i in range(x.shape[1])]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("crbm_tagger")
  x, truth = planted(0, 120)
  ids = [f"c{i}" for i in range(120)]
  write_features(root / "train.npz", x, ids)
  rng = np.random.default_rng(1)
  rows = []
  for i, cid in enumerate(ids):
    for user in rng.choice(6, 3, replace=False):
      for j in np.flatnonzero(truth[i]):
        if rng.random() < 0.8:  # each user misses some true tags
          rows.append(f"{cid}\tu{user}\t{TAGS[j]}\ttrack{i // 2}")
  rows.append("untagged-features-missing\tu0\tloud\ttrackX")  # a clip without features
  with open(root / "tags.tsv", "w") as f:
    f.write("clip\tuser\ttag\ttrack\n" + "\n".join(rows) + "\n")
  result = product.train(str(root / "train.npz"), str(root / "tags.tsv"),
                         str(root / "run"), num_folds=2, config=CONFIG, log=lambda m: None)
  return dict(root=root, result=result)


@pytest.mark.extended
def test_trains_on_user_observations_and_tags_held_out_clips(trained):
  result = trained["result"]
  assert result["settings"]["observations"] == "per (clip, user)"
  assert result["settings"]["num_observations"] > 120          # several users per clip
  assert result["settings"]["num_tagged_clips_without_features"] == 1
  for name in ("per_tag.csv", "per_tag.md", "cv.json", "cv_predictions.npz"):
    assert os.path.exists(trained["root"] / "run" / name)
  x, truth = planted(7, 60)
  at = product.load(str(trained["root"] / "run"))
  p = at.predict_proba(x)
  col = {t: j for j, t in enumerate(at.tags)}
  for j, tag in enumerate(TAGS):
    acc = svm.balanced_accuracy(truth[:, j], p[:, col[tag]] >= at.thresholds[col[tag]])
    assert acc > 0.85, (tag, acc)


def test_saved_model_predicts_like_the_fitted_one_and_tampering_is_refused(trained,
                                                                            tmp_path):
  at = product.load(str(trained["root"] / "run"))
  folder = product.save(at, str(tmp_path / "copy"))
  again = product.load(folder)
  x, _ = planted(3, 10)
  np.testing.assert_array_equal(at.predict_proba(x), again.predict_proba(x))
  npz = os.path.join(folder, "autotagger.npz")
  with open(npz, "r+b") as fh:
    fh.seek(40)
    byte = fh.read(1)
    fh.seek(40)
    fh.write(bytes([byte[0] ^ 0xFF]))
  with pytest.raises(StoreError, match="SHA-256"):
    product.load(folder)


def test_given_tags_are_clamped_and_unknown_ones_reported(trained, tmp_path):
  at = product.load(str(trained["root"] / "run"))
  x, _ = planted(5, 4)
  write_features(tmp_path / "new.npz", x, ["a", "b", "c", "d"])
  with open(tmp_path / "given.tsv", "w") as f:
    f.write("clip\ttag\na\tloud\na\tdubstep\nzzz\tfast\n")
  messages = []
  pred = product.predict(at, str(tmp_path / "new.npz"), str(tmp_path / "given.tsv"),
                         log=messages.append)
  col = {t: j for j, t in enumerate(at.tags)}
  assert pred.proba[0, col["loud"]] == 1.0
  free = product.predict(at, str(tmp_path / "new.npz"), log=lambda m: None)
  np.testing.assert_array_equal(pred.proba[1:], free.proba[1:])   # other clips untouched
  assert any("dubstep" in m and "vocabulary" in m for m in messages)
  assert any("1 clips are not among the features" in m for m in messages)


def test_other_feature_settings_and_bad_features_are_refused(trained, tmp_path):
  at = product.load(str(trained["root"] / "run"))
  x, _ = planted(5, 4)
  write_features(tmp_path / "narrow.npz", x[:, :4], list("abcd"))
  with pytest.raises(AutotagError, match="narrow.npz"):
    product.predict(at, str(tmp_path / "narrow.npz"))
  write_features(tmp_path / "ok.npz", x, list("abcd"))
  fs = dataclasses.replace(load_features(str(tmp_path / "ok.npz")), digest="other")
  at.feature_digest = "trained"
  with pytest.raises(AutotagError, match="feature settings"):
    product.predict(at, fs)


def test_command_line_train_and_predict_with_given(trained, tmp_path, capsys):
  root = trained["root"]
  x, _ = planted(9, 5)
  write_features(tmp_path / "new.npz", x, list("abcde"))
  bad = x.copy()
  bad[2, 1] = np.inf
  write_features(tmp_path / "bad.npz", bad, list("abcde"))
  with open(tmp_path / "given.tsv", "w") as f:
    f.write("clip\ttag\nb\tquiet\n")
  out = str(tmp_path / "pred.tsv")
  assert cli.main(["crbm-autotag", "predict", "--workdir", str(root / "run"),
                   "--features", str(tmp_path / "new.npz"), "--out", out,
                   "--given", str(tmp_path / "given.tsv"), "--noprogress"]) == 0
  lines = open(out).read().splitlines()
  assert lines[0].split("\t") == ["clip", "tag", "affinity", "tag_key"]
  assert "b\tquiet\t1\tquiet" in lines
  capsys.readouterr()
  assert cli.main(["crbm-autotag", "predict", "--workdir", str(root / "run"),
                   "--features", str(tmp_path / "bad.npz"), "--out", out]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "bad.npz" in err[0] and "NaN or infinite" in err[0]
  meta = json.load(open(root / "run" / "autotagger" / "autotagger.json"))
  assert meta["kind"] == "crbm" and len(meta["npz_sha256"]) == 64
