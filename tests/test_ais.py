"""AIS for log Z(a) of tiny conditional RBMs against exact enumeration."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax.model import ais
from brute_force import exact_quantities, random_params

V, H, A = 8, 3, 5
AUX = np.array([[0, 2], [1, -1], [-1, -1], [4, 3]], np.int32)
forward = jax.jit(ais.ais_log_partition, static_argnames=("num_runs", "num_betas", "schedule"))
reverse = jax.jit(ais.reverse_ais_log_partition, static_argnames=("num_betas", "schedule"))


def _model(seed, scale):
  raw = random_params(seed, V, H, A, scale)
  return cj.CRBMParams(*(jnp.asarray(x, jnp.float32) for x in raw)), raw


def _exact_log_z(raw):
  return np.array([exact_quantities(*raw, row)["log_z"] for row in AUX])


def _exact_samples(raw, num_runs, seed):
  """[M, R, V] exact draws from p(v | a) for each aux row, by enumeration."""
  rng = np.random.default_rng(seed)
  out = []
  for row in AUX:
    ex = exact_quantities(*raw, row)
    p = np.exp(ex["log_pv"])
    out.append(ex["vs"][rng.choice(len(p), num_runs, p=p / p.sum())])
  return jnp.asarray(np.stack(out), jnp.float32)


def test_exact_log_partition_matches_brute_force():
  params, raw = _model(0, 1.0)
  np.testing.assert_allclose(ais.exact_log_partition(params, jnp.asarray(AUX)),
                             _exact_log_z(raw), rtol=1e-5, atol=1e-4)


@pytest.mark.extended
def test_ais_is_exact_for_an_independent_model_started_at_its_own_biases():
  params, _ = _model(1, 1.0)
  params = params._replace(W=jnp.zeros_like(params.W))
  aux = jnp.asarray(AUX)
  res = forward(jax.random.key(0), params, aux, num_runs=8, num_betas=10,
                base_logits=cj.visible_bias(params, aux))
  np.testing.assert_allclose(res.log_z, ais.exact_log_partition(params, aux), atol=1e-4)
  np.testing.assert_allclose(res.ess, 8.0, rtol=1e-5)


@pytest.mark.extended
@pytest.mark.parametrize("seed,scale", [(0, 0.5), (1, 1.0), (2, 1.5)])
def test_forward_and_reverse_ais_cover_the_exact_log_z(seed, scale):
  params, raw = _model(seed, scale)
  aux = jnp.asarray(AUX)
  exact = _exact_log_z(raw)
  fwd = forward(jax.random.key(seed), params, aux, num_runs=400, num_betas=300)
  assert np.all((fwd.ess > 0) & (fwd.ess <= 400 + 1e-3))
  assert np.all(np.abs(fwd.log_z - exact) <= 3 * fwd.log_z_stderr + 1e-3)
  assert np.all(np.abs(fwd.log_z - exact) < 0.05)
  rev = reverse(jax.random.key(seed + 100), params, aux, _exact_samples(raw, 400, seed),
                num_betas=300)
  assert np.all((rev.ess > 0) & (rev.ess <= 400 + 1e-3))
  assert np.all(np.abs(rev.log_z - exact) <= 3 * rev.log_z_stderr + 1e-3)
  assert np.all(np.abs(rev.log_z - exact) < 0.05)


@pytest.mark.extended
def test_short_annealing_sandwiches_log_z_between_forward_and_reverse():
  # With few intermediate distributions the bias is visible: E[log w] <= log E[w] makes
  # the forward per-run estimate low and the reverse (from exact samples) high.
  params, raw = _model(3, 2.0)
  aux = jnp.asarray(AUX)
  exact = _exact_log_z(raw)
  runs = 2000
  uniform = jnp.zeros(V)  # a poor base, so that 3 steps leave a visible bias
  fwd = forward(jax.random.key(0), params, aux, num_runs=runs, num_betas=3,
                base_logits=uniform)
  rev = reverse(jax.random.key(1), params, aux, _exact_samples(raw, runs, 3), num_betas=3,
                base_logits=uniform)
  low = fwd.log_z_base + jnp.mean(fwd.log_weights, -1)
  high = rev.log_z_base - jnp.mean(rev.log_weights, -1)
  se_low = jnp.std(fwd.log_weights, -1) / np.sqrt(runs)
  se_high = jnp.std(rev.log_weights, -1) / np.sqrt(runs)
  assert np.all(low <= exact + 3 * se_low)
  assert np.all(high >= exact - 3 * se_high)
  assert np.mean(high - low) > 0.2  # the bias is real at 3 steps, not a vacuous check


def test_average_log_likelihood_matches_exact_mean_log_likelihood():
  params, raw = _model(4, 1.0)
  rng = np.random.default_rng(0)
  rows = AUX[rng.integers(0, len(AUX), 60)]
  v = (rng.random((60, V)) < 0.3).astype(np.float32)
  exact_z = dict(zip(map(tuple, AUX), _exact_log_z(raw)))
  neg_f = -np.asarray(cj.free_energy(params, jnp.asarray(v), jnp.asarray(rows)))
  exact_ll = np.mean(neg_f - np.array([exact_z[tuple(r)] for r in rows]))
  rep = ais.average_log_likelihood(jax.random.key(0), params, v, rows, num_runs=200,
                                   num_betas=200)
  assert rep.num_rows == len(np.unique(rows, axis=0))
  assert abs(rep.mean_ll - exact_ll) <= 3 * rep.ais_stderr + 1e-3
  assert abs(rep.mean_ll_conservative - exact_ll) < 0.05
  assert 0 < rep.min_ess <= 200 + 1e-3
  np.testing.assert_allclose(rep.per_bit, rep.mean_ll / V)


def test_models_of_the_same_shape_share_one_compiled_ais_program():
  rng = np.random.default_rng(1)
  rows = AUX[rng.integers(0, len(AUX), 20)]
  v = (rng.random((20, V)) < 0.3).astype(np.float32)
  kw = dict(num_runs=4, num_betas=7, row_chunk=3)  # shapes no other test uses
  before = ais._forward_and_reverse._cache_size()  # pylint: disable=protected-access
  reports = [ais.average_log_likelihood(jax.random.key(0), _model(seed, 1.0)[0], v, rows, **kw)
             for seed in (5, 6, 7)]
  assert ais._forward_and_reverse._cache_size() == before + 1  # pylint: disable=protected-access
  assert len({r.mean_ll for r in reports}) == 3  # three models, three answers


def test_bad_schedule_and_oversized_enumeration_raise_clear_errors():
  with pytest.raises(ais.AISError, match="num_betas"):
    ais.beta_schedule(0)
  with pytest.raises(ais.AISError, match="linear"):
    ais.beta_schedule(10, kind="cubic")
  params = cj.CRBMParams(jnp.zeros((21, 2)), jnp.zeros((1, 21)), jnp.zeros(21), jnp.zeros(2))
  with pytest.raises(ais.AISError, match="V=21"):
    ais.exact_log_partition(params, jnp.zeros((1, 0), jnp.int32))
