"""PCD and parallel tempering: stationary statistics vs enumeration, learning a known CRBM."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax import learn
from crbm_jax.learn import persistent
from crbm_jax.model import ais
from crbm_jax.model.pseudolikelihood import factored_log_likelihood, fit_factored
from brute_force import exact_quantities, random_params
from tracing import counted_jit

V, H, A = 6, 3, 4
AUX = np.array([[0, 2], [1, -1], [3, 2]], np.int32)


def _model(seed, scale):
  raw = random_params(seed, V, H, A, scale)
  return cj.CRBMParams(*(jnp.asarray(x, jnp.float32) for x in raw)), raw


def _exact_moments(raw, row):
  ex = exact_quantities(*raw, row)
  p_v = np.exp(ex["log_pv"])
  mean_v = p_v @ ex["vs"]
  mean_vh = np.einsum("s,si,sj->ij", p_v, ex["vs"], ex["p_h_given_v"])
  return mean_v, mean_vh


@pytest.mark.extended
@pytest.mark.parametrize("num_temperatures", [1, 4])
def test_frozen_parameter_negative_statistics_match_enumeration(num_temperatures):
  # Scale 2.5 makes p(v | a) multi-modal; particles start all-zero, far from equilibrium.
  params, raw = _model(7, 2.5)
  particles = 3000
  betas = jnp.asarray(persistent.temperature_ladder(num_temperatures, 0.0), jnp.float32)
  vis_bias = cj.visible_bias(params, jnp.asarray(np.repeat(AUX, particles, 0)))
  chains = jnp.zeros((num_temperatures, 1, len(AUX) * particles, V))
  run = jax.jit(lambda k, ch: persistent.advance_chains(k, params, ch, vis_bias, betas, 5))
  rates = []
  for step in range(40):  # 200 sweeps (+ swaps); keep only the final, independent states
    chains, rate = run(jax.random.key(step), chains)
    rates.append(float(rate))
  v = np.asarray(chains[0, 0]).reshape(len(AUX), particles, V)
  h = np.asarray(cj.hidden_given_visible(params, chains[0, 0])).reshape(len(AUX), particles, H)
  for m, row in enumerate(AUX):
    mean_v, mean_vh = _exact_moments(raw, row)
    se_v = np.sqrt(mean_v * (1 - mean_v) / particles) + 1e-3
    assert np.all(np.abs(v[m].mean(0) - mean_v) <= 4.5 * se_v)
    vh = np.einsum("ni,nj->nij", v[m], h[m])
    se_vh = vh.std(0) / np.sqrt(particles) + 1e-3
    assert np.all(np.abs(vh.mean(0) - mean_vh) <= 4.5 * se_vh)
  if num_temperatures > 1:
    assert 0.05 < np.mean(rates) <= 1.0


def test_parallel_tempering_swaps_are_detailed_balance_metropolis():
  # Two rungs, states fixed: the acceptance frequency must equal min(1, exp(log ratio)).
  params, _ = _model(1, 1.5)
  rng = np.random.default_rng(0)
  v = jnp.asarray((rng.random((2, 1, 1, V)) < 0.5).astype(np.float32))
  betas = jnp.asarray([1.0, 0.3])
  hid = lambda x, b: float(jnp.sum(jax.nn.softplus(b * (x @ params.W + params.c))))
  log_ratio = (hid(v[1], 1.0) + hid(v[0], 0.3)) - (hid(v[0], 1.0) + hid(v[1], 0.3))
  swap = jax.jit(lambda k: persistent.swap_neighbours(k, params, v, betas, 0)[1])
  keys = jax.random.split(jax.random.key(0), 4000)
  freq = np.mean([float(swap(k)) for k in keys[:4000]])
  target = min(1.0, np.exp(log_ratio))
  assert abs(freq - target) <= 4 * np.sqrt(target * (1 - target) / 4000) + 1e-3


def _known_crbm(seed):
  rng = np.random.default_rng(seed)
  W = rng.normal(0, 2.0, (V, H))
  W_aux = rng.normal(0, 1.0, (A, V))
  return (W, W_aux, rng.normal(-1.0, 0.5, V), rng.normal(0, 0.5, H))


def _sample_known_crbm(seed, n):
  """Observations drawn exactly from a small CRBM with strong tag correlations."""
  raw = _known_crbm(seed)
  rng = np.random.default_rng(seed + 1)
  aux = np.stack([rng.integers(0, 2, n), 2 + rng.integers(0, 2, n)], 1).astype(np.int32)
  v = np.zeros((n, V), np.float32)
  for row in np.unique(aux, axis=0):
    sel = np.flatnonzero((aux == row).all(1))
    ex = exact_quantities(*raw, row)
    p = np.exp(ex["log_pv"])
    v[sel] = ex["vs"][rng.choice(len(p), len(sel), p=p / p.sum())]
  return v, aux


def _exact_test_ll(params, v, aux):
  aux = jnp.asarray(aux)
  return np.asarray(ais.log_likelihood(params, v, aux, ais.exact_log_partition(params, aux)))


@pytest.mark.extended
@pytest.mark.parametrize("method", ["pcd", "pt"])
def test_training_on_a_known_crbm_beats_the_factored_baseline(method):
  v, aux = _sample_known_crbm(0, 4200)
  train = cj.make_dataset(v[:1000], aux[:1000])
  val = cj.make_dataset(v[1000:1200], aux[1000:1200])
  test_v, test_aux = v[1200:], aux[1200:]
  config = cj.TrainConfig(num_hidden=H, batch_size=50, num_epochs=30, weight_scale=0.1)
  learner = (learn.pcd(config, A) if method == "pcd" else
             learn.parallel_tempering(config, A, num_temperatures=3))
  fit_fn = jax.jit(learn.make_fit(config, A, learner))
  hp = cj.make_hparams(learning_rate=0.1, momentum=0.5, weight_decay=0.0, l1_aux=0.0)
  res = fit_fn(jax.random.key(1), hp, train, val)
  ll_model = _exact_test_ll(res.params, test_v, test_aux)
  true = cj.CRBMParams(*(jnp.asarray(x, jnp.float32) for x in _known_crbm(0)))
  ll_true = _exact_test_ll(true, test_v, test_aux)
  factored = fit_factored(train.v)
  ll_factored = np.asarray(jnp.sum(factored_log_likelihood(factored, test_v), -1))
  # Exact test log-likelihoods on 3000 observations: the learned model must close at
  # least a third of the gap between the factored baseline and the generating model.
  gain, ceiling = ll_model - ll_factored, ll_true - ll_factored
  se = gain.std() / np.sqrt(len(gain))
  assert ceiling.mean() > 0.1
  assert gain.mean() - 3 * se > ceiling.mean() / 3, (gain.mean(), se, ceiling.mean())
  assert int(res.best_epoch) >= 0 and np.isfinite(float(res.best_val_pl))


@pytest.mark.extended
def test_example_mode_with_two_chains_per_observation_does_not_recompile_per_hparam():
  v, aux = _sample_known_crbm(1, 200)
  train = cj.make_dataset(v[:100], aux[:100])
  val = cj.make_dataset(v[100:], aux[100:])
  config = cj.TrainConfig(num_hidden=H, batch_size=20, num_epochs=1)
  jitted, traces = counted_jit(learn.make_fit(config, A, learn.parallel_tempering(
      config, A, num_temperatures=2, num_chains=2, chain_mode="example")))
  for lr in (0.01, 0.05):
    res = jitted(jax.random.key(0), cj.make_hparams(learning_rate=lr), train, val)
    assert np.all(np.isfinite(np.asarray(res.history.val_pl)))
  assert len(traces) == 1


def test_bad_options_raise_clear_errors():
  config = cj.TrainConfig(batch_size=20)
  with pytest.raises(persistent.PersistentError, match="multiple of batch_size=20"):
    learn.pcd(config, 3, num_chains=30)
  with pytest.raises(persistent.PersistentError, match="chain_mode"):
    learn.parallel_tempering(config, 3, chain_mode="global")
  with pytest.raises(persistent.PersistentError, match="min_beta"):
    persistent.temperature_ladder(3, 1.0)
  with pytest.raises(persistent.PersistentError, match="num_temperatures"):
    learn.parallel_tempering(config, 3, num_temperatures=0)
