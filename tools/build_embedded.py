"""Builds the committed compact data from the full originals.

  python tools/build_embedded.py [--data_dir ../shared/data] [--package_dir crbm_jax/data]

Writes
  <package_dir>/embedded/majorminer_tags.tsv.gz   MajorMiner (clip, tag, count)
      rows with track/artist/album/start and the clip length from Essentia.
  <package_dir>/embedded/majorminer_features.npz  features float32 [C, F],
      feature_names [F], clip_ids [C], durations [C] (Essentia descriptors).
  <package_dir>/embedded/hetrec_lastfm_subset.tsv.gz  the HetRec 2011 triples
      of hetrec.select_lastfm_subset (user, artist, tag).
  <package_dir>/resources/lastfm_tags.txt  canonical forms of the HetRec tags
      used at least twice (the spam filter's dictionary).
Deterministic: running it twice gives identical files.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import io
import os
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crbm_jax.data import hetrec, majorminer  # noqa: E402
from crbm_jax.data.canonical import canonical_tag  # noqa: E402
from crbm_jax.data.tagtable import write_tag_table  # noqa: E402

MIN_DICTIONARY_USES = 2


def build_majorminer(data_dir: pathlib.Path, out: pathlib.Path) -> dict:
  table = majorminer.load_majorminer_tags(data_dir / "clip_tags_with_song.tsv")
  clip_ids = np.unique(table.clip)
  features, names, durations = majorminer.load_essentia_features(
      data_dir / "essentia_features", clip_ids.tolist())
  if not np.all(np.isfinite(features)):
    bad = clip_ids[~np.all(np.isfinite(features), axis=1)]
    raise SystemExit(f"non-finite Essentia features for clips {bad[:5]}")
  duration = durations[np.searchsorted(clip_ids, table.clip)]
  table = dataclasses.replace(table, duration=duration)
  write_tag_table(table, out / majorminer.EMBEDDED_TAGS)
  buf = io.BytesIO()
  np.savez_compressed(buf, features=features, feature_names=np.array(names),
                      clip_ids=clip_ids, durations=durations)
  (out / majorminer.EMBEDDED_FEATURES).write_bytes(buf.getvalue())
  return {"rows": table.num_rows, "clips": clip_ids.size,
          "tracks": np.unique(table.track).size, "features": features.shape[1],
          "duration_range": (float(durations.min()), float(durations.max()))}


def build_hetrec(data_dir: pathlib.Path, out: pathlib.Path,
                 resources: pathlib.Path) -> dict:
  triples = hetrec.load_hetrec_triples(data_dir)
  subset = hetrec.select_lastfm_subset(triples)
  write_tag_table(subset, out / hetrec.EMBEDDED_SUBSET)
  uses = collections.Counter(triples.tag.tolist())
  canon = sorted({canonical_tag(t) for t, n in uses.items()
                  if n >= MIN_DICTIONARY_USES} - {""})
  header = (f"# Canonical forms of the HetRec 2011 Last.fm tags used at least "
            f"{MIN_DICTIONARY_USES} times\n# (built by tools/build_embedded.py; "
            "see ../embedded/README.md for licence and attribution)\n")
  (resources / "lastfm_tags.txt").write_text(header + "\n".join(canon) + "\n",
                                             encoding="utf-8")
  return {"triples": triples.num_rows, "subset_rows": subset.num_rows,
          "subset_tags": np.unique(subset.tag).size,
          "subset_artists": np.unique(subset.clip).size,
          "subset_users": np.unique(subset.user).size,
          "dictionary_raw_tags": sum(1 for n in uses.values() if n >= MIN_DICTIONARY_USES),
          "dictionary_canonical_tags": len(canon)}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", type=pathlib.Path,
                      default=REPO.parent / "shared" / "data")
  parser.add_argument("--package_dir", type=pathlib.Path,
                      default=REPO / "crbm_jax" / "data")
  args = parser.parse_args(argv)
  out = args.package_dir / "embedded"
  resources = args.package_dir / "resources"
  out.mkdir(parents=True, exist_ok=True)
  resources.mkdir(parents=True, exist_ok=True)
  t0 = time.time()
  print("majorminer:", build_majorminer(args.data_dir / "majorminer", out))
  print("hetrec:", build_hetrec(args.data_dir / "hetrec2011-lastfm-2k", out, resources))
  for path in sorted(list(out.iterdir()) + list(resources.iterdir())):
    print(f"  {path.relative_to(args.package_dir)}: {os.path.getsize(path):,} bytes")
  print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
  main()
