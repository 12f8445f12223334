"""ConfigDict configs (``get_config(variant)`` with smoke / default / full) for every
experiment; ``experiments/configs/*.py`` re-export them for the absl launchers."""
