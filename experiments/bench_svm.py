"""Table 3's SVM scoring: ``svm.PlattSVM`` against scikit-learn's ``CalibratedClassifierCV``.

    PYTHONPATH=$PWD python experiments/bench_svm.py [--keep 0.5] [--repeats 3]

One sparsity scoring unit (``paper.sparsity.score_unit``) on the embedded MajorMiner clips
thinned at ``--keep``: 40 tags x 5 folds, raw / low-rank-smoothed / the two baseline
smoothers' labels, 800 calibrated SVMs. Each repeat scores the unit three times in this
process, in a rotating order: ``fit_tag_svm`` as it is ('fast': ``svm.LinearNuSVM``, BLAS
on one thread in the loop); 'nusvc': the same with scikit-learn's ``NuSVC`` objects (the
code of 4dec41d-b687b2d); 'before': the meta-estimator and BLAS's own threads (the code
before 4dec41d). Prints wall and CPU seconds of each, their medians and the paired ratios,
and whether the scorings are equal (they must be, bit for bit).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import NuSVC

from crbm_jax.autotag import crossval, svm
from crbm_jax.configs import reproduce as reproduce_config
from crbm_jax.paper import sparsity


def _meta_estimator(x_pos, x_neg, nu=0.5, seed=0, max_calibration_folds=5):
  """The earlier ``fit_tag_svm``: the fitted meta-estimator."""
  x = np.concatenate([x_pos, x_neg]).astype(np.float64)
  y = np.concatenate([np.ones(x_pos.shape[0]), np.zeros(x_neg.shape[0])]).astype(int)
  cv = StratifiedKFold(min(max_calibration_folds, x_pos.shape[0], x_neg.shape[0]),
                       shuffle=True, random_state=seed)
  return CalibratedClassifierCV(NuSVC(kernel="linear", nu=nu), method="sigmoid", cv=cv,
                                ensemble=False).fit(x, y)


@contextlib.contextmanager
def _nusvc():
  """The fast path with scikit-learn's NuSVC objects instead of ``svm.LinearNuSVM``."""
  impl = list(svm._svm_impl)  # pylint: disable=protected-access
  svm._svm_impl[:] = [lambda x, y, nu: NuSVC(kernel="linear", nu=nu).fit(x, y)]  # pylint: disable=protected-access
  try:
    yield
  finally:
    svm._svm_impl[:] = impl  # pylint: disable=protected-access


@contextlib.contextmanager
def _before():
  """The code before: the meta-estimator, and BLAS with its own threads in the loop."""
  fit, limit = svm.fit_tag_svm, crossval.one_blas_thread
  svm.fit_tag_svm, crossval.one_blas_thread = _meta_estimator, contextlib.nullcontext
  try:
    yield
  finally:
    svm.fit_tag_svm, crossval.one_blas_thread = fit, limit


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--keep", type=float, default=0.5)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args(argv)
  config = reproduce_config.get_config("default").table3
  inputs = sparsity.load_inputs(config)
  thinned = sparsity.thin_table(inputs.table, args.keep,
                                np.random.default_rng([0, 0, int(args.keep * 1000)]))
  raw = sparsity.counts_matrix(thinned, inputs.clips, inputs.vocab)
  base, _ = sparsity.baseline_labels(inputs, thinned, config, ("track_pool", "low_rank"))
  unit = (inputs.features, raw, base["low_rank"], inputs.full_raw, inputs.fold_ids,
          inputs.tags, sparsity._protocol_settings(config), base)  # pylint: disable=protected-access

  arms = {"fast": contextlib.nullcontext, "nusvc": _nusvc, "before": _before}

  def timed(arm: str):
    with arms[arm]():
      wall, cpu = time.perf_counter(), time.process_time()
      out = sparsity.score_unit(*unit)
      return (time.perf_counter() - wall, time.process_time() - cpu,
              np.concatenate([o.ravel() for o in out]))

  svm.fit_tag_svm(np.eye(4)[:2] + 1.0, np.eye(4)[2:])  # LibSVM binding checked first
  rows, equal, names = [], True, list(arms)
  for r in range(args.repeats):
    got = {a: timed(a) for a in names[r % 3:] + names[:r % 3]}
    equal &= all(np.array_equal(got["fast"][2], got[a][2], equal_nan=True) for a in got)
    rows.append({f"{a}_{k}": got[a][i] for a in names for i, k in ((0, "wall"), (1, "cpu"))})
    print(json.dumps({k: round(v, 2) for k, v in rows[-1].items()}), flush=True)
  med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
  ratio = lambda a, b: [round(r[a] / r[b], 2) for r in rows]
  print(json.dumps(dict(
      svms=int(len(inputs.tags) * int(config.table3.num_folds) * 4),
      fast_path_is_linear_nusvm=svm._linear_nusvm() is svm.LinearNuSVM,  # pylint: disable=protected-access
      median={k: round(v, 2) for k, v in med.items()},
      wall_ratio_before_over_fast=ratio("before_wall", "fast_wall"),
      cpu_ratio_before_over_fast=ratio("before_cpu", "fast_cpu"),
      wall_ratio_nusvc_over_fast=ratio("nusvc_wall", "fast_wall"),
      cpu_ratio_nusvc_over_fast=ratio("nusvc_cpu", "fast_cpu"),
      equal_scores=equal), indent=1))
  return 0 if equal else 1


if __name__ == "__main__":
  sys.exit(main())
