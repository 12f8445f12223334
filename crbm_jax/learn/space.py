"""The one point type of every search, and the space points are drawn from.

A ``Point`` is one configuration of a model: what crbm-fit's search tries, what Table 2's
exhaustive and adaptive stages train on every split, what the estimator's constructor
arguments describe. Its first six fields (``MODEL_FIELDS``) are the settings each model
of a block has to itself: the hidden size (a mask; sizes are padded to the block's
largest) and the traced hyperparameters (``stack_hparams`` gives their [M] HParams).
``batch_size`` is static: a search trains one block per value. ``conditioned`` says
whether the model conditions on the auxiliary groups (its group mask); Table 2 gives
each task's groups itself and leaves it True.

``SearchSpace`` holds the values tried per field (``configs/search.py``'s ``space`` is
its schema); ``sample_points`` draws points of its grid and ``expand_grid`` gives the
whole grid of Table 2's value lists.
"""
from __future__ import annotations

import itertools
from typing import List, NamedTuple, Optional, Sequence, Union

import jax.numpy as jnp
import numpy as np

from crbm_jax.defaults import SPACE_DEFAULTS
from crbm_jax.learn.base import HParams


class Point(NamedTuple):
  """One configuration (module docstring)."""
  num_hidden: int
  learning_rate: float
  momentum: float
  weight_decay: float
  l1_aux: float
  aux_lr_scale: float = 1.0  # multiplies learning_rate for W_aux (learn.HParams)
  batch_size: int = 100      # static: one block per value
  conditioned: bool = True   # False: the model's group mask is all zero

  def model_values(self) -> tuple:
    """The ``MODEL_FIELDS`` values: Table 2's result keys and initial keys are made of
    them (so a Table 2 run keeps its stored results' keys)."""
    return tuple(self)[:len(MODEL_FIELDS)]

  def model_dict(self) -> dict:
    """``MODEL_FIELDS`` -> value (Table 2's ``selected``)."""
    return dict(zip(MODEL_FIELDS, self.model_values()))

  def training(self) -> dict:
    """The fields the training schema (``configs/training.py``) holds: every field but
    ``conditioned``."""
    return {f: getattr(self, f) for f in Point._fields if f != "conditioned"}


MODEL_FIELDS = Point._fields[:6]


def as_point(config: Union[Point, dict]) -> Point:
  """A Point (a dict of Point's fields, such as a search-table row's, becomes one)."""
  if isinstance(config, Point):
    return config
  return Point(**{f: config[f] for f in Point._fields if f in config})


def expand_grid(num_hidden: Sequence[int], learning_rate: Sequence[float],
                weight_decay: Sequence[float], l1_aux: Sequence[float],
                momentum: Sequence[float] = (0.5,),
                aux_lr_scale: Sequence[float] = (1.0,), batch_size: int = 100) -> list:
  """Cartesian product of the value lists, as Points (hidden sizes outermost)."""
  return [Point(int(h), float(lr), float(m), float(wd), float(l1), float(s),
                int(batch_size))
          for h, lr, wd, l1, m, s in itertools.product(num_hidden, learning_rate,
                                                        weight_decay, l1_aux, momentum,
                                                        aux_lr_scale)]


def stack_hparams(points: Sequence[Point]) -> HParams:
  """HParams with a leading model axis [M]."""
  col = lambda name: jnp.asarray([getattr(p, name) for p in points], jnp.float32)
  return HParams(col("learning_rate"), col("momentum"), col("weight_decay"), col("l1_aux"),
                 col("aux_lr_scale"))


def hidden_masks(points: Sequence[Point], num_hidden: int) -> np.ndarray:
  """[M, num_hidden] float32: 1 for the first ``point.num_hidden`` units."""
  sizes = np.array([p.num_hidden for p in points])
  if (sizes > num_hidden).any():
    raise ValueError(f"a point has {sizes.max()} hidden units > the block's {num_hidden}")
  return (np.arange(num_hidden)[None, :] < sizes[:, None]).astype(np.float32)


class SearchSpace(NamedTuple):
  """Values to search (each a sequence; the fields of ``Point``). ``batch_size`` is
  static: one block per value. ``conditioned``: True trains with the auxiliary groups,
  False without (an unconditional RBM in the same block, for the honest comparison).
  The defaults are the one search spec's (``crbm_jax.defaults.SPACE_DEFAULTS``, which
  ``configs/search`` uses)."""
  num_hidden: Sequence[int] = tuple(SPACE_DEFAULTS["num_hidden"])
  learning_rate: Sequence[float] = tuple(SPACE_DEFAULTS["learning_rate"])
  l1_aux: Sequence[float] = tuple(SPACE_DEFAULTS["l1_aux"])
  aux_lr_scale: Sequence[float] = tuple(SPACE_DEFAULTS["aux_lr_scale"])
  weight_decay: Sequence[float] = tuple(SPACE_DEFAULTS["weight_decay"])
  batch_size: Sequence[int] = tuple(SPACE_DEFAULTS["batch_size"])
  momentum: Sequence[float] = tuple(SPACE_DEFAULTS["momentum"])
  conditioned: Sequence[bool] = (True,)

  def size(self) -> int:
    return int(np.prod([len(v) for v in self]))

  @classmethod
  def of_point(cls, point: Point) -> "SearchSpace":
    """The space of one point (every list one value long)."""
    return cls(**{f: (getattr(point, f),) for f in cls._fields})


# The order of a search table's columns and of the grid's product (sample_points).
SPACE_FIELDS = SearchSpace._fields


def sample_points(space: SearchSpace, num_points: Optional[int], seed: int) -> List[Point]:
  """``num_points`` distinct points of the grid (all of it when None or larger), drawn
  without replacement by a seeded permutation; sorted by batch size."""
  grid = [Point(**dict(zip(SPACE_FIELDS, values)))
          for values in itertools.product(*[getattr(space, f) for f in SPACE_FIELDS])]
  if num_points is not None and num_points < len(grid):
    order = np.random.default_rng(seed).permutation(len(grid))[:num_points]
    grid = [grid[i] for i in sorted(order)]
  return sorted(grid, key=lambda p: p.batch_size)


def unconditional_space(space: SearchSpace) -> SearchSpace:
  """The same search without the auxiliary terms: L1 and the W_aux step do not apply."""
  return space._replace(l1_aux=(0.0,), aux_lr_scale=(1.0,), conditioned=(False,))
