"""Table 2 of the paper (Sec. 3.3): model selection and auxiliary-variable comparison.

Protocol per data set:
  1. binary observations (one per user x clip, or per item), auxiliary groups mapped to
     the paper's columns User / Track / Item (item = clip, or the artist for Last.fm);
  2. ``num_splits`` 60/20/20 splits covering every auxiliary entity in training;
  3. grid stage: every hyperparameter point x split, conditioned on the track group
     only (the item group when there is no usable track group); the point with the best
     mean validation pseudo-likelihood is selected;
  4. combination stage: every combination of the usable groups x split with that point,
     plus the factored baseline; test balanced per-bit log pseudo-likelihood,
     mean ± standard error over splits.
A group is unusable when the data lack it (e.g. MajorMiner's aggregated tags have no
users) or when every entity has a single observation (then it is always in training and
its W_aux row has nothing to learn for held-out data); its rows are reported as missing
with the reason. Results are stored one JSON file per (data set, stage, point, groups,
split) under ``workdir/results``, written atomically, so a killed run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sys
import time
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from crbm_jax.data import splits as splits_lib
from crbm_jax.learn import block as block_lib
from crbm_jax.learn import halving as halving_lib
from crbm_jax.learn import space as space_lib
from crbm_jax.configs import search as search_spec
from crbm_jax.learn import engine
from crbm_jax.learn.base import Dataset, TrainConfig, from_config
from crbm_jax.model.pseudolikelihood import factored_baseline_pl
from crbm_jax.paper.table2_report import to_csv, to_markdown
from crbm_jax.util.atomic import write_json_atomic, write_npz_atomic, write_text_atomic
from crbm_jax.util.fingerprint import stable_hash, stable_int
from crbm_jax.util.progress import Progress
from crbm_jax.util.result_store import ResultStore
from crbm_jax.util.stats import mean_stderr

VERSION = 3  # bump when a change alters results (part of every result key)
ROLES = ("user", "track", "item")
ITEM_GROUPS = ("clip", "artist", "album")
SEARCHES = ("exhaustive", "adaptive", "both")  # config.search: how the grid point is chosen


@dataclasses.dataclass
class Prepared:
  """A data set ready for the protocol."""
  name: str
  label: str
  simulated: bool
  obs: object                 # Observations restricted to the usable groups
  roles: dict                 # role -> group name (usable only)
  missing: dict               # role -> reason
  splits: list
  fingerprint: str


def _role_groups(obs) -> dict:
  out = {}
  for g in obs.groups:
    role = g if g in ("user", "track") else ("item" if g in ITEM_GROUPS else None)
    if role is not None and role not in out:
      out[role] = g
  return out


def prepare(name: str, config) -> Prepared:
  """Loads a data set (a name or a tag-table path), picks usable groups, makes splits."""
  from crbm_jax.data import datasets  # pylint: disable=import-outside-toplevel
  bundle = datasets.load_dataset(name, seed=config.data_seed)
  top_n = config.vocab_top_n if config.vocab_top_n > 0 else None
  from crbm_jax.data.observations import AUX_COLUMNS  # pylint: disable=import-outside-toplevel
  # Every auxiliary column the table has; unusable ones are dropped below, with a reason.
  obs = bundle.to_observations(
      aux_groups=tuple(g for g in AUX_COLUMNS if bundle.table.has(g)), top_n=top_n)
  roles, missing = {}, {}
  for role, group in _role_groups(obs).items():
    counts = np.bincount(obs.aux[:, obs.groups.index(group)][obs.aux[:, obs.groups.index(
        group)] >= 0])
    if counts.size == 0 or counts.max() <= 1:
      missing[role] = (f"every {group} is a single observation: it is always in training, "
                       "so its auxiliary row has nothing to learn for held-out data")
    else:
      roles[role] = group
  for role in ROLES:
    if role not in roles and role not in missing:
      missing[role] = (f"the data have no {role} column"
                       + (" (aggregated tags without per-user triples)"
                          if role == "user" else ""))
  obs = obs.select_groups([roles[r] for r in ROLES if r in roles])
  splits = splits_lib.paper_splits(obs.aux, config.num_splits, config.seed)
  digest = hashlib.sha256()
  for array in (obs.X, obs.aux, *[a for s in splits for a in s]):
    digest.update(np.ascontiguousarray(array).tobytes())
  fp = stable_hash([digest.hexdigest(), obs.X.shape, obs.vocab.tolist(),
                             list(obs.groups)])
  label = bundle.description or name
  return Prepared(name, label, bundle.simulated, obs, roles, missing, splits, fp)


def stage_observations(prep: Prepared, columns):
  """The observations a stage trains on: only the auxiliary groups in ``columns``, their
  W_aux rows re-packed from 0 (the grid stage carries the track rows alone, not every
  group's). With every column, the rows are the data set's own."""
  if list(columns) == list(range(len(prep.obs.groups))):
    return prep.obs
  return prep.obs.select_groups([prep.obs.groups[c] for c in columns])


def _split_datasets(prep: Prepared, columns, batch_size: int):
  """Per split (train, val, test) Datasets with shapes equal across splits; aux indexes
  the stage's own W_aux rows (``stage_observations``)."""
  obs = stage_observations(prep, columns)
  X = obs.X.astype(np.float32)
  aux = obs.aux.astype(np.int32)
  sizes = [max(len(getattr(s, part)) for s in prep.splits) for part in ("train", "val",
                                                                        "test")]
  sizes[0] += (-sizes[0]) % batch_size
  out = []
  for s in prep.splits:
    parts = []
    for part, size in zip((s.train, s.val, s.test), sizes):
      pad = size - len(part)
      parts.append(Dataset(jnp.asarray(np.pad(X[part], ((0, pad), (0, 0)))),
                           jnp.asarray(np.pad(aux[part], ((0, pad), (0, 0)),
                                              constant_values=-1)),
                           jnp.asarray(np.pad(np.ones(len(part), np.float32), (0, pad)))))
    out.append(tuple(parts))
  return out


def train_config(config, num_hidden: int) -> TrainConfig:
  """The block's static settings: ``config.train`` with the block's hidden size."""
  return dataclasses.replace(from_config(config.train)[0], num_hidden=num_hidden)


_STAGE_FNS = {}
# The method 'auto' resolves to: on a CPU, the one measured fastest on the 2-core machine
# (docs/benchmarks.md: `experiments/bench_grid.py --split_methods` and `--methods`);
# on an accelerator, the single computation.
CPU_METHOD = "map"
ACCELERATOR_METHOD = "vmap"


def resolve_method(config) -> str:
  """``config.method``, with 'auto' replaced by the backend's choice."""
  method = config.method
  if method == "auto":
    return CPU_METHOD if jax.default_backend() == "cpu" else ACCELERATOR_METHOD
  if method not in block_lib.METHODS:
    raise ValueError(f"table2 config: unknown method {method!r}; use 'auto' or one of "
                     f"{', '.join(block_lib.METHODS)}")
  return method


def learner_of(config):
  """The learner factory of ``config.learner`` ('cd', 'pcd', 'pt')."""
  return engine.learner_factory(config.get("learner", "cd"))


def task_shard(config) -> Tuple[int, int]:
  """(index, count): this process's share of the tasks. ``config.task_shard`` if set,
  else (process index, process count) under ``jax.distributed`` (each process fits its
  share on its local devices into the shared workdir and waits for the others)."""
  index, count = tuple(config.task_shard)
  if count == 1 and jax.process_count() > 1:
    return jax.process_index(), jax.process_count()
  return index, count


class Runner:
  """Runs tasks (point, group mask, split) in blocks, storing each result on finish."""

  def __init__(self, config, workdir: str, prep: Prepared):
    self.config, self.prep = config, prep
    self.result_dir = os.path.join(workdir, "results", _slug(prep.name))
    learner = config.get("learner", "cd")
    self.store = ResultStore(self.result_dir, dict(
        version=VERSION, data=prep.fingerprint, seed=config.seed, key_impl=config.key_impl,
        train=config.train.to_dict(), **({} if learner == "cd" else {"learner": learner})))
    self.root = jax.random.key(config.seed, impl=config.key_impl)
    devices = jax.local_devices()  # several processes: each shards over its own devices
    self.method = resolve_method(config)
    self.mesh = None
    if config.shard and self.method == "vmap" and len(devices) > 1:
      self.mesh = jax.sharding.Mesh(np.array(devices), (block_lib.AXIS,))
    self.num_computed = 0

  def key_of(self, stage, point, groups, split) -> str:
    return self.store.key(stage=stage, point=list(point.model_values()),
                          groups=list(groups), split=split)

  def load(self, key) -> Optional[dict]:
    return self.store.load(key)

  def run(self, stage: str, tasks: list, columns: list, progress=None) -> dict:
    """tasks: (point, groups tuple, split). Returns {task: result dict}."""
    out, pending = {}, []
    for task in tasks:
      r = self.load(self.key_of(stage, *task))
      if r is None:
        pending.append(task)
      else:
        out[task] = r
    if progress is not None:
      progress.skip(len(tasks) - len(pending))
    # Block shapes come from all tasks, so resuming or sharding never changes them.
    max_h = max(p.num_hidden for p, _, _ in tasks)
    sizes = {}
    for p, _, split in tasks:
      h = p.num_hidden if self.config.group_by_hidden else max_h
      sizes[split, h] = sizes.get((split, h), 0) + 1
    chunk = max(1, self.config.chunk_size)
    chunk = min(chunk, max(sizes.values()))
    ndev = self.mesh.devices.size if self.mesh is not None else 1
    chunk += (-chunk) % ndev
    index, count = task_shard(self.config)
    if count > 1:  # several processes share a workdir: each computes its share, then waits
      mine = [t for t in pending if int(self.key_of(stage, *t), 16) % count == index]
      out.update(self._compute(stage, mine, columns, chunk, max_h, progress))
      return self._wait(stage, tasks, out, progress)
    out.update(self._compute(stage, pending, columns, chunk, max_h, progress))
    return out

  def _wait(self, stage, tasks, out, progress) -> dict:
    """Waits for the other processes' results (files in the shared workdir)."""
    keys = {self.key_of(stage, *t): t for t in tasks if t not in out}
    on_found = (lambda k, r: progress.skip(1)) if progress is not None else None
    try:
      found = self.store.wait(keys, self.config.task_wait_s, f"{stage} results", on_found)
    except TimeoutError as e:
      raise TimeoutError(f"{e} (task_shard={task_shard(self.config)})") from None
    out.update({keys[k]: r for k, r in found.items()})
    return out

  def adaptive(self, points, groups, columns, stream=None) -> dict:
    """The grid stage by successive halving (``learn.halving.run_halving``) over every point and
    split at once, the first rung in one block per hidden size with ``group_by_hidden``;
    selection by mean validation PL over the splits. Not stored per fit (it takes
    seconds); returns the pick and what the search did."""
    t0 = time.perf_counter()
    a = self.config.adaptive
    data = _split_datasets(self.prep, columns, self.config.train.batch_size)
    num_aux = stage_observations(self.prep, columns).num_aux
    num_splits = len(data)
    max_h = max(p.num_hidden for p in points)
    cfg = train_config(self.config, max_h)
    rule = search_spec.stop_rule(a, cfg.num_epochs)
    halving = search_spec.halving(a)
    keys = jnp.stack([jnp.stack([self._model_keys(s, p, groups) for p in points])
                      for s in range(num_splits)])
    gmask = np.ones((len(points), len(columns)), np.float32)
    stack = lambda parts: jax.tree.map(lambda *x: jnp.stack(x), *parts)
    train, val = (stack([d[i] for d in data]) for i in range(2))
    data_keys = jnp.stack([self._data_key(s) for s in range(num_splits)])
    prog = Progress(cfg.num_epochs, f"{_slug(self.prep.name)} adaptive", "epochs",
                    stream=stream)
    last = [0]

    def report(epoch, training, best):
      prog.update(epoch - last[0])
      last[0] = epoch

    res = halving_lib.run_halving(cfg, num_aux, keys, space_lib.stack_hparams(points),
                                space_lib.hidden_masks(points, max_h), gmask, data_keys,
                                train, val, halving, rule, int(a.halving.min_bucket),
                                report, learner=learner_of(self.config),
                                by_hidden=bool(self.config.group_by_hidden))
    prog.close()
    order = sorted(range(len(points)), key=lambda i: (-res.mean_val_pl[i], i))
    pick = order[0]
    return dict(selected=points[pick].model_dict(), mean_val_pl=float(res.mean_val_pl[pick]),
                val_pl=res.best_val_pl[:, pick].tolist(),
                best_epoch=res.best_epoch[:, pick].tolist(), seconds=time.perf_counter() - t0,
                model_epochs=res.model_epochs,
                exhaustive_model_epochs=len(points) * num_splits * cfg.num_epochs,
                rounds=res.rounds, buckets=list(res.buckets),
                survivors=int(sum(r != "halved" for r in res.reason)),
                first_rung=({str(h): dict(models=n, seconds=t) for h, (n, t) in
                             res.first_rung.items()} if res.first_rung else None),
                halving=dict(eta=halving.eta, first_rung=halving.first_rung,
                             min_models=halving.min_models))

  def _model_keys(self, split, point, groups):
    return jax.random.fold_in(jax.random.fold_in(self.root, 2 + split),
                              stable_int([list(point.model_values()), list(groups)]))

  def _data_key(self, split):
    return jax.random.fold_in(jax.random.fold_in(self.root, 1), split)

  def _store(self, stage, task, res, index) -> dict:
    """Writes one fit's result (``index`` into the leading axes of the BlockResult)."""
    pick = lambda x: np.asarray(x[index])
    val_pl = pick(res.val_pl)
    r = dict(best_val_pl=float(pick(res.best_val_pl)), test_pl=float(pick(res.test_pl)),
             best_epoch=int(pick(res.best_epoch)),
             val_pl=[None if not np.isfinite(x) else float(x) for x in val_pl],
             recon_error=pick(res.recon_error).tolist(), point=list(task[0].model_values()),
             groups=list(task[1]), split=task[2], stage=stage)
    item = self.prep.roles.get("item")  # W_aux of the item-only model on split 0
    if item is not None and stage == "combos" and task[2] == 0 and tuple(task[1]) == (item,):
      write_npz_atomic(os.path.join(self.result_dir, "item_model_split0.npz"),
                       W_aux=pick(res.params.W_aux), b=pick(res.params.b))
    return self.store.save(self.key_of(stage, *task), r)

  def _compute(self, stage, pending, columns, chunk, max_h, progress) -> dict:
    """Fits the pending tasks in one computation over (split, model) per stage ('vmap':
    the whole block at once; 'map': ``lax.map`` over chunks of ``chunk`` models), saving
    each result."""
    if not pending:
      return {}
    data = _split_datasets(self.prep, columns, self.config.train.batch_size)
    num_aux = stage_observations(self.prep, columns).num_aux
    group_names = [self.prep.obs.groups[c] for c in columns]
    gmask_of = lambda groups_list: np.array(
        [[g in groups for g in group_names] for groups in groups_list],
        np.float32).reshape(len(groups_list), len(group_names))
    return self._compute_stacked(stage, pending, data, num_aux, gmask_of, chunk, max_h,
                                 progress)

  def _compute_stacked(self, stage, pending, data, num_aux, gmask_of, chunk, max_h,
                       progress) -> dict:
    """Every pending configuration on every split in ONE jitted call: one block per
    hidden size (or one padded block), each mapped over (split, model)."""
    num_splits = len(data)
    configs = list(dict.fromkeys((p, g) for p, g, _ in pending))  # ordered, distinct
    by_h = {}
    for p, g in configs:
      by_h.setdefault(p.num_hidden if self.config.group_by_hidden else max_h,
                      []).append((p, g))
    ndev = self.mesh.devices.size if self.mesh is not None else 1
    hs, blocks, members = [], [], []
    for h, cs in sorted(by_h.items()):
      multiple = chunk if self.method == "map" else ndev
      padded = cs + [cs[0]] * ((-len(cs)) % multiple)
      keys = jnp.stack([jnp.stack([self._model_keys(s, p, g) for p, g in padded])
                        for s in range(num_splits)])                       # [S, M]
      points = [p for p, _ in padded]
      args = [keys, space_lib.stack_hparams(points),
              jnp.asarray(space_lib.hidden_masks(points, h)),
              jnp.asarray(gmask_of([g for _, g in padded]))]
      if self.mesh is not None and self.method == "vmap":
        P = jax.sharding.PartitionSpec
        shard = lambda spec: jax.sharding.NamedSharding(self.mesh, spec)
        args = [jax.device_put(args[0], shard(P(None, block_lib.AXIS)))] + [
            jax.device_put(a, shard(P(block_lib.AXIS))) for a in args[1:]]
      hs.append(h)
      blocks.append(tuple(args))
      members.append(cs)
    stack = lambda parts: jax.tree.map(lambda *x: jnp.stack(x), *parts)
    train, val, test = (stack([d[i] for d in data]) for i in range(3))
    data_keys = jnp.stack([self._data_key(s) for s in range(num_splits)])
    fn = self._stage_fn(tuple(hs), num_aux, chunk)
    results = jax.device_get(fn(tuple(blocks), data_keys, train, val, test))
    out, todo = {}, set(pending)
    for cs, res in zip(members, results):
      for i, (p, g) in enumerate(cs):
        for s in range(num_splits):
          if (p, g, s) in todo:
            out[p, g, s] = self._store(stage, (p, g, s), res, (s, i))
    self.num_computed += len(out)
    if progress is not None:
      progress.update(len(out))
    return out

  def _stage_fn(self, hs, num_aux, chunk):
    """The jitted stage: a tuple of blocks (one per hidden size) over (split, model)."""
    cfgs = tuple(train_config(self.config, h) for h in hs)
    learner = learner_of(self.config)
    cache_key = (cfgs, num_aux, self.method, chunk, learner)
    if cache_key not in _STAGE_FNS:
      fns = [block_lib.make_split_block_fit(c, num_aux, self.method, chunk, learner)
             for c in cfgs]

      def stage(blocks, data_keys, train, val, test):
        return tuple(fn(*b, data_keys, train, val, test) for fn, b in zip(fns, blocks))

      _STAGE_FNS[cache_key] = jax.jit(stage)
    return _STAGE_FNS[cache_key]


def _slug(name: str) -> str:
  base = os.path.splitext(os.path.basename(name.rstrip("/")))[0] or "data"
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in base)


