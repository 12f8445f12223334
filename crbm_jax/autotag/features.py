"""Timbral and rhythmic clip features after Mandel & Ellis's MajorMiner autotaggers.

A reconstruction (the paper cites [7] and gives no parameters):
  * timbral (189 values): mean (18) and the unrolled upper triangle, diagonal
    included, of the covariance (ddof=1; 18*19/2 = 171) of 18 MFCCs per frame.
    MFCCs as librosa computes them: Hann-windowed STFT, power spectrum, 40-band Slaney mel filterbank (area normalised),
    10*log10 with amin 1e-10 and an 80 dB floor below the clip's maximum
    (power_to_db), DCT-II with orthonormal scaling, first 18 coefficients.
  * rhythmic (200 values): the 40 mel bands' powers are summed into 4
    contiguous groups of 10 bands, converted to dB the same way; each band's
    onset-strength envelope is the half-wave-rectified first difference over
    time; after subtracting its mean, its autocorrelation at lags 1..50 frames
    (23.2 ms each: up to 1.16 s) is divided by the lag-0 value (so values lie in
    [-1, 1]; an all-constant envelope gives zeros).
Frames: by default only frames whose window lies wholly inside the clip
(librosa's center=False); with centring, the zero-padded edge frames would
dominate the covariance of a stationary sound (a steady tone's covariance
entries reach ~300 from 4 edge frames out of 431).
All of this is numpy/scipy only; tests compare it with librosa.

Speed: the signal path runs in float32 (as librosa does for float32 audio): windowed
frames go into a reused buffer, one real FFT per clip, |.|^2 in place, each mel filter
applied over its nonzero bins only, the DCT as a small float64 matrix product; frame
statistics are accumulated in float64. float64 input to the primitives
(``power_spectrogram``, ``mel_power``) is computed in float64.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
import threading
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
import scipy.fft
import scipy.signal

from crbm_jax.autotag import audio
from crbm_jax.util import pool as pool_lib
from crbm_jax.util.atomic import write_npz_atomic
from crbm_jax.util.progress import Progress

FEATURE_VERSION = 3  # 2: float32 signal path (values differ from 1 by ~1e-5); 3: MFCC
# statistics from frames shifted by the first (a silent or steady clip's covariance is
# exactly 0) and onset envelopes floored at ENVELOPE_FLOOR_DB (rounding noise is no onset)
ENVELOPE_FLOOR_DB = 1e-4  # dB: ~50x the float32 rounding of a dB value, far below audible


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
  """Every parameter of the feature pipeline (part of the cache key)."""
  sr: int = 22050
  n_fft: int = 2048
  hop_length: int = 512
  n_mels: int = 40
  fmin: float = 0.0
  fmax: Optional[float] = None  # None = sr / 2
  n_mfcc: int = 18
  center: bool = False  # True: librosa's centred, zero-padded frames
  amin: float = 1e-10  # power floor before the log
  top_db: Optional[float] = 80.0  # dB floor below each clip's maximum
  rhythm_bands: int = 4
  rhythm_lags: int = 50
  num_clips: int = 5
  clip_seconds: float = 10.0

  @property
  def num_timbral(self) -> int:
    return self.n_mfcc + self.n_mfcc * (self.n_mfcc + 1) // 2

  @property
  def num_rhythmic(self) -> int:
    return self.rhythm_bands * self.rhythm_lags

  @property
  def num_features(self) -> int:
    return self.num_timbral + self.num_rhythmic

  def digest(self) -> str:
    """A short hash of the configuration and the feature code version."""
    blob = json.dumps([FEATURE_VERSION, dataclasses.asdict(self)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------- primitives

def hz_to_mel(freq: np.ndarray) -> np.ndarray:
  """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa."""
  freq = np.asarray(freq, dtype=np.float64)
  f_sp = 200.0 / 3
  min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
  mels = freq / f_sp
  log_part = min_log_hz / f_sp + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep
  return np.where(freq >= min_log_hz, log_part, mels)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
  """Inverse of hz_to_mel."""
  mels = np.asarray(mels, dtype=np.float64)
  f_sp = 200.0 / 3
  min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
  min_log_mel = min_log_hz / f_sp
  log_part = min_log_hz * np.exp(logstep * (np.maximum(mels, min_log_mel) - min_log_mel))
  return np.where(mels >= min_log_mel, log_part, f_sp * mels)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: Optional[float] = None) -> np.ndarray:
  """Slaney-normalised triangular mel filters: [n_mels, n_fft // 2 + 1] float64."""
  fmax = sr / 2 if fmax is None else fmax
  fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
  mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
  fdiff = np.diff(mel_f)
  ramps = mel_f[:, None] - fft_freqs[None, :]
  lower = -ramps[:-2] / fdiff[:-1, None]
  upper = ramps[2:] / fdiff[1:, None]
  weights = np.maximum(0.0, np.minimum(lower, upper))
  return weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]


