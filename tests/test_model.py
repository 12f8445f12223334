"""Model functions against brute-force enumeration (property-based, deterministic profile)."""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

import crbm_jax as cj
from brute_force import exact_quantities, random_params

V, H, A = 5, 3, 4
seeds = st.integers(0, 2**31 - 1)
scales = st.floats(0.1, 3.0)
aux_rows = st.lists(st.integers(-1, A - 1), min_size=2, max_size=2)
sample_visible = jax.jit(cj.sample_visible, static_argnames=("num_samples", "burn_in", "thin"))


def _params(seed, scale):
  W, W_aux, b, c = random_params(seed, V, H, A, scale)
  return cj.CRBMParams(*(jnp.asarray(x, jnp.float32) for x in (W, W_aux, b, c))), (W, W_aux, b, c)


@given(seed=seeds, scale=scales, aux_row=aux_rows)
def test_conditionals_and_free_energy_match_enumeration(seed, scale, aux_row):
  params, raw = _params(seed, scale)
  ex = exact_quantities(*raw, aux_row)
  vs, hs = ex["vs"], ex["hs"]
  aux = jnp.tile(jnp.asarray(aux_row, jnp.int32), (len(vs), 1))
  np.testing.assert_allclose(cj.hidden_given_visible(params, jnp.asarray(vs, jnp.float32)),
                             ex["p_h_given_v"], rtol=1e-4, atol=1e-5)
  aux_h = jnp.tile(jnp.asarray(aux_row, jnp.int32), (len(hs), 1))
  np.testing.assert_allclose(
      cj.visible_given_hidden(params, jnp.asarray(hs, jnp.float32), aux_h),
      ex["p_v_given_h"], rtol=1e-4, atol=1e-5)
  fe = np.asarray(cj.free_energy(params, jnp.asarray(vs, jnp.float32), aux))
  np.testing.assert_allclose(fe, ex["free_energy"], rtol=1e-4, atol=1e-4)
  # log Z from the free energy: logsumexp(-F) is the exact partition function.
  np.testing.assert_allclose(jax.scipy.special.logsumexp(-fe), ex["log_z"], rtol=1e-4, atol=1e-4)


@given(seed=seeds, scale=scales, aux_row=aux_rows)
def test_energy_matches_enumeration(seed, scale, aux_row):
  params, raw = _params(seed, scale)
  ex = exact_quantities(*raw, aux_row)
  vs, hs = ex["vs"], ex["hs"]
  vv = np.repeat(vs, len(hs), axis=0)
  hh = np.tile(hs, (len(vs), 1))
  aux = jnp.tile(jnp.asarray(aux_row, jnp.int32), (len(vv), 1))
  e = cj.energy(params, jnp.asarray(vv, jnp.float32), jnp.asarray(hh, jnp.float32), aux)
  np.testing.assert_allclose(-np.asarray(e), ex["neg_energy"].reshape(-1), rtol=1e-4, atol=1e-4)


def test_absent_aux_is_no_term():
  params, _ = _params(3, 1.0)
  v = jnp.asarray(np.random.default_rng(0).integers(0, 2, (6, V)), jnp.float32)
  with_absent = jnp.array([[2, -1]] * 6, jnp.int32)
  only_present = jnp.array([[2]] * 6, jnp.int32)
  none = jnp.zeros((6, 0), jnp.int32)
  all_absent = jnp.full((6, 2), -1, jnp.int32)
  np.testing.assert_allclose(cj.free_energy(params, v, with_absent),
                             cj.free_energy(params, v, only_present), rtol=1e-6)
  np.testing.assert_allclose(cj.free_energy(params, v, all_absent),
                             cj.free_energy(params, v, none), rtol=1e-6)
  np.testing.assert_array_equal(cj.aux_bias(params.W_aux, all_absent), 0.0)


