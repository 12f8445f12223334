"""Learners: how a conditional RBM's parameters are fitted to data.

One interface, ``Learner(init, step, model)`` (``base``), built by one assembly
(``learner.make_learner``) from a negative-phase ``Sampler``; the constructors are
``cd`` (CD-k), ``pcd`` and ``parallel_tempering`` (``persistent``) and
``distance_aware`` (the clip model of ``clip_distance``). ``fit`` / ``make_fit`` run any
of them with best-epoch selection (``fit``); the block trainer runs the CD learner over
many models at once for Table 2's grid (``block``); ``space`` holds the one point type
of every search (``Point``) and the space points are drawn from; ``search`` adds
per-model early stopping and the validation search by masked freezing (``select``:
choose on validation, compare once on test; ``halving``: successive halving over
splits). The lazy L1 prox
on W_aux and the contrastive gradient are written once (``lazy_l1``, ``contrastive``).

A new sampler is a ``Sampler(init, negative)`` passed to ``make_learner``.
"""
from crbm_jax.learn.base import (Batch, Dataset, FitResult, History, HParams, Learner,
                                 StepInfo, TrainConfig, aux_learning_rate, check_aux_blocks,
                                 check_hparams,
                                 batch_rows, from_config, make_dataset, make_hparams,
                                 make_sparse_dataset, pad_dataset)
from crbm_jax.learn.contrastive import (Gradients, Sampler, ascend, cd_sampler,
                                        contrastive_grads)
from crbm_jax.learn.clip_distance import ClipNeighbours, clip_neighbours, distance_aware
from crbm_jax.learn.engine import StopRule, epoch_minibatches, run_epoch
from crbm_jax.learn.fit import fit, make_fit
from crbm_jax.learn.lazy_l1 import soft_threshold
from crbm_jax.learn.learner import LearnerState, cd, make_learner
from crbm_jax.learn.persistent import parallel_tempering, pcd
