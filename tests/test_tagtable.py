"""Tag-table files: reading, validation errors, and exact write/read round trips."""
import math
import os
import pathlib
import unicodedata

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable, load_tag_table, write_tag_table

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


def test_data_error_message_names_path_line_and_reason():
  assert str(DataError("blank tag", "a/b.tsv", 7)) == "a/b.tsv:7: blank tag"
  assert str(DataError("blank tag", "a/b.tsv")) == "a/b.tsv: blank tag"
  assert str(DataError("blank tag")) == "blank tag"
  assert isinstance(DataError("x"), ValueError)


def test_load_tsv_parses_columns_defaults_and_blanks():
  t = load_tag_table(FIXTURES / "tags_good.tsv")
  assert t.columns() == ("clip", "tag", "count", "user", "track", "start",
                         "duration", "track_duration")
  assert t.clip.tolist() == ["c1", "c1", "c1", "c2", "c3"]
  assert t.tag.tolist() == ["rock", "drums", "rock", "café music", "jazz"]
  assert t.count.tolist() == [1, 1, 2, 1, 3]  # blank count -> 1
  assert t.count.dtype == np.int64
  assert t.start[3] == 47.625
  assert math.isnan(t.start[4]) and math.isnan(t.track_duration[4])
  assert t.artist is None and t.album is None
  assert t.source.endswith("tags_good.tsv")


def test_load_csv_accepts_item_alias_quotes_and_ignores_unknown_columns():
  t = load_tag_table(FIXTURES / "tags_good.csv")
  assert t.columns() == ("clip", "tag", "count", "artist")
  assert t.clip.tolist() == ["a1", "a1", "a2"]
  assert t.tag.tolist() == ["rock, loud", "pop", 'say "hi"']
  assert t.artist.tolist() == ["Air", "Air", "Björk"]
  assert t.count.tolist() == [4, 1, 2]


@pytest.mark.parametrize("name, line, reason", [
    ("tags_missing_column.tsv", 1, "missing required column"),
    ("tags_bad_fields.tsv", 3, "expected 3 fields"),
    ("tags_blank_tag.tsv", 3, "blank tag"),
    ("tags_bad_utf8.tsv", 3, "invalid UTF-8"),
    ("tags_duplicate.tsv", 4, "duplicate row"),
    ("tags_two_tracks.tsv", 3, "is in track 't2' here but in track 't1'"),
    ("tags_bad_count.tsv", 3, "count 0 is less than 1"),
])
def test_bad_tag_table_gives_data_error_with_file_and_line(name, line, reason):
  path = FIXTURES / name
  with pytest.raises(DataError) as info:
    load_tag_table(path)
  assert info.value.line == line
  assert str(info.value).startswith(f"{path}:{line}: ")
  assert reason in str(info.value)


def test_non_integer_count_and_bad_number_are_reported(tmp_path):
  p = tmp_path / "t.tsv"
  p.write_text("clip\ttag\tcount\nc\tt\t1.5\n")
  with pytest.raises(DataError, match=r"t.tsv:2: count '1.5' is not an integer"):
    load_tag_table(p)
  p.write_text("clip\ttag\tstart\nc\tt\tsoon\n")
  with pytest.raises(DataError, match=r"t.tsv:2: start 'soon' is not a number"):
    load_tag_table(p)


def test_malformed_csv_quoting_and_duplicate_header_are_reported(tmp_path):
  p = tmp_path / "t.csv"
  p.write_text('clip,tag\nc1,rock\nc2,"ro"ck\n')
  with pytest.raises(DataError, match=r"t.csv:3: malformed CSV"):
    load_tag_table(p)
  p.write_text("item,clip,tag\nc,c,t\n")
  with pytest.raises(DataError, match=r"t.csv:1: column 'clip' appears twice"):
    load_tag_table(p)


def test_header_only_file_gives_empty_table(tmp_path):
  p = tmp_path / "t.csv"
  p.write_text("clip,tag,user\n")
  t = load_tag_table(p)
  assert t.num_rows == 0 and t.user is not None and t.user.shape == (0,)


def _tables_equal(a: TagTable, b: TagTable) -> bool:
  if a.columns() != b.columns():
    return False
  for c in a.columns():
    x, y = getattr(a, c), getattr(b, c)
    if x.dtype.kind == "f":
      if not np.array_equal(x, y, equal_nan=True):
        return False
    elif x.tolist() != y.tolist():
      return False
  return True


def _example_table() -> TagTable:
  return TagTable(
      clip=np.array(["c1", "c1", "c2"]), tag=np.array(["rock", "80's", "café"]),
      count=np.array([1, 7, 2], dtype=np.int64), user=np.array(["u1", "u1", "u2"]),
      track=np.array(["t", "t", "t"]), start=np.array([0.1, 0.1, 1 / 3]),
      duration=np.array([10.0, 10.0, np.nan]),
      track_duration=np.array([np.nan, np.nan, 1e-300]))


@pytest.mark.parametrize("name", ["t.tsv", "t.csv", "t.tsv.gz", "t.txt"])
def test_write_then_load_round_trips_exactly(tmp_path, name):
  table = _example_table()
  write_tag_table(table, tmp_path / name)
  assert _tables_equal(load_tag_table(tmp_path / name), table)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                min_size=1, max_size=8).filter(lambda s: s == s.strip() and s)


_tag_text = _text.filter(lambda s: s == unicodedata.normalize("NFKC", s).strip())


@given(rows=st.lists(st.tuples(_text, _text, _tag_text), min_size=0, max_size=12,
                     unique=True),
       counts=st.lists(st.integers(1, 10**12), min_size=12, max_size=12),
       starts=st.lists(st.floats(allow_infinity=False), min_size=12, max_size=12))
