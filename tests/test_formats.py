"""Public tag-data formats (issue 17): fixtures written from each format's documentation."""
import json
import math
import os
import pathlib
import sqlite3
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crbm_jax.data import formats, jams_io, magnatagatune
from crbm_jax.data.errors import DataError
from crbm_jax.data.tagtable import TagTable, load_tag_table, write_tag_table

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
F = FIXTURES / "formats"
MTAT = F / "mtat"

# The MagnaTagATune fixture, as written: clip -> (album/track_number, start, end, tags).
MTAT_CLIPS = {
    "2": ("Solo Cantatas/1", 30, 59, {"no vocals", "classical"}),
    "6": ("Solo Cantatas/1", 88, 117, {"no vocals", "guitar", "classical"}),
    "10": ("Solo Cantatas/1", 146, 175, {"classical"}),
    "11": ("Solo Cantatas/2", 0, 29, {"singer", "classical", "male vocal"}),
    "12": ("Solo Cantatas/2", 29, 58, set()),
    "20": ("Loud Demo/1", 0, 29, {"singer", "guitar", "male vocal", "rock"}),
    "21": ("Loud Demo/1", 58, 87, {"singer", "guitar", "rock"}),
    "30": ("Loud Demo/3", 0, 29, {"no vocals", "guitar", "rock"}),
}


def rows_of(table: TagTable) -> list:
  """Sorted rows of every column present (NaN as None, so rows compare equal)."""
  cols = table.columns()
  values = [[None if isinstance(v, float) and math.isnan(v) else v
             for v in getattr(table, c).tolist()] for c in cols]
  return sorted(zip(*values), key=repr)


def tags_by_clip(table):
  out = {}
  for c, t in zip(table.clip.tolist(), table.tag.tolist()):
    out.setdefault(c, set()).add(t)
  return out


def one_line_error(excinfo, *parts):
  message = str(excinfo.value)
  assert "\n" not in message
  for part in parts:
    assert str(part) in message, (part, message)
  return message


# -- MagnaTagATune -------------------------------------------------------------------------

def test_mtat_join_gives_every_column():
  table, skipped = magnatagatune.read_magnatagatune(MTAT / "annotations_final.csv",
                                                    MTAT / "clip_info_final.csv")
  assert table.columns() == ("clip", "tag", "count", "track", "artist", "album", "start",
                             "duration")
  assert tags_by_clip(table) == {c: v[3] for c, v in MTAT_CLIPS.items() if v[3]}
  assert skipped == {"clips with no tag": 1}
  for c, track, artist, album, start, dur in zip(
      *(getattr(table, n).tolist() for n in ("clip", "track", "artist", "album", "start",
                                              "duration"))):
    want = MTAT_CLIPS[c]
    assert (track, start, dur) == (want[0], want[1], want[2] - want[1])
    assert album == track.split("/")[0]
    assert artist == ("Example Ensemble" if album == "Solo Cantatas" else "The Placeholders")
  assert (table.count == 1).all() and not table.has("user")
  assert not table.has("track_duration")  # unknown: Figure 1 ranks start times


def test_mtat_top_tags_ties_by_column_order_and_tag_lists():
  # clip counts: guitar 4, classical 4, no vocals 3, singer 3, rock 3, male vocal 2
  t = formats.load_any(MTAT, top_tags=3)
  assert set(t.tag.tolist()) == {"guitar", "classical", "no vocals"}
  t = formats.load_any(MTAT, tags=[str(MTAT / "top_tags.txt")])  # noVocals, maleVocal
  assert set(t.tag.tolist()) == {"no vocals", "guitar", "male vocal"}
  with pytest.raises(DataError) as e:
    formats.load_any(MTAT, tags=["banjo"])
  one_line_error(e, "annotations_final.csv", "banjo")


