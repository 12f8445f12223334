r"""Section 3.3 of the paper: Table 2 (model selection, auxiliary-variable comparison).

  python experiments/table2_pseudolikelihood.py \
      --config=experiments/configs/table2.py:default --workdir=/tmp/table2
  python experiments/table2_pseudolikelihood.py --workdir=/tmp/t2 \
      --config.datasets='()' --config.tags=my_tags.tsv

Writes <workdir>/table2.{md,csv,json}; per-fit results under <workdir>/results (a killed
run started again with the same workdir resumes). Prints table2.md.
"""
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from crbm_jax import table2

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "table2.py"),
    "Path to experiments/configs/table2.py[:smoke|:default|:full].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)


def main(argv):
  del argv
  table2.run_table2(_CONFIG.value, _WORKDIR.value)
  with open(os.path.join(_WORKDIR.value, "table2.md")) as f:
    print(f.read())


if __name__ == "__main__":
  app.run(main)
