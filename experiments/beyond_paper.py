r"""Beyond the paper (issue 8): AIS log-likelihood, PCD / parallel tempering, distance-aware clips.

  python experiments/beyond_paper.py --config=crbm_jax/configs/beyond.py:default \
      --workdir=/tmp/beyond

Writes <workdir>/beyond.md (a section for the reproduction report) and beyond.json; see
crbm_jax/paper/beyond.py.
"""
import os

from absl import app, flags
from ml_collections import config_flags

from crbm_jax import configs
from crbm_jax.paper import beyond
from crbm_jax.util import interrupt

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(configs.__file__), "beyond.py"),
    "Path to crbm_jax/configs/beyond.py[:smoke|:default|:full].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  interrupt.exit_on_interrupt(  # Ctrl-C: one line, exit 130
      "beyond_paper",
      f"files already in {_WORKDIR.value} are complete (each is written atomically); "
      "run the same command again")
  beyond.run_beyond(_CONFIG.value, _WORKDIR.value)
  with open(os.path.join(_WORKDIR.value, "beyond.md")) as f:
    print(f.read())


if __name__ == "__main__":
  app.run(main)
