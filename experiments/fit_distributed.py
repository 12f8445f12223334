r"""One CRBM trained on a tag table with each minibatch split over devices and processes.

  # every local device (one process; --host_devices 4 splits a CPU into 4 devices)
  python experiments/fit_distributed.py --tags tags.tsv --workdir /tmp/dp --hidden 64

  # a cluster: the same command on every host (process 0's host:port first)
  python experiments/fit_distributed.py --tags tags.tsv --workdir /shared/dp \
      --distributed --coordinator_address host0:1234 --num_processes 4 --process_id $I

  # N processes on this machine (tests; CPU with gloo collectives)
  python experiments/fit_distributed.py --tags tags.tsv --workdir /tmp/dp --spawn 2

Trains the given configuration for --num_epochs, keeps the best epoch by validation
pseudo-likelihood (no search, no early stopping) and gives the same model as one
process with the same --seed, to float rounding (crbm_jax/learn/distributed.py).
Process 0 writes <workdir>/model and <workdir>/metrics.json.
"""
import os
import socket
import subprocess
import sys
import time

from absl import app
from absl import flags

_TAGS = flags.DEFINE_string("tags", None, "Tag-table file (as crbm-fit reads).",
                            required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (model/, metrics.json).",
                               required=True)
_AUX = flags.DEFINE_string("aux", "auto", "Auxiliary groups (as crbm-fit --aux).")
_HIDDEN = flags.DEFINE_integer("hidden", 64, "Hidden units.")
_EPOCHS = flags.DEFINE_integer("num_epochs", 30, "Epochs (fixed; the best by validation kept).")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 1, "Epochs between validations.")
_BATCH = flags.DEFINE_integer("batch_size", 100, "Observations per minibatch (global; a "
                              "multiple of the device count).")
_LR = flags.DEFINE_float("learning_rate", 0.05, "SGD learning rate.")
_MOMENTUM = flags.DEFINE_float("momentum", 0.5, "SGD momentum on W, b, c.")
_WD = flags.DEFINE_float("weight_decay", 1e-4, "L2 weight decay on W.")
_L1 = flags.DEFINE_float("l1_aux", 0.0, "L1 penalty on W_aux.")
_AUX_LR = flags.DEFINE_float("aux_lr_scale", 10.0, "Multiplies W_aux's learning rate.")
_CD_K = flags.DEFINE_integer("cd_k", 1, "Gibbs steps per CD update.")
_MIN_USERS = flags.DEFINE_integer("min_users", 2, "Keep tags used by >= this many users.")
_TOP_TAGS = flags.DEFINE_integer("top_tags", 0, "Keep the N most used tags (0 = all).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the split and of training.")
_STEPS = flags.DEFINE_integer("steps_per_call", 0, "Minibatches per jitted call (0 = a "
                              "whole epoch); the devices hold two calls' rows at a time.")
_HOST_DEVICES = flags.DEFINE_integer("host_devices", 0, "Split each process's CPU into "
                                     "this many XLA devices (0 = leave as is).")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize "
                                 "first (with the three flags below, or what JAX detects).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (with --distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed.")
_CPU = flags.DEFINE_bool("cpu", False, "Train on CPU devices (with --distributed: gloo "
                         "collectives between the processes).")
_SPAWN = flags.DEFINE_integer("spawn", 0, "Start this many processes of this command on "
                              "this machine (CPU, localhost coordinator on a free port) and "
                              "wait for them.")


def spawn(count: int, argv) -> int:
  """Runs ``count`` copies of this script as processes 0..count-1 and waits for them (when
  one fails, the others are stopped); the first nonzero exit status, or 0."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  args, skip = [], False
  for a in argv[1:]:
    if not skip and a in ("--spawn", "-spawn"):
      skip = True
      continue
    if not skip and not a.lstrip("-").startswith("spawn="):
      args.append(a)
    skip = False
  procs = [subprocess.Popen([sys.executable, argv[0], *args, "--distributed", "--cpu",
                             f"--coordinator_address=localhost:{port}",
                             f"--num_processes={count}", f"--process_id={i}"])
           for i in range(count)]
  while any(p.poll() is None for p in procs):
    if any(p.poll() for p in procs):  # one failed: the others would wait on it forever
      for p in procs:
        if p.poll() is None:
          p.terminate()
    time.sleep(0.2)
  return next((p.returncode for p in procs if p.returncode), 0)


def main(argv):
  if _SPAWN.value:
    sys.exit(spawn(_SPAWN.value, sys.argv))
  del argv
  if _HOST_DEVICES.value:  # read when JAX starts its backends: before anything imports it
    os.environ["XLA_FLAGS"] = " ".join(
        [f for f in os.environ.get("XLA_FLAGS", "").split()
         if "xla_force_host_platform_device_count" not in f]
        + [f"--xla_force_host_platform_device_count={_HOST_DEVICES.value}"])
  import jax  # pylint: disable=import-outside-toplevel
  if _CPU.value:
    jax.config.update("jax_platforms", "cpu")
  if _DISTRIBUTED.value:
    from crbm_jax.learn import distributed  # pylint: disable=import-outside-toplevel
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           cpu=_CPU.value)
  from crbm_jax.fitting.distributed import fit_tag_table_data_parallel  # pylint: disable=import-outside-toplevel
  try:
    run(fit_tag_table_data_parallel)
  except (ValueError, OSError) as e:  # bad flags or table (InputError, DataError): one line
    print(f"fit_distributed: {e}", file=sys.stderr)
    sys.exit(2)


def run(fit_fn):
  """``fit_fn`` (fitting.distributed.fit_tag_table_data_parallel) called with the flags."""
  fit_fn(
      _TAGS.value, _WORKDIR.value, aux=_AUX.value, num_hidden=_HIDDEN.value,
      num_epochs=_EPOCHS.value, learning_rate=_LR.value, momentum=_MOMENTUM.value,
      weight_decay=_WD.value, l1_aux=_L1.value, aux_lr_scale=_AUX_LR.value,
      batch_size=_BATCH.value, cd_k=_CD_K.value, eval_every=_EVAL_EVERY.value,
      min_users=_MIN_USERS.value, top_tags=_TOP_TAGS.value, seed=_SEED.value,
      steps_per_call=_STEPS.value)


if __name__ == "__main__":
  app.run(main)
