"""The engine: how a regularizer applies to each leaf, decided in one place.

A regularizer is *described* once by a :class:`Regularizer` (its kind, strength,
mask, learning rate, ``l1_ratio``, group axis), *resolved per leaf* by
:func:`leaf_rules` (which leaves are active and with which strength), and its
scalar threshold is *formed* by :func:`threshold` (the run-time rule). Every mode
asks these functions: the transforms, :func:`jaxreg.regularized`, the proximal
optimizers, the penalties, the pure prox operators and the flat mode.

Leaf kinds: inexact arrays and Python floats are regularized; integer and bool
leaves and ``None`` pass through unchanged, as do masked-out leaves and leaves
whose strength is a literal ``0.0`` (bitwise: the update object itself is
returned).

Run-time rule (hyper-parameters that go bad after the factory's checks: traced
values, ``optax.inject_hyperparams``, schedules that cross zero): a negative or
NaN strength or learning rate makes the threshold NaN, so the affected leaves'
results are NaN (``optax.apply_if_finite`` catches it) and the prox never pushes
weights away from zero. A learning rate of 0 is "no step" (threshold 0, never
NaN, even with an infinite strength). ``η·λ`` is clamped to the largest finite
value of the leaf's dtype, so an overflowing product shrinks to zero instead of
turning ``0·inf`` into NaN.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _checks, _dtypes

__all__ = [
    "PASS",
    "Regularizer",
    "broadcast_prefix",
    "evaluate",
    "is_float_leaf",
    "is_literal_zero",
    "leaf_rules",
    "mask_tree",
    "nonneg",
    "per_leaf_settings",
    "resolve_mask",
    "strength_tree",
    "threshold",
]

KINDS = ("l2_gradient", "decay", "l1", "l2", "elastic_net", "group_lasso", "l1_l2")


class Regularizer(NamedTuple):
    """The description of one regularizer, resolved per leaf by :func:`leaf_rules`.

    ``kind``: ``"l2_gradient"`` (gradient side, ``u + λ·w``), ``"decay"``,
    ``"l1"``, ``"l2"``, ``"elastic_net"``, ``"group_lasso"`` or ``"l1_l2"``
    (``S_{η·l1}(v)/(1 + η·l2)``, proximal SGD's prox; ``strength`` is ``l1`` and
    ``l2`` the second strength). ``learning_rate`` is ``None`` for the gradient
    side.
    """

    kind: str
    strength: Any
    mask: Any = None
    learning_rate: Any = None
    l1_ratio: Any = None
    group_axis: Any = None
    l2: Any = None

    @property
    def parameter_side(self) -> bool:
        return self.kind != "l2_gradient"

    @property
    def elementwise(self) -> bool:
        return self.kind != "group_lasso"

    @property
    def stateful(self) -> bool:
        """Whether a step count is needed (a schedule among the hyper-parameters)."""
        lr = self.learning_rate if self.parameter_side else None
        return _checks.needs_count(self.strength, lr, self.l2)


class _Pass:
    def __repr__(self) -> str:
        return "PASS"


PASS = _Pass()  # the rule of a leaf that passes through unchanged


# ---------------------------------------------------------------- leaf kinds


def is_literal_zero(value: Any) -> bool:
    """A Python number equal to zero: the pass-through case."""
    return isinstance(value, numbers.Number) and not isinstance(value, bool) and value == 0


def is_float_leaf(x: Any) -> bool:
    """Inexact arrays and Python floats/complexes are regularized; int/bool pass through."""
    if isinstance(x, bool | np.bool_):
        return False
    if isinstance(x, float | complex):
        return True
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def evaluate(value: Any, count: Any) -> Any:
    """Value of a hyper-parameter at ``count`` (schedules are called)."""
    return value(count) if _checks.is_schedule(value) else value


# ---------------------------------------------------------- per-leaf settings


def broadcast_prefix(name: str, prefix: Any, tree: Any, is_leaf: Callable | None = None) -> Any:
    """Copies each leaf of ``prefix`` onto every leaf of the matching subtree of ``tree``.

    The result has the structure of ``tree`` (None nodes and optax ``MaskedNode``s
    stay empty), with the prefix's objects (Python numbers stay Python numbers) as
    leaves.
    """
    if is_leaf is None:
        is_leaf = _checks.is_schedule
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(prefix, is_leaf=is_leaf)):
        return jax.tree.map(lambda _: prefix, tree)
    try:
        return jax.tree.map(
            lambda s, sub: jax.tree.map(lambda _: s, sub), prefix, tree, is_leaf=is_leaf
        )
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(
            f"`{name}` does not match the parameter tree: a pytree `{name}` must have "
            f"the structure of the params or be a prefix of it.\n{name}: "
            f"{jax.tree.structure(prefix, is_leaf=is_leaf)}\nparams: "
            f"{jax.tree.structure(tree)}\n({err})"
        ) from None


def resolve_mask(mask: Any, tree: Any) -> Any:
    """Turns a mask spec into a pytree of Python bools that is a prefix of ``tree``."""
    mask_spec = mask(tree) if _checks.is_schedule(mask) else mask
    _checks.check_mask_leaves(mask_spec)
    try:
        _checks.check_prefix("mask", mask_spec, tree)
    except ValueError:
        # Same parameter paths in another container (nnx.State of Param boxes vs the
        # plain arrays nnx.Optimizer updates, a plain dict): matched path by path.
        from jaxreg import _masks

        matched = _masks.match_by_path(mask_spec, tree)
        if matched is None:
            raise
        return matched
    jax.tree_util.tree_map_with_path(_no_none_over_params, mask_spec, tree, is_leaf=_is_none)
    return mask_spec


def _is_none(x: Any) -> bool:
    return x is None


def _no_none_over_params(path: Any, mask_leaf: Any, sub: Any) -> None:
    """A ``None`` in a mask is fine where the params have ``None``; elsewhere refused."""
    if mask_leaf is None and jax.tree.leaves(sub):
        raise ValueError(
            f"{_checks.MASK_RULE}; the mask has None at {jax.tree_util.keystr(path)} where "
            "the params have arrays. Use False to leave them unregularized (None is only "
            "allowed where the params are None too)."
        )


def mask_tree(mask: Any, tree: Any) -> Any:
    """A Python bool per leaf of ``tree`` (all True when ``mask`` is None)."""
    if mask is None:
        return jax.tree.map(lambda _: True, tree)
    return broadcast_prefix("mask", resolve_mask(mask, tree), tree, lambda x: False)


def strength_tree(strength: Any, tree: Any, name: str = "strength") -> Any:
    """Per-leaf strengths (Python numbers, arrays or schedules) shaped like ``tree``."""
    if hasattr(strength, "__jaxreg_strength__"):
        strength = strength.__jaxreg_strength__(tree)
    for leaf in jax.tree.leaves(strength, is_leaf=_checks.is_schedule):
        _checks.check_scalar(name, leaf)
    return broadcast_prefix(name, strength, tree)


def per_leaf_settings(strength: Any, mask: Any, tree: Any) -> tuple[Any, Any]:
    """Checks ``strength`` (no schedules) and ``mask``; returns both shaped like ``tree``.

    Used by the pure functions (penalties, prox operators), which have no step count.
    The mask tree holds Python bools (True where ``mask`` is None).
    """
    _checks.check_strength(strength, allow_schedule=False)
    _checks.check_mask_spec(mask)
    return strength_tree(strength, tree), mask_tree(mask, tree)


def is_regularized(leaf: Any, strength: Any, mask: bool) -> bool:
    """A float leaf that is masked in and whose strength is not a literal 0."""
    return bool(mask) and not is_literal_zero(strength) and is_float_leaf(leaf)


def _ndim(x: Any) -> int:
    return len(getattr(x, "shape", ()))


def leaf_rules(reg: Regularizer, tree: Any) -> Any:
    """THE per-leaf resolution: a tree like ``tree`` whose leaves are rules.

    A rule is :data:`PASS` (the leaf comes back unchanged: masked out, a literal-0
    strength, an int/bool leaf, a group-lasso leaf with ``ndim < 2``) or a tuple of
    strength specs (numbers, arrays or schedules): ``(λ,)``, or ``(l1, l2)`` for
    ``"l1_l2"``. ``tree`` may hold arrays or :class:`jax.ShapeDtypeStruct` (the
    flat mode resolves against the layout's skeleton, paths included).
    """
    strengths = strength_tree(reg.strength, tree)
    masks = mask_tree(reg.mask, tree)
    group_axes = None
    if reg.kind == "group_lasso":
        from jaxreg import _penalties

        group_axes = _penalties.reduce_axes

    def rule(p, s, m):
        if not m or not is_float_leaf(p):
            return PASS
        if group_axes is not None and group_axes(_ndim(p), reg.group_axis) is None:
            return PASS
        if reg.kind == "l1_l2":
            if is_literal_zero(s) and is_literal_zero(reg.l2):
                return PASS
            return (s, reg.l2)
        if is_literal_zero(s):
            return PASS
        return (s,)

    return jax.tree.map(rule, tree, strengths, masks)


# ----------------------------------------------------------- the run-time rule


def nonneg(value: Any, dtype: Any) -> jax.Array:
    """``value`` cast to ``dtype``; NaN where it is negative or NaN (run-time rule).

    Python numbers were checked when the factory was built and are cast as they are.
    """
    x = _dtypes.scalar_as(value, dtype)
    if isinstance(value, numbers.Number):
        return x
    return jnp.where(x >= 0, x, jnp.asarray(jnp.nan, x.dtype))


def threshold(strength: Any, eta: Any, dtype: Any) -> jax.Array:
    """``t = η·λ`` (``λ`` when ``eta`` is None) in the real dtype of a ``dtype`` leaf.

    Formed in at least float32. Negative or NaN ``λ`` or ``η`` give NaN; ``η = 0``
    gives ``t = 0`` (no step); the product is clamped to the largest finite value
    of the leaf's real dtype (no ``inf``, so ``0·t`` stays 0).
    """
    acc = _dtypes.accumulation_dtype(dtype)
    real = _dtypes.real_dtype(dtype)
    t = nonneg(strength, acc)
    if eta is not None:
        e = nonneg(eta, acc)
        t = e * t
        if not isinstance(eta, numbers.Number):
            t = jnp.where(e == 0, jnp.zeros((), acc), t)
        elif eta == 0:
            t = jnp.zeros((), acc)
    big = jnp.asarray(jnp.finfo(real).max, acc)
    return jnp.minimum(t, big).astype(real)


def apply_rules(
    reg: Regularizer,
    leaf_update: Callable[..., jax.Array],
    updates: Any,
    params: Any,
    count: Any,
) -> Any:
    """Applies ``leaf_update(u, p, *thresholds)`` to every active leaf (per-leaf mode)."""
    eta = evaluate(reg.learning_rate, count) if reg.parameter_side else None
    rules = leaf_rules(reg, params)

    def leaf(u, p, rule):
        if rule is PASS:
            return u
        p = jnp.asarray(p)
        ts = tuple(threshold(evaluate(s, count), eta, p.dtype) for s in rule)
        return leaf_update(jnp.asarray(u), p, *ts)

    return jax.tree.map(leaf, updates, params, rules)


def runtime_value(value: Any) -> Any:
    """A hyper-parameter under the run-time rule, in its own (float) dtype.

    Python numbers (checked when the factory was built) come back as they are;
    arrays are NaN where negative or NaN.
    """
    if isinstance(value, numbers.Number):
        return value
    x = jnp.asarray(value)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.float32)
    return jnp.where(x >= 0, x, jnp.asarray(jnp.nan, x.dtype))


def active_tree(mask: Any, tree: Any) -> Any:
    """Per leaf of ``tree``: a Python bool, True where the leaf is masked in and a float.

    The optimizers' regularizing part uses it (their strengths are scalars).
    """
    masks = mask_tree(mask, tree)
    return jax.tree.map(lambda p, m: bool(m) and is_float_leaf(p), tree, masks)


def by_mask(m: Any, fn: Callable[[bool], Any]) -> Any:
    """``fn(m)`` for a Python bool ``m``; per element ``where(m, fn(True), fn(False))``.

    The flat mode passes a per-element bool array when a buffer mixes regularized
    and plain leaves; each element then gets exactly its leaf's per-leaf result.
    """
    if isinstance(m, bool | np.bool_):
        return fn(bool(m))
    on, off = fn(True), fn(False)
    return jax.tree.map(lambda a, b: jnp.where(m, a, b), on, off)
