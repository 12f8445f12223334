"""Data-parallel training of one model (crbm_jax.learn.distributed): the minibatch rows
split over devices (one process with forced CPU devices) and over processes
(jax.distributed on localhost, gloo collectives) give the model one device gives with
the same seed and minibatches, to float summation order."""
import json
import os
import pathlib
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

import datagen

from crbm_jax import learn
from crbm_jax.learn import distributed
from crbm_jax.learn.base import Dataset, TrainConfig
from crbm_jax.util import runs

REPO = pathlib.Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-5, 1e-6


def _data(n, seed, v=16):
  rng = np.random.default_rng(seed)
  x = (rng.random((n, v)) < 0.25).astype(np.float32)
  aux = np.stack([rng.integers(0, 7, n), 7 + rng.integers(0, 5, n)], 1).astype(np.int32)
  return Dataset(x, aux, np.ones(n, np.float32))


def _assert_params_close(got, want):
  for name in want._fields:
    np.testing.assert_allclose(np.asarray(getattr(got, name)),
                               np.asarray(getattr(want, name)), rtol=RTOL, atol=ATOL,
                               err_msg=name)


def _env():
  """This environment for a launcher process: this checkout first on the path, CPU, and
  no XLA_FLAGS (tests/conftest.py's 2 devices; the launcher sets its own)."""
  env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return env


def _fit_both(factory, devices, steps_per_call=None):
  """(learn.fit on one device, fit_data_parallel over ``devices``) on the same data."""
  train, val = _data(230, 1), _data(51, 2)
  config = TrainConfig(num_hidden=8, batch_size=20, num_epochs=3, eval_chunk=16)
  hparams = learn.make_hparams(learning_rate=0.1, l1_aux=1e-3, aux_lr_scale=5.0)
  key = jax.random.key(3)
  one = jax.devices()[0]
  put = lambda d: Dataset(*(jax.device_put(x, one) for x in d))
  want = learn.fit(key, put(train), put(val), config, hparams, num_aux=12,
                   learner=factory(config, 12))
  mesh = distributed.data_mesh(devices)
  got = distributed.fit_data_parallel(key, train, val, config, hparams, 12, mesh,
                                      learner=factory(config, 12),
                                      steps_per_call=steps_per_call)
  return want, got, mesh, train


def _assert_same_fit(got, want):
  _assert_params_close(got.params, want.params)
  assert int(got.best_epoch) == int(want.best_epoch)
  np.testing.assert_allclose(got.history.val_pl, want.history.val_pl, rtol=RTOL)
  np.testing.assert_allclose(got.history.recon_error, want.history.recon_error, rtol=RTOL)


def _two_devices():
  if len(jax.devices()) < 2:  # tests/conftest.py asks XLA for 2 CPU devices
    pytest.skip("needs 2 devices (XLA_FLAGS=--xla_force_host_platform_device_count=2)")
  return jax.devices()[:2]


@pytest.mark.extended
def test_one_device_mesh_is_learn_fit():
  """On a one-device mesh the driver is ``learn.fit`` step for step (train 230 rows: the
  last batch padded, as ``learn.fit`` pads). (The 2-device test below implies it.)"""
  want, got, _, _ = _fit_both(learn.cd, jax.devices()[:1])
  _assert_same_fit(got, want)


@pytest.mark.extended  # ~10-20 s: CI's extended step
def test_two_devices_equal_one_device():
  """2 CPU devices: each 20-row minibatch is split 10 + 10 and the gradient all-reduced;
  the CD model equals the one-device ``learn.fit``. Each epoch's 12 steps run in jitted
  calls of 5, 5 and 2 (the whole-epoch call: the PCD and two-process tests)."""
  want, got, mesh, train = _fit_both(learn.cd, _two_devices(), steps_per_call=5)
  batch = distributed.shard_minibatches(distributed.pad_rows(train, 20),
                                        np.arange(240).reshape(12, 20), mesh)
  assert [s.data.shape for s in batch.v.addressable_shards] == [(12, 10, 16)] * 2
  _assert_same_fit(got, want)


@pytest.mark.extended
def test_two_devices_equal_one_device_pcd():
  """Any learner: persistent CD (chains kept per observation, gathered by row number)."""
  want, got, _, _ = _fit_both(learn.pcd, _two_devices())
  _assert_same_fit(got, want)


