"""The CRBM autotagger (JAX): ``core`` (observations, cross-validated fits, prediction),
``product`` (crbm-autotag train --model crbm / predict --given), ``scoring`` (per-fold
scores, no JAX). The model is ``crbm_jax.model.conditioned``, its learners
``crbm_jax.learn.discriminative``; docs/crbm-autotagger.md."""
