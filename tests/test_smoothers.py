"""The smoothing criterion and count splitting (issue 23)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crbm_jax.learn.base import Dataset
from crbm_jax.model import marginals
from crbm_jax.model.crbm import CRBMParams
from crbm_jax.smoothers import count_split, criterion


def _params(seed, V=5, H=3, A=4, scale=1.0):
  r = np.random.default_rng(seed)
  return CRBMParams(W=jnp.asarray(r.normal(0, scale, (V, H)), jnp.float32),
                    W_aux=jnp.asarray(r.normal(0, 2 * scale, (A, V)), jnp.float32),
                    b=jnp.asarray(r.normal(0, scale, V), jnp.float32),
                    c=jnp.asarray(r.normal(0, scale, H), jnp.float32))


def _brute_force_marginals(params, aux):
  """p(v_i = 1 | a) by enumerating every (v, h) of a tiny model."""
  W, b, c = (np.asarray(x, np.float64) for x in (params.W, params.b, params.c))
  W_aux = np.asarray(params.W_aux, np.float64)
  V, H = W.shape
  vs = ((np.arange(2 ** V)[:, None] >> np.arange(V)) & 1).astype(np.float64)
  hs = ((np.arange(2 ** H)[:, None] >> np.arange(H)) & 1).astype(np.float64)
  out = []
  for row in np.asarray(aux):
    beta = b + sum(W_aux[r] for r in row if r >= 0)
    e = (vs @ beta)[:, None] + (hs @ c)[None, :] + vs @ W @ hs.T   # [2^V, 2^H]
    p = np.exp(e - e.max())
    p_v = p.sum(1) / p.sum()
    out.append(p_v @ vs)
  return np.array(out)


def _brute_force_criterion(p, X):
  ones = X > 0
  return 0.5 * (np.log(p[ones]).mean() + np.log1p(-p[~ones]).mean())


def test_exact_affinities_match_brute_force_enumeration():
  params = _params(0)
  aux = np.array([[0, 2], [1, -1], [-1, 3], [-1, -1]], np.int32)
  got = np.asarray(criterion.model_affinities(params, jnp.asarray(aux)))
  np.testing.assert_allclose(got, _brute_force_marginals(params, aux), atol=1e-5)


def test_sampled_affinities_within_monte_carlo_bounds_of_exact():
  params = _params(1, H=4, scale=0.7)
  aux = np.array([[0, 2], [1, 3]], np.int32)
  exact = marginals.exact_visible_marginals(params, aux)
  sampled = jax.jit(functools.partial(criterion.model_affinities, num_samples=3000,
                                      burn_in=50, exact_max_hidden=0))
  got = np.asarray(sampled(params, jnp.asarray(aux)))
  # Rao-Blackwellised mean of 3000 correlated sweeps: a generous bound, far tighter
  # than the spread of the affinities themselves.
  assert np.max(np.abs(got - exact)) < 0.03
  assert np.std(exact) > 0.1


def test_block_criterion_equals_brute_force_per_model_and_aggregation_is_exact():
  models = [_params(s) for s in (2, 3)]
  block = CRBMParams(W=jnp.stack([m.W for m in models]),
                     W_aux=jnp.stack([m.W_aux for m in models], 1),
                     b=jnp.stack([m.b for m in models]), c=jnp.stack([m.c for m in models]))
  r = np.random.default_rng(0)
  aux = np.array([[0, 2], [0, 2], [1, 3], [1, -1], [1, 3]], np.int32)
  X = (r.random((5, 5)) < 0.4).astype(np.float32)
  X[0, 0], X[1, 1] = 1, 0
  evaluate = jax.jit(criterion.smoothing_criterion()(None))
  per_obs = Dataset(jnp.asarray(X), jnp.asarray(aux), jnp.ones(5))
  got = np.asarray(evaluate(block, per_obs))
  want = [_brute_force_criterion(_brute_force_marginals(m, aux), X) for m in models]
  np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_allclose(np.asarray(evaluate(block, criterion.aggregate_rows(X, aux))),
                             got, atol=1e-5)


def test_smoothing_criterion_is_one_hashable_object_per_setting():
  assert criterion.smoothing_criterion() is criterion.smoothing_criterion()
  assert criterion.smoothing_criterion(10) is not criterion.smoothing_criterion(11)
  hash(criterion.smoothing_criterion())


def test_a_smoother_that_ignores_the_aux_rows_scores_worse_on_planted_data():
  """Planted: each clip has its own tag profile; the model that reads the clip rows
  predicts held-out observations better than the same model with those rows zeroed."""
  r = np.random.default_rng(0)
  C, V, H = 30, 6, 2
  logits = r.normal(0, 3, (C, V)) - 1.0
  uses = CRBMParams(W=jnp.zeros((V, H)), W_aux=jnp.asarray(logits, jnp.float32),
                    b=jnp.zeros(V), c=jnp.zeros(H))
  base = np.log(np.mean(1 / (1 + np.exp(-logits)), 0))  # the best clip-blind rates
  base = base - np.log1p(-np.exp(base))
  ignores = uses._replace(W_aux=jnp.zeros((C, V)), b=jnp.asarray(base, jnp.float32))
  aux = np.repeat(np.arange(C), 5)[:, None].astype(np.int32)
  X = (r.random((len(aux), V)) < 1 / (1 + np.exp(-logits[aux[:, 0]]))).astype(np.float32)
  block = lambda ps: CRBMParams(W=jnp.stack([p.W for p in ps]),
                                W_aux=jnp.stack([p.W_aux for p in ps], 1),
                                b=jnp.stack([p.b for p in ps]),
                                c=jnp.stack([p.c for p in ps]))
  evaluate = jax.jit(criterion.smoothing_criterion()(None))
  scores = np.asarray(evaluate(block([uses, ignores]), criterion.aggregate_rows(X, aux)))
  assert scores[0] > scores[1] + 0.1
  affinities = jax.jit(criterion.model_affinities)
  p_use = np.asarray(affinities(uses, jnp.asarray(aux)))
  p_ign = np.asarray(affinities(ignores, jnp.asarray(aux)))
  assert criterion.score_affinities(p_use, X).auc > criterion.score_affinities(p_ign, X).auc


def test_roc_auc_against_pairs():
  s, y = np.array([0.1, 0.4, 0.35, 0.8, 0.4]), np.array([0, 0, 1, 1, 1])
  pairs = [(a > b) + 0.5 * (a == b) for a in s[y == 1] for b in s[y == 0]]
  assert criterion.roc_auc(s, y) == pytest.approx(np.mean(pairs))
  assert np.isnan(criterion.roc_auc(s, np.zeros(5)))


def test_count_splitting_preserves_totals_and_is_deterministic_per_seed():
  counts = np.random.default_rng(0).integers(0, 6, (40, 7))
  tr, va = count_split.split_counts(3, counts, 0.7)
  np.testing.assert_array_equal(tr + va, counts)
  assert (tr >= 0).all() and (va >= 0).all()
  tr2, va2 = count_split.split_counts(3, counts, 0.7)
  np.testing.assert_array_equal(tr, tr2)
  tr3, _ = count_split.split_counts(4, counts, 0.7)
  assert not np.array_equal(tr, tr3)
  # Binomial(n, q): the train share of a large total is near q.
  big, _ = count_split.split_counts(0, np.full(2000, 10), 0.7)
  assert abs(big.mean() / 10 - 0.7) < 0.02


def test_count_splitting_refuses_non_integer_counts_in_one_line():
  with pytest.raises(count_split.CountSplitError, match="whole") as e:
    count_split.split_counts(0, np.array([1.0, 2.5]), 0.5)
  assert "\n" not in str(e.value)
  with pytest.raises(count_split.CountSplitError):
    count_split.split_counts(0, np.array([1, -1]), 0.5)


def test_held_out_observations_keep_clips_in_training():
  r = np.random.default_rng(0)
  # Aggregated counts: one observation per clip; the clip row is in train and val.
  counts = r.integers(0, 4, (20, 5))
  aux = np.stack([np.repeat(np.arange(5), 4), 5 + np.arange(20)], 1).astype(np.int32)
  held = count_split.held_out_observations(counts > 0, counts, aux, ("track", "clip"),
                                           0.3, seed=0)
  assert held.kind == "count splitting"
  np.testing.assert_array_equal(held.aux_val, aux)
  assert ((held.X_train > 0) | (held.X_val > 0) == (counts > 0)).all()
  # Per-user data: held-out observations lose the user row, their clips stay in training.
  n = 200
  aux_u = np.stack([r.integers(0, 30, n), 30 + r.integers(0, 10, n)], 1).astype(np.int32)
  X = (r.random((n, 5)) < 0.3).astype(np.uint8)
  held = count_split.held_out_observations(X, X, aux_u, ("user", "clip"), 0.2, seed=1)
  assert held.kind.startswith("held-out users")
  assert (held.aux_val[:, 0] == -1).all()
  assert set(held.aux_val[:, 1]) <= set(held.aux_train[:, 1])
  assert len(held.X_val) + len(held.X_train) == n


def test_criterion_for_groups_leaves_the_user_out():
  params = _params(5)
  block = CRBMParams(W=params.W[None], W_aux=params.W_aux[:, None], b=params.b[None],
                     c=params.c[None])
  X = (np.random.default_rng(1).random((3, 5)) < 0.5).astype(np.float32)
  with_user = np.array([[0, 2], [1, 3], [0, 3]], np.int32)
  without = with_user.copy()
  without[:, 0] = -1
  make = criterion.criterion_for_groups(("user", "clip"))
  assert make is criterion.smoothing_criterion(drop_columns=(0,))
  got = make(None)(block, Dataset(jnp.asarray(X), jnp.asarray(with_user), jnp.ones(3)))
  want = criterion.smoothing_criterion()(None)(
      block, Dataset(jnp.asarray(X), jnp.asarray(without), jnp.ones(3)))
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
