"""The table3 config lives in the package (crbm-reproduce uses it): see
crbm_jax/configs/table3.py."""
from crbm_jax.configs.table3 import get_config  # noqa: F401
