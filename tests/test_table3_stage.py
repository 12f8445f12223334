"""Tests of the Section 4 experiment driver (crbm_jax.paper.table3)."""
import json
import os
import types

import jax
import numpy as np
import pytest

from crbm_jax.paper import table3 as ae
from crbm_jax.data import observations as obs_lib
from crbm_jax.data.datasets import load_dataset
from crbm_jax.data.tagtable import TagTable

from crbm_jax.configs import table3 as table3_config


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  config = table3_config.get_config("smoke")
  config.sparsity.enabled = False   # tests/test_sparsity.py runs it
  workdir = str(tmp_path_factory.mktemp("table3"))
  out = ae.run_autotagging(config, workdir)
  labels = dict(np.load(out["datasets"]["simulated"]["paths"]["labels_npz"]))
  return config, out, labels


@pytest.mark.extended
def test_smoke_run_writes_table_figure_and_recovery(smoke):
  config, out, _ = smoke
  summary = out["datasets"]["simulated"]
  paths = summary["paths"]
  for key in ("table3_markdown", "table3_csv", "table3_json", "figure2_png",
              "figure2_csv", "recovery_markdown", "recovery_json", "labels_npz"):
    assert os.path.getsize(paths[key]) > 0, key
  with open(paths["table3_json"]) as fh:
    table = json.load(fh)
  mean = np.array(table["mean"], float)
  assert mean.shape == (2, 2)
  assert np.all((mean >= 0) & (mean <= 100))
  assert len(table["tag_names"]) == config.table3.num_tags
  assert "paper" in open(paths["table3_markdown"]).read()
  with open(paths["recovery_json"]) as fh:
    report = json.load(fh)["report"]
  assert set(report) == {"all", "missed_by_any", "missed_by_all", "unreported"}
  for entry in report.values():
    for score in ("raw_count", "smoothed_sampled", "smoothed_mean_field"):
      assert 0.0 <= entry[score]["overall"] <= 1.0
  # Raw counts cannot rank entries that nobody reported: every score ties.
  assert report["unreported"]["raw_count"]["overall"] == pytest.approx(0.5)
  assert os.path.exists(out["summary_json"])


@pytest.mark.extended
def test_folds_never_split_a_track(smoke):
  _, _, labels = smoke
  groups, folds = labels["groups"], labels["fold_ids"]
  assert all(g.startswith("track:") for g in groups.tolist())
  for g in np.unique(groups):
    assert len(np.unique(folds[groups == g])) == 1, g
  assert len(np.unique(folds)) == 5


@pytest.mark.extended
def test_user_is_factored_out_of_the_smoothing_rows(smoke):
  _, _, labels = smoke
  groups = labels["aux_groups"].tolist()
  assert groups == ["user", "track", "clip"]
  rows = labels["aux_rows"]
  assert np.all(rows[:, 0] == -1)
  assert np.all(rows[:, 1:] >= 0)
  # One clip row per clip; clips of one track share the track row.
  assert len(np.unique(rows[:, 2])) == rows.shape[0]
  for g in np.unique(labels["groups"]):
    assert len(np.unique(rows[labels["groups"] == g, 1])) == 1


@pytest.mark.extended
def test_raw_labels_equal_the_counts_of_the_table(smoke):
  config, _, labels = smoke
  bundle = load_dataset("simulated", seed=config.seed, **config.simulation.to_dict())
  table = bundle.table
  clip_pos = {c: i for i, c in enumerate(labels["clips"].tolist())}
  tag_pos = {t: j for j, t in enumerate(labels["vocab"].tolist())}
  expected = np.zeros_like(labels["raw"])
  for clip, tag, count in zip(table.clip.tolist(), table.tag.tolist(),
                              table.count.tolist()):
    if clip in clip_pos and tag in tag_pos:
      expected[clip_pos[clip], tag_pos[tag]] += count
  np.testing.assert_array_equal(labels["raw"], expected)
  # One row per (clip, user, tag) in a study: the count is the number of workers.
  assert labels["raw"].max() <= 3


