"""Reading and checking what a fit or a smoothing run is given: the tag table (any
format), its auxiliary groups, seeds, hyperparameters and output paths.

Every check raises ``InputError`` with one line that says what to do; nothing here
imports JAX (``check_hparams`` imports ``learn.base`` when it is called).
"""
from __future__ import annotations

import os
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from crbm_jax.data.observations import AUX_COLUMNS

DEFAULT_AUX = ("user", "track", "clip")
SEED_MODULUS = 2 ** 32  # jax.random.key and numpy take seeds in [0, 2**32)

Log = Callable[[str], None]


class InputError(ValueError):
  """A bad input or setting, said in one line with what to do."""


def reduce_seed(seed: int) -> int:
  """Any integer a user types as a PRNG seed, reduced deterministically: ``seed mod
  2**32`` (Python's modulo, so -1 -> 4294967295; seeds 0..2**32-1 are unchanged)."""
  try:
    value = int(seed)
  except (TypeError, ValueError, OverflowError):
    raise InputError(f"--seed {seed!r} is not an integer") from None
  if value != seed and not isinstance(seed, (int, np.integer)):
    raise InputError(f"--seed {seed!r} is not an integer")
  return value % SEED_MODULUS


def check_hparams(*, prefix: str = "--", error=None, **values) -> None:
  """``learn.base.check_hparams`` raising InputError (one line) by default."""
  from crbm_jax.learn.base import check_hparams as base_check  # pylint: disable=import-outside-toplevel
  base_check(prefix=prefix, error=error or InputError, **values)


def check_output_file(path: str, flag: str) -> None:
  """Before any work: ``path`` can be written as a file (one line saying what to do)."""
  if os.path.isdir(path):
    raise InputError(f"{flag} {path} is a folder; give a file name (e.g. "
                     f"{os.path.join(path, 'smoothed.tsv')})")
  out_dir = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(out_dir):
    raise InputError(f"{flag} {path}: folder {out_dir} does not exist; create it first")
  if not os.access(out_dir, os.W_OK | os.X_OK) or (
      os.path.exists(path) and not os.access(path, os.W_OK)):
    raise InputError(f"{flag} {path}: cannot write there (permission denied); choose a "
                     "place you can write to")


def parse_aux_groups(spec: str, columns: Sequence[str], source: str) -> tuple:
  """--aux value -> group names; 'auto': user, track, and clip (when there are users) as
  the table has them; 'none' or '': no auxiliary input."""
  spec = spec.strip().lower()
  if spec == "auto":  # without users a clip is one observation: its bias would memorise it
    return tuple(g for g in DEFAULT_AUX if g in columns and (g != "clip" or "user" in columns))
  if spec in ("", "none"):
    return ()
  groups = tuple(g.strip() for g in spec.split(",") if g.strip())
  for g in groups:
    if g not in AUX_COLUMNS:
      raise InputError(f"unknown auxiliary group {g!r} in --aux; choose from "
                       f"{','.join(AUX_COLUMNS)} (or 'auto' or 'none')")
    if g not in columns:
      raise InputError(f"--aux asks for {g!r} but {source} has no {g!r} column (columns: "
                       f"{','.join(columns)}); leave {g!r} out of --aux")
  if len(set(groups)) != len(groups):
    raise InputError(f"--aux repeats a group: {spec!r}")
  return groups


def parse_factor_out(spec: str) -> tuple:
  """--factor_out value -> group names ('' = none)."""
  groups = tuple(g.strip() for g in spec.split(",") if g.strip())
  for g in groups:
    if g not in AUX_COLUMNS:
      raise InputError(f"unknown auxiliary group {g!r} in --factor_out; choose from "
                       f"{','.join(AUX_COLUMNS)}")
  return groups


def canonical_table(table, canonicalize: bool):
  """(table with canonical tags, {tag: display form}); identity when not canonicalising."""
  if canonicalize:
    from crbm_jax.data import canonical  # pylint: disable=import-outside-toplevel
    return canonical.canonicalize_table(table)
  return table, {t: t for t in np.unique(table.tag).tolist()}


