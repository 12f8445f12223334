"""Default values that two layers share, in one place below both (imports nothing, so
reading a config loads no JAX).

``SPACE_DEFAULTS``: the values a validation search tries per hyperparameter. The search
schema (``configs/search.py``) and its grid type (``learn.space.SearchSpace``) both take
them from here, so the configs layer and the learning layer cannot disagree.
"""
SPACE_DEFAULTS = dict(
    num_hidden=(16, 32, 64, 128), learning_rate=(0.01, 0.03, 0.1, 0.3),
    l1_aux=(0.0, 1e-4, 1e-3, 1e-2), aux_lr_scale=(1.0, 10.0, 30.0, 100.0),
    weight_decay=(0.0, 1e-4), momentum=(0.5,), batch_size=(100,))
