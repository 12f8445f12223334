"""Type aliases shared across crbm_jax."""
from typing import Any

import jax

Array = jax.Array
PRNGKey = jax.Array  # a typed key array (jax.random.key) or a raw uint32[2] key
PyTree = Any
