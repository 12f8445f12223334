"""crbm_jax: conditional RBMs for music tags (Mandel, Eck & Bengio, ISMIR 2010) in JAX.

The JAX model API is exported lazily (PEP 562), so ``import crbm_jax.autotag`` and the data
layer do not pay for importing jax.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "crbm_jax.model": (
        "CRBMParams", "GibbsState", "aux_bias", "energy", "free_energy", "gibbs_init",
        "gibbs_step", "hidden_given_visible", "init_params", "run_gibbs", "sample_visible",
        "visible_bias", "visible_given_hidden", "visible_marginals_mean_field"),
    "crbm_jax.pseudolikelihood": (
        "FactoredModel", "balanced_pseudo_likelihood", "factored_log_likelihood",
        "fit_factored", "pseudo_log_likelihood"),
    "crbm_jax.train": (
        "Dataset", "FitResult", "History", "HParams", "TrainConfig", "TrainState", "cd_step",
        "fit", "make_dataset", "make_fit", "make_hparams", "pad_dataset", "run_epoch",
        "soft_threshold"),
    "crbm_jax.estimator": ("ConditionalRBM",),
    "crbm_jax.model_io": ("SavedModel", "load_model", "save_model"),
    "crbm_jax.smoothing": ("clip_aux_rows", "compare_smoothing_methods",
                           "exact_visible_marginals", "smooth_affinities"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name):
  module = _WHERE.get(name)
  if module is None:
    raise AttributeError(f"module 'crbm_jax' has no attribute {name!r}")
  value = getattr(importlib.import_module(module), name)
  globals()[name] = value
  return value


def __dir__():
  return __all__
