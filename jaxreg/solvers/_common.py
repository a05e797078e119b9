"""Shared pieces of the solvers: warnings, argument and data checks, tree helpers."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _dtypes

#: Relative resolution of a dtype used as the floor of a stopping tolerance:
#: ``_RESOLUTION·eps(dtype)`` times the scale of the gradient.
_RESOLUTION = 64


class ConvergenceWarning(UserWarning):
    """A jaxreg solver stopped at ``max_iter`` before meeting its tolerance.

    Emitted by eager calls of :func:`jaxreg.proximal_gradient` and
    :func:`jaxreg.regularization_path` (under ``jax.jit`` the ``converged`` fields
    of the result say the same). Silence it with
    ``warnings.simplefilter("ignore", jaxreg.ConvergenceWarning)``.
    """


def is_concrete(*trees: Any) -> bool:
    """True when no leaf of ``trees`` is a tracer (an eager call)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(trees))


def check_positive(name: str, value: Any, *, integer: bool = False, zero: bool = True) -> None:
    """A finite number ``>= 0`` (``> 0`` with ``zero=False``), or a positive int."""
    if integer:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        return
    if isinstance(value, jax.core.Tracer):
        return
    rule = ">= 0" if zero else "> 0"
    if isinstance(value, bool) or not isinstance(
        value, numbers.Real | np.ndarray | np.generic | jax.Array
    ):
        raise ValueError(f"`{name}` must be a finite number {rule}, got {value!r}.")
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"`{name}` must be a finite real number {rule}, got {value!r}.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or (not zero and np.any(arr == 0)):
        raise ValueError(f"`{name}` must be a finite number {rule}, got {value!r}.")


def warn_float64_downcast(name: str, value: Any) -> None:
    """Warns when float64 NumPy data would silently become float32 (x64 disabled)."""
    dt = getattr(value, "dtype", None)
    if (
        dt is not None
        and not isinstance(value, jax.Array)
        and np.dtype(dt) in (np.float64, np.complex128)
        and not jax.config.read("jax_enable_x64")
    ):
        warnings.warn(
            f"`{name}` is float64 but jax_enable_x64 is off: it is solved in float32 "
            "(cast it yourself to silence this, or run "
            'jax.config.update("jax_enable_x64", True) for a float64 solve).',
            UserWarning,
            stacklevel=3,
        )


