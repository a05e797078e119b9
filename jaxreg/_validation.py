"""Argument checks and pytree helpers shared by every public function.

Rules (one place, so every factory says the same thing):

* ``strength`` / ``learning_rate``: a Python number, a JAX/NumPy scalar, an optax
  schedule (a plain callable ``count -> scalar``) or, for ``strength`` only, a
  pytree of those that is a prefix of the parameters, or a path-strength object
  (anything with a ``__jaxreg_strength__(params)`` method). Python numbers and
  concrete arrays must be finite and ``>= 0``; a schedule is evaluated at step 0
  when the factory is built and that value is checked too.
* ``mask``: ``None`` (everything), a pytree whose leaves are Python ``bool``
  (prefix of params is fine) or a plain function (not a pytree)
  ``params -> such a pytree``. A bare ``True``/``False`` or an array is refused:
  it is what ``optax.inject_hyperparams`` makes of a mask function, and a bare
  ``False`` would silently switch regularization off.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

MASK_RULE = (
    "`mask` must be None, a pytree whose leaves are Python bools (True = "
    "regularize; a prefix of the params is fine) or a plain function "
    "params -> such a pytree"
)


def is_schedule(value: Any) -> bool:
    """A plain callable that is not a pytree with children (so not an eqx Module)."""
    if not callable(value) or hasattr(value, "__jaxreg_strength__"):
        return False
    return jax.tree_util.treedef_is_leaf(jax.tree.structure(value))


def _check_number(name: str, value: Any, rule: str) -> None:
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"`{name}` must be a non-negative number, got the bool {value!r}.")
    if isinstance(value, numbers.Number):
        if isinstance(value, complex):
            raise ValueError(f"`{name}` must be a real number, got {value!r}.")
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"`{name}` must be {rule}, got {value!r}.")
        return
    if isinstance(value, jax.core.Tracer):
        return  # traced (e.g. inside inject_hyperparams): cannot be checked here
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        arr = np.asarray(value)
        if arr.dtype == np.bool_ or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise ValueError(f"`{name}` must be a real number, got an array of dtype {arr.dtype}.")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"`{name}` must be {rule}, got {arr!r}.")
        return
    raise ValueError(
        f"`{name}` must be a number, an array scalar or an optax schedule, got "
        f"{type(value).__name__}."
    )


def check_scalar_or_schedule(name: str, value: Any, rule: str = "finite and >= 0") -> None:
    """Checks a number or a schedule (evaluated at step 0)."""
    if is_schedule(value):
        try:
            first = value(0)
        except Exception:
            return
        try:
            _check_number(name, first, rule)
        except ValueError as err:
            raise ValueError(f"{err} (value of the schedule `{name}` at step 0)") from None
        return
    _check_number(name, value, rule)


def check_strength(value: Any, *, name: str = "strength", allow_schedule: bool = True) -> None:
    """Checks a strength: number, schedule, prefix pytree of those, path strengths."""
    if hasattr(value, "__jaxreg_strength__"):
        if not allow_schedule and needs_count(value):
            raise ValueError(
                f"`{name}` holds optax schedules (in path_strengths); a schedule needs a "
                "step count and is only accepted by transforms."
            )
        return  # validated when it was built
    if value is None:
        raise ValueError(f"`{name}` must be a non-negative number, got None.")
    if is_schedule(value):
        if not allow_schedule:
            raise ValueError(
                f"`{name}` must be a number or a pytree of numbers here; a schedule "
                "needs a step count and is only accepted by transforms."
            )
        check_scalar_or_schedule(name, value)
        return
    leaves = jax.tree.leaves(value, is_leaf=is_schedule)
    if not leaves and not isinstance(value, numbers.Number):
        raise ValueError(f"`{name}` must be a number or a non-empty pytree of numbers.")
    for leaf in leaves:
        if is_schedule(leaf) and not allow_schedule:
            raise ValueError(f"`{name}` must hold numbers here, not schedules.")
        check_scalar_or_schedule(name, leaf)


def check_l1_ratio(l1_ratio: Any) -> None:
    """``l1_ratio`` must lie in [0, 1]."""
    if isinstance(l1_ratio, bool | np.bool_):
        raise ValueError(f"`l1_ratio` must be a number in [0, 1], got the bool {l1_ratio!r}.")
    if isinstance(l1_ratio, numbers.Real):
        if not (0.0 <= float(l1_ratio) <= 1.0):
            raise ValueError(f"`l1_ratio` must lie in [0, 1], got {l1_ratio!r}.")
        return
    if isinstance(l1_ratio, jax.core.Tracer):
        check_scalar("l1_ratio", l1_ratio)
        return
    if isinstance(l1_ratio, jax.Array | np.ndarray | np.generic):
        check_scalar("l1_ratio", l1_ratio)
        arr = np.asarray(l1_ratio)
        if np.any(~(arr >= 0)) or np.any(~(arr <= 1)):
            raise ValueError(f"`l1_ratio` must lie in [0, 1], got {arr!r}.")
        return
    raise ValueError(f"`l1_ratio` must be a number in [0, 1], got {type(l1_ratio).__name__}.")


def check_mask_spec(mask: Any) -> None:
    """Checks a mask when a factory is built (its leaves are checked when used)."""
    if mask is None or is_schedule(mask):
        return
    if isinstance(mask, bool | np.bool_):
        raise ValueError(
            f"{MASK_RULE}; got the bare bool {mask!r}. This is what "
            "`optax.inject_hyperparams` passes when it takes a mask function for a "
            "schedule: use `optax.inject_hyperparams(..., static_args=('mask',))`. "
            "To switch regularization off, set the strength to 0.0."
        )
    if isinstance(mask, jax.Array | np.ndarray | np.generic):
        raise ValueError(f"{MASK_RULE}; got an array of shape {np.shape(mask)}.")
    _check_mask_leaves(mask)


def _check_mask_leaves(mask_tree: Any) -> None:
    for leaf in jax.tree.leaves(mask_tree):
        if not isinstance(leaf, bool | np.bool_):
            raise ValueError(
                f"{MASK_RULE}; found a leaf of type {type(leaf).__name__} ({leaf!r:.60})."
            )


def _check_no_none_over_params(mask_tree: Any, tree: Any) -> None:
    """A ``None`` in a mask is fine where the params have ``None``; elsewhere it is refused.

    Called once ``mask_tree`` is known to be a prefix of ``tree``.
    """
    jax.tree_util.tree_map_with_path(
        _none_over_params, mask_tree, tree, is_leaf=lambda x: x is None
    )


def _none_over_params(path: Any, mask_leaf: Any, sub: Any) -> None:
    if mask_leaf is None and jax.tree.leaves(sub):
        raise ValueError(
            f"{MASK_RULE}; the mask has None at {jax.tree_util.keystr(path)} where the params "
            "have arrays. Use False to leave them unregularized (None is only allowed where "
            "the params are None too)."
        )


def resolve_mask(mask: Any, tree: Any) -> Any:
    """Turns a mask spec into a pytree of Python bools that is a prefix of ``tree``."""
    mask_tree = mask(tree) if is_schedule(mask) else mask
    if isinstance(mask_tree, jax.Array | np.ndarray):
        raise ValueError(f"{MASK_RULE}; the mask function returned an array.")
    _check_mask_leaves(mask_tree)
    try:
        check_prefix("mask", mask_tree, tree)
    except ValueError:
        # Same parameter paths in another container (nnx.State of Param boxes vs the
        # plain arrays nnx.Optimizer updates, a plain dict): matched path by path.
        from jaxreg import _masks

        matched = _masks.match_by_path(mask_tree, tree)
        if matched is None:
            raise
        return matched
    _check_no_none_over_params(mask_tree, tree)
    return mask_tree


def check_prefix(name: str, prefix: Any, tree: Any) -> None:
    """Raises ValueError naming ``name`` when ``prefix`` is not a prefix of ``tree``."""
    try:
        jax.tree.map(lambda _, __: None, prefix, tree, is_leaf=lambda x: x is None)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(
            f"`{name}` does not match the parameter tree: it must have the same "
            f"structure as the params or be a prefix of it.\n{name}: "
            f"{jax.tree.structure(prefix)}\nparams: {jax.tree.structure(tree)}\n({err})"
        ) from None


def broadcast_prefix(name: str, prefix: Any, tree: Any, is_leaf: Callable | None = None) -> Any:
    """Copies each leaf of ``prefix`` onto every leaf of the matching subtree of ``tree``.

    The result has the structure of ``tree`` (None nodes and optax ``MaskedNode``s
    stay empty), with the prefix's objects (Python numbers stay Python numbers) as
    leaves.
    """
    if is_leaf is None:
        is_leaf = is_schedule
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


def check_scalar(name: str, value: Any) -> None:
    """Raises ValueError naming ``name`` when an array (also traced) is not 0-d.

    Numbers, schedules and path-strength objects pass. A 1-d ``strength`` would
    otherwise broadcast silently against a leaf (or turn a penalty into a vector).
    """
    if is_schedule(value) or hasattr(value, "__jaxreg_strength__"):
        return
    shape = getattr(value, "shape", ())
    if tuple(shape) != ():
        raise ValueError(
            f"`{name}` must be a scalar, got an array of shape {tuple(shape)} (per-leaf "
            "values go in a pytree that is a prefix of the params)."
        )


def strength_tree(strength: Any, tree: Any, name: str = "strength") -> Any:
    """Per-leaf strengths (Python numbers, arrays or schedules) shaped like ``tree``."""
    if hasattr(strength, "__jaxreg_strength__"):
        strength = strength.__jaxreg_strength__(tree)
    for leaf in jax.tree.leaves(strength, is_leaf=is_schedule):
        check_scalar(name, leaf)
    return broadcast_prefix(name, strength, tree)


def per_leaf_settings(strength: Any, mask: Any, tree: Any) -> tuple[Any, Any]:
    """Checks ``strength`` (no schedules) and ``mask``; returns both shaped like ``tree``.

    Used by the pure functions (penalties, prox operators), which have no step count.
    The mask tree holds Python bools (True where ``mask`` is None).
    """
    check_strength(strength, allow_schedule=False)
    check_mask_spec(mask)
    return strength_tree(strength, tree), mask_tree(mask, tree)


def mask_tree(mask: Any, tree: Any) -> Any:
    """A Python bool per leaf of ``tree`` (all True when ``mask`` is None)."""
    if mask is None:
        return jax.tree.map(lambda _: True, tree)
    return broadcast_prefix("mask", resolve_mask(mask, tree), tree, lambda x: False)


def is_regularized(leaf: Any, strength: Any, mask: bool) -> bool:
    """A float leaf that is masked in and whose strength is not a literal 0."""
    return mask and not is_literal_zero(strength) and is_float_leaf(leaf)


def needs_count(*values: Any) -> bool:
    """Whether any hyper-parameter (or leaf of a strength tree) is a schedule."""
    for value in values:
        if hasattr(value, "__jaxreg_strength__"):
            value = getattr(value, "values", ())
        if any(is_schedule(leaf) for leaf in jax.tree.leaves(value, is_leaf=is_schedule)):
            return True
    return False


def evaluate(value: Any, count: Any) -> Any:
    """Value of a hyper-parameter at ``count`` (schedules are called)."""
    return value(count) if is_schedule(value) else value


def is_literal_zero(value: Any) -> bool:
    """A Python number equal to zero: the pass-through case."""
    return isinstance(value, numbers.Number) and not isinstance(value, bool) and value == 0


def real_dtype(dtype: Any) -> Any:
    """float32 for complex64, float64 for complex128, the dtype itself otherwise."""
    return (
        jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else jnp.dtype(dtype)
    )


def is_float_leaf(x: Any) -> bool:
    """Inexact (float or complex) arrays are regularized; int and bool leaves pass through."""
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


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


def scalar_as(value: Any, dtype: Any) -> jax.Array:
    """Casts a (possibly traced) scalar hyper-parameter to ``dtype`` explicitly."""
    return jnp.asarray(value).astype(dtype)


def require_params(params: Any) -> None:
    if params is None:
        raise ValueError(optax._src.base.NO_PARAMS_MSG)
