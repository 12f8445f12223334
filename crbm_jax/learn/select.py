"""Choosing a model on validation and comparing it honestly on test.

``fit_and_compare`` is what ``crbm-fit`` and ``crbm-smooth`` (when it trains) run:

1. a validation search (``search.select_model``: one vectorised block per batch size, with
   per-model early stopping and successive halving) over the conditioned models, and, in
   the same blocks, unconditional models (every auxiliary group masked off) over the
   hyperparameters that matter to them;
2. the test split is touched once, after selection: the test pseudo-likelihood of the
   selected conditioned model, of the best unconditional model and of the factored
   baseline, with paired differences and their standard errors over test observations.

The paper's figure, the balanced log PL, is a sum of per-observation contributions
``c_i = ½ Σ_{j: v_ij=1} log p_ij / N₁ + ½ Σ_{j: v_ij=0} log p_ij / N₀`` (N₁, N₀ the 1 and 0
bits of the split), so a difference of two models is ``Σ_i d_i`` and its standard error
``√n · sd(d)`` (observations independent, N₁ and N₀ fixed).
"""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional

import jax
import numpy as np

from crbm_jax.learn import search
from crbm_jax.learn.base import Dataset, TrainConfig
from crbm_jax.learn.block import make_block_evaluate
from crbm_jax.learn.learner import cd
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.model.pseudolikelihood import (FactoredModel, factored_baseline,
                                              factored_log_likelihood, fit_factored,
                                              pseudo_log_likelihood)
from crbm_jax.model.sparse_rows import column_sums, is_sparse, scatter_dense
from crbm_jax.types import PRNGKey

_pll = jax.jit(pseudo_log_likelihood, static_argnames=("chunk_size",))


def contributions(per_bit: np.ndarray, v: np.ndarray) -> np.ndarray:
  """[N] each observation's share of the balanced log PL (they sum to it)."""
  per_bit, ones = np.asarray(per_bit, np.float64), np.asarray(v) > 0
  n1, n0 = max(ones.sum(), 1), max((~ones).sum(), 1)
  return 0.5 * (per_bit * ones).sum(1) / n1 + 0.5 * (per_bit * ~ones).sum(1) / n0


def paired(a: np.ndarray, b: np.ndarray) -> dict:
  """The difference of two balanced PLs from their contributions, with its s.e."""
  d = np.asarray(a) - np.asarray(b)
  n = len(d)
  se = float(np.sqrt(n) * d.std(ddof=1)) if n > 1 else float("nan")
  return {"difference": float(d.sum()), "stderr": se}


def model_per_bit(params: CRBMParams, data: Dataset, chunk_size: int = 64) -> np.ndarray:
  return np.asarray(_pll(params, data.v, data.aux, chunk_size=chunk_size))


# rows made dense at a time for the test comparison of a sparse Dataset
CONTRIBUTION_ROWS = 4096


def sparse_contributions(per_bit_fns: Dict[str, Callable], data: Dataset,
                         rows: int = CONTRIBUTION_ROWS) -> Dict[str, np.ndarray]:
  """``contributions`` of each ``per_bit_fns[name](v, aux) -> [n, V]`` on a Dataset whose
  ``v`` is a SparseRows, ``rows`` observations made dense at a time (the last chunk
  padded to the same shape, so each function compiles once): the [N, V] per-bit values
  are never held. The 1 and 0 bit counts of the whole split divide the sums, as in
  ``contributions``."""
  n, num_tags = data.v.shape
  indices = np.asarray(data.v.indices)
  aux = np.asarray(data.aux)
  rows = max(1, min(int(rows), n))
  sums = {k: np.zeros((n, 2)) for k in per_bit_fns}
  for a in range(0, n, rows):
    b = min(a + rows, n)
    idx = np.full((rows, indices.shape[1]), num_tags, np.int32)
    ax = np.full((rows, aux.shape[1]), -1, np.int32)
    idx[:b - a], ax[:b - a] = indices[a:b], aux[a:b]
    v = scatter_dense(idx, num_tags)
    ones = np.asarray(v, bool)[:b - a]
    for k, fn in per_bit_fns.items():
      per_bit = np.asarray(fn(v, ax), np.float64)[:b - a]
      sums[k][a:b, 0] = (per_bit * ones).sum(1)
      sums[k][a:b, 1] = (per_bit * ~ones).sum(1)
  n1 = max(int((indices < num_tags).sum()), 1)
  n0 = max(n * num_tags - int((indices < num_tags).sum()), 1)
  return {k: 0.5 * s[:, 0] / n1 + 0.5 * s[:, 1] / n0 for k, s in sums.items()}