@pytest.mark.extended  # ~10-20 s: CI's extended step
def test_more_epochs_compile_nothing_more():
  """The epoch number is traced: 4 epochs trace as many programs as 2 (STYLE.md 12)."""
  traces = []
  listener = lambda name, secs, **kw: traces.append(name) if name.endswith(
      "jaxpr_trace_duration") else None
  train, val = _data(100, 4), _data(30, 5)
  fit = lambda epochs: distributed.fit_data_parallel(
      jax.random.key(0), train, val, TrainConfig(num_hidden=4, batch_size=20,
                                                 num_epochs=epochs, eval_chunk=16),
      learn.make_hparams(), 12, distributed.data_mesh(jax.devices()[:1]))
  fit(1)  # the eager operations' programs, compiled once per process
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    counts = []
    for epochs in (2, 4):
      traces.clear()
      fit(epochs)
      counts.append(len(traces))
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert counts[0] == counts[1] > 0, counts


def test_batch_size_must_split_over_the_devices():
  with pytest.raises(ValueError, match="batch size 100 is not a multiple of the 3 devices"):
    distributed.check_batch_size(100, types.SimpleNamespace(size=3))
  distributed.check_batch_size(100, types.SimpleNamespace(size=4))


def test_padding_rows_are_weight_zero_and_absent():
  padded = distributed.pad_rows(_data(5, 0), 4)
  assert padded.v.shape[0] == 8
  np.testing.assert_array_equal(padded.weight, [1, 1, 1, 1, 1, 0, 0, 0])
  assert (padded.aux[5:] == -1).all() and (padded.v[5:] == 0).all()


def _write_table(path):
  """12 tracks x 4 clips x 3 users; tags from a per-track topic."""
  datagen.topic_tag_table(path, ["rock", "jazz", "piano", "drums", "female vocals",
                                 "guitar", "80s", "synth"], num_tracks=12, clips_per_track=4)


def _run_launcher(tags, workdir, *extra):
  args = [sys.executable, str(REPO / "experiments" / "fit_distributed.py"),
          f"--tags={tags}", f"--workdir={workdir}", "--hidden=6", "--num_epochs=4",
          "--batch_size=16", "--learning_rate=0.1", "--l1_aux=0.001", "--cpu", *extra]
  return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO,
                        env=_env())


def test_launcher_refuses_a_batch_that_does_not_split(tmp_path):
  """--batch_size 16 over 3 devices: one line, exit 2, nothing written."""
  tags = str(tmp_path / "tags.tsv")
  _write_table(tags)
  proc = _run_launcher(tags, str(tmp_path / "out"), "--host_devices=3")
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      "fit_distributed: --batch_size: batch size 16 is not a multiple of the 3 devices the "
      "minibatch rows are split over; choose a batch size that is (or fewer devices)")
  assert not (tmp_path / "out").exists()


def _launch(tags, workdir, *extra):
  proc = _run_launcher(tags, workdir, *extra)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, "metrics.json")) as f:
    return runs.load_run_model(workdir), json.load(f)  # as crbm-smooth --workdir reads


@pytest.mark.extended
def test_two_processes_equal_one_process(tmp_path):
  """jax.distributed on localhost: 2 processes x 2 CPU devices (each 16-row minibatch
  split 4 ways, gradients all-reduced over gloo) write the model one process with one
  device writes from the same table and seed."""
  tags = str(tmp_path / "tags.tsv")
  _write_table(tags)
  one, one_metrics = _launch(tags, str(tmp_path / "one"))
  two, two_metrics = _launch(tags, str(tmp_path / "two"), "--spawn=2", "--host_devices=2")
  assert (one_metrics["processes"], one_metrics["devices"]) == (1, 1)
  assert (two_metrics["processes"], two_metrics["devices"]) == (2, 4)
  assert two_metrics["best_epoch"] == one_metrics["best_epoch"]
  np.testing.assert_allclose(two_metrics["val_history"], one_metrics["val_history"],
                             rtol=RTOL)
  np.testing.assert_allclose(two_metrics["test_pl"], one_metrics["test_pl"], rtol=RTOL)
  _assert_params_close(two.params, one.params)
  assert list(two.vocab) == list(one.vocab)
