"""Autotagging (paper Section 4) without JAX: audio clips, features, folds, SVMs, Table 3,
and the tag-your-own-audio product.

Modules: audio (decoding, clip cutting), features (MFCC/rhythm features after
Mandel & Ellis), folds (grouped cross-validation), svm (example selection,
nu-SVMs, balanced accuracy), crossval (the fold x tag loop shared by the protocol and
the product), protocol (the Table 3 / Figure 2 protocol), store (autotaggers saved
without pickle); the product's steps: featureset (clip features and their .npz),
labels (raw and smoothed labels of a tag table), training (cross-validated per-tag
classifiers), report (their metrics and reports), prediction (tags for new clips), and
product (the three steps' Python API in one module).
"""
import glob
import os

DEMO_AUDIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_audio")


def demo_audio_paths() -> list:
  """Sorted paths of the committed demo excerpts (see demo_audio/ATTRIBUTION.md)."""
  return sorted(glob.glob(os.path.join(DEMO_AUDIO_DIR, "*.ogg")))
