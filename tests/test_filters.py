"""The spam rules of Section 2: each rule fires alone on a case made for it."""
import numpy as np
import pytest

from crbm_jax.data.canonical import canonical_tag
from crbm_jax.data.filters import (DEFAULT_STOP_WORDS, FilterConfig, filter_hits,
                                   load_dictionary)
from crbm_jax.data.mturk import Hits

WORDS = ["rock", "pop", "jazz", "guitar", "drums", "piano", "bass", "male vocals",
         "female vocals", "fast", "slow", "happy", "sad", "electronic", "acoustic",
         "country", "metal", "punk", "folk", "blues", "soul", "funk", "synth",
         "ambient", "dance", "quiet", "loud", "dark", "calm", "upbeat", "trumpet",
         "violin", "cello", "organ", "saxophone", "reggae", "techno", "house",
         "trance", "disco"]
DICTIONARY = {canonical_tag(w) for w in WORDS}


def make_hits(per_worker: dict) -> Hits:
  """{worker: [tags of HIT 1, tags of HIT 2, ...]} -> Hits (clip per HIT)."""
  worker, tags = [], []
  for w, hits in per_worker.items():
    for t in hits:
      worker.append(w)
      tags.append(list(t))
  n = len(worker)
  ids = np.array([f"x{i}" for i in range(n)])
  return Hits(worker=np.array(worker), hit=ids, assignment=ids,
              clip=np.array([f"c{i % 3}" for i in range(n)]), tags=tags,
              line=np.arange(2, n + 2), source="test")


def honest(n_hits: int, offset: int = 0) -> list:
  """n_hits HITs of 5 distinct dictionary tags, no tag repeated across HITs."""
  return [[WORDS[(offset + 5 * i + j) % len(WORDS)] for j in range(5)]
          for i in range(n_hits)]


def reasons_of(result, worker):
  return [r for r, w in zip(result.reasons, result.hits.worker.tolist()) if w == worker]


def test_honest_worker_is_accepted():
  result = filter_hits(make_hits({"good": honest(4)}), DICTIONARY)
  assert result.accepted.all()
  assert result.worker_reasons == {"good": ()}


def test_hit_too_few_tags_fires_below_five_tags_only():
  hits = honest(3) + [WORDS[30:34]]  # 4 tags
  result = filter_hits(make_hits({"w": hits}), DICTIONARY)
  assert reasons_of(result, "w") == [(), (), (), ("hit_too_few_tags",)]
  hits = honest(3) + [WORDS[30:35]]  # 5 tags
  assert filter_hits(make_hits({"w": hits}), DICTIONARY).accepted.all()


def test_duplicate_tags_in_a_hit_count_once():
  hits = honest(3) + [["rock", "Rock", "rock ", "pop", "jazz", "funk"]]
  result = filter_hits(make_hits({"w": hits}), DICTIONARY)
  assert result.reasons[3] == ("hit_too_few_tags",)


def test_hit_long_tag_fires_above_25_characters_only():
  long_tag = "x" * 26
  result = filter_hits(make_hits({"w": honest(3) + [WORDS[30:35] + [long_tag]]}),
                       DICTIONARY)
  assert result.reasons[3] == ("hit_long_tag",)
  result = filter_hits(make_hits({"w": honest(3) + [WORDS[30:35] + ["x" * 25]]}),
                       DICTIONARY)
  assert result.accepted.all()


def test_hit_few_dictionary_tags_fires_below_half():
  unknown = ["zorblax", "quuxish", "blorp"]
  result = filter_hits(make_hits({"w": honest(3) + [WORDS[30:32] + unknown]}),
                       DICTIONARY)
  assert result.reasons[3] == ("hit_few_dictionary_tags",)  # 2 of 5
  result = filter_hits(make_hits({"w": honest(3) + [WORDS[30:33] + unknown[:2]]}),
                       DICTIONARY)
  assert result.accepted.all()  # 3 of 5


def test_dictionary_matches_canonical_forms():
  # surface forms differ from the dictionary words but share canonical forms
  hit = ["Drumming", "ROCK music", "guitars", "sounds like jazz", "Pianos"]
  result = filter_hits(make_hits({"w": honest(3) + [hit]}), DICTIONARY)
  assert result.accepted.all()


def _vocabulary_hits(n_hits: int) -> list:
  """n_hits HITs: 3 tags in every HIT, 8 others in 2 slots each (<= n/2 HITs)."""
  common, others = WORDS[:3], WORDS[3:11]
  return [common + [others[(2 * i) % 8], others[(2 * i + 1) % 8]]
          for i in range(n_hits)]


def test_worker_small_vocabulary_fires_below_one_tag_per_hit():
  result = filter_hits(make_hits({"w": _vocabulary_hits(12)}), DICTIONARY)
  assert result.worker_reasons["w"] == ("worker_small_vocabulary",)  # 11 < 12
  assert not result.accepted.any()
  assert all(r == ("worker_small_vocabulary",) for r in result.reasons)
  result = filter_hits(make_hits({"w": _vocabulary_hits(11)}), DICTIONARY)
  assert result.accepted.all()  # 11 tags for 11 HITs


