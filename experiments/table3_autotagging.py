r"""Section 4 of the paper: Table 3 and Figure 2 (autotaggers on raw vs smoothed tags).

  python experiments/table3_autotagging.py \
      --config=crbm_jax/configs/table3.py:default --workdir=/tmp/table3

Writes <workdir>/<data set>/{table3.md,table3.csv,table3.json,figure2.png,
figure2.csv,labels.npz,summary.json} (and recovery.{md,json} for the simulated
study), the sparsity experiment's <workdir>/sparsity/sparsity.{md,png,csv,json}
(config.sparsity; its p = 1 column is the MajorMiner Table 3 of this run),
<workdir>/summary.json, and prints each table3.md / recovery.md / sparsity.md.
"""
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from crbm_jax import configs
from crbm_jax.paper import table3
from crbm_jax.util import interrupt

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(configs.__file__), "table3.py"),
    "Path to crbm_jax/configs/table3.py[:smoke|:default|:full].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  interrupt.exit_on_interrupt(  # Ctrl-C: one line, exit 130
      "table3_autotagging",
      f"files already in {_WORKDIR.value} are complete (each is written atomically); "
      "run the same command again")
  out = table3.run_autotagging(_CONFIG.value, _WORKDIR.value)
  for summary in out["datasets"].values():
    for key in ("table3_markdown", "recovery_markdown"):
      if key in summary["paths"]:
        with open(summary["paths"][key]) as fh:
          print(fh.read())
  if out.get("sparsity"):
    with open(out["sparsity"]["paths"]["markdown"]) as fh:
      print(fh.read())
  print(f"Total {out['seconds']:.1f} s; summary: {out['summary_json']}")


if __name__ == "__main__":
  app.run(main)
