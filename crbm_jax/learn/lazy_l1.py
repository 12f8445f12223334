"""SGD on the auxiliary biases W_aux with an exact, lazily applied L1 prox.

``W_aux`` follows plain SGD followed by the L1 proximal step (soft-threshold by the W_aux
step size x l1), which produces exact zeros. Applying the prox to every row at every step
costs O(num_aux x V) per minibatch; instead only the rows a minibatch touches are updated,
in one gather and one scatter, after first applying the soft-thresholds they missed since
they were last touched. This is exact because soft-thresholds compose additively,
S_s(S_t(x)) = S_{s+t}(x), and an untouched row's plain-SGD update is the prox alone; a
running sum of the thresholds (``L1State.total``) and the value of that sum when each row
was last brought up to date (``L1State.applied``) make it exact under any learning-rate
schedule. The touched rows are caught up BEFORE the visible bias is computed, so the
step sees the parameters the dense prox would have given it.

One implementation serves one model (``W_aux`` [A, V]) and a block of models trained on
shared minibatches (``W_aux`` [A, M, V]: an entity's row for all M models is one
contiguous slice). The distinct rows of a minibatch are found once, with each entry's slot
and weight; the weights are 1 for an ordinary aux column and the kernel weights for the
distance-aware clip model, whose clip term mixes the rows of a track's clips
(``AuxInput``). The auxiliary bias and the rows' gradient are a gather and a segment sum
for one model, and single [B, U] x [U, M·V] matmuls with a weighted selection matrix for
a block (what is cheapest on a CPU for each). A per-model group mask [*M, G] zeroes a
model's masked groups, whose rows then stay exactly 0.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.types import Array


class L1State(NamedTuple):
  """Lazy-prox bookkeeping.

  total: [*M] Σ over steps of the W_aux step size x l1 so far.
  applied: [A, *M] ``total`` when each row was last brought up to date.
  """
  total: Array
  applied: Array


class AuxInput(NamedTuple):
  """How the observations of a minibatch use W_aux rows.

  rows: [B, K] int row indices (-1 = absent); weight: [B, K] the weight of each entry in
  W_a a; group: [K] int (host constant) the auxiliary group of each column.
  """
  rows: Array
  weight: Array
  group: Array


class TouchedRows(NamedTuple):
  """The distinct rows a minibatch touches, caught up on the prox.

  rows: [U] (unused slots hold num_aux, out of range: they read 0 and are never written);
  inverse: [B, K] the slot in ``rows`` of each entry; weight: [B, K] each entry's weight;
  group: [K] each column's group; row_group: [U] the group of each row; current:
  [U, *M, V] the rows with every pending soft-threshold applied; select: [B, U] the
  weight of row u in observation b's W_a a, for the block layout's matmuls (None for one
  model, which gathers and segment-sums instead).
  """
  rows: Array
  inverse: Array
  weight: Array
  group: Array
  row_group: Array
  current: Array
  select: Optional[Array]


def soft_threshold(x: Array, t: Array) -> Array:
  """Proximal operator of t·|x|: sign(x)·max(|x| - t, 0) (exact zeros)."""
  return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0)


def init_l1(num_aux: int, model_shape: Tuple[int, ...] = (), dtype=jnp.float32) -> L1State:
  return L1State(jnp.zeros(model_shape, dtype), jnp.zeros((num_aux,) + model_shape, dtype))


def plain_input(aux: Array) -> AuxInput:
  """The AuxInput of ordinary aux columns [B, G] (weight 1 where present)."""
  return AuxInput(aux, (aux >= 0).astype(jnp.float32), np.arange(aux.shape[-1]))


def touch(W_aux: Array, l1: L1State, inputs: AuxInput) -> TouchedRows:
  """The distinct rows ``inputs`` use, brought up to date before use.

  Requires each group to own its block of rows (``make_dataset`` checks it), so that a
  row's group is well defined.
  """
  num_aux = W_aux.shape[0]
  flat = jnp.where(inputs.rows >= 0, inputs.rows, num_aux).reshape(-1)      # [B*K]
  rows, inverse = jnp.unique(flat, size=flat.shape[0], fill_value=num_aux,
                             return_inverse=True)
  inverse = inverse.reshape(inputs.rows.shape)
  group = jnp.asarray(inputs.group, jnp.int32)
  row_group = jnp.zeros(rows.shape, jnp.int32).at[inverse.reshape(-1)].set(
      jnp.broadcast_to(group, inputs.rows.shape).reshape(-1))
  current = W_aux.at[rows].get(mode="fill", fill_value=0.0)                 # [U, *M, V]
  pending = l1.total - l1.applied.at[rows].get(mode="fill", fill_value=0.0)  # [U, *M]
  weight = inputs.weight.astype(W_aux.dtype)
  select = None
  if W_aux.ndim > 2:  # block layout: once per step, for the bias and the gradient
    one_hot = jax.nn.one_hot(inverse, rows.shape[0], dtype=weight.dtype)
    select = jnp.sum(weight[..., None] * one_hot, axis=1)
  return TouchedRows(rows, inverse, weight, group, row_group,
                     soft_threshold(current, pending[..., None]), select)


def _row_mask(touched: TouchedRows, group_mask: Array) -> Array:
  """[U, *M, 1]: each model's group mask at each touched row."""
  return jnp.moveaxis(group_mask[..., touched.row_group], -1, 0)[..., None]


