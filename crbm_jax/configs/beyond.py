"""Config for experiments/beyond_paper.py (issue 8: AIS, PCD / PT, the distance-aware clip model).

Variants (``--config=crbm_jax/configs/beyond.py:<variant>``):
  smoke:   a small simulated study (24 tracks), tiny models and AIS; seconds (for tests).
  default: the simulated study at the paper's design, 1 split, top 100 tags, short runs;
           about 2 minutes on a 2-core CPU.
  full:    the paper's 5 splits, more epochs and hidden units, AIS on every test
           observation with 16 x 1000 (roughly an hour on a 2-core CPU; AIS dominates).
"""
import ml_collections

from crbm_jax.configs import training, variants


def get_config(arg=None):
  """Returns the ConfigDict for variant ``arg`` (smoke / default / full)."""
  c = variants.new_config("beyond", arg)
  variant = c.variant
  c.dataset = "simulated"
  c.seed = 0                    # data simulation seed
  c.sim = ml_collections.ConfigDict()  # SimulationConfig overrides (smoke: a small study)
  c.top_n = 100                 # vocabulary: the most used tags
  c.num_splits = 1
  c.split_seed = 0
  c.train_seed = 0
  c.train = training.get_config(num_hidden=50, num_epochs=30, batch_size=100,
                                learning_rate=0.5, momentum=0.5, weight_decay=1e-4,
                                l1_aux=1e-4, eval_chunk=256)
  # Table 2 rows (the paper's Mechanical Turk rows) with AIS log-likelihood next to PL.
  c.table2_groups = (("user", "track", "clip"), ("user", "track"), ("user",), ())
  # Samplers: CD-1 vs PCD vs PT on Table 2's data with track aux.
  c.sampler_groups = ("track",)
  c.pt_temperatures = 5
  c.pt_min_beta = 0.0
  c.pcd_chain_mode = "slot"
  # Distance-aware clip model: prefix groups + kernel-mixed clip rows; ℓ grid in track
  # fractions, chosen on validation PL. ℓ = 0 is the track+clip model; ℓ = inf weighs every
  # clip of the track equally (no distance: a second track term), the control that tells
  # distance-awareness from mere sharing.
  c.drift_prefix = ("user", "track")
  c.drift_lengths = (0.0, 0.1, 0.3, 1.0, 3.0, float("inf"))
  c.factor_out = ("user",)      # truth recovery: affinities with the user factored out
  c.affinity_samples = 200      # Gibbs samples of p(v | a) per clip (the paper drew 1000)
  c.affinity_burn_in = 100
  # AIS on the test set's distinct aux rows.
  c.ais_runs = 8
  c.ais_betas = 300
  c.ais_max_test = 200          # AIS on a random subset of test observations (None: all)
  c.ais_schedule = "sigmoid"
  c.ais_row_chunk = 256
  if variant == "smoke":
    c.sim = ml_collections.ConfigDict(dict(num_tracks=24, num_workers=40))
    c.top_n = 30
    c.train.num_hidden = 8
    c.train.num_epochs = 3
    c.train.batch_size = 20
    c.table2_groups = (("user", "track", "clip"), ())
    c.pt_temperatures = 3
    c.drift_lengths = (0.0, 0.3)
    c.ais_runs = 4
    c.ais_betas = 50
    c.ais_max_test = 60
    c.affinity_samples = 20
    c.affinity_burn_in = 20
  elif variant == "full":
    c.num_splits = 5
    c.train.num_hidden = 100
    c.train.num_epochs = 60
    c.ais_runs = 16
    c.ais_betas = 1000
    c.ais_max_test = None
    c.affinity_samples = 1000
    c.drift_lengths = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0, 10.0, float("inf"))
  return c
