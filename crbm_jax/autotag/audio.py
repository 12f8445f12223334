"""Audio decoding and clip extraction (numpy/scipy/soundfile only; no JAX).

The paper (Section 2) cuts "five 10-second clips evenly spaced throughout the
track". The exact rule used here (``clip_starts``): clip k of K has its centre
at ``(k + 0.5) / K`` of the track, i.e. start = (k + 0.5) * D / K - L / 2,
clamped to ``[0, D - L]`` (D = track duration, L = clip length). For a track
shorter than K * L the clips overlap; a track shorter than L is an error.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction
from typing import Union

import numpy as np
import scipy.signal
import soundfile

PathLike = Union[str, os.PathLike]

# Peak amplitude below which a whole file counts as digital silence.
SILENCE_PEAK = 1e-6


class AudioError(ValueError):
  """Audio that cannot be used: unreadable, corrupt, empty, silent, too short."""

  def __init__(self, path: PathLike, reason: str):
    self.path = str(path)
    self.reason = reason
    super().__init__(f"{self.path}: {reason}")


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
  """Polyphase resampling of y: [T] from orig_sr to target_sr (float32)."""
  if orig_sr == target_sr:
    return y.astype(np.float32, copy=False)
  ratio = Fraction(int(target_sr), int(orig_sr))
  out = scipy.signal.resample_poly(y.astype(np.float64), ratio.numerator,
                                   ratio.denominator)
  return out.astype(np.float32)


def check_readable(path: PathLike) -> None:
  """AudioError saying plainly why a file cannot be opened (not found, permission
  denied, a folder), before a decoder reports it as a decoding error."""
  if not os.path.exists(path):
    raise AudioError(path, "file not found")
  if os.path.isdir(path):
    raise AudioError(path, "is a folder, not an audio file")
  try:
    with open(path, "rb"):
      pass
  except OSError as e:
    raise AudioError(path, f"cannot read the file: {(e.strerror or str(e)).lower()}"
                     ) from None


def load_audio(path: PathLike, sr: int = 22050) -> tuple[np.ndarray, int]:
  """Decodes an audio file to mono float32 at sample rate sr.

  Any format libsndfile reads (wav, flac, ogg/vorbis, mp3 with libsndfile >=
  1.1). Channels are averaged; the signal is resampled with
  ``scipy.signal.resample_poly``.

  Returns:
    (y: [T] float32, sr).
  Raises:
    AudioError: missing/unreadable/corrupt file, no samples, non-finite
      samples, or digital silence (peak < 1e-6).
  """
  check_readable(path)
  try:
    data, file_sr = soundfile.read(os.fspath(path), dtype="float32",
                                   always_2d=True)
  except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, ...
    raise AudioError(path, f"cannot decode audio ({type(e).__name__}: {e})") from e
  if data.shape[0] == 0:
    raise AudioError(path, "empty audio (0 samples)")
  y = data.mean(axis=1)
  if not np.all(np.isfinite(y)):
    raise AudioError(path, "audio contains NaN or infinite samples")
  if float(np.max(np.abs(y))) < SILENCE_PEAK:
    raise AudioError(path, f"silent audio (peak amplitude < {SILENCE_PEAK:g})")
  return resample(y, int(file_sr), int(sr)), int(sr)


def clip_starts(track_duration: float, num_clips: int = 5,
                clip_seconds: float = 10.0) -> np.ndarray:
  """Start times (seconds) of num_clips evenly spaced clips.

  Clip k's centre is at (k + 0.5) / num_clips of the track; starts are
  clamped to [0, track_duration - clip_seconds].

  Returns:
    [num_clips] float64 starts.
  Raises:
    ValueError: track shorter than one clip, or num_clips < 1.
  """
  if num_clips < 1:
    raise ValueError(f"num_clips must be >= 1, got {num_clips}")
  if not track_duration >= clip_seconds:
    raise ValueError(f"track of {track_duration:.3f} s is shorter than one "
                     f"{clip_seconds:g}-second clip")
  centres = (np.arange(num_clips) + 0.5) / num_clips * track_duration
  return np.clip(centres - clip_seconds / 2, 0.0, track_duration - clip_seconds)


def cut_clips(y: np.ndarray, sr: int, num_clips: int = 5,
              clip_seconds: float = 10.0, path: PathLike = "<array>"
              ) -> tuple[np.ndarray, np.ndarray]:
  """Cuts num_clips evenly spaced clips out of a track.

  Args:
    y: [T] mono signal.
  Returns:
    (clips: [num_clips, clip_samples] float32, starts: [num_clips] seconds).
  Raises:
    AudioError: the track is shorter than one clip.
  """
  clip_samples = int(round(clip_seconds * sr))
  if y.shape[0] < clip_samples:
    raise AudioError(path, f"too short: {y.shape[0] / sr:.2f} s < "
                     f"{clip_seconds:g} s clip")
  starts = clip_starts(y.shape[0] / sr, num_clips, clip_seconds)
  idx = np.minimum(np.round(starts * sr).astype(np.int64),
                   y.shape[0] - clip_samples)
  clips = np.stack([y[i:i + clip_samples] for i in idx]).astype(np.float32)
  return clips, idx / sr


def audio_duration(path: PathLike) -> float:
  """Duration in seconds from the file header (no decoding)."""
  check_readable(path)
  try:
    info = soundfile.info(os.fspath(path))
  except Exception as e:
    raise AudioError(path, f"cannot read header ({type(e).__name__}: {e})") from e
  if not math.isfinite(info.duration):
    raise AudioError(path, "unknown duration")
  return float(info.duration)
