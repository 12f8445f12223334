"""The memory plan (crbm_jax.learn.plan): chunking models and validation rows changes
the cost, not the selected model."""
import functools

import jax
import numpy as np
import pytest

from crbm_jax import learn
from crbm_jax.learn import block, plan, search, select
from crbm_jax.learn.space import Point, hidden_masks, stack_hparams
from datagen import topic_track_data

RULE = search.StopRule(patience=2, tol=1e-4, num_epochs=6)


def _data():
  return topic_track_data(200, cuts=(120, 157))


@pytest.mark.extended
def test_row_chunked_evaluation_equals_the_one_pass_figure():
  train, val, _, num_aux = _data()
  points = [Point(h, lr, 0.5, 1e-4, 0.0, 5.0) for h in (3, 6) for lr in (0.05, 0.2)]
  config = learn.TrainConfig(num_hidden=6, batch_size=20)
  from crbm_jax.learn.learner import cd  # pylint: disable=import-outside-toplevel
  learner = cd(config, num_aux, over_models=True)
  keys = jax.random.split(jax.random.key(0), len(points))
  state = learner.init(keys, learn.base.pad_dataset(train, 20), stack_hparams(points),
                       hidden_masks(points, 6), np.ones((len(points), 2), np.float32))
  params = learner.model(state, stack_hparams(points))
  params = params._replace(W_aux=params.W_aux + 0.3 * jax.random.normal(
      jax.random.key(1), params.W_aux.shape))  # make the aux rows matter
  one = np.asarray(block.make_block_evaluate(config)(params, val))
  for rows in (1, 5, 16, 37, 100):
    chunked = np.asarray(plan.chunked_block_evaluate(config, rows)(params, val))
    np.testing.assert_allclose(chunked, one, rtol=2e-5)
  assert len(set(np.round(one, 6))) == len(points)  # the models differ


def _select(models_per_chunk, make_evaluate=block.make_block_evaluate, halving=None):
  train, val, test, num_aux = _data()
  space = search.SearchSpace(num_hidden=(3, 6), learning_rate=(0.03, 0.1, 0.3),
                             l1_aux=(0.0, 1e-3), aux_lr_scale=(1.0, 10.0),
                             weight_decay=(1e-4,), batch_size=(20,))
  return select.fit_and_compare(jax.random.key(3), train, val, test, num_aux, space,
                                rule=RULE, num_configs=6, halving=halving, seed=1,
                                make_evaluate=make_evaluate,
                                models_per_chunk=models_per_chunk)


@pytest.mark.extended
def test_a_budget_that_forces_chunking_selects_the_same_model_as_no_chunking():
  whole = _select(None)
  assert len(whole.table) == 8  # 6 conditioned + 2 unconditional
  evaluate = functools.partial(plan.chunked_block_evaluate, rows_per_chunk=10)
  for per_chunk in (3,):  # chunks of 3, 3, 2
    part = _select(per_chunk, evaluate)
    assert part.selected.config == whole.selected.config
    assert part.unconditional["best_val_pl"] == pytest.approx(
        whole.unconditional["best_val_pl"], rel=1e-4)
    for a, b in zip(part.table, whole.table):
      assert a["epochs"] == b["epochs"] and a["stopped"] == b["stopped"]
      assert a["best_val_pl"] == pytest.approx(b["best_val_pl"], rel=1e-4, abs=1e-6)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5),
                 part.selected.params, whole.selected.params)
    assert part.test == pytest.approx(whole.test, rel=1e-4)
    result = next(iter(part.selected.results.values()))[1]
    # only each chunk's best conditioned and best unconditional model is kept
    assert (result.param_index >= 0).sum() <= 2 * int(np.ceil(8 / per_chunk))
    assert part.curve["val_pl"] == pytest.approx(whole.curve["val_pl"], rel=1e-4)


@pytest.mark.slow
def test_chunked_search_with_halving_runs_and_selects_a_kept_model():
  part = _select(4, halving=search.Halving(first_rung=2))
  assert part.selected.params.W.shape == (12, part.selected.config["num_hidden"])
  best = max((r for r in part.table if r["conditioned"]), key=lambda r: r["best_val_pl"])
  assert part.selected.val_pl == best["best_val_pl"]