def test_mtat_split_lists(tmp_path):
  t, info = formats.read_any(MTAT, split=[str(MTAT / "split_train.txt"),
                                          str(MTAT / "split_test.txt")])
  assert set(t.clip.tolist()) == {"2", "6", "11", "20", "21", "30"}
  assert info.skipped["clips not in the split lists"] == 2
  mp3 = [line.split("\t")[-1].strip('"') for line in
         (MTAT / "annotations_final.csv").read_text().splitlines()[1:]]
  npy = tmp_path / "valid.npy"
  np.save(npy, np.array([f"3\t{mp3[2]}", "99\tnot/a/clip.mp3"]))
  t, info = formats.read_any(MTAT, split=[str(npy)])
  assert set(t.clip.tolist()) == {"10"}
  assert info.skipped["split entries matching no clip"] == 1
  pickled = tmp_path / "train_list_pub.cP"
  pickled.write_bytes(b"\x80\x04.")
  with pytest.raises(DataError) as e:
    formats.load_any(MTAT, split=[str(pickled)])
  one_line_error(e, "train_list_pub.cP", "pickled")


def _mtat_copy(tmp_path, edit_annotations=None, edit_info=None):
  folder = tmp_path / "mtat"
  folder.mkdir()
  for name, edit in (("annotations_final.csv", edit_annotations),
                     ("clip_info_final.csv", edit_info)):
    lines = (MTAT / name).read_text().splitlines()
    if edit is not None:
      lines = edit(lines)
    (folder / name).write_text("\n".join(lines) + "\n")
  return folder


@pytest.mark.parametrize("case, edit, line, words", [
    ("value 2", lambda ls: ls[:3] + [ls[3].replace('"0"', '"2"', 1)] + ls[4:], 4,
     ["'no vocals'", "'2'", "0 or 1"]),
    ("value blank", lambda ls: ls[:2] + [ls[2].replace('"1"', '""', 1)] + ls[3:], 3,
     ["'no vocals'", "0 or 1"]),
    ("value yes", lambda ls: ls[:5] + [ls[5].replace('"0"', '"yes"', 1)] + ls[6:], 6,
     ["'yes'"]),
    ("no clip_id", lambda ls: [ls[0].replace('"clip_id"', '"id"')] + ls[1:], 1,
     ["missing column 'clip_id'"]),
    ("short row", lambda ls: ls[:7] + [ls[7].rsplit("\t", 1)[0]] + ls[8:], 8,
     ["expected 8", "found 7"]),
    ("duplicate clip", lambda ls: ls + [ls[1]], 10, ["'2' appears twice", "line 2"]),
])
def test_mtat_annotation_errors_name_file_line_reason(tmp_path, case, edit, line, words):
  folder = _mtat_copy(tmp_path, edit_annotations=edit)
  with pytest.raises(DataError) as e:
    formats.load_any(folder)
  one_line_error(e, f"annotations_final.csv:{line}:", *words)


@pytest.mark.parametrize("case, edit, line, words", [
    ("no segmentEnd", lambda ls: [ls[0].replace("segmentEnd", "segEnd")] + ls[1:], 1,
     ["segmentEnd"]),
    ("bad start", lambda ls: ls[:4] + [ls[4].replace('"0"', '"zero"', 1)] + ls[5:], 5,
     ["segmentStart 'zero' is not a number"]),
    ("end before start", lambda ls: ls[:1] + [ls[1].replace('"59"', '"10"')] + ls[2:], 2,
     ["do not make a segment"]),
])
def test_mtat_clip_info_errors(tmp_path, case, edit, line, words):
  folder = _mtat_copy(tmp_path, edit_info=edit)
  with pytest.raises(DataError) as e:
    formats.load_any(folder)
  one_line_error(e, f"clip_info_final.csv:{line}:", *words)


def test_mtat_clip_without_info_is_skipped_and_annotations_alone_read(tmp_path):
  folder = _mtat_copy(tmp_path, edit_info=lambda ls: [l for l in ls if not l.startswith('"6"')])
  t, info = formats.read_any(folder)
  assert "6" not in set(t.clip.tolist())
  assert info.skipped["clips with no clip_info row"] == 1
  t = formats.load_any([str(MTAT / "annotations_final.csv")])
  assert t.columns() == ("clip", "tag", "count")
  assert tags_by_clip(t) == {c: v[3] for c, v in MTAT_CLIPS.items() if v[3]}


