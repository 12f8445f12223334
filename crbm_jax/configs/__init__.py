"""Every experiment's config, in one place: ``get_config(variant)`` with smoke / default /
full variants returning an ``ml_collections.ConfigDict``, and ``training`` (the one schema
of a CRBM fit that all of them use). The absl launchers in ``experiments/`` take
``--config=crbm_jax/configs/<name>.py:<variant>``; ``crbm-reproduce`` uses ``reproduce``."""
