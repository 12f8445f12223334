"""Distance-aware clip model: neighbour table, reduction to track+clip at ℓ=0, gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax import learn
from crbm_jax.data.aux_rows import clip_aux_rows
from crbm_jax.learn import clip_distance as drift
from crbm_jax.learn.contrastive import cd_sampler
from tracing import counted_jit
from crbm_jax.data.observations import build_observations
from crbm_jax.data.tagtable import TagTable


def _table(with_start=True):
  # Track t0: clips a (0 s), b (30 s), c (90 s) of a 120 s track; track t1: clip d alone.
  rows = [("a", "u1", "t0", 0.0, "rock"), ("a", "u2", "t0", 0.0, "pop"),
          ("b", "u1", "t0", 30.0, "rock"), ("c", "u3", "t0", 90.0, "jazz"),
          ("d", "u2", "t1", 10.0, "pop"), ("d", "u3", "t1", 10.0, "rock")]
  clip, user, track, start, tag = (np.array(x) for x in zip(*rows))
  return TagTable(clip=clip, tag=tag, count=np.ones(len(rows), np.int64), user=user,
                  track=track, start=start.astype(float) if with_start else None,
                  track_duration=np.full(len(rows), 120.0))


def test_clip_neighbours_lists_the_track_clips_self_first_with_fractional_distances():
  obs = build_observations(_table(), aux_groups=("user", "track", "clip"))
  nb = drift.clip_neighbours(obs)
  names = list(obs.entity_names[2])
  off = int(obs.offsets[2])
  row = lambda name: off + names.index(name)
  a = names.index("a")
  assert nb.column == 2 and nb.offset == off and nb.rows.shape == (4, 3)
  assert nb.rows[a].tolist() == [row("a"), row("b"), row("c")]
  np.testing.assert_allclose(nb.dist[a], [0.0, 0.25, 0.75])
  d = names.index("d")
  assert nb.rows[d].tolist() == [row("d"), -1, -1]


def test_missing_start_or_clip_group_raises_a_clear_error():
  with pytest.raises(drift.DriftError, match="start"):
    drift.clip_neighbours(build_observations(_table(False), aux_groups=("track", "clip")))
  with pytest.raises(drift.DriftError, match="no 'clip' group"):
    drift.clip_neighbours(build_observations(_table(), aux_groups=("track",)))


def _setup(seed=0):
  obs = build_observations(_table(), aux_groups=("user", "track", "clip"))
  nb = drift.clip_neighbours(obs)
  rng = np.random.default_rng(seed)
  v_dim, h_dim = obs.num_visible, 4
  params = cj.CRBMParams(jnp.asarray(rng.normal(0, 0.5, (v_dim, h_dim)), jnp.float32),
                         jnp.asarray(rng.normal(0, 0.5, (obs.num_aux, v_dim)), jnp.float32),
                         jnp.asarray(rng.normal(0, 0.5, v_dim), jnp.float32),
                         jnp.zeros(h_dim))
  return obs, nb, params


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("length", [0.0, 0.3, 5.0, np.inf])
def test_effective_params_give_the_same_visible_bias_as_the_training_parametrisation(
    length, normalize):
  obs, nb, params = _setup()
  nb = nb._replace(normalize=normalize)
  aux = jnp.asarray(obs.aux)
  rows, dist = drift.expand_aux(aux, nb)
  training = params.b + drift.weighted_aux_bias(params.W_aux, rows,
                                                drift.expanded_weights(rows, dist, length, nb))
  evaluation = cj.visible_bias(drift.effective_params(params, nb, length), aux)
  np.testing.assert_allclose(training, evaluation, rtol=1e-5, atol=1e-6)
  if length == 0.0:
    np.testing.assert_allclose(evaluation, cj.visible_bias(params, aux), atol=1e-6)
  if length == np.inf and normalize:  # every clip of track t0 gets the mean of its 3 rows
    eff = drift.effective_params(params, nb, length).W_aux
    t0 = np.array([nb.offset + i for i, n in enumerate(obs.entity_names[2]) if n in "abc"])
    np.testing.assert_allclose(eff[t0], np.tile(params.W_aux[t0].mean(0), (3, 1)),
                               rtol=1e-5, atol=1e-6)


def _batch(obs):
  data = cj.make_dataset(obs.X, obs.aux)
  return data, learn.Batch(data.v, data.aux, data.weight, jnp.arange(data.v.shape[0]))


def _state_with(learner, data, hp, params):
  return learner.init(jax.random.key(0), data, hp)._replace(params=params)


@pytest.mark.extended
def test_drift_step_at_zero_length_equals_the_track_clip_cd_step():
  obs, nb, params = _setup(1)
  data, batch = _batch(obs)
  config = cj.TrainConfig(num_hidden=4, batch_size=len(obs.X))
  hp = cj.make_hparams(learning_rate=0.1, momentum=0.5, weight_decay=1e-3, l1_aux=1e-2,
                       aux_lr_scale=2.0, kernel_length=0.0)
  cd, dist = learn.cd(config, obs.num_aux), learn.distance_aware(config, obs.num_aux, nb)
  s_cd, s_drift = _state_with(cd, data, hp, params), _state_with(dist, data, hp, params)
  cd_step, dist_step = jax.jit(cd.step), jax.jit(dist.step)
  for step in range(5):
    key = jax.random.key(step)
    s_cd, _ = cd_step(key, s_cd, batch, hp)
    s_drift, _ = dist_step(key, s_drift, batch, hp)
  for a, b in zip(cd.model(s_cd, hp), dist.model(s_drift, hp)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_drift_gradient_reaches_neighbour_rows_through_the_kernel():
  # One plain-SGD step (no momentum, decay or L1): the W_aux change must equal the step
  # size times the vector-Jacobian product of the effective visible bias with the CD
  # statistic dvis.
  obs, nb, params = _setup(2)
  data, batch = _batch(obs)
  length = jnp.asarray(0.4)
  hp = cj.make_hparams(learning_rate=0.2, momentum=0.0, weight_decay=0.0, l1_aux=0.0,
                       aux_lr_scale=1.5, kernel_length=length)
  config = cj.TrainConfig(num_hidden=4, batch_size=len(obs.X))
  learner = learn.distance_aware(config, obs.num_aux, nb)
  key = jax.random.key(3)
  state, _ = jax.jit(learner.step)(key, _state_with(learner, data, hp, params), batch, hp)
  aux = jnp.asarray(obs.aux)
  vis = lambda W_aux: cj.visible_bias(drift.effective_params(params._replace(W_aux=W_aux),
                                                             nb, length), aux)
  h0 = cj.hidden_given_visible(params, batch.v)
  _, vk, _, _ = cd_sampler(config).negative(key, params, (), batch, h0, vis(params.W_aux),
                                            None)
  dvis = (batch.v - vk[0]) / len(obs.X)
  _, vjp = jax.vjp(vis, params.W_aux)
  expected = params.W_aux + 0.2 * 1.5 * vjp(dvis)[0]
  np.testing.assert_allclose(state.params.W_aux, expected, rtol=1e-5, atol=1e-6)
  clip_b = nb.offset + list(obs.entity_names[2]).index("b")
  row_a_obs = np.flatnonzero(np.asarray(obs.clip) == "a")
  assert row_a_obs.size and np.any(np.asarray(dvis)[row_a_obs] != 0)
  assert np.any(np.asarray(vjp(dvis)[0][clip_b]) != 0)


@pytest.mark.extended
def test_fit_drift_runs_and_does_not_recompile_across_lengths():
  obs, nb, _ = _setup()
  data = cj.make_dataset(np.tile(obs.X, (4, 1)), np.tile(obs.aux, (4, 1)))
  config = cj.TrainConfig(num_hidden=3, batch_size=6, num_epochs=3)
  jitted, traces = counted_jit(
      learn.make_fit(config, obs.num_aux, learn.distance_aware(config, obs.num_aux, nb)))
  for ell in (0.1, 1.0):
    res = jitted(jax.random.key(0), cj.make_hparams(kernel_length=ell), data, data)
    assert np.all(np.isfinite(np.asarray(res.history.val_pl)))
  assert len(traces) == 1


def test_recovery_auc_orders_and_validates_shapes():
  from crbm_jax.util.stats import recovery_auc  # pylint: disable=import-outside-toplevel
  truth = np.array([[1, 0, 1], [0, 1, 0]], bool)
  seen = np.array([[1, 0, 0], [0, 0, 0]], bool)
  perfect = truth.astype(float)
  assert recovery_auc(truth, perfect)["overall"] == 1.0
  assert recovery_auc(truth, perfect, ~seen)["overall"] == 1.0
  assert recovery_auc(truth, perfect, ~seen)["num_positive"] == 2
  assert recovery_auc(truth, 1.0 - truth)["overall"] == 0.0
  with pytest.raises(ValueError, match="same"):
    recovery_auc(truth, np.zeros((2, 2)))


def test_clip_aux_rows_factor_out_the_user():
  obs = build_observations(_table(), aux_groups=("user", "track", "clip"))
  names, aux = clip_aux_rows(obs)
  assert list(names) == list(obs.entity_names[2])
  assert np.all(aux[:, 0] == -1)
  assert np.all(aux[:, 2] == obs.offsets[2] + np.arange(len(names)))


@pytest.mark.slow
def test_run_beyond_smoke_writes_every_section_and_consistent_json(tmp_path):
  from crbm_jax.configs import beyond
  from crbm_jax.paper import beyond as beyond_lib
  out = beyond_lib.run_beyond(beyond.get_config("smoke"), str(tmp_path))
  md = (tmp_path / "beyond.md").read_text()
  for heading in ("Table 2 rows with the true log-likelihood", "CD-1 vs PCD",
                  "Distance-aware clip model", "hidden true tags", "Cost, measured"):
    assert heading in md
  res = out["results"]
  assert set(res["samplers"]) == {"CD-1", "PCD", "PT (3 temperatures)"}
  for r in list(res["table2"].values()) + list(res["samplers"].values()):
    assert np.isfinite(r["ll_per_obs"][0]) and r["ll_per_obs"][0] < 0
  cost = {(r["method"], r["aux"]): r for r in out["cost"]["fits"]}
  assert cost[("CD-1", "track")]["vs_cd1"] == 1.0
  assert cost[("PT (3 temperatures)", "track")]["seconds_per_epoch"] > 0
  assert cost[("distance-aware, sum kernel", "user+track+clip")]["vs_cd1"] > 0
