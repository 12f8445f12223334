"""Brute-force references the tests hold the library to: every (v, h) state of a tiny
conditional RBM (float64), Table 1 by a loop over all pairs of tasks, and the L1 prox
applied densely to every W_aux row at every step."""
import itertools
from typing import Dict

import numpy as np
from scipy.special import logsumexp

from crbm_jax.paper.cooccurrence import (PATTERNS_WITH_USERS, PATTERNS_WITHOUT_USERS,
                                         Table1Row)


def all_states(n):
  return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)


def random_params(seed, num_visible, num_hidden, num_aux, scale):
  rng = np.random.default_rng(seed)
  W = rng.normal(0, scale, (num_visible, num_hidden))
  W_aux = rng.normal(0, scale, (num_aux, num_visible))
  b = rng.normal(0, scale, num_visible)
  c = rng.normal(0, scale, num_hidden)
  return W, W_aux, b, c


def aux_bias(W_aux, aux_row):
  return sum((W_aux[a] for a in aux_row if a >= 0), np.zeros(W_aux.shape[1]))


def neg_energy(W, W_aux, b, c, aux_row):
  """[2^V, 2^H] matrix of -E(v, h; a) and the state lists."""
  V, H = W.shape
  vs, hs = all_states(V), all_states(H)
  vb = b + aux_bias(W_aux, aux_row)
  return vs @ W @ hs.T + (vs @ vb)[:, None] + (hs @ c)[None, :], vs, hs


def exact_quantities(W, W_aux, b, c, aux_row):
  ne, vs, hs = neg_energy(W, W_aux, b, c, aux_row)
  log_z = logsumexp(ne)
  free_energy = -logsumexp(ne, axis=1)              # [2^V]
  log_pv = -free_energy - log_z                      # log p(v | a)
  p_vh = np.exp(ne - log_z)
  p_h_given_v = (p_vh @ hs) / p_vh.sum(1, keepdims=True)     # [2^V, H]
  p_v_given_h = (p_vh.T @ vs) / p_vh.sum(0)[:, None]         # [2^H, V]
  return dict(vs=vs, hs=hs, log_z=log_z, free_energy=free_energy, log_pv=log_pv,
              p_h_given_v=p_h_given_v, p_v_given_h=p_v_given_h, neg_energy=ne)


def state_index(v):
  v = np.asarray(v, dtype=np.int64)
  return int((v * (1 << np.arange(v.shape[-1])[::-1])).sum())


def pseudo_log_likelihood(log_pv, v):
  """Per-bit log p(v_i | v_-i) from the exact log p(v)."""
  out = np.empty(len(v))
  i0 = state_index(v)
  for i in range(len(v)):
    flipped = np.array(v, copy=True)
    flipped[i] = 1 - flipped[i]
    i1 = state_index(flipped)
    out[i] = log_pv[i0] - np.logaddexp(log_pv[i0], log_pv[i1])
  return out


def table1_bruteforce(tasks) -> list:
  """Reference Table 1 by a Python loop over all pairs (small inputs only)."""
  xd = tasks.x.toarray()
  n = xd.shape[0]
  values: Dict[tuple, list] = {}
  top = (1, 1, 1) if tasks.has_users else (None, 1, 1)
  values[top] = [float(xd[i] @ xd[i]) for i in range(n)]
  for i, j in itertools.combinations(range(n), 2):
    u = (int(tasks.user[i] == tasks.user[j]) if tasks.has_users else None)
    key = (u, int(tasks.track[i] == tasks.track[j]),
           int(tasks.clip[i] == tasks.clip[j]))
    values.setdefault(key, []).append(float(xd[i] @ xd[j]))
  patterns = PATTERNS_WITH_USERS if tasks.has_users else PATTERNS_WITHOUT_USERS
  rows = []
  for key in patterns:
    v = np.asarray(values.get(key, []))
    mean = float(v.mean()) if v.size else float("nan")
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    rows.append(Table1Row(None if key[0] is None else bool(key[0]), bool(key[1]),
                          bool(key[2]), mean, se, int(v.size)))
  return rows


def dense_l1_step(W_aux, aux, dvis, step_size, l1_aux, group_mask=None):
  """One plain-SGD step of W_aux [A, V] up the gradient of the observations' visible
  biases dvis [B, V] (each uses the rows aux [B, G], -1 absent), then the soft-threshold
  step_size x l1_aux on EVERY row (float64). Masked groups' entries are left out."""
  W_aux = np.array(W_aux, np.float64)
  aux = np.asarray(aux)
  mask = np.ones(aux.shape[1]) if group_mask is None else np.asarray(group_mask)
  grad = np.zeros_like(W_aux)
  for b in range(aux.shape[0]):
    for g in range(aux.shape[1]):
      if aux[b, g] >= 0 and mask[g] > 0:
        grad[aux[b, g]] += dvis[b]
  x = W_aux + step_size * grad
  t = step_size * l1_aux
  return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)