def test_mtat_same_album_name_of_two_artists_gives_two_tracks(tmp_path):
  folder = _mtat_copy(tmp_path, edit_info=lambda ls: [
      l.replace("The Placeholders", "Other Band") if l.startswith('"21"') else l
      for l in ls])
  t = formats.load_any(folder)
  track = dict(zip(t.clip.tolist(), t.track.tolist()))
  assert track["20"] == "Loud Demo/1 [The Placeholders]"
  assert track["21"] == "Loud Demo/1 [Other Band]"
  assert track["30"] == "Loud Demo/3"


def _mtat_reference(ann_path, info_path):
  """A plain reimplementation (csv module, dicts) to check the vectorised loader."""
  import csv  # pylint: disable=import-outside-toplevel
  with open(ann_path, newline="") as f:
    ann = list(csv.reader(f, delimiter="\t"))
  with open(info_path, newline="") as f:
    info = list(csv.reader(f, delimiter="\t"))
  head = info[0]
  where = {r[0]: dict(zip(head, r)) for r in info[1:]}
  rows = []
  for r in ann[1:]:
    i = where[r[0]]
    for name, v in zip(ann[0][1:-1], r[1:-1]):
      if v == "1":
        s, e = float(i["segmentStart"]), float(i["segmentEnd"])
        rows.append((r[0], name, 1, f"{i['album']}/{i['track_number']}", i["artist"],
                     i["album"], s, e - s))
  return sorted(rows, key=repr)


def test_mtat_loader_matches_plain_reference_on_synthetic(tmp_path):
  import importlib.util  # pylint: disable=import-outside-toplevel
  spec = importlib.util.spec_from_file_location(
      "make_mtat_synthetic", FIXTURES.parent.parent / "tools" / "make_mtat_synthetic.py")
  tool = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(tool)
  ann, info = tool.write_synthetic_mtat(str(tmp_path), num_clips=400, num_tags=30, seed=3)
  table = formats.load_any(str(tmp_path))
  assert rows_of(table) == _mtat_reference(ann, info)


# -- MTG-Jamendo ---------------------------------------------------------------------------

JAMENDO = [str(F / "jamendo" / "autotagging-train.tsv"),
           str(F / "jamendo" / "autotagging-test.tsv")]


def test_jamendo_rows_keep_category_and_track_fields():
  t = formats.load_any(JAMENDO)
  assert t.num_rows == 13
  row = rows_of(t.subset(t.clip == "track_0001008"))
  assert ("track_0001008", "genre---orchestral", 1, "track_0001008", "artist_000120",
          "album_000190", 0.0, 210.25, 210.25) in row
  assert len(row) == 4
  bare = formats.load_any(JAMENDO, keep_category=False)
  assert "orchestral" in set(bare.tag.tolist())


def test_jamendo_category_filter():
  t, info = formats.read_any(JAMENDO, categories=["mood"])
  assert all(tag.startswith("mood/theme---") for tag in t.tag.tolist())
  assert set(t.clip.tolist()) == {"track_0000215", "track_0001008", "track_0002000",
                                  "track_0002001"}
  assert info.skipped == {"tags of other categories": 8, "tracks with no tag": 2}
  t = formats.load_any(JAMENDO, categories=["genre", "instrument"])
  assert not any(tag.startswith("mood") for tag in t.tag.tolist())
  with pytest.raises(DataError) as e:
    formats.load_any(JAMENDO, categories=["tempo"])
  one_line_error(e, "'tempo'", "genre, instrument, mood/theme")


@pytest.mark.parametrize("case, text, line, words", [
    ("header", "ID\tARTIST\n", 1, ["expected the header TRACK_ID"]),
    ("no separator", "t1\ta1\tb1\tp\t30\tgenre-rock\n", 2, ["'genre-rock'",
                                                           "category---tag"]),
    ("duration", "t1\ta1\tb1\tp\tlong\tgenre---rock\n", 2, ["DURATION 'long'"]),
    ("short", "t1\ta1\tb1\n", 2, ["at least 5"]),
    ("twice", "t1\ta\tb\tp\t30\tgenre---rock\nt1\ta\tb\tp\t30\tgenre---pop\n", 3,
     ["track t1 is listed twice", "line 2"]),
])
def test_jamendo_errors(tmp_path, case, text, line, words):
  path = tmp_path / "autotagging.tsv"
  header = "" if case == "header" else "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
  path.write_text(header + text)
  with pytest.raises(DataError) as e:
    formats.load_any(str(path), "mtg-jamendo")
  one_line_error(e, f"autotagging.tsv:{line}:", *words)


