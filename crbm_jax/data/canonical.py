"""Canonical tag forms (Section 2 of the paper: "pre-processed the data by
transforming tags into a canonical form").

``canonical_tag`` applies, in order:
  0. Unicode NFKC normalisation (``café`` composed or decomposed is one tag; full-width
     letters and ligatures become plain ones); camelCase is split into words at each
     lower-to-upper case change (``femaleVocals`` -> ``female Vocals``).
  1. lower case; ``&`` and ``+`` become the word "and"; ``'n'`` / ``'n`` /
     ``n'`` (as in rock 'n' roll) become the word "n".
  2. decades spelled one way: ``80's``, ``'80s``, ``80s``, ``1980s``,
     ``1980's``, ``eighties`` -> ``80s`` (20s..90s; ``2000s``/``'00s``/``00s``
     -> ``2000s``; ``2010s``/``10s`` for 2010 -> ``2010s`` only when written
     with the century).
  3. punctuation: apostrophes are deleted, every other non-alphanumeric
     character becomes a space; white space is collapsed.
  4. the word "n" becomes "and".
  5. a leading "sounds like", "sound like" or "like" is removed, and trailing
     "music", "sound", "sounds", "feel" are removed repeatedly, but never when
     that would leave nothing ("music" stays "music").
  6. every word is stemmed with the Snowball English stemmer (drums, drum,
     drumming -> drum); decade tokens are left as they are.
The result may be empty (a tag of punctuation only); callers drop such tags.
snake_case needs no rule of its own: ``_`` is punctuation (step 3).

Closed compounds (``hiphop`` / ``hip hop``, ``rnb`` / ``r&b``, ``lofi`` / ``lo-fi``) are
merged by ``merge_compounds``, from the data rather than from a word list: two canonical
tags of one vocabulary merge when they are equal after deleting spaces, with the word
"and" read as "n" (``r and b`` and ``rnb`` both give ``rnb``). The merged tag is the
spelling used on the most rows (ties: the one with more words, then the alphabetically
first). ``canonicalize_table`` applies it to the table's own tags, so a spelling merges
only when both occur in the same table.
"""
from __future__ import annotations

import collections
import functools
import logging
import re
import unicodedata
from typing import Iterable, Optional

import numpy as np
import snowballstemmer

from crbm_jax.data.tagtable import TagTable

_STEMMER = snowballstemmer.stemmer("english")

_SPELLED_DECADES = {
    "twenties": "20s", "thirties": "30s", "forties": "40s", "fifties": "50s",
    "sixties": "60s", "seventies": "70s", "eighties": "80s", "nineties": "90s",
}
_APOSTROPHES = "'\u2019\u2018`\u00b4"
_AP = "['\u2019\u2018`\u00b4]"
_N_WORD = re.compile(rf"{_AP}n{_AP}?(?=\W|$)|(?<=\w){_AP}n(?=\W|$)|(?<=\s)n{_AP}(?=\w|\s)")
_DECADE_20TH = re.compile(rf"(?<![\w]){_AP}?(?:19)?([2-9])0{_AP}?s(?![\w])")
_DECADE_2000 = re.compile(rf"(?<![\w]){_AP}?(?:20)?00{_AP}?s(?![\w])")
_DECADE_2010 = re.compile(rf"(?<![\w])2010{_AP}?s(?![\w])")
_SPELLED = re.compile(r"\b(" + "|".join(_SPELLED_DECADES) + r")\b")
_NON_WORD = re.compile(r"[^\w\s]|_")
_DECADE_TOKEN = re.compile(r"^(?:[2-9]0s|2000s|2010s)$")
_LEADING = (("sounds", "like"), ("sound", "like"), ("like",))
_TRAILING = ("music", "sound", "sounds", "feel")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


@functools.lru_cache(maxsize=1 << 16)
def canonical_tag(text: str) -> str:
  """The canonical form of one raw tag (see the module docstring); may be ''."""
  s = _CAMEL.sub(" ", unicodedata.normalize("NFKC", text)).lower().strip()
  s = s.replace("&", " and ").replace("+", " and ")
  s = _N_WORD.sub(" n ", s)
  s = _DECADE_2010.sub(" 2010s ", s)
  s = _DECADE_2000.sub(" 2000s ", s)
  s = _DECADE_20TH.sub(lambda m: f" {m.group(1)}0s ", s)
  s = _SPELLED.sub(lambda m: _SPELLED_DECADES[m.group(1)], s)
  for a in _APOSTROPHES:
    s = s.replace(a, "")
  s = _NON_WORD.sub(" ", s)
  words = ["and" if w == "n" else w for w in s.split()]
  for lead in _LEADING:
    if len(words) > len(lead) and tuple(words[:len(lead)]) == lead:
      words = words[len(lead):]
      break
  while len(words) > 1 and words[-1] in _TRAILING:
    words = words[:-1]
  words = [w if _DECADE_TOKEN.match(w) else _STEMMER.stemWord(w) for w in words]
  return " ".join(words)


