r"""Section 2.1 of the paper: Table 1 and Figure 1 for tag tables.

  python experiments/table1_cooccurrence.py \
      --config=crbm_jax/configs/table1.py:default --workdir=/tmp/table1
  python experiments/table1_cooccurrence.py --workdir=/tmp/t1 --tags=my_tags.tsv
  python experiments/table1_cooccurrence.py --workdir=/tmp/t1 --dataset=majorminer

Writes <workdir>/<name>/{table1.csv,table1.md,figure1.png,figure1.csv} per data
set and prints each table1.md.
"""
import os
from typing import Dict, Optional

from absl import app
from absl import flags
from ml_collections import config_flags

from crbm_jax import configs
from crbm_jax.paper import table1
from crbm_jax.util import interrupt

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(configs.__file__), "table1.py"),
    "Path to crbm_jax/configs/table1.py[:smoke|:default|:full].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.",
                               required=True)
_TAGS = flags.DEFINE_string("tags", None, "A tag-table file (TSV/CSV, see "
                            "crbm_jax.data.tagtable); overrides the config's "
                            "data sets.")
_DATASET = flags.DEFINE_string("dataset", None, "One data set name for "
                               "crbm_jax.data.datasets.load_dataset; overrides "
                               "the config's data sets.")


def _load(name: str, config):
  if name == "synthetic":
    from crbm_jax.data import synthetic  # pylint: disable=import-outside-toplevel
    return synthetic.synthetic_tag_table(**config.synthetic.to_dict())
  from crbm_jax.data import datasets  # pylint: disable=import-outside-toplevel
  return datasets.load_dataset(name).table


def _load_file(path: str, canonicalize: bool):
  from crbm_jax.data import tagtable  # pylint: disable=import-outside-toplevel
  table = tagtable.load_tag_table(path)
  if canonicalize:
    from crbm_jax.data import canonical  # pylint: disable=import-outside-toplevel
    table, _ = canonical.canonicalize_table(table)
  return table


def run(config, workdir: str, tags: Optional[str] = None,
        dataset: Optional[str] = None) -> Dict[str, Dict[str, str]]:
  """Runs Table 1 / Figure 1 per data set; {name: {file kind: path}}."""
  if tags:
    name = os.path.splitext(os.path.basename(tags))[0]
    tables = [(name, lambda: _load_file(tags, config.canonicalize_tags_file))]
  else:
    names = [dataset] if dataset else list(config.datasets)
    tables = [(n, lambda n=n: _load(n, config)) for n in names]
  out = {}
  for name, load in tables:
    paths = table1.run_table1(
        load(), os.path.join(workdir, name), name, paper=config.paper,
        num_bins=config.num_bins, variants=tuple(map(tuple, config.variants)))
    with open(paths["table1_md"]) as f:
      print(f.read())
    print(f"Figure 1 ({name}): {paths['figure1_png']}, {paths['figure1_csv']}\n")
    out[name] = paths
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  interrupt.exit_on_interrupt(  # Ctrl-C: one line, exit 130
      "table1_cooccurrence",
      f"the data sets already finished in {_WORKDIR.value} are complete (each file is "
      "written atomically); run the same command again to redo the rest")
  run(_CONFIG.value, _WORKDIR.value, _TAGS.value, _DATASET.value)


if __name__ == "__main__":
  app.run(main)
