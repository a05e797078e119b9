"""The generic proximal gradient solver (ISTA / FISTA with an adaptive step)."""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from jaxreg import _checks, _dtypes, _leafwise, _penalties
from jaxreg import prox as prox_ops
from jaxreg.solvers import _common as c

_PROX_NAMES = ("l1", "l2", "elastic_net", "group_lasso")
_RESTARTS = ("gradient", "function", None)
_DENSE_MAX = 1024  # implicit differentiation: largest system solved densely
_GROW = 1.1  # line search: next trial step = last accepted step × _GROW after a clean step
_STALL = 50  # iterations without a new best error, within the dtype's floor, to stop there
_POWER_ITERS = 8  # secant power iterations for the first step's curvature estimate


class ProximalGradientResult(NamedTuple):
    """Solution and diagnostics of :func:`jaxreg.proximal_gradient`.

    Attributes:
      params: the solution, a pytree like ``init_params``.
      iterations: number of proximal gradient steps taken (int32).
      objective: ``f(params, *args) + R(params)`` at the solution (``R`` omitted for a
        custom prox function, whose penalty is unknown).
      converged: whether ``error <= tol`` was met before ``max_iter``, or the
        solve stopped where rounding stalled it (what the dtype resolves, see
        :func:`jaxreg.proximal_gradient`; an eager call then warns).
      step_size: the last step size ``η`` (the fixed ``learning_rate`` or the one the
        line search accepted).
      error: the last value of the stopping quantity
        ``max_i |x_{k+1} − y_k|_i / η`` (sup-norm of the gradient mapping).
    """

    params: Any
    iterations: jax.Array
    objective: jax.Array
    converged: jax.Array
    step_size: jax.Array
    error: jax.Array


class _Options(NamedTuple):
    """Everything static about a solve (the key of the compiled-program cache)."""

    fun: Callable
    prox: Any  # a name or a custom tree-level prox function
    mask: Any  # None, a callable, or ("tree", treedef, leaves)
    l1_ratio: Any
    group_axis: Any
    groups: Any  # None or (ids tuple, sizes tuple)
    fixed_step: bool
    acceleration: bool
    restart: str | None
    max_backtracks: int
    implicit_diff: bool


def _mask_key(mask: Any) -> Any:
    if mask is None or callable(mask):
        return mask
    leaves, treedef = jax.tree.flatten(mask)
    return ("tree", treedef, tuple(leaves))


def _mask_value(key: Any) -> Any:
    if isinstance(key, tuple) and len(key) == 3 and key[0] == "tree":
        return jax.tree.unflatten(key[1], key[2])
    return key


