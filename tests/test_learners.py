"""Learners: the lazy L1 prox against the dense one, exact zeros, aux_lr_scale honoured by
every learner, no recompiles, padded = unpadded, learning a known CRBM."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax import learn
from crbm_jax.learn import lazy_l1
from crbm_jax.learn.contrastive import cd_sampler
from crbm_jax.learn.clip_distance import ClipNeighbours
from brute_force import dense_l1_step, exact_quantities, random_params
from tracing import counted_jit

NUM_AUX, PER_GROUP = 9, 4  # group g owns rows [4g, 4g + 4); row 8 is never used


def _random_data(seed, n=240, v=12, groups=2, density=0.3):
  rng = np.random.default_rng(seed)
  x = (rng.random((n, v)) < density).astype(np.float32)
  aux = np.stack([np.where(col >= 0, g * PER_GROUP + col, -1) for g, col in
                  enumerate(rng.integers(-1, PER_GROUP, (groups, n)))], 1).astype(np.int32)
  return cj.make_dataset(x, aux)


def _every_row_input(aux, hparams):
  """An AuxInput that also lists every W_aux row with weight 0: every row is then
  touched, so caught up and soft-thresholded, at every step: the dense prox."""
  del hparams
  plain = lazy_l1.plain_input(aux)
  rows = jnp.broadcast_to(jnp.arange(NUM_AUX), (aux.shape[0], NUM_AUX))
  group = np.minimum(np.arange(NUM_AUX) // PER_GROUP, aux.shape[1] - 1)
  return lazy_l1.AuxInput(jnp.concatenate([plain.rows, rows], 1),
                          jnp.concatenate([plain.weight, jnp.zeros(rows.shape)], 1),
                          np.concatenate([np.asarray(plain.group), group]))


CONFIG = learn.TrainConfig(num_hidden=5, batch_size=20, weight_scale=0.1)


@functools.lru_cache(maxsize=None)
def _learner(dense=False):
  """(learner, jitted epoch): the lazy prox, or (dense) every row touched every step. One
  compilation per learner serves every test's data and hyperparameters."""
  aux_input = _every_row_input if dense else None
  learner = learn.make_learner(CONFIG, NUM_AUX, cd_sampler(CONFIG), aux_input=aux_input)
  epoch = jax.jit(lambda k, s, data, hp: learn.run_epoch(k, learner, s, data, hp,
                                                         CONFIG.batch_size)[0])
  return learner, epoch


def _run_epochs(data, hparams, epochs=3, dense=False, state=None):
  learner, epoch = _learner(dense)
  state = learner.init(jax.random.key(0), data, hparams) if state is None else state
  for e in range(epochs):
    state = epoch(jax.random.key(e), state, data, hparams)
  return learner.model(state, hparams)


@pytest.mark.extended
def test_lazy_l1_training_equals_the_dense_prox():
  data = _random_data(0)
  hparams = cj.make_hparams(learning_rate=0.1, momentum=0.5, weight_decay=1e-3, l1_aux=2e-3)
  lazy = _run_epochs(data, hparams)
  dense = _run_epochs(data, hparams, dense=True)
  for a, b in zip(lazy, dense):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32 summation order
  assert np.any(np.asarray(lazy.W_aux) != 0)


