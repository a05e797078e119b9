"""Penalties: pure functions ``params -> scalar`` for use inside any loss.

Every penalty sums each leaf in at least float32 (float64 for float64 leaves), so a
float16 or bfloat16 model does not overflow, and defines the minimum-norm
subgradient at zero: ``jax.grad`` of a penalty at a weight (or group) that is
exactly zero is exactly zero and finite, where ``jax.grad(jnp.abs)(0.)`` is 1 and the
gradient of a Euclidean norm at 0 is NaN.

Integer and boolean leaves, ``None`` leaves and masked-out leaves contribute nothing;
a Python float is a float leaf (``l1_penalty([0.5, -1.0], 1.0) == 1.5``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _checks, _dtypes, _leafwise

__all__ = [
    "elastic_net_penalty",
    "group_lasso_penalty",
    "l1_penalty",
    "l2_penalty",
]


@jax.custom_jvp
def safe_abs(x: jax.Array) -> jax.Array:
    """``|x|`` (the modulus for complex ``x``) with derivative 0 at ``x = 0``."""
    return jnp.abs(x)


@safe_abs.defjvp
def _safe_abs_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = jnp.abs(x)
    if jnp.iscomplexobj(x):
        safe = jnp.where(y == 0, jnp.ones_like(y), y)
        dy = jnp.where(y == 0, jnp.zeros_like(y), jnp.real(jnp.conj(x) * dx) / safe)
    else:
        dy = jnp.sign(x) * dx
    return y, dy


def squared_modulus(x: jax.Array) -> jax.Array:
    """``x²`` for real ``x``, ``|x|²`` for complex ``x`` (smooth everywhere)."""
    if jnp.iscomplexobj(x):
        return jnp.real(x) * jnp.real(x) + jnp.imag(x) * jnp.imag(x)
    return x * x


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def safe_group_norm(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Euclidean norm over ``axes`` (keepdims) with derivative 0 where the norm is 0."""
    return jnp.sqrt(jnp.sum(squared_modulus(x), axis=axes, keepdims=True))


@safe_group_norm.defjvp
def _safe_group_norm_jvp(axes, primals, tangents):
    (x,), (dx,) = primals, tangents
    n = safe_group_norm(x, axes)
    inner = jnp.sum(jnp.real(jnp.conj(x) * dx), axis=axes, keepdims=True)
    safe = jnp.where(n == 0, jnp.ones_like(n), n)
    return n, jnp.where(n == 0, jnp.zeros_like(n), inner / safe)


def reduce_axes(ndim: int, group_axis: int | tuple[int, ...]) -> tuple[int, ...] | None:
    """Axes a group norm sums over (all but ``group_axis``); None if not grouped.

    Leaves with ``ndim < 2`` are not grouped (None). ``group_axis`` indexes the
    groups: ``-1`` (Flax's Dense/Conv kernels) makes one group per output unit or
    filter; ``0`` does so for equinox/torch ``(out, in)`` weights.
    """
    if ndim < 2:
        return None
    axes = (group_axis,) if isinstance(group_axis, int) else tuple(group_axis)
    norm = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool) or not -ndim <= a < ndim:
            raise ValueError(
                f"`group_axis` must be an int or a tuple of ints in [-ndim, ndim) for every "
                f"grouped leaf; got {group_axis!r} for a leaf with ndim={ndim}."
            )
        norm.append(a % ndim)
    if len(set(norm)) != len(norm):
        raise ValueError(f"`group_axis` repeats an axis: {group_axis!r}.")
    rest = tuple(i for i in range(ndim) if i not in norm)
    if not rest:
        raise ValueError(
            f"`group_axis`={group_axis!r} names every axis of a leaf with ndim={ndim}: "
            "each group would be a single entry (use l1 instead)."
        )
    return rest


