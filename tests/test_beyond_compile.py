"""The beyond stage fits every Table 2 row in the layout of all groups (absent columns -1),
so the rows share compiled programs; the numbers must be those of ``select_groups``."""
import logging

import jax
import numpy as np
import pytest

import crbm_jax as cj
from crbm_jax import learn
from crbm_jax.data.observations import build_observations
from crbm_jax.model import ais
from crbm_jax.paper import beyond
from test_clip_distance import _table


def _fit(obs, config):
  data = cj.make_dataset(np.tile(obs.X, (4, 1)), np.tile(obs.aux, (4, 1)))
  fit_fn = jax.jit(learn.make_fit(config, obs.num_aux))
  return data, fit_fn(jax.random.key(0), cj.make_hparams(l1_aux=1e-2), data, data)


# Two layouts in the default suite (one group; two groups, neither the first); the
# other two, each ~17 s of compiling on the 2-core machine, in CI's extended step.
@pytest.mark.parametrize("groups", [
    ("user",), pytest.param(("user", "track"), marks=pytest.mark.extended),
    ("track", "clip"), pytest.param((), marks=pytest.mark.extended)])
def test_masked_layout_gives_the_select_groups_numbers_bit_for_bit(groups):
  obs_all = build_observations(_table(), aux_groups=("user", "track", "clip"))
  config = cj.TrainConfig(num_hidden=3, batch_size=6, num_epochs=3)
  (data_s, sel), (data_m, mask) = (_fit(o, config) for o in (
      obs_all.select_groups(groups), beyond._masked_groups(obs_all, groups)))  # pylint: disable=protected-access
  for name in ("W", "b", "c"):
    np.testing.assert_array_equal(getattr(sel.params, name), getattr(mask.params, name))
  np.testing.assert_array_equal(sel.history.val_pl, mask.history.val_pl)
  np.testing.assert_array_equal(sel.best_val_pl, mask.best_val_pl)
  rows = np.concatenate([np.zeros(0, int)] + [np.arange(o, o + len(obs_all.entity_names[i]))
                                               for i, o in enumerate(obs_all.offsets)
                                               if obs_all.groups[i] in groups])
  selected = np.zeros((0, obs_all.num_visible)) if sel.params.W_aux is None else sel.params.W_aux
  np.testing.assert_array_equal(selected, np.asarray(mask.params.W_aux)[rows])
  rest = np.setdiff1d(np.arange(obs_all.num_aux), rows)
  assert not np.any(np.asarray(mask.params.W_aux)[rest])  # the absent groups' rows stay 0
  pl = [beyond._per_bit_pl(r.params, d.v, d.aux) for r, d in ((sel, data_s), (mask, data_m))]  # pylint: disable=protected-access
  np.testing.assert_array_equal(*pl)
  kw = dict(num_runs=3, num_betas=5)
  reports = [ais.average_log_likelihood(jax.random.key(2), r.params, d.v, d.aux, **kw)
             for r, d in ((sel, data_s), (mask, data_m))]
  assert reports[0] == reports[1]


@pytest.mark.slow
def test_smoke_stage_compiles_one_program_per_learner_for_every_split(tmp_path, caplog):
  from crbm_jax.configs import beyond as beyond_config  # pylint: disable=import-outside-toplevel
  config = beyond_config.get_config("smoke")
  config.num_splits = 2  # splits of equal shapes share the compiled fits
  jax.config.update("jax_log_compiles", True)
  try:
    with caplog.at_level(logging.WARNING):
      beyond.run_beyond(config, str(tmp_path))
  finally:
    jax.config.update("jax_log_compiles", False)
  count = lambda name: sum(r.getMessage().startswith(f"Compiling jit({name})")
                           for r in caplog.records)
  # CD-1 (both Table 2 rows and the sampler comparison), PCD, PT, distance-aware (both
  # kernels, every ℓ): four fits for both splits; one pseudo-likelihood and one sampler
  # program.
  assert count("fit_fn") == 4
  assert count("pseudo_log_likelihood") <= 1 and count("sample_visible") <= 1
