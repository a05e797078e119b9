"""Optax gradient transformations built on the prox operators.

Placement rule:

* gradient side (``add_l2_gradient``): before the preconditioner, after any
  clipping: ``chain(clip, add_l2_gradient(λ), adam(η))`` (torch's coupled
  ``weight_decay``).
* parameter side (``weight_decay``, ``l1_prox``, ``l2_prox``, ``elastic_net_prox``,
  ``group_lasso_prox``): LAST, after the learning rate, told the learning rate.
  They return ``prox(p + u) − p`` so that ``optax.apply_updates(p, u)`` equals
  ``prox_{η_t·λ·R}(p + u)``; exact zeros survive because ``p + (0 − p) == 0``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg import _kernels, _penalties, _prox
from jaxreg import _validation as v

__all__ = [
    "ScheduleState",
    "add_l2_gradient",
    "elastic_net_prox",
    "group_lasso_prox",
    "l1_prox",
    "l2_prox",
    "weight_decay",
]


class ScheduleState(NamedTuple):
    """State of a jaxreg transform with a schedule: the number of earlier updates."""

    count: jax.Array  # int32 scalar


LeafUpdate = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def make_transform(
    leaf_update: LeafUpdate,
    strength: Any,
    mask: Any,
    *,
    learning_rate: Any = None,
    parameter_side: bool = True,
) -> optax.GradientTransformation:
    """Builds a transform ``u ← leaf_update(u, p, t)`` per regularized leaf.

    ``t = η_t·λ_t`` for parameter-side transforms, ``λ_t`` for gradient-side ones,
    in the leaf's real dtype (computed in at least float32). Masked-out leaves,
    leaves whose strength is a literal 0, integer/bool leaves and ``None`` come
    back unchanged. The state is empty unless a hyper-parameter is a schedule.
    """
    v.check_strength(strength)
    if parameter_side:
        v.check_scalar_or_schedule("learning_rate", learning_rate)
        v.check_scalar("learning_rate", learning_rate)
    v.check_mask_spec(mask)
    stateful = v.needs_count(strength, learning_rate)

    def init_fn(params):
        del params
        if stateful:
            return ScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        v.require_params(params)
        count = state.count if stateful else None
        eta = v.evaluate(learning_rate, count) if parameter_side else None
        strengths = v.strength_tree(strength, updates)

        def leaf(u, p, s):
            if v.is_literal_zero(s) or not v.is_float_leaf(p):
                return u
            acc = v.accumulation_dtype(p.dtype)
            t = v.scalar_as(v.evaluate(s, count), acc)
            if parameter_side:
                t = t * v.scalar_as(eta, acc)
            return leaf_update(u, p, t.astype(v.real_dtype(p.dtype)))

        new_updates = jax.tree.map(leaf, updates, params, strengths)
        if stateful:
            return new_updates, ScheduleState(count=optax.safe_increment(count))
        return new_updates, state

    tx = optax.GradientTransformation(init_fn, update_fn)
    spec = FlatSpec(leaf_update, strength, mask, learning_rate, parameter_side, stateful)
    if mask is None:
        return register_flat_spec(tx, spec)
    return register_flat_spec(optax.masked(tx, lambda tree: v.resolve_mask(mask, tree)), spec)


class FlatSpec(NamedTuple):
    """How a :func:`make_transform` transform is built, for :func:`jaxreg.flat`.

    ``group_axis`` is set (by :func:`group_lasso_prox`) when ``leaf_update`` is not
    elementwise; ``leaf_update`` is elementwise otherwise and accepts a per-element
    threshold array ``t`` of the leaf's shape.
    """

    leaf_update: LeafUpdate
    strength: Any
    mask: Any
    learning_rate: Any
    parameter_side: bool
    stateful: bool
    group_axis: Any = None


_FLAT_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register_flat_spec(tx: Any, spec: FlatSpec) -> Any:
    """Records how ``tx`` was built (keyed by its ``update`` function) and returns it."""
    _FLAT_SPECS[tx.update] = spec
    return tx


def flat_spec(tx: Any) -> FlatSpec | None:
    """The :class:`FlatSpec` of a jaxreg transform, ``None`` for any other transform."""
    try:
        return _FLAT_SPECS.get(tx.update)
    except (AttributeError, TypeError):
        return None


def _next_params(u: jax.Array, p: jax.Array) -> jax.Array:
    """``p + u`` computed exactly as ``optax.apply_updates`` does, in ``p``'s dtype."""
    wide = v.promote(p.dtype, u.dtype)
    return (p.astype(wide) + u.astype(wide)).astype(p.dtype)


