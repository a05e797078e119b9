"""Leaf kernels shaped for XLA: the same arithmetic as the textbook formulas, written so
that the compiled step needs no leaf-sized temporaries or copies.

Two patterns recur (see benchmarks/README.md, "Issue 13"):

* **In-place state updates.** With donated buffers, an accumulator ``n`` is updated in
  place only if every reader of the old ``n`` runs before the fusion that writes ``n'``.
  XLA:CPU has no multi-output loop fusions and does not order unrelated fusions for
  this, so it copies the old accumulator (a leaf-sized temp) instead. :func:`after`
  gives the write a (bitwise neutral) data dependency on a value computed from the old
  accumulator, which orders the fusions and removes the copy.
* **Group norms.** ``‖x_g‖₂`` is a sum of squares (one fast reduction), with a scaled
  recomputation only when that sum underflowed or overflowed (:func:`group_norm`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from jaxreg import _penalties

__all__ = ["after", "ftrl_accumulators", "group_norm"]


def after(x: jax.Array, dep: jax.Array) -> jax.Array:
    """``x``, bit for bit, computed only after ``dep`` (a data dependency on one entry).

    The predicate ``(c == c) | (c != c)`` is true for every ``c`` (NaN included), but
    XLA does not fold it, so the fusion producing the result reads ``dep[0]`` and is
    scheduled after ``dep``. Reading one entry costs nothing measurable.
    """
    if jnp.size(dep) == 0:
        return x
    c = jnp.ravel(dep)[0]
    (alt,) = jax.lax.optimization_barrier((x,))
    return jnp.where((c == c) | (c != c), x, alt)


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
    it with the one inside ``z'``) made to depend on ``z'`` with :func:`after`, so the
    old accumulator is dead when ``n'`` overwrites it: no copy, no temp, and the
    consumer of ``n'^q`` (FTRL's ``quad``) reads the output ``n'`` instead of sharing
    ``n'^q`` with ``σ``. Values are bitwise those of the direct formula.
    """
    n_for_z = n + _penalties.squared_modulus(g).astype(n.dtype)
    sigma = (power(n_for_z) - power(n)) / lr
    z_new = z + g_s - sigma.astype(z.dtype) * p
    n_b, g_b = jax.lax.optimization_barrier((n, g))
    n_new = n_b + _penalties.squared_modulus(g_b).astype(n.dtype)
    return z_new, after(n_new, z_new)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def group_norm(x: jax.Array, negligible: jax.Array | None, axes: tuple[int, ...]) -> jax.Array:
    """Group norms ``‖x_g‖₂`` over ``axes`` (keepdims), free of underflow and overflow.

    Fast path: ``√Σ|x|²``, one reduction, bitwise the unscaled result. Where that sum
    overflowed (an entry above ~1.8e19 in float32) or fell below ``tiny/eps`` (squares
    of entries below ~1e-19 underflow), the norm is recomputed as ``m·√Σ|x/m|²`` with
    ``m`` the group's max-abs rounded up to a power of two (exact scaling, as in
    ``hypot``). The recomputation sits in a :func:`jax.lax.cond`, so normal inputs pay
    one scalar test. ``negligible`` (a real scalar) lets a caller skip it for small
    sums: a group whose norm is at most ``negligible`` gives the caller the same
    result whatever its exact norm (the block soft threshold zeroes it). NaN groups
    give NaN, groups holding ``inf`` give ``inf``. The derivative is that of
    :func:`jaxreg._penalties.safe_group_norm` (0 where the norm is 0).
    """
    ss = jnp.sum(_penalties.squared_modulus(x), axis=axes, keepdims=True)
    rd = ss.dtype
    finfo = jnp.finfo(rd)
    small = jnp.asarray(finfo.tiny / finfo.eps, rd)
    suspect = ss == jnp.inf
    if negligible is None:
        suspect = suspect | (ss < small)
    else:
        # Below `small` the squares may have lost up to size*tiny: the true norm is at
        # most sqrt(small + size*tiny); skip when that is still negligible.
        size = math.prod(x.shape[a] for a in axes)
        bound = jnp.sqrt(small + jnp.asarray(size, rd) * jnp.asarray(finfo.tiny, rd))
        suspect = suspect | ((ss < small) & (bound > jnp.asarray(negligible, rd)))

    def rescaled(_):
        m = jnp.max(jnp.abs(x), axis=axes, keepdims=True).astype(rd)
        ok = jnp.isfinite(m) & (m > 0)
        _, e = jnp.frexp(jnp.where(ok, m, jnp.ones_like(m)))
        scale = jnp.ldexp(jnp.ones_like(m), e)  # a power of two >= m: exact division
        inner = jnp.sum(
            _penalties.squared_modulus(x / scale.astype(x.dtype)), axis=axes, keepdims=True
        )
        fixed = jnp.where(ok, scale * jnp.sqrt(inner.astype(rd)), m)
        return jnp.where(suspect & (m == m), fixed, jnp.sqrt(ss))

    return jax.lax.cond(jnp.any(suspect), rescaled, lambda _: jnp.sqrt(ss), None)


@group_norm.defjvp
def _group_norm_jvp(axes, primals, tangents):
    (x, negligible), (dx, _) = primals, tangents
    n = group_norm(x, negligible, axes)
    inner = jnp.sum(jnp.real(jnp.conj(x) * dx), axis=axes, keepdims=True)
    safe = jnp.where(n == 0, jnp.ones_like(n), n)
    return n, jnp.where(n == 0, jnp.zeros_like(n), inner / safe.astype(inner.dtype))
