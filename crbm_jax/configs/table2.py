"""Config for experiments/table2_pseudolikelihood.py (Section 3.3: Table 2).

Variants (``--config=crbm_jax/configs/table2.py:<variant>``):
  smoke:   'simulated', 20 tags, 2 splits, 2 grid points, 3 epochs: seconds.
  default: the embedded run ('simulated', 'majorminer', 'lastfm-simulated', 'hetrec'),
           a REDUCED grid (16 points: 2 hidden sizes x 2 learning rates x 2 L1 x 2 W_aux
           learning-rate scales) and 15 epochs, 5 splits: a few minutes on a 2-core CPU.
  full:    the paper's protocol size: a 512-point grid (4 hidden sizes x 4 learning rates
           x 2 weight decays x 4 L1 x 4 W_aux learning-rate scales), 5 splits, 30 epochs.
``train`` is the training schema (``training.py``, which explains the learning rates and
the W_aux step scale); the grid's values replace its hidden units, learning rate,
momentum, weight decay, L1 and W_aux step scale point by point.
"""
import ml_collections

from crbm_jax.configs import search, training, variants


def get_config(arg=None):
  """Returns the ConfigDict for variant ``arg`` (smoke / default / full)."""
  c = variants.new_config("table2", arg)
  variant = c.variant
  c.datasets = ("simulated", "majorminer", "lastfm-simulated", "hetrec")
  c.tags = ""              # a tag-table file (TSV/CSV) to run as well
  c.seed = 0               # splits, initialisation, Gibbs noise
  c.data_seed = 0          # simulations ('simulated', 'lastfm-simulated')
  c.num_splits = 5
  c.vocab_top_n = 200      # keep the most used tags (0 = all)
  c.grid = ml_collections.ConfigDict(dict(
      num_hidden=(50, 100), learning_rate=(0.5, 2.0), weight_decay=(1e-4,),
      l1_aux=(1e-4, 1e-3), momentum=(0.5,), aux_lr_scale=(1.0, 30.0)))
  c.train = training.get_config(num_epochs=15)
  # How the fits of a stage are computed (the same table whichever; docs/design.md):
  #   'vmap': ONE jitted call per stage, every configuration x every split (one block per
  #           hidden size inside it), vmapped over (split, model);
  #   'map': one call per stage, lax.map over chunks of `chunk_size` models, each chunk
  #          vmapped over the splits (bounds memory; 'vmap' is 'map' with one chunk);
  #   'auto': 'vmap' on an accelerator, on a CPU the one measured fastest there
  #           (paper.table2.CPU_METHOD).
  # (Per-split calls and one-model loops are benchmarks: experiments/bench_grid.py.)
  c.method = "auto"
  c.chunk_size = 64        # models per lax.map step ('map')
  c.shard = True           # shard the model axis over jax.devices() when > 1
  # One block shape per hidden size (else pad to the largest): the exhaustive stages' blocks
  # and the adaptive search's first rung (learn.halving; the same results either way).
  c.group_by_hidden = True
  # How the grid point is chosen: 'exhaustive' (the paper's protocol: every point on every
  # split), 'adaptive' (successive halving over every point and split at once, masks
  # freezing the halved configurations; learn.halving.run_halving, the engine's host
  # driver) or 'both' (the combination
  # stage uses the exhaustive pick; table2.md reports both picks).
  c.search = "exhaustive"
  # The adaptive stage is a search in the one search spec (configs/search.py): the
  # grid above is its space; its epoch budget is train.num_epochs; no model stops on its
  # own (patience 0, diverge_margin 0 = off), as in the exhaustive grid: only halving.
  c.adaptive = search.get_config(
      stop=dict(patience=0, tol=0.0, eval_every=1, diverge_margin=0.0),
      halving=dict(eta=4.0,         # keep the best 1/eta at each rung
                   first_rung=1,    # rungs at epochs first_rung x eta^k
                   min_models=4,    # never halve below this many configurations
                   min_bucket=8))   # smallest compacted block
  # The learning algorithm of every fit (configs/search.py: 'cd', 'pcd', 'pt'); part of
  # the result keys when not 'cd'.
  c.learner = "cd"
  c.key_impl = "threefry2x32"
  c.progress = True
  # (index, count): this process computes the tasks whose key hash % count == index and
  # waits for the others' result files in the shared workdir (multi-host runs).
  c.task_shard = (0, 1)
  c.task_wait_s = 86400.0  # give up waiting for other processes' results after this
  c.qualitative_entities = 10
  c.qualitative_tags = 5
  if variant == "smoke":
    c.datasets = ("simulated",)
    c.num_splits = 2
    c.vocab_top_n = 20
    c.grid = ml_collections.ConfigDict(dict(
        num_hidden=(4, 8), learning_rate=(0.1,), weight_decay=(1e-4,), l1_aux=(1e-3,),
        momentum=(0.5,), aux_lr_scale=(1.0,)))
    c.train.num_epochs = 3
    c.progress = False
    c.group_by_hidden = False  # one compile for both sizes
  elif variant == "full":
    c.grid = ml_collections.ConfigDict(dict(
        num_hidden=(25, 50, 100, 200), learning_rate=(0.3, 1.0, 2.0, 3.0),
        weight_decay=(0.0, 1e-4), l1_aux=(0.0, 1e-5, 1e-4, 1e-3), momentum=(0.5,),
        aux_lr_scale=(1.0, 3.0, 10.0, 30.0)))
    c.train.num_epochs = 30
  return c
