"""Autotagging (paper Section 4) without JAX: audio clips, features, folds, SVMs, Table 3.

Modules: audio (decoding, clip cutting), features (MFCC/rhythm features after
Mandel & Ellis), folds (grouped cross-validation), svm (example selection,
nu-SVMs, balanced accuracy), table3 (the Table 3 / Figure 2 protocol).
"""
import glob
import os

DEMO_AUDIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_audio")


def demo_audio_paths() -> list:
  """Sorted paths of the committed demo excerpts (see demo_audio/ATTRIBUTION.md)."""
  return sorted(glob.glob(os.path.join(DEMO_AUDIO_DIR, "*.ogg")))