def _baseline_model(train: Dataset):
  """The factored baseline fitted (add-one) on ``train`` (dense or sparse v)."""
  if not is_sparse(train.v):
    return fit_factored(train.v)
  n = train.v.shape[0]
  p = (column_sums(np.ones(n, np.float32), train.v) + 1.0) / (n + 2.0)
  return FactoredModel(jax.numpy.log(p), jax.numpy.log1p(-p))


class Comparison(NamedTuple):
  selected: object                          # search.Selection (the conditioned models)
  unconditional: Optional[dict]             # best unconditional row of the table
  unconditional_params: Optional[CRBMParams]
  test: Dict[str, float]                    # test balanced PL: crbm, unconditional, baseline
  val: Dict[str, float]
  differences: Dict[str, dict]              # paired differences with s.e. on test
  table: List[dict]                         # the whole search table
  curve: dict                               # the selected model's learning curve


def learning_curve(selection: search.Selection, row: dict) -> dict:
  """Epoch-wise reconstruction error and evaluation-wise validation PL of one row."""
  result, j = search.row_index(selection.results, row)
  epochs = int(result.epochs[j])
  recon = result.recon_history[j][:epochs]
  evals = result.eval_epochs
  val = result.val_history[j]
  keep = np.isfinite(val)
  return {"recon_error": [float(x) for x in recon],
          "eval_epoch": [int(e) for e in evals[keep]],
          "val_pl": [float(x) for x in val[keep]],
          "best_epoch": int(result.best_epoch[j]), "stopped": result.reason[j],
          "epochs": epochs}


