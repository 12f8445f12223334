"""The one fold x tag loop of the autotaggers' cross-validation (no JAX).

Table 3's protocol (``protocol.score_autotaggers``) and the product's cross-validation
(``training.cross_validate``) both run ``fold_tag_loop``: for each fold f (the clips with
``fold_ids == f`` held out) an optional per-fold preparation (e.g. standardising the
features on the training folds), then for each tag a scoring call, with one progress step
per (fold, tag). ``examples`` is the balanced example selection both use, with the
skip rule (fewer than ``least`` examples per class).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
from threadpoolctl import threadpool_limits

from crbm_jax.autotag import svm
from crbm_jax.util.progress import Progress


class Fold(NamedTuple):
  """One cross-validation fold: its index and [C] bool masks of the clips."""
  index: int
  train: np.ndarray
  test: np.ndarray


def one_blas_thread():
  """A context in which BLAS runs on one thread. Per-tag fits make many small BLAS calls
  (the Platt fit's dot products), and OpenBLAS's idle threads spin between them: Table
  3's fold x tag loop took 46 CPU-seconds for 23 s of work, and the spinning took the
  other core from the processes running beside it. The calls are too small to gain from
  threads; their results are the same."""
  return threadpool_limits(limits=1, user_api="blas")


def fold_tag_loop(fold_ids: np.ndarray, num_folds: int, num_tags: int,
                  score: Callable[[Fold, int, Any], None], *,
                  prepare: Optional[Callable[[Fold], Any]] = None, progress: bool = True,
                  label: str = "cross-validation") -> None:
  """Calls ``score(fold, t, prepared)`` for every fold and tag position t in
  range(num_tags), where ``prepared = prepare(fold)`` (once per fold; None without
  ``prepare``). Folds in order, tags in order within a fold, BLAS on one thread
  (``one_blas_thread``)."""
  bar = Progress(num_folds * num_tags, label, "(fold, tag)",
                 stream=sys.stderr if progress else None)
  with one_blas_thread():
    for f in range(num_folds):
      fold = Fold(f, fold_ids != f, fold_ids == f)
      prepared = prepare(fold) if prepare is not None else None
      for t in range(num_tags):
        score(fold, t, prepared)
        bar.update(1)
  bar.close()


def examples(values: np.ndarray, mask: np.ndarray, kind: svm.Kind, per_class: int,
             min_verified: int, seed_words, least: int):
  """(pos, neg) clip indices chosen by ``svm.select_examples`` among ``mask`` with
  ``np.random.default_rng(seed_words)``, or None when there are fewer than ``least``
  per class (the selection is skipped)."""
  rng = np.random.default_rng(seed_words)
  pos, neg = svm.select_examples(values, mask, kind, per_class, min_verified, rng)
  return None if pos.shape[0] < least else (pos, neg)
