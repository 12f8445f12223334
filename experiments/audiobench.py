"""Audio helpers the feature and autotagging benchmarks share (no JAX: those benchmarks
time one CPU thread, and importing JAX would start its thread pools). Imported as
``audiobench``: the scripts' own folder is on ``sys.path`` when they run."""
import os

import numpy as np

from crbm_jax.autotag import features as F

DEFAULT_AUDIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                 "shared", "data", "audio")


def synthetic_tracks(sr: int, total_seconds: float = 510.0, num: int = 8, seed: int = 0):
  """Noise, tones and click trains, num tracks adding to total_seconds."""
  rng = np.random.default_rng(seed)
  out = []
  for k in range(num):
    t = np.arange(int(total_seconds / num * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * (110 * (k + 1)) * t) + 0.05 * rng.normal(size=t.shape)
    y[(np.arange(t.shape[0]) % int(sr * (0.3 + 0.05 * k))) < 50] += 0.8
    out.append(y.astype(np.float32))
  return out


def windows(y: np.ndarray, sr: int, seconds: float = 10.0):
  n = int(seconds * sr)
  return [y[i:i + n] for i in range(0, y.shape[0], n) if y[i:i + n].shape[0] >= sr]


def librosa_clip_features(y: np.ndarray, sr: int, config: F.FeatureConfig) -> np.ndarray:
  import librosa  # pylint: disable=import-outside-toplevel
  mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=config.n_fft,
                                       hop_length=config.hop_length, n_mels=config.n_mels,
                                       center=config.center, fmin=config.fmin,
                                       fmax=config.fmax)
  mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, amin=config.amin,
                                                    top_db=config.top_db),
                              n_mfcc=config.n_mfcc)
  return np.concatenate([F.timbral_features(mfcc), F.rhythm_features(mel, config)])