def fit_and_compare(rng_key: PRNGKey, train: Dataset, val: Dataset, test: Dataset,
                    num_aux: int, space: search.SearchSpace, *,
                    rule: search.StopRule = search.StopRule(), num_configs: Optional[int] = 96,
                    seconds: Optional[float] = None,
                    halving: Optional[search.Halving] = search.Halving(),
                    base: Optional[TrainConfig] = None, compare_unconditional: bool = True,
                    seed: int = 0, progress=None,
                    compact: Optional[bool] = None,
                    make_evaluate: Callable = make_block_evaluate,
                    learner: Callable = cd,
                    models_per_chunk: Optional[int] = None) -> Comparison:
  """Search, select on validation, then evaluate once on test (module docstring).

  With ``compare_unconditional`` and auxiliary groups present, unconditional models
  (``search.unconditional_space``; a third as many configurations) join the same search.
  ``make_evaluate``: the validation criterion (``search.compiled_search``); the test
  comparison stays pseudo-likelihood. ``learner``: the learner factory of every model.
  """
  has_aux = train.aux.shape[-1] > 0
  spaces = [space._replace(conditioned=(True,))]
  counts = [num_configs]
  if has_aux and compare_unconditional:
    spaces.append(search.unconditional_space(space))
    counts.append(None if num_configs is None else max(num_configs // 3, 1))
  configs: list = []
  for i, (sp, k) in enumerate(zip(spaces, counts)):
    configs.extend(search.sample_points(sp, k, seed + i))
  selection = search.select_model(rng_key, train, val, num_aux, space, rule=rule,
                                  configs=configs, seconds=seconds, halving=halving,
                                  base=base, progress=progress, compact=compact,
                                  make_evaluate=make_evaluate, learner=learner,
                                  models_per_chunk=models_per_chunk)
  table = selection.table
  uncond = [r for r in table if not r["conditioned"] and np.isfinite(r["best_val_pl"])
            and r["best_epoch"] >= 0]
  best_uncond = max(uncond, key=lambda r: r["best_val_pl"]) if uncond else None
  uparams = search.row_params(selection.results, best_uncond) if best_uncond is not None else None

  # The test split, once, after selection.
  chunk = (base or TrainConfig()).eval_chunk
  if is_sparse(test.v) or is_sparse(train.v):
    contrib, val_base = _sparse_comparison(selection.params, uparams, train, val, test,
                                           chunk)
  else:
    contrib, val_base = _dense_comparison(selection.params, uparams, train, val, test,
                                          chunk)
  test_pl = {k: float(c.sum()) for k, c in contrib.items()}
  diffs = {"crbm_minus_baseline": paired(contrib["crbm"], contrib["baseline"])}
  if "unconditional" in contrib:
    diffs["crbm_minus_unconditional"] = paired(contrib["crbm"], contrib["unconditional"])
    diffs["unconditional_minus_baseline"] = paired(contrib["unconditional"],
                                                   contrib["baseline"])
  val_pl = {"crbm": selection.val_pl, "baseline": float(val_base)}
  if best_uncond is not None:
    val_pl["unconditional"] = best_uncond["best_val_pl"]
  row = dict(selection.config, best_val_pl=selection.val_pl)
  return Comparison(selection, best_uncond, uparams, test_pl, val_pl, diffs, table,
                    learning_curve(selection, row))


def _dense_comparison(params, uparams, train, val, test, chunk):
  """(test contributions per model, the baseline's validation PL) of dense Datasets."""
  per_bit = {"crbm": model_per_bit(params, test, chunk),
             "baseline": np.asarray(factored_baseline(train.v, test.v))}
  if uparams is not None:
    per_bit["unconditional"] = model_per_bit(uparams, test, chunk)
  contrib = {k: contributions(p, np.asarray(test.v)) for k, p in per_bit.items()}
  val_base = contributions(np.asarray(factored_baseline(train.v, val.v)),
                           np.asarray(val.v)).sum()
  return contrib, val_base


def _sparse_comparison(params, uparams, train, val, test, chunk):
  """``_dense_comparison`` with the rows made dense a chunk at a time
  (``sparse_contributions``)."""
  as_sparse = lambda d: d if is_sparse(d.v) else d._replace(v=_to_sparse(d.v))
  train, val, test = as_sparse(train), as_sparse(val), as_sparse(test)
  base = _baseline_model(train)
  baseline = lambda v, aux: factored_log_likelihood(base, v)
  fns = {"crbm": lambda v, aux: _pll(params, v, aux, chunk_size=chunk),
         "baseline": baseline}
  if uparams is not None:
    fns["unconditional"] = lambda v, aux: _pll(uparams, v, aux, chunk_size=chunk)
  contrib = sparse_contributions(fns, test)
  val_base = sparse_contributions({"baseline": baseline}, val)["baseline"].sum()
  return contrib, val_base


def _to_sparse(v):
  from crbm_jax.model.sparse_rows import from_csr  # pylint: disable=import-outside-toplevel
  x = np.asarray(v) > 0
  return from_csr(np.concatenate([[0], np.cumsum(x.sum(1))]), np.nonzero(x)[1],
                  x.shape[1])


def search_models(space, num_configs: Optional[int], has_aux: bool, seed: int = 0) -> int:
  """How many models ``select.fit_and_compare`` trains (conditioned + unconditional)."""
  n = len(search.sample_points(space._replace(conditioned=(True,)), num_configs, seed))
  if has_aux:
    k = None if num_configs is None else max(num_configs // 3, 1)
    n += len(search.sample_points(search.unconditional_space(space), k, seed + 1))
  return n
