"""Proximal operators as pure functions on arrays and pytrees (public as ``jaxreg.prox``).

These are the *operators*: ``jaxreg.prox.l1(tree, t)`` returns the prox of a
pytree. The Optax *transforms* built on them keep their top-level names
(``jaxreg.l1_prox``, ``jaxreg.weight_decay``, ...).

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

from jaxreg import _checks, _dtypes, _kernels, _leafwise, _penalties

__all__ = [
    "block_soft_threshold",
    "elastic_net",
    "group_lasso",
    "l1",
    "l2",
    "projection_l1_ball",
    "projection_l2_ball",
    "soft_threshold",
]


def soft_threshold(x: jax.Array, threshold: jax.typing.ArrayLike) -> jax.Array:
    r"""Soft thresholding ``S_t(x) = sign(x)·max(|x| − t, 0)``, the prox of ``t·|·|``.

    Entries with ``|x| <= t`` become exactly zero. For complex ``x`` it is
    ``x·max(0, 1 − t/|x|)``. NaN stays NaN, ``±inf`` stays ``±inf``. A negative or
    NaN array ``t`` (traced, so not checkable) gives NaN: it never pushes entries
    away from zero.

    Args:
      x: a float or complex array (an integer or bool array is refused with a
        ``ValueError``: thresholding it would truncate ``t``; tree operators such as
        :func:`jaxreg.prox.l1` pass integer leaves through instead).
      threshold: ``t >= 0``, a scalar (or an array broadcastable to ``x``).

    Returns:
      An array of ``x``'s dtype.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox.soft_threshold(jnp.array([-2.0, 0.5, 3.0]), 1.0))
      [-1.  0.  2.]

    References:
      Donoho, *De-noising by soft-thresholding*, 1995.
    """
    x = _penalties.require_inexact("x", x)
    t = _leafwise.nonneg(threshold, _dtypes.real_dtype(x.dtype))
    if jnp.iscomplexobj(x):
        mod = jnp.abs(x)
        safe = jnp.where(mod == 0, jnp.ones_like(mod), mod)
        scale = jnp.where(mod == 0, jnp.zeros_like(mod), jnp.maximum(1 - t / safe, 0))
        return x * scale.astype(x.dtype)
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, jnp.zeros((), x.dtype))


def _shrink(x: jax.Array, t: jax.Array) -> jax.Array:
    """``x / (1 + t)``: the prox of ``(t/2)·‖·‖²``."""
    return x / (1 + t).astype(x.dtype)


def _elastic_net_shrink(x: jax.Array, t: jax.Array, l1_ratio: Any) -> jax.Array:
    """``S_{t·r}(x) / (1 + t·(1 − r))``: the prox of ``t·(r|·| + (1−r)/2·‖·‖²)``."""
    r = _dtypes.scalar_as(l1_ratio, t.dtype)
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
      >>> print(jnp.round(jaxreg.prox.block_soft_threshold(k, 0.5 / 2 ** 0.5), 4))
      [[2.7 0. ]
       [3.6 0. ]]

    References:
      Yuan & Lin, 2006; Parikh & Boyd, *Proximal algorithms*, 2014, §6.5.4.
    """
    x = _penalties.require_inexact("x", x)
    return _kernels.block_soft_threshold(x, threshold, group_axis)[0]


def _map_prox(
    tree: Any, strength: Any, mask: Any, leaf_prox: Callable[[jax.Array, jax.Array], jax.Array]
) -> Any:
    """Applies ``leaf_prox(x, t)`` to every regularized float leaf of ``tree``."""
    strengths, masks = _leafwise.per_leaf_settings(strength, mask, tree)

    def leaf(x, s, m):
        if not _leafwise.is_regularized(x, s, m):
            return x
        x = jnp.asarray(x)
        return leaf_prox(x, _leafwise.threshold(s, None, x.dtype))

    return jax.tree.map(leaf, tree, strengths, masks)