def check_finite_data(name: str, value: Any) -> None:
    """Raises when a concrete array holds NaN or inf (tracers are checked in the program)."""
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    # a finite sum proves every entry finite (one pass, no temporary); a non-finite
    # one (NaN/inf, or finite entries overflowing) is decided entry by entry
    if not arr.size:
        return
    with np.errstate(over="ignore", invalid="ignore"):  # inf − inf, overflow: no warning
        total = arr.sum()
    if not np.isfinite(total) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{name}` must be finite: it holds {bad} NaN or inf value(s).")


def resolution(dtype: Any) -> float:
    """The relative tolerance below which a solve in ``dtype`` cannot be trusted."""
    return _RESOLUTION * float(jnp.finfo(dtype).eps)


def tree_vdot(a: Any, b: Any, dtype: Any) -> jax.Array:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    terms = [jnp.vdot(x, y).real.astype(dtype) for x, y in pairs]
    return sum(terms, jnp.zeros((), dtype))


def sup_norm(x: jax.Array) -> jax.Array:
    """``max|x|`` (0 for an empty ``x``), NaN when ``x`` holds a NaN.

    The NaN is propagated explicitly: XLA:CPU's vectorized max reduction can drop
    it (seen inside a vmapped ``while_loop``: a half-NaN vector's sup-norm came out
    0, so a NaN iterate passed a stopping test as converged).
    """
    top = jnp.max(jnp.abs(x), initial=0.0)
    return jnp.where(jnp.any(jnp.isnan(x)), jnp.full_like(top, jnp.nan), top)


def tree_max_abs(tree: Any, dtype: Any) -> jax.Array:
    terms = [sup_norm(x).astype(dtype) for x in jax.tree.leaves(tree) if x.size]
    if not terms:
        return jnp.zeros((), dtype)
    stacked = jnp.stack(terms)
    return jnp.where(jnp.any(jnp.isnan(stacked)), jnp.nan, jnp.max(stacked))


def axpy(a: jax.Array, x: Any, y: Any) -> Any:
    """``y + a·x`` leaf by leaf in each leaf's dtype."""
    return jax.tree.map(lambda xi, yi: yi + a.astype(_dtypes.real_dtype(xi.dtype)) * xi, x, y)


def max_eigenvalue(gram: jax.Array, iterations: int = 100) -> jax.Array:
    """``λ_max`` of a PSD matrix: exact for small ones, else power iteration × 1.05.

    The Rayleigh quotient of power iteration approaches ``λ_max`` from below; the
    5% margin keeps the step ``1/L`` on the safe side (a dense ``eigvalsh`` of a
    500×500 matrix costs more than a whole warm-started path).
    """
    p = gram.shape[0]
    if p <= 64:
        return jnp.linalg.eigvalsh(gram)[-1]
    start = jax.random.normal(jax.random.key(0), (p,), gram.dtype)

    def body(_, vec):
        nxt = gram @ vec
        return nxt / jnp.maximum(jnp.linalg.norm(nxt), jnp.finfo(gram.dtype).tiny)

    vec = jax.lax.fori_loop(0, iterations, body, start / jnp.linalg.norm(start))
    return 1.05 * jnp.vdot(vec, gram @ vec)


def group_ids(groups: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids ``(size,)`` and group sizes from ``groups``.

    ``groups`` is an int (consecutive groups of that size), a sequence of sizes
    (consecutive groups), or a sequence of index lists; the groups must partition
    ``range(size)``.
    """
    rule = (
        "`groups` must be an int (consecutive groups of that size), a list of group "
        "sizes summing to the number of coefficients, or a list of index lists that "
        f"partition range({size})"
    )
    if isinstance(groups, numbers.Integral) and not isinstance(groups, bool):
        if groups < 1 or size % groups:
            raise ValueError(f"{rule}; got groups={groups!r}.")
        k = int(groups)
        return np.repeat(np.arange(size // k), k), np.full(size // k, k)
    try:
        items = list(groups)
    except TypeError:
        raise ValueError(f"{rule}; got {type(groups).__name__}.") from None
    if not items:
        raise ValueError(f"{rule}; got an empty list.")
    if all(isinstance(g, numbers.Integral) and not isinstance(g, bool) for g in items):
        sizes = np.asarray(items, int)
        if np.any(sizes < 1) or sizes.sum() != size:
            raise ValueError(f"{rule}; got sizes summing to {int(sizes.sum())}.")
        return np.repeat(np.arange(len(sizes)), sizes), sizes
    ids = np.full(size, -1)
    for k, g in enumerate(items):
        idx = np.asarray(g)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{rule}; group {k} is {g!r}.")
        if np.any(idx < 0) or np.any(idx >= size) or np.any(ids[idx] >= 0):
            raise ValueError(f"{rule}; group {k} overlaps another or is out of range.")
        if np.unique(idx).size != idx.size:
            raise ValueError(f"{rule}; group {k} repeats an index.")
        ids[idx] = k
    if np.any(ids < 0):
        raise ValueError(f"{rule}; indices {np.flatnonzero(ids < 0)[:5].tolist()} are in no group.")
    return ids, np.bincount(ids)


def group_norms(x: jax.Array, ids: jax.Array, num: int) -> jax.Array:
    """Euclidean norm per group, scaled so tiny and huge entries neither under- nor overflow."""
    scale = jax.ops.segment_max(jnp.abs(x), ids, num)
    safe = jnp.where(scale > 0, scale, jnp.ones_like(scale))
    return safe * jnp.sqrt(jax.ops.segment_sum((x / safe[ids]) ** 2, ids, num)) * (scale > 0)


def group_shrink(x: jax.Array, t: jax.Array, ids: jax.Array, weights: jax.Array) -> jax.Array:
    """``x_g · max(0, 1 − t·w_g/‖x_g‖)`` per group (``w_g = √|g|``); NaN stays NaN."""
    num = weights.shape[0]
    norms = group_norms(x, ids, num)
    thr = (t * weights).astype(x.dtype)
    factor = jnp.where(norms > thr, 1 - thr / jnp.where(norms > 0, norms, 1), 0)
    factor = jnp.where(jnp.isnan(norms), jnp.nan, factor)
    return x * factor[ids]
