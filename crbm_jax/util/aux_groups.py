"""The auxiliary groups a tag table and a model file may condition on: one vocabulary for
the data layer's observations (``data.observations.AUX_COLUMNS``) and the model files
(``util.model_io``). No JAX here, so the data layer stays JAX-free."""
AUX_GROUPS = ("user", "track", "clip", "artist", "album")
