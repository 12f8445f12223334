"""crbm_jax: conditional RBMs for music tags (Mandel, Eck & Bengio, ISMIR 2010) in JAX.

Layout (each folder's ``__init__`` says more):
  model/    the pure JAX core: the CRBM, Gibbs sampling, pseudo-likelihood, AIS, marginals
  learn/    learners (CD-k, PCD, parallel tempering, the distance-aware clip model), fit,
            and the block trainer of Table 2's grid
  paper/    the paper's stages (Table 1 / Figure 1, Table 2, Table 3, beyond), the report
  data/     tag tables, loaders, observations, splits, simulated studies (no JAX)
  autotag/  audio features, the SVM protocol and the tag-your-own-audio product (no JAX)
  fitting/  fitting and smoothing a tag table: the library steps under crbm-fit/-smooth
  util/     atomic writes, progress, statistics, model files
  configs/  every experiment's ConfigDict, and the one training schema
  cli/      the console scripts, one thin module per tool (crbm-fit, crbm-smooth, ...)
  estimator.py: the scikit-learn estimator

The JAX model API is exported lazily (PEP 562), so ``import crbm_jax.autotag`` and the data
layer do not pay for importing jax. The modules of earlier versions (``crbm_jax.train``,
``crbm_jax.grid``, ...) still resolve as attributes (``from crbm_jax import train``) to
their new homes; CHANGES.md lists each move.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "crbm_jax.model": (
        "CRBMParams", "GibbsState", "aux_bias", "energy", "free_energy", "gibbs_init",
        "gibbs_step", "gibbs_sweep", "hidden_given_visible", "init_params", "run_gibbs",
        "sample_visible", "visible_bias", "visible_given_hidden",
        "visible_marginals_mean_field", "FactoredModel", "balanced_pseudo_likelihood",
        "factored_log_likelihood", "fit_factored", "pseudo_log_likelihood"),
    "crbm_jax.learn": (
        "Dataset", "FitResult", "History", "HParams", "Learner", "TrainConfig", "cd",
        "distance_aware", "fit", "from_config", "make_dataset", "make_fit", "make_hparams",
        "pad_dataset", "parallel_tempering", "pcd", "run_epoch", "soft_threshold"),
    "crbm_jax.estimator": ("ConditionalRBM",),
    "crbm_jax.util.model_io": ("SavedModel", "load_model", "save_model"),
    "crbm_jax.model.marginals": ("compare_smoothing_methods", "exact_visible_marginals",
                                 "smooth_affinities"),
    "crbm_jax.data.aux_rows": ("clip_aux_rows",),
}
# Modules of earlier versions -> where they live now (``from crbm_jax import train``).
_MOVED = {
    "train": "crbm_jax.learn", "grid": "crbm_jax.learn.block",
    "persistent": "crbm_jax.learn.persistent", "drift": "crbm_jax.learn.clip_distance",
    "pseudolikelihood": "crbm_jax.model.pseudolikelihood", "ais": "crbm_jax.model.ais",
    "smoothing": "crbm_jax.model.marginals", "model_io": "crbm_jax.util.model_io",
    "atomic": "crbm_jax.util.atomic", "progress": "crbm_jax.util.progress",
    "cooccurrence": "crbm_jax.paper.cooccurrence", "cooccurrence_plot": "crbm_jax.paper.figure1",
    "table2": "crbm_jax.paper.table2", "autotag_experiment": "crbm_jax.paper.table3",
    "beyond": "crbm_jax.paper.beyond", "reproduce": "crbm_jax.paper.reproduce",
    "report": "crbm_jax.paper.report", "reading": "crbm_jax.paper.reading",
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name):
  if name in _MOVED:
    value = importlib.import_module(_MOVED[name])
  elif name in _WHERE:
    value = getattr(importlib.import_module(_WHERE[name]), name)
  else:
    raise AttributeError(f"module 'crbm_jax' has no attribute {name!r}")
  globals()[name] = value
  return value


def __dir__():
  return __all__