# -- MSD Last.fm ---------------------------------------------------------------------------

LASTFM = F / "msd_lastfm" / "lastfm_subset"


def test_lastfm_json_tree_and_threshold():
  t, info = formats.read_any(LASTFM)
  assert tags_by_clip(t) == {
      "TRAAAAW128F429D538": {"Hip-Hop", "underground hip hop", "Bay Area", "favorites"},
      "TRAAABD128F429CF47": {"soul", "Smooth Jazz"}}
  assert t.columns() == ("clip", "tag", "count", "track", "artist")
  assert set(zip(t.clip.tolist(), t.artist.tolist())) == {
      ("TRAAAAW128F429D538", "Example MC"), ("TRAAABD128F429CF47", "The Samples")}
  assert info.skipped == {"repeated tags of a track": 1, "tracks with no tag": 1}
  t, info = formats.read_any(LASTFM, min_weight=50)
  assert set(t.tag.tolist()) == {"Hip-Hop", "underground hip hop", "soul", "Smooth Jazz"}
  assert info.skipped["tags with weight below 50"] == 3


def test_lastfm_zip_archive_reads_the_same(tmp_path):
  archive = tmp_path / "lastfm_subset.zip"
  with zipfile.ZipFile(archive, "w") as z:
    for path in sorted(LASTFM.rglob("*.json")):
      z.write(path, "lastfm_subset/" + str(path.relative_to(LASTFM)))
  assert rows_of(formats.load_any(str(archive))) == rows_of(formats.load_any(LASTFM))


def _make_db(path, rows=((1, 1, 100), (1, 2, 40), (2, 1, 100), (2, 1, 10), (9, 1, 50))):
  con = sqlite3.connect(path)
  con.executescript("CREATE TABLE tids (tid TEXT); CREATE TABLE tags (tag TEXT);"
                    "CREATE TABLE tid_tag (tid INT, tag INT, val FLOAT);")
  con.executemany("INSERT INTO tids VALUES (?)",
                  [("TRAAAAW128F429D538",), ("TRAAABD128F429CF47",), ("TRNOTAGS",)])
  con.executemany("INSERT INTO tags VALUES (?)", [("rock",), ("Hip-Hop",)])
  con.executemany("INSERT INTO tid_tag VALUES (?, ?, ?)", rows)
  con.commit()
  con.close()


def test_lastfm_sqlite(tmp_path):
  db = tmp_path / "lastfm_tags.db"
  _make_db(db)
  t, info = formats.read_any(str(db))
  assert info.format == "msd-lastfm"
  assert rows_of(t) == sorted([
      ("TRAAAAW128F429D538", "rock", 1, "TRAAAAW128F429D538"),
      ("TRAAAAW128F429D538", "Hip-Hop", 1, "TRAAAAW128F429D538"),
      ("TRAAABD128F429CF47", "rock", 1, "TRAAABD128F429CF47")], key=repr)
  assert info.skipped == {"tid_tag rows naming no track or tag": 1,
                          "repeated tags of a track": 1, "tracks with no tag": 1}
  t, info = formats.read_any(str(tmp_path), min_weight=50)  # the folder holding the .db
  assert set(zip(t.clip.tolist(), t.tag.tolist())) == {
      ("TRAAAAW128F429D538", "rock"), ("TRAAABD128F429CF47", "rock")}
  assert info.skipped["tags with weight below 50"] == 2