def group_size(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    size = 1
    for a in axes:
        size *= shape[a]
    return size


def check_group_axis(group_axis: Any) -> None:
    ok = isinstance(group_axis, int) and not isinstance(group_axis, bool)
    if isinstance(group_axis, tuple) and group_axis:
        ok = all(isinstance(a, int) and not isinstance(a, bool) for a in group_axis)
    if not ok:
        hint = ""
        if isinstance(group_axis, jax.Array):
            hint = (
                " (optax.inject_hyperparams turns ints into arrays: list 'group_axis' "
                "in its static_args)"
            )
        raise ValueError(
            f"`group_axis` must be an int or a non-empty tuple of ints, got {group_axis!r}{hint}."
        )


def require_inexact(name: str, x: Any) -> jax.Array:
    """``x`` as an array; a bare integer or bool array is refused (ValueError)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise ValueError(
            f"`{name}` must be a float or complex array, got dtype {x.dtype}: an integer "
            "threshold would be truncated. Cast it (`x.astype(jnp.float32)`); the pytree "
            "operators pass integer leaves through unchanged."
        )
    return x


def floats_as_arrays(tree: Any) -> Any:
    """Python float (and complex) leaves become arrays: a Python float is a float leaf.

    Python ints and bools stay as they are (they pass through, like integer arrays).
    """

    def leaf(x):
        if isinstance(x, float | complex) and not isinstance(x, bool):
            return jnp.asarray(x)
        return x

    return jax.tree.map(leaf, tree)


def check_radius(radius: Any) -> Any:
    """A projection radius: a finite number ``>= 0`` or a scalar array, never a schedule."""
    if _checks.is_schedule(radius):
        raise ValueError(
            "`radius` must be a number or a scalar array, got a schedule: a projection has "
            "no step count (evaluate the schedule yourself: `radius=schedule(step)`)."
        )
    if isinstance(radius, jax.Array | np.ndarray | np.generic | jax.core.Tracer):
        _checks.check_scalar("radius", radius)
    _checks.check_number("radius", radius)
    return radius


def _penalty(
    params: Any,
    strength: Any,
    mask: Any,
    leaf_value: Callable[[jax.Array], jax.Array],
    kind: str = "l1",
    group_axis: Any = None,
) -> jax.Array:
    """``Σ_leaf strength_leaf · leaf_value(leaf)`` accumulated in >= float32.

    Which leaves count and with which strength is the engine's per-leaf rule
    (:func:`jaxreg._leafwise.leaf_rules`), as for the transforms.
    """
    _checks.check_strength(strength, allow_schedule=False)
    _checks.check_mask_spec(mask)
    reg = _leafwise.Regularizer(kind, strength, mask, group_axis=group_axis)
    treedef: Any = jax.tree.structure(params)
    rules = treedef.flatten_up_to(_leafwise.leaf_rules(reg, params))
    terms = []
    for w, rule in zip(jax.tree.leaves(params), rules, strict=True):
        if rule is _leafwise.PASS:
            continue
        w = jnp.asarray(w)
        acc = _dtypes.accumulation_dtype(w.dtype)
        wide = w.astype(_dtypes.promote(w.dtype, jnp.float32))
        terms.append(_leafwise.nonneg(rule[0], acc) * leaf_value(wide).astype(acc))
    if not terms:
        return jnp.zeros((), jnp.float32)
    out = _dtypes.promote(*(t.dtype for t in terms))
    total = terms[0].astype(out)
    for term in terms[1:]:
        total = total + term.astype(out)
    return total


def l1_penalty(params: Any, strength: Any = 1.0, *, mask: Any = None) -> jax.Array:
    r"""L1 penalty ``strength · Σ|w|`` over a pytree.

    ``|w|`` is the modulus for complex leaves. The gradient at ``w = 0`` is 0 (the
    minimum-norm subgradient), so pruned weights get a zero, finite gradient.

    Args:
      params: a pytree of arrays (``None`` leaves allowed).
      strength: ``λ >= 0``: a number, or a pytree of numbers that is a prefix of
        ``params`` (per-leaf strengths), or :func:`jaxreg.path_strengths`.
      mask: ``None`` (all leaves), a pytree of Python bools (True = penalize), or a
        function ``params -> such a pytree``.

    Returns:
      A scalar, float32 (float64 if any penalized leaf is float64).

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])}
      >>> print(jaxreg.l1_penalty(params, 0.5))
      3.0
      >>> print(jaxreg.l1_penalty(params, 0.5, mask={"w": True, "b": False}))
      1.5

    References:
      Tibshirani, *Regression shrinkage and selection via the lasso*, 1996.
    """
    return _penalty(params, strength, mask, lambda w: jnp.sum(safe_abs(w)))


def l2_penalty(params: Any, strength: Any = 1.0, *, mask: Any = None) -> jax.Array:
    r"""L2 penalty ``(strength/2) · Σw²``, so its gradient is ``strength · w``.

    This is the convention of torch's ``weight_decay`` and optax's
    ``add_decayed_weights``. Keras ``L2(l2)`` is ``l2·Σw²``: use ``strength = 2·l2``.
    scikit-learn ``Ridge(alpha)`` minimizes ``‖y − Xw‖² + alpha‖w‖²``: with a data
    loss ``(1/2n)‖y − Xw‖²`` use ``strength = alpha / n``.

    Args:
      params: a pytree of arrays.
      strength: ``λ >= 0``; number, prefix pytree of numbers or path strengths.
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      A scalar, float32 (float64 if any penalized leaf is float64).

    Example:
      >>> import jax, jax.numpy as jnp, jaxreg
      >>> w = jnp.array([1.0, -2.0])
      >>> print(jaxreg.l2_penalty(w, 0.1))
      0.25
      >>> print(jax.grad(jaxreg.l2_penalty)(w, 0.1))
      [ 0.1 -0.2]

    References:
      Hoerl & Kennard, *Ridge regression*, 1970.
    """
    return _penalty(params, strength, mask, lambda w: 0.5 * jnp.sum(squared_modulus(w)))


def elastic_net_penalty(
    params: Any, strength: Any = 1.0, *, l1_ratio: Any = 0.5, mask: Any = None
) -> jax.Array:
    r"""Elastic net ``strength · (r·Σ|w| + (1 − r)/2 · Σw²)``, ``r = l1_ratio ∈ [0, 1]``.

    This is scikit-learn's ``ElasticNet(alpha=strength, l1_ratio=r)`` penalty.

    Args:
      params: a pytree of arrays.
      strength: ``λ >= 0``; number, prefix pytree of numbers or path strengths.
      l1_ratio: ``r`` in ``[0, 1]``; 1 is the lasso, 0 is ridge.
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      A scalar, float32 (float64 if any penalized leaf is float64).

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> w = jnp.array([1.0, -2.0])
      >>> print(jaxreg.elastic_net_penalty(w, 1.0, l1_ratio=0.5))
      2.75

    References:
      Zou & Hastie, *Regularization and variable selection via the elastic net*, 2005.
    """
    _checks.check_l1_ratio(l1_ratio)

    def value(w):
        r = _dtypes.scalar_as(l1_ratio, _dtypes.real_dtype(w.dtype))
        l1 = jnp.sum(safe_abs(w))
        l2 = 0.5 * jnp.sum(squared_modulus(w))
        return r * l1 + (1 - r) * l2

    return _penalty(params, strength, mask, value)


def group_lasso_penalty(
    params: Any,
    strength: Any = 1.0,
    *,
    mask: Any = None,
    group_axis: int | tuple[int, ...] = -1,
) -> jax.Array:
    r"""Group lasso ``strength · Σ_g √|g| · ‖w_g‖₂`` (Yuan & Lin 2006).

    Groups: in each leaf with ``ndim >= 2``, all entries that share the index (or
    indices) along ``group_axis`` form one group; ``|g|`` is the number of entries
    in a group. Leaves with ``ndim < 2`` (biases, scales) are not grouped and
    contribute nothing. Which axis to pass:

    * Flax ``Dense`` kernel ``(in, out)`` and ``Conv`` kernel ``(..., in, out)``:
      ``group_axis=-1`` (default) groups each output unit / filter (Wen et al. 2016).
    * equinox ``Linear`` / torch weights ``(out, in)``: ``group_axis=0``.
    * a unit's outgoing weights (rows of a Flax kernel, Scardapane et al. 2017):
      ``group_axis=0``.
    * attention kernels ``(in, heads, head_dim)``: ``group_axis=(1, 2)`` groups each
      output feature; ``group_axis=1`` groups whole heads.

    The gradient at a group that is exactly zero is 0 (finite).

    Args:
      params: a pytree of arrays.
      strength: ``λ >= 0``; number, prefix pytree of numbers or path strengths.
      mask: ``None``, a pytree of Python bools, or a function returning one.
      group_axis: the axis or axes that index the groups.

    Returns:
      A scalar, float32 (float64 if any penalized leaf is float64).

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> kernel = jnp.array([[3.0, 0.0], [4.0, 0.0]])  # (in=2, out=2)
      >>> print(jaxreg.group_lasso_penalty({"kernel": kernel, "bias": jnp.ones(2)}))
      7.071068

    References:
      Yuan & Lin, *Model selection and estimation in regression with grouped
      variables*, 2006. Wen et al., *Learning structured sparsity in deep neural
      networks*, 2016. Scardapane et al., *Group sparse regularization for deep
      neural networks*, 2017.
    """
    check_group_axis(group_axis)

    def value(w):
        axes = reduce_axes(w.ndim, group_axis)
        if axes is None:
            return jnp.zeros((), _dtypes.real_dtype(w.dtype))
        size = group_size(w.shape, axes)
        norms = safe_group_norm(w, axes)
        return jnp.sqrt(jnp.asarray(size, norms.dtype)) * jnp.sum(norms)

    return _penalty(params, strength, mask, value, "group_lasso", group_axis)
