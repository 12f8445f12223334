"""The validation criterion of a block of models: the balanced log pseudo-likelihood
(``make_block_evaluate``), the default ``make_evaluate`` of the engine, the search and the
block fits; ``split_evaluate`` is the same over the split axis. Below ``engine`` and
``block``, which both use it; it also names the models' and splits' vmap axes."""
from __future__ import annotations

import functools
from typing import Tuple

import jax
import jax.numpy as jnp

from crbm_jax.learn.base import Dataset, TrainConfig
from crbm_jax.model.crbm import CRBMParams, aux_bias
from crbm_jax.model.pseudolikelihood import balanced_log_pl
from crbm_jax.types import Array

AXIS = "models"        # the vmap axis of a block's models
SPLIT_AXIS = "splits"  # the vmap axis of cross-validation splits around a block


FORM_GROUP = 16  # models that share the pseudo-likelihood's exact form (make_block_evaluate)


def make_block_evaluate(config: TrainConfig, axis_name: str = AXIS,
                        outer_axes: Tuple[str, ...] = (), form_group: int = FORM_GROUP):
  """``evaluate(params, data) -> [M]`` balanced log PL of a block's models; W_a a of every
  observation for every model is gathered once, as whole [M·V] slices of W_aux [A, M, V].

  The exact form is chosen from max |W| over a group of ``form_group`` consecutive models
  (and over ``outer_axes``, names of vmapped axes around the block such as the split
  axis), so it stays one real branch; the groups are a ``lax.map``. One model with large
  weights then moves only its group onto the slower forms (one logarithm per factor is
  4.5x, softplus 14x the cost of the 16-factor product, measured on the simulated study's
  validation set), not the whole block. M not a multiple of ``form_group``: one group.
  """
  reduce_axes = (axis_name,) + tuple(outer_axes) if outer_axes else axis_name

  def evaluate_group(params: CRBMParams, bias: Array, data: Dataset) -> Array:
    pl = lambda p, b: balanced_log_pl(p, data, config.eval_chunk, reduce_axes, b)
    return jax.vmap(pl, in_axes=(0, 1), axis_name=axis_name)(params, bias)

  def evaluate(params: CRBMParams, data: Dataset) -> Array:
    bias = aux_bias(params.W_aux, data.aux)                                # [N, M, V]
    params = params._replace(W_aux=None)
    m = bias.shape[1]
    if form_group <= 0 or m <= form_group or m % form_group:
      return evaluate_group(params, bias, data)
    groups = m // form_group
    grouped = jax.tree.map(lambda x: x.reshape((groups, form_group) + x.shape[1:]), params)
    bias = jnp.moveaxis(bias.reshape(bias.shape[:1] + (groups, form_group) +
                                     bias.shape[2:]), 1, 0)                # [C, N, g, V]
    out = jax.lax.map(lambda xs: evaluate_group(xs[0], xs[1], data), (grouped, bias))
    return out.reshape(m)

  return evaluate


# The criterion of a block vmapped over the split axis (the form is chosen over both axes);
# one module-level object, so that compiled drivers cached on it are reused.
split_evaluate = functools.partial(make_block_evaluate, axis_name=AXIS,
                                   outer_axes=(SPLIT_AXIS,))
