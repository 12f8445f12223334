"""Canonical tag forms (Section 2) and canonicalising tag tables."""
import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crbm_jax.data.canonical import (canonical_tag, canonicalize_table, merge_compounds,
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


# -- issue 15 item 6: camelCase, snake_case, closed compounds; issue 18 item 13: NFKC --

@pytest.mark.parametrize("joined, spaced", [
    ("femaleVocals", "female vocals"), ("noVocals", "no vocals"),
    ("maleVocal", "male vocal"), ("HipHop", "hip hop"), ("female_vocals", "female vocals"),
    ("no_vocals", "no vocals"), ("FEMALE_VOCALS", "female vocals"),
])
def test_camel_and_snake_case_are_words(joined, spaced):
  assert canonical_tag(joined) == canonical_tag(spaced)


@pytest.mark.parametrize("text", ["ROCK", "Rock", "R&B", "Hip-Hop", "80S", "DJ Shadow"])
def test_upper_and_title_case_are_not_split(text):
  assert canonical_tag(text) == canonical_tag(text.lower())


@pytest.mark.parametrize("a, b", [("caf\u00e9", "cafe\u0301"), ("\uff52\uff4f\uff43\uff4b", "rock"),
                                  ("\ufb01ddle", "fiddle")])
def test_unicode_spellings_are_one_tag(a, b):
  assert canonical_tag(a) == canonical_tag(b)


def test_closed_compounds_merge_when_both_spellings_are_in_the_vocabulary():
  weights = {canonical_tag(t): w for t, w in [
      ("hip hop", 5), ("hiphop", 2), ("r&b", 1), ("rnb", 3), ("lo-fi", 2), ("lofi", 2),
      ("rock", 9)]}
  merged = merge_compounds(weights)
  assert merged[canonical_tag("hiphop")] == merged[canonical_tag("hip hop")] == "hip hop"
  assert merged[canonical_tag("r&b")] == merged[canonical_tag("rnb")] == "rnb"  # more used
  assert merged["lofi"] == merged["lo fi"] == "lo fi"  # a tie: the one with more words
  assert merged["rock"] == "rock"
  assert merge_compounds({"hiphop": 1}) == {"hiphop": "hiphop"}  # alone: unchanged


def test_canonicalize_table_merges_compounds_only_from_its_own_tags():
  table = TagTable(clip=np.array(["a", "b", "c", "d"]),
                   tag=np.array(["Hip Hop", "hiphop", "hip-hop", "lofi"]),
                   count=np.ones(4, dtype=np.int64))
  out, surface = canonicalize_table(table)
  assert out.tag.tolist() == ["hip hop", "hip hop", "hip hop", "lofi"]
  assert surface["hip hop"] == "hiphop"  # one use each: the shortest surface form
  assert surface["lofi"] == "lofi"
  alone = TagTable(clip=np.array(["a"]), tag=np.array(["hiphop"]),
                   count=np.ones(1, dtype=np.int64))
  assert canonicalize_table(alone)[0].tag.tolist() == ["hiphop"]


def test_canonicalize_table_result_does_not_depend_on_row_order():
  tags = ["rnb", "R&B", "rnb", "lo-fi", "lofi", "femaleVocals", "female vocals"]
  clips = [f"c{k}" for k in range(len(tags))]
  forward = TagTable(clip=np.array(clips), tag=np.array(tags),
                     count=np.ones(len(tags), dtype=np.int64))
  backward = forward.subset(np.arange(len(tags))[::-1])
  a, sa = canonicalize_table(forward)
  b, sb = canonicalize_table(backward)
  assert dict(zip(a.clip.tolist(), a.tag.tolist())) == dict(zip(b.clip.tolist(),
                                                                b.tag.tolist()))
  assert sa == sb
