"""The block trainer (crbm_jax.learn.block): padded = unpadded, vmap =
single, sharded = unsharded, no recompiles, group masks, the block pseudo-likelihood and
the block layout of the lazy L1 prox against their references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brute_force import dense_l1_step
from tracing import counted_jit
from crbm_jax import learn
from crbm_jax.learn import block as grid
from crbm_jax.learn import space
from crbm_jax.learn import lazy_l1
from crbm_jax.learn.base import Dataset, TrainConfig
from crbm_jax.model import init_params
from crbm_jax.model import pseudolikelihood as pl_lib
from crbm_jax.model.pseudolikelihood import balanced_pseudo_likelihood, pseudo_log_likelihood

V, A = 12, 10


def _data(n, seed, num_groups=2):
  rng = np.random.default_rng(seed)
  v = (rng.random((n, V)) < 0.2).astype(np.float32)
  aux = np.stack([rng.integers(0, 6, n), 6 + rng.integers(0, 4, n)], 1)[:, :num_groups]
  return Dataset(jnp.asarray(v), jnp.asarray(aux, jnp.int32), jnp.ones((n,), jnp.float32))


TRAIN, VAL, TEST = _data(40, 0), _data(16, 1), _data(16, 2)


def _config(num_hidden, **kw):
  return TrainConfig(num_hidden=num_hidden, batch_size=10, num_epochs=2, eval_chunk=8, **kw)


def _points(sizes, lrs=(0.1,)):
  return [space.Point(h, lr, 0.5, 1e-3, 1e-2) for h, lr in zip(sizes, lrs * len(sizes))]


@functools.lru_cache(maxsize=None)
def _block_fn(num_hidden):
  return jax.jit(grid.make_block_fit(_config(num_hidden), A))


def _run(num_hidden, points, group_masks=None, keys=None, mesh=None, data=(TRAIN, VAL, TEST)):
  fn = _block_fn(num_hidden)
  m = len(points)
  keys = jax.random.split(jax.random.key(0), m) if keys is None else keys
  gm = np.ones((m, data[0].aux.shape[1]), np.float32) if group_masks is None else group_masks
  return grid.run_block(fn, keys, points, gm, num_hidden, jax.random.key(1), *data, mesh=mesh)


def test_expand_grid_is_the_cartesian_product():
  pts = space.expand_grid([4, 8], [0.1, 0.2, 0.3], [0.0], [1e-3, 1e-2])
  assert len(pts) == 12 and len(set(pts)) == 12
  assert {p.num_hidden for p in pts} == {4, 8}
  mask = space.hidden_masks(pts[:2] + pts[-1:], 8)
  np.testing.assert_array_equal(mask.sum(1), [4, 4, 8])


@pytest.mark.extended
def test_padded_model_is_identical_to_unpadded():
  key = jax.random.split(jax.random.key(3), 1)
  small = _run(4, _points([4]), keys=key)
  padded = _run(5, _points([4]), keys=key)
  np.testing.assert_allclose(padded.val_pl, small.val_pl, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(padded.test_pl, small.test_pl, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(padded.params.W[..., :4], small.params.W, atol=1e-5)
  np.testing.assert_array_equal(padded.params.W[..., 4:], 0.0)
  assert np.abs(small.params.W).min() > 0
  np.testing.assert_allclose(padded.params.W_aux, small.params.W_aux, atol=1e-5)


def test_vmapped_block_equals_models_run_one_at_a_time():
  points = _points([3, 5, 5], lrs=(0.05, 0.1, 0.3))
  keys = jax.random.split(jax.random.key(4), 3)
  block = _run(5, points, keys=keys)
  for i, p in enumerate(points):
    one = _run(5, [p], keys=keys[i:i + 1])
    np.testing.assert_allclose(block.val_pl[i], one.val_pl[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(block.params.W_aux[i], one.params.W_aux[0], atol=1e-5)


@pytest.mark.extended
def test_gibbs_noise_is_shared_by_the_block():
  # Common random numbers: the hidden-unit uniforms come from the split's data key, not
  # the model key. With W initialised to 0 (weight_scale 0) the model key has no effect,
  # so two models with different keys follow the same trajectory; a different data key
  # (other noise and minibatch order) gives a different one.
  fn = jax.jit(grid.make_block_fit(_config(4, weight_scale=0.0), A))
  points = _points([4, 4])
  keys = jax.random.split(jax.random.key(8), 2)
  gm = np.ones((2, 2), np.float32)
  out = grid.run_block(fn, keys, points, gm, 4, jax.random.key(1), TRAIN, VAL, TEST)
  np.testing.assert_allclose(out.params.W[0], out.params.W[1], atol=1e-6)
  assert np.abs(out.params.W[0]).max() > 1e-3
  other = grid.run_block(fn, keys, points, gm, 4, jax.random.key(2), TRAIN, VAL, TEST)
  assert np.abs(other.params.W[0] - out.params.W[0]).max() > 1e-3


@pytest.mark.extended
def test_different_hyperparameters_do_not_recompile():
  fn, traces = counted_jit(grid.make_block_fit(_config(4), A))
  for lr in (0.01, 0.2, 0.7):
    pts = _points([2, 4], lrs=(lr,))
    keys = jax.random.split(jax.random.key(int(lr * 100)), 2)
    gm = np.array([[1, 0], [0, 1]], np.float32)
    out = grid.run_block(fn, keys, pts, gm, 4, jax.random.key(1), TRAIN, VAL, TEST)
    assert np.all(np.isfinite(out.test_pl))
  assert len(traces) == 1


@pytest.mark.extended
def test_sharded_block_equals_unsharded():
  assert len(jax.devices()) >= 2, "conftest should give 2 host devices"
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), (grid.AXIS,))
  points = _points([4, 2, 4, 3], lrs=(0.05, 0.1, 0.2, 0.3))
  plain = _run(4, points)
  sharded = _run(4, points, mesh=mesh)
  assert len(sharded.test_pl.sharding.device_set) == 2
  np.testing.assert_allclose(sharded.val_pl, plain.val_pl, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(sharded.params.W, plain.params.W, atol=1e-6)


@pytest.mark.extended
def test_group_mask_equals_training_without_that_group():
  key = jax.random.split(jax.random.key(5), 1)
  masked = _run(4, _points([4]), group_masks=np.array([[1, 0]], np.float32), keys=key)
  only = tuple(d._replace(aux=d.aux[:, :1]) for d in (TRAIN, VAL, TEST))
  alone = _run(4, _points([4]), keys=key, data=only)
  np.testing.assert_allclose(masked.val_pl, alone.val_pl, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(masked.params.W_aux, alone.params.W_aux, atol=1e-6)
  np.testing.assert_array_equal(masked.params.W_aux[0, 6:], 0.0)  # group 1 rows untouched
  assert np.abs(masked.params.W_aux[0, :6]).max() > 0


@pytest.mark.extended
def test_block_without_auxiliary_columns_equals_all_groups_masked():
  # Data with no aux columns at all (G = 0) take the no-aux path; the same models with
  # both groups present but masked out must follow the same trajectory.
  key = jax.random.split(jax.random.key(9), 2)
  masked = _run(4, _points([4, 3]), group_masks=np.zeros((2, 2), np.float32), keys=key)
  none = tuple(d._replace(aux=d.aux[:, :0]) for d in (TRAIN, VAL, TEST))
  fn = jax.jit(grid.make_block_fit(_config(4), 0))
  bare = grid.run_block(fn, key, _points([4, 3]), np.zeros((2, 0), np.float32), 4,
                        jax.random.key(1), *none)
  np.testing.assert_allclose(bare.val_pl, masked.val_pl, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(bare.params.W, masked.params.W, atol=1e-5)
  np.testing.assert_array_equal(masked.params.W_aux, 0.0)


@jax.jit
@functools.partial(jax.vmap, axis_name=grid.AXIS)
def _block_pl(params):
  return pl_lib.balanced_log_pl(params, TEST, 7, axis_name=grid.AXIS)


@pytest.mark.extended
@pytest.mark.parametrize("max_w,form", [(3.0, 0), (7.0, 1), (20.0, 2), (150.0, 3)],
                         ids=["product16", "product8", "product1", "softplus"])
def test_block_pseudo_likelihood_matches_library(max_w, form):
  # Each exact form (chosen by the block's max |W|) against the unfused library path.
  keys = jax.random.split(jax.random.key(6), 3)
  params = jax.vmap(lambda k: init_params(k, V, 5, A, 1.0, jnp.full((V,), 0.3)))(keys)
  W = jax.random.uniform(keys[1], (3, V, 5), minval=-1.0, maxval=1.0)
  W = W.at[0, 0, 0].set(1.0) * jnp.array([max_w, 0.5 * max_w, 0.1])[:, None, None]
  params = params._replace(W=W, W_aux=jax.random.normal(keys[0], (3, A, V)))
  assert int(pl_lib.form_index(jnp.max(jnp.abs(W)))) == form
  got = _block_pl(params)
  for i in range(3):
    p = jax.tree.map(lambda x: x[i], params)
    want = balanced_pseudo_likelihood(pseudo_log_likelihood(p, TEST.v, TEST.aux), TEST.v)
    np.testing.assert_allclose(got[i], want, rtol=1e-5)


def test_block_lazy_aux_update_equals_the_dense_prox_over_many_steps():
  # The block layout of the lazy L1 (rows caught up before use, indices shared by the
  # models, W_aux laid out [A, M, V]) against the float64 dense prox of each model, fed
  # the same gradients; rows 9-11 are never touched. Model 1 has group 1 masked out.
  rng = np.random.default_rng(0)
  num_aux, v, batch = 12, 5, 6
  steps, scales = np.array([0.1, 0.05]), np.array([2.0, 1.0])
  W0 = rng.normal(0, 0.2, (num_aux, 2, v)).astype(np.float32)
  W0[4:, 1] = 0.0  # a masked group's rows are 0 (as initialised)
  group_masks = jnp.array([[1.0, 1.0], [1.0, 0.0]])
  W_aux, l1 = jnp.asarray(W0), lazy_l1.init_l1(num_aux, (2,))
  dense = [W0[:, m].astype(np.float64) for m in range(2)]

  @jax.jit
  def step(W_aux, l1, aux, dvis):
    touched = lazy_l1.touch(W_aux, l1, lazy_l1.plain_input(aux))
    bias = lazy_l1.touched_bias(touched, group_masks)
    W_aux, l1 = lazy_l1.update(W_aux, l1, touched, group_masks, dvis,
                               jnp.asarray(steps * scales, jnp.float32),
                               jnp.full((2,), 3e-3, jnp.float32))
    return W_aux, l1, bias

  for _ in range(120):
    aux = np.stack([rng.integers(-1, 4, batch), 4 + rng.integers(0, 5, batch)], 1)
    aux = aux.astype(np.int32)
    dvis = rng.normal(0, 0.05, (batch, 2, v)).astype(np.float32)
    W_aux, l1, bias = step(W_aux, l1, jnp.asarray(aux), jnp.asarray(dvis))
    for m in range(2):
      # The bias the CD step sees equals the dense-prox parameters' bias.
      used = np.where((aux >= 0) & (np.asarray(group_masks[m]) > 0), aux, -1)
      want = np.stack([sum((dense[m][a] for a in row if a >= 0), np.zeros(v))
                       for row in used])
      np.testing.assert_allclose(bias[:, m], want, rtol=1e-5, atol=1e-6)
      dense[m] = dense_l1_step(dense[m], aux, dvis[:, m], steps[m] * scales[m], 3e-3,
                               group_masks[m])
  flushed = lazy_l1.caught_up(W_aux, l1)
  for m in range(2):
    np.testing.assert_allclose(flushed[:, m], dense[m], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(flushed[4:, 1], 0.0)


@pytest.mark.extended
def test_validation_on_a_schedule_selects_among_the_evaluated_epochs():
  # eval_every=2 over 5 epochs: validation after epochs 1, 3 (every 2nd) and 4 (the
  # last), the same values as validating every epoch there, NaN elsewhere; training is
  # unchanged and the best epoch is the best of the evaluated ones.
  every = dict(num_hidden=4, batch_size=10, num_epochs=5, eval_chunk=8)
  points = _points([4, 3], lrs=(0.05, 0.5))
  keys = jax.random.split(jax.random.key(12), 2)
  gm = np.ones((2, 2), np.float32)
  out = {}
  for k in (1, 2):
    fn = jax.jit(grid.make_block_fit(TrainConfig(eval_every=k, **every), A))
    out[k] = jax.device_get(grid.run_block(fn, keys, points, gm, 4, jax.random.key(1),
                                           TRAIN, VAL, TEST))
  evaluated = [1, 3, 4]
  assert np.isnan(out[2].val_pl[:, [0, 2]]).all()
  np.testing.assert_allclose(out[2].val_pl[:, evaluated], out[1].val_pl[:, evaluated],
                             rtol=1e-6)
  np.testing.assert_allclose(out[2].recon_error, out[1].recon_error, rtol=1e-6)
  for m in range(2):
    want = evaluated[int(np.argmax(out[1].val_pl[m, evaluated]))]
    assert int(out[2].best_epoch[m]) == want
    np.testing.assert_allclose(out[2].best_val_pl[m], out[1].val_pl[m, want], rtol=1e-6)


@pytest.mark.extended
def test_block_evaluation_picks_the_exact_form_per_group_of_models():
  # 32 models in two groups of 16: one model of the second group has max|W| = 150 (the
  # softplus form for its group), the others small weights (the 16-factor product);
  # every model's value must be the library's, whichever form its group used.
  m = 32
  keys = jax.random.split(jax.random.key(13), m)
  params = jax.vmap(lambda k: init_params(k, V, 5, A, 0.5, jnp.full((V,), 0.3)))(keys)
  W = params.W.at[20, 0, 0].set(150.0)
  params = params._replace(W=W, W_aux=0.3 * jax.random.normal(keys[0], (A, m, V)))
  got = jax.jit(lambda p: grid.make_block_evaluate(_config(5), form_group=16)(p, TEST))(params)
  for i in (0, 15, 16, 20, 31):
    p = jax.tree.map(lambda x: x[i], params._replace(W_aux=jnp.moveaxis(params.W_aux, 1, 0)))
    want = balanced_pseudo_likelihood(pseudo_log_likelihood(p, TEST.v, TEST.aux), TEST.v)
    np.testing.assert_allclose(got[i], want, rtol=1e-5)