def test_lazy_and_dense_agree_when_rows_go_untouched_during_training():
  # Entity 7 appears in one observation only, so its row waits many steps between
  # touches: its visible bias must include every soft-threshold it missed.
  data = _random_data(7)
  aux = np.asarray(data.aux).copy()
  aux[aux == 7] = 6
  aux[5, 1] = 7
  data = data._replace(aux=jnp.asarray(aux))
  hparams = cj.make_hparams(learning_rate=0.1, momentum=0.0, weight_decay=0.0, l1_aux=0.05)
  results = []
  for dense in (False, True):
    state = _learner(dense)[0].init(jax.random.key(0), data, hparams)
    state = state._replace(params=state.params._replace(
        W_aux=jnp.full_like(state.params.W_aux, 0.5)))
    results.append(_run_epochs(data, hparams, epochs=1, dense=dense, state=state))
  for a, b in zip(*results):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_lazy_l1_catches_up_rows_not_touched_for_many_steps():
  # The aux update alone, fed the same gradient sequence as the float64 dense prox, so no
  # sampling noise can amplify float rounding: rows 0-3 are group 0's, 4-8 group 1's;
  # row 8 is touched only at steps 0 and 150, rows 9-11 never, rows repeat within a
  # minibatch, and the learning rate and W_aux scale change every step (a schedule).
  rng = np.random.default_rng(0)
  num_aux, v, batch = 12, 7, 6
  W0 = rng.normal(0, 0.2, (num_aux, v)).astype(np.float32)
  W_aux, l1 = jnp.asarray(W0), lazy_l1.init_l1(num_aux)
  dense = W0.astype(np.float64)
  update = jax.jit(lambda W, l1, aux, dvis, step, l1_aux: (
      lambda t: lazy_l1.update(W, l1, t, jnp.ones(2), dvis, step, l1_aux))(
          lazy_l1.touch(W, l1, lazy_l1.plain_input(aux))))
  total = 0.0
  for step in range(200):
    aux = np.stack([rng.integers(-1, 4, batch), 4 + rng.integers(0, 4, batch)], 1)
    aux = aux.astype(np.int32)
    if step in (0, 150):
      aux[0, 1] = 8
    aux[1, 1] = aux[0, 1]  # duplicate rows within a minibatch
    dvis = rng.normal(0, 0.05, (batch, v)).astype(np.float32)
    step_size = (0.05 + 0.1 * rng.random()) * (1.0 + 4.0 * rng.random())
    W_aux, l1 = update(W_aux, l1, jnp.asarray(aux), jnp.asarray(dvis),
                       jnp.float32(step_size), jnp.float32(3e-3))
    dense = dense_l1_step(dense, aux, dvis, step_size, 3e-3)
    total += step_size * 3e-3
  np.testing.assert_allclose(lazy_l1.caught_up(W_aux, l1), dense, rtol=1e-5, atol=1e-6)
  # Never-touched rows got exactly the summed soft-threshold, with exact zeros.
  np.testing.assert_allclose(dense[9:], np.asarray(cj.soft_threshold(W0[9:], total)),
                             rtol=1e-5, atol=1e-6)
  assert np.any(dense[9:] == 0.0)


def test_make_dataset_rejects_groups_sharing_rows():
  with pytest.raises(ValueError, match="aux columns 0 and 1 both use W_aux row 3"):
    cj.make_dataset(np.zeros((2, 4)), np.array([[3, 5], [1, 3]]))


def _neighbours():
  # Rows 4-7 (group 1) are the clips of two tracks of two clips each.
  rows = np.array([[4, 5], [5, 4], [6, 7], [7, 6]], np.int32)
  dist = np.array([[0.0, 0.5], [0.0, 0.5], [0.0, 0.25], [0.0, 0.25]], np.float32)
  return ClipNeighbours(rows, dist, offset=4, column=1)


ALL_LEARNERS = {
    "cd": lambda c: learn.cd(c, NUM_AUX),
    "pcd": lambda c: learn.pcd(c, NUM_AUX),
    "pt": lambda c: learn.parallel_tempering(c, NUM_AUX, num_temperatures=3),
    "distance_aware": lambda c: learn.distance_aware(c, NUM_AUX, _neighbours()),
    "block": lambda c: learn.cd(c, NUM_AUX, over_models=True),
}


