"""Config of the main job, ``crbm-reproduce`` (the whole paper on the embedded data).

Variants: smoke (a minute or two: tiny data, for tests), default (the embedded run, <= 10
minutes on a 2-core CPU), full (the paper's complete grid and settings; hours).
"""
from crbm_jax.configs import beyond, table1, table2, table3, variants

VARIANTS = variants.VARIANTS


def get_config(arg=None):
  c = variants.new_config("reproduce", arg)
  variant = c.variant
  c.seed = 0
  c.stages = ("table1", "table2", "table3", "beyond")
  c.table1 = table1.get_config(variant)
  c.table2 = table2.get_config(variant)
  c.table3 = table3.get_config(variant)
  c.beyond = beyond.get_config(variant)
  return c
