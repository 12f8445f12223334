"""Config for experiments/table3_autotagging.py (Section 4: Table 3, Figure 2).

Variants (``--config=crbm_jax/configs/table3.py:<variant>``):
  smoke:   a tiny simulated study (20 tracks), a few epochs, 20 samples per
           clip, 5 tags; seconds (used by the tests).
  default: the simulated study and the embedded MajorMiner clips; each smoothing
           CRBM chosen by a validation search over 16 configurations (<= 40
           epochs); 1000 samples per clip (the paper's number), 95 tags (all 40
           on MajorMiner); the sparsity experiment with 2 thinning draws per p;
           a few minutes on a 2-core CPU.
  full:    64 configurations (<= 100 epochs) per search, a search on every one
           of 10 thinning draws per p, a longer burn-in (500 sweeps); the SVM
           protocol is the same as default.
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

  # The smoothing CRBM of every data set (and of every thinned draw of the sparsity
  # experiment) is chosen by a validation search (crbm_jax.learn.search.select_model;
  # smoothing_model.select_smoothing_model) under ``selection.criterion``. ``model``
  # gives the static settings the search does not vary (cd_k, weight_scale, ...) and is
  # the fixed model when ``search.enabled`` is False or ``hparams_json`` is set.
  config.model = training.get_config(
      num_hidden=5, batch_size=10, num_epochs=30, learning_rate=0.6, momentum=0.5,
      weight_decay=1e-4, l1_aux=1e-5)
  config.search = ml_collections.ConfigDict(dict(
      enabled=True,
      num_hidden=(5, 10, 25, 50), learning_rate=(0.05, 0.2, 0.6),
      l1_aux=(0.0, 1e-5, 1e-4, 1e-3), aux_lr_scale=(1.0, 10.0, 30.0),
      weight_decay=(1e-4,), batch_size=(10, 100), momentum=(0.5,),
      num_configs=16,      # random points of that grid (seeded); 0 = all of it
      seconds=0.0,         # wall-clock budget per search; 0 = none (deterministic)
      num_epochs=40, patience=5, tol=1e-4, eval_every=1,
      halving_eta=2.0, first_rung=4))   # successive halving (eta 0: none)
  config.selection = ml_collections.ConfigDict(dict(
      # 'smoothing' (issue 23; crbm_jax/smoothers/criterion.py): the balanced log loss of
      # held-out observations' tags under the affinities of their aux rows alone, what
      # smoothing uses; held-out observations of clips in training come from held-out
      # users' observations or binomial count splitting. 'pl': the balanced
      # pseudo-likelihood (Table 2's criterion).
      criterion="smoothing",
      rescore_top=3,      # the best 3 trained again from a second initialisation
      val_fraction=0.2,   # held-out share (entities stay in training)
      refit_all=True))    # then retrained on all observations for the chosen epochs
  # Optional JSON of selected hyperparameters (e.g. from the Table 2 grid);
  # see crbm_jax.paper.table3.load_hparams for the accepted layouts.
  config.hparams_json = ""

  config.smoothing = ml_collections.ConfigDict(dict(
      num_samples=1000, burn_in=100, thin=1, batch=64))
  # Baseline smoothers beside the CRBM (crbm_jax/smoothers/baselines.py; issue 23):
  # held-out criterion scores and, on the simulated study, recovery of the true tags.
  # crowd: also crowd-kit's aggregators (optional extra [crowd]; minutes per data set).
  # table3: the smoothers whose labels also train Table 3's autotaggers (same folds; SVMs
  # only, no CRBM fit); one that cannot (no users, same affinity for every clip) is
  # reported not applicable with its reason.
  config.smoothers = ml_collections.ConfigDict(dict(
      enabled=True, crowd=False,
      table3=("track_pool", "low_rank", "base_rate", "mv", "dawid_skene", "glad", "mace")))

  config.table3 = ml_collections.ConfigDict(dict(
      num_tags=95, num_folds=5, max_per_class=100, min_verified=2, nu=0.5,
      decision="probability"))
  config.figure_top = 50
  # Table 3's SVMs per data set run in this many spawned worker processes while
  # the next data set trains (0: in this process, one after the other).
  config.table3_processes = 2
  # The sparsity experiment (issue 13; crbm_jax/paper/sparsity.py): MajorMiner counts
  # thinned binomially with keep probability p; raw vs smoothed training; tests on the
  # thinned and on the unthinned labels. In crbm-reproduce its p = 1 column is this
  # stage's MajorMiner Table 3.
  config.sparsity = ml_collections.ConfigDict(dict(
      enabled=True, dataset="majorminer", keep=(0.15, 0.25, 0.5, 0.75, 1.0),
      num_draws=2,               # seeded thinning draws per p < 1
      search_every_draw=False,   # False: search on draw 0 of each p, reuse its settings
      num_tags=95,               # the most used tags (MajorMiner has 40)
      processes=1,               # SVM scoring in a spawned worker (0: in this process)
      # the labels (CRBM search, smoothing, baselines) of each p in this many spawned
      # processes at once (1: in this process); the numbers are the same either way
      label_processes=2,
      # baseline smoothers also trained on at every p (numpy, no CRBM fit; issue 23)
      baselines=("track_pool", "low_rank")))
  config.demo_audio = True
  config.demo_audio_workers = 1  # the Table 3 workers already use the cores

  if variant == "smoke":
    config.datasets = ("simulated",)
    config.simulation = ml_collections.ConfigDict(dict(
        num_tracks=20, num_workers=25, max_hits_per_worker=30))
    config.model.num_hidden = 4
    config.model.num_epochs = 3
    # Two configurations trained to the end, no halving: one compiled block (seconds).
    config.search.update(dict(num_hidden=(2, 4), learning_rate=(0.2,), l1_aux=(0.0, 1e-4),
                              aux_lr_scale=(1.0, 10.0), batch_size=(100,), num_configs=2,
                              num_epochs=2, halving_eta=0.0))
    config.smoothing.num_samples = 20
    config.smoothing.burn_in = 10
    config.table3.num_tags = 5
    config.sparsity.update(dict(keep=(0.5, 1.0), num_draws=1, num_tags=4, processes=0,
                                label_processes=1))
    config.table3.max_per_class = 20
    config.figure_top = 5
    config.demo_audio = False
    config.table3_processes = 0
  elif variant == "full":
    config.model.num_epochs = 100
    config.smoothing.burn_in = 500
    config.sparsity.num_draws = 10
    config.sparsity.search_every_draw = True
    config.search.update(dict(num_configs=64, num_epochs=100, patience=8))
    config.smoothers.crowd = True
  return config