@pytest.mark.extended
@pytest.mark.parametrize("name", sorted(ALL_LEARNERS))
def test_every_learner_honours_aux_lr_scale(name):
  # From W_aux = 0, the first step's W_aux gradient does not depend on the W_aux step
  # size, so without L1 the step is exactly proportional to aux_lr_scale, and W, b, c
  # do not depend on it at all. (Scale None means 1: checked for CD, the meaning is
  # learn.aux_learning_rate's, shared by every learner.)
  data = _random_data(8, n=40)
  learner = ALL_LEARNERS[name](CONFIG)
  batch = learn.Batch(data.v[:20], data.aux[:20], data.weight[:20], jnp.arange(20))
  block = name == "block"
  step = jax.jit(learner.step)

  def one_step(scale):
    hp = cj.make_hparams(0.1, 0.0, 0.0, 0.0, aux_lr_scale=scale, kernel_length=0.3)
    if block:
      hp = jax.tree.map(lambda x: x[None], hp)
      state = learner.init(jax.random.key(0)[None], data, hp, jnp.ones((1, 5)),
                           jnp.ones((1, 2)))
    else:
      state = learner.init(jax.random.key(0), data, hp)
    state, _ = step(jax.random.key(1), state, batch, hp)
    return state.params

  base, scaled = one_step(1.0), one_step(2.5)
  assert np.abs(np.asarray(base.W_aux)).max() > 1e-4
  np.testing.assert_allclose(scaled.W_aux, 2.5 * np.asarray(base.W_aux), rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_array_equal(one_step(0.0).W_aux, 0.0)
  for field in ("W", "b", "c"):
    np.testing.assert_array_equal(getattr(scaled, field), getattr(base, field))
  if name == "cd":
    for a, b in zip(base, one_step(None)):
      np.testing.assert_array_equal(a, b)


def test_l1_prox_produces_exact_zeros():
  x = jnp.array([-0.3, -0.05, 0.0, 0.04, 0.5])
  shrunk = np.asarray(cj.soft_threshold(x, 0.05))
  np.testing.assert_array_equal(shrunk[1:4], 0.0)  # exact zeros, not merely small
  np.testing.assert_allclose(shrunk[[0, 4]], [-0.25, 0.45], rtol=1e-6)
  data = _random_data(2)
  strong = _run_epochs(data, cj.make_hparams(0.1, 0.5, 0.0, l1_aux=0.5))
  weak = _run_epochs(data, cj.make_hparams(0.1, 0.5, 0.0, l1_aux=0.0))
  assert np.mean(np.asarray(strong.W_aux) == 0.0) > 0.95
  assert np.mean(np.asarray(weak.W_aux) == 0.0) < np.mean(np.asarray(strong.W_aux) == 0.0)


@pytest.mark.extended
def test_changing_hyperparameter_values_does_not_recompile():
  config = cj.TrainConfig(num_hidden=4, batch_size=20, num_epochs=2)
  jitted, traces = counted_jit(cj.make_fit(config, num_aux=NUM_AUX))
  train, val = _random_data(3), _random_data(4, n=60)
  for lr, l1, wd, scale in [(0.05, 1e-3, 1e-4, 1.0), (0.2, 0.0, 0.0, 10.0),
                            (0.01, 0.3, 1e-2, 100.0)]:
    jax.block_until_ready(jitted(jax.random.key(0), cj.make_hparams(lr, 0.5, wd, l1, scale),
                                 train, val))
  assert len(traces) == 1


@pytest.mark.extended
def test_hidden_mask_makes_a_padded_model_equal_to_an_unpadded_one():
  # The initial W and the hidden noise are drawn prefix-stably, so a model padded from 3
  # to 6 hidden units (masked) follows the unpadded model's trajectory.
  train, val = _random_data(5), _random_data(6, n=60)
  hp = cj.make_hparams(0.1, 0.5, 1e-3, 1e-3)
  small = jax.jit(cj.make_fit(cj.TrainConfig(num_hidden=3, batch_size=20, num_epochs=3),
                              NUM_AUX))
  big = jax.jit(cj.make_fit(cj.TrainConfig(num_hidden=6, batch_size=20, num_epochs=3),
                            NUM_AUX))
  res_small = small(jax.random.key(1), hp, train, val)
  mask = jnp.array([1, 1, 1, 0, 0, 0], jnp.float32)
  res_big = big(jax.random.key(1), hp, train, val, mask)
  assert np.all(np.asarray(res_big.params.W)[:, 3:] == 0)
  assert np.all(np.asarray(res_big.params.c)[3:] == 0)
  np.testing.assert_allclose(res_big.params.W[:, :3], res_small.params.W, atol=1e-5)
  np.testing.assert_allclose(res_big.params.W_aux, res_small.params.W_aux, atol=1e-5)
  np.testing.assert_allclose(res_big.history.val_pl, res_small.history.val_pl, rtol=1e-5)
  assert np.abs(np.asarray(res_small.params.W)).min() > 0


@pytest.mark.extended
def test_fit_without_validation_keeps_the_last_epoch():
  train = _random_data(9)
  config = cj.TrainConfig(num_hidden=4, batch_size=20, num_epochs=3)
  hp = cj.make_hparams(0.1, 0.5, 1e-3, 1e-3)
  res = jax.jit(cj.make_fit(config, NUM_AUX))(jax.random.key(2), hp, train)
  assert int(res.best_epoch) == 2 and np.all(np.isnan(np.asarray(res.history.val_pl)))
  learner = learn.cd(config, NUM_AUX)
  key_init, key_data = jax.random.split(jax.random.key(2))
  state = learner.init(key_init, train, hp)
  run = jax.jit(lambda k, s: learn.run_epoch(k, learner, s, train, hp, 20)[0])
  for epoch in range(3):
    state = run(jax.random.fold_in(key_data, epoch), state)
  for a, b in zip(res.params, learner.model(state, hp)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # compiled differently


def test_from_config_reads_the_training_schema():
  from crbm_jax.configs import training  # pylint: disable=import-outside-toplevel
  cfg = training.get_config(num_hidden=7, learning_rate=0.3, aux_lr_scale=10.0)
  config, hp = cj.from_config(cfg)
  assert config.num_hidden == 7 and config.batch_size == training.DEFAULTS["batch_size"]
  assert float(hp.learning_rate) == pytest.approx(0.3)
  assert float(hp.aux_lr_scale) == pytest.approx(10.0)
  assert cfg.num_hidden == 7  # not changed
  with pytest.raises(ValueError, match="unknown training setting"):
    training.get_config(num_hiden=7)


def test_training_on_a_known_crbm_beats_the_factored_baseline():
  V, H, A = 8, 3, 6
  rng = np.random.default_rng(0)
  W, W_aux, b, c = random_params(0, V, H, A, 2.0)
  b = b - 2.0  # sparse, like tags
  raw = (W, W_aux, b, c)
  # Cache each aux row's exact distribution, then draw.
  dists = {a: exact_quantities(*raw, [a]) for a in range(A)}
  which = rng.integers(A, size=3000)
  vs = dists[0]["vs"]
  x = np.stack([vs[rng.choice(len(vs), p=np.exp(dists[a]["log_pv"]))] for a in which])
  aux = which[:, None].astype(np.int32)
  tr, va, te = (cj.make_dataset(x[s], aux[s]) for s in
                (slice(0, 1800), slice(1800, 2400), slice(2400, 3000)))
  config = cj.TrainConfig(num_hidden=8, batch_size=50, num_epochs=40)
  res = cj.fit(jax.random.key(0), tr, va, config,
               cj.make_hparams(0.1, 0.5, 1e-4, 1e-4), num_aux=A)
  model_pl = cj.balanced_pseudo_likelihood(cj.pseudo_log_likelihood(res.params, te.v, te.aux),
                                           te.v)
  base = cj.fit_factored(tr.v)
  base_pl = cj.balanced_pseudo_likelihood(cj.factored_log_likelihood(base, te.v), te.v)
  true = cj.CRBMParams(*(jnp.asarray(t, jnp.float32) for t in raw))
  true_pl = cj.balanced_pseudo_likelihood(cj.pseudo_log_likelihood(true, te.v, te.aux), te.v)
  assert true_pl > base_pl
  # The trained model closes at least half of the gap between the baseline and the truth.
  assert model_pl > base_pl + 0.5 * (true_pl - base_pl), (model_pl, base_pl, true_pl)
  assert 0 <= int(res.best_epoch) < config.num_epochs
  np.testing.assert_allclose(res.best_val_pl, np.max(res.history.val_pl))
