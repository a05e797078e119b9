"""Leaf kernels shaped for XLA: the same arithmetic as the textbook formulas, written so
that the compiled step needs no leaf-sized temporaries or copies.

Two patterns recur (see benchmarks/README.md, "Issue 13"):

* **In-place state updates.** With donated buffers, an accumulator ``n`` is updated in
  place only if every reader of the old ``n`` runs before the fusion that writes ``n'``.
  XLA:CPU has no multi-output loop fusions and does not order unrelated fusions for
  this, so it copies the old accumulator (a leaf-sized temp) instead. :func:`after`
  gives the write a (bitwise neutral) data dependency on a value computed from the old
  accumulator, which orders the fusions and removes the copy.
* **Group norms.** ``‖x_g‖₂`` is one fused sum of squares, scaled by a power of two
  chosen from the threshold so that under/overflow cannot change the prox
  (:func:`group_norm`); leaves are processed one after the other so that the
  materialized ``p + u`` of a chained prox needs a temp of one leaf, not of all
  (:func:`one_leaf_at_a_time`).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg import _dtypes, _penalties

__all__ = [
    "after",
    "block_soft_threshold",
    "ftrl_accumulators",
    "group_lasso_update",
    "group_norm",
    "one_leaf_at_a_time",
    "sequenced",
]


def after(x: jax.Array, *deps: jax.Array) -> jax.Array:
    """``x``, bit for bit, computed only after ``deps`` (a data dependency on one entry
    of each).

    The predicate ``(c == c) | (c != c)`` is true for every ``c`` (NaN included), so
    the ``select`` always returns ``x``; XLA cannot know that, so the fusion producing
    the result reads one entry of each dep and is scheduled after them. Reading one
    entry costs nothing measurable. (The barrier keeps XLA from folding
    ``select(c, x, x)`` before it has served as a dependency.)
    """
    firsts = [jnp.ravel(d)[0] for d in deps if jnp.size(d)]
    if not firsts:
        return x
    return _select_after(x, firsts)


def after_elementwise(x: jax.Array, dep: jax.Array) -> jax.Array:
    """:func:`after` with an elementwise dependency on ``dep`` (``x``'s shape).

    Reading one entry of a sharded ``dep`` would need a collective (an all-gather of
    that entry); an elementwise predicate keeps every shard's step local, at the cost
    of reading ``dep`` in the fusion that produces the result.
    """
    return _select_after(x, [dep])


def _select_after(x: jax.Array, firsts: list[jax.Array]) -> jax.Array:
    c = firsts[0]
    for f in firsts[1:]:
        c = c + f.astype(c.dtype)
    (alt,) = jax.lax.optimization_barrier((x,))
    return jnp.where((c == c) | (c != c), x, alt)


_LEAF_CHAIN: contextvars.ContextVar = contextvars.ContextVar("jaxreg_leaf_chain", default=None)


def one_leaf_at_a_time(update_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a transform's ``update``: :func:`sequenced` leaf kernels inside it run in order.

    Within one call, each sequenced leaf kernel starts after the previous one ended
    (:func:`after`), so XLA can reuse one temp buffer for all leaves: the step's temp
    is the largest leaf, not the sum of the leaves.
    """

    @functools.wraps(update_fn)
    def update(updates, state, params=None, **extra_args):
        token = _LEAF_CHAIN.set([None])
        try:
            return update_fn(updates, state, params, **extra_args)
        finally:
            _LEAF_CHAIN.reset(token)

    return update


def sequenced(
    leaf_update: Callable[..., tuple[jax.Array, jax.Array | None]],
) -> Callable[..., jax.Array]:
    """Turns ``(u, p, t) -> (u', token)`` into a leaf update ``(u, p, t) -> u'`` that,
    inside :func:`one_leaf_at_a_time`, starts after the previous leaf's ``token`` (a
    small array computed late in that leaf, e.g. its group scales; ``None``: no
    token). The step's temp is then about one leaf, not all of them. Called elsewhere
    (e.g. directly by the flat mode) it is just ``leaf_update``.

    Strictly one leaf after the other measured fastest on the CPU (buckets of leaves
    of ~1-4 MB: slower steps and compiles)."""

    @functools.wraps(leaf_update)
    def leaf(u, p, t):
        chain = _LEAF_CHAIN.get()
        if chain is None:
            return leaf_update(u, p, t)[0]
        if chain[0] is not None:
            u = after(u, chain[0])
        out, token = leaf_update(u, p, t)
        if token is not None:
            chain[0] = token
        return out

    return leaf


def block_soft_threshold(
    x: jax.Array, threshold: Any, group_axis: int | tuple[int, ...]
) -> tuple[jax.Array, jax.Array | None]:
    """Body of :func:`jaxreg.prox.block_soft_threshold`: ``(result, group scales)``.

    The scales serve as the token of :func:`sequenced`; ``None`` for an ungrouped leaf
    and for groups of one entry, where the scale is elementwise (no reduction to order
    on: chained, XLA would fuse every earlier leaf's scale into each later one).
    """
    x = jnp.asarray(x)
    _penalties.check_group_axis(group_axis)
    axes = _penalties.reduce_axes(x.ndim, group_axis)
    if axes is None:
        return x, None
    # The norm is taken in at least float32: float16 squares overflow above ~256 and
    # underflow below ~2e-4 (which would zero a whole group).
    rd = _dtypes.accumulation_dtype(x.dtype)
    t = _dtypes.scalar_as(threshold, rd)
    size = _penalties.group_size(x.shape, axes)
    level = t * jnp.sqrt(jnp.asarray(size, rd))
    # Scaled where under/overflow could change the result (issue 12).
    norm = group_norm(x.astype(_dtypes.promote(x.dtype, rd)), t, axes)
    safe = jnp.where(norm == 0, jnp.ones_like(norm), norm)
    # jnp.maximum propagates a NaN norm, so NaN groups stay NaN. A zero norm is a zero
    # group, or (t = 0 only: nothing to compare with) one whose squares underflowed.
    zero_scale = jnp.where(t == 0, jnp.ones_like(t), jnp.zeros_like(t))
    scale = jnp.where(norm == 0, zero_scale, jnp.maximum(1 - level / safe, 0))
    return x * scale.astype(x.dtype), (scale if size > 1 else None)


def group_lasso_update(
    u: jax.Array, p: jax.Array, t: jax.Array, group_axis: int | tuple[int, ...]
) -> tuple[jax.Array, jax.Array | None]:
    """Parameter-side group-lasso leaf update ``bst(p + u, t) − p`` and its token."""
    wide = _dtypes.promote(p.dtype, u.dtype)
    x = (p.astype(wide) + u.astype(wide)).astype(p.dtype)  # as optax.apply_updates
    y, scale = block_soft_threshold(x, t, group_axis)
    return y - p, scale


def ftrl_accumulators(
    g: jax.Array,
    n: jax.Array,
    z: jax.Array,
    g_s: jax.Array,
    p: jax.Array,
    lr: jax.Array,
    power: Callable[[jax.Array], jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """FTRL's ``(z', n')`` (Keras ``Ftrl``), ordered so that ``n`` is updated in place.

    ``n' = n + |g|²``, ``σ = (n'^q − n^q)/lr``, ``z' = z + g_s − σ·p``, in the dtypes of
    the arguments (``n``, ``lr`` real; ``g``, ``z``, ``g_s``, ``p`` the value dtype).
    ``z'`` is computed from the old ``n`` first; the returned ``n'`` is a separate
    computation of the same expression (an optimization barrier keeps XLA from sharing
    it with the one inside ``z'``) made to depend on ``z'`` with
    :func:`after_elementwise` (local to each shard), so the old accumulator is dead
    when ``n'`` overwrites it: no copy, no temp, and the consumer of ``n'^q`` (FTRL's
    ``quad``) reads the output ``n'`` instead of sharing ``n'^q`` with ``σ``. Values are
    bitwise those of the direct formula.
    """
    n_for_z = n + _penalties.squared_modulus(g).astype(n.dtype)
    sigma = (power(n_for_z) - power(n)) / lr
    z_new = z + g_s - sigma.astype(z.dtype) * p
    n_b, g_b = jax.lax.optimization_barrier((n, g))
    n_new = n_b + _penalties.squared_modulus(g_b).astype(n.dtype)
    return z_new, after_elementwise(n_new, z_new)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def group_norm(x: jax.Array, threshold: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Group norms ``‖x_g‖₂`` over ``axes`` (keepdims) for a block soft threshold at
    ``t = threshold`` (a real scalar; the level is ``t·√|g|``), as ``√Σ|s·x|² / s``.

    Only how a norm compares with the level matters to the threshold (groups with
    ``‖x_g‖ <= level`` are zeroed, the others scaled by ``1 − level/‖x_g‖``). For
    ``t`` in ``[2⁻⁴⁰, 2²⁰]``, ``s = 1``: the plain sum of squares, bitwise, in one
    reduction; squares that underflow (entries below ~1e-19 in float32) belong to
    groups far below the level or change their sum by less than rounding, and a sum
    that overflows (entries above ~1.8e19) gives ``inf``, whose factor ``1`` is the
    exact one rounded (``level/‖x_g‖ < 2⁻²⁸`` for groups of up to 2³² entries).
    Outside that range ``s = 1/t`` (clamped to ``[2⁻¹⁰⁰, 2¹⁰⁰]``), so the same holds
    for the scaled norms (whose
    rounding then differs by an ulp or two). It costs one multiply in the fused
    reduction and a few scalar ops shared by all leaves with the same ``t`` (XLA's CSE
    merges them): no extra pass, no branch. (A ``lax.cond`` fallback cost +0.5× at
    1M/10, a max-abs pass +1×, ``frexp``-based power-of-two scaling 2× the compile
    time at 150 leaves.) NaN groups give NaN. The derivative is that of
    :func:`jaxreg._penalties.safe_group_norm` (0 where the norm is 0).
    """
    t = jnp.asarray(threshold)
    far = (t > 0) & (t < jnp.inf) & ((t < 2.0**-40) | (t > 2.0**20))
    t_far = jnp.where(far, t, jnp.ones_like(t))
    # 1 (exact) in the usual range; clamped so that s and 1/s stay normal numbers.
    s = jnp.where(far, jnp.clip(1 / t_far, 2.0**-100, 2.0**100), jnp.ones_like(t))
    ss = jnp.sum(_penalties.squared_modulus(x * s.astype(x.dtype)), axis=axes, keepdims=True)
    return jnp.sqrt(ss.astype(t.dtype)) / s


@group_norm.defjvp
def _group_norm_jvp(axes, primals, tangents):
    (x, threshold), (dx, _) = primals, tangents
    n = group_norm(x, threshold, axes)
    inner = jnp.sum(jnp.real(jnp.conj(x) * dx), axis=axes, keepdims=True)
    safe = jnp.where(n == 0, jnp.ones_like(n), n)
    return n, jnp.where(n == 0, jnp.zeros_like(n), inner / safe.astype(inner.dtype))
