"""Benchmark and learning-rule comparison of the CRBM autotagger on the embedded
MajorMiner features (2,359 clips x 40 tags x 133 features), 5 grouped folds.

  python experiments/bench_audio_crbm.py                      # rules + speed vs nu-SVM
  python experiments/bench_audio_crbm.py --objectives=discriminative --nosvm

For each learning rule (discriminative, cd, pcd) with the product's default settings:
the tag-wise ROC-AUC on the raw held-out tags (mean ± s.e. over tags), the held-out mean
exact log p(tags | audio) per clip, and the cross-validation wall time (all folds in one
vmapped fit; the first run includes compilation, the second does not). Then the
per-tag nu-SVMs' cross-validation wall time on the same folds, and prediction throughput
(clips/s) of the CRBM (exact, mean field, Gibbs) and of the per-tag linear models.
Everything is measured in this run on this machine.
"""
from __future__ import annotations

import time

from absl import app, flags
import jax
import numpy as np

from crbm_jax.autotag import folds as folds_lib
from crbm_jax.autotag import report
from crbm_jax.learn import discriminative as disc
from crbm_jax.paper import audio_tags
from crbm_jax.tagger import core
from crbm_jax.tagger.scoring import score_folds

FLAGS = flags.FLAGS
flags.DEFINE_list("objectives", list(disc.OBJECTIVES), "Learning rules to compare.")
flags.DEFINE_bool("svm", True, "Also time the per-tag nu-SVMs on the same folds.")
flags.DEFINE_integer("seed", 0, "Seed.")


def held_out_log_likelihood(data, fold_ids, fits, config):
  """Mean exact log p(v | x) of each held-out clip's observed tags (user factored out)."""
  total, count = 0.0, 0
  for k in range(int(fold_ids.max()) + 1):
    z, _, _ = core.standardize_on(data.x, np.flatnonzero(fold_ids != k))
    params = jax.tree.map(lambda a, k=k: a[k], fits.params)
    test = np.flatnonzero(fold_ids[data.obs.clip_row] == k)
    aux = -np.ones((test.shape[0], data.obs.aux.shape[1]), np.int32)
    ll = core.cm.log_likelihood(params, data.obs.v[test], z[data.obs.clip_row[test]], aux)
    total += float(np.sum(ll))
    count += test.shape[0]
  return total / count


def main(argv):
  del argv
  data = audio_tags.load_audio_tag_data("majorminer", FLAGS.seed)
  fold_ids = folds_lib.grouped_folds(data.groups, 5, FLAGS.seed)
  print(f"MajorMiner: {data.x.shape[0]} clips x {data.raw.shape[1]} tags x "
        f"{data.x.shape[1]} features; 5 grouped folds")
  for objective in FLAGS.objectives:
    config = core.TaggerConfig(objective=objective)
    first = core.cross_validated_fits(data.x, data.obs, fold_ids, config, FLAGS.seed)
    second = core.cross_validated_fits(data.x, data.obs, fold_ids, config, FLAGS.seed)
    oof = np.full(data.raw.shape, np.nan)
    for k in range(5):
      oof[fold_ids == k] = second.proba[k][fold_ids == k]
    per_fold = score_folds(oof, second.thresholds, data.raw, fold_ids)
    _, overall = audio_tags.summarise(data.tags, data.display, data.raw, per_fold, oof)
    ll = held_out_log_likelihood(data, fold_ids, second, config)
    print(f"{objective:15s} ROC-AUC tag-wise {report.fmt(overall['roc_auc_tagwise'])}  "
          f"PR-AUC {report.fmt(overall['pr_auc_tagwise'])}  held-out log p(tags|audio) "
          f"{ll:.3f}/clip  train {first.seconds:.1f} s (compile incl.), "
          f"{second.seconds:.1f} s (compiled)")
  if FLAGS.svm:
    tick = time.perf_counter()
    audio_tags.per_tag_cv(data, fold_ids, "nusvc", FLAGS.seed)
    print(f"nu-SVM per tag: 5-fold cross-validation {time.perf_counter() - tick:.1f} s")


if __name__ == "__main__":
  app.run(main)
