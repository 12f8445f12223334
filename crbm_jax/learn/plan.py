"""Memory planned before training: how many models train at once, and how many validation
rows are evaluated at once, so that a search or a fit stays within a byte budget.

The default ``crbm-fit`` search trains 96 + 32 models in one block, each with a dense
``W_aux`` [A, V] (entities x tags) that is held several times over during a round (the
training state, the best-epoch copy, the round's output while its input is alive, the
L1 catch-up for evaluation), and validates on all validation rows at once
(``aux_bias`` [N_val, M, V]). At a million rows that is far past any machine's memory.
``plan_search`` estimates the peak bytes of a search from its shapes alone, before
anything is allocated, and picks

* ``models_per_chunk``: the block is trained in chunks of at most this many models, one
  after the other (``search.run_search_chunked``), and only the best parameters of each chunk
  (its best conditioned and best unconditional model) are kept, on the host;
* ``eval_rows_per_chunk``: validation rows per evaluation chunk
  (``chunked_block_evaluate``, a ``make_evaluate`` factory of the S1 hook whose result
  equals ``block.make_block_evaluate``'s to float rounding);

preferring fewer model chunks (fewer compilations) and then more rows. When one model
with the smallest evaluation chunk does not fit, or an array would pass int32 indexing,
the plan says so in one line with the figure and what to change.

What chunking changes: the models of a block share minibatches and Gibbs noise
(``learn.block``) and keep the initial keys they have in the whole block, so without
successive halving a chunked search trains exactly the models of the unchunked one (to
float rounding) and selects the same one. Successive halving ranks the models *within*
a chunk (the chunks run one after the other), so with halving the set of models that
survive each rung can differ; the time budget is shared among the chunks.

The estimate (``estimate_bytes``) is a sum of named terms (``Plan.terms``); its
accuracy against measured peak RSS is a benchmark (``experiments/bench_scale.py``,
``docs/scaling.md``), not a unit test.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Callable, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

F32 = 4
INT32_MAX = 2 ** 31 - 1
# Copies of a model's W_aux alive at a round's peak: the state and the best-epoch copy,
# each in the round's input and output (no donation), plus the caught-up W_aux that the
# evaluation and the best-epoch update read.
W_AUX_COPIES = 5
# ... when the host driver trains in segments (a time budget, or a block's W_aux of at
# least ``engine.SEGMENT_MIN_ELEMENTS``): the segments donate the state and the evaluation
# its carry, so the state, the best-epoch copy and the caught-up W_aux.
W_AUX_COPIES_SEGMENTED = 3
# Copies of W (the state, its momentum, the best copy; input and output; one temporary).
W_COPIES = 7
# The Python interpreter, NumPy, JAX and XLA's compiled code, measured at ~0.45 GB RSS.
BASE_BYTES = 600 * 2 ** 20
# Fraction of the machine's memory a plan may use by default (deterministic: the total,
# not what happens to be free, so that the same command chunks the same way). A quarter:
# the machine is often shared (the 24 GB development machine runs three jobs at once), and
# past a few models per chunk a larger budget buys little time (docs/scaling.md).
DEFAULT_SHARE = 0.25
MIN_EVAL_ROWS = 256
SPARSE_TEST_ROWS = 4096  # select.CONTRIBUTION_ROWS: test rows made dense at a time
FORM_GROUP = 16  # block.FORM_GROUP (models that share the pseudo-likelihood's form)


class PlanError(ValueError):
  """Even one model does not fit the budget, or an array passes int32 indexing."""


class Plan(NamedTuple):
  """A memory plan (bytes). ``fits`` False: ``message`` says why in one line."""
  num_models: int
  models_per_chunk: int
  num_chunks: int
  eval_rows: int               # validation rows
  eval_rows_per_chunk: int
  peak_bytes: int              # estimated peak of the chosen plan
  unchunked_bytes: int         # estimated peak with every model and row at once
  budget_bytes: int
  fits: bool
  message: str
  terms: Dict[str, int]        # the estimate of the chosen plan, by term

  def describe(self) -> str:
    """One line for the log."""
    gb = lambda b: f"{b / 2 ** 30:.2f} GB"
    models = (f"{self.num_models} models in one block" if self.num_chunks == 1 else
              f"{self.num_models} models in {self.num_chunks} chunks of <= "
              f"{self.models_per_chunk}")
    rows = ("validation in one pass" if self.eval_rows_per_chunk >= self.eval_rows else
            f"validation in chunks of {self.eval_rows_per_chunk} of {self.eval_rows} rows")
    return (f"memory plan: {models}, {rows}; estimated peak {gb(self.peak_bytes)} of a "
            f"{gb(self.budget_bytes)} budget (all at once: {gb(self.unchunked_bytes)})")


def machine_memory_bytes() -> int:
  """Total memory: the smaller of the machine's (/proc/meminfo or sysconf) and the cgroup
  limit, if any."""
  total = None
  try:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    pass
  for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    try:
      with open(path) as f:
        text = f.read().strip()
      if text.isdigit() and int(text) > 0:
        total = int(text) if total is None else min(total, int(text))
    except OSError:
      continue
  return int(total) if total else 8 * 2 ** 30


def default_budget_bytes() -> int:
  """``DEFAULT_SHARE`` of the machine's memory."""
  return int(DEFAULT_SHARE * machine_memory_bytes())


