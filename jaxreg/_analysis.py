"""Sparsity metrics: how many weights, and how many whole units, are exactly zero.

Everything here is jittable and costs one pass over each leaf, so it can be
logged every step inside a jitted training step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxreg import _checks, _dtypes, _leafwise, _penalties

__all__ = ["LeafSparsity", "sparsity", "sparsity_report"]


class LeafSparsity(NamedTuple):
    """Sparsity of one leaf (all fields are scalar arrays).

    Attributes:
      size: number of entries (int32).
      zeros: number of entries exactly equal to zero (int32).
      fraction: ``zeros / size`` (float32).
      l1: ``Σ|w|`` (modulus for complex), at least float32.
      l2: ``‖w‖₂ = √Σ|w|²``, at least float32.
      units: number of groups (output units or filters) for a leaf with
        ``ndim >= 2``, 0 otherwise (int32).
      dead_units: groups whose entries are all exactly zero (int32).
    """

    size: jax.Array
    zeros: jax.Array
    fraction: jax.Array
    l1: jax.Array
    l2: jax.Array
    units: jax.Array
    dead_units: jax.Array


def _selected(params: Any, mask: Any) -> list[jax.Array]:
    _checks.check_mask_spec(mask)
    params = _penalties.floats_as_arrays(params)
    masks = _leafwise.mask_tree(mask, params)
    return [
        w
        for w, m in zip(jax.tree.leaves(params), jax.tree.leaves(masks), strict=True)
        if m and _leafwise.is_float_leaf(w)
    ]


def sparsity(params: Any, *, mask: Any = None) -> jax.Array:
    r"""Fraction of entries that are exactly zero: ``Σ_leaf #{w = 0} / Σ_leaf size``.

    Only float and complex leaves (Python floats included) selected by ``mask`` count;
    integer, boolean and ``None`` leaves are ignored. With no counted entry the result is ``0.0``.

    Args:
      params: a pytree of arrays.
      mask: ``None`` (all leaves), a pytree of Python bools (prefix of the params is
        fine) or a function ``params -> such a pytree``: which leaves to count.

    Returns:
      A float32 scalar in ``[0, 1]`` (jittable).

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"w": jnp.array([0.0, 1.0, 0.0, 2.0]), "b": jnp.zeros(4)}
      >>> print(jaxreg.sparsity(params))
      0.75
      >>> print(jaxreg.sparsity(params, mask={"w": True, "b": False}))
      0.5
    """
    leaves = _selected(params, mask)
    total = sum(int(w.size) for w in leaves)
    if total == 0:
        return jnp.zeros((), jnp.float32)
    zeros = jnp.zeros((), jnp.float32)
    for w in leaves:
        zeros = zeros + jnp.sum(w == 0, dtype=jnp.int32).astype(jnp.float32)
    return zeros / jnp.float32(total)


def _leaf_report(w: jax.Array, group_axis: int | tuple[int, ...]) -> LeafSparsity:
    acc = _dtypes.accumulation_dtype(w.dtype)
    is_zero = w == 0
    zeros = jnp.sum(is_zero, dtype=jnp.int32)
    size = int(w.size)
    wide = w.astype(_dtypes.promote(w.dtype, acc))
    l1 = jnp.sum(jnp.abs(wide)).astype(acc)
    l2 = jnp.sqrt(jnp.sum(_penalties.squared_modulus(wide))).astype(acc)
    axes = _penalties.reduce_axes(w.ndim, group_axis)
    if axes is None:
        units, dead = 0, jnp.zeros((), jnp.int32)
    else:
        dead_groups = jnp.all(is_zero, axis=axes)
        units = int(dead_groups.size)
        dead = jnp.sum(dead_groups, dtype=jnp.int32)
    fraction = zeros.astype(jnp.float32) / jnp.float32(size) if size else jnp.zeros((), jnp.float32)
    return LeafSparsity(
        size=jnp.asarray(size, jnp.int32),
        zeros=zeros,
        fraction=fraction,
        l1=l1,
        l2=l2,
        units=jnp.asarray(units, jnp.int32),
        dead_units=dead,
    )


def sparsity_report(
    params: Any, *, mask: Any = None, group_axis: int | tuple[int, ...] = -1
) -> Any:
    r"""Per-leaf sparsity: zeros, L1/L2 norms and dead units, as a pytree.

    For each float leaf selected by ``mask`` a :class:`LeafSparsity` (zeros,
    fraction, ``Σ|w|``, ``‖w‖₂``); for leaves with ``ndim >= 2`` also the number of
    groups that are entirely zero (*dead units*). Groups are those of
    :func:`jaxreg.group_lasso_penalty`: the entries sharing the index along
    ``group_axis`` (default ``-1``: one output unit of a Flax ``Dense`` kernel or
    one filter of a ``Conv`` kernel; ``0`` for equinox/torch ``(out, in)``
    weights). Other leaves (masked-out, integer, ``None``) map to ``None``.
    Jittable; one reduction pass per leaf.

    Args:
      params: a pytree of arrays.
      mask: ``None``, a pytree of Python bools or a function returning one: which
        leaves to report.
      group_axis: the axis or axes indexing units in leaves with ``ndim >= 2``.

    Returns:
      A pytree shaped like ``params`` with a :class:`LeafSparsity` per reported leaf.

    Example:
      >>> import jax, jax.numpy as jnp, jaxreg
      >>> kernel = jnp.array([[1.0, 0.0, 0.0], [2.0, 0.0, 3.0]])  # (in=2, out=3)
      >>> rep = jax.jit(jaxreg.sparsity_report)({"kernel": kernel, "bias": jnp.ones(3)})
      >>> k = rep["kernel"]
      >>> print(int(k.zeros), int(k.units), int(k.dead_units), float(k.l1))
      3 3 1 6.0
      >>> print(float(rep["bias"].fraction), int(rep["bias"].units))
      0.0 0
    """
    _penalties.check_group_axis(group_axis)
    _checks.check_mask_spec(mask)
    params = _penalties.floats_as_arrays(params)
    masks = _leafwise.mask_tree(mask, params)

    def leaf(w, m):
        if not m or not _leafwise.is_float_leaf(w):
            return None
        return _leaf_report(w, group_axis)

    return jax.tree.map(leaf, params, masks)