def load_tags(tags, fmt: str = "auto", format_options: Optional[dict] = None,
              log: Log = print, prog: str = "crbm"):
  """A TagTable from a tag table or any public format ``formats.read_any`` reads
  (detected when ``fmt`` is 'auto'); logs what was read and skipped unless the input is
  a plain tag table with nothing skipped."""
  from crbm_jax.data import formats  # pylint: disable=import-outside-toplevel
  table, info = formats.read_any(tags, fmt, **(format_options or {}))
  if info.format != "tagtable" or info.skipped:
    log(f"{prog}: {info.summary()}")
  if table.num_rows == 0:
    if info.format == "tagtable" and not info.skipped:
      raise InputError(f"{tags}: the table has a header but no rows; add one row per "
                       "(clip, [user], tag)")
    raise InputError(f"{tags}: no (clip, tag) rows to use ({info.summary()})")
  return table


class FitData(NamedTuple):
  """A tag table made ready for training: observations, their split, the groups."""
  obs: object        # data.observations.Observations
  split: object      # data.splits.Split (train / val / test indices)
  groups: tuple      # auxiliary groups


def prepare_fit_data(tags: str, aux: str = "auto", *, min_users: int = 2,
                     top_tags: int = 0, seed: int = 0, canonicalize: bool = True,
                     fmt: str = "auto", format_options: Optional[dict] = None,
                     log: Log = print, max_elements: Optional[int] = None,
                     sparse_above: Optional[int] = None) -> FitData:
  """What crbm-fit trains on: the table read (any format), canonicalised, its vocabulary,
  observations and the 60/20/20 split with every auxiliary entity in training. Raises
  InputError (one line) when the table cannot give a split, or, with ``max_elements``,
  when dense observations would have more elements (observations x tags) than that,
  before they are allocated. With ``sparse_above`` the observations are kept as CSR
  (``Observations.sparse``) when they have more elements than that."""
  from crbm_jax.data import observations as obs_lib  # pylint: disable=import-outside-toplevel
  from crbm_jax.data.splits import random_split  # pylint: disable=import-outside-toplevel

  table = load_tags(tags, fmt, format_options, log, "crbm-fit")
  groups = parse_aux_groups(aux, table.columns(), tags)
  table, surface = canonical_table(table, canonicalize)
  vocab = obs_lib.select_vocabulary(table, min_users=min_users, top_n=top_tags or None)
  holder = "users" if table.has("user") else "items"
  if len(vocab) == 0:
    raise InputError(f"{tags}: no tag is used by >= {min_users} {holder}; lower --min_users")
  try:
    obs = obs_lib.build_observations(table, aux_groups=groups, vocab=vocab,
                                     display=surface, max_elements=max_elements,
                                     sparse_above=sparse_above)
  except obs_lib.ObservationError as e:
    if max_elements is None or "more than" not in str(e):
      raise
    raise InputError(f"{e} (past int32 indexing); keep fewer tags (--top_tags), drop "
                     "rare tags and entities (--min_users) or use a sample of the "
                     "clips; nothing was trained") from None
  split = random_split(obs.aux, seed)
  if min(len(split.train), len(split.val), len(split.test)) == 0:
    if obs.num_observations < 5:
      raise InputError(f"{tags}: {obs.num_observations} observations are too few for a "
                       "60/20/20 split; give more tagged items (or lower --min_users)")
    single = [g for g, col in zip(groups, obs.aux.T)
              if np.all(np.bincount(col[col >= 0]) <= 1)]
    raise InputError(f"{tags}: the 60/20/20 split left no validation or test observation "
                     "because every auxiliary entity must be in training and "
                     f"{'group(s) ' + ','.join(single) if single else 'some entities'} "
                     "occur in one observation each; leave such groups out of --aux")
  return FitData(obs, split, groups)