def _baseline(prep: Prepared) -> list:
  X = prep.obs.X.astype(np.float32)
  return [factored_baseline_pl(X[s.train], X[s.test]) for s in prep.splits]


def grid_points(config) -> list:
  """The grid's Points (``learn.space.Point``; batch size: the training config's)."""
  g = config.grid
  return space_lib.expand_grid(g.num_hidden, g.learning_rate, g.weight_decay, g.l1_aux,
                               g.momentum, g.get("aux_lr_scale", (1.0,)),
                               batch_size=config.train.batch_size)


def selected_point(config, selected: dict) -> "space_lib.Point":
  """The grid Point of a stage's ``selected`` dict (its ``MODEL_FIELDS``)."""
  return space_lib.Point(**selected, batch_size=int(config.train.batch_size))


def run_dataset(config, workdir: str, name: str) -> dict:
  """The protocol on one data set; returns its rows and the selection."""
  t0 = time.perf_counter()
  prep = prepare(name, config)
  runner = Runner(config, workdir, prep)
  groups = list(prep.obs.groups)
  roles = prep.roles
  grid_group = roles.get("track", roles.get("item", roles.get("user")))
  points = grid_points(config)
  stream = sys.stderr if config.progress else None
  tasks = [(p, (grid_group,) if grid_group else (), s) for p in points
           for s in range(len(prep.splits))]
  cols = [groups.index(grid_group)] if grid_group else []
  gg = (grid_group,) if grid_group else ()
  search = config.get("search", "exhaustive")
  if search not in SEARCHES:
    raise ValueError(f"table2 config: unknown search {search!r}; use one of "
                     f"{', '.join(SEARCHES)}")
  mean_val, best, adaptive = {}, None, None
  if search in ("exhaustive", "both"):
    prog = Progress(len(tasks), f"{_slug(name)} grid", "fits", stream=stream)
    t_grid = time.perf_counter()
    grid_res = runner.run("grid", tasks, cols, prog)
    grid_seconds = time.perf_counter() - t_grid  # resumed fits make it shorter
    prog.close()
    vals = {p: [grid_res[(p, gg, s)]["best_val_pl"] for s in range(len(prep.splits))]
            for p in points}
    mean_val = {p: float(np.mean(v)) for p, v in vals.items()}
    best = max(points, key=lambda p: (mean_val[p], -points.index(p)))
  if search in ("adaptive", "both"):
    adaptive = runner.adaptive(points, gg, cols, stream)
    if best is not None:
      win_mean, win_se = mean_stderr(vals[best])
      pick = selected_point(config, adaptive["selected"])
      adaptive.update(
          exhaustive_selected=best.model_dict(), exhaustive_mean_val_pl=win_mean,
          exhaustive_val_pl_stderr=win_se, exhaustive_seconds=grid_seconds,
          pick_exhaustive_mean_val_pl=mean_val[pick],
          within_one_stderr=bool(mean_val[pick] >= win_mean - win_se))
    else:
      best = selected_point(config, adaptive["selected"])
  combos = [tuple(g for g in groups if roles_of(g, roles) in on)
            for on in _role_subsets(roles)]
  tasks = [(best, c, s) for c in combos for s in range(len(prep.splits))]
  prog = Progress(len(tasks), f"{_slug(name)} combos", "fits", stream=stream)
  combo_res = runner.run("combos", tasks, list(range(len(groups))), prog)
  prog.close()
  rows = []
  for on in itertools.product((True, False), repeat=3):
    pattern = "".join("+" if o else "-" for o in on)
    needed = [r for r, o in zip(ROLES, on) if o]
    lacking = [r for r in needed if r not in roles]
    if lacking:
      rows.append(dict(pattern=pattern, values=None,
                       missing="; ".join(f"{r}: {prep.missing[r]}" for r in lacking)))
      continue
    c = tuple(roles[r] for r in ROLES if r in needed)
    c = tuple(g for g in groups if g in c)
    vals = [combo_res[(best, c, s)]["test_pl"] for s in range(len(prep.splits))]
    rows.append(dict(pattern=pattern, values=vals, groups=list(c)))
  rows.append(dict(pattern="baseline", values=_baseline(prep)))
  for r in rows:
    if r["values"] is not None:
      r["mean"], r["stderr"] = mean_stderr(r["values"])
  out = dict(name=name, label=prep.label, simulated=prep.simulated, rows=rows,
             selected=best.model_dict(), search=search, adaptive=adaptive,
             grid_group=grid_group,
             grid_mean_val_pl={json.dumps(list(p.model_values())): v for p, v in mean_val.items()},
             num_observations=prep.obs.num_observations,
             num_visible=prep.obs.num_visible, groups=groups,
             missing=prep.missing, computed_fits=runner.num_computed,
             seconds=time.perf_counter() - t0)
  item = roles.get("item")
  npz = os.path.join(runner.result_dir, "item_model_split0.npz")
  if item and os.path.exists(npz):
    with np.load(npz) as f:
      out["qualitative"] = aux_extremes(prep.obs, item, f["W_aux"],
                                               config.qualitative_entities,
                                               config.qualitative_tags)
  return out