@pytest.mark.extended
def test_smoothed_affinities_are_probabilities(smoke):
  _, out, labels = smoke
  for key in ("sampled", "mean_field"):
    assert np.all((labels[key] >= 0) & (labels[key] <= 1))
  stats = out["datasets"]["simulated"]["smoothing"]
  assert stats["factored_out"] == ["user"]
  assert 0.0 <= stats["mean_abs_diff"] <= stats["max_abs_diff"] <= 1.0


def test_recovery_report_exact_small_case():
  truth = np.array([[1, 0], [0, 1], [1, 0], [0, 0]], bool)
  raw = np.array([[2, 0], [0, 0], [0, 1], [0, 0]])
  perfect = truth.astype(float)
  missed_any = np.array([[1, 0], [0, 1], [1, 0], [0, 0]], bool)
  missed_all = np.array([[0, 0], [0, 1], [1, 0], [0, 0]], bool)
  report = ae.recovery_report(truth, {"raw": raw, "perfect": perfect}, raw,
                              missed_any, missed_all)
  assert report["all"]["perfect"]["overall"] == 1.0
  # missed_by_all: positives (1,1), (2,0), both raw 0; negatives (the 5 false
  # entries) have raw 0, 0, 1, 0, 0. Each positive ties 4 negatives and loses to
  # one: AUC = (2 * 4 * 0.5) / (2 * 5).
  assert report["missed_by_all"]["raw"]["overall"] == pytest.approx(0.4)
  assert report["missed_by_all"]["num_positive"] == 2
  assert report["missed_by_any"]["num_positive"] == 3
  assert report["unreported"]["num_positive"] == 2  # true, but nobody gave them


def test_missed_by_workers_counts_accepted_honest_hits_only():
  study = types.SimpleNamespace(
      hit_clip=np.array(["a", "a", "b", "b", "a"]),
      honest=np.array([True, True, True, True, False]),
      missed=np.array([[1, 0], [1, 1], [0, 0], [1, 0], [0, 0]], bool))
  accepted = np.array([True, True, True, False, True])
  any_, all_, workers = ae.missed_by_workers(study, accepted, np.array(["a", "b"]),
                                            np.array([0, 1]))
  np.testing.assert_array_equal(workers, [2, 1])
  np.testing.assert_array_equal(any_, [[True, True], [False, False]])
  np.testing.assert_array_equal(all_, [[True, False], [False, False]])


def _table(album=None):
  return TagTable(
      clip=np.array(["c1", "c1", "c2", "c3", "c4"]), tag=np.array(["x", "y", "x", "y", "x"]),
      count=np.array([1, 2, 3, 1, 1]), track=np.array(["t1", "t1", "t1", "t2", "t3"]),
      album=album)


def test_fold_groups_prefer_album_then_track():
  clips = np.array(["c1", "c2", "c3", "c4"])
  groups, kind = ae.fold_groups(_table(), clips)
  assert kind == "track"
  assert groups.tolist() == ["track:t1", "track:t1", "track:t2", "track:t3"]
  album = np.array(["A", "A", "A", "", "B"])
  groups, kind = ae.fold_groups(_table(album), clips)
  assert kind == "album"
  assert groups.tolist() == ["album:A", "album:A", "track:t2", "album:B"]


def test_raw_label_counts_sum_players_without_users():
  obs = obs_lib.build_observations(_table(), aux_groups=("track", "clip"))
  raw = ae.raw_label_counts(obs, np.array(["c4", "c1", "c2"]))
  col = {t: j for j, t in enumerate(obs.vocab.tolist())}
  expected = np.zeros((3, 2), np.int32)
  expected[1, col["x"]], expected[1, col["y"]] = 1, 2
  expected[2, col["x"]] = 3
  expected[0, col["x"]] = 1
  np.testing.assert_array_equal(raw, expected)


