"""The paper's automatic spam rules for Mechanical Turk HITs (Section 2).

HIT rules (each judged on one HIT; "tags" are the HIT's distinct surface forms):
  hit_too_few_tags          fewer than ``min_tags_per_hit`` (5) tags.
  hit_long_tag              a tag longer than ``max_tag_chars`` (25) characters.
  hit_few_dictionary_tags   less than ``min_dictionary_fraction`` (1/2) of the
                            tags have their canonical form in the dictionary of
                            Last.fm tags.
Worker rules (each judged on all of a worker's HITs; when one fires, every HIT
of that worker is rejected):
  worker_small_vocabulary   fewer than ``min_unique_tags_per_hit`` (1) distinct
                            canonical tags per HIT.
  worker_frequent_tags      at least ``max_frequent_tags`` (4) canonical tags
                            each used in more than ``frequent_tag_hit_fraction``
                            (1/2) of the worker's HITs. Only judged for workers
                            with at least ``frequent_tag_min_hits`` (3) HITs: the
                            paper does not say, but with one or two HITs every
                            tag is "in more than half" of them.
  worker_stop_words         more than ``max_stopword_fraction`` (15%) of the
                            worker's tag uses are stop words (canonical match).
  worker_rejected_hits      at least ``max_rejected_hit_fraction`` (1/2) of the
                            worker's HITs broke a HIT rule.
"""
from __future__ import annotations

import collections
import dataclasses
import importlib.resources
import os
from typing import Optional, Union

import numpy as np

from crbm_jax.data.canonical import canonical_tag, surface_form
from crbm_jax.data.mturk import Hits

# Words that describe nothing about a clip. The paper's list was "assembled by
# hand from HITs that were deemed to be spam" and not published; this one holds
# its three examples (nice, music, genre), generic praise, and the names of the
# categories from the task's instructions, which spammers echo. Words whose
# canonical (stemmed) form is that of a real tag are left out: "instrument"
# (= instrumental), "emotion" (= emotional), "love" (= lovely).
DEFAULT_STOP_WORDS = (
    "nice", "music", "genre", "genres", "good", "song", "songs", "great", "cool",
    "awesome", "ok", "okay", "fine", "bad", "like", "best", "tag", "tags",
    "sound", "style", "styles", "mood", "moods", "overall", "other", "none",
    "no", "yes", "na", "n/a", "unknown", "whatever", "something", "thing",
    "stuff", "styles/genres", "vocals/instruments", "moods/emotions",
)

HIT_RULES = ("hit_too_few_tags", "hit_long_tag", "hit_few_dictionary_tags")
WORKER_RULES = ("worker_small_vocabulary", "worker_frequent_tags",
                "worker_stop_words", "worker_rejected_hits")


@dataclasses.dataclass(frozen=True)
class FilterConfig:
  """Thresholds of the spam rules (defaults: the paper's, Section 2)."""
  min_tags_per_hit: int = 5
  max_tag_chars: int = 25
  min_dictionary_fraction: float = 0.5
  min_unique_tags_per_hit: float = 1.0
  frequent_tag_hit_fraction: float = 0.5
  max_frequent_tags: int = 4
  frequent_tag_min_hits: int = 3
  max_stopword_fraction: float = 0.15
  stop_words: tuple = DEFAULT_STOP_WORDS
  max_rejected_hit_fraction: float = 0.5


@dataclasses.dataclass(frozen=True)
class FilterResult:
  """Outcome of ``filter_hits``.

  Attributes:
    accepted: [H] bool.
    reasons: H tuples of the names of every rule that fired for that HIT
      (its own HIT rules, then its worker's rules); empty = accepted.
    worker_reasons: {worker: tuple of worker rules that fired}, every worker.
    canonical_tags: H lists of the HIT's distinct canonical tags (non-empty).
    hits: the judged HITs.
  """
  accepted: np.ndarray
  reasons: list
  worker_reasons: dict
  canonical_tags: list
  hits: Hits

  def summary(self, min_workers: int = 10) -> dict:
    """The numbers Section 2 reports, on canonical tags of accepted HITs."""
    acc = np.flatnonzero(self.accepted).tolist()
    triples = set()
    workers_of_tag = collections.defaultdict(set)
    for h in acc:
      w, c = str(self.hits.worker[h]), str(self.hits.clip[h])
      for t in self.canonical_tags[h]:
        triples.add((w, t, c))
        workers_of_tag[t].add(w)
    common = {t for t, ws in workers_of_tag.items() if len(ws) >= min_workers}
    rule_hits = collections.Counter(r for rs in self.reasons for r in rs)
    rule_workers = collections.Counter(r for rs in self.worker_reasons.values()
                                       for r in rs)
    return {
        "hits_total": self.hits.num_hits,
        "hits_accepted": len(acc),
        "hits_rejected": self.hits.num_hits - len(acc),
        "triples": len(triples),
        "workers_total": len(self.worker_reasons),
        "workers_accepted": len({str(self.hits.worker[h]) for h in acc}),
        "unique_tags": len(workers_of_tag),
        f"tags_used_by_{min_workers}_workers": len(common),
        f"triples_with_tags_used_by_{min_workers}_workers":
            sum(1 for (_, t, _) in triples if t in common),
        "hits_rejected_by_rule": {r: rule_hits.get(r, 0) for r in HIT_RULES + WORKER_RULES},
        "workers_rejected_by_rule": {r: rule_workers.get(r, 0) for r in WORKER_RULES},
    }


