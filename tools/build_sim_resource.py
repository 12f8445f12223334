"""Builds crbm_jax/data/resources/sim_tag_model.npz from HetRec 2011 Last.fm.

The simulated Mechanical Turk study (crbm_jax.data.simulate) draws its tag
vocabulary and tag co-occurrence from real social tags: the artist x tag count
matrix (number of distinct users who gave each tag to each artist) for the most
used descriptive tags over the most tagged artists, then the same counts for the
clip-level descriptions listed after them in crbm_jax/data/resources/tag_kinds.tsv
(instruments, voices, moods, tempo, song sections: zero where HetRec never uses
them), plus a long tail of less used real tags (surface forms and user counts,
tags used by at least one user) for workers' idiosyncratic extras.

Usage:
  python tools/build_sim_resource.py [--data_dir /work/shared/data/hetrec2011-lastfm-2k]
      [--num_tags 150] [--num_artists 300] [--num_tail 6000]
      [--kinds crbm_jax/data/resources/tag_kinds.tsv]
      [--out crbm_jax/data/resources/sim_tag_model.npz]
"""
from __future__ import annotations

import argparse
import os
import re

import numpy as np

# Personal, evaluative or artist-name tags that a turker describing a clip
# would not give (or that are Last.fm-specific bookkeeping).
EXCLUDED = frozenset("""
seen live|love|amazing|awesome|legend|favorites|favorite|favourite|favourites|<3|hot|
britney spears|lady gaga|madonna|disney|guilty pleasure|love at first listen|perfect|
genius|cool|cute|gay|cover|covers|remix|diva|sexy|christian|my favorite|albums i own|
favorite artists|beyonce|rihanna|michael jackson|the beatles|beatles|live|classic|
sweet|fun|under 2000 listeners|spotify|check out|good|best|great|female|male|
""".replace("\n", "").split("|")) - {""}


def merge_key(tag: str) -> str:
  """Key that merges trivial spelling variants (hip-hop / hip hop, vocalist(s))."""
  t = tag.lower().strip()
  t = re.sub(r"\b(n|&|'n'|and)\b", "and", t)
  t = re.sub(r"[^a-z0-9]", "", t)
  return t[:-1] if t.endswith("s") and len(t) > 3 else t


def read_hetrec(data_dir: str):
  tags = {}
  with open(os.path.join(data_dir, "tags.dat"), encoding="latin-1") as f:
    next(f)
    for line in f:
      i, v = line.rstrip("\r\n").split("\t")
      tags[int(i)] = v.strip()
  artists = {}
  with open(os.path.join(data_dir, "artists.dat"), encoding="utf-8") as f:
    next(f)
    for line in f:
      parts = line.rstrip("\r\n").split("\t")
      artists[int(parts[0])] = parts[1]
  triples = np.loadtxt(os.path.join(data_dir, "user_taggedartists.dat"),
                       skiprows=1, usecols=(0, 1, 2), dtype=np.int64)
  return tags, artists, triples


def listed_tags(path: str) -> list:
  """Surface forms listed in tag_kinds.tsv, in order."""
  with open(path, encoding="utf-8") as f:
    return [line.split("\t")[0].strip() for line in f
            if line.strip() and not line.startswith("#")]


