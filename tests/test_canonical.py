"""Canonical tag forms (Section 2) and canonicalising tag tables."""
import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crbm_jax.data.canonical import (canonical_tag, canonicalize_table,
                                     most_common_surface)
from crbm_jax.data.tagtable import TagTable


@pytest.mark.parametrize("variants, expected", [
    (["80's", "1980s", "eighties", "80s", "'80s", "1980's", "80’s"], "80s"),
    (["90s", "1990s", "nineties", "'90s"], "90s"),
    (["2000s", "'00s", "00s"], "2000s"),
], ids=["80s", "90s", "2000s"])
def test_decades_are_spelled_one_way(variants, expected):
  assert {canonical_tag(v) for v in variants} == {expected}


def test_a_year_is_not_a_decade():
  assert canonical_tag("1980") == "1980"
  assert canonical_tag("1984s") != "80s"


@pytest.mark.parametrize("text", ["rock & roll", "rock+roll", "rock n roll",
                                  "rock 'n' roll", "rock'n'roll", "Rock And Roll"])
def test_and_is_spelled_one_way(text):
  assert canonical_tag(text) == "rock and roll"


def test_n_inside_a_word_is_not_and():
  assert canonical_tag("indie n") == "indi and"
  assert canonical_tag("nu metal") == "nu metal"


@pytest.mark.parametrize("text", ["sounds like radiohead", "sound like Radiohead",
                                  "like radiohead", "radiohead"])
def test_leading_sounds_like_is_removed(text):
  assert canonical_tag(text) == "radiohead"


@pytest.mark.parametrize("text", ["dance music", "dance sound", "dance sounds",
                                  "dance feel", "dance music sound", "dance"])
def test_trailing_music_sound_feel_are_removed(text):
  assert canonical_tag(text) == canonical_tag("dance")


@pytest.mark.parametrize("text, expected", [
    ("music", "music"), ("feel", "feel"), ("sounds", "sound"), ("like", "like"),
    ("feel good", "feel good"),
])
def test_removal_never_leaves_nothing_and_only_touches_ends(text, expected):
  assert canonical_tag(text) == expected


@pytest.mark.parametrize("text", ["Hip-Hop!", "hip hop", "  HIP   hop ", "hip/hop",
                                  "hip_hop", "hip...hop"])
def test_punctuation_case_and_whitespace_are_normalised(text):
  assert canonical_tag(text) == "hip hop"


def test_apostrophes_are_deleted_not_spaced():
  assert canonical_tag("don't stop") == canonical_tag("dont stop")


def test_words_are_stemmed():
  assert canonical_tag("drums") == canonical_tag("drum") == canonical_tag("drumming")
  assert canonical_tag("male vocals") == canonical_tag("male vocal") == "male vocal"


def test_punctuation_only_tag_is_empty():
  assert canonical_tag("!!!") == "" and canonical_tag("  ") == ""


@given(st.text(string.printable + "éü’&+", max_size=30))
def test_canonical_form_is_lower_case_words_separated_by_single_spaces(text):
  c = canonical_tag(text)
  assert c == c.strip() and "  " not in c and c == c.lower()
  assert all(ch.isalnum() or ch == " " for ch in c)


def test_most_common_surface_is_order_independent_with_deterministic_ties():
  raw = ["Drums", "drums", "drum", "drumming", "DRUM", "Rock"]
  surface = most_common_surface(raw)
  assert surface == {"drum": "drum", "rock": "rock"}  # 'drum' 2, 'drums' 2: shorter
  assert most_common_surface(raw[::-1]) == surface
  assert most_common_surface(["drums", "drum"], weights=[3, 1]) == {"drum": "drums"}
  assert most_common_surface(["!!", "?"]) == {}


def test_canonicalize_table_merges_user_rows_and_drops_empty_tags():
  table = TagTable(clip=np.array(["c1", "c1", "c1", "c2", "c1"]),
                   user=np.array(["u1", "u1", "u2", "u1", "u1"]),
                   tag=np.array(["Drums", "drumming", "drums", "!!!", "rock"]),
                   count=np.ones(5, dtype=np.int64),
                   track=np.array(["t1", "t1", "t1", "t2", "t1"]))
  stats = {}
  out, surface = canonicalize_table(table, stats=stats)
  assert list(zip(out.clip.tolist(), out.user.tolist(), out.tag.tolist())) == [
      ("c1", "u1", "drum"), ("c1", "u2", "drum"), ("c1", "u1", "rock")]
  assert out.count.tolist() == [1, 1, 1]  # a user applies a tag once
  assert out.track.tolist() == ["t1", "t1", "t1"]
  assert stats == {"dropped_rows": 1, "merged_rows": 1}
  assert surface == {"drum": "drums", "rock": "rock"}


def test_canonicalize_table_sums_counts_of_item_rows():
  table = TagTable(clip=np.array(["a", "a", "b"]), tag=np.array(["80's", "1980s", "80s"]),
                   count=np.array([2, 3, 4], dtype=np.int64))
  out, surface = canonicalize_table(table)
  assert out.clip.tolist() == ["a", "b"] and out.tag.tolist() == ["80s", "80s"]
  assert out.count.tolist() == [5, 4]
  assert surface == {"80s": "80s"}  # 80s: 4 uses, 1980s: 3, 80's: 2
