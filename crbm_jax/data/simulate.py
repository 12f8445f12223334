"""A simulated Mechanical Turk tagging study with known ground truth.

The paper's Mechanical Turk data are not public, so this module simulates a
study with its design (Sec. 2): 185 tracks, five evenly spaced 10-second clips
per track, each clip tagged by 3 workers (2775 HITs), ~209 workers of whom ~8%
are spammers of the kinds the paper's rules catch.

Generative story (all draws from one numpy Generator seeded by config.seed):
  1. Tag vocabulary and co-occurrence are real: each track takes the tag
     profile of a real Last.fm artist (resources/sim_tag_model.npz, built by
     tools/build_sim_resource.py from HetRec 2011), perturbed per track, with a
     per-track offset so that a clip has ~`tags_per_clip` true tags on average.
  2. Within a track, tag logits drift with the clip's position x in [0, 1] as
     an Ornstein-Uhlenbeck process (stationary std `drift_scale`, correlation
     exp(-|dx| / drift_length)); a clip's true tags are Bernoulli draws from
     its logits. Clips far apart in a track share fewer true tags.
  3. An honest worker reports each true tag with a worker-specific recall
     (uniform in `recall_range`, shifted per tag by the worker's vocabulary
     biases and a few pet tags), adds Poisson(`false_positives`) plausible
     wrong tags, sometimes a long-tail Last.fm tag or "sounds like <artist>",
     and pads up to 5 tags (the task asked for 5-15) except in a few HITs.
     Surface forms vary (case, plurals, 80's/1980s/eighties, "&"/"n"/"and",
     "sounds like X", "X music", punctuation), always so that
     canonical_tag recovers the intended tag.
  4. Spammers: too few tags, over-long tags, gibberish, a tiny repeated
     vocabulary, or stop-word heavy answers.
  5. Audio features: features = truth @ M + track term + noise (float32).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import os
import string

import numpy as np

from crbm_jax.data.canonical import canonical_tag
from crbm_jax.util.atomic import write_csv_atomic, write_npz_atomic

SPAM_KINDS = ("few_tags", "long_tags", "gibberish", "repetitive", "stop_words")

_LONG_PHRASES = (
    "this song is really good i like it", "i would listen to this all day long",
    "reminds me of something my dad used to play", "not really my kind of thing",
    "the singer has a very nice voice in this one", "great for driving around town",
    "sounds like something from the radio", "i do not know what genre this is")
_STOP_ANSWERS = ("nice", "music", "genre", "good", "song", "great", "ok", "like",
                 "sound", "style")
_REPEAT_ANSWERS = ("rock", "pop", "guitar", "drums", "vocals", "fast")
_DECADE_WORDS = {"20": "twenties", "30": "thirties", "40": "forties", "50": "fifties",
                 "60": "sixties", "70": "seventies", "80": "eighties", "90": "nineties"}


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
  """Design and noise levels of the simulated study (defaults: the paper's design)."""
  num_tracks: int = 185
  clips_per_track: int = 5
  clip_duration: float = 10.0
  workers_per_clip: int = 3
  num_workers: int = 209
  spam_fraction: float = 0.08
  spam_min_hits: int = 8
  max_hits_per_worker: int = 60
  track_duration_range: tuple = (150.0, 330.0)
  tags_per_clip: float = 8.0
  track_spread: float = 0.5
  drift_scale: float = 2.0
  drift_length: float = 0.3
  recall_range: tuple = (0.25, 0.5)
  worker_bias_scale: float = 1.5
  pet_tags: int = 3
  pet_bias: float = 2.5
  false_positives: float = 1.0
  tail_tags: int = 4
  tail_rate: float = 0.6
  sounds_like_rate: float = 0.1
  min_tags: int = 5
  short_hit_rate: float = 0.02
  noise_rate: float = 0.25
  num_features: int = 64
  track_feature_scale: float = 0.5
  feature_noise: float = 0.5
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class SimulatedStudy:
  """The simulated batch results, clip metadata and ground truth.

  HIT (assignment) arrays [H]: worker, hit, assignment, hit_clip (clip id),
  answers (H lists of free-text tags), honest (bool), reported [H, T] bool
  (vocabulary tags whose canonical form is in the answer), missed [H, T] bool
  (true tags an honest HIT omitted; all False for spam HITs).
  Clip arrays [C]: clip, track, start, duration, track_duration; truth [C, T];
  features [C, F] float32. Tags [T]: tag_names (canonical), surface.
  Workers [W]: worker_ids, worker_kind ("honest" or a SPAM_KINDS entry).
  Tracks [K]: track_ids, track_artist (the real artist whose profile it drew).
  """
  config: SimulationConfig
  worker: np.ndarray
  hit: np.ndarray
  assignment: np.ndarray
  hit_clip: np.ndarray
  answers: list
  honest: np.ndarray
  reported: np.ndarray
  missed: np.ndarray
  clip: np.ndarray
  track: np.ndarray
  start: np.ndarray
  duration: np.ndarray
  track_duration: np.ndarray
  truth: np.ndarray
  features: np.ndarray
  tag_names: np.ndarray
  surface: np.ndarray
  worker_ids: np.ndarray
  worker_kind: np.ndarray
  track_ids: np.ndarray
  track_artist: np.ndarray

  @property
  def num_hits(self) -> int:
    return len(self.worker)

  def clip_position(self) -> np.ndarray:
    """[C] clip centre as a fraction of its track."""
    return (self.start + self.duration / 2) / self.track_duration

  def to_hits(self):
    """The batch as crbm_jax.data.mturk.Hits (lines as in write_study's CSV)."""
    from crbm_jax.data.mturk import Hits  # pylint: disable=import-outside-toplevel
    return Hits(worker=self.worker, hit=self.hit, assignment=self.assignment,
                clip=self.hit_clip, tags=[list(a) for a in self.answers],
                line=np.arange(2, self.num_hits + 2, dtype=np.int64),
                source="simulated study")


def load_sim_resource() -> dict:
  """The Last.fm-derived tag model shipped with the package."""
  ref = importlib.resources.files("crbm_jax.data") / "resources" / "sim_tag_model.npz"
  with ref.open("rb") as f:
    with np.load(f) as data:
      return {k: data[k] for k in data.files}


def _stop_canonicals() -> set:
  try:
    from crbm_jax.data.filters import DEFAULT_STOP_WORDS  # pylint: disable=import-outside-toplevel
  except ImportError:
    DEFAULT_STOP_WORDS = _STOP_ANSWERS
  return {canonical_tag(w) for w in DEFAULT_STOP_WORDS} - {""}


def _random_id(rng, n: int, length: int, prefix: str = "") -> np.ndarray:
  alphabet = np.array(list(string.ascii_uppercase + string.digits))
  ids = set()
  out = []
  while len(out) < n:
    s = prefix + "".join(rng.choice(alphabet, length - len(prefix)))
    if s not in ids:
      ids.add(s)
      out.append(s)
  return np.array(out)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _offset_for_mean(logits: np.ndarray, target: float) -> np.ndarray:
  """[K] offsets s.t. sigmoid(logits[k] + offset[k]).sum() == target (bisection)."""
  lo = np.full(logits.shape[0], -20.0)
  hi = np.full(logits.shape[0], 20.0)
  for _ in range(50):
    mid = (lo + hi) / 2
    too_many = _sigmoid(logits + mid[:, None]).sum(1) > target
    hi = np.where(too_many, mid, hi)
    lo = np.where(too_many, lo, mid)
  return (lo + hi) / 2


def _variants(surface: str) -> list:
  """Free-text spellings of one tag (canonical_tag is checked by the caller)."""
  out = [surface.title(), surface.upper(), surface + " music", "sounds like " + surface,
         surface + "!", " " + surface + ".", surface.replace("-", " "),
         surface.replace(" ", "-")]
  words = surface.split()
  if len(words) == 1 and not surface.endswith("s"):
    out.append(surface + "s")
  if surface[:-1].isdigit() and surface.endswith("s") and len(surface) == 3:
    d = surface[:2]
    century = "19" if d != "00" else "20"
    out += [d + "'s", "'" + d + "s", century + d + "s"]
    if d in _DECADE_WORDS:
      out.append(_DECADE_WORDS[d])
  for a, b in ((" n ", " & "), (" n ", " and "), (" and ", " & "), (" and ", " n "),
               (" n ", " 'n' ")):
    if a in surface:
      out.append(surface.replace(a, b))
  return out


def _assign_workers(rng, num_clips: int, per_clip: int, counts: np.ndarray) -> np.ndarray:
  """[num_clips, per_clip] worker indices, distinct within a clip, worker w used counts[w] times."""
  slots = np.full((num_clips, per_clip), -1)
  filled = np.zeros(num_clips, np.int64)
  for w in np.argsort(-counts, kind="stable"):
    free = per_clip - filled
    order = np.lexsort((rng.random(num_clips), -free))
    chosen = order[:counts[w]]
    slots[chosen, filled[chosen]] = w
    filled[chosen] += 1
  assert (slots >= 0).all()
  return slots


def _hit_counts(rng, cfg: SimulationConfig, spam: np.ndarray, total: int) -> np.ndarray:
  """HITs per worker: heavy tailed, >= 1 (spammers >= spam_min_hits), sums to total."""
  w = rng.lognormal(0.0, 1.0, len(spam))
  counts = np.where(spam, cfg.spam_min_hits, 1).astype(np.int64)
  cap = np.minimum(cfg.max_hits_per_worker, total // cfg.workers_per_clip)
  while counts.sum() < total:
    room = counts < cap
    p = np.where(room, w, 0.0)
    extra = rng.multinomial(total - counts.sum(), p / p.sum())
    counts = np.minimum(counts + extra, cap)
  return counts


class SimulationError(ValueError):
  """A simulation config that cannot be realised."""


def _validate(cfg: SimulationConfig) -> None:
  clips = cfg.num_tracks * cfg.clips_per_track
  total = clips * cfg.workers_per_clip
  num_spam = int(round(cfg.spam_fraction * cfg.num_workers))
  cap = min(cfg.max_hits_per_worker, clips)
  problems = []
  if cfg.num_tracks < 1 or cfg.clips_per_track < 1 or cfg.workers_per_clip < 1:
    problems.append("num_tracks, clips_per_track and workers_per_clip must be >= 1")
  if cfg.workers_per_clip > cfg.num_workers:
    problems.append(f"workers_per_clip={cfg.workers_per_clip} > num_workers="
                    f"{cfg.num_workers}")
  if num_spam * cfg.spam_min_hits + (cfg.num_workers - num_spam) > total:
    problems.append(f"{total} HITs cannot give every worker one HIT and each of the "
                    f"{num_spam} spammers {cfg.spam_min_hits}")
  if cfg.spam_min_hits > cap or cap * cfg.num_workers < total:
    problems.append(f"max_hits_per_worker={cfg.max_hits_per_worker} (and {clips} clips) "
                    f"cannot cover {total} HITs with {cfg.num_workers} workers")
  if not 0 < cfg.recall_range[0] <= cfg.recall_range[1] < 1:
    problems.append(f"recall_range {cfg.recall_range} must lie in (0, 1)")
  if cfg.clip_duration * cfg.clips_per_track > cfg.track_duration_range[0]:
    problems.append("clips do not fit in the shortest track")
  if problems:
    raise SimulationError("bad SimulationConfig: " + "; ".join(problems))


def simulate_study(config: SimulationConfig = SimulationConfig()) -> SimulatedStudy:
  """Simulates the study; deterministic given config (see the module docstring).

  Raises:
    SimulationError for a config that cannot be realised.
  """
  cfg = config
  _validate(cfg)
  rng = np.random.default_rng(cfg.seed)
  res = load_sim_resource()
  stop = _stop_canonicals()
  canon_all = np.array([canonical_tag(s) for s in res["tag_surface"].tolist()])
  keep = np.array([c not in stop for c in canon_all])
  surface, tag_names = res["tag_surface"][keep], canon_all[keep]
  counts = res["counts"][:, keep].astype(np.float64)
  tail = [t for t in res["tail_surface"].tolist() if canonical_tag(t) not in stop
          and canonical_tag(t) not in set(tag_names.tolist()) and canonical_tag(t)]
  tail = np.array(tail)
  num_tags = len(tag_names)

  # Tracks, clips and positions.
  K, P = cfg.num_tracks, cfg.clips_per_track
  artist = rng.integers(0, counts.shape[0], K)
  lo, hi = cfg.track_duration_range
  track_duration = np.round(rng.uniform(lo, hi, K), 1)
  centres = (np.arange(P) + 0.5) / P
  start = np.round(track_duration[:, None] * centres[None] - cfg.clip_duration / 2, 2)
  position = (start + cfg.clip_duration / 2) / track_duration[:, None]  # [K, P]
  track_ids = np.array([f"track{k:03d}" for k in range(K)])
  clip_ids = np.array([f"track{k:03d}_clip{i}" for k in range(K) for i in range(P)])

  # True tags: artist profile + track perturbation + OU drift along the track.
  prior = (counts.sum(0) + 1.0) / (counts.sum() + num_tags)
  profile = (counts[artist] + 2.0 * prior) / (counts[artist].sum(1, keepdims=True) + 2.0)
  logits = np.log(profile) + cfg.track_spread * rng.standard_normal((K, num_tags))
  logits += _offset_for_mean(logits, cfg.tags_per_clip)[:, None]
  drift = np.empty((K, P, num_tags))
  drift[:, 0] = cfg.drift_scale * rng.standard_normal((K, num_tags))
  for i in range(1, P):
    rho = np.exp(-(position[:, i] - position[:, i - 1]) / cfg.drift_length)[:, None]
    drift[:, i] = rho * drift[:, i - 1] + cfg.drift_scale * np.sqrt(1 - rho ** 2) * \
        rng.standard_normal((K, num_tags))
  clip_logits = (logits[:, None, :] + drift).reshape(K * P, num_tags)
  truth = rng.random(clip_logits.shape) < _sigmoid(clip_logits)

  # Features tied to the true tags.
  F = cfg.num_features
  mix = rng.standard_normal((num_tags, F)) / np.sqrt(cfg.tags_per_clip)
  track_term = cfg.track_feature_scale * rng.standard_normal((K, F))
  features = (truth @ mix + np.repeat(track_term, P, 0) +
              cfg.feature_noise * rng.standard_normal((K * P, F))).astype(np.float32)

  # Workers.
  W = cfg.num_workers
  num_spam = int(round(cfg.spam_fraction * W))
  kind = np.array(["honest"] * W, dtype=object)
  spam_idx = rng.choice(W, num_spam, replace=False)
  kind[spam_idx] = [SPAM_KINDS[i % len(SPAM_KINDS)] for i in range(num_spam)]
  kind = kind.astype(str)
  spam = kind != "honest"
  worker_ids = _random_id(rng, W, 14, "A")
  recall = rng.uniform(*cfg.recall_range, W)
  bias = cfg.worker_bias_scale * rng.standard_normal((W, num_tags))
  for w in range(W):
    bias[w, rng.choice(num_tags, cfg.pet_tags, replace=False, p=prior)] += cfg.pet_bias
  worker_tail = [np.zeros(0, np.int64)] * W
  if len(tail):
    tail_p = res["tail_users"][:len(tail)].astype(np.float64)
    worker_tail = [rng.choice(len(tail), min(cfg.tail_tags, len(tail)), replace=False,
                              p=tail_p / tail_p.sum()) for _ in range(W)]

  C = K * P
  total = C * cfg.workers_per_clip
  hit_counts = _hit_counts(rng, cfg, spam, total)
  slots = _assign_workers(rng, C, cfg.workers_per_clip, hit_counts)
  hit_ids = _random_id(rng, C, 30, "3")
  assignment_ids = _random_id(rng, total, 30, "3")
  order = rng.permutation(total)  # batch rows in completion order
  hit_clip_idx = np.repeat(np.arange(C), cfg.workers_per_clip)[order]
  hit_worker = slots.reshape(-1)[order]

  answers, honest = [], ~spam[hit_worker]
  missed = np.zeros((total, num_tags), bool)
  for h in range(total):
    w, c = hit_worker[h], hit_clip_idx[h]
    if spam[w]:
      answers.append(_spam_answer(rng, kind[w], surface, prior))
      continue
    true = truth[c]
    p_report = _sigmoid(np.log(recall[w] / (1 - recall[w])) + bias[w])
    said = true & (rng.random(num_tags) < p_report)
    weight = np.exp(bias[w]) * _sigmoid(clip_logits[c])
    n_fp = rng.poisson(cfg.false_positives)
    cand = np.flatnonzero(~true)
    if n_fp and len(cand):
      p = weight[cand] / weight[cand].sum()
      said[rng.choice(cand, min(n_fp, len(cand)), replace=False, p=p)] = True
    extras = []
    if len(worker_tail[w]) and rng.random() < cfg.tail_rate:
      extras.append(str(tail[rng.choice(worker_tail[w])]))
    like = "sounds like " + str(res["artist_names"][artist[c // P]]).lower()
    if rng.random() < cfg.sounds_like_rate and len(like) <= 25 and "," not in like:
      extras.append(like)
    goal = cfg.min_tags - (1 if rng.random() < cfg.short_hit_rate else 0)
    need = goal - said.sum() - len(extras)
    cand = np.flatnonzero(~said)
    if need > 0 and len(cand):
      pad_w = np.where(true, 1.0, weight)[cand] * np.exp(bias[w][cand])
      said[rng.choice(cand, min(need, len(cand)), replace=False,
                      p=pad_w / pad_w.sum())] = True
    missed[h] = true & ~said
    tags = [_noisy(rng, str(surface[t]), cfg.noise_rate) for t in
            rng.permutation(np.flatnonzero(said))]
    answers.append(tags + extras)

  index = {t: i for i, t in enumerate(tag_names.tolist())}
  reported = np.zeros((total, num_tags), bool)
  for h, tags in enumerate(answers):
    for t in tags:
      i = index.get(canonical_tag(t))
      if i is not None:
        reported[h, i] = True

  return SimulatedStudy(
      config=cfg, worker=worker_ids[hit_worker], hit=hit_ids[hit_clip_idx],
      assignment=assignment_ids, hit_clip=clip_ids[hit_clip_idx], answers=answers,
      honest=honest, reported=reported, missed=missed, clip=clip_ids,
      track=np.repeat(track_ids, P), start=start.reshape(-1),
      duration=np.full(C, cfg.clip_duration), track_duration=np.repeat(track_duration, P),
      truth=truth, features=features, tag_names=tag_names, surface=surface,
      worker_ids=worker_ids, worker_kind=kind, track_ids=track_ids,
      track_artist=res["artist_names"][artist])


def _noisy(rng, surface: str, rate: float) -> str:
  """surface, or with probability rate a spelling with the same canonical form."""
  if rng.random() >= rate:
    return surface
  target = canonical_tag(surface)
  options = [v for v in _variants(surface) if v != surface and canonical_tag(v) == target
             and "," not in v and len(v.strip()) <= 25]
  return options[rng.integers(len(options))] if options else surface


def _spam_answer(rng, kind: str, surface: np.ndarray, prior: np.ndarray) -> list:
  """Free-text answer of one spam HIT."""
  def popular(n):
    return [str(s) for s in rng.choice(surface, n, replace=False, p=prior)]
  if kind == "few_tags":
    return popular(int(rng.integers(1, 4)))
  if kind == "long_tags":
    k = int(rng.integers(1, 3))
    phrases = [str(x) for x in rng.choice(_LONG_PHRASES, k, replace=False)]
    return phrases + popular(int(rng.integers(1, 4)))
  if kind == "gibberish":
    letters = np.array(list("asdfghjklqwertyuiopzxcvbnm"))
    words = ["".join(rng.choice(letters, int(rng.integers(4, 9))))
             for _ in range(int(rng.integers(5, 9)))]
    return words + popular(1)
  if kind == "repetitive":
    return list(_REPEAT_ANSWERS[:5 + int(rng.integers(0, 2))])
  if kind == "stop_words":
    return [str(x) for x in rng.choice(_STOP_ANSWERS, 3, replace=False)] + popular(2)
  raise ValueError(f"unknown spam kind {kind!r}; expected one of {SPAM_KINDS}")


def write_study(study: SimulatedStudy, directory: str) -> dict:
  """Writes batch.csv, clips.csv, truth.tsv, workers.csv and features.npz.

  Returns: {"batch", "clips", "truth", "workers", "features"} -> path.
  Byte-identical output for identical studies.
  """
  os.makedirs(directory, exist_ok=True)
  paths = {name: os.path.join(directory, f) for name, f in (
      ("batch", "batch.csv"), ("clips", "clips.csv"), ("truth", "truth.tsv"),
      ("workers", "workers.csv"), ("features", "features.npz"))}

  write_csv_atomic(paths["batch"], ["WorkerId", "HITId", "AssignmentId", "Input.clip", "Answer.tags"],
            [(w, h, a, c, ",".join(t)) for w, h, a, c, t in zip(
                study.worker.tolist(), study.hit.tolist(), study.assignment.tolist(),
                study.hit_clip.tolist(), study.answers)])
  write_csv_atomic(paths["clips"], ["clip", "track", "start", "duration", "track_duration"],
            [(c, t, f"{s:.2f}", f"{d:.2f}", f"{td:.1f}") for c, t, s, d, td in zip(
                study.clip.tolist(), study.track.tolist(), study.start.tolist(),
                study.duration.tolist(), study.track_duration.tolist())])
  ci, ti = np.nonzero(study.truth)
  write_csv_atomic(paths["truth"], ["clip", "tag"],
            zip(study.clip[ci].tolist(), study.tag_names[ti].tolist()), delimiter="\t")
  write_csv_atomic(paths["workers"], ["WorkerId", "kind"],
            zip(study.worker_ids.tolist(), study.worker_kind.tolist()))
  write_npz_atomic(paths["features"], compress=True, features=study.features, clip=study.clip)
  return paths
