"""Regenerates the demo excerpts in this folder from librosa's example recordings.

Usage: python make_demo_audio.py SRC_DIR  (SRC_DIR holds the original .ogg/.txt files)
Each excerpt: EXCERPT_SECONDS of mono 22,050 Hz audio starting at START_FRACTION of
the track (the whole file when shorter), 50 ms linear fades, Vorbis at
compression level 0.9. Only public-domain and CC-BY recordings are used.
"""
import os
import sys

import numpy as np
import soundfile

EXCERPT_SECONDS = 20.0
START_FRACTION = 0.3
FADE_SECONDS = 0.05

# (source file stem, excerpt name)
SOURCES = (
    ("Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)",
     "brahms_hungarian_dance_5"),
    ("Karissa_Hobbs_-_Lets_Go_Fishin", "hobbs_lets_go_fishin"),
    ("Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy",
     "macleod_sugar_plum_fairy"),
    ("Kevin_MacLeod_-_Vibe_Ace", "macleod_vibe_ace"),
    ("sorohanro_-_solo-trumpet-06", "sorohan_solo_trumpet"),
)


def main(src_dir: str, out_dir: str) -> None:
  for stem, name in SOURCES:
    y, sr = soundfile.read(os.path.join(src_dir, stem + ".ogg"), dtype="float64")
    if y.ndim == 2:
      y = y.mean(axis=1)
    n = int(EXCERPT_SECONDS * sr)
    if y.shape[0] > n:
      start = int(START_FRACTION * (y.shape[0] - n))
      y = y[start:start + n].copy()
    fade = int(FADE_SECONDS * sr)
    ramp = np.linspace(0.0, 1.0, fade)
    y[:fade] *= ramp
    y[-fade:] *= ramp[::-1]
    soundfile.write(os.path.join(out_dir, name + ".ogg"), y, sr, format="OGG",
                    subtype="VORBIS", compression_level=0.9)


if __name__ == "__main__":
  main(sys.argv[1], os.path.dirname(os.path.abspath(__file__)))
