"""Smoothed affinities: per-clip aux rows, and sampled / mean-field / exact p(v_i = 1 | a)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from brute_force import exact_quantities, random_params
from crbm_jax.data import aux_rows
from crbm_jax.data.observations import ObservationError
from crbm_jax.model import marginals as smoothing
from crbm_jax.data.observations import build_observations
from crbm_jax.data.tagtable import TagTable

V, H, A = 4, 3, 5


def _params(seed, scale, num_visible=V, num_hidden=H, num_aux=A):
  raw = random_params(seed, num_visible, num_hidden, num_aux, scale)
  return cj.CRBMParams(*(jnp.asarray(x, jnp.float32) for x in raw)), raw


def _exact_marginals(raw, aux_rows):
  """p(v_i = 1 | a) by enumerating every (v, h) state (independent of model/marginals.py)."""
  out = []
  for row in aux_rows:
    ex = exact_quantities(*raw, list(row))
    out.append(np.exp(ex["log_pv"]) @ ex["vs"])
  return np.array(out)


def _table():
  rows = []
  for track in range(3):
    for clip in range(2):
      for user in range(3):
        if (track + clip + user) % 4 == 3:
          continue  # not every user tags every clip
        for tag in range(3):
          if (track * 7 + clip * 3 + user + tag) % 3:
            rows.append((f"t{track}c{clip}", f"u{user}", f"t{track}", f"tag{tag}"))
  clip, user, track, tag = (np.array(c) for c in zip(*rows))
  return TagTable(clip=clip, tag=tag, count=np.ones(len(clip), np.int64), user=user,
                  track=track)


def test_clip_aux_rows_factor_out_user_and_list_each_clip_once():
  table = _table()
  obs = build_observations(table, aux_groups=("user", "track", "clip"))
  clips, aux = aux_rows.clip_aux_rows(obs, factor_out=("user",))
  np.testing.assert_array_equal(clips, np.unique(table.clip))
  assert aux.shape == (len(clips), 3) and aux.dtype == np.int32
  assert np.all(aux[:, 0] == -1)
  for g, name in ((1, "track"), (2, "clip")):
    names = obs.entity_names[g][aux[:, g] - obs.offsets[g]]
    expected = [getattr(table, name)[table.clip == c][0] for c in clips]
    np.testing.assert_array_equal(names, expected)


def test_clip_aux_rows_keeps_user_when_not_factored_out_and_rejects_unknown_group():
  obs = build_observations(_table(), aux_groups=("track", "clip"))
  _, aux = aux_rows.clip_aux_rows(obs, factor_out=("user",))  # no user group: no-op
  assert np.all(aux >= 0)
  with pytest.raises(ObservationError, match="genre"):
    aux_rows.clip_aux_rows(obs, factor_out=("genre",))


def test_aux_rows_from_names_maps_known_and_counts_unknown_entities():
  groups = ("user", "track", "clip")
  names = (np.array(["u1", "u2"]), np.array(["ta", "tb"]), np.array(["c1", "c2", "c3"]))
  offsets = np.array([0, 2, 4])
  values = {"user": np.array(["u1", "u2", "u1"]), "track": np.array(["tb", "tz", ""]),
            "clip": np.array(["c3", "c1", "c9"])}
  aux, unknown = aux_rows.aux_rows_from_names(groups, names, offsets, values, 3)
  np.testing.assert_array_equal(aux, [[-1, 3, 6], [-1, -1, 4], [-1, -1, -1]])
  assert unknown == {"track": 1, "clip": 1}


def test_exact_visible_marginals_match_full_enumeration():
  params, raw = _params(1, 1.5)
  aux_rows = np.array([[0, 3], [-1, 2], [-1, -1], [4, 4]], np.int32)
  np.testing.assert_allclose(smoothing.exact_visible_marginals(params, aux_rows),
                             _exact_marginals(raw, aux_rows), rtol=1e-5, atol=1e-6)


@pytest.mark.extended
def test_sampled_affinities_match_exact_marginals_within_monte_carlo_error():
  params, raw = _params(2, 1.0)
  base = np.array([[1, 3], [-1, -1]], np.int32)
  chains = 300  # independent chains per aux row, each its own clip
  aux_rows = np.repeat(base, chains, axis=0)
  aff = smoothing.smooth_affinities(jax.random.key(0), params, aux_rows, num_samples=40,
                                    burn_in=50, batch=200)
  per_chain = aff.reshape(len(base), chains, V).astype(np.float64)
  mean = per_chain.mean(1)
  stderr = per_chain.std(1, ddof=1) / np.sqrt(chains)  # chains are independent
  exact = _exact_marginals(raw, base)
  assert np.all(stderr > 0)
  z = np.abs(mean - exact) / stderr
  assert np.all(z < 5.0), (mean, exact, stderr)


def test_mean_field_is_exact_without_hidden_coupling():
  params, _ = _params(3, 1.0)
  params = params._replace(W=jnp.zeros_like(params.W))
  aux_rows = np.array([[0, 2], [-1, 4]], np.int32)
  mf = smoothing.smooth_affinities(None, params, aux_rows, method="mean_field")
  np.testing.assert_allclose(mf, smoothing.exact_visible_marginals(params, aux_rows),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.extended
def test_sampled_affinities_do_not_depend_on_batch_size():
  params, _ = _params(4, 1.0)
  aux_rows = np.array([[0, 1], [2, -1], [-1, -1], [3, 4], [1, 1]], np.int32)
  key = jax.random.key(7)
  a = smoothing.smooth_affinities(key, params, aux_rows, num_samples=30, burn_in=5, batch=2)
  b = smoothing.smooth_affinities(key, params, aux_rows, num_samples=30, burn_in=5, batch=5)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (5, V) and np.all((a >= 0) & (a <= 1))


def test_compare_smoothing_methods_reports_differences_and_exact_errors():
  params, raw = _params(5, 0.5)
  aux_rows = np.array([[0, 1], [-1, 2], [3, -1], [4, 4], [-1, -1]], np.int32)
  cmp = smoothing.compare_smoothing_methods(jax.random.key(1), params, aux_rows,
                                            num_samples=30, burn_in=5, batch=5)
  np.testing.assert_allclose(cmp.mean_abs_diff, np.mean(np.abs(cmp.sampled - cmp.mean_field)),
                             rtol=1e-5)
  np.testing.assert_allclose(cmp.exact, _exact_marginals(raw, aux_rows), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(cmp.mean_field_vs_exact,
                             np.mean(np.abs(cmp.mean_field - cmp.exact)), rtol=1e-5)
  assert -1.0 <= cmp.correlation <= 1.0


def test_smooth_affinities_rejects_bad_requests():
  params, _ = _params(6, 1.0)
  with pytest.raises(smoothing.SmoothingError, match="method"):
    smoothing.smooth_affinities(None, params, np.zeros((1, 2), np.int32), method="gibbs")
  with pytest.raises(smoothing.SmoothingError, match="auxiliary rows"):
    smoothing.smooth_affinities(None, params, np.array([[A, -1]], np.int32),
                                method="mean_field")


def _aux_rows_3groups(num_clips, seed=0):
  rng = np.random.default_rng(seed)
  rows = np.stack([rng.integers(0, 2, num_clips), rng.integers(2, 4, num_clips),
                   rng.integers(4, A, num_clips)], 1).astype(np.int32)
  rows[rng.random(num_clips) < 0.3, 1] = -1  # some clips lack the second group's row
  return rows


def test_aux_effect_exact_equals_its_definition_in_any_chunking():
  params, raw = _params(5, 1.5)
  rows = _aux_rows_3groups(23)
  groups = ("user", "track", "clip")
  full = _exact_marginals(raw, rows)  # by enumeration, not marginals.py

  def moved(g):
    without = rows.copy()
    without[:, g] = -1
    return float(np.mean(np.abs(full - _exact_marginals(raw, without))))
  everything = float(np.mean(np.abs(full - _exact_marginals(raw, np.full_like(rows, -1)))))
  for chunk in (1, 4, 10, 1000):  # 23 chunks, 6 (one short), 3, one
    out = smoothing.aux_effect(params, rows, groups, batch=4, clip_chunk=chunk)
    assert out["method"] == "exact" and out["noise"] == 0.0
    assert "user" not in out  # skipped (factored out) by default
    np.testing.assert_allclose([out["track"], out["clip"], out["all"]],
                               [moved(1), moved(2), everything], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out["relative"], everything / full.mean(), rtol=1e-6)
    assert out["rows_present"] == {"track": float(np.mean(rows[:, 1] >= 0)), "clip": 1.0}


def test_aux_effect_sampled_does_not_depend_on_the_chunk_size():
  params, _ = _params(6, 1.5)
  rows = _aux_rows_3groups(37, seed=1)
  key = jax.random.key(3)
  kw = dict(rng_key=key, num_samples=20, burn_in=3, batch=8, max_exact_hidden=0)
  one = smoothing.aux_effect(params, rows, ("user", "track", "clip"), clip_chunk=10_000, **kw)
  many = smoothing.aux_effect(params, rows, ("user", "track", "clip"), clip_chunk=8, **kw)
  assert one["method"].startswith("sampled") and one["noise"] > 0
  assert one.keys() == many.keys()
  for name in ("track", "clip", "all", "noise", "relative"):
    np.testing.assert_allclose(many[name], one[name], rtol=1e-12)
  # the sampled figures agree with the exact ones within Monte-Carlo error
  exact = smoothing.aux_effect(params, rows, ("user", "track", "clip"), batch=8)
  assert abs(one["all"] - exact["all"]) < 3 * one["noise"] + 0.02