def l1(tree: Any, strength: Any = 1.0, *, mask: Any = None) -> Any:
    r"""Prox of ``strength·‖·‖₁`` on a pytree: soft thresholding at ``strength``.

    Args:
      tree: a pytree of arrays.
      strength: threshold ``t >= 0``: number or prefix pytree of numbers.
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      A pytree like ``tree``; masked-out and integer leaves unchanged.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox.l1({"w": jnp.array([0.3, -1.5])}, 0.5)["w"])
      [ 0. -1.]

    References:
      Parikh & Boyd, *Proximal algorithms*, 2014, §6.5.2.
    """
    return _map_prox(tree, strength, mask, soft_threshold)


def l2(tree: Any, strength: Any = 1.0, *, mask: Any = None) -> Any:
    r"""Prox of ``(strength/2)·‖·‖²`` on a pytree: ``x / (1 + strength)``.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox.l2(jnp.array([2.0, -4.0]), 1.0))
      [ 1. -2.]

    References:
      Parikh & Boyd, *Proximal algorithms*, 2014, §6.1.1.
    """
    return _map_prox(tree, strength, mask, _shrink)


def elastic_net(tree: Any, strength: Any = 1.0, *, l1_ratio: Any = 0.5, mask: Any = None) -> Any:
    r"""Prox of ``strength·(r‖·‖₁ + (1−r)/2‖·‖²)``: ``S_{t·r}(x) / (1 + t·(1−r))``.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox.elastic_net(jnp.array([3.0, 0.2]), 1.0, l1_ratio=0.5))
      [1.6666667 0.       ]

    References:
      Zou & Hastie, 2005; Parikh & Boyd, *Proximal algorithms*, 2014, §6.5.3.
    """
    _checks.check_l1_ratio(l1_ratio)
    return _map_prox(tree, strength, mask, lambda x, t: _elastic_net_shrink(x, t, l1_ratio))


