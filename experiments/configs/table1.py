"""The table1 config lives in the package (crbm-reproduce uses it): see
crbm_jax/configs/table1.py."""
from crbm_jax.configs.table1 import get_config  # noqa: F401