def load_dictionary(path: Optional[Union[str, os.PathLike]] = None) -> set:
  """The set of canonical dictionary tags, one per line ('#' lines skipped).

  Default: the shipped ``crbm_jax/data/resources/lastfm_tags.txt`` (canonical
  forms of the HetRec 2011 Last.fm tags used at least twice).
  """
  if path is None:
    text = (importlib.resources.files("crbm_jax.data") / "resources" /
            "lastfm_tags.txt").read_text(encoding="utf-8")
  else:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  return {line.strip() for line in text.splitlines()
          if line.strip() and not line.startswith("#")}


def _hit_rules(surfaces: list, canon: list, dictionary: set,
               config: FilterConfig) -> tuple:
  fired = []
  if len(surfaces) < config.min_tags_per_hit:
    fired.append("hit_too_few_tags")
  if any(len(s) > config.max_tag_chars for s in surfaces):
    fired.append("hit_long_tag")
  in_dict = sum(1 for c in canon if c and c in dictionary)
  if not surfaces or in_dict < config.min_dictionary_fraction * len(surfaces):
    fired.append("hit_few_dictionary_tags")
  return tuple(fired)


def filter_hits(hits: Hits, dictionary: set,
                config: FilterConfig = FilterConfig()) -> FilterResult:
  """Applies every HIT and worker rule (see the module docstring).

  Args:
    hits: [H] HITs from ``load_mturk_batch``.
    dictionary: canonical forms of known tags (``load_dictionary()``).
    config: the thresholds.
  Returns:
    FilterResult; a HIT is accepted when no rule fired for it.
  """
  stop = {canonical_tag(w) for w in config.stop_words} - {""}
  hit_fired, canon_tags, uses = [], [], []
  for tags in hits.tags:
    surfaces = list(dict.fromkeys(surface_form(t) for t in tags if t.strip()))
    canon = [canonical_tag(s) for s in surfaces]
    hit_fired.append(_hit_rules(surfaces, canon, dictionary, config))
    canon_tags.append(list(dict.fromkeys(c for c in canon if c)))
    uses.append([c for c in canon if c])
  by_worker = collections.defaultdict(list)
  for h, w in enumerate(hits.worker.tolist()):
    by_worker[w].append(h)
  worker_reasons = {}
  for w, hs in by_worker.items():
    n = len(hs)
    fired = []
    vocabulary = {t for h in hs for t in canon_tags[h]}
    if len(vocabulary) < config.min_unique_tags_per_hit * n:
      fired.append("worker_small_vocabulary")
    if n >= config.frequent_tag_min_hits:
      hits_per_tag = collections.Counter(t for h in hs for t in canon_tags[h])
      frequent = sum(1 for c in hits_per_tag.values()
                     if c > config.frequent_tag_hit_fraction * n)
      if frequent >= config.max_frequent_tags:
        fired.append("worker_frequent_tags")
    all_uses = [t for h in hs for t in uses[h]]
    if all_uses and (sum(t in stop for t in all_uses) >
                     config.max_stopword_fraction * len(all_uses)):
      fired.append("worker_stop_words")
    if sum(1 for h in hs if hit_fired[h]) >= config.max_rejected_hit_fraction * n:
      fired.append("worker_rejected_hits")
    worker_reasons[w] = tuple(fired)
  reasons = [hit_fired[h] + worker_reasons[w]
             for h, w in enumerate(hits.worker.tolist())]
  accepted = np.array([not r for r in reasons], dtype=bool)
  return FilterResult(accepted=accepted, reasons=reasons,
                      worker_reasons=worker_reasons, canonical_tags=canon_tags,
                      hits=hits)