def roles_of(group: str, roles: dict) -> Optional[str]:
  for r, g in roles.items():
    if g == group:
      return r
  return None


def _role_subsets(roles: dict) -> list:
  present = [r for r in ROLES if r in roles]
  return [set(c) for k in range(len(present) + 1) for c in itertools.combinations(present, k)]


# ---------------------------------------------------------------- reporting
def aux_extremes(obs, group: str, W_aux: np.ndarray, num_entities: int,
                 num_tags: int) -> list:
  """Most positive / negative W_aux tags of the most-observed entities of ``group``."""
  g = obs.groups.index(group)
  col = obs.aux[:, g]
  counts = np.bincount(col[col >= 0], minlength=obs.num_aux)
  rows = obs.group_rows(group)
  top = rows[np.argsort(-counts[rows], kind="stable")[:num_entities]]
  out = []
  for r in top:
    w = W_aux[r]
    order = np.argsort(-w, kind="stable")
    pos = [(str(obs.display[i]), float(w[i])) for i in order[:num_tags] if w[i] > 0]
    neg = [(str(obs.display[i]), float(w[i])) for i in order[::-1][:num_tags] if w[i] < 0]
    out.append(dict(entity=str(obs.entity_names[g][r - obs.offsets[g]]),
                    observations=int(counts[r]), positive=pos, negative=neg))
  return out


def run_table2(config, workdir: str, datasets=None) -> dict:
  """Runs the protocol on ``datasets`` (default: ``config.datasets`` and ``config.tags``,
  a tag-table path).

  Writes ``workdir/table2.{md,csv,json}`` and returns the JSON content.
  """
  names = (list(datasets) if datasets is not None else
           list(config.datasets) + ([config.tags] if config.tags else []))
  if not names:
    raise ValueError("table2 config names no data set: set config.datasets or config.tags")
  t0 = time.perf_counter()
  results = [run_dataset(config, workdir, n) for n in names]
  out = dict(variant=config.variant, datasets=results, datasets_run=names,
             seconds=time.perf_counter() - t0, config=config.to_dict())
  write_json_atomic(os.path.join(workdir, "table2.json"), out)
  write_text_atomic(os.path.join(workdir, "table2.csv"), to_csv(results))
  write_text_atomic(os.path.join(workdir, "table2.md"), to_markdown(results))
  return out
