"""Argument checks: one number checker and one mask-spec checker for every factory.

Rules (one place, so every factory says the same thing):

* A hyper-parameter (``strength``, ``learning_rate``, ``l1``, ``eps``...) is a
  Python number, a 0-d JAX/NumPy array or, where allowed, an optax schedule (a
  plain callable ``count -> scalar``). Numbers and concrete arrays must be real,
  finite and obey the factory's rule (``>= 0`` unless stated). A schedule is
  evaluated at step 0 when the factory is built and that value is checked; an
  error raised by the schedule itself propagates. Traced values cannot be checked
  when the factory is built: at run time a negative or NaN strength or learning
  rate makes the affected leaves NaN (see :func:`jaxreg._leafwise.threshold`).
* ``strength`` may also be a pytree of such values that is a prefix of the
  parameters, or a path-strength object (anything with a
  ``__jaxreg_strength__(params)`` method).
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

__all__ = [
    "MASK_RULE",
    "check_l1_ratio",
    "check_mask_leaves",
    "check_mask_spec",
    "check_number",
    "check_prefix",
    "check_scalar",
    "check_strength",
    "is_schedule",
    "needs_count",
    "require_params",
]

MASK_RULE = (
    "`mask` must be None, a pytree whose leaves are Python bools (True = "
    "regularize; a prefix of the params is fine) or a plain function "
    "params -> such a pytree"
)

NO_PARAMS_MSG = (
    "You are using a transformation that requires the current value of parameters, "
    "but you are not passing `params` when calling `update`."
)


def is_schedule(value: Any) -> bool:
    """A plain callable that is not a pytree with children (so not an eqx Module)."""
    if not callable(value) or hasattr(value, "__jaxreg_strength__"):
        return False
    return jax.tree_util.treedef_is_leaf(jax.tree.structure(value))


def _nonneg(x: float) -> bool:
    return x >= 0


def check_number(
    name: str,
    value: Any,
    rule: str = "finite and >= 0",
    ok: Callable[[float], bool] = _nonneg,
    *,
    schedule: bool = True,
    scalar: bool = True,
) -> None:
    """THE number checker: a real scalar, finite and ``ok``; optionally a schedule.

    A schedule is evaluated at step 0 (an ``int32`` count, as the transforms pass
    it) and its value checked; an exception raised by the schedule propagates.
    Tracers pass (their values are handled by the run-time rule). ``scalar=False``
    lets a concrete array through whole (every entry is checked): strengths are
    checked for shape when they are resolved per leaf.
    """
    if is_schedule(value):
        if not schedule:
            raise ValueError(f"`{name}` must be a number here, not a schedule; it must be {rule}.")
        try:
            first = value(jnp.zeros([], jnp.int32))
        except Exception as err:
            err.add_note(f"(raised by the schedule `{name}` evaluated at step 0)")
            raise
        try:
            check_number(name, first, rule, ok, schedule=False)
        except ValueError as err:
            raise ValueError(f"{err} (value of the schedule `{name}` at step 0)") from None
        return
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"`{name}` must be a real number ({rule}), got the bool {value!r}.")
    if isinstance(value, complex | np.complexfloating):
        raise ValueError(f"`{name}` must be a real number ({rule}), got {value!r}.")
    if isinstance(value, jax.core.Tracer):
        check_scalar(name, value)
        return
    if isinstance(value, numbers.Number):
        x = float(value)  # type: ignore[arg-type]
    elif isinstance(value, jax.Array | np.ndarray | np.generic):
        arr = np.asarray(value)
        if arr.dtype == np.bool_ or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise ValueError(
                f"`{name}` must be a real number ({rule}), got an array of dtype {arr.dtype}."
            )
        if not np.all(np.isfinite(arr)) or not all(ok(float(a)) for a in arr.reshape(-1)):
            raise ValueError(f"`{name}` must be {rule}, got {arr!r}.")
        if scalar:
            check_scalar(name, arr)
        return
    else:
        kinds = "a number, an array scalar or an optax schedule" if schedule else "a number"
        raise ValueError(f"`{name}` must be {kinds} ({rule}), got {type(value).__name__}.")
    if not math.isfinite(x) or not ok(x):
        raise ValueError(f"`{name}` must be {rule}, got {value!r}.")


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


def needs_count(*values: Any) -> bool:
    """Whether any hyper-parameter (or leaf of a strength tree) is a schedule."""
    for value in values:
        if hasattr(value, "__jaxreg_strength__"):
            value = getattr(value, "values", ())
        if any(is_schedule(leaf) for leaf in jax.tree.leaves(value, is_leaf=is_schedule)):
            return True
    return False


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
    if is_schedule(value) and not allow_schedule:
        raise ValueError(
            f"`{name}` must be a number or a pytree of numbers here; a schedule "
            "needs a step count and is only accepted by transforms."
        )
    leaves = jax.tree.leaves(value, is_leaf=is_schedule)
    if not leaves and not isinstance(value, numbers.Number):
        raise ValueError(f"`{name}` must be a number or a non-empty pytree of numbers.")
    for leaf in leaves:
        if is_schedule(leaf) and not allow_schedule:
            raise ValueError(f"`{name}` must hold numbers here, not schedules.")
        check_number(name, leaf, scalar=False)


def check_l1_ratio(l1_ratio: Any) -> None:
    """``l1_ratio`` must lie in [0, 1] (a number or a 0-d array; no schedule)."""
    check_number("l1_ratio", l1_ratio, "in [0, 1]", lambda x: 0.0 <= x <= 1.0, schedule=False)


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
    check_mask_leaves(mask)


def check_mask_leaves(mask_tree: Any) -> None:
    """Every leaf of a resolved mask is a Python bool."""
    if isinstance(mask_tree, jax.Array | np.ndarray):
        raise ValueError(f"{MASK_RULE}; the mask function returned an array.")
    for leaf in jax.tree.leaves(mask_tree):
        if not isinstance(leaf, bool | np.bool_):
            raise ValueError(
                f"{MASK_RULE}; found a leaf of type {type(leaf).__name__} ({leaf!r:.60})."
            )


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


def require_params(params: Any) -> None:
    """The error optax raises when a transform that needs ``params`` gets none."""
    if params is None:
        raise ValueError(NO_PARAMS_MSG)
