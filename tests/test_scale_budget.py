"""The time budget holds from the start (issue 28, item 3): with --search_seconds the host
driver trains in segments of an epoch, cuts a round at the budget and evaluates the models
where they are; sizes past int32 indexing are refused before anything is allocated.

Deterministic: the budget is read from an injected clock (each reading advances it by one
second), never from the wall clock."""
import jax
import numpy as np
import pytest

from crbm_jax import learn
from crbm_jax.learn import engine, search
from crbm_jax.learn.space import Point, hidden_masks, stack_hparams
from datagen import topic_track_data

RULE = search.StopRule(patience=2, tol=1e-4, num_epochs=6, eval_every=2)


class TickClock:
  """A clock that advances ``tick`` seconds at every reading."""

  def __init__(self, tick=1.0):
    self.now, self.tick, self.readings = 0.0, tick, 0

  def __call__(self):
    self.now += self.tick
    self.readings += 1
    return self.now


def _block(lrs=(0.03, 0.1, 0.3, 0.05)):
  train, val, _, num_aux = topic_track_data(200, cuts=(120, 157))
  points = [Point(4, lr, 0.5, 1e-4, 0.0, 5.0) for lr in lrs]
  config = learn.TrainConfig(num_hidden=4, batch_size=20)       # 6 steps an epoch
  return (jax.random.key(0), train, val, num_aux, config, stack_hparams(points),
          hidden_masks(points, 4), np.ones((len(lrs), 2), np.float32), RULE)


@pytest.mark.slow  # compiles both drivers: ~25 s on the loaded 2-core machine
def test_segmented_training_under_a_budget_equals_whole_rounds(monkeypatch):
  args = _block()
  whole = search.run_search(*args)
  # a budget never reached: every round is trained in segments of its epochs (the first
  # segment is one step, the rest sized from the step time the clock gives)
  cut = search.run_search(*args, seconds=1e9, clock=TickClock(1.0))
  assert whole.reason == cut.reason == ["max_epochs"] * 4 and cut.budget_cut is None
  np.testing.assert_array_equal(whole.epochs, cut.epochs)
  np.testing.assert_array_equal(whole.best_epoch, cut.best_epoch)
  np.testing.assert_allclose(cut.best_val_pl, whole.best_val_pl, rtol=1e-5)
  np.testing.assert_allclose(cut.val_history, whole.val_history, rtol=1e-5)
  np.testing.assert_allclose(cut.recon_history, whole.recon_history, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               cut.params, whole.params)
  # a large block trains in segments without a budget too (for the donation's memory)
  monkeypatch.setattr(engine, "SEGMENT_MIN_ELEMENTS", 1)
  large = search.run_search(*args)
  np.testing.assert_allclose(large.best_val_pl, whole.best_val_pl, rtol=1e-5)
  np.testing.assert_array_equal(large.epochs, whole.epochs)


@pytest.mark.extended
def test_a_tiny_budget_stops_after_the_first_cut_round_and_says_why():
  clock = TickClock(1.0)
  result = search.run_search(*_block(), seconds=3.0, clock=clock)
  # setup 1 s; one step (1 s measured); then 1 s elapsed + 1 s kept for the evaluation
  # passes the 3 s budget: the round is cut after 1 of the epoch's 6 steps, evaluated
  assert result.budget_cut == (0, 1, 6)
  assert result.rounds == 1 and result.reason == ["budget"] * 4
  assert list(result.epochs) == [1] * 4 and list(result.best_epoch) == [0] * 4
  assert np.isfinite(result.best_val_pl).all()      # evaluated where the cut left them
  assert np.isnan(result.recon_history[:, 1]).all()  # the round's second epoch: not run
  from crbm_jax.fitting.fit import budget_notes  # pylint: disable=import-outside-toplevel
  configs = [{}] * 4
  (line,) = budget_notes({20: (configs, result)})
  assert "ran out in epoch 1 after 1 of its 6 steps" in line and "\n" not in line


def test_a_larger_budget_cuts_a_later_epoch_at_its_segment():
  # 10 s a reading and a 250 s budget (segments of at most 10 s): the budget, less the
  # measured evaluation, is spent in the round's second epoch, whose steps left cost
  # more than the 1 s slack: cut there, mid-epoch
  result = search.run_search(*_block(), seconds=250.0, clock=TickClock(10.0))
  assert result.budget_cut is not None
  epoch, done, steps = result.budget_cut
  assert steps == 6 and 0 < done < 6 and epoch == 1
  assert result.reason == ["budget"] * 4
  assert (result.epochs == epoch + 1).all() and (result.best_epoch <= epoch).all()
  assert np.isfinite(result.recon_history[:, epoch]).all()   # the cut epoch's steps
  again = search.run_search(*_block(), seconds=250.0, clock=TickClock(10.0))
  assert again.budget_cut == result.budget_cut               # deterministic
  np.testing.assert_array_equal(again.best_val_pl, result.best_val_pl)


def test_the_pace_sizes_segments_from_the_step_time():
  pace = engine.Pace(seconds=1000.0)          # target min(10 s, 100 s) = 10 s
  assert pace.next_steps(500) == 1            # the probe (it compiles)
  pace.step = 0.5
  assert pace.next_steps(500) == 16           # 20 wanted, at most 16 x the last one
  assert pace.next_steps(500) == 20
  assert pace.next_steps(7) == 7              # never past the epoch's end
  pace.step = 100.0
  assert pace.next_steps(500) == 1            # a slow step: one at a time
  assert pace.reserve() == pace.setup == 0.0
  pace.evaluation = 4.0
  assert pace.reserve() == 4.0