def test_load_hparams_layouts_and_errors(tmp_path):
  flat = tmp_path / "flat.json"
  flat.write_text(json.dumps({"num_hidden": 7, "learning_rate": 0.1, "other": 1}))
  assert ae.load_hparams(str(flat), "simulated") == {"num_hidden": 7, "learning_rate": 0.1}
  nested = tmp_path / "nested.json"
  nested.write_text(json.dumps({"majorminer": {"best": {"l1_aux": 1e-4}},
                                "simulated": {"l1_aux": 0.0}}))
  assert ae.load_hparams(str(nested), "majorminer") == {"l1_aux": 1e-4}
  table2 = tmp_path / "table2.json"
  table2.write_text(json.dumps({"datasets": [
      {"name": "majorminer", "selected": {"num_hidden": 3}},
      {"name": "simulated", "selected": {"num_hidden": 9, "momentum": 0.9}}]}))
  assert ae.load_hparams(str(table2), "simulated") == {"num_hidden": 9, "momentum": 0.9}
  with pytest.raises(ae.ExperimentError, match="no entry named 'hetrec'"):
    ae.load_hparams(str(table2), "hetrec")
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(ae.ExperimentError, match="bad.json"):
    ae.load_hparams(str(bad), "simulated")
  empty = tmp_path / "empty.json"
  empty.write_text(json.dumps({"foo": 1}))
  with pytest.raises(ae.ExperimentError, match="no hyperparameters"):
    ae.load_hparams(str(empty), "simulated")
  text = tmp_path / "text.json"
  text.write_text(json.dumps({"num_hidden": "ten"}))
  with pytest.raises(ae.ExperimentError, match="must be a number"):
    ae.load_hparams(str(text), "simulated")


@pytest.mark.extended
def test_train_crbm_uses_a_plain_split_when_every_clip_is_seen_once():
  rng = np.random.default_rng(0)
  n = 40
  clips = np.array([f"c{i}" for i in range(n)])
  tags = np.array(["a", "b", "c", "d"])[rng.integers(0, 4, n)]
  table = TagTable(clip=clips, tag=tags, count=np.ones(n, np.int64),
                   track=np.array([f"t{i // 4}" for i in range(n)]))
  obs = obs_lib.build_observations(table, aux_groups=("track", "clip"))
  model = dict(num_hidden=2, cd_k=1, batch_size=8, num_epochs=2, learning_rate=0.1,
               momentum=0.5, weight_decay=1e-4, l1_aux=1e-5)
  params, info = ae.train_crbm(jax.random.key(0), obs, model, val_fraction=0.2,
                               refit_all=True, seed=0)
  assert info["split"] == "plain shuffle"
  assert (info["num_train"], info["num_val"]) == (32, 8)
  assert 0 <= info["best_epoch"] < 2
  assert params.W_aux.shape == (obs.num_aux, obs.num_visible)


def test_config_variants():
  for variant in ("smoke", "default", "full"):
    config = table3_config.get_config(variant)
    assert config.variant == variant
  assert table3_config.get_config("full").smoothing.num_samples == 1000
  assert (table3_config.get_config("full").sparsity.num_draws
          > table3_config.get_config("default").sparsity.num_draws)
  with pytest.raises(ValueError, match="unknown table3 config variant"):
    table3_config.get_config("huge")


