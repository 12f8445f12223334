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
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
from typing import NamedTuple, Optional, Sequence

import numpy as np
import scipy.fft
import scipy.signal

from crbm_jax.autotag import audio
from crbm_jax.util.atomic import write_npz_atomic
from crbm_jax.util.progress import Progress

FEATURE_VERSION = 1


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


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int,
                      center: bool = True) -> np.ndarray:
  """|STFT|^2 with a periodic Hann window (librosa.stft's framing).

  Args:
    y: [T] signal (T >= n_fft when center is False).
    center: frame t centred on sample t * hop_length, zero padded (librosa's
      default); else frame t starts there.
  Returns:
    [n_fft // 2 + 1, frames] float64; frames = 1 + T // hop_length (center)
    or 1 + (T - n_fft) // hop_length.
  """
  y = np.asarray(y, dtype=np.float64)
  padded = np.pad(y, n_fft // 2) if center else y
  if padded.shape[0] < n_fft:
    raise ValueError(f"signal of {y.shape[0]} samples is shorter than n_fft={n_fft}")
  frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
  window = scipy.signal.get_window("hann", n_fft, fftbins=True)
  spec = scipy.fft.rfft(frames * window, axis=1)
  return (spec.real ** 2 + spec.imag ** 2).T


def power_to_db(power: np.ndarray, amin: float = 1e-10,
                top_db: Optional[float] = 80.0) -> np.ndarray:
  """10 * log10(max(amin, power)), floored top_db below its maximum (ref = 1)."""
  db = 10.0 * np.log10(np.maximum(amin, power))
  if top_db is not None:
    db = np.maximum(db, db.max() - top_db)
  return db


def mel_power(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """Mel power spectrogram [n_mels, frames] (librosa.feature.melspectrogram)."""
  fb = _cached_filterbank(config.sr, config.n_fft, config.n_mels, config.fmin,
                          config.fmax)
  return fb @ power_spectrogram(y, config.n_fft, config.hop_length, config.center)


def mfcc_from_mel(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """MFCCs [n_mfcc, frames] from a mel power spectrogram (librosa.feature.mfcc)."""
  db = power_to_db(mel, config.amin, config.top_db)
  return scipy.fft.dct(db, type=2, norm="ortho", axis=0)[:config.n_mfcc]


def mfcc(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """MFCCs of y: [T] -> [n_mfcc, frames]."""
  return mfcc_from_mel(mel_power(y, config), config)


_FILTERBANKS: dict = {}


def _cached_filterbank(sr, n_fft, n_mels, fmin, fmax) -> np.ndarray:
  key = (sr, n_fft, n_mels, fmin, fmax)
  if key not in _FILTERBANKS:
    _FILTERBANKS[key] = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
  return _FILTERBANKS[key]


# ---------------------------------------------------------------- clip features

def timbral_features(mfccs: np.ndarray) -> np.ndarray:
  """Mean and upper-triangle covariance of MFCCs [n_mfcc, frames] -> [n + n(n+1)/2]."""
  n = mfccs.shape[0]
  cov = np.cov(mfccs, ddof=1) if mfccs.shape[1] > 1 else np.zeros((n, n))
  return np.concatenate([mfccs.mean(axis=1), cov[np.triu_indices(n)]])


def onset_envelopes(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """Half-wave-rectified dB differences in rhythm_bands groups: [bands, frames - 1]."""
  groups = np.array_split(np.arange(mel.shape[0]), config.rhythm_bands)
  band_power = np.stack([mel[g].sum(axis=0) for g in groups])
  db = power_to_db(band_power, config.amin, config.top_db)
  return np.maximum(np.diff(db, axis=1), 0.0)


def normalized_autocorrelation(env: np.ndarray, num_lags: int) -> np.ndarray:
  """Autocorrelation of mean-removed rows at lags 1..num_lags over lag 0.

  Args:
    env: [B, N] envelopes.
  Returns:
    [B, num_lags]; rows with zero variance give zeros.
  """
  x = env - env.mean(axis=1, keepdims=True)
  energy = np.sum(x * x, axis=1)
  out = np.zeros((x.shape[0], num_lags))
  for lag in range(1, min(num_lags, x.shape[1] - 1) + 1):
    out[:, lag - 1] = np.sum(x[:, :-lag] * x[:, lag:], axis=1)
  ok = energy > 1e-12 * x.shape[1]
  out[ok] /= energy[ok, None]
  out[~ok] = 0.0
  return out


def rhythm_features(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
  """[rhythm_bands * rhythm_lags] autocorrelations of the onset envelopes."""
  env = onset_envelopes(mel, config)
  return normalized_autocorrelation(env, config.rhythm_lags).ravel()


def clip_features(y: np.ndarray, sr: int, config: FeatureConfig = FeatureConfig()
                  ) -> np.ndarray:
  """The 389 features (defaults) of one clip y: [T] -> float32 [num_features].

  Raises:
    ValueError: sr differs from config.sr, or y has fewer than 2 frames.
  """
  if sr != config.sr:
    raise ValueError(f"clip sample rate {sr} != config.sr {config.sr}; "
                     "resample first (audio.load_audio does)")
  if y.shape[0] < config.n_fft + 2 * config.hop_length:
    raise ValueError(f"clip of {y.shape[0]} samples is too short for features "
                     f"(< n_fft + 2 hops = {config.n_fft + 2 * config.hop_length})")
  mel = mel_power(y, config)
  feats = np.concatenate([timbral_features(mfcc_from_mel(mel, config)),
                          rhythm_features(mel, config)])
  if not np.all(np.isfinite(feats)):  # cannot happen for finite input; guard
    raise ValueError("non-finite features (non-finite audio samples?)")
  return feats.astype(np.float32)


# ---------------------------------------------------------------- batch API

class Extracted(NamedTuple):
  """features: [C, F] float32; clip_ids: C strings '<path>#<k>';
  skipped: (path, reason) per file that gave no clips."""
  features: np.ndarray
  clip_ids: list
  skipped: list


def file_digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()[:24]


def file_features(path: str, config: FeatureConfig = FeatureConfig(),
                  cache_dir: Optional[str] = None) -> np.ndarray:
  """Features of the config.num_clips evenly spaced clips of one file.

  Returns:
    [num_clips, num_features] float32.
  Raises:
    audio.AudioError: unusable audio (see audio.load_audio), or too short.
  """
  cache_path = None
  if cache_dir is not None:
    try:
      digest = file_digest(path)
    except OSError as e:
      raise audio.AudioError(path, f"cannot read file ({e})") from e
    cache_path = os.path.join(cache_dir, f"{digest}_{config.digest()}.npz")
    if os.path.exists(cache_path):
      with np.load(cache_path) as z:
        return z["features"]
  y, sr = audio.load_audio(path, config.sr)
  clips, _ = audio.cut_clips(y, sr, config.num_clips, config.clip_seconds, path)
  feats = np.stack([clip_features(c, sr, config) for c in clips])
  if cache_path is not None:
    write_npz_atomic(cache_path, features=feats)
  return feats


def _worker(path: str, config: FeatureConfig, cache_dir: Optional[str]):
  try:
    return path, file_features(path, config, cache_dir), None
  except audio.AudioError as e:
    return path, None, e.reason


def extract_features(paths: Sequence[str], config: FeatureConfig = FeatureConfig(),
                     num_workers: int = 2, cache_dir: Optional[str] = None,
                     progress: bool = True) -> Extracted:
  """Features for every clip of every file, in file order.

  Unusable files (audio.AudioError: unreadable, corrupt, empty, silent,
  shorter than one clip) are skipped and listed with their reason. Workers
  run in spawned processes (safe when the caller has JAX loaded).

  Returns:
    Extracted(features [C, F] float32, clip_ids [C], skipped [(path, reason)]).
    Clip id '<path>#<k>' is clip k of that file, starting at
    audio.clip_starts(duration, num_clips, clip_seconds)[k] seconds.
  """
  paths = [os.fspath(p) for p in paths]
  results = {}
  bar = Progress(len(paths), "features", "files", stream=sys.stderr if progress else None)
  if num_workers > 1 and len(paths) > 1:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=ctx) as ex:
      futures = [ex.submit(_worker, p, config, cache_dir) for p in paths]
      for fut in concurrent.futures.as_completed(futures):
        path, feats, reason = fut.result()
        results[path] = (feats, reason)
        bar.update(1)
  else:
    for p in paths:
      _, feats, reason = _worker(p, config, cache_dir)
      results[p] = (feats, reason)
      bar.update(1)
  bar.close()
  blocks, clip_ids, skipped = [], [], []
  for p in paths:
    feats, reason = results[p]
    if feats is None:
      skipped.append((p, reason))
      continue
    blocks.append(feats)
    clip_ids.extend(f"{p}#{k}" for k in range(feats.shape[0]))
  features = (np.concatenate(blocks) if blocks
              else np.zeros((0, config.num_features), np.float32))
  return Extracted(features, clip_ids, skipped)


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
