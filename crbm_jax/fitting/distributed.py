"""One CRBM fitted to a tag table with its minibatches split over devices and processes.

``fit_tag_table_data_parallel(tags, workdir, ...)`` is what ``experiments/fit_distributed.py``
runs in every process: each process reads and splits the table the same way (the same
seed), trains the given configuration for a fixed number of epochs with the best epoch
kept by validation pseudo-likelihood (``learn.distributed.fit_data_parallel``; no search,
no early stopping), and process 0 alone writes ``<workdir>/model`` and
``<workdir>/metrics.json``.
"""
from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from crbm_jax.fitting.inputs import InputError, Log, check_hparams, prepare_fit_data


def fit_tag_table_data_parallel(tags: str, workdir: str, *, aux: str = "auto",
                                num_hidden: int = 64, num_epochs: int = 30,
                                learning_rate: float = 0.05, momentum: float = 0.5,
                                weight_decay: float = 1e-4, l1_aux: float = 0.0,
                                aux_lr_scale: float = 10.0, batch_size: int = 100,
                                cd_k: int = 1, eval_every: int = 1, min_users: int = 2,
                                top_tags: int = 0, seed: int = 0, canonicalize: bool = True,
                                steps_per_call: int = 0, log: Log = print) -> dict:
  """Trains one model data-parallel over every process's devices; returns the metrics
  (the same dict in every process; only process 0 writes files). ``steps_per_call``:
  minibatches per jitted call (0: a whole epoch; bounds the rows on the devices)."""
  from crbm_jax import learn  # pylint: disable=import-outside-toplevel
  from crbm_jax.learn import distributed  # pylint: disable=import-outside-toplevel
  from crbm_jax.util import model_io  # pylint: disable=import-outside-toplevel
  check_hparams(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay,
                l1_aux=l1_aux, aux_lr_scale=aux_lr_scale)
  if min(num_hidden, num_epochs, batch_size, cd_k, eval_every) < 1 or steps_per_call < 0:
    raise InputError("--hidden, --num_epochs, --batch_size, --cd_k and --eval_every must be "
                     ">= 1 and --steps_per_call >= 0")
  mesh = distributed.data_mesh()
  try:
    distributed.check_batch_size(batch_size, mesh)
  except ValueError as e:
    raise InputError(f"--batch_size: {e}") from None
  writer = jax.process_index() == 0
  say = log if writer else (lambda _: None)
  t0 = time.perf_counter()
  obs, split, groups = prepare_fit_data(tags, aux, min_users=min_users, top_tags=top_tags,
                                        seed=seed, canonicalize=canonicalize, log=say)

  def dataset(idx):
    return learn.Dataset(np.asarray(obs.X[idx]),  # uint8 on the host; float32 per batch
                         np.asarray(obs.aux[idx], np.int32).reshape(len(idx), -1),
                         np.ones(len(idx), np.float32))

  train, val, test = dataset(split.train), dataset(split.val), dataset(split.test)
  config = learn.TrainConfig(num_hidden=num_hidden, cd_k=cd_k, batch_size=batch_size,
                             num_epochs=num_epochs, eval_every=eval_every)
  hparams = learn.make_hparams(learning_rate=learning_rate, momentum=momentum,
                               weight_decay=weight_decay, l1_aux=l1_aux,
                               aux_lr_scale=aux_lr_scale)
  say(f"fit_distributed: {obs.num_observations} observations x {obs.num_visible} tags, "
      f"aux groups {list(groups) or 'none'} ({obs.num_aux} entities); minibatches of "
      f"{batch_size} split over {mesh.size} devices in {jax.process_count()} processes")
  prepared = time.perf_counter() - t0
  stamps = [time.perf_counter()]
  result = distributed.fit_data_parallel(jax.random.key(seed), train, val, config, hparams,
                                         obs.num_aux, mesh, log=say,
                                         on_epoch=lambda _: stamps.append(time.perf_counter()),
                                         steps_per_call=steps_per_call or None)
  trained = time.perf_counter() - t0 - prepared
  evaluate = jax.jit(distributed.make_sharded_evaluate(config, mesh))
  params = distributed.replicate(result.params, mesh)
  test_pl = float(evaluate(params, distributed.shard_rows(test, mesh)))
  metrics = dict(
      devices=mesh.size, processes=jax.process_count(), best_epoch=int(result.best_epoch),
      val_pl=float(result.best_val_pl), test_pl=test_pl,
      recon_error=[float(x) for x in result.history.recon_error],
      val_history=[float(x) for x in result.history.val_pl],
      num_observations=int(obs.num_observations), num_tags=int(obs.num_visible),
      num_aux=int(obs.num_aux), prepare_seconds=prepared, train_seconds=trained,
      # from the training's start to each epoch's end (the first includes compiling;
      # an evaluation's time counts in the next epoch's)
      epoch_seconds=np.diff(stamps).tolist())
  say(f"fit_distributed: best epoch {metrics['best_epoch'] + 1}, validation PL "
      f"{metrics['val_pl']:.5f}, test PL {test_pl:.5f}; training {trained:.1f} s")
  if writer:
    os.makedirs(workdir, exist_ok=True)
    model_io.save_model(
        os.path.join(workdir, "model"), result.params, vocab=obs.vocab, display=obs.display,
        groups=groups, entity_names=obs.entity_names, offsets=obs.offsets,
        config=dict(num_hidden=num_hidden, num_epochs=num_epochs, batch_size=batch_size,
                    cd_k=cd_k, learning_rate=learning_rate, momentum=momentum,
                    weight_decay=weight_decay, l1_aux=l1_aux, aux_lr_scale=aux_lr_scale,
                    seed=seed, data_parallel_devices=mesh.size),
        metrics=dict(val_pl=metrics["val_pl"], test_pl=test_pl))
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
      json.dump(metrics, f, indent=1)
  return metrics