@pytest.mark.extended
def test_smoothing_model_is_chosen_by_validation_search(smoke):
  config, out, _ = smoke
  info = out["datasets"]["simulated"]["training"]
  assert info["method"] == "validation search"
  assert info["groups"] == ["user", "track", "clip"] and not info["dropped_groups"]
  assert len(info["search_table"]) == config.search.num_configs
  # The smoothing criterion (issue 23): each of the best configurations scored from two
  # initialisations, the best mean chosen, the spread reported.
  assert info["criterion"] == "smoothing" and info["holdout"].startswith("held-out users")
  assert len(info["rescored"]) == min(config.selection.rescore_top, config.search.num_configs)
  for r in info["rescored"]:
    assert len(r["scores"]) == 2 and r["spread"] == pytest.approx(abs(r["scores"][0] -
                                                                      r["scores"][1]))
  assert info["val_criterion"] == pytest.approx(max(r["mean"] for r in info["rescored"]))
  assert info["val_criterion"] < 0 and 0.0 <= info["val_auc"]["auc"] <= 1.0
  assert {r["num_hidden"] for r in info["search_table"]} <= set(config.search.num_hidden)
  dep = out["datasets"]["simulated"]["smoothing"]["aux_dependence"]
  assert set(dep) >= {"track", "clip", "all", "method"} and "user" not in dep
  assert all(0.0 <= dep[g] <= 1.0 for g in ("track", "clip", "all"))


def test_learnable_groups_drop_a_group_seen_once_per_entity():
  table = TagTable(clip=np.array(["c1", "c2", "c3", "c4"]), tag=np.array(["x"] * 4),
                   count=np.ones(4, np.int64), track=np.array(["t1", "t1", "t2", "t3"]))
  obs = obs_lib.build_observations(table, aux_groups=("track", "clip"))
  kept, dropped = ae.learnable_groups(obs)
  assert kept == ("track",) and set(dropped) == {"clip"}
  assert "single observation" in dropped["clip"]
  # Count splitting gives every clip a held-out observation of itself: clip is kept.
  kept, dropped = ae.learnable_groups(obs, count_splitting=True)
  assert kept == ("track", "clip") and not dropped


def test_aux_dependence_is_the_exact_marginal_shift():
  from crbm_jax.model import marginals
  from crbm_jax.model.crbm import CRBMParams
  rng = np.random.default_rng(0)
  v, h, a = 4, 3, 5
  params = CRBMParams(W=rng.normal(size=(v, h)).astype(np.float32),
                      b=rng.normal(size=v).astype(np.float32),
                      c=rng.normal(size=h).astype(np.float32),
                      W_aux=np.zeros((a, v), np.float32))
  rows = np.array([[0, 2], [1, 3], [0, 4]], np.int32)
  dep = ae.aux_dependence(params, rows, ("track", "clip"))
  assert dep["method"] == "exact" and dep["track"] == 0.0 and dep["clip"] == 0.0
  W_aux = rng.normal(size=(a, v)).astype(np.float32)
  params = params._replace(W_aux=W_aux)
  dep = ae.aux_dependence(params, rows, ("track", "clip"))
  full = marginals.exact_visible_marginals(params, rows)
  no_clip = marginals.exact_visible_marginals(params, np.c_[rows[:, :1], [-1] * 3])
  assert dep["clip"] == pytest.approx(np.abs(full - no_clip).mean())
  assert dep["track"] > 0 and dep["all"] > 0
  assert dep["relative"] == pytest.approx(dep["all"] / full.mean())


@pytest.mark.slow
def test_sparsity_p1_column_is_this_runs_majorminer_table3(tmp_path):
  config = table3_config.get_config("smoke")
  config.datasets = ("majorminer",)
  config.sparsity.update(dict(keep=(0.5, 1.0), num_tags=4))
  config.table3.num_tags = 4
  out = ae.run_autotagging(config, str(tmp_path))
  with open(out["datasets"]["majorminer"]["paths"]["table3_json"]) as fh:
    t3 = json.load(fh)
  sp = out["sparsity"]["summary"]
  for i, name in enumerate(("raw", "smoothed")):
    for test in ("thinned", "unthinned"):
      assert sp["tests"][test][name][1][0] == pytest.approx(t3["mean"][i][0])


