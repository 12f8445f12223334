"""The pure JAX core: the conditional RBM of Eq. 2 and what can be computed from it.

Modules: ``crbm`` (parameters, energy, free energy, conditionals), ``gibbs`` (the one
tempered block Gibbs sweep, chains, mean field), ``pseudolikelihood`` (exact Eq. 3, the
factored baseline), ``ais`` (annealed importance sampling of log Z(a)), ``marginals``
(smoothed affinities p(v_i = 1 | a)). Nothing here trains, reads files or knows a data set.
"""
from crbm_jax.model.crbm import (CRBMParams, aux_bias, energy, free_energy,
                                 hidden_given_visible, hidden_preactivation, init_params,
                                 visible_bias, visible_given_hidden)
from crbm_jax.model.gibbs import (GibbsState, gibbs_init, gibbs_step, gibbs_sweep,
                                  hidden_probs, run_gibbs, sample_hidden, sample_visible,
                                  visible_marginals_mean_field)
from crbm_jax.model.pseudolikelihood import (FactoredModel, balanced_log_pl,
                                             balanced_pseudo_likelihood,
                                             factored_baseline, factored_baseline_pl,
                                             factored_log_likelihood, fit_factored,
                                             pseudo_log_likelihood)