def prox_update(leaf_prox: Callable[[jax.Array, jax.Array], jax.Array]) -> LeafUpdate:
    """Turns a leaf prox into a parameter-side update ``prox(p + u, t) − p``."""

    def leaf_update(u, p, t):
        return leaf_prox(_next_params(u, p), t) - p

    return leaf_update


def add_l2_gradient(strength: Any = 1e-4, *, mask: Any = None) -> optax.GradientTransformation:
    r"""Coupled L2 on the gradient side: ``u ← u + strength·w``.

    This is ``jax.grad`` of :func:`jaxreg.l2_penalty` added to the gradient, what
    torch's ``SGD/Adam(weight_decay=λ)`` do. Place it BEFORE the preconditioner (and
    after any clipping): ``optax.chain(optax.clip_by_global_norm(1.0),
    jaxreg.add_l2_gradient(1e-4), optax.adam(1e-3))``. Under SGD it equals
    :func:`jaxreg.weight_decay` told the learning rate; under Adam it does not
    (Loshchilov & Hutter 2019).

    Args:
      strength: ``λ >= 0``: number, optax schedule, prefix pytree of numbers or
        :func:`jaxreg.path_strengths`.
      mask: ``None``, a pytree of Python bools (True = regularize), or a function
        ``params -> such a pytree``.

    Returns:
      An :class:`optax.GradientTransformation`; updates keep their dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(jaxreg.add_l2_gradient(0.1), optax.sgd(1.0))
      >>> p = jnp.array([1.0, -2.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(u)
      [-0.1  0.2]

    References:
      Loshchilov & Hutter, *Decoupled weight decay regularization*, ICLR 2019.
    """

    def leaf_update(u, p, t):
        return u + (t.astype(p.dtype) * p).astype(u.dtype)

    return make_transform(leaf_update, strength, mask, parameter_side=False)


