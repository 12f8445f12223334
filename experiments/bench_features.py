"""Benchmark: clip-feature extraction speed (x real time per core) vs librosa.

  PYTHONPATH=. python experiments/bench_features.py [--audio_dir=...] [--repeats=3]

Uses the real recordings in ../shared/data/audio (or --audio_dir); synthetic
audio (510 s) when that folder is absent. Each track is cut into consecutive
10-second windows; both pipelines compute the same 389 features per window in
one process with BLAS limited to one thread, so the rate is per core. The
librosa baseline uses librosa.feature.melspectrogram / power_to_db / mfcc for
the spectral part and the same timbral/rhythm statistics. Times are CPU seconds of this
process (best of --repeats). experiments/bench_autotag.py runs the same comparison
(medians, alternating) together with the autotagging throughput.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ.setdefault(_var, "1")

import glob  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from crbm_jax.autotag import audio  # noqa: E402
from crbm_jax.autotag import features as F  # noqa: E402
from audiobench import (DEFAULT_AUDIO_DIR, librosa_clip_features, synthetic_tracks,  # noqa: E402
                        windows)

flags.DEFINE_string("audio_dir", DEFAULT_AUDIO_DIR, "folder of audio files")
flags.DEFINE_integer("repeats", 3, "timed repetitions (best is reported)")
FLAGS = flags.FLAGS


def time_pipeline(fn, clips, sr, config, repeats):
  best = np.inf
  for _ in range(repeats):
    start = time.process_time()  # CPU time: one core's time, whatever else runs
    feats = [fn(c, sr, config) for c in clips]
    best = min(best, time.process_time() - start)
  return best, np.stack(feats)


def run_benchmark(audio_dir: str, repeats: int = 3) -> dict:
  config = F.FeatureConfig()
  paths = sorted(glob.glob(os.path.join(audio_dir, "*.ogg"))) if os.path.isdir(audio_dir) else []
  start = time.perf_counter()
  if paths:
    tracks = [audio.load_audio(p, config.sr)[0] for p in paths]
    source = f"{len(paths)} real recordings in {os.path.normpath(audio_dir)}"
  else:
    tracks = synthetic_tracks(config.sr)
    source = "synthetic audio (no recordings found)"
  decode_s = time.perf_counter() - start
  clips = [w for y in tracks for w in windows(y, config.sr)]
  seconds = sum(c.shape[0] for c in clips) / config.sr
  import librosa  # noqa: F401  (import cost outside the timing)
  librosa_clip_features(clips[0], config.sr, config)  # warm-up (filter caches)
  F.clip_features(clips[0], config.sr, config)
  ours_s, ours = time_pipeline(F.clip_features, clips, config.sr, config, repeats)
  ref_s, ref = time_pipeline(librosa_clip_features, clips, config.sr, config, repeats)
  return {"source": source, "audio_seconds": seconds, "num_clips": len(clips),
          "decode_seconds": decode_s, "ours_seconds": ours_s, "librosa_seconds": ref_s,
          "ours_x_realtime_per_core": seconds / ours_s,
          "librosa_x_realtime_per_core": seconds / ref_s,
          "speedup_vs_librosa": ref_s / ours_s,
          "max_abs_diff_vs_librosa": float(np.max(np.abs(ours - ref))),
          "all_finite": bool(np.all(np.isfinite(ours)))}


def main(argv):
  del argv
  r = run_benchmark(FLAGS.audio_dir, FLAGS.repeats)
  print(f"source: {r['source']}")
  print(f"{r['audio_seconds']:.1f} s of audio in {r['num_clips']} windows of <= 10 s; "
        f"decoding took {r['decode_seconds']:.2f} s")
  print(f"crbm_jax.autotag: {r['ours_seconds']:.3f} s = "
        f"{r['ours_x_realtime_per_core']:.0f}x real time per core")
  print(f"end to end (decode + features): "
        f"{r['audio_seconds'] / (r['decode_seconds'] + r['ours_seconds']):.0f}x real time")
  print(f"librosa baseline: {r['librosa_seconds']:.3f} s = "
        f"{r['librosa_x_realtime_per_core']:.0f}x real time per core")
  print(f"ratio (librosa time / ours): {r['speedup_vs_librosa']:.2f}; max |difference| "
        f"of the features: {r['max_abs_diff_vs_librosa']:.2e}; finite: {r['all_finite']}")


if __name__ == "__main__":
  app.run(main)