def budget_from_gb(memory_gb: Optional[float]) -> int:
  """Bytes of a ``--memory_gb`` value (0 or None: the default share of RAM)."""
  if memory_gb is None or memory_gb == 0:
    return default_budget_bytes()
  if not (np.isfinite(memory_gb) and memory_gb > 0):
    raise PlanError(f"--memory_gb must be a positive number of GB (0 = {DEFAULT_SHARE:.0%} "
                    f"of RAM), got {memory_gb}")
  return int(memory_gb * 2 ** 30)


def estimate_bytes(models: int, num_rows: int, num_tags: int, num_hidden: int,
                   num_aux: int, batch_size: int, eval_rows_per_chunk: int, *,
                   num_val_rows: int, num_train_rows: int, num_groups: int = 3,
                   eval_chunk: int = 64,
                   num_test_rows: Optional[int] = None,
                   max_tags: Optional[int] = None) -> Dict[str, int]:
  """Peak bytes of a search, by term, from its shapes (nothing is allocated).

  Args:
    models: models trained at once; num_rows: all observations (train + val + test);
    num_tags: V; num_hidden: H (the block's largest); num_aux: A (W_aux rows);
    eval_rows_per_chunk: validation rows evaluated at once.
    max_tags: K, the most tags of an observation, when the observations are kept sparse
      (CSR on the host, padded indices [N, K] on the device); None: dense.
  """
  from crbm_jax.learn.engine import SEGMENT_MIN_ELEMENTS  # pylint: disable=import-outside-toplevel
  m, n, v, h, a, b = models, num_rows, num_tags, num_hidden, num_aux, batch_size
  n_test = (int(round(0.2 * n)) if num_test_rows is None else int(num_test_rows))
  r = min(eval_rows_per_chunk, max(num_val_rows, 1))
  copies = W_AUX_COPIES_SEGMENTED if m * a * v >= SEGMENT_MIN_ELEMENTS else W_AUX_COPIES
  padded = num_train_rows if num_train_rows % b else 0
  g = max(num_groups, 1)
  form = m if (m <= FORM_GROUP or m % FORM_GROUP) else FORM_GROUP
  c = min(eval_chunk, r)
  # a row of the Datasets' v: dense float32 [V], or K padded int32 tag indices
  row = v if max_tags is None else max_tags
  return {
      "base": BASE_BYTES,
      # Host observations (uint8 X, or for sparse ones only the CSR of the counts, at
      # most K a row: indices, counts and the per-row pointer) and the Datasets (v, int32
      # aux, weight) of train, the validation rows searched and test, plus the padded
      # copy of train (when its rows are not a multiple of the batch).
      "data": (n * v if max_tags is None else n * (2 * max_tags * F32 + 8))
              + (num_train_rows + num_val_rows + n_test) * (row + g + 1) * F32
              + padded * row * F32,
      "w_aux": m * copies * a * v * F32,
      "w": m * W_COPIES * (v * h + v + h) * F32 + m * 2 * a * F32,
      # A minibatch: touched rows [B*G, M, V] (gathered, new, gradient), visible and
      # hidden activations and samples of every model.
      "step": m * (3 * b * g * v + 8 * b * (v + h)) * F32,
      # Validation: W_a a of a chunk [r, M, V] (and its padded view), and the flip
      # deltas [c, V, H] of a form group of models.
      "eval": (2 * r * m * v + 3 * form * c * v * h) * F32 + 2 * num_val_rows * row * F32,
      # After the search (not at the same time as the terms above): the per-bit
      # pseudo-likelihood of the test rows [N_test, V] of the chosen CRBM, the best
      # unconditional model and the factored baseline (the training figure is fused);
      # for sparse observations, of a chunk of test rows at a time.
      "final": 3 * (n_test if max_tags is None else min(n_test, SPARSE_TEST_ROWS))
               * v * F32,
  }


