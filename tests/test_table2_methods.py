"""Table 2's computation methods and stage layout (one call per stage, W_aux rows per
stage); the method chosen per backend. The equivalences of the split axis and of
successive halving with per-split blocks are engine tests (tests/test_engine.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crbm_jax.configs import table2 as table2_config
from crbm_jax.learn import block as block_lib
from crbm_jax.learn import space as space_lib
from crbm_jax.learn.base import Dataset, TrainConfig
from crbm_jax.paper import table2

V, A, S = 12, 10, 3


def _split(seed, n):
  rng = np.random.default_rng(seed)
  v = (rng.random((n, V)) < 0.2).astype(np.float32)
  aux = np.stack([rng.integers(0, 6, n), 6 + rng.integers(0, 4, n)], 1).astype(np.int32)
  w = np.ones(n, np.float32)
  w[n - 3:] = 0.0  # padding rows, as _split_datasets makes them
  return Dataset(jnp.asarray(v), jnp.asarray(aux), jnp.asarray(w))


SPLITS = [tuple(_split(10 * s + i, n) for i, n in enumerate((40, 16, 16))) for s in range(S)]
CONFIG = TrainConfig(num_hidden=5, batch_size=10, num_epochs=3, eval_chunk=8)
POINTS = [space_lib.Point(h, lr, 0.5, 1e-3, l1, sc) for h, lr, l1, sc in
          [(5, 0.1, 1e-2, 1.0), (3, 0.3, 0.0, 10.0), (5, 0.05, 1e-3, 3.0), (4, 0.2, 1e-2, 1.0)]]
GROUPS = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], np.float32)


def _keys():
  model = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(jax.random.key(0), s),
                                              len(POINTS)))(jnp.arange(S))
  data = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(1), s))(jnp.arange(S))
  return model, data


def test_map_needs_whole_chunks():
  fn = block_lib.make_split_block_fit(CONFIG, A, "map", chunk_size=3)
  model_keys, data_keys = _keys()
  stacked = [jax.tree.map(lambda *x: jnp.stack(x), *[s[i] for s in SPLITS]) for i in range(3)]
  with pytest.raises(ValueError, match="multiple of chunk_size"):
    fn(model_keys, space_lib.stack_hparams(POINTS),
       jnp.asarray(space_lib.hidden_masks(POINTS, 5)), jnp.asarray(GROUPS), data_keys,
       *stacked)


def _smoke(method):
  c = table2_config.get_config("smoke")
  c.shard, c.method, c.chunk_size = False, method, 2
  return c


def test_grid_stage_carries_only_its_groups_rows():
  prep = table2.prepare("simulated", _smoke("vmap"))
  track = prep.obs.groups.index("track")
  obs = table2.stage_observations(prep, [track])
  assert obs.num_aux == len(prep.obs.entity_names[track]) < prep.obs.num_aux
  assert obs.aux.shape[1] == 1 and obs.aux.max() < obs.num_aux
  rows = prep.obs.aux[:, track]  # the same entity in both layouts
  np.testing.assert_array_equal(np.where(rows >= 0, rows - prep.obs.offsets[track], -1),
                                obs.aux[:, 0])
  assert table2.stage_observations(prep, list(range(len(prep.obs.groups)))) is prep.obs


def test_auto_method_is_the_single_computation_on_accelerators(monkeypatch):
  c = _smoke("auto")
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert table2.resolve_method(c) == "vmap"
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  assert table2.resolve_method(c) == table2.CPU_METHOD
  c.method = "nonsense"
  with pytest.raises(ValueError, match="unknown method"):
    table2.resolve_method(c)


@pytest.mark.slow
def test_every_method_gives_the_same_table_and_stacked_ones_one_call_per_stage(
    tmp_path, monkeypatch):
  calls = []
  real = table2.Runner._stage_fn

  def counted(self, *args):
    fn = real(self, *args)
    return lambda *a: calls.append(1) or fn(*a)

  monkeypatch.setattr(table2.Runner, "_stage_fn", counted)
  tables = {}
  for method in block_lib.METHODS:
    c = _smoke(method)
    c.group_by_hidden = True  # two hidden sizes: two blocks, still one call per stage
    tables[method] = table2.run_table2(c, str(tmp_path / method))["datasets"][0]
    if method == "vmap":
      assert len(calls) == 2  # the grid stage and the combination stage
  want = tables["vmap"]
  for method, got in tables.items():
    assert got["selected"] == want["selected"], method
    for a, b in zip(got["rows"], want["rows"]):
      assert a["pattern"] == b["pattern"]
      np.testing.assert_allclose(a["values"], b["values"], rtol=1e-4, atol=1e-5,
                                 err_msg=f"{method} {a['pattern']}")


@pytest.mark.slow
def test_adaptive_search_picks_within_one_standard_error_on_the_simulated_study(tmp_path):
  # Both searches on the simulated study (24 points, 3 splits, 8 epochs): the
  # successive-halving pick's exhaustive mean validation PL must lie within one standard
  # error (over splits) of the exhaustive winner's, for a fraction of the work.
  import ml_collections  # pylint: disable=import-outside-toplevel
  c = _smoke("auto")
  c.search, c.num_splits, c.vocab_top_n = "both", 3, 50
  c.grid = ml_collections.ConfigDict(dict(
      num_hidden=(8, 16), learning_rate=(0.1, 0.5, 2.0), weight_decay=(1e-4,),
      l1_aux=(1e-4, 1e-3), momentum=(0.5,), aux_lr_scale=(1.0, 10.0)))
  c.train.num_epochs = 8
  out = table2.run_table2(c, str(tmp_path))
  res = out["datasets"][0]
  a = res["adaptive"]
  assert a["within_one_stderr"], a
  assert (a["pick_exhaustive_mean_val_pl"]
          >= a["exhaustive_mean_val_pl"] - a["exhaustive_val_pl_stderr"])
  assert a["model_epochs"] < 0.5 * a["exhaustive_model_epochs"]
  # the search's own score of its pick is the exhaustive fits' (shared trajectories), when
  # the pick trained every epoch
  assert max(a["best_epoch"]) >= 0
  np.testing.assert_allclose(a["mean_val_pl"], a["pick_exhaustive_mean_val_pl"],
                             rtol=1e-4)
  md = open(tmp_path / "table2.md").read()
  assert "Adaptive search" in md and "Exhaustive grid: picked" in md
