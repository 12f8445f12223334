"""Config for experiments/table1_cooccurrence.py (Section 2.1: Table 1, Figure 1).

Variants (``--config=crbm_jax/configs/table1.py:<variant>``):
  smoke:   a tiny synthetic study (20 tracks x 5 clips x 3 users), seconds.
  default: the data sets 'simulated' and 'majorminer' (crbm_jax.data.datasets).
  full:    same as default (Table 1 is exact; there is nothing to scale up).
"""
import ml_collections

from crbm_jax.configs import variants


def get_config(arg=None):
  """Returns the ConfigDict for variant ``arg`` (smoke / default / full)."""
  config = variants.new_config("table1", arg)
  variant = config.variant
  config.datasets = ("simulated", "majorminer")
  config.paper = True  # put the paper's Table 1 beside ours in table1.md
  config.num_bins = 5  # Figure 1 separation bins of 100/num_bins % each
  # Figure 1 curves: (measure, user relation); measure in shared_tags / cosine,
  # relation in different / same / any (tables without users use 'any').
  config.variants = (("shared_tags", "different"), ("shared_tags", "same"),
                     ("cosine", "different"))
  config.canonicalize_tags_file = True  # --tags FILE: canonicalise its tags
  config.synthetic = ml_collections.ConfigDict(dict(
      num_tracks=185, clips_per_track=5, users_per_clip=3, num_users=209,
      num_tags=100, tags_per_task=6.0, seed=0))
  if variant == "smoke":
    config.datasets = ("synthetic",)
    config.synthetic.num_tracks = 20
    config.synthetic.num_users = 25
    config.synthetic.num_tags = 30
  return config
