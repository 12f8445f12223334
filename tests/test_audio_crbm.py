"""The feature-conditioned CRBM (model.conditioned) and its learners
(learn.discriminative) against brute-force enumeration of every (v, h) state."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from crbm_jax.learn.base import TrainConfig
from crbm_jax.learn import discriminative as disc
from crbm_jax.model import conditioned as cm
from crbm_jax.model.crbm import CRBMParams
from tests.brute_force import exact_quantities, pseudo_log_likelihood, state_index

V, H, F, A = 4, 3, 2, 3
# Jitted once per module (the tests decide what to compile; shapes stay fixed, so each
# compiles once per dtype).
exact_marginals = jax.jit(cm.exact_marginals)
mean_field = jax.jit(cm.mean_field, static_argnames=("num_iters",))
gibbs_marginals = jax.jit(cm.gibbs_marginals, static_argnames=("num_samples", "burn_in"))
log_likelihood = jax.jit(cm.log_likelihood)
pseudo_ll = jax.jit(cm.pseudo_log_likelihood)
fit = jax.jit(disc.fit, static_argnums=(1, 2))


def random_model(seed, scale, hidden_input=True):
  rng = np.random.default_rng(seed)
  crbm = CRBMParams(W=rng.normal(0, scale, (V, H)), W_aux=rng.normal(0, scale, (A, V)),
                    b=rng.normal(0, scale, V), c=rng.normal(0, scale, H))
  W_x = rng.normal(0, scale, (F, V))
  U_x = rng.normal(0, scale, (F, H if hidden_input else 0))
  x = rng.normal(0, 1, (2, F))
  aux = np.array([[0, 2], [1, -1]])
  params = cm.AudioCRBMParams(jax.tree.map(jnp.asarray, crbm), jnp.asarray(W_x),
                              jnp.asarray(U_x))
  return params, crbm, W_x, U_x, x, aux


def brute(crbm, W_x, U_x, x_row, aux_row):
  """Exact quantities of the RBM with the row's biases folded in (float64)."""
  c = crbm.c + (x_row @ U_x if U_x.shape[1] else 0.0)
  b = crbm.b + x_row @ W_x
  return exact_quantities(crbm.W, crbm.W_aux, b, c, aux_row)


def with_float64(fn):
  def wrapped(*a, **k):
    with jax.enable_x64(True):
      return fn(*a, **k)
  return wrapped



@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 3.0),
       hidden_input=st.booleans())
@with_float64
def test_autotag_marginals_and_likelihood_match_enumeration(seed, scale, hidden_input):
  params, crbm, W_x, U_x, x, aux = random_model(seed, scale, hidden_input)
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
  p = np.asarray(exact_marginals(params, jnp.asarray(x), jnp.asarray(aux)))
  for n in range(2):
    ex = brute(crbm, W_x, U_x, x[n], aux[n])
    pv = np.exp(ex["log_pv"])
    np.testing.assert_allclose(p[n], pv @ ex["vs"], rtol=1e-9, atol=1e-12)
    vs = ex["vs"][[3, 10]]
    ll = log_likelihood(params, jnp.asarray(vs), jnp.asarray(np.repeat(x[n:n+1], 2, 0)),
                           jnp.asarray(np.repeat(aux[n:n+1], 2, 0)))
    np.testing.assert_allclose(np.asarray(ll), ex["log_pv"][[3, 10]], rtol=1e-9)
    pl = pseudo_ll(params, jnp.asarray(vs),
                                  jnp.asarray(np.repeat(x[n:n+1], 2, 0)),
                                  jnp.asarray(np.repeat(aux[n:n+1], 2, 0)))
    for k in range(2):
      np.testing.assert_allclose(np.asarray(pl[k]), pseudo_log_likelihood(ex["log_pv"], vs[k]),
                                 rtol=1e-8, atol=1e-12)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 3.0),
       mask_bits=st.integers(0, 2**V - 1), value_bits=st.integers(0, 2**V - 1))
