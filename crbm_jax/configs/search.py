"""The one search spec: what a validation search tries and when its models stop.

``crbm-fit`` (its flags), Table 2's adaptive stage (``configs/table2.py``'s
``adaptive``) and the estimator read a search from this schema; the engine
(``crbm_jax.learn.engine``) runs it. Fields:

  learner: the learning algorithm by name ('cd', 'pcd', 'pt'; ``engine.LEARNERS``).
  space: the values tried per hyperparameter (a grid, ``learn.space.SearchSpace``;
    ``num_configs`` random points of it are drawn, seeded, each a ``learn.space.Point``,
    the one point type): num_hidden, learning_rate, l1_aux, aux_lr_scale, weight_decay,
    momentum, batch_size (static: one block per value).
  num_configs: points of the grid tried (0 = all of it).
  inits_per_config: initialisations per point (the splits of Table 2 play this role
    there; crbm-fit trains one).
  seconds: wall-clock budget of the whole search (0 = none: deterministic).
  stop: the stop rule of every model (``engine.StopRule``): num_epochs (the epoch budget;
    the one spelling of epochs), patience (0 = never stop for want of improvement), tol,
    eval_every (the validation schedule: epochs per round), diverge_margin (0 = never
    stop as diverged, except on a non-finite score).
  halving: successive halving (``engine.Halving``; eta 0 = none): eta, first_rung,
    min_models, and min_bucket (the smallest block compaction makes).
"""
import ml_collections

from crbm_jax.defaults import SPACE_DEFAULTS  # the one source (learn.space reads it too)

STOP_DEFAULTS = dict(num_epochs=300, patience=8, tol=1e-4, eval_every=1, diverge_margin=0.5)
HALVING_DEFAULTS = dict(eta=2.0, first_rung=4, min_models=1, min_bucket=1)
DEFAULTS = dict(learner="cd", space=SPACE_DEFAULTS, num_configs=96, inits_per_config=1,
                seconds=0.0, stop=STOP_DEFAULTS, halving=HALVING_DEFAULTS)


def get_config(**overrides) -> ml_collections.ConfigDict:
  """The defaults above with ``overrides`` (a dict for space / stop / halving updates
  those fields; unknown names are errors, one line naming the known ones)."""
  config = ml_collections.ConfigDict({k: dict(v) if isinstance(v, dict) else v
                                      for k, v in DEFAULTS.items()})
  for name, value in overrides.items():
    if name not in DEFAULTS:
      raise ValueError(f"unknown search setting {name!r}; known: {sorted(DEFAULTS)}")
    if isinstance(DEFAULTS[name], dict):
      unknown = sorted(set(value) - set(DEFAULTS[name]))
      if unknown:
        raise ValueError(f"unknown search.{name} setting(s) {unknown}; known: "
                         f"{sorted(DEFAULTS[name])}")
      config[name].update(value)
    else:
      config[name] = value
  return config


def stop_rule(config, num_epochs=None):
  """The spec's ``engine.StopRule`` (``num_epochs`` overrides ``stop.num_epochs``: Table 2
  takes it from its training config). Patience or diverge_margin 0: off."""
  from crbm_jax.learn import engine  # pylint: disable=import-outside-toplevel
  s = config.stop
  off = 2 ** 30
  return engine.StopRule(
      patience=int(s.patience) or off, tol=float(s.tol),
      num_epochs=int(s.num_epochs if num_epochs is None else num_epochs),
      eval_every=int(s.eval_every), diverge_margin=float(s.diverge_margin) or float(off))


def halving(config):
  """The spec's ``engine.Halving`` (None when ``halving.eta`` is 0)."""
  from crbm_jax.learn import engine  # pylint: disable=import-outside-toplevel
  h = config.halving
  if not h.eta:
    return None
  return engine.Halving(float(h.eta), int(h.first_rung), int(h.min_models))


def learner(config):
  """The spec's learner factory (``engine.learner_factory``)."""
  from crbm_jax.learn import engine  # pylint: disable=import-outside-toplevel
  return engine.learner_factory(config.learner)