def test_the_plan_fits_the_budget_with_the_fewest_chunks():
  shape = dict(num_models=128, num_rows=20_000, num_tags=2000, num_hidden=128,
               num_aux=5_000, batch_size=100)
  big = plan.plan_search(**shape, budget_bytes=10 ** 15)
  assert big.fits and big.num_chunks == 1 and big.eval_rows_per_chunk == big.eval_rows
  assert big.peak_bytes == big.unchunked_bytes
  small = plan.plan_search(**shape, budget_bytes=4 * 2 ** 30)
  assert small.fits and small.num_chunks > 1 and small.peak_bytes <= 4 * 2 ** 30
  assert small.models_per_chunk * small.num_chunks >= 128
  # one more model per chunk would not fit
  more = plan.total_bytes(plan.estimate_bytes(small.models_per_chunk + 1, 20_000, 2000, 128, 5_000,
                                 100, small.eval_rows_per_chunk, num_val_rows=4_000,
                                 num_train_rows=12_000))
  assert more > 4 * 2 ** 30 or small.num_chunks == 1
  assert "chunks of" in small.describe() and "GB" in small.describe()


def test_the_plan_refuses_in_one_line_when_one_model_does_not_fit():
  p = plan.plan_search(128, 800_000, 2000, 128, 270_000, 100, 12 * 2 ** 30)
  assert not p.fits
  assert "--top_tags" in p.message and "--min_users" in p.message and "\n" not in p.message
  assert "GB" in p.message
  # past int32 indexing: refused with the array named
  q = plan.plan_search(1, 10 ** 6, 5000, 16, 600_000, 100, 10 ** 15)
  assert not q.fits and "int32" in q.message


def test_memory_gb_is_checked():
  assert plan.budget_from_gb(2) == 2 * 2 ** 30
  assert plan.budget_from_gb(0) == plan.default_budget_bytes() > 0
  for bad in (-1, float("nan"), float("inf")):
    with pytest.raises(plan.PlanError):
      plan.budget_from_gb(bad)


def test_search_seconds_nan_and_infinity_are_refused():
  from crbm_jax.fitting.fit import check_fit_options  # pylint: disable=import-outside-toplevel
  from crbm_jax.fitting.inputs import InputError  # pylint: disable=import-outside-toplevel
  kw = dict(num_hidden=8, num_epochs=3, learning_rate=0.1, momentum=0.5, weight_decay=0.0,
            l1_aux=0.0, aux_lr_scale=1.0, batch_size=10, cd_k=1, min_users=1, top_tags=0,
            search_configs=4, patience=2, tol=1e-4, eval_every=1)
  with pytest.raises(InputError, match="search_seconds"):
    check_fit_options(search_seconds=float("nan"), **kw)
  with pytest.raises(InputError, match="search_seconds"):
    check_fit_options(search_seconds=-1.0, **kw)
  with pytest.raises(InputError, match="search_seconds"):
    check_fit_options(search_seconds=float("inf"), **kw)
  check_fit_options(search_seconds=0.0, **kw)


@pytest.mark.slow
def test_a_spent_budget_leaves_the_remaining_chunks_untrained():
  train, val, _, num_aux = _data()
  points = [Point(4, lr, 0.5, 1e-4, 0.0, 5.0) for lr in (0.03, 0.1, 0.3, 0.05)]
  config = learn.TrainConfig(num_hidden=4, batch_size=20)
  result = search.run_search_chunked(
      jax.random.key(0), train, val, num_aux, config, stack_hparams(points),
      hidden_masks(points, 4), np.ones((4, 2), np.float32), RULE, models_per_chunk=2,
      seconds=1e-6)
  assert result.reason[2:] == ["budget", "budget"] and list(result.epochs[2:]) == [0, 0]
  assert (result.epochs[:2] >= 1).all()  # the first chunk ran its first round
  assert list(result.param_index[2:]) == [-1, -1]


def test_observations_past_the_limit_are_refused_before_they_are_built(tmp_path):
  from crbm_jax.fitting.inputs import InputError, prepare_fit_data  # pylint: disable=import-outside-toplevel
  path = tmp_path / "tags.tsv"
  rows = [f"c{i}\tt{i // 4}\ttag{(i * j) % 5}" for i in range(40) for j in range(1, 3)]
  path.write_text("clip\ttrack\ttag\n" + "\n".join(sorted(set(rows))) + "\n")
  data = prepare_fit_data(str(path), min_users=1, log=lambda _: None)
  elements = data.obs.num_observations * data.obs.num_visible
  assert prepare_fit_data(str(path), min_users=1, log=lambda _: None,
                          max_elements=elements).obs.X.size == elements
  with pytest.raises(InputError) as e:
    prepare_fit_data(str(path), min_users=1, log=lambda _: None,
                     max_elements=elements - 1)
  message = str(e.value)
  assert "\n" not in message and f"{elements:,} elements" in message
  assert "--top_tags" in message and "nothing was trained" in message