@with_float64
def test_completion_matches_enumeration_and_clamps_exactly(seed, scale, mask_bits,
                                                          value_bits):
  params, crbm, W_x, U_x, x, aux = random_model(seed, scale)
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
  observed = np.array([(mask_bits >> i) & 1 for i in range(V)], np.float64)
  value = np.array([(value_bits >> i) & 1 for i in range(V)], np.float64)
  obs2, val2 = np.stack([observed] * 2), np.stack([value] * 2)
  p = np.asarray(exact_marginals(params, jnp.asarray(x), jnp.asarray(aux),
                                    jnp.asarray(val2), jnp.asarray(obs2)))
  mf = np.asarray(mean_field(params, jnp.asarray(x), jnp.asarray(aux),
                                jnp.asarray(val2), jnp.asarray(obs2), num_iters=5))
  gb = np.asarray(gibbs_marginals(jax.random.key(seed % 1000), params, jnp.asarray(x),
                                     jnp.asarray(aux), jnp.asarray(val2),
                                     jnp.asarray(obs2), num_samples=3, burn_in=2))
  for est in (p, mf, gb):  # clamped bits come back exactly as given
    np.testing.assert_array_equal(est[:, observed > 0], val2[:, observed > 0])
  for n in range(2):
    ex = brute(crbm, W_x, U_x, x[n], aux[n])
    consistent = np.all((ex["vs"] == value) | (observed == 0), axis=1)
    w = np.exp(ex["log_pv"]) * consistent
    want = (w @ ex["vs"]) / w.sum()
    np.testing.assert_allclose(p[n], want, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_gibbs_and_mean_field_estimate_the_marginals():
  """Gibbs within 5 Monte-Carlo s.e. of the exact marginals; mean field is close for
  weak couplings (a deterministic approximation: loose bound)."""
  params, crbm, W_x, U_x, x, aux = random_model(3, 0.8)
  exact = np.asarray(exact_marginals(params, jnp.asarray(x, jnp.float32),
                                        jnp.asarray(aux)))
  keys = jax.random.split(jax.random.key(0), 8)
  run = jax.vmap(lambda k: gibbs_marginals(k, params, jnp.asarray(x, jnp.float32),
                                           jnp.asarray(aux), num_samples=500, burn_in=20))
  runs = np.asarray(run(keys))
  se = runs.std(0, ddof=1) / np.sqrt(runs.shape[0])
  assert np.all(np.abs(runs.mean(0) - exact) <= 5 * se + 1e-3)
  mf = np.asarray(mean_field(params, jnp.asarray(x, jnp.float32), jnp.asarray(aux)))
  assert np.max(np.abs(mf - exact)) < 0.1


@with_float64
def test_discriminative_gradient_is_data_minus_model_statistics():
  params, crbm, W_x, U_x, x, aux = random_model(5, 1.0)
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
  v = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], np.float64)
  vb, hb = cm.row_biases(params, jnp.asarray(x), jnp.asarray(aux))
  w = jnp.asarray([0.25, 0.75])
  g, value = disc.discriminative_grads(params.crbm.W, jnp.asarray(v), vb, hb, w)
  want_W = np.zeros((V, H))
  total = 0.0
  for n in range(2):
    ex = brute(crbm, W_x, U_x, x[n], aux[n])
    pv = np.exp(ex["log_pv"])
    i = state_index(v[n])
    np.testing.assert_allclose(np.asarray(g.dvis[n]), float(w[n]) * (v[n] - pv @ ex["vs"]),
                               rtol=1e-8, atol=1e-12)
    e_h = pv @ ex["p_h_given_v"]
    np.testing.assert_allclose(np.asarray(g.dhid[n]),
                               float(w[n]) * (ex["p_h_given_v"][i] - e_h), rtol=1e-8,
                               atol=1e-12)
    e_vh = (ex["vs"] * pv[:, None]).T @ ex["p_h_given_v"]
    want_W += float(w[n]) * (np.outer(v[n], ex["p_h_given_v"][i]) - e_vh)
    total += float(w[n]) * ex["log_pv"][i]
  np.testing.assert_allclose(np.asarray(g.W), want_W, rtol=1e-8, atol=1e-12)
  np.testing.assert_allclose(float(value), total, rtol=1e-10)


def planted(seed, n, num_tags=5, num_features=3, num_users=4):
  """Tags driven by the features (and a per-user bias), with co-occurring pairs."""
  rng = np.random.default_rng(seed)
  x = rng.normal(0, 1, (n, num_features)).astype(np.float32)
  M = rng.normal(0, 2.0, (num_features, num_tags))
  user = rng.integers(0, num_users, n)
  ub = rng.normal(0, 1.0, (num_users, num_tags))
  logit = x @ M + ub[user] - 1.0
  v = (rng.random((n, num_tags)) < 1 / (1 + np.exp(-logit))).astype(np.float32)
  v[:, 1] = np.maximum(v[:, 1], v[:, 0] * (rng.random(n) < 0.8))  # tag 0 -> tag 1
  return x, v, user.reshape(-1, 1)


@pytest.mark.extended
@pytest.mark.parametrize("objective", [
    "cd", pytest.param("discriminative", marks=pytest.mark.slow),
    pytest.param("pcd", marks=pytest.mark.slow)])
def test_every_learner_learns_the_planted_tags(objective):
  """Held-out exact log p(v | x) improves on the initial (feature-blind) model."""
  x, v, user = planted(0, 600)
  config = TrainConfig(num_hidden=4, cd_k=1, batch_size=50, num_epochs=15)
  learner = disc.audio_learner(config, num_aux=4, num_features=3, objective=objective,
                               hidden_input=True)
  train = disc.make_audio_dataset(v[:400], user[:400], x[:400])
  val = disc.make_audio_dataset(v[400:], -np.ones_like(user[400:]), x[400:])
  hp = disc.make_audio_hparams(learning_rate=0.1, l1_aux=1e-3)
  result = fit(jax.random.key(0), learner, config,
                                                    train, hp, val)
  state0 = learner.init(jax.random.split(jax.random.key(0))[0], train, hp)
  before = float(disc.mean_log_likelihood(learner.model(state0, hp), val))
  assert float(result.best_val) > before + 0.3
  assert np.all(np.isfinite(np.asarray(result.val_history)))


def test_lazy_l1_on_entity_rows_matches_dense_prox_and_zeroes_unused_rows():
  """A row no minibatch touches stays exactly 0; a huge L1 keeps every row at 0."""
  x, v, user = planted(1, 200, num_users=3)
  config = TrainConfig(num_hidden=3, batch_size=50, num_epochs=2)
  learner = disc.audio_learner(config, num_aux=5, num_features=3,
                               objective="cd")  # rows 3, 4 unused
  train = disc.make_audio_dataset(v, user, x)
  for l1, all_zero in ((1e-3, False), (1e3, True)):
    hp = disc.make_audio_hparams(l1_aux=l1)
    params = fit(jax.random.key(1), learner, config, train, hp).params
    W_aux = np.asarray(params.crbm.W_aux)
    assert np.all(W_aux[3:] == 0.0)
    assert np.all(W_aux[:3] == 0.0) == all_zero
