"""CD-k training: lazy vs dense L1 prox, exact zeros, no recompiles, learning a known CRBM."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax import train as train_lib
from brute_force import exact_quantities, random_params


def _random_data(seed, n=240, v=12, num_aux=9, groups=2, density=0.3):
  rng = np.random.default_rng(seed)
  x = (rng.random((n, v)) < density).astype(np.float32)
  # Each group owns a block of rows (group g: rows [g * per, (g + 1) * per)), -1 = absent.
  per = num_aux // groups
  aux = np.stack([np.where(col >= 0, g * per + col, -1) for g, col in
                  enumerate(rng.integers(-1, per, (groups, n)))], 1).astype(np.int32)
  return cj.make_dataset(x, aux)


def _run_epochs(l1_mode, data, hparams, epochs=3, num_aux=9):
  config = cj.TrainConfig(num_hidden=5, batch_size=20, num_epochs=epochs, l1_mode=l1_mode)
  params = cj.init_params(jax.random.key(0), data.v.shape[1], 5, num_aux, 0.1)
  state = train_lib.init_state(params, hparams)
  run = jax.jit(lambda k, s: cj.run_epoch(k, s, data, hparams, config))
  for epoch in range(epochs):
    state, _ = run(jax.random.key(epoch), state)
  return state.params


def test_lazy_and_dense_l1_give_the_same_parameters():
  data = _random_data(0)
  hparams = cj.make_hparams(learning_rate=0.1, momentum=0.5, weight_decay=1e-3, l1_aux=2e-3)
  lazy = _run_epochs("lazy", data, hparams)
  dense = _run_epochs("dense", data, hparams)
  for a, b in zip(lazy, dense):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32 summation order
  assert np.any(np.asarray(lazy.W_aux) != 0)


def test_lazy_and_dense_agree_when_rows_go_untouched_during_training():
  # Entity 8 appears in one observation only, so its row waits many steps between
  # touches: its visible bias must include every soft-threshold it missed.
  data = _random_data(7)
  aux = np.asarray(data.aux).copy()
  aux[aux == 8] = 7
  aux[5, 1] = 8
  data = data._replace(aux=jnp.asarray(aux))
  hparams = cj.make_hparams(learning_rate=0.1, momentum=0.0, weight_decay=0.0, l1_aux=0.05)
  params = cj.init_params(jax.random.key(0), data.v.shape[1], 5, 9, 0.1)
  params = params._replace(W_aux=jnp.full_like(params.W_aux, 0.5))
  results = {}
  for mode in ("lazy", "dense"):
    config = cj.TrainConfig(num_hidden=5, batch_size=20, l1_mode=mode)
    state, _ = jax.jit(lambda s: cj.run_epoch(jax.random.key(3), s, data, hparams, config))(
        train_lib.init_state(params, hparams))
    results[mode] = state.params
  for a, b in zip(results["lazy"], results["dense"]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_lazy_l1_catches_up_rows_not_touched_for_many_steps():
  # The aux update alone, fed the same gradient sequence, so no sampling noise can
  # amplify float rounding: rows 0-3 are group 0's, 4-8 group 1's; row 8 is touched only
  # at steps 0 and 150, rows 9-11 never,
  # and the learning rate changes every step (a schedule): lazy must equal dense.
  rng = np.random.default_rng(0)
  num_aux, v, batch = 12, 7, 6
  W_aux = jnp.asarray(rng.normal(0, 0.2, (num_aux, v)), jnp.float32)
  params = cj.CRBMParams(jnp.zeros((v, 2)), W_aux, jnp.zeros(v), jnp.zeros(2))
  states = {m: train_lib.init_state(params, cj.make_hparams()) for m in ("lazy", "dense")}
  update = {"lazy": jax.jit(train_lib.update_aux_lazy),
            "dense": jax.jit(train_lib.update_aux_dense)}
  for step in range(200):
    aux = np.stack([rng.integers(-1, 4, batch), 4 + rng.integers(0, 4, batch)], 1)
    aux = aux.astype(np.int32)
    if step in (0, 150):
      aux[0, 1] = 8
    aux[1, 1] = aux[0, 1]  # duplicate rows within a minibatch
    dvis = jnp.asarray(rng.normal(0, 0.05, (batch, v)), jnp.float32)
    hp = cj.make_hparams(learning_rate=0.05 + 0.1 * rng.random(), l1_aux=3e-3,
                         aux_lr_scale=1.0 + 4.0 * rng.random())
    for mode in states:
      states[mode] = update[mode](states[mode], jnp.asarray(aux), dvis, hp)
  lazy = train_lib.flush_l1(states["lazy"]).params.W_aux
  dense = states["dense"].params.W_aux
  np.testing.assert_allclose(lazy, dense, rtol=1e-5, atol=1e-6)
  # Never-touched rows got exactly the summed soft-threshold, with exact zeros.
  expected = cj.soft_threshold(W_aux[9:], states["dense"].l1_total)
  np.testing.assert_allclose(dense[9:], expected, rtol=1e-5, atol=1e-6)
  assert np.any(np.asarray(dense)[9:] == 0.0)


def test_make_dataset_rejects_groups_sharing_rows():
  with pytest.raises(ValueError, match="aux columns 0 and 1 both use W_aux row 3"):
    cj.make_dataset(np.zeros((2, 4)), np.array([[3, 5], [1, 3]]))


def test_aux_lr_scale_multiplies_the_w_aux_step_only():
  data = _random_data(8)
  base = _run_epochs("lazy", data, cj.make_hparams(0.1, 0.0, 0.0, 0.0, aux_lr_scale=1.0), 1)
  fast = _run_epochs("lazy", data, cj.make_hparams(0.1, 0.0, 0.0, 0.0, aux_lr_scale=0.0), 1)
  none = _run_epochs("lazy", data, cj.HParams(*cj.make_hparams(0.1, 0.0, 0.0, 0.0)[:4]), 1)
  np.testing.assert_array_equal(fast.W_aux, 0.0)  # a zero step leaves W_aux at its init
  assert np.any(np.asarray(base.W_aux) != 0.0)
  for a, b in zip(base, none):  # None means a scale of 1
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_l1_prox_produces_exact_zeros():
  x = jnp.array([-0.3, -0.05, 0.0, 0.04, 0.5])
  shrunk = np.asarray(cj.soft_threshold(x, 0.05))
  np.testing.assert_array_equal(shrunk[1:4], 0.0)  # exact zeros, not merely small
  np.testing.assert_allclose(shrunk[[0, 4]], [-0.25, 0.45], rtol=1e-6)
  data = _random_data(2)
  strong = _run_epochs("lazy", data, cj.make_hparams(0.1, 0.5, 0.0, l1_aux=0.5))
  weak = _run_epochs("lazy", data, cj.make_hparams(0.1, 0.5, 0.0, l1_aux=0.0))
  assert np.mean(np.asarray(strong.W_aux) == 0.0) > 0.95
  assert np.mean(np.asarray(weak.W_aux) == 0.0) < np.mean(np.asarray(strong.W_aux) == 0.0)


def test_changing_hyperparameter_values_does_not_recompile():
  traces = []
  config = cj.TrainConfig(num_hidden=4, batch_size=20, num_epochs=2)
  fit_fn = cj.make_fit(config, num_aux=9)

  def counted(*args):
    traces.append(1)
    return fit_fn(*args)

  jitted = jax.jit(counted)
  train, val = _random_data(3), _random_data(4, n=60)
  for lr, l1, wd, scale in [(0.05, 1e-3, 1e-4, 1.0), (0.2, 0.0, 0.0, 10.0),
                            (0.01, 0.3, 1e-2, 100.0)]:
    jax.block_until_ready(jitted(jax.random.key(0), cj.make_hparams(lr, 0.5, wd, l1, scale),
                                 train, val))
  assert len(traces) == 1


def test_hidden_mask_makes_a_padded_model_equal_to_an_unpadded_one():
  train, val = _random_data(5), _random_data(6, n=60)
  hp = cj.make_hparams(0.1, 0.5, 1e-3, 1e-3)
  small = jax.jit(cj.make_fit(cj.TrainConfig(num_hidden=3, batch_size=20, num_epochs=3), 9))
  big = jax.jit(cj.make_fit(cj.TrainConfig(num_hidden=6, batch_size=20, num_epochs=3), 9))
  # Same initial W columns: the padded init draws a [V, 6] matrix, so compare the
  # training dynamics from identical starting points via init from the small model.
  res_small = small(jax.random.key(1), hp, train, val)
  mask = jnp.array([1, 1, 1, 0, 0, 0], jnp.float32)
  res_big = big(jax.random.key(1), hp, train, val, mask)
  assert np.all(np.asarray(res_big.params.W)[:, 3:] == 0)
  assert np.all(np.asarray(res_big.params.c)[3:] == 0)
  # Padded units contribute exactly nothing to the pseudo-likelihood.
  p = res_big.params
  trimmed = p._replace(W=p.W[:, :3], c=p.c[:3])
  np.testing.assert_allclose(cj.pseudo_log_likelihood(p, val.v, val.aux),
                             cj.pseudo_log_likelihood(trimmed, val.v, val.aux), rtol=1e-6)
  assert np.isfinite(res_small.best_val_pl)



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