def _float_dtype(y: np.ndarray):
  """float32 stays float32 (the fast path); anything else is computed in float64."""
  return np.float32 if y.dtype == np.float32 else np.float64


def _power_frames(y: np.ndarray, n_fft: int, hop_length: int, center: bool,
                  workers: Optional[int] = None) -> np.ndarray:
  """|STFT|^2 as [frames, n_fft // 2 + 1] (rows contiguous), in y's float dtype."""
  dtype = _float_dtype(y)
  y = np.asarray(y, dtype=dtype)
  padded = np.pad(y, n_fft // 2) if center else y
  if padded.shape[0] < n_fft:
    raise ValueError(f"signal of {y.shape[0]} samples is shorter than n_fft={n_fft}")
  frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
  spec = scipy.fft.rfft(frames * _cached_window(n_fft, dtype), axis=1,
                        overwrite_x=True, workers=workers)
  return np.square(spec.real) + np.square(spec.imag)


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int,
                      center: bool = True, workers: Optional[int] = None) -> np.ndarray:
  """|STFT|^2 with a periodic Hann window (librosa.stft's framing).

  Args:
    y: [T] signal (T >= n_fft when center is False). float32 input is computed in
      float32 (as librosa does for float32 signals); anything else in float64.
    center: frame t centred on sample t * hop_length, zero padded (librosa's
      default); else frame t starts there.
    workers: scipy.fft worker threads (None: one).
  Returns:
    [n_fft // 2 + 1, frames]; frames = 1 + T // hop_length (center)
    or 1 + (T - n_fft) // hop_length.
  """
  return _power_frames(y, n_fft, hop_length, center, workers).T


def power_to_db(power: np.ndarray, amin: float = 1e-10,
                top_db: Optional[float] = 80.0) -> np.ndarray:
  """10 * log10(max(amin, power)), floored top_db below its maximum (ref = 1)."""
  db = np.log10(np.maximum(power, power.dtype.type(amin)))
  db *= 10.0
  if top_db is not None:
    np.maximum(db, db.max() - top_db, out=db)
  return db


