"""Sparse observations end to end (issue 28, item 2): the store round-trips to the dense
matrix, its builder agrees with the dense one, and training, the search and the test
comparison give the same numbers from it as from the dense matrix."""
import jax
import numpy as np
import pytest

from crbm_jax import learn
from crbm_jax.data.observations import SparseCounts, build_observations
from crbm_jax.data.tagtable import TagTable
from crbm_jax.learn import plan, search, select
from crbm_jax.model import pseudolikelihood as pl
from crbm_jax.model.sparse_rows import (SparseRows, dense, dense_rows, from_csr, to_csr)
from datagen import topic_track_data

RTOL, ATOL = 1e-5, 1e-6


def _as_sparse(data):
  """The same Dataset with v as SparseRows (built from the dense matrix's CSR)."""
  x = np.asarray(data.v) > 0
  v = from_csr(np.concatenate([[0], np.cumsum(x.sum(1))]), np.nonzero(x)[1], x.shape[1])
  return learn.make_sparse_dataset(v, np.asarray(data.aux), np.asarray(data.weight))


def _close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y),
                                                       rtol=RTOL, atol=ATOL), a, b)


def test_sparse_rows_round_trip_to_the_dense_matrix_exactly():
  rng = np.random.default_rng(0)
  x = rng.random((37, 11)) < 0.2
  x[5] = False  # an empty row
  x[6] = True   # a full row (K = V)
  indptr = np.concatenate([[0], np.cumsum(x.sum(1))])
  v = from_csr(indptr, np.nonzero(x)[1], 11)
  assert v.shape == (37, 11) and v.max_tags == 11
  np.testing.assert_array_equal(np.asarray(dense(v)), x.astype(np.float32))
  back_ptr, back_idx = to_csr(v)
  np.testing.assert_array_equal(back_ptr, indptr)
  np.testing.assert_array_equal(back_idx, np.nonzero(x)[1])
  rows = np.array([3, 5, 36, 3])
  np.testing.assert_array_equal(np.asarray(dense_rows(v, rows)), x[rows])
  np.testing.assert_array_equal(np.asarray(v[rows]), x[rows])
  np.testing.assert_array_equal(np.asarray(dense_rows(x, rows)), x[rows])
  # chunked for lax.map: empty rows pad the last chunk
  chunks = pl.chunk_rows(v, 8)
  assert isinstance(chunks, SparseRows) and chunks.shape == (5, 8, 11)
  flat = np.asarray(dense(chunks)).reshape(40, 11)
  np.testing.assert_array_equal(flat[:37], x)
  assert not flat[37:].any()
  padded = learn.pad_dataset(learn.make_sparse_dataset(v, np.zeros((37, 0))), 10)
  assert padded.v.shape == (40, 11)
  np.testing.assert_array_equal(np.asarray(dense(padded.v))[:37], x)
  np.testing.assert_array_equal(np.asarray(padded.weight), [1] * 37 + [0] * 3)
  np.testing.assert_allclose(np.asarray(learn.base.visible_mean(padded)), x.mean(0),
                             rtol=1e-6)


def _table_with_duplicates():
  rows = [  # clip, user, tag, count: duplicate rows, a tag outside the vocabulary
      ("c1", "u1", "rock", 1), ("c1", "u1", "rock", 2), ("c1", "u1", "pop", 1),
      ("c1", "u2", "rock", 1), ("c2", "u1", "jazz", 1), ("c2", "u1", "jazz", 1),
      ("c3", "u2", "odd", 1),  # only outside the vocabulary: the observation is dropped
      ("c3", "u3", "pop", 4), ("c4", "u3", "rock", 1), ("c4", "u3", "pop", 1),
      ("c4", "u3", "jazz", 1), ("c4", "u3", "rock", 1)]
  clip, user, tag, count = (np.array(c) for c in zip(*rows))
  return TagTable(clip=clip, tag=tag, count=count.astype(np.int64), user=user,
                  source="dups")


def test_the_sparse_builder_agrees_with_the_dense_one_on_duplicate_and_empty_rows():
  table = _table_with_duplicates()
  vocab = np.array(["rock", "pop", "jazz"])
  dense_obs = build_observations(table, aux_groups=("user", "clip"), vocab=vocab)
  sparse_obs = build_observations(table, aux_groups=("user", "clip"), vocab=vocab,
                                  sparse_above=0, max_elements=1)  # no dense limit
  assert sparse_obs.sparse and not dense_obs.sparse
  assert isinstance(sparse_obs.X, SparseCounts)
  assert dense_obs.num_dropped == sparse_obs.num_dropped == 1
  np.testing.assert_array_equal(np.asarray(sparse_obs.X), dense_obs.X)
  assert sparse_obs.X.values.sum() == dense_obs.X.sum()  # duplicates set one bit
  np.testing.assert_array_equal(np.asarray(sparse_obs.counts), np.asarray(dense_obs.counts))
  np.testing.assert_array_equal(sparse_obs.aux, dense_obs.aux)
  np.testing.assert_array_equal(sparse_obs.clip, dense_obs.clip)
  assert (sparse_obs.num_observations, sparse_obs.num_visible) == dense_obs.X.shape
  keep = np.array([True, False, True, True, False])
  sub = sparse_obs.subset(keep)
  assert sub.sparse
  np.testing.assert_array_equal(np.asarray(sub.X), dense_obs.X[keep])
  rows = sparse_obs.csr(np.array([4, 0]))
  v = from_csr(rows.indptr, rows.indices, 3)
  np.testing.assert_array_equal(np.asarray(dense(v)), dense_obs.X[[4, 0]])


