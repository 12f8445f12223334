"""Early stopping and the validation search (crbm_jax.learn.search / select)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crbm_jax import learn
from crbm_jax.learn import search, select
from crbm_jax.learn.space import Point, hidden_masks, stack_hparams
from crbm_jax.model.pseudolikelihood import balanced_log_pl
from datagen import topic_track_data

RULE = search.StopRule(patience=2, tol=1e-4, num_epochs=8)


def _data():
  return topic_track_data()


def _run(points, groups=None, **kw):
  train, val, _, num_aux = _data()
  groups = np.ones((len(points), 2)) if groups is None else groups
  config = learn.TrainConfig(num_hidden=max(p.num_hidden for p in points), batch_size=20)
  return search.run_search(jax.random.key(0), train, val, num_aux, config,
                           stack_hparams(points), hidden_masks(points, config.num_hidden),
                           groups, kw.pop("rule", RULE), **kw)


def _tracker(**kw):
  t = search.init_tracker((3,), jnp.array([-1.0, -1.0, -1.0]))
  return t._replace(**{k: jnp.asarray(v) for k, v in kw.items()})


def test_update_tracker_stops_for_each_reason():
  rule = search.StopRule(patience=2, tol=0.01, num_epochs=10, diverge_margin=0.5)
  best = jnp.array([-0.9, -0.9, -0.9])
  # improvement resets; a tiny one (< tol) counts as stale; a big fall is divergence
  t = search.update_tracker(_tracker(stale=[1, 1, 0]), best, jnp.array([-0.85, -0.895, -2.0]),
                            3, rule)
  assert t.stale.tolist() == [0, 2, 1]
  assert [search.REASONS[r] for r in t.reason] == ["running", "converged", "diverged"]
  assert t.active.tolist() == [True, False, False] and t.epochs.tolist() == [3, 3, 3]
  # a non-finite value diverges; the epoch budget; the host's keep mask
  t = search.update_tracker(_tracker(), best, jnp.array([jnp.nan, -0.8, -0.8]), 10, rule,
                            keep=jnp.array([True, True, False]))
  assert [search.REASONS[r] for r in t.reason] == ["diverged", "max_epochs", "max_epochs"]
  t = search.update_tracker(_tracker(), best, jnp.array([-0.8, -0.8, -0.8]), 4, rule,
                            keep=jnp.array([True, False, True]))
  assert [search.REASONS[r] for r in t.reason] == ["running", "halved", "running"]
  # the first evaluation falls below the untrained model's PL by more than the margin
  t = search.update_tracker(_tracker(), jnp.full(3, -jnp.inf), jnp.array([-1.2, -1.6, -1.0]),
                            1, rule)
  assert [search.REASONS[r] for r in t.reason] == ["running", "diverged", "running"]
  # a stopped model stays stopped whatever comes next
  t2 = search.update_tracker(t, best, jnp.array([0.0, 0.0, 0.0]), 2, rule)
  assert not bool(t2.active[1]) and search.REASONS[int(t2.reason[1])] == "diverged"


def test_halving_keeps_the_best_fraction_of_the_race_and_never_restarts_stopped_models():
  scores = np.array([-1.0, -0.5, -0.7, np.nan, -0.6, -0.9])
  alive = np.array([True, True, True, False, True, True])
  active = np.array([True, True, False, False, True, True])
  keep = search.halving_keep(scores, alive, active, 0.5)
  # ranks among the 5 alive: -0.5, -0.6, -0.7 (3 = ceil(5/2)) kept; model 2 is not
  # active (converged) so it is not stopped again; 0 and 5 are stopped.
  assert keep.tolist() == [False, True, True, True, True, False]


@pytest.mark.extended
def test_a_stopped_model_is_frozen_and_keeps_its_best_epoch():
  points = [Point(6, 0.1, 0.5, 1e-4, 0.0, 5.0), Point(6, 0.2, 0.5, 1e-4, 0.0, 5.0)]
  rule = search.StopRule(patience=1, tol=0.5, num_epochs=6)   # tol too high: stops at 2
  result = _run(points, rule=rule)
  assert result.reason == ["converged", "converged"] and result.epochs.tolist() == [2, 2]
  # the best epoch is the better of the two evaluations (any improvement counts for the
  # best; only improvements > tol reset the patience)
  train, val, _, num_aux = _data()
  for m in range(2):
    assert result.best_epoch[m] == int(np.nanargmax(result.val_history[m]))
    params = search.model_params(result.params, m)
    pl = balanced_log_pl(params, val, 64)
    np.testing.assert_allclose(float(pl), result.best_val_pl[m], rtol=1e-5)
    # frozen after epoch 2: nothing recorded later
    assert np.isnan(result.val_history[m, 2:]).all()


def test_diverging_models_are_caught_and_excluded_and_all_diverging_raises():
  good = Point(6, 0.1, 0.5, 1e-4, 0.0, 5.0)
  bad = Point(6, 1e6, 0.5, 1e-4, 0.0, 5.0)
  result = _run([good, bad])
  assert result.reason[1] == "diverged" and result.epochs[1] == 1
  assert result.best_epoch[1] == -1 and np.isfinite(result.best_val_pl[0])
  train, val, _, num_aux = _data()
  space = search.SearchSpace(num_hidden=(6,), learning_rate=(1e6, 3e6), l1_aux=(0.0,),
                             aux_lr_scale=(1.0,), weight_decay=(0.0,), batch_size=(20,))
  with pytest.raises(search.DivergenceError, match="lower the learning rates"):
    search.select_model(jax.random.key(0), train, val, num_aux, space, rule=RULE)


@pytest.mark.extended
def test_select_model_returns_the_best_validation_row_and_its_parameters():
  train, val, _, num_aux = _data()
  space = search.SearchSpace(num_hidden=(3, 6), learning_rate=(0.05, 0.2), l1_aux=(0.0,),
                             aux_lr_scale=(1.0, 10.0), weight_decay=(1e-4,),
                             batch_size=(20, 50))
  sel = search.select_model(jax.random.key(1), train, val, num_aux, space, rule=RULE,
                            num_configs=5, seed=3, halving=None)
  assert len(sel.table) == 5 and {r["batch_size"] for r in sel.table} == {20, 50}
  best = max(sel.table, key=lambda r: r["best_val_pl"])
  assert sel.val_pl == best["best_val_pl"]
  assert all(sel.config[k] == best[k] for k in search.SPACE_FIELDS)
  assert sel.params.W.shape == (12, sel.config["num_hidden"])
  pl = balanced_log_pl(sel.params, val, 64)
  np.testing.assert_allclose(float(pl), sel.val_pl, rtol=1e-5)
  # the same seed draws the same configurations and gives the same table
  again = search.select_model(jax.random.key(1), train, val, num_aux, space, rule=RULE,
                              num_configs=5, seed=3, halving=None)
  assert again.table == sel.table


def test_fit_and_compare_reports_paired_differences_that_sum_to_the_test_figures():
  train, val, test, num_aux = _data()
  space = search.SearchSpace(num_hidden=(6,), learning_rate=(0.1,), l1_aux=(0.0,),
                             aux_lr_scale=(5.0,), weight_decay=(1e-4,), batch_size=(20,))
  cmp = select.fit_and_compare(jax.random.key(2), train, val, test, num_aux, space,
                               rule=RULE, halving=None)
  assert {r["conditioned"] for r in cmp.table} == {True, False}
  for name, d in cmp.differences.items():
    a, b = name.split("_minus_")
    assert d["difference"] == pytest.approx(cmp.test[a] - cmp.test[b], abs=1e-9)
    assert d["stderr"] > 0
  base = balanced_log_pl  # the contributions sum to the library figure
  np.testing.assert_allclose(cmp.test["crbm"], float(base(cmp.selected.params, test, 64)),
                             rtol=1e-5)
  # the conditioned model uses the track rows, and is better than the unconditional one
  d = cmp.differences["crbm_minus_unconditional"]
  assert d["difference"] > 2 * d["stderr"]
  assert cmp.curve["epochs"] == len(cmp.curve["recon_error"]) > 0
  from crbm_jax.fitting.report import learning_curve_png  # pylint: disable=import-outside-toplevel
  png = learning_curve_png(cmp.curve, cmp.val["baseline"], "t")
  assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_contributions_sum_to_the_balanced_pseudo_likelihood():
  from crbm_jax.model.pseudolikelihood import balanced_pseudo_likelihood
  rng = np.random.default_rng(0)
  per_bit = np.log(rng.random((30, 7)))
  v = (rng.random((30, 7)) < 0.3).astype(np.float32)
  np.testing.assert_allclose(select.contributions(per_bit, v).sum(),
                             float(balanced_pseudo_likelihood(jnp.asarray(per_bit),
                                                              jnp.asarray(v))), rtol=1e-5)
  d = select.paired(np.ones(4), np.zeros(4))
  assert d["difference"] == 4 and d["stderr"] == 0


def test_search_space_defaults_are_the_search_specs():
  # one source: configs/search.SPACE_DEFAULTS (the schema crbm-fit and Table 2 read)
  from crbm_jax.configs import search as search_spec  # pylint: disable=import-outside-toplevel
  space = search.SearchSpace()
  assert set(search_spec.SPACE_DEFAULTS) <= set(space._fields)
  for name, values in search_spec.SPACE_DEFAULTS.items():
    assert tuple(getattr(space, name)) == tuple(values), name
  assert space.conditioned == (True,)
