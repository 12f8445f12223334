"""Writes a synthetic MagnaTagATune pair of files of the real data's size (SYNTHETIC data).

  python tools/make_mtat_synthetic.py --out /tmp/mtat            # 25,863 clips x 188 tags
  python tools/make_mtat_synthetic.py --out /tmp/mtat --clips 500 --tags 20

Writes ``annotations_final.csv`` and ``clip_info_final.csv`` in the distribution's layout
(tab separated, every field double-quoted; header clip_id, tags..., mp3_path and
clip_id, track_number, title, artist, album, url, segmentStart, segmentEnd,
original_url, mp3_path). Tracks of 1-9 consecutive 29 s clips (about 4.8 per track, as in
the real set's 25,863 clips of 5,405 tracks); tags are drawn from a per-track topic over
Zipf-like tag frequencies, about 3 tags per clip, some clips with none. The numbers are
made up: the files exist to time loaders and Table 1 at the real size.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

CLIP_SECONDS = 29.0


def synthetic_mtat(num_clips: int = 25_863, num_tags: int = 188, seed: int = 0):
  """(annotations text, clip_info text) of a synthetic MagnaTagATune."""
  rng = np.random.default_rng(seed)
  tag_names = [f"tag {j:03d}" for j in range(num_tags)]
  base = 1.0 / (np.arange(num_tags) + 3.0)
  base *= 3.0 / base.sum()  # about 3 tags per clip
  clips_left, track, clip_track, clip_pos = num_clips, 0, [], []
  while clips_left > 0:
    n = min(int(rng.integers(1, 10)), clips_left)
    clip_track += [track] * n
    clip_pos += list(range(n))
    clips_left -= n
    track += 1
  clip_track, clip_pos = np.array(clip_track), np.array(clip_pos)
  topic = rng.dirichlet(np.full(num_tags, 0.3), size=track)
  probs = np.minimum(1.0, 0.5 * base + 0.5 * 3.0 * topic[clip_track])
  values = rng.random((num_clips, num_tags)) < probs
  albums = 1 + clip_track // 12
  artists = 1 + albums // 2
  ann = ['"clip_id"\t' + "\t".join(f'"{t}"' for t in tag_names) + '\t"mp3_path"']
  info = ['"clip_id"\t"track_number"\t"title"\t"artist"\t"album"\t"url"\t'
          '"segmentStart"\t"segmentEnd"\t"original_url"\t"mp3_path"']
  q0, q1 = '"0"', '"1"'
  for k in range(num_clips):
    clip_id = str(k + 2)
    number = 1 + clip_track[k] % 12
    start = int(clip_pos[k] * CLIP_SECONDS)
    end = int(start + CLIP_SECONDS)
    stem = f"artist_{artists[k]}-album_{albums[k]}-{number:02d}-song_{clip_track[k]}"
    mp3 = f"{'0123456789abcdef'[k % 16]}/{stem}-{start}-{end}.mp3"
    ann.append(f'"{clip_id}"\t' + "\t".join(q1 if v else q0 for v in values[k])
               + f'\t"{mp3}"')
    info.append("\t".join(f'"{x}"' for x in (
        clip_id, number, f"Song {clip_track[k]}", f"Artist {artists[k]}",
        f"Album {albums[k]}", f"http://example.org/album_{albums[k]}/", start, end,
        f"http://example.org/{stem}.mp3", mp3)))
  return "\n".join(ann) + "\n", "\n".join(info) + "\n"


def write_synthetic_mtat(out_dir: str, num_clips: int = 25_863, num_tags: int = 188,
                         seed: int = 0) -> tuple:
  """Writes the two files atomically into out_dir; returns their paths."""
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from crbm_jax.util.atomic import write_text_atomic  # pylint: disable=import-outside-toplevel
  ann, info = synthetic_mtat(num_clips, num_tags, seed)
  paths = (os.path.join(out_dir, "annotations_final.csv"),
           os.path.join(out_dir, "clip_info_final.csv"))
  for path, text in zip(paths, (ann, info)):
    write_text_atomic(path, text)
  return paths


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True, help="folder for the two files")
  parser.add_argument("--clips", type=int, default=25_863)
  parser.add_argument("--tags", type=int, default=188)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  paths = write_synthetic_mtat(args.out, args.clips, args.tags, args.seed)
  print("wrote " + ", ".join(paths))


if __name__ == "__main__":
  main()