def total_bytes(terms: Dict[str, int]) -> int:
  """The peak of an ``estimate_bytes`` breakdown: the search's terms and the final
  evaluation are not alive at once."""
  search_terms = sum(x for k, x in terms.items() if k not in ("base", "data", "final"))
  return terms["base"] + terms["data"] + max(search_terms, terms["final"])


def _largest_elements(models: int, num_rows: int, num_tags: int, num_aux: int,
                      eval_rows: int, max_tags: Optional[int] = None) -> tuple:
  observations = (("the observations (rows x tags)", num_rows * num_tags)
                  if max_tags is None else
                  ("the sparse observations (rows x most tags of a row)",
                   num_rows * max_tags))
  arrays = {"W_aux of the block (entities x models x tags)": num_aux * models * num_tags,
            observations[0]: observations[1],
            "a validation chunk's aux bias (rows x models x tags)": eval_rows * models
            * num_tags}
  name = max(arrays, key=arrays.get)
  return name, arrays[name]


def plan_search(num_models: int, num_rows: int, num_tags: int, num_hidden: int,
                num_aux: int, batch_size: int, budget_bytes: int, *,
                num_val_rows: Optional[int] = None, num_train_rows: Optional[int] = None,
                num_groups: int = 3, eval_chunk: int = 64,
                chunk_rows: bool = True, num_test_rows: Optional[int] = None,
                max_tags: Optional[int] = None) -> Plan:
  """The plan with the fewest model chunks, then the most rows per validation chunk,
  whose estimate fits ``budget_bytes`` (module docstring).

  ``chunk_rows`` False: the validation criterion cannot be split by rows (a custom
  ``make_evaluate``), so only the models are chunked. ``max_tags``: the observations
  are sparse, at most this many tags a row (``estimate_bytes``).
  """
  n_val = int(round(0.2 * num_rows)) if num_val_rows is None else int(num_val_rows)
  n_train = int(round(0.6 * num_rows)) if num_train_rows is None else int(num_train_rows)
  kw = dict(num_val_rows=n_val, num_train_rows=n_train, num_groups=num_groups,
            eval_chunk=eval_chunk, num_test_rows=num_test_rows, max_tags=max_tags)
  shape = (num_rows, num_tags, num_hidden, num_aux, batch_size)
  total = lambda m, r: total_bytes(estimate_bytes(m, *shape, r, **kw))
  unchunked = total(num_models, n_val)
  floor = min(n_val, max(MIN_EVAL_ROWS, eval_chunk)) if chunk_rows else n_val
  rows_options = [n_val]
  while chunk_rows and rows_options[-1] > floor:
    rows_options.append(max(floor, rows_options[-1] // 2))
  rows_options = [max(r, 1) for r in rows_options]
  seen = set()
  for k in range(1, num_models + 1):
    m = math.ceil(num_models / k)
    if m in seen:
      continue
    seen.add(m)
    for r in rows_options:
      if _largest_elements(m, num_rows, num_tags, num_aux, r, max_tags)[1] > INT32_MAX:
        continue
      peak = total(m, r)
      if peak <= budget_bytes:
        chunks = math.ceil(num_models / m)
        m = math.ceil(num_models / chunks)  # balanced chunks
        return Plan(num_models, m, chunks, n_val, r, total(m, r), unchunked,
                    int(budget_bytes), True, "", estimate_bytes(m, *shape, r, **kw))
  r = rows_options[-1]
  terms = estimate_bytes(1, *shape, r, **kw)
  gb = lambda x: f"{x / 2 ** 30:.1f} GB"
  name, elements = _largest_elements(1, num_rows, num_tags, num_aux, r, max_tags)
  if elements > INT32_MAX:
    why = (f"{name} has {elements:,} elements, past int32 indexing ({INT32_MAX:,})")
  else:
    why = (f"even one model needs about {gb(total_bytes(terms))} (W_aux {num_aux:,} "
           f"entities x {num_tags:,} tags: {gb(terms['w_aux'])}; data "
           f"{gb(terms['data'])}) > the budget of {gb(budget_bytes)}")
  message = (f"{why}; keep fewer tags (--top_tags), drop rare tags and entities "
             f"(--min_users), use fewer auxiliary groups (--aux) or hidden units, or raise "
             f"--memory_gb")
  return Plan(num_models, 1, num_models, n_val, r, total_bytes(terms), unchunked,
              int(budget_bytes), False, message, terms)


# -- the validation criterion in row chunks (S1 hook) -----------------------------------

def chunked_block_evaluate(config, rows_per_chunk: int, axis_name: str = "models",
                           form_group: int = FORM_GROUP):
  """``make_evaluate`` factory: ``block.make_block_evaluate``'s balanced log PL of a
  block's models, computed ``rows_per_chunk`` validation rows at a time (the aux bias
  [rows, M, V] of one chunk only). The 1-bit and 0-bit sums add over chunks, and the
  exact form depends only on the weights, so the result equals the one-pass figure to
  float rounding. Hashable as ``functools.partial(chunked_block_evaluate,
  rows_per_chunk=R)``."""
  from crbm_jax.learn.base import Dataset  # pylint: disable=import-outside-toplevel
  from crbm_jax.model.crbm import aux_bias  # pylint: disable=import-outside-toplevel
  from crbm_jax.model import pseudolikelihood as pl  # pylint: disable=import-outside-toplevel

  def group_sums(params, bias, data):
    f = lambda p, b: pl.balanced_log_pl_sums(p, data, config.eval_chunk, axis_name, b)
    return jax.vmap(f, in_axes=(0, 1), axis_name=axis_name)(params, bias)   # [m, 4]

  def evaluate(params, data):
    w_aux = params.W_aux
    params = params._replace(W_aux=None)
    m = params.b.shape[0]
    rows = max(1, min(int(rows_per_chunk), data.v.shape[0]))
    v, weight = pl.chunk_rows(data.v, rows), pl.chunk_rows(data.weight, rows)
    aux = pl.chunk_rows(data.aux, rows, -1)
    grouped = not (form_group <= 0 or m <= form_group or m % form_group)
    groups = m // form_group if grouped else 1

    def chunk_sums(total, xs):
      vc, ac, wc = xs
      d = Dataset(vc, ac, wc)
      bias = aux_bias(w_aux, ac)                                        # [r, M, V]
      if not grouped:
        return total + group_sums(params, bias, d), None
      gp = jax.tree.map(lambda x: x.reshape((groups, form_group) + x.shape[1:]), params)
      gb = jnp.moveaxis(bias.reshape(bias.shape[:1] + (groups, form_group)
                                     + bias.shape[2:]), 1, 0)           # [C, r, g, V]
      out = jax.lax.map(lambda xs: group_sums(xs[0], xs[1], d), (gp, gb))
      return total + out.reshape((m, 4)), None

    total, _ = jax.lax.scan(chunk_sums, jnp.zeros((m, 4), jnp.float32), (v, aux, weight))
    return pl.balanced_from_sums(total)

  return evaluate


def make_evaluate_for(plan: Plan, default: Callable) -> Callable:
  """The factory a fit should use: ``default`` when validation is one pass, else the
  row-chunked one."""
  if plan.eval_rows_per_chunk >= plan.eval_rows:
    return default
  return functools.partial(chunked_block_evaluate, rows_per_chunk=plan.eval_rows_per_chunk)


# -- the search in chunks of models -----------------------------------------------------
