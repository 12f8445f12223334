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
  c.stages = ("table1", "table2", "table3", "beyond") + (
      () if variant == "smoke" else ("audio_tags",))
  # Stages run at the same time in this many spawned processes, longest first (1: one
  # after the other in this process). The numbers are the same either way; two use both
  # cores of a 2-core machine, which one process leaves half idle between its compiles.
  c.processes = 1 if variant == "smoke" else 2
  # JAX compute threads per process (crbm_jax/util/threads.py): every spawned stage,
  # label and SVM worker, and this process when the stages run in it. 1: the run's 4-6
  # processes do not oversubscribe the cores (measured x0.77-0.95 CPU time,
  # docs/benchmarks.md); 0: JAX's default, one per core. The count is part of the
  # computation: numbers differ in the last bits between counts.
  c.threads = 0 if variant == "smoke" else 1
  c.table1 = table1.get_config(variant)
  c.table2 = table2.get_config(variant)
  c.table3 = table3.get_config(variant)
  c.beyond = beyond.get_config(variant)
  # The CRBM autotagger on audio features (issue 26): MajorMiner's five folds against the
  # independent per-tag classifiers; the full variant adds the simulated study and the MLP.
  c.audio_tags = dict(
      seed=0,
      datasets=("majorminer", "simulated") if variant == "full" else ("majorminer",),
      baselines=(("nusvc", "logistic", "logistic_all", "mlp") if variant == "full" else
                 ("nusvc", "logistic", "logistic_all")))
  return c