def mel_power(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """Mel power spectrogram [n_mels, frames] (librosa.feature.melspectrogram).

  float32 input takes the fast path (``_mel_frames32``); anything else is computed in
  float64 with a dense filterbank product.
  """
  y = np.asarray(y)
  if y.dtype == np.float32:
    return _mel_frames32(y, config).T
  fb = _cached_filterbank(config.sr, config.n_fft, config.n_mels, config.fmin,
                          config.fmax)
  return (_power_frames(y, config.n_fft, config.hop_length, config.center) @ fb.T).T


_LOCAL = threading.local()


def _frame_buffer(rows: int, n_fft: int) -> np.ndarray:
  """A reused per-thread [rows, n_fft] float32 buffer (fresh multi-megabyte arrays
  per clip made the FFT 3-4x slower in measurements: page faults and cache misses)."""
  buf = getattr(_LOCAL, "frames", None)
  if buf is None or buf.shape[1] != n_fft or buf.shape[0] < rows:
    buf = np.empty((max(rows, 512), n_fft), np.float32)
    _LOCAL.frames = buf
  return buf[:rows]


def _mel_frames32(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """Mel power [frames, n_mels] of a float32 signal: windowed frames written into a
  reused buffer, one real FFT, |.|^2 squared in place on the complex output's float
  view, and each mel filter applied only over its nonzero bins (a filter spans ~2/n_mels
  of the spectrum) with its weights repeated for the interleaved real/imaginary parts."""
  n_fft, hop = config.n_fft, config.hop_length
  padded = np.pad(y, n_fft // 2) if config.center else y
  if padded.shape[0] < n_fft:
    raise ValueError(f"signal of {y.shape[0]} samples is shorter than n_fft={n_fft}")
  frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
  buf = _frame_buffer(frames.shape[0], n_fft)
  np.multiply(frames, _cached_window(n_fft, np.float32), out=buf)
  spec = scipy.fft.rfft(buf, axis=1)
  inter = spec.view(np.float32)  # [frames, 2 * bins]: re, im, re, im, ...
  np.square(inter, out=inter)
  mel = np.zeros((frames.shape[0], config.n_mels), np.float32)
  for m, (lo, weights) in enumerate(_cached_bands(config)):
    if weights.shape[0]:
      mel[:, m] = inter[:, lo:lo + weights.shape[0]] @ weights
  return mel


def _cached_bands(config: FeatureConfig) -> list:
  """Per mel filter: (first interleaved column, float32 weights repeated twice)."""
  def make():
    fb = mel_filterbank(config.sr, config.n_fft, config.n_mels, config.fmin, config.fmax)
    out = []
    for row in fb:
      nz = np.flatnonzero(row)
      if nz.shape[0] == 0:
        out.append((0, np.zeros(0, np.float32)))
        continue
      lo, hi = int(nz[0]), int(nz[-1]) + 1
      out.append((2 * lo, np.repeat(row[lo:hi], 2).astype(np.float32)))
    return out
  return _cached(("bands", config.sr, config.n_fft, config.n_mels, config.fmin,
                  config.fmax), make)


def mfcc_from_mel(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """MFCCs [n_mfcc, frames] from a mel power spectrogram (librosa.feature.mfcc).

  The dB values and the DCT-II (orthonormal, a matrix product with its first n_mfcc
  rows) are computed in float64: cheap at [n_mels, frames], and exact for constant
  frames (a steady or silent clip has zero covariance).
  """
  db = power_to_db(np.asarray(mel, np.float64), config.amin, config.top_db)
  return _cached_dct(config.n_mfcc, mel.shape[0], np.float64) @ db


def mfcc(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """MFCCs of y: [T] -> [n_mfcc, frames]."""
  return mfcc_from_mel(mel_power(y, config), config)


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
  """The first n_out rows of the orthonormal DCT-II of length n_in: [n_out, n_in] float64
  (``scipy.fft.dct(x, type=2, norm='ortho')[:n_out] == dct_matrix(n_out, len(x)) @ x``)."""
  k = np.arange(n_out)[:, None]
  n = np.arange(n_in)[None, :]
  m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
  m[0] /= np.sqrt(2.0)
  return m


_CACHE: dict = {}


def _cached(key, make):
  if key not in _CACHE:
    _CACHE[key] = make()
  return _CACHE[key]


def _cached_filterbank(sr, n_fft, n_mels, fmin, fmax, dtype=np.float64) -> np.ndarray:
  return _cached(("fb", sr, n_fft, n_mels, fmin, fmax, np.dtype(dtype).str),
                 lambda: mel_filterbank(sr, n_fft, n_mels, fmin, fmax).astype(dtype))


def _cached_window(n_fft, dtype) -> np.ndarray:
  return _cached(("win", n_fft, np.dtype(dtype).str), lambda: scipy.signal.get_window(
      "hann", n_fft, fftbins=True).astype(dtype))


def _cached_dct(n_out, n_in, dtype) -> np.ndarray:
  return _cached(("dct", n_out, n_in, np.dtype(dtype).str),
                 lambda: dct_matrix(n_out, n_in).astype(dtype))


# ---------------------------------------------------------------- clip features

def _mean_and_cov(mean: np.ndarray, deviations: np.ndarray) -> np.ndarray:
  """[mean, upper-triangle covariance] from the mean and the frames minus their first
  frame (any shift leaves the covariance unchanged; this one makes frames equal to the
  first contribute exact zeros, so a silent or steady clip's covariance is exactly 0 on
  every machine, whatever the BLAS's summation order)."""
  n = deviations.shape[0]
  cov = np.cov(deviations, ddof=1) if deviations.shape[1] > 1 else np.zeros((n, n))
  return np.concatenate([mean, cov[np.triu_indices(n)]])


def timbral_features(mfccs: np.ndarray) -> np.ndarray:
  """Mean and upper-triangle covariance of MFCCs [n_mfcc, frames] -> [n + n(n+1)/2]
  (float64 statistics)."""
  mfccs = np.asarray(mfccs, np.float64)
  return _mean_and_cov(mfccs.mean(axis=1), mfccs - mfccs[:, :1])


def timbral_features_from_mel(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """``timbral_features(mfcc_from_mel(mel))`` computed so that frames with the same dB
  spectrum as the first give exactly zero deviations: the DCT (linear) is applied to
  the dB frames minus the first frame, and to their mean. A silent clip's (every frame
  at the dB floor) covariance is then exactly 0 by construction, not by rounding luck
  (a matrix product of equal columns need not give equal columns)."""
  db = power_to_db(np.asarray(mel, np.float64), config.amin, config.top_db)
  dct = _cached_dct(config.n_mfcc, db.shape[0], np.float64)
  return _mean_and_cov(dct @ db.mean(axis=1), dct @ (db - db[:, :1]))


def onset_envelopes(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """Half-wave-rectified dB differences in rhythm_bands groups: [bands, frames - 1]
  (rises up to ENVELOPE_FLOOR_DB are 0)."""
  groups = np.array_split(np.arange(mel.shape[0]), config.rhythm_bands)
  band_power = np.stack([mel[g[0]:g[-1] + 1].sum(axis=0) for g in groups])
  db = power_to_db(band_power, config.amin, config.top_db)
  rise = np.diff(db, axis=1)
  # Rises below ENVELOPE_FLOOR_DB are float rounding, not onsets: zero, so a steady
  # tone's envelope (and its autocorrelation) is exactly 0 on every machine.
  return np.where(rise > ENVELOPE_FLOOR_DB, rise, 0.0)


def normalized_autocorrelation(env: np.ndarray, num_lags: int) -> np.ndarray:
  """Autocorrelation of mean-removed rows at lags 1..num_lags over lag 0.

  Args:
    env: [B, N] envelopes.
  Returns:
    [B, num_lags] float64; rows with zero variance give zeros.
  """
  x = np.asarray(env, np.float64)
  x = x - x.mean(axis=1, keepdims=True)
  energy = np.sum(x * x, axis=1)
  out = np.zeros((x.shape[0], num_lags))
  for lag in range(1, min(num_lags, x.shape[1] - 1) + 1):
    out[:, lag - 1] = np.einsum("ij,ij->i", x[:, :-lag], x[:, lag:])
  ok = energy > 1e-12 * x.shape[1]
  out[ok] /= energy[ok, None]
  out[~ok] = 0.0
  return out


def rhythm_features(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """[rhythm_bands * rhythm_lags] autocorrelations of the onset envelopes."""
  env = onset_envelopes(mel, config)
  return normalized_autocorrelation(env, config.rhythm_lags).ravel()


def min_clip_samples(config: FeatureConfig) -> int:
  """The fewest samples a clip needs for features (n_fft + 2 hops: 3 frames)."""
  return config.n_fft + 2 * config.hop_length


def _features_from_mel(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  feats = np.concatenate([timbral_features_from_mel(mel, config),
                          rhythm_features(mel, config)])
  if not np.all(np.isfinite(feats)):  # cannot happen for finite input; guard
    raise ValueError("non-finite features (non-finite audio samples?)")
  return feats.astype(np.float32)


def _check_clip(y: np.ndarray, sr: int, config: FeatureConfig) -> None:
  if sr != config.sr:
    raise ValueError(f"clip sample rate {sr} != config.sr {config.sr}; "
                     "resample first (audio.load_audio does)")
  if y.shape[-1] < min_clip_samples(config):
    raise ValueError(f"clip of {y.shape[-1]} samples is too short for features "
                     f"(< n_fft + 2 hops = {min_clip_samples(config)})")


def clip_features(y: np.ndarray, sr: int, config: FeatureConfig = FeatureConfig()
                  ) -> np.ndarray:
  """The 389 features (defaults) of one clip y: [T] -> float32 [num_features].

  The signal is processed in float32 (STFT, mel, dB, MFCCs); the frame statistics
  (means, covariances, autocorrelations) are accumulated in float64.
  Raises:
    ValueError: sr differs from config.sr, or y has fewer than 3 frames.
  """
  y = np.asarray(y, np.float32)
  _check_clip(y, sr, config)
  return _features_from_mel(mel_power(y, config), config)


def clips_features(clips: Sequence[np.ndarray], sr: int,
                   config: FeatureConfig = FeatureConfig()) -> np.ndarray:
  """Features of several clips: [K, num_features] float32, each as ``clip_features``.

  (Clips are processed one at a time through the same reused frame buffer: one batched
  FFT over all of a file's frames was measured slower, its arrays falling out of cache.)
  """
  clips = [np.asarray(c, np.float32) for c in clips]
  for c in clips:
    _check_clip(c, sr, config)
  if not clips:
    return np.zeros((0, config.num_features), np.float32)
  return np.stack([_features_from_mel(_mel_frames32(c, config).T, config) for c in clips])


# ---------------------------------------------------------------- batch API

class Extracted(NamedTuple):
  """What extract_features found, one row per clip, in input order.

  features: [C, F] float32 (always finite); clip_ids: C strings '<path>#<k>' (k: the
  clip's index among the file's segments); skipped: (path, reason) per file that gave
  no clips; file_index [C]: the input file of each row; segment_index [C]: its segment
  (evenly spaced clip k, or the k-th of the given segments); starts, durations [C]:
  seconds; skipped_segments: (path, k, reason) for given segments that could not be
  used (past the end of the file, too short); cache: counts of cache hits, misses,
  invalid entries (ignored and recomputed) and entries that could not be written
  ("unwritten": the features stand, the cache just misses them).
  """
  features: np.ndarray
  clip_ids: list
  skipped: list
  file_index: np.ndarray = np.zeros(0, np.int64)
  segment_index: np.ndarray = np.zeros(0, np.int64)
  starts: np.ndarray = np.zeros(0)
  durations: np.ndarray = np.zeros(0)
  skipped_segments: list = []
  cache: dict = {}


def file_digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()[:24]


Segments = Optional[Sequence[tuple]]  # ((start_s, duration_s), ...); None: evenly spaced


def _segments_key(segments: Segments, min_clip_seconds: float) -> str:
  if segments is None:
    return "even"
  blob = json.dumps([[float(s), float(d)] for s, d in segments] + [min_clip_seconds])
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cut_segments(num_samples: int, sr: int, segments: Sequence[tuple],
                 config: FeatureConfig, min_clip_seconds: float = 0.0) -> list:
  """Sample ranges of given (start, duration) segments of a signal of num_samples.

  A segment running past the end of the audio is cut at the end; one that starts after
  the end, or leaves fewer than max(min_clip_seconds * sr, n_fft + 2 hops) samples, is
  dropped with its reason. NaN start means 0; NaN duration means config.clip_seconds.
  Returns:
    [(lo, hi) or reason string] per segment.
  """
  need = max(int(math.ceil(min_clip_seconds * sr)), min_clip_samples(config))
  total = num_samples / sr
  out = []
  for start, dur in segments:
    start = 0.0 if not math.isfinite(start) else float(start)
    dur = config.clip_seconds if not math.isfinite(dur) else float(dur)
    if start < 0 or dur <= 0:
      out.append(f"bad segment: start {start:g} s, duration {dur:g} s")
      continue
    lo = int(round(start * sr))
    hi = min(int(round((start + dur) * sr)), num_samples)
    if lo >= num_samples:
      out.append(f"segment starts at {start:g} s, after the end of the {total:.2f} s file")
    elif hi - lo < need:
      out.append(f"too short: {(hi - lo) / sr:.2f} s of audio from {start:g} s "
                 f"(needs >= {need / sr:.2f} s)")
    else:
      out.append((lo, hi))
  return out


class CacheEntryError(ValueError):
  """A cache file that is not a valid entry for the wanted key."""


def _read_cache(path: str, key: str, num_features: int, num_segments: Optional[int],
                num_clips: int) -> dict:
  """A validated cache entry (features finite, shapes consistent, key equal)."""
  try:
    with np.load(path, allow_pickle=False) as z:
      entry = {k: z[k] for k in ("key", "features", "kept", "starts", "durations",
                                 "num_samples")}
  except Exception as e:  # BadZipFile, pickled/object arrays, missing keys, bad CRC ...
    raise CacheEntryError(f"unreadable ({type(e).__name__}: {e})") from e
  feats, kept = entry["features"], entry["kept"]
  if str(entry["key"]) != key:
    raise CacheEntryError("digest does not match the file and settings")
  if feats.dtype != np.float32 or feats.ndim != 2 or feats.shape[1] != num_features:
    raise CacheEntryError(f"features of dtype {feats.dtype} and shape {feats.shape}, "
                          f"expected float32 [clips, {num_features}]")
  c = feats.shape[0]
  if (kept.shape != (c,) or kept.dtype.kind not in "iu" or entry["starts"].shape != (c,)
      or entry["durations"].shape != (c,) or entry["num_samples"].shape != ()):
    raise CacheEntryError("index arrays disagree with the features' shape")
  if num_segments is None:  # evenly spaced: every clip is there
    if not np.array_equal(kept, np.arange(num_clips)):
      raise CacheEntryError(f"expected the {num_clips} evenly spaced clips")
  elif c and (np.any(np.diff(kept) <= 0) or kept[0] < 0 or kept[-1] >= num_segments):
    raise CacheEntryError("segment indices out of range")
  if not (np.all(np.isfinite(feats)) and np.all(np.isfinite(entry["starts"]))
          and np.all(np.isfinite(entry["durations"]))):
    raise CacheEntryError("non-finite values")
  return entry


def file_clips(path: str, config: FeatureConfig = FeatureConfig(),
               cache_dir: Optional[str] = None, segments: Segments = None,
               min_clip_seconds: float = 0.0) -> tuple[dict, str]:
  """Features of one file's clips: evenly spaced (segments None) or the given segments.

  The cache entry, named by the file's content hash, the configuration's digest and the
  segments, is validated before use (shape, dtype, finiteness, stored digest); an
  unreadable or invalid entry is ignored, recomputed and rewritten.
  Returns:
    ({'features' [K, F] float32, 'kept' [K] segment indices, 'starts' [K],
    'durations' [K] seconds, 'num_samples' int}, cache status: 'hit', 'miss', 'invalid'
    or 'off').
  Raises:
    audio.AudioError: unusable audio (see audio.load_audio), or too short.
  """
  cache_path, status, key = None, "off", ""
  if cache_dir is not None:
    try:
      digest = file_digest(path)
    except OSError as e:
      raise audio.AudioError(path, f"cannot read file ({e})") from e
    key = f"{digest}_{config.digest()}_{_segments_key(segments, min_clip_seconds)}"
    cache_path = os.path.join(cache_dir, f"{key}.npz")
    status = "miss"
    if os.path.exists(cache_path):
      try:
        entry = _read_cache(cache_path, key, config.num_features,
                            None if segments is None else len(segments), config.num_clips)
        return ({k: entry[k] for k in ("features", "kept", "starts", "durations")}
                | {"num_samples": int(entry["num_samples"])}, "hit")
      except CacheEntryError:
        status = "invalid"
  y, sr = audio.load_audio(path, config.sr)
  if segments is None:
    clips, starts = audio.cut_clips(y, sr, config.num_clips, config.clip_seconds, path)
    kept = np.arange(clips.shape[0])
    durations = np.full(clips.shape[0], clips.shape[1] / sr)
  else:
    bounds = cut_segments(y.shape[0], sr, segments, config, min_clip_seconds)
    kept = np.array([k for k, b in enumerate(bounds) if not isinstance(b, str)], np.int64)
    clips = [y[bounds[k][0]:bounds[k][1]] for k in kept]
    starts = np.array([bounds[k][0] / sr for k in kept])
    durations = np.array([(bounds[k][1] - bounds[k][0]) / sr for k in kept])
  feats = clips_features(clips, sr, config)
  result = {"features": feats, "kept": np.asarray(kept, np.int64),
            "starts": np.asarray(starts, np.float64),
            "durations": np.asarray(durations, np.float64), "num_samples": int(y.shape[0])}
  if cache_path is not None:
    try:
      write_npz_atomic(cache_path, key=np.array(key), **result)
    except OSError:  # e.g. an entry that is a folder, a full disk: the result stands
      return result, "unwritten"
  return result, status


def file_features(path: str, config: FeatureConfig = FeatureConfig(),
                  cache_dir: Optional[str] = None) -> np.ndarray:
  """Features of the config.num_clips evenly spaced clips of one file.

  Returns:
    [num_clips, num_features] float32.
  Raises:
    audio.AudioError: unusable audio (see audio.load_audio), or too short.
  """
  return file_clips(path, config, cache_dir)[0]["features"]


def _worker(path: str, config: FeatureConfig, cache_dir: Optional[str],
            segments: Segments = None, min_clip_seconds: float = 0.0):
  try:
    result, status = file_clips(path, config, cache_dir, segments, min_clip_seconds)
    return path, result, None, status
  except audio.AudioError as e:
    return path, None, e.reason, "off"


def cache_problem(cache_dir: str) -> Optional[str]:
  """Why ``cache_dir`` cannot serve as the feature cache (None when it can): a file, not
  creatable, or not writable. Nothing is left behind by the check."""
  if os.path.lexists(cache_dir) and not os.path.isdir(cache_dir):
    return "it is a file, not a folder"
  try:
    os.makedirs(cache_dir, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=cache_dir)
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    return f"cannot write there: {(e.strerror or str(e)).lower()}"
  return None


def extract_features(paths: Sequence[str], config: FeatureConfig = FeatureConfig(),
                     num_workers: int = 2, cache_dir: Optional[str] = None,
                     progress: bool = True, segments: Optional[Sequence[Segments]] = None,
                     min_clip_seconds: float = 0.0,
                     log: Optional[Callable[[str], None]] = None) -> Extracted:
  """Features for every clip of every file, in file order.

  Unusable files (audio.AudioError: unreadable, corrupt, empty, silent,
  shorter than one clip) are skipped and listed with their reason; they never
  give rows (no NaN is ever returned). Workers run in spawned processes (safe when
  the caller has JAX loaded).

  Args:
    segments: per file, None (the evenly spaced clips of ``config``) or a list of
      (start, duration) seconds (see ``cut_segments``).
  Returns:
    Extracted (see its docstring). Clip id '<path>#<k>' is segment k of that file; with
    evenly spaced clips it starts at audio.clip_starts(duration, num_clips,
    clip_seconds)[k] seconds.
  """
  paths = [os.fspath(p) for p in paths]
  segments = [None] * len(paths) if segments is None else list(segments)
  if len(segments) != len(paths):
    raise ValueError(f"{len(segments)} segment lists for {len(paths)} files")
  say = log if log is not None else (lambda m: print(m, file=sys.stderr))
  if cache_dir is not None:
    problem = cache_problem(cache_dir)
    if problem is not None:  # said once; the run goes on without a cache
      say(f"crbm-features: the feature cache {cache_dir} cannot be used ({problem}); "
          "computing the features without it")
      cache_dir = None
  results = [None] * len(paths)
  bar = Progress(len(paths), "features", "files", stream=sys.stderr if progress else None)
  if num_workers > 1 and len(paths) > 1 and pool_lib.can_spawn():
    try:
      with pool_lib.spawn_pool(min(num_workers, len(paths))) as ex:
        futures = {ex.submit(_worker, p, config, cache_dir, s, min_clip_seconds): i
                   for i, (p, s) in enumerate(zip(paths, segments))}
        for fut in concurrent.futures.as_completed(futures):
          results[futures[fut]] = fut.result()
          bar.update(1)
    except concurrent.futures.process.BrokenProcessPool:
      pass  # a worker died (e.g. killed for memory): the rest runs in this process
  for i, (p, s) in enumerate(zip(paths, segments)):
    if results[i] is None:
      results[i] = _worker(p, config, cache_dir, s, min_clip_seconds)
      bar.update(1)
  bar.close()
  blocks, clip_ids, skipped, skipped_segments = [], [], [], []
  file_index, seg_index, starts, durations = [], [], [], []
  cache = {"hit": 0, "miss": 0, "invalid": 0}  # + "unwritten" when an entry could not be
  for i, (p, (_, result, reason, status)) in enumerate(zip(paths, results)):
    if status in cache:
      cache[status] += 1
    elif status == "unwritten":  # computed (a miss or an invalid entry), not stored
      cache["unwritten"] = cache.get("unwritten", 0) + 1
    if result is None:
      skipped.append((p, reason))
      continue
    if segments[i] is not None:
      kept = set(result["kept"].tolist())
      bounds = cut_segments(result["num_samples"], config.sr, segments[i], config,
                            min_clip_seconds)
      skipped_segments.extend((p, k, b) for k, b in enumerate(bounds) if k not in kept)
    if result["features"].shape[0] == 0:
      skipped.append((p, "no usable segment"))
      continue
    blocks.append(result["features"])
    clip_ids.extend(f"{p}#{k}" for k in result["kept"].tolist())
    file_index.append(np.full(result["features"].shape[0], i, np.int64))
    seg_index.append(result["kept"])
    starts.append(result["starts"])
    durations.append(result["durations"])
  cat = lambda xs, dtype: np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)
  features = (np.concatenate(blocks) if blocks
              else np.zeros((0, config.num_features), np.float32))
  return Extracted(features, clip_ids, skipped, cat(file_index, np.int64),
                   cat(seg_index, np.int64), cat(starts, np.float64),
                   cat(durations, np.float64), skipped_segments, cache)


def standardize(features: np.ndarray, mean: Optional[np.ndarray] = None,
                std: Optional[np.ndarray] = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Z-scores columns of features [C, F] (statistics computed when not given).

  Zero-variance columns get std 1 (they become 0, not NaN).
  Returns:
    (z [C, F] float32, mean [F], std [F]).
  """
  x = np.asarray(features, dtype=np.float64)
  if mean is None:
    mean = x.mean(axis=0)
  if std is None:
    std = x.std(axis=0)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
  return ((x - mean) / std).astype(np.float32), mean, std