def test_lastfm_errors(tmp_path):
  bad = tmp_path / "TRBAD.json"
  bad.write_text('{"track_id": "TRBAD",\n "tags": [["rock", "100"],\n ["pop" "50"]]}')
  with pytest.raises(DataError) as e:
    formats.load_any(str(bad))
  one_line_error(e, "TRBAD.json:3:", "not valid JSON")
  bad.write_text('{"track_id": "TRBAD", "tags": [["rock", "100"], ["pop", "150"]]}')
  with pytest.raises(DataError) as e:
    formats.load_any(str(bad))
  one_line_error(e, "TRBAD.json", "key 'tags'[1]", "outside 0-100")
  bad.write_text('{"track_id": "TRBAD", "tags": {"rock": 100}}')
  with pytest.raises(DataError) as e:
    formats.load_any(str(bad), "msd-lastfm")
  one_line_error(e, "TRBAD.json", "key 'tags'")
  db = tmp_path / "other.db"
  con = sqlite3.connect(db)
  con.execute("CREATE TABLE tids (tid TEXT)")
  con.close()
  with pytest.raises(DataError) as e:
    formats.load_any(str(db))
  one_line_error(e, "other.db", "no table(s) tags, tid_tag")
  db2 = tmp_path / "bad.db"
  _make_db(db2, rows=((1, 1, 100), (1, 2, 140)))
  with pytest.raises(DataError) as e:
    formats.load_any(str(db2))
  one_line_error(e, "bad.db", "tid_tag row 2", "outside 0-100")


# -- JAMS ----------------------------------------------------------------------------------

def test_jams_third_party_files():
  t, info = formats.read_any(F / "jams")
  assert info.skipped == {"annotations of other namespaces": 1}
  rows = rows_of(t)
  assert ("song1@90-120", "piano", 1, "bob", "song1", "Example Band", "Example Album",
          90.0, 30.0, 180.0) in rows
  assert ("song3", "drone", 3, "carol", "song3", "Old Format", "", 0.0, 60.0,
          60.0) in rows  # dense (JAMS 0.2) form; integer confidence = count
  assert ("song2", "blues", 1, "anonymous@song2#0", "song2", "", "", 0.0, 30.0,
          30.0) in rows  # tag_gtzan; no annotator: its own user
  assert len(rows) == 10
  t = formats.load_any(F / "jams", namespaces=["tag_gtzan"])
  assert t.tag.tolist() == ["blues"]
  t, info = formats.read_any(F / "jams", min_confidence=0.5)
  assert ("quiet" not in t.tag.tolist()) and info.skipped[
      "observations with confidence below 0.5"] == 1


def test_jams_written_by_the_jams_package_is_read():
  t = formats.load_any(F / "jams_by_package.jams")
  assert rows_of(t) == sorted([
      ("jams_by_package@10-20", "bright", 1, "dave", "jams_by_package", "A", 10.0, 10.0,
       200.0),
      ("jams_by_package@50-60", "dark", 1, "dave", "jams_by_package", "A", 50.0, 10.0,
       200.0)], key=repr)  # no release in the file: no album column


def test_jams_errors(tmp_path):
  bad = tmp_path / "x.jams"
  bad.write_text('{"annotations": [\n{"namespace": "tag_open",\n "data": [}]}')
  with pytest.raises(DataError) as e:
    formats.load_any(str(bad))
  one_line_error(e, "x.jams:3:", "not valid JSON")
  bad.write_text('{"file_metadata": {}}')
  with pytest.raises(DataError) as e:
    formats.load_any(str(bad))
  one_line_error(e, "x.jams", "key 'annotations'")
  bad.write_text(json.dumps({"annotations": [{"namespace": "tag_open", "data": [
      {"time": 0, "duration": 1, "value": "ok", "confidence": 1},
      {"time": 0, "duration": 1, "value": 5, "confidence": 1}]}]}))
  with pytest.raises(DataError) as e:
    formats.load_any(str(bad))
  one_line_error(e, "x.jams", "annotations[0].data[1].value")


# -- round trips: source -> tag table -> JAMS -> tag table ----------------------------------

SOURCES = {
    "magnatagatune": (str(MTAT), {}),
    "mtg-jamendo": (JAMENDO, {}),
    "msd-lastfm": (str(LASTFM), {}),
    "jams": (str(F / "jams"), {}),
    "majorminer": (str(FIXTURES / "majorminer_small.tsv"), {}),
    "hetrec": (str(FIXTURES / "hetrec_mini"), {}),
}