def _fit(train, val, rule=None):
  config = learn.TrainConfig(num_hidden=5, batch_size=16, num_epochs=3)
  return learn.fit(jax.random.key(2), train, val, config, num_aux=14, rule=rule)


def test_fit_from_the_sparse_store_gives_the_dense_parameters():
  train, val, _, _ = topic_track_data(160)
  whole = _fit(train, val)
  sparse = _fit(_as_sparse(train), _as_sparse(val))
  _close(whole.params, sparse.params)
  _close(whole.history, sparse.history)
  assert int(whole.best_epoch) == int(sparse.best_epoch)
  assert np.isfinite(np.asarray(whole.history.val_pl)).all()


def _compare(train, val, test):
  space = search.SearchSpace(num_hidden=(3, 5), learning_rate=(0.05, 0.2),
                             l1_aux=(0.0, 1e-3), aux_lr_scale=(1.0, 10.0),
                             weight_decay=(1e-4,), batch_size=(20,))
  return select.fit_and_compare(jax.random.key(3), train, val, test, 14, space,
                                rule=search.StopRule(patience=2, num_epochs=5),
                                num_configs=4, seed=1)


def test_the_default_search_from_the_sparse_store_selects_the_dense_model():
  train, val, test, _ = topic_track_data(200, cuts=(120, 160))
  whole = _compare(train, val, test)
  sparse = _compare(_as_sparse(train), _as_sparse(val), _as_sparse(test))
  assert sparse.selected.config == whole.selected.config
  _close(whole.selected.params, sparse.selected.params)
  for a, b in zip(whole.table, sparse.table):
    assert a["epochs"] == b["epochs"] and a["stopped"] == b["stopped"]
    np.testing.assert_allclose(a["best_val_pl"], b["best_val_pl"], rtol=RTOL)
  for k in whole.test:  # the chunked test comparison: the same figures
    np.testing.assert_allclose(sparse.test[k], whole.test[k], rtol=RTOL)
    np.testing.assert_allclose(sparse.val[k], whole.val[k], rtol=RTOL)
  for k, d in whole.differences.items():
    np.testing.assert_allclose(sparse.differences[k]["difference"], d["difference"],
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sparse.differences[k]["stderr"], d["stderr"], rtol=1e-4)


def test_sparse_evaluation_in_row_chunks_equals_the_dense_figure():
  train, val, _, num_aux = topic_track_data(200, cuts=(120, 157))
  result = _fit(train, val)
  params = jax.tree.map(lambda x: x[None], result.params)  # a block of one model
  params = params._replace(W_aux=jax.numpy.moveaxis(params.W_aux, 0, 1))
  config = learn.TrainConfig(num_hidden=5)
  one = np.asarray(learn.block.make_block_evaluate(config)(params, val))
  sval = _as_sparse(val)
  for rows in (1, 7, 37):
    chunked = plan.chunked_block_evaluate(config, rows)(params, sval)
    np.testing.assert_allclose(np.asarray(chunked), one, rtol=RTOL)
  np.testing.assert_allclose(
      np.asarray(pl.pseudo_log_likelihood(result.params, sval.v, sval.aux, 8)),
      np.asarray(pl.pseudo_log_likelihood(result.params, val.v, val.aux, 8)), rtol=RTOL)
  del num_aux


def test_the_plan_counts_sparse_rows_and_refuses_only_what_cannot_fit():
  shape = dict(num_rows=2_000_000, num_tags=2_000, num_hidden=64, num_aux=100_000,
               batch_size=100, budget_bytes=12 * 2 ** 30, num_val_rows=10_000,
               num_train_rows=1_200_000, num_test_rows=400_000, num_groups=1)
  dense_plan = plan.plan_search(128, **shape)
  assert not dense_plan.fits and "past int32 indexing" in dense_plan.message
  sparse_plan = plan.plan_search(128, **shape, max_tags=20)
  assert sparse_plan.fits, sparse_plan.message
  assert sparse_plan.terms["data"] < 2 ** 30
  # a W_aux past int32 even for one model is still refused, in one line
  huge = plan.plan_search(4, **dict(shape, num_aux=2_000_000), max_tags=20)
  assert not huge.fits and "\n" not in huge.message
  assert "W_aux" in huge.message and "past int32 indexing" in huge.message


@pytest.mark.slow  # a whole crbm-fit (compiling): ~40 s on the loaded 2-core machine
def test_crbm_fit_takes_the_sparse_path_above_the_threshold(tmp_path, monkeypatch):
  from crbm_jax.fitting import fit  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  rows = ["clip\ttag\ttrack"] + [f"c{c}\ttag{t}\tt{c % 6}" for c in range(300)
                                 for t in range(6) if rng.random() < 0.4 + 0.1 * (t == c % 6)]
  tags = tmp_path / "t.tsv"
  tags.write_text("\n".join(rows) + "\n")
  kw = dict(search=False, batch_size=10, num_epochs=3, show_progress=False)
  log_dense, log_sparse = [], []
  a = fit.fit_tag_table(str(tags), str(tmp_path / "d"), log=log_dense.append, **kw)
  monkeypatch.setattr(fit, "SPARSE_BYTES", 0)
  b = fit.fit_tag_table(str(tags), str(tmp_path / "s"), log=log_sparse.append, **kw)
  assert not any("kept sparse" in line for line in log_dense)
  assert any("kept sparse" in line for line in log_sparse)
  for k in ("val_balanced_pl", "test_balanced_pl", "train_balanced_pl"):
    np.testing.assert_allclose(b[k], a[k], rtol=RTOL)