def build(data_dir: str, num_tags: int, num_artists: int, num_tail: int,
          extra_tags: tuple = ()) -> dict:
  """Returns the arrays stored in the resource (see module docstring).

  extra_tags: surface forms appended after the num_tags head tags (their HetRec
  counts over the same artists; zero when HetRec lacks them).
  """
  tags, artists, triples = read_hetrec(data_dir)
  all_triples = triples
  # Merge spelling variants; surface form = the most used variant.
  keys = {t: merge_key(v) for t, v in tags.items()}
  triples = triples[[tags[t].lower() not in EXCLUDED for t in triples[:, 2]]]
  key_of_row = np.array([keys[t] for t in triples[:, 2]])
  uniq_keys, key_idx = np.unique(key_of_row, return_inverse=True)
  # Distinct users per key.
  user_key = np.unique(np.stack([triples[:, 0], key_idx], 1), axis=0)
  users_per_key = np.bincount(user_key[:, 1], minlength=len(uniq_keys))
  full_order = np.lexsort((uniq_keys, -users_per_key))
  order = full_order[:num_tags]
  surface = []
  extra_keys = [merge_key(t) for t in extra_tags]
  key_pos = {k: i for i, k in enumerate(uniq_keys.tolist())}
  head_keys = set(uniq_keys[order].tolist())
  extra_keys = [k for k in extra_keys if k not in head_keys]
  tail_order = [k for k in full_order[num_tags:] if users_per_key[k] >= 1
                and uniq_keys[k] not in set(extra_keys)]
  for k in list(order) + tail_order:
    ids, n = np.unique(triples[key_idx == k, 2], return_counts=True)
    best = ids[np.lexsort((ids, -n))[0]]
    surface.append(tags[int(best)].lower())
  tail = [t for t in surface[num_tags:] if len(t) <= 25 and "," not in t]
  tail_users = [users_per_key[k] for k, t in zip(tail_order, surface[num_tags:])
                if len(t) <= 25 and "," not in t]
  surface = surface[:num_tags]
  keep = np.full(len(uniq_keys), -1)
  keep[order] = np.arange(len(order))
  col = keep[key_idx]
  rows = triples[col >= 0]
  col = col[col >= 0]
  # Distinct (user, artist, tag) -> count of users per (artist, tag).
  uat = np.unique(np.stack([rows[:, 0], rows[:, 1], col], 1), axis=0)
  art_ids, art_idx = np.unique(uat[:, 1], return_inverse=True)
  per_artist = np.bincount(art_idx)
  top = np.lexsort((art_ids, -per_artist))[:num_artists]
  remap = np.full(len(art_ids), -1)
  remap[top] = np.arange(len(top))
  a = remap[art_idx]
  counts = np.zeros((len(top), len(order)), np.int64)
  np.add.at(counts, (a[a >= 0], uat[a >= 0, 2]), 1)
  # Clip-level extras: HetRec counts over the same artists (all triples, so that
  # e.g. 'love' counts even though the head excludes it).
  all_keys = np.array([keys[t] for t in all_triples[:, 2]])
  art_pos = {int(a): i for i, a in enumerate(art_ids[top].tolist())}
  extra_counts = np.zeros((len(top), len(extra_tags)), np.int64)
  for j, t in enumerate(extra_tags):
    sel = all_triples[all_keys == merge_key(t)]
    for u_a in np.unique(sel[:, :2], axis=0):
      i = art_pos.get(int(u_a[1]))
      if i is not None:
        extra_counts[i, j] += 1
  counts = np.concatenate([counts, extra_counts], 1)
  surface = surface + [t for t in extra_tags]
  tag_users = np.concatenate([users_per_key[order], [
      users_per_key[key_pos[merge_key(t)]] if merge_key(t) in key_pos else 0
      for t in extra_tags]])
  assert counts.max() < 2 ** 16
  return dict(
      artist_names=np.array([artists[int(art_ids[i])] for i in top]),
      tag_surface=np.array(surface),
      counts=counts.astype(np.uint16),
      tag_users=tag_users.astype(np.int32),
      tail_surface=np.array(tail[:num_tail]),
      tail_users=np.array(tail_users[:num_tail], np.int32),
      source=np.array("HetRec 2011 Last.fm-2k (user_taggedartists.dat); "
                      "non-commercial research use; cite HetRec 2011 and Last.fm"),
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default="/work/shared/data/hetrec2011-lastfm-2k")
  parser.add_argument("--num_tags", type=int, default=150)
  parser.add_argument("--num_artists", type=int, default=300)
  parser.add_argument("--num_tail", type=int, default=6000,
                      help="long-tail tags (used by >= 1 user) for idiosyncratic extras")
  here = os.path.dirname(os.path.abspath(__file__))
  parser.add_argument("--kinds", default=os.path.join(
      here, "..", "crbm_jax", "data", "resources", "tag_kinds.tsv"),
      help="tag kinds list: its first --num_tags tags must be the HetRec head, "
           "the rest are appended")
  parser.add_argument("--out", default=os.path.join(
      here, "..", "crbm_jax", "data", "resources", "sim_tag_model.npz"))
  args = parser.parse_args()
  listed = listed_tags(args.kinds)
  arrays = build(args.data_dir, args.num_tags, args.num_artists, args.num_tail,
                 tuple(listed[args.num_tags:]))
  head = arrays["tag_surface"][:args.num_tags].tolist()
  if head != listed[:args.num_tags]:
    raise SystemExit(f"{args.kinds}: its first {args.num_tags} tags must be the HetRec "
                     f"head in order; first difference at "
                     f"{next(i for i, (a, b) in enumerate(zip(head, listed)) if a != b)}")
  np.savez_compressed(args.out, **arrays)
  print(f"wrote {args.out}: {arrays['counts'].shape[0]} artists x "
        f"{arrays['counts'].shape[1]} tags, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
  main()
