"""The beyond config lives in the package (crbm-reproduce uses it): see
crbm_jax/configs/beyond.py."""
from crbm_jax.configs.beyond import get_config  # noqa: F401