@pytest.mark.parametrize("fmt", sorted(SOURCES))
def test_round_trip_source_table_jams_table(tmp_path, fmt):
  paths, options = SOURCES[fmt]
  source, info = formats.read_any(paths, **options)
  assert info.format == fmt  # detected
  assert source.num_rows > 0
  tsv = tmp_path / "table.tsv"
  write_tag_table(source, tsv)
  table = load_tag_table(tsv)
  assert rows_of(table) == rows_of(source)
  written = jams_io.write_jams(table, tmp_path / "jams")
  assert all(p.endswith(".jams") for p in written)
  back = formats.load_any(tmp_path / "jams")
  assert back.columns() == table.columns()
  assert rows_of(back) == rows_of(table)


SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "majorminer").is_dir(), reason="needs ../shared/data")
def test_real_majorminer_detected_and_round_trips_through_jams(tmp_path):
  table, info = formats.read_any(SHARED / "majorminer")
  assert info.format == "majorminer" and table.num_rows == 9087
  jams_io.write_jams(table, tmp_path / "jams")
  assert rows_of(formats.load_any(tmp_path / "jams")) == rows_of(table)


@settings(max_examples=15)
@given(st.data())
def test_jams_round_trip_property(tmp_path_factory, data):
  n = data.draw(st.integers(1, 12))
  text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Zs")),
                 min_size=1, max_size=6)
  clips = data.draw(st.lists(text, min_size=n, max_size=n))
  tags = data.draw(st.lists(text, min_size=n, max_size=n))
  keys = sorted(set(zip(clips, tags)))
  m = len(keys)
  users = st.lists(st.sampled_from(["u1", "u2", ""]), min_size=m, max_size=m)
  floats = st.lists(st.one_of(st.just(math.nan), st.floats(0, 1e4)), min_size=m,
                    max_size=m)
  with_user = data.draw(st.booleans())
  kw = {}
  if with_user:
    kw["user"] = np.array(data.draw(users), dtype=str)
  if data.draw(st.booleans()):  # one track per clip
    kw["track"] = np.array([f"track {c[:2]}" for c, _ in keys], dtype=str)
  for name in ("start", "duration", "track_duration"):
    if data.draw(st.booleans()):
      kw[name] = np.array(data.draw(floats))
  if any(c in kw for c in ("start", "duration")) and "track" in kw:
    # a clip has one position: take the first row's for every row of the clip
    for name in ("start", "duration"):
      if name in kw:
        first = {}
        kw[name] = np.array([first.setdefault(c, v) for (c, _), v in zip(keys, kw[name])])
  table = TagTable(clip=np.array([c for c, _ in keys], dtype=str),
                   tag=np.array([t for _, t in keys], dtype=str),
                   count=np.array(data.draw(st.lists(st.integers(1, 10 ** 6), min_size=m,
                                                     max_size=m)), np.int64), **kw)
  out = tmp_path_factory.mktemp("prop") / "jams"
  jams_io.write_jams(table, out)
  back = jams_io.load_jams(out)
  assert back.columns() == table.columns()
  assert rows_of(back) == rows_of(table)


def test_smoothed_affinities_to_jams(tmp_path):
  smoothed = tmp_path / "smoothed.tsv"
  smoothed.write_text("clip\ttrack\ttag\taffinity\tdisplay\n"
                      "c1\tt1\telectron\t0.9\telectronic\nc1\tt1\tguitar\t0.05\tguitar\n"
                      "c2\tt1\telectron\t0.3\telectronic\nc2\tt1\tguitar\t0.7\tguitar\n")
  from crbm_jax.cli import convert  # pylint: disable=import-outside-toplevel
  logs = []
  result = convert.run_convert([str(smoothed)], str(tmp_path / "smoothed.jams"),
                           log=logs.append)
  doc = json.loads((tmp_path / "smoothed.jams").read_text())
  confidences = sorted((o["value"], o["confidence"]) for a in doc["annotations"]
                       for o in a["data"])
  assert confidences == [("electronic", 0.3), ("electronic", 0.9), ("guitar", 0.05),
                         ("guitar", 0.7)]
  assert doc["sandbox"]["crbm_jax"]["confidence"] == "affinity"
  assert result["rows"] == 4
  back = formats.load_any(tmp_path / "smoothed.jams", min_confidence=0.5)
  assert sorted(zip(back.clip.tolist(), back.tag.tolist())) == [("c1", "electronic"),
                                                                ("c2", "guitar")]
  assert (back.count == 1).all()


