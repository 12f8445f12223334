"""The distance-aware fit compiles once for every kernel and ℓ (STYLE.md item 12): the
neighbour table is a traced argument, not a closure constant."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax import learn
from crbm_jax.learn import clip_distance as drift
from test_clip_distance import _setup
from tracing import counted_jit


def _fit_setup():
  obs, nb, _ = _setup()
  data = cj.make_dataset(np.tile(obs.X, (4, 1)), np.tile(obs.aux, (4, 1)))
  config = cj.TrainConfig(num_hidden=3, batch_size=6, num_epochs=3)
  return obs, nb, data, config


def _tables(nb):
  return {kind: drift.neighbour_table(nb._replace(normalize=kind == "mean"))
          for kind in ("sum", "mean")}


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("length", [0.0, 0.3, np.inf])
def test_traced_normalize_gives_the_static_kernel_bit_for_bit(length, normalize):
  _, nb, _ = _setup()
  static = drift.kernel_weights(jnp.asarray(nb.dist), jnp.asarray(nb.rows), length, normalize)
  traced = jax.jit(drift.kernel_weights)(jnp.asarray(nb.dist), jnp.asarray(nb.rows),
                                         jnp.asarray(length), jnp.asarray(normalize))
  np.testing.assert_array_equal(np.asarray(static), np.asarray(traced))


def test_distance_fit_compiles_once_for_both_kernels_and_every_length():
  obs, nb, data, config = _fit_setup()
  jitted, traces = counted_jit(
      drift.make_distance_fit(config, obs.num_aux, nb.offset, nb.column))
  tables = _tables(nb)
  results = []
  for kind, ell in (("sum", 0.1), ("mean", 0.1), ("sum", 1.0), ("mean", np.inf)):
    res = jitted(jax.random.key(0), cj.make_hparams(kernel_length=ell), data, data,
                 tables[kind])
    assert np.all(np.isfinite(np.asarray(res.history.val_pl)))
    results.append(np.asarray(res.params.W_aux))
  assert len(traces) == 1
  assert jitted._cache_size() == 1  # pylint: disable=protected-access
  assert not np.array_equal(results[0], results[1])  # the flag is not ignored


@pytest.mark.parametrize("kind", ["sum", "mean"])
def test_distance_fit_with_a_traced_table_matches_the_closed_over_learner(kind):
  obs, nb, data, config = _fit_setup()
  nb = nb._replace(normalize=kind == "mean")
  hp = cj.make_hparams(kernel_length=0.3)
  closed = jax.jit(learn.make_fit(config, obs.num_aux,
                                  learn.distance_aware(config, obs.num_aux, nb)))
  traced = jax.jit(drift.make_distance_fit(config, obs.num_aux, nb.offset, nb.column))
  want = closed(jax.random.key(1), hp, data, data)
  got = traced(jax.random.key(1), hp, data, data, drift.neighbour_table(nb))
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
