"""The table2 config lives in the package (crbm-reproduce uses it): see
crbm_jax/configs/table2.py."""
from crbm_jax.configs.table2 import get_config  # noqa: F401