def _accepts_mask(fn: Callable) -> bool:
    """Whether ``fn`` takes a ``mask`` keyword (or ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True  # no signature (a builtin): let the call decide
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "mask" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    )


def _resolve_prox(opts: _Options) -> tuple[Callable, Callable | None]:
    """Returns ``(tree_prox(tree, t, mask), penalty(tree, s, mask) or None)``."""
    prox, l1_ratio, group_axis = opts.prox, opts.l1_ratio, opts.group_axis
    if callable(prox):

        def custom(tree, t, mask):
            if mask is None:
                return prox(tree, t)
            if not _accepts_mask(prox):
                raise ValueError(
                    "`mask` cannot be applied to a custom `prox` that takes no `mask` "
                    "keyword (jaxreg cannot tell whether it acts leaf by leaf): give it "
                    "a `mask=` parameter, or apply the mask inside it and pass mask=None."
                )
            return prox(tree, t, mask=mask)

        return custom, None
    if prox == "l1":
        return (
            lambda tree, t, mask: prox_ops.l1(tree, t, mask=mask),
            lambda tree, s, mask: _penalties.l1_penalty(tree, s, mask=mask),
        )
    if prox == "l2":
        return (
            lambda tree, t, mask: prox_ops.l2(tree, t, mask=mask),
            lambda tree, s, mask: _penalties.l2_penalty(tree, s, mask=mask),
        )
    if prox == "elastic_net":
        return (
            lambda tree, t, mask: prox_ops.elastic_net(tree, t, l1_ratio=l1_ratio, mask=mask),
            lambda tree, s, mask: _penalties.elastic_net_penalty(
                tree, s, l1_ratio=l1_ratio, mask=mask
            ),
        )
    if opts.groups is None:
        return (
            lambda tree, t, mask: prox_ops.group_lasso(tree, t, group_axis=group_axis, mask=mask),
            lambda tree, s, mask: _penalties.group_lasso_penalty(
                tree, s, group_axis=group_axis, mask=mask
            ),
        )
    ids_t, sizes_t = opts.groups
    ids = np.asarray(ids_t, np.int32)
    weights = np.sqrt(np.asarray(sizes_t, float))

    def grouped_prox(tree, t, mask):
        def leaf(x, ti, m):
            if not m or not _leafwise.is_float_leaf(x):
                return x
            if x.ndim == 1:
                return c.group_shrink(x, jnp.asarray(ti), jnp.asarray(ids), jnp.asarray(weights))
            return prox_ops.block_soft_threshold(x, ti, group_axis=group_axis)

        return jax.tree.map(leaf, tree, t, _leafwise.mask_tree(mask, tree))

    def grouped_penalty(tree, s, mask):
        total = []
        for x, si, m in zip(
            jax.tree.leaves(tree),
            jax.tree.leaves(s),
            jax.tree.leaves(_leafwise.mask_tree(mask, tree)),
            strict=True,
        ):
            if not m or not _leafwise.is_float_leaf(x):
                continue
            if x.ndim == 1:
                w = jnp.asarray(weights, x.dtype)
                total.append(si * jnp.sum(w * c.group_norms(x, jnp.asarray(ids), w.shape[0])))
            else:
                total.append(_penalties.group_lasso_penalty(x, si, group_axis=group_axis))
        return sum(total, jnp.zeros(()))

    return grouped_prox, grouped_penalty


def _scaled_strength(strengths: Any, eta: jax.Array) -> Any:
    """``η·λ`` per leaf of a full strength tree (finite: ``η·λ`` overflow saturates)."""

    def one(s):
        prod = eta * jnp.asarray(s).astype(eta.dtype)
        return jnp.where(
            jnp.isinf(prod) & ~jnp.isinf(s) & ~jnp.isinf(eta), jnp.finfo(eta.dtype).max, prod
        )

    return jax.tree.map(one, strengths)


def proximal_gradient(
    fun: Callable[..., jax.Array],
    init_params: Any,
    *args: Any,
    prox: str | Callable = "l1",
    strength: Any = 1.0,
    mask: Any = None,
    l1_ratio: Any = 0.5,
    group_axis: int | tuple[int, ...] = -1,
    groups: Any = None,
    learning_rate: Any = None,
    acceleration: bool = True,
    restart: str | None = "gradient",
    tol: float = 1e-6,
    max_iter: int = 1000,
    init_step: float | None = None,
    max_backtracks: int = 30,
    implicit_diff: bool = True,
) -> ProximalGradientResult:
    r"""Minimizes ``fun(w, *args) + R(w)`` over a pytree ``w`` by proximal gradient.

    ISTA: ``x_{k+1} = prox_{ηλR}(x_k − η∇f(x_k))``. FISTA (``acceleration=True``)
    takes the step from the extrapolated point ``y_k``:
    ``x_{k+1} = prox_{ηλR}(y_k − η∇f(y_k))``, ``t_{k+1} = (1 + √(1 + 4t_k²))/2``,
    ``y_{k+1} = x_{k+1} + ((t_k − 1)/t_{k+1})(x_{k+1} − x_k)``, with adaptive restart
    (O'Donoghue & Candès 2015): the momentum is reset (``t ← 1``) when
    ``⟨y_k − x_{k+1}, x_{k+1} − x_k⟩ > 0`` (``restart="gradient"``) or when the
    objective increased (``restart="function"``).

    Step: ``η`` is ``learning_rate`` when given (use ``1/L`` for an ``L``-smooth
    ``f``). Otherwise an adaptive line search: the first trial is ``init_step``
    or, by default, ``1/L̂`` with ``L̂`` a curvature estimate at ``init_params``
    (a few power iterations on gradient differences, ``‖∇f(x+hv) − ∇f(x)‖/h``);
    a trial is halved until
    ``f(x⁺) <= f(y) + ⟨∇f(y), x⁺ − y⟩ + ‖x⁺ − y‖²/(2η)``, and after a step
    accepted at its first trial the next trial is 1.1× larger, so the step follows
    the local curvature up as well as down (Scheinberg, Goldfarb & Bai 2014).

    Stopping: after iteration ``k`` the error is the sup-norm of the gradient
    mapping, ``max_i |x_{k+1} − y_k|_i / η`` (zero exactly at a minimizer; it has
    the units of ``∇f``); the loop stops when it is ``<= tol``, after
    ``max_iter`` iterations (or when it is NaN), or, in float32 and narrower
    dtypes, when rounding stalls it: 50 iterations without a new smallest
    error, that error being below ``√eps(dtype)·max|∇f(init_params)|``
    (``√eps ≈ 3.5e-4`` in float32). A
    float32 solve asked for ``tol=1e-10`` stops there, reports
    ``converged=True`` and, called eagerly, says so in a
    :class:`jaxreg.ConvergenceWarning`. An eager call that stops at
    ``max_iter`` warns too (under ``jit``, read ``converged``).

    Compilation: an eager call runs one compiled program, cached on the static
    options (``fun``, ``prox``, ``mask``, ``acceleration``, ...) and the shapes
    of the data: a second call with the same ``fun`` object and shapes reuses it,
    also with new ``strength``, ``learning_rate``, ``tol``, ``max_iter`` or
    ``init_step`` (define ``fun`` once, not as a fresh ``lambda`` per call). It
    stays jittable and vmappable (over ``args``, ``strength``, ``init_params``);
    under ``vmap`` every lane runs until the slowest has stopped, but a lane that
    has converged no longer changes.

    Run-time hyper-parameters (issue 12 rule): a traced ``strength`` or
    ``learning_rate`` that is negative or NaN gives NaN ``params`` (never an
    anti-regularized answer); a traced ``learning_rate`` of 0 takes no step.

    Differentiation: with ``implicit_diff=True`` (default) the solution is
    differentiable (forward and reverse mode) with respect to ``args`` and
    ``strength`` by implicit differentiation of the fixed point
    ``x = prox_{ηλR}(x − η∇f(x))`` (``jax.lax.custom_root``; the linear system is
    solved densely up to 1024 unknowns, by GMRES beyond); the iterations
    themselves are not differentiated, and the diagnostics carry no derivative.
    The derivative is that of the exact minimizer, valid where it is
    differentiable (e.g. for the Lasso: no coordinate exactly at the
    threshold). With ``implicit_diff=False`` only forward mode through the
    iterations is available (``while_loop`` has no reverse mode).

    Args:
      fun: the smooth part ``f(params, *args) -> scalar``, differentiable in params.
      init_params: a pytree of real float arrays (the starting point; complex
        parameters are refused: ``jax.grad`` of a real function of complex
        inputs is the conjugate of the descent direction).
      *args: data passed to ``fun`` (differentiable).
      prox: ``"l1"``, ``"l2"``, ``"elastic_net"``, ``"group_lasso"`` or a tree-level
        prox function ``(tree, t) -> tree`` (``jaxreg.prox.l1`` ... are recognized);
        ``R`` is the matching jaxreg penalty, e.g. ``λ‖w‖₁`` or ``(λ/2)‖w‖²``.
      strength: ``λ >= 0``, a number or a prefix pytree of numbers (no schedules).
      mask: as everywhere in jaxreg: which leaves are penalized.
      l1_ratio: for ``"elastic_net"``.
      group_axis: for ``"group_lasso"`` on leaves with ``ndim >= 2``.
      groups: for ``"group_lasso"`` on 1-d coefficient vectors (linear models):
        an int (consecutive groups of that size), a list of group sizes, or a
        list of index lists partitioning the vector; group ``g`` is penalized by
        ``λ·√|g|·‖w_g‖₂``. Without it a ``"group_lasso"`` whose penalized leaves
        are all 1-d is refused (it would penalize nothing).
      learning_rate: fixed step ``η > 0``; ``None`` selects the line search.
      acceleration: FISTA (True) or ISTA (False).
      restart: ``"gradient"``, ``"function"`` or ``None`` (plain FISTA).
      tol: tolerance on the sup-norm of the gradient mapping.
      max_iter: iteration cap.
      init_step: first trial step of the line search (default: ``1/L̂``).
      max_backtracks: halvings per line search.
      implicit_diff: see above.

    Returns:
      A :class:`ProximalGradientResult`.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> fun = lambda w, b: 0.5 * jnp.sum((w - b) ** 2)
      >>> res = jaxreg.proximal_gradient(fun, jnp.zeros(3), jnp.array([3.0, -0.5, 1.5]),
      ...                                strength=1.0, learning_rate=1.0)
      >>> print(res.params, bool(res.converged))
      [ 2.  -0.   0.5] True

    References:
      Beck & Teboulle, *A fast iterative shrinkage-thresholding algorithm*, 2009;
      O'Donoghue & Candès, *Adaptive restart for accelerated gradient schemes*, 2015;
      Scheinberg, Goldfarb & Bai, *Fast first-order methods for composite convex
      optimization with backtracking*, 2014.
    """
    if not callable(fun):
        raise ValueError(f"`fun` must be a callable f(params, *args), got {type(fun).__name__}.")
    known = {
        prox_ops.l1: "l1",
        prox_ops.l2: "l2",
        prox_ops.elastic_net: "elastic_net",
        prox_ops.group_lasso: "group_lasso",
    }
    if callable(prox) and not isinstance(prox, str):
        prox = known.get(prox, prox)
    elif prox not in _PROX_NAMES:
        raise ValueError(
            f"`prox` must be one of {_PROX_NAMES} or a tree-level prox function "
            f"(tree, strength) -> tree such as jaxreg.prox.l1; got {prox!r}."
        )
    if prox == "elastic_net":
        _checks.check_l1_ratio(l1_ratio)
    if prox == "group_lasso":
        _penalties.check_group_axis(group_axis)
    _checks.check_strength(strength, allow_schedule=False)
    _checks.check_mask_spec(mask)
    if restart not in _RESTARTS:
        raise ValueError(f"`restart` must be one of {_RESTARTS}, got {restart!r}.")
    if restart == "function" and callable(prox):
        raise ValueError(
            '`restart="function"` needs the objective, unknown for a custom `prox`; '
            'use restart="gradient".'
        )
    if learning_rate is not None:
        c.check_positive("learning_rate", learning_rate, zero=False)
    c.check_positive("tol", tol)
    if init_step is not None:
        c.check_positive("init_step", init_step, zero=False)
    c.check_positive("max_iter", max_iter, integer=True)
    c.check_positive("max_backtracks", max_backtracks, integer=True)
    c.warn_float64_downcast("init_params", init_params)
    init_params = jax.tree.map(
        lambda x: jnp.asarray(x) if isinstance(x, float | np.ndarray) else x, init_params
    )
    leaves = jax.tree.leaves(init_params)
    if not leaves or not all(_leafwise.is_float_leaf(x) for x in leaves):
        raise ValueError("`init_params` must be a non-empty pytree of float arrays.")
    if any(jnp.issubdtype(x.dtype, jnp.complexfloating) for x in leaves):
        raise ValueError(
            "`init_params` must be real: complex parameters are not supported (jax.grad "
            "of a real loss of complex inputs is the conjugate of the descent direction); "
            "split them into real and imaginary parts."
        )
    group_key = None
    if groups is not None:
        if prox != "group_lasso":
            raise ValueError(f'`groups` is for prox="group_lasso", got prox={prox!r}.')
        sizes = {x.shape[0] for x in leaves if x.ndim == 1}
        if len(sizes) != 1:
            raise ValueError(
                "`groups` needs the 1-d leaves of `init_params` to share one length, "
                f"got lengths {sorted(sizes)}."
            )
        ids, gsizes = c.group_ids(groups, sizes.pop())
        group_key = (tuple(int(i) for i in ids), tuple(int(s) for s in gsizes))
    elif prox == "group_lasso":
        mt = jax.tree.leaves(_leafwise.mask_tree(mask, init_params))
        if not any(m and x.ndim >= 2 for x, m in zip(leaves, mt, strict=True)):
            raise ValueError(
                '`groups` is required: prox="group_lasso" groups leaves with ndim >= 2 '
                "along `group_axis` and every penalized leaf here is 1-d, so nothing would "
                "be penalized; pass groups= (group sizes or index lists)."
            )
    strengths = _leafwise.strength_tree(strength, init_params)
    opts = _Options(
        fun=fun,
        prox=prox,
        mask=_mask_key(mask),
        l1_ratio=l1_ratio,
        group_axis=group_axis,
        groups=group_key,
        fixed_step=learning_rate is not None,
        acceleration=bool(acceleration),
        restart=restart,
        max_backtracks=int(max_backtracks),
        implicit_diff=bool(implicit_diff),
    )
    dtype = _dtypes.promote(*[_dtypes.accumulation_dtype(x.dtype) for x in leaves])
    dyn = (
        init_params,
        args,
        strengths,
        jnp.asarray(1.0 if learning_rate is None else learning_rate).astype(dtype),
        jnp.asarray(tol).astype(dtype),
        jnp.asarray(min(max_iter, np.iinfo(np.int32).max), jnp.int32),
        jnp.asarray(-1.0 if init_step is None else init_step).astype(dtype),
    )
    try:
        hash(opts)
        cacheable = all(
            isinstance(x, jax.Array | np.ndarray | np.generic | numbers.Number)
            for x in jax.tree.leaves(args)
        )
    except TypeError:
        cacheable = False
    if cacheable:
        res, floor = _solve_jit(*dyn, opts=opts)
    else:
        res, floor = _solve(*dyn, opts=opts)
    if is_concrete(res.converged, floor):
        err, floor_v = float(res.error), float(floor)
        if not bool(res.converged) and not np.isnan(err):
            warnings.warn(
                f"proximal_gradient stopped at max_iter={max_iter} with error {err:.3g} > "
                f"tol={tol:g}: raise max_iter or tol (or pass a `learning_rate`).",
                c.ConvergenceWarning,
                stacklevel=2,
            )
        elif bool(res.converged) and err > float(tol):
            warnings.warn(
                f"tol={tol:g} is below what {np.dtype(dtype).name} resolves for this problem; "
                f"proximal_gradient stopped at error {err:.3g}, where rounding stalled it "
                f"(below √eps times the initial gradient's sup-norm, {floor_v:.3g}); use "
                "float64 (jax_enable_x64) for more.",
                c.ConvergenceWarning,
                stacklevel=2,
            )
    return res


is_concrete = c.is_concrete


def _solve(init_params, args, strengths, lr, tol, max_iter, init_step, *, opts):
    tree_prox, penalty = _resolve_prox(opts)
    masks = _mask_value(opts.mask)
    fun, restart, acceleration = opts.fun, opts.restart, opts.acceleration
    acc = [_dtypes.accumulation_dtype(x.dtype) for x in jax.tree.leaves(init_params)]
    dtype = _dtypes.promote(*acc)
    s_leaves = [jnp.asarray(s) for s in jax.tree.leaves(strengths)]
    bad_strength = jnp.any(jnp.stack([jnp.any(~(s >= 0)) for s in s_leaves]))
    bad = bad_strength | ~(lr >= 0) if opts.fixed_step else bad_strength
    no_step = (lr == 0) if opts.fixed_step else jnp.zeros((), bool)
    max_iter = jnp.where(bad | no_step, 0, max_iter)

    def smooth(x, data):
        return jnp.asarray(fun(x, *data)).astype(dtype)

    def objective(x, data, strs):
        value = smooth(x, data)
        if penalty is not None:
            value = value + jnp.asarray(penalty(x, strs, masks)).astype(dtype)
        return value

    def prox_step(y, g, eta, strs):
        return tree_prox(c.axpy(-eta, g, y), _scaled_strength(strs, eta), masks)

    grad = jax.grad(smooth)

    def first_step(x0, data, g0):
        """``1/L̂``: secant power iterations ``‖∇f(x0 + h·u) − ∇f(x0)‖/h``."""
        flat0, unravel = jax.flatten_util.ravel_pytree(x0)
        gflat0 = jax.flatten_util.ravel_pytree(g0)[0].astype(dtype)
        u = jax.random.normal(jax.random.key(0), flat0.shape, dtype)
        u = u / jnp.linalg.norm(u)
        scale = jnp.maximum(jnp.max(jnp.abs(flat0), initial=0.0).astype(dtype), 1)
        h = jnp.sqrt(jnp.finfo(dtype).eps) * scale

        def body(_, carry):
            u, _ = carry
            xp = unravel((flat0 + (h * u).astype(flat0.dtype)).astype(flat0.dtype))
            gp = jax.flatten_util.ravel_pytree(grad(xp, data))[0].astype(dtype)
            hu = (gp - gflat0) / h
            norm = jnp.linalg.norm(hu)
            return hu / jnp.where(norm > 0, norm, 1), norm

        _, lip = jax.lax.fori_loop(0, _POWER_ITERS, body, (u, jnp.zeros((), dtype)))
        ok = jnp.isfinite(lip) & (lip > 0)
        return jnp.where(ok, 1 / jnp.where(ok, lip, 1), 1.0)

    def solve(x0, data, strs):
        g0 = grad(x0, data)
        gscale = c.tree_max_abs(g0, dtype)
        # float32 and narrower: stop where rounding stalls the error (float64 reaches tol)
        rel = float(np.sqrt(jnp.finfo(dtype).eps)) if jnp.finfo(dtype).eps > 1e-10 else 0.0
        floor = rel * jnp.where(jnp.isfinite(gscale), gscale, 0)
        if opts.fixed_step:
            eta0 = lr
        else:
            eta0 = jnp.where(init_step > 0, init_step, first_step(x0, data, g0))

        def step(y, eta_prev, grow):
            fy, g = jax.value_and_grad(smooth)(y, data)
            if opts.fixed_step:
                x_new = prox_step(y, g, eta_prev, strs)
                f_new = smooth(x_new, data) if restart == "function" else fy
                return x_new, f_new, eta_prev, grow
            slack = 10 * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(fy), 1)

            def sufficient(x_new, f_new, eta):
                d = jax.tree.map(lambda a, b: a - b, x_new, y)
                model = fy + c.tree_vdot(g, d, dtype) + c.tree_vdot(d, d, dtype) / (2 * eta)
                return f_new <= model + slack

            def ls_cond(cr):
                x_new, f_new, eta, n = cr
                return (~sufficient(x_new, f_new, eta)) & (n < opts.max_backtracks)

            def ls_body(cr):
                _, _, eta, n = cr
                eta = eta / 2
                x_new = prox_step(y, g, eta, strs)
                return x_new, smooth(x_new, data), eta, n + 1

            eta = eta_prev * jnp.where(grow, _GROW, 1.0).astype(dtype)
            x_new = prox_step(y, g, eta, strs)
            x_new, f_new, eta, n = jax.lax.while_loop(
                ls_cond, ls_body, (x_new, smooth(x_new, data), eta, jnp.zeros((), jnp.int32))
            )
            return x_new, f_new, eta, n == 0

        def cond(state):
            k, _, _, _, _, _, err, _, stall, best = state
            return (k < max_iter) & (err > tol) & ~((stall >= _STALL) & (best <= floor))

        def body(state):
            k, x, y, t, eta, grow, _, fx, stall, best = state
            x_new, f_new, eta, grow = step(y, eta, grow)
            diff = jax.tree.map(lambda a, b: a - b, x_new, y)
            err = c.tree_max_abs(diff, dtype) / eta
            stall = jnp.where(err < best, 0, stall + 1)  # iterations without a new best
            best = jnp.minimum(best, err)
            if not acceleration:
                return k + 1, x_new, x_new, t, eta, grow, err, fx, stall, best
            dx = jax.tree.map(lambda a, b: a - b, x_new, x)
            if restart == "gradient":
                reset = c.tree_vdot(diff, dx, dtype) < 0  # ⟨y − x⁺, x⁺ − x⟩ > 0
                f_keep = fx
            elif restart == "function":
                assert penalty is not None  # function restart is refused without one
                f_keep = f_new + jnp.asarray(penalty(x_new, strs, masks)).astype(dtype)
                reset = f_keep > fx
            else:
                reset = jnp.zeros((), bool)
                f_keep = fx
            t = jnp.where(reset, jnp.ones_like(t), t)
            t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
            y_new = c.axpy((t - 1) / t_new, dx, x_new)
            return k + 1, x_new, y_new, t_new, eta, grow, err, f_keep, stall, best

        fx0 = objective(x0, data, strs) if restart == "function" else jnp.zeros((), dtype)
        one = jnp.ones((), dtype)
        inf = jnp.asarray(jnp.inf, dtype)
        zero = jnp.zeros((), jnp.int32)
        state0 = (zero, x0, x0, one, eta0, jnp.zeros((), bool), inf, fx0, zero, inf)
        k, x, _, _, eta, _, err, _, stall, best = jax.lax.while_loop(cond, body, state0)
        stalled = (stall >= _STALL) & (best <= floor)
        return x, k, eta, err, jnp.where(stalled, jnp.maximum(err, tol), tol), floor

    def sg(tree):  # stop gradients on array leaves; other objects in `args` pass through
        return jax.tree.map(
            lambda x: jax.lax.stop_gradient(x) if isinstance(x, jax.Array | np.ndarray) else x,
            tree,
        )

    if not opts.implicit_diff:
        x, k, eta, err, tol_eff, floor = solve(init_params, args, strengths)
    else:
        x_star, k, eta, err, tol_eff, floor = solve(sg(init_params), sg(args), sg(strengths))

        def fixed_point_residual(x):
            g = grad(x, args)
            x_next = prox_step(x, g, eta, strengths)
            return jax.tree.map(lambda a, b: a - b, x_next, x)

        x = jax.lax.custom_root(
            fixed_point_residual, x_star, lambda _, guess: guess, _tangent_solve
        )
    x = jax.tree.map(lambda a: jnp.where(bad, jnp.nan, a).astype(a.dtype), x)
    obj = jnp.where(bad, jnp.nan, objective(x, args, strengths))
    err = jnp.where(bad, jnp.nan, err)
    return ProximalGradientResult(x, k, obj, err <= tol_eff, eta, err), floor


_solve_jit = jax.jit(_solve, static_argnames=("opts",))


def _tangent_solve(matvec: Callable, b: Any) -> Any:
    """Solves ``matvec(u) = b``, transposable for reverse mode.

    Up to 1024 unknowns the matrix is formed (one batched ``matvec``) and solved
    densely (LU); beyond that, GMRES.
    """
    flat, _ = jax.flatten_util.ravel_pytree(b)
    size = flat.shape[0]

    def dense(mv, rhs):
        rhs_flat, unravel_rhs = jax.flatten_util.ravel_pytree(rhs)

        def column(e):
            return jax.flatten_util.ravel_pytree(mv(unravel_rhs(e)))[0]

        eye = jnp.eye(size, dtype=rhs_flat.dtype)
        mat = jax.vmap(column, out_axes=1)(eye)
        return unravel_rhs(jnp.linalg.solve(mat, rhs_flat))

    def gmres(mv, rhs):
        tol = float(np.finfo(flat.dtype).eps) ** 0.75
        return jax.scipy.sparse.linalg.gmres(
            mv, rhs, tol=tol, atol=0.0, restart=50, maxiter=20, solve_method="incremental"
        )[0]

    solver = dense if size <= _DENSE_MAX else gmres
    return jax.lax.custom_linear_solve(matvec, b, solver, transpose_solve=solver)
