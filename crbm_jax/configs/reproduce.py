"""Config of the main job, ``crbm-reproduce`` (the whole paper on the embedded data).

Variants: smoke (a minute or two: tiny data, for tests), default (the embedded run, <= 10
minutes on a 2-core CPU), full (the paper's complete grid and settings; hours).
"""
import ml_collections

from crbm_jax.configs import beyond, table1, table2, table3

VARIANTS = ("smoke", "default", "full")


def get_config(arg=None):
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"unknown reproduce config {variant!r}; use one of {', '.join(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.variant = variant
  c.seed = 0
  c.stages = ("table1", "table2", "table3", "beyond")
  c.table1 = table1.get_config(variant)
  c.table2 = table2.get_config(variant)
  c.table3 = table3.get_config(variant)
  c.beyond = beyond.get_config(variant)
  return c
