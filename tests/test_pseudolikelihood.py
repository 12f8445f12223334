"""Exact pseudo-likelihood (Eq. 3) against enumeration; balanced metric; factored baseline."""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

import crbm_jax as cj
from crbm_jax.model import pseudolikelihood as pl_lib
from brute_force import exact_quantities, pseudo_log_likelihood as brute_pll, random_params

V, H, A = 5, 3, 4
pll = jax.jit(cj.pseudo_log_likelihood, static_argnames="chunk_size")


@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 4.0),
       aux_row=st.lists(st.integers(-1, A - 1), min_size=3, max_size=3))
def test_pll_matches_enumeration_for_every_state(seed, scale, aux_row):
  raw = random_params(seed, V, H, A, scale)
  params = cj.CRBMParams(*(jnp.asarray(x, jnp.float32) for x in raw))
  ex = exact_quantities(*raw, aux_row)
  vs = ex["vs"]
  expected = np.stack([brute_pll(ex["log_pv"], v) for v in vs])
  aux = jnp.tile(jnp.asarray(aux_row, jnp.int32), (len(vs), 1))
  got = pll(params, jnp.asarray(vs, jnp.float32), aux, chunk_size=7)
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.5, 5.0, 20.0, 60.0, 300.0]),
       block=st.sampled_from([1, 3, 8, 16]))
def test_product_and_softplus_paths_agree(seed, scale, block):
  rng = np.random.default_rng(seed)
  n, h = 8, 13  # h not a multiple of the block: exercises the padding
  W = jnp.asarray(rng.normal(0, scale / 4, (V, h)), jnp.float32)
  x = jnp.asarray(rng.normal(0, scale / 4, (n, h)), jnp.float32)
  v = jnp.asarray(rng.integers(0, 2, (n, V)), jnp.float32)
  slow = pl_lib._flip_delta_softplus(x, W, 1.0 - 2.0 * v)
  assert np.all(np.isfinite(slow))
  if np.abs(W).max() <= pl_lib._LOG_LIMIT / block:
    fast = pl_lib.product_form(W, block)(x, v, None)
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4 * max(1.0, scale))


def test_every_branch_of_the_pseudo_likelihood_matches_enumeration():
  # max|W| in each regime: products of 16 and of 8 factors, one log per factor, softplus.
  raw = random_params(4, V, H, A, 1.0)
  vs = exact_quantities(*raw, [0])["vs"]
  aux = jnp.zeros((len(vs), 1), jnp.int32)
  for form, top in enumerate((5.0, 8.0, 40.0, 120.0)):
    W = raw[0] / np.abs(raw[0]).max() * top
    scaled = (W,) + raw[1:]
    ex = exact_quantities(*scaled, [0])
    expected = np.stack([brute_pll(ex["log_pv"], v) for v in vs])
    params = cj.CRBMParams(*(jnp.asarray(t, jnp.float32) for t in scaled))
    assert int(pl_lib.form_index(jnp.max(jnp.abs(params.W)))) == form
    got = pll(params, jnp.asarray(vs, jnp.float32), aux)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * top)


def test_chunking_does_not_change_the_result():
  raw = random_params(0, 30, 7, 5, 1.0)
  params = cj.CRBMParams(*(jnp.asarray(x, jnp.float32) for x in raw))
  rng = np.random.default_rng(0)
  v = jnp.asarray(rng.random((53, 30)) < 0.2, jnp.float32)
  aux = jnp.asarray(rng.integers(-1, 5, (53, 2)), jnp.int32)
  whole = cj.pseudo_log_likelihood(params, v, aux, chunk_size=1000)
  np.testing.assert_allclose(cj.pseudo_log_likelihood(params, v, aux, chunk_size=8), whole,
                             rtol=1e-6, atol=1e-6)


def test_balanced_pseudo_likelihood_averages_ones_and_zeros_separately():
  per_bit = jnp.array([[-1.0, -3.0, -5.0], [-2.0, -4.0, -6.0]])
  v = jnp.array([[1, 0, 0], [0, 0, 1]])
  # ones: -1 and -6 -> mean -3.5; zeros: -3, -5, -2, -4 -> mean -3.5.
  np.testing.assert_allclose(cj.balanced_pseudo_likelihood(per_bit, v), -3.5)
  v2 = jnp.array([[1, 1, 0], [0, 0, 0]])
  expected = 0.5 * ((-1 - 3) / 2 + (-5 - 2 - 4 - 6) / 4)
  np.testing.assert_allclose(cj.balanced_pseudo_likelihood(per_bit, v2), expected)
  # weight 0 excludes the second observation entirely
  np.testing.assert_allclose(
      cj.balanced_pseudo_likelihood(per_bit, v2, jnp.array([1.0, 0.0])),
      0.5 * ((-1 - 3) / 2 + (-5) / 1))


def test_factored_baseline_uses_laplace_smoothing():
  v = jnp.array([[1, 0], [1, 0], [0, 0]], jnp.float32)
  model = cj.fit_factored(v, pseudo_count=1.0)
  np.testing.assert_allclose(np.exp(model.log_p), [(2 + 1) / (3 + 2), (0 + 1) / (3 + 2)],
                             rtol=1e-6)
  ll = cj.factored_log_likelihood(model, jnp.array([[1, 1]], jnp.float32))
  np.testing.assert_allclose(ll, np.log([[3 / 5, 1 / 5]]), rtol=1e-6)