def group_lasso(
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
      >>> print(jnp.round(jaxreg.prox.group_lasso({"kernel": k}, 0.5 / 2 ** 0.5)["kernel"], 4))
      [[2.7 0. ]
       [3.6 0. ]]

    References:
      Yuan & Lin, 2006.
    """
    _penalties.check_group_axis(group_axis)
    return _map_prox(
        tree, strength, mask, lambda x, t: block_soft_threshold(x, t, group_axis=group_axis)
    )


def _ball_setup(tree: Any, radius: Any) -> tuple | None:
    """What both ball projections start from: the float leaves' moduli in one vector.

    Returns ``(leaves, treedef, float_leaf_indices, acc_dtype, moduli, radius)`` or
    ``None`` when there is no float entry (the tree is then returned as it is).
    """
    r = _penalties.check_radius(radius)
    leaves, treedef = jax.tree.flatten(_penalties.floats_as_arrays(tree))
    idx = [i for i, x in enumerate(leaves) if _leafwise.is_float_leaf(x)]
    if not idx:
        return None
    acc = _dtypes.promote(*(_dtypes.accumulation_dtype(leaves[i].dtype) for i in idx))
    mods = jnp.concatenate([jnp.abs(leaves[i]).astype(acc).ravel() for i in idx])
    if mods.size == 0:
        return None
    return leaves, treedef, idx, acc, mods, _dtypes.scalar_as(r, acc)


def projection_l1_ball(tree: Any, radius: jax.typing.ArrayLike = 1.0) -> Any:
    r"""Euclidean projection onto ``{x : ‖x‖₁ <= radius}`` (Duchi et al. 2008).

    If ``‖x‖₁ <= radius`` the tree is returned unchanged; otherwise every float leaf
    is soft-thresholded at one ``θ`` (REFERENCE §2): sort ``|x|`` descending into
    ``μ``, ``ρ = max{j : μ_j − (Σ_{i<=j} μ_i − radius)/j > 0}``,
    ``θ = (Σ_{i<=ρ} μ_i − radius)/ρ``. ``radius = 0`` gives exact zeros.

    The norm runs over the float (and complex, by modulus) leaves only: integer,
    bool and ``None`` leaves pass through unchanged and do not count; a Python
    float is a float leaf. ``θ`` is computed in at least float32; each leaf keeps
    its dtype. A NaN anywhere makes every float leaf NaN (the projection is global).

    Args:
      tree: a pytree of arrays.
      radius: ``>= 0``, a number or a scalar array (traced is fine); not a
        schedule (a projection has no step count).

    Returns:
      A pytree like ``tree``.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox.projection_l1_ball(jnp.array([2.0, -1.0]), 1.0))
      [ 1. -0.]
      >>> print(jaxreg.prox.projection_l1_ball({"w": jnp.array([2.0, -1.0]), "n": 3}, 0.0))
      {'n': 3, 'w': Array([ 0., -0.], dtype=float32)}

    References:
      Duchi, Shalev-Shwartz, Singer & Chandra, *Efficient projections onto the
      l1-ball for learning in high dimensions*, ICML 2008.
    """
    setup = _ball_setup(tree, radius)
    if setup is None:
        return _penalties.floats_as_arrays(tree)
    leaves, treedef, idx, acc, mods, z = setup
    mu = jnp.sort(mods)[::-1]
    cs = jnp.cumsum(mu)
    j = jnp.arange(1, mu.size + 1, dtype=acc)
    # rho >= 1: at radius 0 the first term is 0 (not > 0), and theta = max|x| zeroes all.
    rho = jnp.maximum(jnp.sum(mu - (cs - z) / j > 0), 1)
    theta = (cs[rho - 1] - z) / rho.astype(acc)
    inside = cs[-1] <= z
    theta = jnp.where(inside, jnp.zeros_like(theta), theta)
    out = list(leaves)
    for i in idx:
        x = leaves[i]
        out[i] = soft_threshold(x, theta.astype(_dtypes.real_dtype(x.dtype)))
    return jax.tree.unflatten(treedef, out)


def projection_l2_ball(tree: Any, radius: jax.typing.ArrayLike = 1.0) -> Any:
    r"""Euclidean projection onto ``{x : ‖x‖₂ <= radius}``: ``x·min(1, radius/‖x‖₂)``.

    The norm runs over the float (and complex) leaves only; integer, bool and
    ``None`` leaves pass through unchanged and do not count; a Python float is a
    float leaf. The norm is scaled by ``max|x|`` before squaring, so it neither
    underflows nor overflows; ``radius = 0`` gives zeros, a zero tree stays zero.

    Args:
      tree: a pytree of arrays.
      radius: ``>= 0``, a number or a scalar array; not a schedule.

    Returns:
      A pytree like ``tree`` (each leaf keeps its dtype).

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> print(jaxreg.prox.projection_l2_ball(jnp.array([3.0, 4.0]), 1.0))
      [0.6 0.8]
    """
    setup = _ball_setup(tree, radius)
    if setup is None:
        return _penalties.floats_as_arrays(tree)
    leaves, treedef, idx, acc, mods, z = setup
    # Scale by a power of two near max|x| (exact; a division by max|x| may be turned
    # into a multiplication by a flushed-to-zero reciprocal), so squares neither
    # underflow nor overflow.
    _, e = jnp.frexp(jnp.max(mods))
    s = jnp.sqrt(jnp.sum(jnp.square(jnp.ldexp(mods, -e))))  # ‖x‖₂ / 2**e
    inside = s <= jnp.ldexp(z, -e)  # ‖x‖₂ <= radius (also x = 0); False for NaN
    factor = z / jnp.where(s > 0, s, jnp.ones_like(s))
    out = list(leaves)
    for i in idx:
        x = leaves[i]
        if jnp.iscomplexobj(x):
            wide = x.astype(_dtypes.promote(x.dtype, acc))
            scaled = jax.lax.complex(jnp.ldexp(wide.real, -e), jnp.ldexp(wide.imag, -e))
            proj = scaled * factor.astype(scaled.dtype)
        else:
            proj = jnp.ldexp(x.astype(acc), -e) * factor
        out[i] = jnp.where(inside, x, proj.astype(x.dtype))
    return jax.tree.unflatten(treedef, out)
