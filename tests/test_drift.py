"""Distance-aware clip model: neighbour table, reduction to track+clip at ℓ=0, gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax import drift, train as train_lib
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


def test_drift_step_at_zero_length_equals_the_track_clip_cd_step():
  obs, nb, params = _setup(1)
  batch = cj.make_dataset(obs.X, obs.aux)
  hp = cj.make_hparams(learning_rate=0.1, momentum=0.5, weight_decay=1e-3, l1_aux=1e-2)
  config = cj.TrainConfig(num_hidden=4, batch_size=len(obs.X), l1_mode="dense")
  s_cd = s_drift = train_lib.init_state(params, hp)
  for step in range(5):
    key = jax.random.key(step)
    s_cd, _ = train_lib.cd_step(key, s_cd, batch, hp, config)
    s_drift, _ = drift.drift_step(key, s_drift, batch, hp, jnp.asarray(0.0), nb, config)
  for a, b in zip(s_cd.params, s_drift.params):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_drift_gradient_reaches_neighbour_rows_through_the_kernel():
  # One plain-SGD step (no momentum, decay or L1): the W_aux change must equal lr times the
  # vector-Jacobian product of the effective visible bias with the CD statistic dvis.
  obs, nb, params = _setup(2)
  batch = cj.make_dataset(obs.X, obs.aux)
  hp = cj.make_hparams(learning_rate=0.2, momentum=0.0, weight_decay=0.0, l1_aux=0.0)
  config = cj.TrainConfig(num_hidden=4, batch_size=len(obs.X))
  length = jnp.asarray(0.4)
  key = jax.random.key(3)
  state, _ = drift.drift_step(key, train_lib.init_state(params, hp), batch, hp, length, nb,
                              config)
  aux = jnp.asarray(obs.aux)
  vis = lambda W_aux: cj.visible_bias(drift.effective_params(params._replace(W_aux=W_aux),
                                                             nb, length), aux)
  h0 = jax.nn.sigmoid(batch.v @ params.W + params.c)
  vk, _ = train_lib.negative_phase(key, params, batch.v, h0, vis(params.W_aux), config)
  dvis = (batch.v - vk) / len(obs.X)
  _, vjp = jax.vjp(vis, params.W_aux)
  expected = params.W_aux + hp.learning_rate * vjp(dvis)[0]
  np.testing.assert_allclose(state.params.W_aux, expected, rtol=1e-5, atol=1e-6)
  clip_b = nb.offset + list(obs.entity_names[2]).index("b")
  row_a_obs = np.flatnonzero(np.asarray(obs.clip) == "a")
  assert row_a_obs.size and np.any(np.asarray(dvis)[row_a_obs] != 0)
  assert np.any(np.asarray(vjp(dvis)[0][clip_b]) != 0)


def test_fit_drift_runs_and_does_not_recompile_across_lengths():
  obs, nb, _ = _setup()
  data = cj.make_dataset(np.tile(obs.X, (4, 1)), np.tile(obs.aux, (4, 1)))
  config = cj.TrainConfig(num_hidden=3, batch_size=6, num_epochs=3)
  traces = []
  fit_fn = drift.make_fit_drift(config, obs.num_aux, nb)
  jitted = jax.jit(lambda k, hp, tr, va, ell: (traces.append(1),
                                               fit_fn(k, hp, tr, va, length=ell))[1])
  for ell in (0.1, 1.0):
    res = jitted(jax.random.key(0), cj.make_hparams(), data, data, jnp.asarray(ell))
    assert np.all(np.isfinite(np.asarray(res.history.val_pl)))
  assert len(traces) == 1


def test_truth_recovery_auc_orders_and_validates_shapes():
  truth = np.array([[1, 0, 1], [0, 1, 0]], bool)
  seen = np.array([[1, 0, 0], [0, 0, 0]], bool)
  perfect = drift.truth_recovery(truth.astype(float), truth, seen)
  assert perfect["auc_all"] == 1.0 and perfect["auc_hidden"] == 1.0
  assert perfect["hidden_positives"] == 2
  flipped = drift.truth_recovery(1.0 - truth, truth, seen)
  assert flipped["auc_all"] == 0.0
  with pytest.raises(drift.DriftError, match="same"):
    drift.truth_recovery(np.zeros((2, 2)), truth, seen)


def test_clip_aux_rows_factor_out_the_user():
  obs = build_observations(_table(), aux_groups=("user", "track", "clip"))
  names, aux = drift.clip_aux_rows(obs)
  assert list(names) == list(obs.entity_names[2])
  assert np.all(aux[:, 0] == -1)
  assert np.all(aux[:, 2] == obs.offsets[2] + np.arange(len(names)))


@pytest.mark.slow
def test_run_beyond_smoke_writes_every_section_and_consistent_json(tmp_path):
  from crbm_jax import beyond as beyond_lib
  from crbm_jax.configs import beyond
  out = beyond_lib.run_beyond(beyond.get_config("smoke"), str(tmp_path))
  md = (tmp_path / "beyond.md").read_text()
  for heading in ("Table 2 rows with the true log-likelihood", "CD-1 vs PCD",
                  "Distance-aware clip model", "hidden true tags", "Cost, measured"):
    assert heading in md
  res = out["results"]
  assert set(res["samplers"]) == {"CD-1", "PCD", "PT (3 temperatures)"}
  for r in list(res["table2"].values()) + list(res["samplers"].values()):
    assert np.isfinite(r["ll_per_obs"][0]) and r["ll_per_obs"][0] < 0
  bench = out["benchmark"]
  assert bench["ratios_vs_cd1"]["cd1"] == 1.0 and bench["pt"] > 0
