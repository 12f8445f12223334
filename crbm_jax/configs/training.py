"""The one training-config schema: every setting of a CRBM fit, static and traced.

Table 2, Table 3, the beyond-the-paper stage, ``crbm-fit`` and the scikit-learn estimator
all describe a fit with this schema; ``crbm_jax.learn.from_config(cfg)`` turns it into
``(TrainConfig, HParams)``. Static (recompiles when changed): num_hidden, cd_k,
batch_size, num_epochs, sample_last_visible, weight_scale, eval_chunk, eval_every. Traced (a grid over
them is a vmap): learning_rate, momentum, weight_decay, l1_aux, aux_lr_scale.

Learning rates multiply the minibatch-MEAN gradient (the CD step normalises by the batch
weight), so they are ~batch_size times larger than per-example rates; aux_lr_scale
multiplies the learning rate of W_aux only (an entity's row gets 1/batch of the gradient
of each observation that uses it, so rare entities need it).
"""
import ml_collections

DEFAULTS = dict(
    num_hidden=100, cd_k=1, batch_size=100, num_epochs=30, sample_last_visible=False,
    weight_scale=0.01, eval_chunk=64, eval_every=1,
    learning_rate=0.05, momentum=0.5, weight_decay=1e-4, l1_aux=1e-3, aux_lr_scale=1.0)


def get_config(**overrides) -> ml_collections.ConfigDict:
  """The defaults above with ``overrides`` (unknown names are errors)."""
  unknown = sorted(set(overrides) - set(DEFAULTS))
  if unknown:
    raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(DEFAULTS)}")
  return ml_collections.ConfigDict(dict(DEFAULTS, **overrides))
