"""``python -m crbm_jax.cli <tool> [flags]``: runs the console script crbm-<tool>."""
import importlib
import sys

from crbm_jax.cli import TOOLS


def dispatch(argv) -> int:
  if len(argv) < 2 or argv[1] not in TOOLS:
    print(f"usage: python -m crbm_jax.cli {{{','.join(TOOLS)}}} [flags] (--help for a "
          "tool's flags)", file=sys.stderr)
    return 2
  tool = importlib.import_module(TOOLS[argv[1]])
  sys.argv = [f"crbm-{argv[1]}"] + list(argv[2:])
  return tool.main()


if __name__ == "__main__":
  sys.exit(dispatch(sys.argv))