def _matmul_rows(lhs: Array, rows: Array) -> Array:
  """lhs [P, U] x rows [U, *M, V] -> [P, *M, V], as one [P, U] x [U, M·V] matmul."""
  return (lhs @ rows.reshape(rows.shape[0], -1)).reshape(lhs.shape[:1] + rows.shape[1:])


def touched_bias(touched: TouchedRows, group_mask: Array) -> Array:
  """``W_a a`` of each observation for each model, masked groups left out: [B, *M, V].

  On a CPU, for one model a weighted gather of each entry's row (B·K·V elements) is
  cheapest; for a block, one [B, U] x [U, M·V] matmul with the selection matrix (the group
  masks applied to the rows) beats gathering B·K·M·V elements.
  """
  if touched.select is not None:
    return _matmul_rows(touched.select, touched.current * _row_mask(touched, group_mask))
  weight = touched.weight * group_mask[touched.group]
  return jnp.einsum("bk,bkv->bv", weight, touched.current[touched.inverse])


def _rows_gradient(touched: TouchedRows, dvis: Array) -> Array:
  """[U, *M, V]: Σ over the entries using each row of weight x dvis (the layouts as in
  ``touched_bias``: a segment sum for one model, a selection matmul for a block)."""
  if touched.select is not None:
    return _matmul_rows(touched.select.T, dvis)
  contrib = touched.weight[..., None] * dvis[:, None, :]                   # [B, K, V]
  return jax.ops.segment_sum(contrib.reshape(-1, dvis.shape[-1]),
                             touched.inverse.reshape(-1),
                             num_segments=touched.rows.shape[0])


def update(W_aux: Array, l1: L1State, touched: TouchedRows, group_mask: Array, dvis: Array,
           step_size: Array, l1_aux: Array) -> Tuple[Array, L1State]:
  """Plain SGD up the gradient + this step's soft-threshold on the touched rows, written
  back in one scatter.

  Args:
    dvis: [B, *M, V] the gradient of each observation's visible bias.
    step_size, l1_aux: [*M] the W_aux step size and L1 weight of each model.
  Returns:
    (W_aux, L1State). Rows of a model's masked groups get a zero gradient; being 0 they
    stay 0 under the prox.
  """
  grad = _rows_gradient(touched, dvis) * _row_mask(touched, group_mask)
  threshold = step_size * l1_aux                                              # [*M]
  new_rows = soft_threshold(touched.current + step_size[..., None] * grad,
                            threshold[..., None])
  total = l1.total + threshold
  applied = jnp.broadcast_to(total, touched.rows.shape + total.shape)
  return (W_aux.at[touched.rows].set(new_rows, mode="drop"),
          L1State(total, l1.applied.at[touched.rows].set(applied, mode="drop")))


def caught_up(W_aux: Array, l1: L1State) -> Array:
  """``W_aux`` with every pending soft-threshold applied (what the dense prox gives)."""
  return soft_threshold(W_aux, (l1.total - l1.applied)[..., None])