def test_free_energy_is_finite_for_large_weights():
  rng = np.random.default_rng(0)
  params = cj.CRBMParams(jnp.asarray(rng.normal(0, 200, (V, H)), jnp.float32),
                         jnp.asarray(rng.normal(0, 200, (A, V)), jnp.float32),
                         jnp.asarray(rng.normal(0, 200, V), jnp.float32),
                         jnp.asarray(rng.normal(0, 200, H), jnp.float32))
  v = jnp.asarray(rng.integers(0, 2, (16, V)), jnp.float32)
  aux = jnp.asarray(rng.integers(-1, A, (16, 2)), jnp.int32)
  assert np.all(np.isfinite(cj.free_energy(params, v, aux)))
  assert np.all(np.isfinite(cj.pseudo_log_likelihood(params, v, aux)))
  h = cj.hidden_given_visible(params, v)
  assert np.all((h >= 0) & (h <= 1))


def test_jit_and_nojit_agree():
  params, _ = _params(7, 1.5)
  rng = np.random.default_rng(1)
  v = jnp.asarray(rng.integers(0, 2, (9, V)), jnp.float32)
  aux = jnp.asarray(rng.integers(-1, A, (9, 2)), jnp.int32)
  for fn in (cj.free_energy, cj.pseudo_log_likelihood):
    np.testing.assert_allclose(jax.jit(fn)(params, v, aux), fn(params, v, aux), rtol=1e-5,
                               atol=1e-6)
  np.testing.assert_allclose(jax.jit(cj.visible_given_hidden)(params, v[:, :H], aux),
                             cj.visible_given_hidden(params, v[:, :H], aux), rtol=1e-6)


def _mc_bound_check(counts, probs, n):
  """Every state's frequency within 5 binomial standard errors (+ a 1/n floor)."""
  freq = counts / n
  se = np.sqrt(probs * (1 - probs) / n)
  assert np.all(np.abs(freq - probs) <= 5 * se + 1.0 / n), (freq, probs)


@settings(max_examples=10)
@given(seed=st.integers(0, 1000), aux_row=aux_rows)
def test_gibbs_samples_match_exact_distribution(seed, aux_row):
  params, raw = _params(seed, 0.8)
  ex = exact_quantities(*raw, aux_row)
  num_chains = 20000
  aux = jnp.tile(jnp.asarray(aux_row, jnp.int32), (num_chains, 1))
  samples = sample_visible(jax.random.key(seed), params, aux, num_samples=1, burn_in=40)[0]
  idx = np.asarray(samples, np.int64) @ (1 << np.arange(V)[::-1])
  counts = np.bincount(idx, minlength=2**V)
  _mc_bound_check(counts, np.exp(ex["log_pv"]), num_chains)


def test_run_gibbs_keeps_exact_distribution_stationary():
  params, raw = _params(11, 1.0)
  aux_row = [1, 3]
  ex = exact_quantities(*raw, aux_row)
  n = 20000
  rng = np.random.default_rng(0)
  start = ex["vs"][rng.choice(2**V, size=n, p=np.exp(ex["log_pv"]))]  # exact draws
  aux = jnp.tile(jnp.asarray(aux_row, jnp.int32), (n, 1))
  state = cj.run_gibbs(jax.random.key(5), params, jnp.asarray(start, jnp.float32), aux, 3)
  idx = np.asarray(state.v, np.int64) @ (1 << np.arange(V)[::-1])
  _mc_bound_check(np.bincount(idx, minlength=2**V), np.exp(ex["log_pv"]), n)


def test_mean_field_close_to_exact_marginals_for_weak_coupling():
  params, raw = _params(2, 0.2)
  ex = exact_quantities(*raw, [0, 2])
  exact_marg = np.exp(ex["log_pv"]) @ ex["vs"]
  mf = cj.visible_marginals_mean_field(params, jnp.array([[0, 2]], jnp.int32))[0]
  np.testing.assert_allclose(mf, exact_marg, atol=0.01)
