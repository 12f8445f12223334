r"""Section 3.3 of the paper: Table 2 (model selection, auxiliary-variable comparison).

  python experiments/table2_pseudolikelihood.py \
      --config=crbm_jax/configs/table2.py:default --workdir=/tmp/table2
  python experiments/table2_pseudolikelihood.py --workdir=/tmp/t2 \
      --config.datasets='()' --config.tags=my_tags.tsv

Writes <workdir>/table2.{md,csv,json}; per-fit results under <workdir>/results (a killed
run started again with the same workdir resumes). Prints table2.md.

Several hosts (or processes) sharing one workdir: start the same command on each with
--distributed (and, outside a cluster JAX detects by itself, --coordinator_address,
--num_processes, --process_id); each fits its share of the configurations on its own
devices and all write the same tables.
"""
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from crbm_jax import configs
from crbm_jax.paper import table2
from crbm_jax.util import interrupt

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(configs.__file__), "table2.py"),
    "Path to crbm_jax/configs/table2.py[:smoke|:default|:full].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first; the processes split "
    "the fits between them (table2.task_shard). The workdir must be shared.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (with --distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed.")


def main(argv):
  del argv
  interrupt.exit_on_interrupt(  # Ctrl-C: one line, exit 130 (no unwinding through XLA)
      "table2_pseudolikelihood",
      f"finished fits are kept in {os.path.join(_WORKDIR.value, 'results')}; run the "
      "same command again to resume from them")
  if _DISTRIBUTED.value:
    import jax  # pylint: disable=import-outside-toplevel
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  table2.run_table2(_CONFIG.value, _WORKDIR.value)
  with open(os.path.join(_WORKDIR.value, "table2.md")) as f:
    print(f.read())


if __name__ == "__main__":
  app.run(main)
