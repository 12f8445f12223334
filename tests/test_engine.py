"""The training engine (crbm_jax.learn.engine): one round, the scan and host drivers.

The equivalences every training entry point rests on: a block of one model equals
``fit``; the split axis equals one block per split; successive halving follows the
exhaustive trajectories; compaction changes nothing; the scan driver's in-graph early
stopping equals the host driver's; any block learner runs through the host driver."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crbm_jax import learn
from crbm_jax.learn import block as block_lib
from crbm_jax.learn import engine, halving as halving_lib, search
from crbm_jax.learn.base import Dataset, TrainConfig
from crbm_jax.learn.space import Point, hidden_masks, stack_hparams
from datagen import topic_track_data

V, A, S = 12, 10, 3


def _split(seed, n, pad=3):
  rng = np.random.default_rng(seed)
  v = (rng.random((n, V)) < 0.2).astype(np.float32)
  aux = np.stack([rng.integers(0, 6, n), 6 + rng.integers(0, 4, n)], 1).astype(np.int32)
  w = np.ones(n, np.float32)
  w[n - pad:] = 0.0  # padding rows, as Table 2's _split_datasets makes them
  return Dataset(jnp.asarray(v), jnp.asarray(aux), jnp.asarray(w))


SPLITS = [tuple(_split(10 * s + i, n) for i, n in enumerate((40, 16, 16))) for s in range(S)]
TRAIN, VAL, TEST = (_split(100 + i, n, pad=0) for i, n in enumerate((40, 16, 16)))
CONFIG = TrainConfig(num_hidden=5, batch_size=10, num_epochs=3, eval_chunk=8)
POINTS = [Point(h, lr, 0.5, 1e-3, l1, sc) for h, lr, l1, sc in
          [(5, 0.1, 1e-2, 1.0), (3, 0.3, 0.0, 10.0), (5, 0.05, 1e-3, 3.0), (4, 0.2, 1e-2, 1.0)]]
GROUPS = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], np.float32)


def _keys(models=len(POINTS)):
  model = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(jax.random.key(0), s),
                                              models))(jnp.arange(S))
  data = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(1), s))(jnp.arange(S))
  return model, data


def _stacked(parts=3):
  return [jax.tree.map(lambda *x: jnp.stack(x), *[s[i] for s in SPLITS]) for i in range(parts)]


@functools.lru_cache(maxsize=None)
def _per_split():
  fn = jax.jit(block_lib.make_block_fit(CONFIG, A))
  model_keys, data_keys = _keys()
  return [jax.device_get(block_lib.run_block(fn, model_keys[s], POINTS, GROUPS, 5,
                                             data_keys[s], *SPLITS[s])) for s in range(S)]


def test_a_block_of_one_model_equals_fit():
  # fit(key) initialises with split(key)[0] and draws the data order and Gibbs noise from
  # split(key)[1]: the block given those keys must follow the same trajectory, with the
  # model axis vmapped, W_aux laid out [A, 1, V] and the pseudo-likelihood fused.
  hp = learn.make_hparams(0.1, 0.5, 1e-3, 1e-2, aux_lr_scale=3.0)
  key = jax.random.key(11)
  single = jax.jit(learn.make_fit(CONFIG, A))(key, hp, TRAIN, VAL)
  key_init, key_data = jax.random.split(key)
  block = jax.jit(block_lib.make_block_fit(CONFIG, A))(
      key_init[None], jax.tree.map(lambda x: x[None], hp), jnp.ones((1, 5)),
      jnp.ones((1, 2)), key_data, TRAIN, VAL, TEST)
  np.testing.assert_allclose(block.val_pl[0], single.history.val_pl, rtol=1e-6)
  np.testing.assert_allclose(block.recon_error[0], single.history.recon_error, rtol=1e-5)
  assert int(block.best_epoch[0]) == int(single.best_epoch)
  for name in ("W", "b", "c", "W_aux"):
    np.testing.assert_allclose(getattr(block.params, name)[0], getattr(single.params, name),
                               rtol=1e-5, atol=1e-7)
  assert np.abs(np.asarray(single.params.W_aux)).max() > 1e-3


@pytest.mark.extended
@pytest.mark.parametrize("method", ["vmap", pytest.param("map", marks=pytest.mark.slow)])
def test_split_axis_block_equals_one_block_per_split(method):
  fn = jax.jit(block_lib.make_split_block_fit(CONFIG, A, method, chunk_size=2))
  model_keys, data_keys = _keys()
  out = jax.device_get(fn(model_keys, stack_hparams(POINTS),
                          jnp.asarray(hidden_masks(POINTS, 5)), jnp.asarray(GROUPS),
                          data_keys, *_stacked()))
  assert out.val_pl.shape == (S, len(POINTS), CONFIG.num_epochs)
  for s, want in enumerate(_per_split()):
    for name in ("best_val_pl", "test_pl", "val_pl", "recon_error"):
      np.testing.assert_allclose(getattr(out, name)[s], getattr(want, name), rtol=1e-5,
                                 atol=1e-6, err_msg=f"{name}, split {s}")
    np.testing.assert_array_equal(out.best_epoch[s], want.best_epoch)
    for name in ("W", "W_aux", "b", "c"):
      np.testing.assert_allclose(getattr(out.params, name)[s], getattr(want.params, name),
                                 rtol=1e-5, atol=1e-6)
  # the splits differ (the test would pass trivially if the split axis were ignored)
  assert np.abs(out.val_pl[0] - out.val_pl[1]).max() > 1e-3


HALVING_RULE = engine.StopRule(patience=1000, tol=0.0, num_epochs=3, eval_every=1,
                               diverge_margin=1e9)


def _halving(by_hidden, points=POINTS, groups=GROUPS, rule=HALVING_RULE,
             halving=engine.Halving(2.0, 1, 1)):
  model_keys, data_keys = _keys(len(points))
  h = max(p.num_hidden for p in points)
  return halving_lib.run_halving(
      dataclasses.replace(CONFIG, num_hidden=h), A,
      model_keys, stack_hparams(points), hidden_masks(points, h),
      groups, data_keys, *_stacked(2), halving, rule, min_bucket=2, by_hidden=by_hidden)


@pytest.mark.extended
@pytest.mark.parametrize("by_hidden", [False, True])
def test_successive_halving_over_splits_follows_the_exhaustive_trajectories(by_hidden):
  # Halving 4 -> 2 -> 1 configurations after epochs 1 and 2 (ranked by the mean over the
  # splits), with the survivors compacted into smaller blocks: every configuration's
  # validation PL on every split must be the exhaustive block's for as long as it
  # trained (masks freeze, compaction moves models without changing them; by_hidden: the
  # first rung in one block per hidden size, then padded with zero units).
  res = _halving(by_hidden)
  exhaustive = np.stack([r.val_pl for r in _per_split()])                 # [S, M, E]
  if by_hidden:  # first rung: blocks of 3, 4 and 5 units; then the 2 survivors
    assert {h: n for h, (n, _) in res.first_rung.items()} == {3: 1, 4: 1, 5: 2}
    assert res.buckets == (1, 2)
  else:
    assert res.first_rung is None
    assert res.buckets == (2, 4)  # the last survivor trains in a bucket of 2
  assert sorted(res.epochs.tolist()) == [1, 1, 2, 3]
  assert res.model_epochs == S * (4 + 2 + 1) < S * 4 * 3
  for m, e in enumerate(res.epochs):
    np.testing.assert_allclose(res.best_val_pl[:, m], exhaustive[:, m, :e].max(-1),
                               rtol=1e-5, atol=1e-6)
  # who survived each rung: the best mean over splits of the best PL so far
  first = exhaustive[:, :, 0].mean(0)
  assert set(np.flatnonzero(res.epochs >= 2)) == set(np.argsort(-first)[:2])
  winner = int(np.argmax(res.mean_val_pl))
  assert res.epochs[winner] == 3 and res.reason[winner] == "max_epochs"
  assert res.reason.count("halved") == 3


# more hidden sizes, more models: halving 8 -> 4 -> 2 at epochs 2 and 4
WIDE_POINTS = [Point(h, lr, 0.5, 1e-3, l1, sc) for h, lr, l1, sc in
               [(2, 0.1, 1e-2, 1.0), (7, 0.3, 0.0, 10.0), (5, 0.05, 1e-3, 3.0),
                (4, 0.2, 1e-2, 1.0), (7, 0.15, 1e-3, 3.0), (2, 0.4, 0.0, 1.0),
                (5, 0.25, 1e-2, 10.0), (4, 0.08, 0.0, 3.0)]]


@pytest.mark.extended
def test_the_first_rung_by_hidden_size_equals_one_padded_block():
  # Issue 24: each hidden size trains its first rung in a block of its own shape, then is
  # padded with zero units and continues in the survivors' block: the same scores,
  # epochs, reasons and work as one block padded to the largest size.
  groups = np.tile(GROUPS, (2, 1))
  rule = HALVING_RULE._replace(num_epochs=6)
  halving = engine.Halving(2.0, 2, 1)
  padded = _halving(False, WIDE_POINTS, groups, rule, halving)
  blocks = _halving(True, WIDE_POINTS, groups, rule, halving)
  assert {h: n for h, (n, _) in blocks.first_rung.items()} == {2: 2, 4: 2, 5: 2, 7: 2}
  np.testing.assert_allclose(blocks.best_val_pl, padded.best_val_pl, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(blocks.best_epoch, padded.best_epoch)
  np.testing.assert_array_equal(blocks.epochs, padded.epochs)
  assert blocks.reason == padded.reason and blocks.reason.count("halved") == 6
  assert blocks.model_epochs == padded.model_epochs == S * (8 * 2 + 4 * 2 + 2 * 2)
  assert sorted(blocks.epochs.tolist()) == [2] * 4 + [4] * 2 + [6] * 2


def test_a_block_padded_with_zero_hidden_units_trains_as_the_padded_block():
  # pad_hidden: a 3-unit block trained one round, padded to 5 units, then trained another
  # round equals the block padded to 5 units (mask 0) from the start, leaf by leaf.
  model_keys, data_keys = _keys()
  points = [Point(3, 0.3, 0.5, 1e-3, 1e-2, 3.0), Point(3, 0.1, 0.5, 0.0, 0.0, 1.0)]
  hp = stack_hparams(points)
  train, val = _stacked(2)
  keep = jnp.ones(2, bool)
  small = engine.compiled_host(learn.cd, dataclasses.replace(CONFIG, num_hidden=3), A,
                               HALVING_RULE, block_lib.split_evaluate, True)
  wide = engine.compiled_host(learn.cd, CONFIG, A, HALVING_RULE,
                              block_lib.split_evaluate, True)
  args = (model_keys[:, :2], train, val, hp)
  carry = small[0](*args, jnp.ones((2, 3)), jnp.asarray(GROUPS[:2]))
  carry, _ = small[1](data_keys, carry, train, val, hp, keep)
  like = wide[0](*args, jnp.asarray(hidden_masks(points, 5)), jnp.asarray(GROUPS[:2]))
  carry = halving_lib.pad_hidden(carry, like)
  want, _ = wide[1](data_keys, like, train, val, hp, keep)
  for _ in range(2):
    carry, got_info = wide[1](data_keys, carry, train, val, hp, keep)
    want, want_info = wide[1](data_keys, want, train, val, hp, keep)
  np.testing.assert_allclose(got_info.val_pl, want_info.val_pl, rtol=1e-5)
  gaps = jax.tree.leaves(jax.tree.map(
      lambda a, b: np.abs(np.asarray(a, float) - np.asarray(b, float)).max(), carry, want))
  assert len(gaps) > 10 and max(gaps) < 1e-5
  assert float(np.abs(np.asarray(carry.state.params.W)[..., 3:]).max()) == 0.0


def test_hidden_buckets_pad_many_sizes_to_powers_of_two():
  assert halving_lib.hidden_buckets(np.array([25, 50, 25, 200])).tolist() == [25, 50, 25, 200]
  sizes = np.array([3, 5, 9, 16, 17, 40])
  assert halving_lib.hidden_buckets(sizes).tolist() == [4, 8, 16, 16, 32, 40]
  assert halving_lib.first_rung_epochs(None, HALVING_RULE) is None
  assert halving_lib.first_rung_epochs(engine.Halving(2.0, 1, 1), HALVING_RULE) == 1
  # a round of 2 epochs reaches the rungs at 1 and 2 at once: one padded block
  assert halving_lib.first_rung_epochs(engine.Halving(2.0, 1, 1),
                                       HALVING_RULE._replace(eval_every=2)) is None


def _search_data():
  train, val, _, num_aux = topic_track_data()
  return train, val, num_aux


def _run_search(points, rule, **kw):
  train, val, num_aux = _search_data()
  config = TrainConfig(num_hidden=max(p.num_hidden for p in points), batch_size=20)
  return search.run_search(jax.random.key(0), train, val, num_aux, config,
                           stack_hparams(points), hidden_masks(points, config.num_hidden),
                           np.ones((len(points), 2)), rule, **kw)


SEARCH_POINTS = [Point(6, 0.1, 0.5, 1e-4, 0.0, 5.0),
                 Point(6, 2.0, 0.5, 1e-4, 0.0, 5.0),     # a high rate: stops early
                 Point(3, 0.05, 0.5, 0.0, 1e-3, 1.0),
                 Point(6, 0.3, 0.5, 1e-4, 0.0, 5.0)]
SEARCH_RULE = engine.StopRule(patience=1, tol=0.01, num_epochs=8)   # some stop early


@pytest.mark.extended
def test_a_models_result_does_not_depend_on_its_block_mates_or_on_compaction():
  """Shared minibatches and Gibbs noise: freezing a neighbour (lr x 0) and training in a
  smaller bucket leave a model's trajectory unchanged, to float rounding."""
  block = _run_search(SEARCH_POINTS, SEARCH_RULE, compact=True)
  full = _run_search(SEARCH_POINTS, SEARCH_RULE, compact=False)
  alone = _run_search(SEARCH_POINTS[:1], SEARCH_RULE)
  assert len(block.buckets) > 1 and full.buckets == (4,)
  np.testing.assert_allclose(block.best_val_pl, full.best_val_pl, rtol=1e-5)
  assert block.best_epoch.tolist() == full.best_epoch.tolist()
  assert block.reason == full.reason
  for name in ("W", "W_aux", "b", "c"):  # the best parameters come back from any bucket
    np.testing.assert_allclose(getattr(block.params, name), getattr(full.params, name),
                               rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(block.best_val_pl[0], alone.best_val_pl[0], rtol=1e-5)
  assert block.best_epoch[0] == alone.best_epoch[0] and block.epochs[0] == alone.epochs[0]
  # each stopped model's history ends where it stopped
  for m in range(4):
    evaluated = np.isfinite(block.val_history[m])
    assert evaluated.sum() == block.epochs[m] and evaluated[: block.epochs[m]].all()


@pytest.mark.extended
def test_the_scan_drivers_in_graph_stopping_equals_the_host_drivers():
  """One jitted call with the stop rule applied by masks (no host decision) stops every
  model where the host loop stops it, with the same best epochs and scores."""
  host = _run_search(SEARCH_POINTS, SEARCH_RULE, compact=False)
  assert len(set(host.epochs.tolist())) > 1            # models stop at different epochs
  train, val, num_aux = _search_data()
  config = TrainConfig(num_hidden=6, batch_size=20, num_epochs=SEARCH_RULE.num_epochs)
  learner = learn.cd(config, num_aux, over_models=True)
  run = jax.jit(engine.make_scan(learner, config, block_lib.make_block_evaluate(config),
                                 SEARCH_RULE))
  key_models, key_data = jax.random.split(jax.random.key(0))
  carry, history = run(jax.random.split(key_models, 4), key_data,
                       learn.pad_dataset(train, 20), val, stack_hparams(SEARCH_POINTS),
                       jnp.asarray(hidden_masks(SEARCH_POINTS, 6)), jnp.ones((4, 2)))
  np.testing.assert_allclose(carry.best.val_pl, host.best_val_pl, rtol=1e-5)
  assert np.asarray(carry.best.epoch).tolist() == host.best_epoch.tolist()
  assert np.asarray(carry.tracker.epochs).tolist() == host.epochs.tolist()
  assert [engine.REASONS[r] for r in np.asarray(carry.tracker.reason)] == host.reason
  scan_val = np.asarray(history.val_pl).T                                 # [M, E]
  rounds = host.val_history.shape[1]   # the host loop ends when every model has stopped
  np.testing.assert_allclose(scan_val[:, :rounds], host.val_history, rtol=1e-5)
  assert np.isnan(scan_val[:, rounds:]).all()


@pytest.mark.extended
def test_fit_with_a_stop_rule_stops_early_and_keeps_its_best_epoch():
  config = TrainConfig(num_hidden=5, batch_size=10, num_epochs=6, eval_chunk=8)
  hp = learn.make_hparams(0.1, 0.5, 1e-3, 1e-2)
  # the first evaluation improves on nothing (-inf); no later one by 10 nats per bit
  rule = engine.StopRule(patience=1, tol=10.0)
  res = learn.fit(jax.random.key(3), TRAIN, VAL, config, hp, A, rule=rule)
  evaluated = np.isfinite(np.asarray(res.history.val_pl))
  assert evaluated.tolist() == [True, True] + [False] * 4  # stopped after 2 evaluations
  full = learn.fit(jax.random.key(3), TRAIN, VAL, config, hp, A)
  np.testing.assert_allclose(res.history.val_pl[:2], full.history.val_pl[:2], rtol=1e-6)
  assert int(res.best_epoch) == int(np.argmax(full.history.val_pl[:2]))
  assert np.isfinite(np.asarray(full.history.val_pl)).all()


@pytest.mark.extended
def test_any_block_learner_runs_through_the_host_driver():
  """PCD through the search: the learner is a factory argument, not hard-coded CD."""
  points = SEARCH_POINTS[:1]
  rule = engine.StopRule(patience=2, tol=1e-4, num_epochs=3)
  cd = _run_search(points, rule)
  pcd = _run_search(points, rule, learner=learn.pcd)
  assert np.isfinite(pcd.best_val_pl).all() and pcd.epochs[0] == 3
  assert abs(float(pcd.best_val_pl[0]) - float(cd.best_val_pl[0])) > 1e-6  # not CD again