@pytest.mark.extended
def test_baseline_smoothers_are_compared_beside_the_crbm(smoke):
  _, out, _ = smoke
  summary = out["datasets"]["simulated"]
  sm = summary["smoothers"]
  held = sm["held_out"]
  assert {"crbm_sampled", "raw_share", "base_rate", "track_pool", "low_rank"} <= set(held)
  assert set(held["dawid_skene"]) == {"not_applicable"}   # crowd off in the smoke config
  assert sm["strongest_baseline"] in held and sm["strongest_baseline"] != "crbm_sampled"
  entry = sm["recovery"]["all"]["missed_by_all"]
  assert "paired_vs_crbm" in entry and "track_pool" in entry["paired_vs_crbm"]
  assert set(sm["recovery"]) <= {"all", "track", "clip"}
  with open(summary["paths"]["smoothers_md"]) as fh:
    assert "Strongest baseline" in fh.read()


def test_baseline_autotagger_table_exact_small_case():
  nan = np.nan
  per_fold = np.full((2, 2, 2, 2), nan)          # [T, F, train (raw, smoothed), test]
  per_fold[:, :, 0, 0], per_fold[:, :, 1, 0] = 60.0, 64.0
  base = np.full((2, 2, 1), nan)
  base[0, :, 0], base[1, 0, 0] = 70.0, 50.0
  table = ae.baseline_table(per_fold, base, ["track_pool"])
  row = table["rows"]["track_pool"]
  assert row["mean"] == pytest.approx(60.0) and row["num_tags"] == 2
  d = np.array([6.0, -14.0])
  assert row["vs_crbm"]["mean"] == pytest.approx(d.mean())
  assert row["vs_crbm"]["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(2))
  assert row["vs_raw"]["mean"] == pytest.approx(0.0)
  assert "vs_crbm" not in table["rows"]["crbm_sampled"]
  assert "| track_pool |" in ae.baseline_markdown(table)


@pytest.mark.extended
def test_table3_trains_autotaggers_on_the_baseline_smoothers(smoke):
  _, out, _ = smoke
  table = out["datasets"]["simulated"]["smoothers"]["table3"]
  assert {"raw", "crbm_sampled", "track_pool"} <= set(table["rows"])
  assert "base_rate" in table["not_applicable"]       # the same affinity for every clip
  assert "dawid_skene" in table["not_applicable"]     # crowd off in the smoke config
  with open(out["datasets"]["simulated"]["paths"]["smoothers_md"]) as fh:
    assert "Autotaggers trained on each smoother's labels" in fh.read()


def test_padding_w_aux_to_a_common_size_changes_no_affinity():
  """``pad_num_aux(at_least=...)``: zero W_aux rows that no aux row names; the sampled
  (same key) and exact affinities are unchanged, and models with different entity counts
  get one shape (one compiled sampler for every sparsity draw)."""
  from crbm_jax.model import marginals
  from crbm_jax.model.crbm import CRBMParams
  from crbm_jax.paper import smoothing_model
  rng = np.random.default_rng(0)
  make = lambda a: CRBMParams(
      W=rng.normal(0, 0.5, (6, 3)).astype(np.float32), b=np.zeros(6, np.float32),
      c=np.zeros(3, np.float32), W_aux=rng.normal(0, 1, (a, 6)).astype(np.float32))
  small, large = make(7), make(600)
  padded = [smoothing_model.pad_num_aux(p, at_least=600) for p in (small, large)]
  assert [p.W_aux.shape for p in padded] == [(1024, 6), (1024, 6)]
  assert smoothing_model.pad_num_aux(small).W_aux.shape == (512, 6)
  rows = np.array([[0, 3], [2, -1], [6, 5]], np.int32)
  key = jax.random.key(3)
  for raw, pad in zip((small, large), padded):
    np.testing.assert_array_equal(
        marginals.smooth_affinities(key, raw, rows, num_samples=50, burn_in=5),
        marginals.smooth_affinities(key, pad, rows, num_samples=50, burn_in=5))
    np.testing.assert_allclose(marginals.exact_visible_marginals(raw, rows),
                               marginals.exact_visible_marginals(pad, rows), rtol=0, atol=0)