def test_csv_round_trip_property(tmp_path_factory, rows, counts, starts):
  n = len(rows)
  table = TagTable(
      clip=np.array([r[0] for r in rows] or [""], dtype=str)[:n],
      user=np.array([r[1] for r in rows] or [""], dtype=str)[:n],
      tag=np.array([r[2] for r in rows] or [""], dtype=str)[:n],
      count=np.array(counts[:n], dtype=np.int64),
      start=np.array(starts[:n], dtype=np.float64))
  path = tmp_path_factory.mktemp("rt") / "t.csv"
  write_tag_table(table, path)
  assert _tables_equal(load_tag_table(path), table)


def test_write_is_atomic_and_refuses_values_tsv_cannot_hold(tmp_path):
  path = tmp_path / "t.tsv"
  write_tag_table(_example_table(), path)
  before = path.read_bytes()
  bad = TagTable(clip=np.array(["c"]), tag=np.array(["a\tb"]),
                 count=np.array([1], dtype=np.int64))
  with pytest.raises(DataError, match="tab or line break"):
    write_tag_table(bad, path)
  assert path.read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ["t.tsv"]  # no temporary left behind
  umask = os.umask(0)
  os.umask(umask)
  assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
  write_tag_table(bad, tmp_path / "t.csv")  # CSV can hold it
  assert load_tag_table(tmp_path / "t.csv").tag.tolist() == ["a\tb"]


def test_counts_up_to_the_maximum_load_and_larger_ones_are_refused(tmp_path):
  from crbm_jax.data.tagtable import MAX_COUNT  # pylint: disable=import-outside-toplevel
  path = tmp_path / "t.tsv"
  path.write_text(f"clip\ttag\tcount\nc1\trock\t{MAX_COUNT}\nc2\trock\t{MAX_COUNT + 1}\n")
  with pytest.raises(DataError, match=rf"{path}:3: count {MAX_COUNT + 1} is too large"):
    load_tag_table(path)
  path.write_text(f"clip\ttag\tcount\nc1\trock\t{MAX_COUNT}\n")
  assert load_tag_table(path).count.tolist() == [MAX_COUNT]


def test_tags_are_nfkc_normalised_and_other_columns_kept_as_written(tmp_path):
  path = tmp_path / "t.tsv"
  path.write_text("clip\tuser\ttag\ncafe\u0301\tu\u0301\tcafe\u0301\n", encoding="utf-8")
  table = load_tag_table(path)
  assert table.tag.tolist() == ["caf\u00e9"]
  assert table.clip.tolist() == ["cafe\u0301"] and table.user.tolist() == ["u\u0301"]


def test_the_same_tag_in_two_unicode_spellings_is_a_duplicate_row(tmp_path):
  path = tmp_path / "t.tsv"
  path.write_text("clip\ttag\nc1\tcaf\u00e9\nc1\tcafe\u0301\n", encoding="utf-8")
  with pytest.raises(DataError, match="two Unicode spellings"):
    load_tag_table(path)


def test_zero_and_blank_durations_are_accepted(tmp_path):
  path = tmp_path / "t.tsv"
  path.write_text("clip\ttag\tduration\ttrack_duration\nc1\trock\t0\t\nc2\tjazz\t\t12.5\n")
  table = load_tag_table(path)
  assert table.duration[0] == 0 and math.isnan(table.duration[1])
  assert math.isnan(table.track_duration[0]) and table.track_duration[1] == 12.5


def _loop_errors(rows):
  """The duplicate and track checks as the per-row loop they replaced (reference)."""
  seen, track_of = {}, {}
  for k, (clip, user, tag, _) in enumerate(rows):
    if (clip, user, tag) in seen:
      return "duplicate", k + 2, seen[(clip, user, tag)] + 2
    seen[(clip, user, tag)] = k
  for k, (clip, _, _, track) in enumerate(rows):
    first = track_of.setdefault(clip, k)
    if rows[first][3] != track:
      return "track", k + 2, first + 2
  return None


@pytest.mark.parametrize("seed", range(12))
def test_the_vectorised_checks_find_the_row_a_loop_finds(tmp_path, seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(2, 60))
  rows = [(f"c{rng.integers(0, 6)}", f"u{rng.integers(0, 3)}", f"t{rng.integers(0, 4)}",
           "") for _ in range(n)]
  rows = [(c, u, t, f"k{c[1:]}" if rng.random() < 0.97 else "x") for c, u, t, _ in rows]
  if seed % 3 == 0:  # distinct keys: only the track check can fail
    rows = list(dict.fromkeys(rows))
    rows = list({r[:3]: r for r in rows}.values())
  path = tmp_path / "t.tsv"
  path.write_text("clip\tuser\ttag\ttrack\n" + "".join("\t".join(r) + "\n" for r in rows))
  expected = _loop_errors(rows)
  if expected is None:
    assert load_tag_table(path).num_rows == len(rows)
    return
  with pytest.raises(DataError) as info:
    load_tag_table(path)
  kind, line, first = expected
  assert info.value.line == line
  message = str(info.value)
  if kind == "duplicate":
    clip, user, tag, _ = rows[line - 2]
    assert f"duplicate row (clip, user, tag) = {(clip, user, tag)!r}, first on line {first} (" \
        in message
  else:
    assert f"clip {rows[line - 2][0]!r} is in track {rows[line - 2][3]!r} here but in track " \
        f"{rows[first - 2][3]!r} on line {first}" in message
