"""Binary tag vectors kept sparse on the device and made dense a few rows at a time.

A table of millions of observations x thousands of tags does not fit as a dense float32
[N, V] array (2,000,000 x 2,000 is 16 GB), but each observation has a handful of tags.
``SparseRows`` holds the tags of each row as column indices padded to the most tags of
any row, K: ``indices`` [..., N, K] int32 with the pad value V (out of range, dropped
when made dense). It is a pytree (the one leaf ``indices``; V static), so it travels in
a ``Dataset`` through ``jit``, ``vmap``, ``lax.map`` and ``scan`` like the dense array,
and its ``shape`` is the dense one ([..., N, V]).

``dense_rows(v, rows)`` is the one way the engine takes a minibatch: ``v[rows]`` of a
dense array, or the rows of a ``SparseRows`` scattered into a dense float32 [B, V]
inside the jitted step (``SparseRows.__getitem__`` does the same, so code that indexes
``data.v[rows]`` reads either form). ``dense(v)`` makes a whole (chunk) dense.
"""
from __future__ import annotations

from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.types import Array


@jax.tree_util.register_pytree_node_class
class SparseRows:
  """[..., N, V] binary rows as padded column indices [..., N, K] (pad value V).

  Attributes: indices (int32, sorted within a row, pads last), num_tags V (static).
  """
  dtype = np.dtype(np.float32)

  def __init__(self, indices, num_tags: int):
    # no checks: pytree unflattening passes placeholders (vmap axes, tracers)
    self.indices = indices
    self.num_tags = num_tags

  def tree_flatten(self):
    return (self.indices,), self.num_tags

  @classmethod
  def tree_unflatten(cls, num_tags, children):
    return cls(children[0], num_tags)

  @property
  def shape(self) -> Tuple[int, ...]:
    return tuple(self.indices.shape[:-1]) + (int(self.num_tags),)

  @property
  def ndim(self) -> int:
    return len(self.shape)

  @property
  def max_tags(self) -> int:
    """K: the padded number of tags per row."""
    return int(self.indices.shape[-1])

  def __getitem__(self, rows):
    return dense_rows(self, rows)

  def __repr__(self) -> str:
    return f"SparseRows(shape={self.shape}, max_tags={self.max_tags})"


def is_sparse(v) -> bool:
  return isinstance(v, SparseRows)


def scatter_dense(indices: Array, num_tags: int, dtype=jnp.float32) -> Array:
  """[..., K] padded column indices -> [..., V] 0/1 (pads, = V, are dropped)."""
  lead, k = indices.shape[:-1], indices.shape[-1]
  flat = jnp.reshape(indices, (-1, k))
  n = flat.shape[0]
  out = jnp.zeros((n, num_tags), dtype)
  if k:
    out = out.at[jnp.arange(n)[:, None], flat].set(1, mode="drop")
  return out.reshape(tuple(lead) + (num_tags,))


def dense(v, dtype=jnp.float32) -> Array:
  """The dense array of ``v`` (a SparseRows or an array)."""
  if is_sparse(v):
    return scatter_dense(v.indices, v.num_tags, dtype)
  return jnp.asarray(v, dtype)


def dense_rows(v, rows) -> Array:
  """The minibatch ``v[rows]`` as a dense array, from a dense [N, V] array or from a
  SparseRows (made dense here, inside the caller's jit: the device never holds the whole
  dense matrix)."""
  if is_sparse(v):
    return scatter_dense(v.indices[rows], v.num_tags)
  return v[rows]


def pad_rows(v, pad: int):
  """``v`` with ``pad`` empty rows (zeros) appended along its row axis (axis 0)."""
  if pad == 0:
    return v
  if is_sparse(v):
    idx = jnp.pad(jnp.asarray(v.indices), ((0, pad),) + ((0, 0),) * (v.indices.ndim - 1),
                  constant_values=v.num_tags)
    return SparseRows(idx, v.num_tags)
  return jnp.pad(v, ((0, pad),) + ((0, 0),) * (v.ndim - 1))


def column_sums(weight: Array, v) -> Array:
  """[V] ``weight @ v`` (weight [N]) without making a SparseRows dense."""
  if not is_sparse(v):
    return weight @ v
  idx = v.indices
  w = jnp.broadcast_to(weight[:, None], idx.shape).astype(jnp.float32)
  return jnp.zeros((v.num_tags,), jnp.float32).at[idx.reshape(-1)].add(
      w.reshape(-1), mode="drop")


def from_csr(indptr: np.ndarray, indices: np.ndarray, num_tags: int,
             max_tags: int = 0) -> SparseRows:
  """A host SparseRows (numpy indices [N, K]) from CSR ``indptr`` [N + 1] and column
  ``indices`` [nnz] (vectorised; K = the most tags of a row, at least ``max_tags``)."""
  indptr = np.asarray(indptr, np.int64)
  lengths = np.diff(indptr)
  n = len(lengths)
  k = max(int(lengths.max()) if n else 0, int(max_tags))
  out = np.full((n, k), num_tags, np.int32)
  if len(indices):
    row = np.repeat(np.arange(n), lengths)
    slot = np.arange(len(indices)) - np.repeat(indptr[:-1], lengths)
    out[row, slot] = indices
  return SparseRows(out, int(num_tags))


def to_csr(v: SparseRows) -> Tuple[np.ndarray, np.ndarray]:
  """(indptr [N + 1], indices [nnz]) of a host SparseRows (the inverse of from_csr)."""
  idx = np.asarray(v.indices)
  keep = idx < v.num_tags
  indptr = np.concatenate([[0], np.cumsum(keep.sum(1))]).astype(np.int64)
  return indptr, idx[keep].astype(np.int32)
