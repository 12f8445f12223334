"""Host utilities: atomic writes, progress, statistics, digests, model files.

``atomic`` (every output goes through it), ``progress`` (the one progress display),
``stats`` (mean ± s.e., ranking AUCs), ``fingerprint`` (stable hashes), ``model_io``
(saving and loading a trained model directory; the only one that imports JAX).
"""