def weight_decay(
    strength: Any = 1e-4, *, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""Decoupled weight decay, AdamW's form: ``p_new = p + u − η_t·λ·p``.

    Parameter side: chain it LAST, after the learning rate. ``chain(optax.adam(η),
    weight_decay(λ, learning_rate=η))`` equals ``optax.adamw(η, weight_decay=λ)``.
    For decay that does not follow the learning rate (the AdamW paper; optax
    issues 292/364) pass ``learning_rate=1.0`` and a small ``strength`` (or a
    multiplier schedule).

    Args:
      strength: ``λ >= 0``: number, schedule, prefix pytree or path strengths.
      learning_rate: ``η``: the same float or optax schedule the optimizer uses,
        evaluated at ``count`` (the number of earlier updates).
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      An :class:`optax.GradientTransformation`; updates have the params' dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(0.1), jaxreg.weight_decay(0.5, learning_rate=0.1))
      >>> p = jnp.array([1.0, -2.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0.95 -1.9 ]

    References:
      Loshchilov & Hutter, *Decoupled weight decay regularization*, ICLR 2019.
    """

    def leaf_update(u, p, t):
        wide = v.promote(p.dtype, u.dtype)
        return (u.astype(wide) - (t.astype(p.dtype) * p).astype(wide)).astype(p.dtype)

    return make_transform(leaf_update, strength, mask, learning_rate=learning_rate)


def l1_prox(
    strength: Any = 1e-4, *, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""L1 proximal step: ``p_new = S_{η_t·λ}(p + u) = sign(v)·max(|v| − η_t·λ, 0)``.

    Parameter side: chain it LAST, told the learning rate:
    ``optax.chain(optax.adam(η), jaxreg.l1_prox(λ, learning_rate=η))``. Coordinates
    shrunk to zero are exactly ``0.0`` after ``optax.apply_updates``. With
    ``optax.sgd(1/L)`` in front this is ISTA for ``f + λ‖·‖₁``.

    Args:
      strength: ``λ >= 0``: number, schedule, prefix pytree or path strengths.
      learning_rate: ``η``: float or optax schedule (the optimizer's own).
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      An :class:`optax.GradientTransformation`; updates have the params' dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(0.5), jaxreg.l1_prox(1.0, learning_rate=0.5))
      >>> p = jnp.array([0.3, -2.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0.  -1.5]

    References:
      Beck & Teboulle, *A fast iterative shrinkage-thresholding algorithm*, 2009.
    """
    return make_transform(
        prox_update(_prox.soft_threshold), strength, mask, learning_rate=learning_rate
    )


def l2_prox(
    strength: Any = 1e-4, *, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""Implicit L2 step: ``p_new = (p + u) / (1 + η_t·λ)``, the prox of ``(η_t·λ/2)‖·‖²``.

    Parameter side: chain it LAST, told the learning rate.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(0.5), jaxreg.l2_prox(2.0, learning_rate=0.5))
      >>> p = jnp.array([1.0, -4.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0.5 -2. ]

    References:
      Parikh & Boyd, *Proximal algorithms*, 2014.
    """
    return make_transform(prox_update(_prox.shrink), strength, mask, learning_rate=learning_rate)


def elastic_net_prox(
    strength: Any = 1e-4, *, l1_ratio: Any = 0.5, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""Elastic-net prox: ``p_new = S_{t·r}(p + u) / (1 + t·(1 − r))``, ``t = η_t·λ``.

    With ``optax.sgd(1/L)`` in front this is ISTA for scikit-learn's
    ``ElasticNet(alpha=λ, l1_ratio=r)``.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(
      ...     optax.sgd(1.0), jaxreg.elastic_net_prox(1.0, l1_ratio=0.5, learning_rate=1.0))
      >>> p = jnp.array([3.0, 0.2])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [1.6666667 0.       ]

    References:
      Zou & Hastie, 2005.
    """
    v.check_l1_ratio(l1_ratio)
    return make_transform(
        prox_update(lambda x, t: _prox.elastic_net_shrink(x, t, l1_ratio)),
        strength,
        mask,
        learning_rate=learning_rate,
    )


def group_lasso_prox(
    strength: Any = 1e-4,
    *,
    learning_rate: Any,
    mask: Any = None,
    group_axis: int | tuple[int, ...] = -1,
) -> optax.GradientTransformation:
    r"""Group-lasso prox: per group ``v_g·max(0, 1 − η_t·λ·√|g| / ‖v_g‖₂)``, ``v = p + u``.

    Groups as in :func:`jaxreg.group_lasso_penalty` (default: one output unit of a
    Flax kernel; ``group_axis=0`` for equinox/torch ``(out, in)`` weights). Leaves
    with ``ndim < 2`` pass through unchanged. Whole groups become exactly zero
    (dead units that :func:`jaxreg.prune_dense` can remove).

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(1.0), jaxreg.group_lasso_prox(0.5, learning_rate=1.0))
      >>> p = {"kernel": jnp.array([[3.0, 0.1], [4.0, 0.1]]), "bias": jnp.ones(2)}
      >>> u, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p)
      >>> print(optax.apply_updates(p, u)["kernel"])
      [[2.575736  0.       ]
       [3.4343147 0.       ]]

    References:
      Yuan & Lin, 2006; Wen et al., 2016.
    """
    _penalties.check_group_axis(group_axis)
    tx = make_transform(
        _kernels.sequenced(lambda u, p, t: _kernels.group_lasso_update(u, p, t, group_axis)),
        strength,
        mask,
        learning_rate=learning_rate,
    )
    spec = flat_spec(tx)._replace(group_axis=group_axis)
    # Leaves one after the other: one leaf-sized temp (p + u) instead of all of them.
    tx = optax.GradientTransformation(tx.init, _kernels.one_leaf_at_a_time(tx.update))
    return register_flat_spec(tx, spec)
