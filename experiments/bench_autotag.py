"""Benchmark (issue 19): clip features vs librosa per core, and autotagging throughput.

  PYTHONPATH=. python experiments/bench_autotag.py [--audio_dir=...] [--repeats=5]

1. Features: the real recordings in ../shared/data/audio (or --audio_dir), else synthetic
   audio of the same total length (510 s), cut into consecutive 10-second windows. Our
   pipeline (crbm_jax.autotag.features.clip_features: float32 STFT in a reused buffer,
   banded mel filters, matrix DCT) and the equivalent librosa pipeline
   (librosa.feature.melspectrogram / power_to_db / mfcc with the same settings, then the
   same timbral and rhythm statistics) run in this one process with BLAS and FFT limited
   to one thread, alternating, --repeats times each, timed in CPU seconds of this
   process (time.process_time: one core's time, robust to other load on a shared
   machine); the ratio of the median times is the speed-up per core.
2. Prediction: 50 per-tag nu-SVMs (linear kernel, Platt probabilities) trained on the
   benchmark's clips with random labels; clips per second of
   (a) Autotagger.predict_proba (the stored arrays: one matrix product),
   (b) the same 50 scikit-learn CalibratedClassifierCV objects' predict_proba,
   (c) end to end from decoded audio: features + (a).
   All prediction timings are CPU seconds of this process (one thread).
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
from crbm_jax.autotag import product, store, svm  # noqa: E402

flags.DEFINE_string("audio_dir", DEFAULT_AUDIO_DIR, "folder of audio files")
flags.DEFINE_integer("repeats", 5, "timed repetitions of each pipeline (median reported)")
flags.DEFINE_integer("num_tags", 50, "tags of the prediction benchmark")
FLAGS = flags.FLAGS


def _time(fn, clips, sr, config):
  """CPU seconds of this process (one thread: the time on one core, unaffected by other
  processes on a shared machine) and the features."""
  start = time.process_time()
  feats = np.stack([fn(c, sr, config) for c in clips])
  return time.process_time() - start, feats


def bench_features(tracks, config, repeats):
  clips = [w for y in tracks for w in windows(y, config.sr)]
  seconds = sum(c.shape[0] for c in clips) / config.sr
  try:
    import librosa  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    have_librosa = True
    librosa_clip_features(clips[0], config.sr, config)  # warm-up (filter caches)
  except ImportError:
    have_librosa = False
  F.clip_features(clips[0], config.sr, config)
  ours_t, ref_t, ours, ref = [], [], None, None
  for _ in range(repeats):  # alternate, so that load changes hit both alike
    t, ours = _time(F.clip_features, clips, config.sr, config)
    ours_t.append(t)
    if have_librosa:
      t, ref = _time(librosa_clip_features, clips, config.sr, config)
      ref_t.append(t)
  r = {"num_clips": len(clips), "audio_seconds": seconds,
       "ours_median_s": float(np.median(ours_t)), "ours_times_s": ours_t,
       "ours_x_realtime_per_core": seconds / float(np.median(ours_t)),
       "all_finite": bool(np.all(np.isfinite(ours))), "librosa": have_librosa}
  if have_librosa:
    ratios = np.array(ref_t) / np.array(ours_t)
    r.update(librosa_median_s=float(np.median(ref_t)), librosa_times_s=ref_t,
             librosa_x_realtime_per_core=seconds / float(np.median(ref_t)),
             speedup_vs_librosa=float(np.median(ref_t) / np.median(ours_t)),
             speedup_per_repeat_min_max=(float(ratios.min()), float(ratios.max())),
             max_abs_diff_vs_librosa=float(np.max(np.abs(ours - ref))))
  return r, clips, ours


def bench_predict(clips, feats, config, num_tags, repeats):
  rng = np.random.default_rng(0)
  z, mean, std = F.standardize(feats)
  z = z.astype(np.float64)
  per_tag, sk = [], []
  start = time.perf_counter()
  for t in range(num_tags):
    labels = rng.permutation(z.shape[0]) < z.shape[0] // 2
    clf = svm.fit_tag_svm(z[labels], z[~labels], seed=t)
    sk.append(clf)
    per_tag.append(store.from_sklearn_tag(clf))
  train_s = time.perf_counter() - start
  at = store.assemble([f"tag{t}" for t in range(num_tags)],
                      [f"tag{t}" for t in range(num_tags)],
                      product.feature_names(config), "nusvc", mean, std, per_tag)
  # Many clips: the features tiled to ~20,000 rows.
  reps = max(1, 20000 // feats.shape[0])
  x = np.tile(feats, (reps, 1))
  zx = (x.astype(np.float64) - mean) / std
  ours = []
  for _ in range(repeats):
    s = time.process_time()
    p = at.predict_proba(x)
    ours.append(time.process_time() - s)
  s = time.process_time()
  p_sk = np.stack([c.predict_proba(zx)[:, 1] for c in sk], axis=1)
  sk_s = time.process_time() - s
  # End to end from decoded audio: features, then the 50 classifiers.
  e2e = []
  for _ in range(max(1, repeats // 2)):
    s = time.process_time()
    at.predict_proba(F.clips_features(clips, config.sr, config))
    e2e.append(time.process_time() - s)
  return {"num_tags": num_tags, "train_50_nusvc_s": train_s, "rows": int(x.shape[0]),
          "clips_per_s": x.shape[0] / float(np.median(ours)),
          "sklearn_clips_per_s": x.shape[0] / sk_s,
          "max_abs_diff_vs_sklearn": float(np.max(np.abs(p - p_sk))),
          "end_to_end_clips_per_s_per_core": len(clips) / float(np.median(e2e)),
          "end_to_end_x_realtime": len(clips) * 10.0 / float(np.median(e2e))}


def run_benchmark(audio_dir: str, repeats: int = 5, num_tags: int = 50) -> dict:
  config = F.FeatureConfig()
  paths = sorted(glob.glob(os.path.join(audio_dir, "*.ogg"))) if os.path.isdir(audio_dir) else []
  start = time.perf_counter()
  if paths:
    tracks = []
    for p in paths:
      try:
        tracks.append(audio.load_audio(p, config.sr)[0])
      except audio.AudioError:
        pass
    source = f"{len(tracks)} real recordings in {os.path.normpath(audio_dir)}"
  else:
    tracks = synthetic_tracks(config.sr)
    source = "synthetic audio, 510 s (no recordings found)"
  decode_s = time.perf_counter() - start
  feat, clips, feats = bench_features(tracks, config, repeats)
  pred = bench_predict(clips, feats, config, num_tags, repeats)
  return {"source": source, "decode_seconds": decode_s, "features": feat, "predict": pred}


def main(argv):
  del argv
  r = run_benchmark(FLAGS.audio_dir, FLAGS.repeats, FLAGS.num_tags)
  f, p = r["features"], r["predict"]
  print(f"source: {r['source']}; decoding took {r['decode_seconds']:.2f} s")
  print(f"features: {f['audio_seconds']:.1f} s of audio in {f['num_clips']} windows of "
        f"<= 10 s, CPU time on one core, median of {FLAGS.repeats}")
  print(f"  crbm_jax.autotag: {f['ours_median_s']:.3f} s = "
        f"{f['ours_x_realtime_per_core']:.0f}x real time per core; finite: {f['all_finite']}")
  if f["librosa"]:
    lo, hi = f["speedup_per_repeat_min_max"]
    print(f"  librosa pipeline: {f['librosa_median_s']:.3f} s = "
          f"{f['librosa_x_realtime_per_core']:.0f}x real time per core")
    print(f"  speed-up vs librosa (ratio of medians): {f['speedup_vs_librosa']:.2f}x "
          f"(per repeat {lo:.2f}-{hi:.2f}); max |difference| of the features "
          f"{f['max_abs_diff_vs_librosa']:.2e}")
  else:
    print("  librosa is not installed: no baseline (pip install librosa)")
  print(f"prediction, {p['num_tags']} tags (nu-SVMs trained in {p['train_50_nusvc_s']:.1f} s):")
  print(f"  Autotagger.predict_proba: {p['clips_per_s']:,.0f} clips/s over {p['rows']} "
        f"clips (scikit-learn objects: {p['sklearn_clips_per_s']:,.0f} clips/s; max "
        f"|difference| {p['max_abs_diff_vs_sklearn']:.1e})")
  print(f"  end to end from decoded audio (features + 50 tags): "
        f"{p['end_to_end_clips_per_s_per_core']:.1f} clips/s per core = "
        f"{p['end_to_end_x_realtime']:.0f}x real time")


if __name__ == "__main__":
  app.run(main)
