"""crbm_jax: conditional RBMs for music tags (Mandel, Eck & Bengio, ISMIR 2010) in JAX."""
from crbm_jax.model import (CRBMParams, GibbsState, aux_bias, energy, free_energy,
                            gibbs_init, gibbs_step, hidden_given_visible, init_params,
                            run_gibbs, sample_visible, visible_bias, visible_given_hidden,
                            visible_marginals_mean_field)
from crbm_jax.pseudolikelihood import (FactoredModel, balanced_pseudo_likelihood,
                                       factored_log_likelihood, fit_factored,
                                       pseudo_log_likelihood)
from crbm_jax.train import (Dataset, FitResult, History, HParams, TrainConfig, TrainState,
                            cd_step, fit, make_dataset, make_fit, make_hparams,
                            pad_dataset, run_epoch, soft_threshold)

__version__ = "0.1.0"
