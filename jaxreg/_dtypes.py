"""Dtype policy: one place decides which dtype jaxreg computes and stores in.

* Scalars (strengths, learning rates, thresholds) are cast explicitly to each
  leaf's dtype; jaxreg's arithmetic never relies on implicit promotion, so it runs
  under ``jax.numpy_dtype_promotion("strict")``.
* Thresholds ``η·λ`` and penalties are formed in at least float32 (float64 when
  the leaf is float64/complex128): :func:`accumulation_dtype`.
* A leaf keeps its dtype: bf16 in, bf16 out.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["accumulation_dtype", "promote", "real_dtype", "scalar_as", "wide_dtypes"]


def real_dtype(dtype: Any) -> Any:
    """float32 for complex64, float64 for complex128, the dtype itself otherwise."""
    return (
        jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else jnp.dtype(dtype)
    )


def promote(*dtypes: Any) -> Any:
    """The standard JAX promotion of ``dtypes``, also under strict promotion.

    jaxreg computes target dtypes with this and then casts explicitly, so its
    arithmetic never relies on implicit promotion.
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*dtypes)


def accumulation_dtype(dtype: Any) -> Any:
    """At least float32, float64 when the leaf is float64/complex128."""
    return promote(real_dtype(dtype), jnp.float32)


def wide_dtypes(dtype: Any) -> tuple[Any, Any]:
    """(real accumulation dtype, value dtype) for a leaf: at least float32."""
    rd = accumulation_dtype(dtype)
    return rd, promote(dtype, rd)


def scalar_as(value: Any, dtype: Any) -> jax.Array:
    """Casts a (possibly traced) scalar hyper-parameter to ``dtype`` explicitly."""
    return jnp.asarray(value).astype(dtype)