# -- detection, options, CLI ---------------------------------------------------------------

@pytest.mark.parametrize("path, fmt", [
    (MTAT, "magnatagatune"), (MTAT / "clip_info_final.csv", "magnatagatune"),
    (F / "jamendo" / "autotagging-train.tsv", "mtg-jamendo"), (LASTFM, "msd-lastfm"),
    (LASTFM / "A" / "A" / "A" / "TRAAAAW128F429D538.json", "msd-lastfm"),
    (F / "jams", "jams"), (F / "jams" / "song1.jams", "jams"),
    (FIXTURES / "majorminer_small.tsv", "majorminer"), (FIXTURES / "hetrec_mini", "hetrec"),
    (FIXTURES / "tags_good.tsv", "tagtable"), (FIXTURES / "tags_good.csv", "tagtable"),
])
def test_detect_format(path, fmt):
  assert formats.detect_format(path) == fmt


def test_detection_and_option_errors(tmp_path):
  odd = tmp_path / "notes.txt"
  odd.write_text("hello world\n")
  with pytest.raises(DataError) as e:
    formats.load_any(str(odd))
  one_line_error(e, "notes.txt:1:", "cannot tell the format", "--format")
  with pytest.raises(DataError) as e:
    formats.load_any([str(MTAT), str(F / "jams")])
  one_line_error(e, "different formats", "magnatagatune", "jams")
  with pytest.raises(DataError) as e:
    formats.load_any(MTAT, min_weight=10)
  one_line_error(e, "min_weight applies to msd-lastfm", "magnatagatune")
  with pytest.raises(DataError) as e:
    formats.load_any(str(tmp_path / "missing.tsv"))
  one_line_error(e, "missing.tsv", "no such file")


def test_convert_writes_nothing_on_error(tmp_path):
  from crbm_jax.cli import convert  # pylint: disable=import-outside-toplevel
  folder = _mtat_copy(tmp_path, edit_annotations=lambda ls: ls[:3] + [
      ls[3].replace('"0"', '"x"', 1)] + ls[4:])
  out = tmp_path / "out.tsv"
  with pytest.raises(DataError):
    convert.run_convert([str(folder)], str(out), log=lambda s: None)
  assert not out.exists()
  jams_out = tmp_path / "jams_out"
  with pytest.raises(DataError):
    convert.run_convert([str(folder)], str(jams_out) + "/", log=lambda s: None)
  assert not jams_out.exists()
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_cli_convert_and_cooccurrence_read_public_formats(tmp_path):
  import contextlib  # pylint: disable=import-outside-toplevel
  import importlib  # pylint: disable=import-outside-toplevel
  import io  # pylint: disable=import-outside-toplevel
  import types  # pylint: disable=import-outside-toplevel

  def run(tool, *args):  # the console script crbm-<tool>, in this process
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      code = importlib.import_module(f"crbm_jax.cli.{tool}").main([f"crbm-{tool}", *args])
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(),
                                 stderr=err.getvalue())

  from crbm_jax.cli import convert  # pylint: disable=import-outside-toplevel
  out = tmp_path / "j.csv"
  logs = []
  convert.run_convert(JAMENDO, str(out), fmt="mtg-jamendo",
                  format_options={"categories": ["genre"]}, log=logs.append)
  assert "skipped" in logs[0] and "tracks with no tag" in logs[0]
  assert rows_of(load_tag_table(out)) == rows_of(
      formats.load_any(JAMENDO, categories=["genre"]))
  proc = run("convert", "--from", "mtg-jamendo", str(F / "jamendo"),
             f"--out={tmp_path / 'x.tsv'}")
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 1 and len(lines) == 1
  assert "crbm-convert: error:" in lines[0] and "2 autotagging*.tsv" in lines[0]
  assert not (tmp_path / "x.tsv").exists()
  proc = run("cooccurrence", f"--tags={MTAT}", "--format=magnatagatune",
             "--mtat_top_tags=4", f"--workdir={tmp_path / 't1'}")
  assert proc.returncode == 0, proc.stderr
  assert "format magnatagatune" in proc.stdout
  assert "start_rank" in (tmp_path / "t1" / "figure1.csv").read_text()
