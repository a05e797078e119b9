"""Proximal operators as pure functions on arrays and pytrees.

``prox_{t·R}(v) = argmin_x  R(x)·t + ½‖x − v‖²``. Leaf-level operators take an array
and a threshold ``t`` already cast to the array's real dtype; the pytree-level
functions take a ``strength`` (number or prefix pytree) and an optional ``mask``.
Every transform in :mod:`jaxreg` is built on these leaf operators.

NaN and inf propagate (they are never turned into zeros); complex arrays follow
the modulus rule ``z·max(0, 1 − t/|z|)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxreg import _kernels, _penalties
from jaxreg import _validation as v

__all__ = [
    "block_soft_threshold",
    "projection_l1_ball",
    "projection_l2_ball",
    "prox_elastic_net",
    "prox_group_lasso",
    "prox_l1",
    "prox_l2",
    "soft_threshold",
]


def soft_threshold(x: jax.Array, threshold: jax.typing.ArrayLike) -> jax.Array:
    r"""Soft thresholding ``S_t(x) = sign(x)·max(|x| − t, 0)``, the prox of ``t·|·|``.

    Entries with ``|x| <= t`` become exactly zero. For complex ``x`` it is
    ``x·max(0, 1 − t/|x|)``. NaN stays NaN, ``±inf`` stays ``±inf``.

    Args:
      x: an array.
      threshold: ``t >= 0``, a scalar (or an array broadcastable to ``x``).

    Returns:
      An array of ``x``'s dtype.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.soft_threshold(jnp.array([-2.0, 0.5, 3.0]), 1.0))
      [-1.  0.  2.]

    References:
      Donoho, *De-noising by soft-thresholding*, 1995.
    """
    x = jnp.asarray(x)
    t = v.scalar_as(threshold, v.real_dtype(x.dtype))
    if jnp.iscomplexobj(x):
        mod = jnp.abs(x)
        safe = jnp.where(mod == 0, jnp.ones_like(mod), mod)
        scale = jnp.where(mod == 0, jnp.zeros_like(mod), jnp.maximum(1 - t / safe, 0))
        return x * scale.astype(x.dtype)
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, jnp.zeros((), x.dtype))


def shrink(x: jax.Array, t: jax.Array) -> jax.Array:
    """``x / (1 + t)``: the prox of ``(t/2)·‖·‖²``."""
    return x / (1 + t).astype(x.dtype)


def elastic_net_shrink(x: jax.Array, t: jax.Array, l1_ratio: Any) -> jax.Array:
    """``S_{t·r}(x) / (1 + t·(1 − r))``: the prox of ``t·(r|·| + (1−r)/2·‖·‖²)``."""
    r = v.scalar_as(l1_ratio, t.dtype)
    return soft_threshold(x, t * r) / (1 + t * (1 - r)).astype(x.dtype)


def block_soft_threshold(
    x: jax.Array, threshold: jax.typing.ArrayLike, *, group_axis: int | tuple[int, ...] = -1
) -> jax.Array:
    r"""Group soft thresholding ``x_g · max(0, 1 − t·√|g| / ‖x_g‖₂)`` per group.

    Groups are the entries sharing the index along ``group_axis`` (see
    :func:`jaxreg.group_lasso_penalty`). Arrays with ``ndim < 2`` are returned
    unchanged. A group with ``‖x_g‖ <= t·√|g|`` becomes exactly zero. The
    derivative at ``x_g = 0`` is finite (jaxopt's ``prox_group_lasso`` gives NaN).

    Args:
      x: an array.
      threshold: ``t >= 0``, a scalar.
      group_axis: axis or axes indexing the groups.

    Returns:
      An array of ``x``'s dtype.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> k = jnp.array([[3.0, 0.1], [4.0, 0.1]])
      >>> print(jnp.round(jaxreg.block_soft_threshold(k, 0.5 / 2 ** 0.5), 4))
      [[2.7 0. ]
       [3.6 0. ]]

    References:
      Yuan & Lin, 2006; Parikh & Boyd, *Proximal algorithms*, 2014, §6.5.4.
    """
    return _kernels.block_soft_threshold(x, threshold, group_axis)[0]


def map_prox(
    tree: Any, strength: Any, mask: Any, leaf_prox: Callable[[jax.Array, jax.Array], jax.Array]
) -> Any:
    """Applies ``leaf_prox(x, t)`` to every regularized float leaf of ``tree``."""
    strengths, masks = v.per_leaf_settings(strength, mask, tree)

    def leaf(x, s, m):
        if not v.is_regularized(x, s, m):
            return x
        return leaf_prox(x, v.scalar_as(s, v.real_dtype(x.dtype)))

    return jax.tree.map(leaf, tree, strengths, masks)


def prox_l1(tree: Any, strength: Any = 1.0, *, mask: Any = None) -> Any:
    r"""Prox of ``strength·‖·‖₁`` on a pytree: soft thresholding at ``strength``.

    Args:
      tree: a pytree of arrays.
      strength: threshold ``t >= 0``: number or prefix pytree of numbers.
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      A pytree like ``tree``; masked-out and integer leaves unchanged.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox_l1({"w": jnp.array([0.3, -1.5])}, 0.5)["w"])
      [ 0. -1.]

    References:
      Parikh & Boyd, *Proximal algorithms*, 2014, §6.5.2.
    """
    return map_prox(tree, strength, mask, soft_threshold)


def prox_l2(tree: Any, strength: Any = 1.0, *, mask: Any = None) -> Any:
    r"""Prox of ``(strength/2)·‖·‖²`` on a pytree: ``x / (1 + strength)``.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox_l2(jnp.array([2.0, -4.0]), 1.0))
      [ 1. -2.]

    References:
      Parikh & Boyd, *Proximal algorithms*, 2014, §6.1.1.
    """
    return map_prox(tree, strength, mask, shrink)


def prox_elastic_net(
    tree: Any, strength: Any = 1.0, *, l1_ratio: Any = 0.5, mask: Any = None
) -> Any:
    r"""Prox of ``strength·(r‖·‖₁ + (1−r)/2‖·‖²)``: ``S_{t·r}(x) / (1 + t·(1−r))``.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox_elastic_net(jnp.array([3.0, 0.2]), 1.0, l1_ratio=0.5))
      [1.6666667 0.       ]

    References:
      Zou & Hastie, 2005; Parikh & Boyd, *Proximal algorithms*, 2014, §6.5.3.
    """
    v.check_l1_ratio(l1_ratio)
    return map_prox(tree, strength, mask, lambda x, t: elastic_net_shrink(x, t, l1_ratio))


def prox_group_lasso(
    tree: Any,
    strength: Any = 1.0,
    *,
    group_axis: int | tuple[int, ...] = -1,
    mask: Any = None,
) -> Any:
    r"""Prox of :func:`jaxreg.group_lasso_penalty` on a pytree (block soft threshold).

    Each leaf with ``ndim >= 2`` is thresholded group by group (``group_axis``);
    leaves with ``ndim < 2`` are returned unchanged.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> k = jnp.array([[3.0, 0.1], [4.0, 0.1]])
      >>> print(jnp.round(jaxreg.prox_group_lasso({"kernel": k}, 0.5 / 2 ** 0.5)["kernel"], 4))
      [[2.7 0. ]
       [3.6 0. ]]

    References:
      Yuan & Lin, 2006.
    """
    _penalties.check_group_axis(group_axis)
    return map_prox(
        tree, strength, mask, lambda x, t: block_soft_threshold(x, t, group_axis=group_axis)
    )


def projection_l1_ball(tree: Any, radius: float = 1.0) -> Any:
    r"""Euclidean projection onto ``{x : ‖x‖₁ <= radius}`` (Duchi et al. 2008).

    Thin wrapper over :func:`optax.projections.projection_l1_ball` that checks
    ``radius``.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.projection_l1_ball(jnp.array([2.0, -1.0]), 1.0))
      [ 1. -0.]
    """
    v.check_scalar_or_schedule("radius", radius)
    return optax.projections.projection_l1_ball(tree, scale=radius)


def projection_l2_ball(tree: Any, radius: float = 1.0) -> Any:
    r"""Euclidean projection onto ``{x : ‖x‖₂ <= radius}``.

    Thin wrapper over :func:`optax.projections.projection_l2_ball`.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.projection_l2_ball(jnp.array([3.0, 4.0]), 1.0))
      [0.6 0.8]
    """
    v.check_scalar_or_schedule("radius", radius)
    return optax.projections.projection_l2_ball(tree, scale=radius)
