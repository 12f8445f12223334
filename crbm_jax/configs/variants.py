"""The three variants every experiment config has: smoke (seconds, for tests), default
(the embedded run on a 2-core CPU) and full (the paper's protocol size)."""
import ml_collections

VARIANTS = ("smoke", "default", "full")


def new_config(name: str, arg=None) -> ml_collections.ConfigDict:
  """An empty ConfigDict for variant ``arg`` (default 'default') of experiment ``name``,
  with ``variant`` set; an unknown variant is an error naming the choices."""
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"unknown {name} config variant {variant!r}; use "
                     f"{', '.join(VARIANTS)}")
  config = ml_collections.ConfigDict()
  config.variant = variant
  return config
