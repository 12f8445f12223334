"""Tag your own audio: clip features, per-tag autotaggers, tags for untagged audio (no JAX).

Three steps, each a function here and a command (``crbm-features``, ``crbm-autotag
train``, ``crbm-autotag predict``):

1. ``extract_features(audio, tags=None)`` -> ``FeatureSet`` (``save_features`` writes
   the compact .npz). Audio is a folder (searched recursively), a text file listing one
   audio path per line, or one file.
   * Without a tag table every file gives the paper's evenly spaced clips
     (``FeatureConfig.num_clips`` clips of ``clip_seconds``); clip ids are
     ``<file id>#<k>`` where the file id is its path relative to the folder without the
     extension (the file stem for files directly in it).
   * With a tag table each of its clips is found as follows (documented in docs/autotag.md):
     the table's ``path`` column when it has one (relative paths are resolved against
     the audio folder, else the table's folder); otherwise the audio file whose id (see
     above) or stem equals the clip id; otherwise the file whose stem equals the clip's
     ``track``. A clip with ``start``/``duration`` is that segment (cut at the end of
     the file when it runs past it); a clip without them gets the evenly spaced clips of
     its file, ids ``<clip>#<k>``, each carrying the clip's tags.
   * Files that cannot be decoded, are silent, empty or too short, and clips whose file
     is missing or whose segment lies outside the audio, are skipped and counted with
     their reason; no feature row is ever NaN.
2. ``train(features, tags, workdir, labels='raw'|'smoothed')``: one binary classifier
   per tag (the paper's linear nu-SVM with Platt probabilities, or logistic regression
   with ``model='linear'``), on balanced examples chosen by tag affinity as in Section 4
   (``svm.select_examples``); grouped cross-validation (album, else artist, else track,
   else audio file, else clip) with balanced accuracy, ROC-AUC and PR-AUC per tag and
   per clip, tested on the raw tags of the held-out folds; then the final classifiers
   on all clips, saved without pickle (``store``).
3. ``predict(autotagger, features)`` -> ``Predictions`` (a probability per clip and
   tag); ``write_predictions`` writes a tag table (clip, tag, affinity, tag_key: the tag
   as the training tags spelled it, and its canonical key) with ``top_k`` /
   ``threshold`` filters, and track summaries (mean over each file's clips).

This module is the Python API of the three steps in one place; they live in
``featureset`` (step 1), ``labels`` and ``training`` (step 2, with ``crossval``, the
fold x tag loop it shares with Table 3's protocol, and ``report``) and ``prediction``
(step 3).
"""
from __future__ import annotations
from crbm_jax.autotag.errors import AutotagError
from crbm_jax.autotag.featureset import (AUDIO_EXTENSIONS, FEATURES_FORMAT, FeatureSet,
                                         count_reasons, extract_features, feature_names,
                                         find_audio, load_features, reason_kind,
                                         save_features)
from crbm_jax.autotag.labels import Labels, load_labels, load_smoothed
from crbm_jax.autotag.prediction import (PREDICTION_COLUMNS, Predictions, check_compatible,
                                         jams_available, load_autotagger, predict,
                                         predict_audio, track_summaries,
                                         write_predictions)
from crbm_jax.autotag.report import roc_pr_auc
from crbm_jax.autotag.training import (AUTOTAGGER_DIR, LABEL_KINDS, MODELS, TrainResult,
                                       train)

__all__ = ["AUDIO_EXTENSIONS", "AUTOTAGGER_DIR", "AutotagError", "FEATURES_FORMAT",
           "FeatureSet", "LABEL_KINDS", "Labels", "MODELS", "PREDICTION_COLUMNS",
           "Predictions", "TrainResult", "check_compatible", "count_reasons",
           "extract_features", "feature_names", "find_audio", "jams_available",
           "load_autotagger", "load_features", "load_labels", "load_smoothed", "predict",
           "predict_audio", "reason_kind", "roc_pr_auc", "save_features",
           "track_summaries", "train", "write_predictions"]