def surface_form(text: str) -> str:
  """A raw tag as shown to people: NFKC, lower case, stripped, spaces collapsed."""
  return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def most_common_surface(raw_tags: Iterable[str],
                        weights: Optional[Iterable[int]] = None) -> dict:
  """Maps each non-empty canonical tag to its most common surface form.

  Args:
    raw_tags: the raw tags, one per observation.
    weights: optional counts per raw tag (default 1 each).
  Returns:
    {canonical: surface}; ties go to the shorter, then alphabetically first
    surface form, so the result does not depend on input order.
  """
  raw_tags = list(raw_tags)
  weights = [1] * len(raw_tags) if weights is None else [int(w) for w in weights]
  counts = collections.defaultdict(collections.Counter)
  for raw, w in zip(raw_tags, weights):
    canon = canonical_tag(raw)
    if canon:
      counts[canon][surface_form(raw)] += w
  return {c: min(forms.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))[0]
          for c, forms in sorted(counts.items())}


def compound_key(canon: str) -> str:
  """A canonical tag with its spaces deleted and the word "and" read as "n"."""
  return "".join("n" if w == "and" else w for w in canon.split())


def merge_compounds(weights: dict) -> dict:
  """Closed-compound spellings of one vocabulary merged (see the module docstring).

  Args:
    weights: {canonical tag: how often it is used (e.g. rows)}.
  Returns:
    {canonical tag: merged tag} for every tag of ``weights`` (itself when unmerged).
  """
  groups = collections.defaultdict(list)
  for canon in weights:
    groups[compound_key(canon)].append(canon)
  out = {}
  for forms in groups.values():
    best = min(forms, key=lambda c: (-weights[c], -len(c.split()), c))
    out.update({c: best for c in forms})
  return out


def canonicalize_table(table: TagTable, stats: Optional[dict] = None):
  """Replaces every tag by its canonical form, merging rows that now coincide.

  Closed-compound spellings that both occur in the table are merged first
  (``merge_compounds``, weighted by rows).

  Rows with the same (clip, user, canonical tag) (or (clip, canonical tag) when
  the table has no user column) become one row: for user rows the count is the
  maximum (a user applies a tag once), for item rows the counts are summed.
  Other columns come from the first such row. Rows whose canonical form is
  empty are dropped.

  Args:
    table: a TagTable with raw tags.
    stats: if given, filled with ``dropped_rows`` and ``merged_rows``.
  Returns:
    (canonical table, {canonical: most common surface form}).
  """
  uniq, inverse = np.unique(table.tag, return_inverse=True)
  canon_uniq = [canonical_tag(str(t)) for t in uniq.tolist()]
  inverse = inverse.reshape(-1)
  rows_per = np.bincount(inverse, minlength=len(uniq)).tolist()
  weights = collections.Counter()
  for c, n in zip(canon_uniq, rows_per):
    if c:
      weights[c] += n
  merged = merge_compounds(dict(sorted(weights.items())))
  canon_uniq = [merged.get(c, c) for c in canon_uniq]
  canon = [canon_uniq[i] for i in inverse.tolist()]
  keep = np.array([k for k, c in enumerate(canon) if c], dtype=np.int64)
  dropped = table.num_rows - keep.size
  if dropped:
    logging.info("canonicalize_table: dropped %d rows whose tag has an empty "
                 "canonical form", dropped)
  surface_counts = collections.defaultdict(collections.Counter)
  tag_list, count_list = table.tag.tolist(), table.count.tolist()
  for k in keep.tolist():
    surface_counts[canon[k]][surface_form(tag_list[k])] += int(count_list[k])
  surface = {c: min(forms.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))[0]
             for c, forms in sorted(surface_counts.items())}
  has_user = table.user is not None
  first = {}
  counts = []
  rows = []
  users = table.user.tolist() if has_user else None
  clips = table.clip.tolist()
  canon_list = canon
  row_counts = table.count.tolist()
  for k in keep.tolist():
    key = (clips[k], users[k], canon_list[k]) if has_user else (clips[k], canon_list[k])
    j = first.get(key)
    if j is None:
      first[key] = len(rows)
      rows.append(k)
      counts.append(row_counts[k])
    elif has_user:
      counts[j] = max(counts[j], row_counts[k])
    else:
      counts[j] += row_counts[k]
  index = np.array(rows, dtype=np.int64)
  out = table.subset(index)
  out = TagTable(**{**{f: getattr(out, f) for f in out.columns()},
                    "tag": np.array([canon[k] for k in rows] or [""],
                                    dtype=str)[:len(rows)],
                    "count": np.array(counts, dtype=np.int64),
                    "source": table.source})
  if stats is not None:
    stats["dropped_rows"] = int(dropped)
    stats["merged_rows"] = int(keep.size - index.size)
  return out, surface
