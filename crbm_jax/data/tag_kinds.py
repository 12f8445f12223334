"""Kinds of the simulated study's tags: whole-track or clip-level, audible or not.

The classification is a committed list, ``resources/tag_kinds.tsv`` (surface
form, kind, and for clip-level kinds a base rate), with the rule used to write
it in the file's header. Every tag of the simulator's vocabulary must be listed
(``load_tag_kinds`` raises otherwise), so a reviewer checks the classification by
reading that one file.

Kinds (``KINDS``):
  whole-track (constant within a track): genre, era, locale, artist, opinion
  clip-level (drift along the track):    instrument, vocals, mood, tempo, section
  audible (influence the simulated audio features): genre, instrument, vocals,
  mood, tempo. Era, locale, artist-like and opinion tags are not audible, and
  neither are song sections (the issue's list of audible kinds leaves them out).
"""
from __future__ import annotations

import importlib.resources
from typing import NamedTuple

from crbm_jax.data.errors import DataError

# kind -> (scope, audible)
KINDS = {
    "genre": ("track", True),
    "era": ("track", False),
    "locale": ("track", False),
    "artist": ("track", False),
    "opinion": ("track", False),
    "instrument": ("clip", True),
    "vocals": ("clip", True),
    "mood": ("clip", True),
    "tempo": ("clip", True),
    "section": ("clip", False),
}
TRACK_KINDS = tuple(k for k, (s, _) in KINDS.items() if s == "track")
CLIP_KINDS = tuple(k for k, (s, _) in KINDS.items() if s == "clip")
AUDIBLE_KINDS = tuple(k for k, (_, a) in KINDS.items() if a)

# Where in the track (fraction of its length) each section tag is most likely; the
# simulator adds a bump of the clip-level logit around this position.
SECTION_CENTRES = {"intro": 0.05, "verse": 0.3, "chorus": 0.5, "guitar solo": 0.65,
                   "bridge": 0.7, "outro": 0.95}


class TagKind(NamedTuple):
  kind: str
  base_rate: float  # prior rate per clip (clip-level kinds); nan for whole-track kinds
  line: int


def _path():
  return importlib.resources.files("crbm_jax.data") / "resources" / "tag_kinds.tsv"


def _kind_rows(text: str, source: str):
  """(line number, tag, kind, fields) of each line that is not blank or a comment;
  DataError naming the file and line of a kind not in ``KINDS``."""
  for line_no, line in enumerate(text.splitlines(), 1):
    if not line.strip() or line.startswith("#"):
      continue
    fields = line.split("\t")
    tag, kind = fields[0].strip(), fields[1].strip() if len(fields) > 1 else ""
    if kind not in KINDS:
      raise DataError(f"tag {tag!r} has unknown kind {kind!r}; expected one of "
                      f"{', '.join(KINDS)}", source, line_no)
    yield line_no, tag, kind, fields


def load_tag_kinds(text: str | None = None, source: str = "tag_kinds.tsv") -> dict:
  """{surface form: TagKind} from the committed list (or from ``text``).

  Raises:
    DataError naming the file and line of an unknown kind, a missing or bad base
    rate, or a tag listed twice.
  """
  if text is None:
    text = _path().read_text(encoding="utf-8")
  out = {}
  for line_no, tag, kind, fields in _kind_rows(text, source):
    if tag in out:
      raise DataError(f"tag {tag!r} listed twice, first on line {out[tag].line}",
                      source, line_no)
    rate = float("nan")
    if KINDS[kind][0] == "clip":
      try:
        rate = float(fields[2])
      except (IndexError, ValueError):
        raise DataError(f"clip-level tag {tag!r} needs a base rate in (0, 1) in the "
                        "third column", source, line_no) from None
      if not 0.0 < rate < 1.0:
        raise DataError(f"base rate {rate} of {tag!r} is not in (0, 1)", source, line_no)
    out[tag] = TagKind(kind, rate, line_no)
  return out


def kinds_of(surfaces, kinds: dict | None = None) -> list:
  """The TagKind of each surface form; DataError naming the first unlisted tag."""
  kinds = load_tag_kinds() if kinds is None else kinds
  missing = [str(s) for s in surfaces if str(s) not in kinds]
  if missing:
    raise DataError(f"{len(missing)} simulator tag(s) have no kind, first {missing[0]!r}: "
                    "add them to crbm_jax/data/resources/tag_kinds.tsv", "tag_kinds.tsv")
  return [kinds[str(s)] for s in surfaces]


def load_majorminer_kinds(text: str | None = None,
                          source: str = "majorminer_tag_kinds.tsv") -> dict:
  """{MajorMiner tag: kind} from ``resources/majorminer_tag_kinds.tsv`` (or ``text``): tag
  <TAB> kind per line, kinds of ``KINDS``. Raises DataError naming the file and line of an
  unknown kind, a line without a kind, or a tag listed twice."""
  if text is None:
    text = (importlib.resources.files("crbm_jax.data") / "resources" / source).read_text(
        encoding="utf-8")
  out, first = {}, {}
  for line_no, tag, kind, _ in _kind_rows(text, source):
    if tag in out:
      raise DataError(f"tag {tag!r} listed twice, first on line {first[tag]}", source,
                      line_no)
    out[tag], first[tag] = kind, line_no
  return out

