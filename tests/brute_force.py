"""Brute-force references for tiny conditional RBMs: enumerate every (v, h) state (float64)."""
import itertools

import numpy as np
from scipy.special import logsumexp


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
