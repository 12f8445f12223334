"""Config for experiments/table3_autotagging.py (Section 4: Table 3, Figure 2).

Variants (``--config=crbm_jax/configs/table3.py:<variant>``):
  smoke:   a tiny simulated study (20 tracks), a few epochs, 20 samples per
           clip, 5 tags; seconds (used by the tests).
  default: the simulated study and the embedded MajorMiner clips, 30 epochs,
           1000 samples per clip (the paper's number), 95 tags (all 40 on
           MajorMiner); a few minutes on a 2-core CPU.
  full:    the paper's settings with longer training (100 epochs) and a longer
           burn-in (500 sweeps); the SVM protocol is the same as default.
"""
import ml_collections

from crbm_jax.configs import training, variants


def get_config(arg=None):
  """Returns the ConfigDict for variant ``arg`` (smoke / default / full)."""
  config = variants.new_config("table3", arg)
  variant = config.variant
  config.seed = 0
  config.datasets = ("simulated", "majorminer")
  # SimulationConfig overrides for 'simulated' (empty: the paper's design).
  config.simulation = ml_collections.ConfigDict()
  # Vocabulary: tags given by >= min_users distinct users (clips when no users).
  config.min_users = 2
  # Auxiliary groups per data set: everything the data has (the paper's "all
  # of the available auxiliary information"); MajorMiner has no users.
  config.aux_groups = ml_collections.ConfigDict(dict(
      simulated=("user", "track", "clip"), majorminer=("track", "clip")))
  config.factor_out = ("user",)

  # Chosen by validation pseudo-likelihood in a small scan on these data (see
  # BUILD_NOTES): small batches and few hidden units let W_aux learn clip and
  # track biases; with H=100, batch 100 or l1_aux=1e-3 the rows stay ~0 and the
  # sampled affinities barely depend on the clip.
  config.model = training.get_config(
      num_hidden=5, batch_size=10, num_epochs=30, learning_rate=0.6, momentum=0.5,
      weight_decay=1e-4, l1_aux=1e-5)
  config.selection = ml_collections.ConfigDict(dict(
      val_fraction=0.2,   # best epoch chosen on a 80/20 split of the observations
      refit_all=True))    # then retrained on all observations for that many epochs
  # Optional JSON of selected hyperparameters (e.g. from the Table 2 grid);
  # see crbm_jax.paper.table3.load_hparams for the accepted layouts.
  config.hparams_json = ""

  config.smoothing = ml_collections.ConfigDict(dict(
      num_samples=1000, burn_in=100, thin=1, batch=64))

  config.table3 = ml_collections.ConfigDict(dict(
      num_tags=95, num_folds=5, max_per_class=100, min_verified=2, nu=0.5,
      decision="probability"))
  config.figure_top = 50
  # Table 3's SVMs per data set run in this many spawned worker processes while
  # the next data set trains (0: in this process, one after the other).
  config.table3_processes = 2
  config.demo_audio = True
  config.demo_audio_workers = 1  # the Table 3 workers already use the cores

  if variant == "smoke":
    config.datasets = ("simulated",)
    config.simulation = ml_collections.ConfigDict(dict(
        num_tracks=20, num_workers=25, max_hits_per_worker=30))
    config.model.num_hidden = 4
    config.model.num_epochs = 3
    config.smoothing.num_samples = 20
    config.smoothing.burn_in = 10
    config.table3.num_tags = 5
    config.table3.max_per_class = 20
    config.figure_top = 5
    config.demo_audio = False
    config.table3_processes = 0
  elif variant == "full":
    config.model.num_epochs = 100
    config.smoothing.burn_in = 500
  return config