def test_worker_frequent_tags_fires_for_four_tags_in_over_half_the_hits():
  base = honest(4, offset=10)
  frequent = WORDS[:4]
  hits = [frequent + h for h in base[:3]] + [base[3]]  # 4 tags in 3 of 4 HITs
  result = filter_hits(make_hits({"w": hits, "ok": honest(2, offset=20)}), DICTIONARY)
  assert result.worker_reasons == {"w": ("worker_frequent_tags",), "ok": ()}
  hits = [frequent[:3] + h for h in base[:3]] + [base[3]]  # only 3 such tags
  assert filter_hits(make_hits({"w": hits}), DICTIONARY).accepted.all()
  hits = [frequent + h for h in base[:2]] + base[2:]  # 4 tags in exactly half
  assert filter_hits(make_hits({"w": hits}), DICTIONARY).accepted.all()


def test_worker_frequent_tags_needs_a_minimum_number_of_hits():
  same = [WORDS[:5], WORDS[:5]]
  assert filter_hits(make_hits({"w": same}), DICTIONARY).accepted.all()
  config = FilterConfig(frequent_tag_min_hits=2)
  result = filter_hits(make_hits({"w": same}), DICTIONARY, config)
  assert result.worker_reasons["w"] == ("worker_frequent_tags",)


def test_worker_stop_words_fires_above_15_percent():
  hits = [h + ["nice"] for h in honest(4)]  # 4 / 24 = 16.7%
  result = filter_hits(make_hits({"w": hits}), DICTIONARY)
  assert result.worker_reasons["w"] == ("worker_stop_words",)
  hits = [h + ["nice", WORDS[35 + i]] for i, h in enumerate(honest(4))]  # 4 / 28
  assert filter_hits(make_hits({"w": hits}), DICTIONARY).accepted.all()


def test_stop_words_match_canonical_forms_and_are_configurable():
  hits = [h + ["Good Music!"] for h in honest(4)]  # canonical 'good'
  assert not filter_hits(make_hits({"w": hits}), DICTIONARY).accepted.any()
  config = FilterConfig(stop_words=("awful",))
  assert filter_hits(make_hits({"w": hits}), DICTIONARY, config).accepted.all()
  assert "nice" in DEFAULT_STOP_WORDS and "genre" in DEFAULT_STOP_WORDS


def test_default_stop_words_do_not_swallow_real_tags():
  stop = {canonical_tag(w) for w in DEFAULT_STOP_WORDS}
  for tag in ["instrumental", "emotional", "lovely", "vocals", "guitar", "mellow"]:
    assert canonical_tag(tag) not in stop


def test_worker_rejected_hits_fires_when_half_the_hits_broke_hit_rules():
  hits = honest(2) + [WORDS[30:33], WORDS[33:36]]  # 2 of 4 too short
  result = filter_hits(make_hits({"w": hits}), DICTIONARY)
  assert result.worker_reasons["w"] == ("worker_rejected_hits",)
  assert result.reasons == [("worker_rejected_hits",)] * 2 + [
      ("hit_too_few_tags", "worker_rejected_hits")] * 2


def test_summary_counts_accepted_data_and_rules():
  hits = make_hits({
      "a": [["rock", "pop", "jazz", "funk", "soul"], ["rock", "Pop", "blues", "folk", "punk"]],
      "b": [["rock", "pop", "metal", "synth", "disco"]],
      "c": [["rock", "pop"]],  # too few tags, and 1 of 1 HITs rejected
  })
  result = filter_hits(hits, DICTIONARY)
  s = result.summary(min_workers=2)
  assert s["hits_accepted"] == 3 and s["hits_rejected"] == 1
  assert s["triples"] == 15
  assert s["workers_total"] == 3 and s["workers_accepted"] == 2
  assert s["unique_tags"] == 11
  assert s["tags_used_by_2_workers"] == 2  # rock, pop by a and b
  assert s["triples_with_tags_used_by_2_workers"] == 6
  assert s["hits_rejected_by_rule"]["hit_too_few_tags"] == 1
  assert s["hits_rejected_by_rule"]["worker_rejected_hits"] == 1
  assert s["workers_rejected_by_rule"] == {
      "worker_small_vocabulary": 0, "worker_frequent_tags": 0,
      "worker_stop_words": 0, "worker_rejected_hits": 1}


def test_shipped_dictionary_holds_canonical_lastfm_tags():
  d = load_dictionary()
  assert 1000 < len(d) < 10000
  for word in ["rock", "hip hop", "male vocals", "80s", "electronic", "jazz"]:
    assert canonical_tag(word) in d
  assert all(t == t.strip() and t and not t.startswith("#") for t in d)


def test_load_dictionary_from_path_skips_comments(tmp_path):
  p = tmp_path / "d.txt"
  p.write_text("# header\nrock\n\n hip hop \n")
  assert load_dictionary(p) == {"rock", "hip hop"}


@pytest.mark.parametrize("last_hit, config", [
    (WORDS[30:34], FilterConfig(min_tags_per_hit=4)),
    (WORDS[30:34] + ["y" * 26], FilterConfig(max_tag_chars=26)),
    (WORDS[30:32] + ["zorblax", "quuxish", "blorp"],
     FilterConfig(min_dictionary_fraction=0.4)),
], ids=["min_tags_per_hit", "max_tag_chars", "min_dictionary_fraction"])
def test_config_thresholds_change_the_outcome(last_hit, config):
  hits = make_hits({"w": honest(3) + [last_hit]})
  assert not filter_hits(hits, DICTIONARY).accepted[3]
  assert filter_hits(hits, DICTIONARY, config).accepted[3]
