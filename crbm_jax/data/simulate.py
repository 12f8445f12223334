"""A simulated Mechanical Turk tagging study with known ground truth.

The paper's Mechanical Turk data are not public, so this module simulates a
study with its design (Sec. 2): 185 tracks, five evenly spaced 10-second clips
per track, each clip tagged by 3 workers (2775 HITs), 209 honest workers plus 18
spammers (8%) of the kinds the paper's rules catch. The fields of
SimulationConfig marked "calibrated" were fitted to the paper's published data
statistics only (Table 1's six means, Section 2's counts; never Tables 2-3) by
tools/calibrate_simulation.py, which prints simulated vs published.

Generative story (numpy Generators seeded by config.seed):
  1. Vocabulary: the 150 most used descriptive HetRec 2011 Last.fm tags plus 34
     clip-level descriptions turkers were asked for (instruments, voices, moods,
     tempo, song sections), each with a kind from the committed list
     resources/tag_kinds.tsv (crbm_jax.data.tag_kinds): whole-track kinds
     (genre, era, locale, artist-like, opinion/listening context) and clip-level
     kinds (instrument, vocals, mood, tempo, section).
  2. Each track takes the tag profile of a real Last.fm artist
     (resources/sim_tag_model.npz, built by tools/build_sim_resource.py).
     Whole-track tags: Bernoulli(sigmoid(log profile + N(0, track_spread^2) +
     an offset giving ~track_tags expected tags)), drawn once per track, so they
     are constant within it. Clip-level tags: a latent logit(base rate) +
     association * log(the artist's lift for the tag) + N(0, track_spread^2) +
     an Ornstein-Uhlenbeck drift along the clip position x in [0, 1]
     (stationary std drift_scale, correlation exp(-|dx| / drift_length)) + for
     section tags a bump at their usual position; the tag is true where the
     latent exceeds one Logistic draw per (track, tag). Clips far apart in a
     track share fewer clip-level tags; whole-track tags never change.
  3. An honest worker writes min_tags + Poisson(extra rate) tags (at most
     max_tags; a short_hit_rate of HITs have fewer than min_tags). Each slot is a
     fresh long-tail Last.fm tag with probability tail_rate; sometimes one
     "sounds like <artist>"; the rest are vocabulary tags drawn without
     replacement with weight exp(worker bias) for a true tag and exp(bias) *
     false_positive_weight * p(tag | clip) for an untrue one. Worker biases:
     per (worker, tag) N(0, worker_bias_scale^2), per (worker, kind)
     N(0, kind_bias_scale^2), and pet_bias on a few pet tags. Surface forms vary
     (case, plurals, 80's/1980s/eighties, "&"/"n"/"and", "sounds like X",
     "X music", punctuation), always so that canonical_tag recovers the tag.
  4. HITs per worker are heavy tailed (log-normal weights, capped); spammers
     (spam_hits HITs each): too few tags, over-long tags, gibberish, a tiny
     repeated vocabulary, or stop-word heavy answers.
  5. Audio features (audio_features): a random one-hidden-layer tanh network of
     the clip's audible true tags (genre, instrument, vocals, mood, tempo) + a
     track term + noise. Era, locale, artist-like, opinion and section tags do
     not enter the features at all.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import os
import string

import numpy as np

from crbm_jax.data import tag_kinds
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
  """Design, music and worker parameters of the simulated study.

  Design fields are the paper's (Sec. 2). The fields marked "calibrated" were fitted
  by tools/calibrate_simulation.py to the paper's published data statistics
  (Table 1's six means and Section 2's counts; never Table 2 or 3): see that
  script and docs/design.md for the procedure, docs/benchmarks.md for how close it came.
  """
  # Design (the paper's).
  num_tracks: int = 185
  clips_per_track: int = 5
  clip_duration: float = 10.0
  workers_per_clip: int = 3
  num_workers: int = 227  # 209 honest (the paper's 209 accepted turkers) + 18 spammers
  spam_fraction: float = 0.08
  spam_hits: int = 6  # HITs per spammer
  max_hits_per_worker: int = 300
  hit_sigma: float = 2.5  # spread of the log-normal HITs-per-worker weights
  track_duration_range: tuple = (150.0, 330.0)
  min_tags: int = 5  # the task asked for 5-15 tags
  max_tags: int = 15
  # Music: whole-track tags are constant within a track, clip-level tags drift.
  track_tags: float = 6.72  # calibrated: expected true whole-track tags per track
  track_spread: float = 0.105  # calibrated: per-track N(0, s^2) logit perturbation
  association: float = 1.0  # calibrated: weight of the artist's log-lift on clip-level logits
  drift_scale: float = 0.75  # calibrated: OU stationary std (clip-level tags only)
  drift_length: float = 0.3  # OU correlation length (fraction of the track)
  section_peak: float = 3.0  # logit bump of a section tag at its usual position
  section_width: float = 0.15
  # Workers (honest).
  worker_bias_scale: float = 1.2  # calibrated: per-(worker, tag) N(0, s^2) log-weight
  kind_bias_scale: float = 1.0  # calibrated: per-(worker, kind) N(0, s^2) log-weight
  pet_tags: int = 3
  pet_bias: float = 3.75  # calibrated: log-weight added to a worker's pet tags
  false_positive_weight: float = 0.15  # calibrated: weight of an untrue tag per unit of its probability
  extra_tags: float = 1.02  # calibrated: mean tags beyond min_tags (Gamma-mixed Poisson)
  tail_rate: float = 0.13  # calibrated: chance a tag slot holds a long-tail Last.fm tag
  tail_tags: int = 4  # a worker's own long-tail tags, reused with personal_tail_share
  personal_tail_share: float = 0.0  # 0: every long-tail tag a fresh uniform draw
  sounds_like_rate: float = 0.1
  short_hit_rate: float = 0.0084  # calibrated: HITs with fewer than min_tags tags
  noise_rate: float = 0.25
  # Audio features: a random one-hidden-layer tanh network of the audible true tags.
  num_features: int = 64
  feature_hidden: int = 32
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
  tag_kind: np.ndarray
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
  """HITs per worker: spammers spam_hits each, honest workers >= 1 and heavy tailed
  (log-normal weights, capped at max_hits_per_worker); sums to total."""
  w = rng.lognormal(0.0, cfg.hit_sigma, len(spam))
  counts = np.where(spam, cfg.spam_hits, 1).astype(np.int64)
  cap = np.minimum(cfg.max_hits_per_worker, total // cfg.workers_per_clip)
  while counts.sum() < total:
    room = (counts < cap) & ~spam
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
  if num_spam * cfg.spam_hits + (cfg.num_workers - num_spam) > total:
    problems.append(f"{total} HITs cannot give every worker one HIT and each of the "
                    f"{num_spam} spammers {cfg.spam_hits}")
  if cfg.spam_hits > cap or cap * (cfg.num_workers - num_spam) + \
      cfg.spam_hits * num_spam < total:
    problems.append(f"max_hits_per_worker={cfg.max_hits_per_worker} (and {clips} clips) "
                    f"cannot cover {total} HITs with {cfg.num_workers} workers")
  if not 1 <= cfg.min_tags <= cfg.max_tags:
    problems.append(f"need 1 <= min_tags ({cfg.min_tags}) <= max_tags ({cfg.max_tags})")
  if not 0 <= cfg.tail_rate < 1 or not 0 <= cfg.short_hit_rate <= 1:
    problems.append("tail_rate must lie in [0, 1) and short_hit_rate in [0, 1]")
  if cfg.clip_duration * cfg.clips_per_track > cfg.track_duration_range[0]:
    problems.append("clips do not fit in the shortest track")
  if problems:
    raise SimulationError("bad SimulationConfig: " + "; ".join(problems))


def _lift(counts: np.ndarray, alpha: float = 2.0) -> np.ndarray:
  """[K, T] Gamma-Poisson posterior mean of count / expected count (artist x tag)."""
  share = (counts.sum(0) + 1.0) / (counts.sum() + counts.shape[1])
  expected = counts.sum(1, keepdims=True) * share[None]
  return (counts + alpha) / (expected + alpha)


def audio_features(rng, truth: np.ndarray, audible: np.ndarray, track: np.ndarray,
                   cfg: "SimulationConfig") -> np.ndarray:
  """[C, F] float32 features: a nonlinear function of the audible true tags + noise.

  features = tanh(a W1 + b1) W2 + track term + noise, with a the clip's audible
  true tags (truth[:, audible]) and W1, b1, W2 random. Tags that are not audible
  (era, locale, artist-like, opinion, section) do not enter at all: changing them
  leaves the features unchanged (tested).
  """
  a = truth[:, audible].astype(np.float64)
  A, F, Hf = a.shape[1], cfg.num_features, cfg.feature_hidden
  active = max(a.sum(1).mean(), 1.0)
  w1 = rng.standard_normal((A, Hf)) * 1.5 / np.sqrt(active)
  b1 = rng.standard_normal(Hf) - w1.sum(0) * a.mean()
  w2 = rng.standard_normal((Hf, F)) / np.sqrt(Hf * 0.4)
  num_tracks = int(track.max()) + 1
  track_term = cfg.track_feature_scale * rng.standard_normal((num_tracks, F))
  noise = cfg.feature_noise * rng.standard_normal((a.shape[0], F))
  return (np.tanh(a @ w1 + b1) @ w2 + track_term[track] + noise).astype(np.float32)


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
  if len(set(tag_names.tolist())) != len(tag_names):
    raise SimulationError("two simulator tags share a canonical form")
  counts = res["counts"][:, keep].astype(np.float64)
  kinds = tag_kinds.kinds_of(surface)
  kind = np.array([k.kind for k in kinds])
  clip_level = np.array([tag_kinds.KINDS[k][0] == "clip" for k in kind])
  audible = np.array([tag_kinds.KINDS[k][1] for k in kind])
  base_rate = np.array([k.base_rate for k in kinds])
  names = set(tag_names.tolist())
  tail = np.array([t for t in res["tail_surface"].tolist()
                   if canonical_tag(t) and canonical_tag(t) not in stop
                   and canonical_tag(t) not in names])
  tail_p = np.full(len(tail), 1.0)  # uniform: the paper's tail tags are nearly all distinct
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

  # Whole-track tags: the artist's real profile + a per-track perturbation, scaled
  # to track_tags expected tags; one draw per track, shared by its clips.
  tw, tc = np.flatnonzero(~clip_level), np.flatnonzero(clip_level)
  cw = counts[:, tw]
  prior = (cw.sum(0) + 1.0) / (cw.sum() + len(tw))
  profile = (cw[artist] + 2.0 * prior) / (cw[artist].sum(1, keepdims=True) + 2.0)
  logit_w = np.log(profile) + cfg.track_spread * rng.standard_normal((K, len(tw)))
  logit_w += _offset_for_mean(logit_w, cfg.track_tags)[:, None]
  track_truth = rng.random(logit_w.shape) < _sigmoid(logit_w)
  # Clip-level tags: base rate x the artist's lift for the tag (real co-occurrence)
  # + a per-track perturbation + an Ornstein-Uhlenbeck drift along the track (+ a
  # bump for section tags at their usual position).
  lift = _lift(counts)[:, tc]
  logit_c = (np.log(base_rate[tc] / (1 - base_rate[tc]))[None] +
             cfg.association * np.log(lift[artist]) +
             cfg.track_spread * rng.standard_normal((K, len(tc))))
  drift = np.empty((K, P, len(tc)))
  drift[:, 0] = cfg.drift_scale * rng.standard_normal((K, len(tc)))
  for i in range(1, P):
    rho = np.exp(-(position[:, i] - position[:, i - 1]) / cfg.drift_length)[:, None]
    drift[:, i] = rho * drift[:, i - 1] + cfg.drift_scale * np.sqrt(1 - rho ** 2) * \
        rng.standard_normal((K, len(tc)))
  bump = np.zeros((K, P, len(tc)))
  for j, t in enumerate(tc.tolist()):
    centre = tag_kinds.SECTION_CENTRES.get(str(surface[t]))
    if centre is not None:
      bump[:, :, j] = cfg.section_peak * np.exp(
          -0.5 * ((position - centre) / cfg.section_width) ** 2)
  clip_logits = np.empty((K, P, num_tags))
  clip_logits[:, :, tw] = logit_w[:, None, :]
  clip_logits[:, :, tc] = logit_c[:, None, :] + drift + bump
  clip_logits = clip_logits.reshape(K * P, num_tags)
  truth = np.empty((K, P, num_tags), bool)
  truth[:, :, tw] = track_truth[:, None, :]
  # A clip-level tag is true where its latent (logit + drift + bump + one logistic
  # draw per track and tag) is positive: without drift and bump it is constant
  # within the track with rate sigmoid(logit); the drift makes clips farther apart
  # differ more.
  latent = np.log(1.0 / rng.random((K, 1, len(tc))) - 1.0)  # Logistic(0, 1)
  truth[:, :, tc] = logit_c[:, None, :] + drift + bump > latent
  truth = truth.reshape(K * P, num_tags)

  # Audio features: audible true tags only, from their own random stream.
  C = K * P
  features = audio_features(np.random.default_rng([cfg.seed, 1]), truth, audible,
                            np.repeat(np.arange(K), P), cfg)

  # Workers.
  W = cfg.num_workers
  num_spam = int(round(cfg.spam_fraction * W))
  wkind = np.array(["honest"] * W, dtype=object)
  spam_idx = rng.choice(W, num_spam, replace=False)
  wkind[spam_idx] = [SPAM_KINDS[i % len(SPAM_KINDS)] for i in range(num_spam)]
  wkind = wkind.astype(str)
  spam = wkind != "honest"
  worker_ids = _random_id(rng, W, 14, "A")
  kind_names, kind_idx = np.unique(kind, return_inverse=True)
  bias = (cfg.worker_bias_scale * rng.standard_normal((W, num_tags)) +
          cfg.kind_bias_scale * rng.standard_normal((W, len(kind_names)))[:, kind_idx])
  use = truth.mean(0) + 1e-3
  for w in range(W):
    bias[w, rng.choice(num_tags, cfg.pet_tags, replace=False, p=use / use.sum())] += \
        cfg.pet_bias
  extra_rate = cfg.extra_tags * rng.gamma(2.0, 0.5, W)
  worker_tail = [rng.choice(len(tail), min(cfg.tail_tags, len(tail)), replace=False,
                            p=tail_p / tail_p.sum()) for _ in range(W)]

  total = C * cfg.workers_per_clip
  hit_counts = _hit_counts(rng, cfg, spam, total)
  slots = _assign_workers(rng, C, cfg.workers_per_clip, hit_counts)
  hit_ids = _random_id(rng, C, 30, "3")
  assignment_ids = _random_id(rng, total, 30, "3")
  order = rng.permutation(total)  # batch rows in completion order
  hit_clip_idx = np.repeat(np.arange(C), cfg.workers_per_clip)[order]
  hit_worker = slots.reshape(-1)[order]
  honest = ~spam[hit_worker]

  # Honest HITs, vectorised: how many tags, how many of them long-tail extras, then
  # the vocabulary tags as a weighted draw without replacement (Gumbel top-k) with
  # weight exp(worker bias) for a true tag and exp(bias) * fp_weight * p(tag) else.
  n_tags = np.minimum(cfg.max_tags, cfg.min_tags + rng.poisson(extra_rate[hit_worker]))
  short = rng.random(total) < cfg.short_hit_rate
  n_tags = np.where(short, rng.integers(max(1, cfg.min_tags - 3), max(cfg.min_tags, 2),
                                        total), n_tags)
  n_tail = rng.binomial(n_tags, cfg.tail_rate)
  like = rng.random(total) < cfg.sounds_like_rate
  n_vocab = np.maximum(n_tags - n_tail - like, 0)
  true = truth[hit_clip_idx]
  weight = np.where(true, 1.0, cfg.false_positive_weight * _sigmoid(clip_logits[hit_clip_idx]))
  keys = np.log(weight + 1e-300) + bias[hit_worker] + rng.gumbel(size=weight.shape)
  rank = np.argsort(np.argsort(-keys, axis=1, kind="stable"), axis=1, kind="stable")
  said = (rank < n_vocab[:, None]) & honest[:, None]
  missed = true & ~said & honest[:, None]
  variants = [_variant_options(str(t)) for t in surface]
  perm_keys = rng.random((total, num_tags))
  tail_pick = rng.random((total, cfg.max_tags))
  tail_fresh = rng.choice(len(tail), (total, cfg.max_tags), p=tail_p / tail_p.sum())
  tail_own = rng.integers(0, max(cfg.tail_tags, 1), (total, cfg.max_tags))

  spam_p = _tag_shares(counts)
  answers = []
  for h in range(total):
    w, c = hit_worker[h], hit_clip_idx[h]
    if spam[w]:
      answers.append(_spam_answer(rng, wkind[w], surface, spam_p))
      continue
    idx = np.flatnonzero(said[h])
    idx = idx[np.argsort(perm_keys[h, idx])]
    tags = [_noisy(rng, str(surface[t]), variants[t], cfg.noise_rate) for t in idx]
    for j in range(n_tail[h]):
      if tail_pick[h, j] < cfg.personal_tail_share and len(worker_tail[w]):
        tags.append(str(tail[worker_tail[w][tail_own[h, j] % len(worker_tail[w])]]))
      else:
        tags.append(str(tail[tail_fresh[h, j]]))
    if like[h]:
      name = "sounds like " + str(res["artist_names"][artist[c // P]]).lower()
      if len(name) <= 25 and "," not in name:
        tags.append(name)
    answers.append(tags)

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
      tag_kind=kind, worker_ids=worker_ids, worker_kind=wkind, track_ids=track_ids,
      track_artist=res["artist_names"][artist])


def _tag_shares(counts: np.ndarray) -> np.ndarray:
  """Overall tag shares (+1 smoothing): what spammers pick their few real tags from."""
  p = counts.sum(0) + 1.0
  return p / p.sum()


def _variant_options(surface: str) -> list:
  target = canonical_tag(surface)
  return [v for v in _variants(surface) if v != surface and canonical_tag(v) == target
          and "," not in v and len(v.strip()) <= 25]


def _noisy(rng, surface: str, options: list, rate: float) -> str:
  """surface, or with probability rate a spelling with the same canonical form."""
  if rng.random() >= rate or not options:
    return surface
  return options[rng.integers(len(options))]


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