def test_a_spent_budget_skips_the_chunks_left_and_counts_them():
  # chunks of 4 models (the shapes of the tests above: nothing new compiles)
  args = _block((0.03, 0.1, 0.3, 0.05, 0.02, 0.2, 0.15, 0.07))
  result = search.run_search_chunked(*args, models_per_chunk=4, seconds=3.0,
                                     clock=TickClock(1.0))
  assert result.reason == ["budget"] * 8 and result.skipped == 4
  assert list(result.epochs) == [1] * 4 + [0] * 4
  assert list(result.param_index[4:]) == [-1] * 4
  assert result.budget_cut == (0, 1, 6)
  from crbm_jax.fitting.fit import budget_notes  # pylint: disable=import-outside-toplevel
  lines = budget_notes({20: ([{}] * 8, result)})
  assert len(lines) == 2 and "4 of the 8 models of batch 20 were never trained" in lines[1]


def test_select_model_under_a_tiny_budget_selects_among_the_cut_models():
  train, val, test, num_aux = topic_track_data(200, cuts=(120, 157))
  space = search.SearchSpace(num_hidden=(4,), learning_rate=(0.03, 0.1, 0.3, 0.05),
                             l1_aux=(0.0,),
                             aux_lr_scale=(5.0,), weight_decay=(1e-4,), batch_size=(20,))
  sel = search.select_model(jax.random.key(1), train, val, num_aux, space, rule=RULE,
                            num_configs=None, seconds=3.0, halving=None,
                            clock=TickClock(1.0))
  assert all(row["stopped"] == "budget" and row["epochs"] == 1 for row in sel.table)
  assert sel.best_epoch == 0 and np.isfinite(sel.val_pl)


def test_a_block_past_int32_indexing_is_refused_in_one_line_before_allocating():
  engine.check_block_size(4, 1000, 2000)           # 8 M elements: fine
  with pytest.raises(ValueError) as e:
    engine.check_block_size(4, 300_000, 2000)      # 2.4 G elements
  message = str(e.value)
  assert "2,400,000,000 elements" in message and "int32" in message
  assert "\n" not in message and "fewer models" in message


@pytest.mark.slow  # a whole crbm-fit (compiling): ~30 s on the loaded 2-core machine
def test_fit_logs_the_budget_cut_and_validates_on_a_subset(tmp_path):
  from crbm_jax.fitting import fit  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  rows = ["clip\ttag\ttrack"] + [f"c{c}\ttag{t}\tt{c % 6}" for c in range(300)
                                 for t in range(6) if rng.random() < 0.4 + 0.1 * (t == c % 6)]
  tags = tmp_path / "t.tsv"
  tags.write_text("\n".join(rows) + "\n")
  log = []
  metrics = fit.fit_tag_table(str(tags), str(tmp_path / "w"), search_configs=2,
                              search_seconds=1e-3, search_val_rows=25, batch_size=10,
                              num_epochs=4, show_progress=False, log=log.append)
  text = "\n".join(log)
  num_val = metrics["num_val"]
  assert f"validates on 25 of the {num_val} validation observations" in text
  assert "budget ran out in epoch 1 after 1 of its" in text
  assert metrics["num_val_searched"] == 25 and num_val > 25
  with pytest.raises(fit.InputError, match="search_val_rows"):
    fit.fit_tag_table(str(tags), str(tmp_path / "w2"), search_val_rows=-1, log=log.append)


@pytest.mark.slow  # compiles the split-axis drivers twice: ~1 min on the loaded machine
def test_segments_over_splits_with_halving_and_compaction_follow_the_whole_rounds(
    monkeypatch):
  from crbm_jax.learn import halving as halving_lib  # pylint: disable=import-outside-toplevel
  import test_engine as te  # pylint: disable=import-outside-toplevel
  rule = engine.StopRule(patience=1000, tol=0.0, num_epochs=3, eval_every=1,
                         diverge_margin=1e9)

  def run():
    model_keys, data_keys = te._keys()  # pylint: disable=protected-access
    return halving_lib.run_halving(
        te.CONFIG, te.A, model_keys, stack_hparams(te.POINTS), hidden_masks(te.POINTS, 5),
        te.GROUPS, data_keys, *te._stacked(2),  # pylint: disable=protected-access
        engine.Halving(2.0, 1, 1), rule, min_bucket=2)

  whole = run()
  monkeypatch.setattr(engine, "SEGMENT_MIN_ELEMENTS", 1)   # every block in segments
  parts = run()
  assert parts.buckets == whole.buckets and parts.reason == whole.reason
  np.testing.assert_array_equal(parts.epochs, whole.epochs)
  np.testing.assert_allclose(parts.best_val_pl, whole.best_val_pl, rtol=1e-5, atol=1e-6)


class JumpClock(TickClock):
  """``tick`` seconds a reading, and ``jump`` more at the second (the setup's end)."""

  def __init__(self, tick, jump):
    super().__init__(tick)
    self.jump = jump

  def __call__(self):
    now = super().__call__()
    if self.readings == 2:
      self.now += self.jump
    return self.now


def test_a_spent_budget_finishes_a_round_whose_steps_left_are_cheap():
  # the setup (compiling) takes 30 s of a 20 s budget; the slack is min(1 s, 5% of 20 s)
  # = 1 s. At 0.1 s a step the first round's 11 steps left cost 1.1 s: cut after the
  # first step; at 0.01 s a step, 0.11 s: the round is finished, then the budget stops it
  cut = search.run_search(*_block(), seconds=20.0, clock=JumpClock(0.1, 30.0))
  assert cut.budget_cut == (0, 1, 6) and cut.reason == ["budget"] * 4
  whole = search.run_search(*_block(), seconds=20.0, clock=JumpClock(0.01, 30.0))
  assert whole.budget_cut is None and whole.rounds == 1
  assert list(whole.epochs) == [2] * 4 and whole.reason == ["budget"] * 4
