"""Proximal gradient solver (ISTA / FISTA) and regularization paths.

A maintained, jittable replacement for jaxopt's ``ProximalGradient`` built on
jaxreg's own prox operators, plus regularization paths over a grid of strengths,
warm-started in sequence (``jax.lax.scan``) or solved all at once (``jax.vmap``).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from jaxreg import _penalties, _prox
from jaxreg import _validation as v

__all__ = [
    "PathResult",
    "ProximalGradientResult",
    "plot_path",
    "proximal_gradient",
    "regularization_path",
]

_PROX_NAMES = ("l1", "l2", "elastic_net", "group_lasso")
_RESTARTS = ("gradient", "function", None)
_DENSE_MAX = 1024  # implicit differentiation: largest system solved densely


class ProximalGradientResult(NamedTuple):
    """Solution and diagnostics of :func:`jaxreg.proximal_gradient`.

    Attributes:
      params: the solution, a pytree like ``init_params``.
      iterations: number of proximal gradient steps taken (int32).
      objective: ``f(params, *args) + R(params)`` at the solution (``R`` omitted for a
        custom prox function, whose penalty is unknown).
      converged: whether the stopping test ``error <= tol`` was met before ``max_iter``.
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


class PathResult(NamedTuple):
    """Coefficients along a regularization path (:func:`jaxreg.regularization_path`).

    Attributes:
      strengths: the grid, shape ``(K,)``, in decreasing order when it is the default.
      coef: coefficients, shape ``(K, n_features)`` (row ``k`` solves strength ``k``;
        scikit-learn's ``lasso_path`` returns the transpose).
      intercept: shape ``(K,)``, zeros when ``fit_intercept=False``.
      iterations: solver iterations per strength, shape ``(K,)`` (FISTA steps;
        polishing steps are not counted, so a warm start that the polish
        solves at once reports 0).
      converged: per strength, shape ``(K,)``.
      objective: the objective per strength (scikit-learn's normalization), ``(K,)``.
    """

    strengths: jax.Array
    coef: jax.Array
    intercept: jax.Array
    iterations: jax.Array
    converged: jax.Array
    objective: jax.Array


# ----------------------------------------------------------------------------- helpers


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


def _resolve_prox(prox: Any, l1_ratio: Any, group_axis: Any) -> tuple[Callable, Callable | None]:
    """Returns ``(tree_prox(tree, t, mask), penalty(tree, s, mask) or None)``."""
    known = {
        _prox.prox_l1: "l1",
        _prox.prox_l2: "l2",
        _prox.prox_elastic_net: "elastic_net",
        _prox.prox_group_lasso: "group_lasso",
    }
    if callable(prox) and not isinstance(prox, str):
        name = known.get(prox)
        if name is None:

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
        prox = name
    if prox not in _PROX_NAMES:
        raise ValueError(
            f"`prox` must be one of {_PROX_NAMES} or a tree-level prox function "
            f"(tree, strength) -> tree such as jaxreg.prox_l1; got {prox!r}."
        )
    if prox == "l1":
        return (
            lambda tree, t, mask: _prox.prox_l1(tree, t, mask=mask),
            lambda tree, s, mask: _penalties.l1_penalty(tree, s, mask=mask),
        )
    if prox == "l2":
        return (
            lambda tree, t, mask: _prox.prox_l2(tree, t, mask=mask),
            lambda tree, s, mask: _penalties.l2_penalty(tree, s, mask=mask),
        )
    if prox == "elastic_net":
        v.check_l1_ratio(l1_ratio)
        return (
            lambda tree, t, mask: _prox.prox_elastic_net(tree, t, l1_ratio=l1_ratio, mask=mask),
            lambda tree, s, mask: _penalties.elastic_net_penalty(
                tree, s, l1_ratio=l1_ratio, mask=mask
            ),
        )
    _penalties.check_group_axis(group_axis)
    return (
        lambda tree, t, mask: _prox.prox_group_lasso(tree, t, group_axis=group_axis, mask=mask),
        lambda tree, s, mask: _penalties.group_lasso_penalty(
            tree, s, group_axis=group_axis, mask=mask
        ),
    )


def _scaled_strength(strengths: Any, eta: jax.Array) -> Any:
    """``η·λ`` per leaf of a full strength tree; literal zeros stay literal zeros."""
    return jax.tree.map(lambda s: s if v.is_literal_zero(s) else eta * s, strengths)


def _tree_vdot(a: Any, b: Any, dtype: Any) -> jax.Array:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    terms = [jnp.vdot(x, y).real.astype(dtype) for x, y in pairs]
    return sum(terms, jnp.zeros((), dtype))


def _tree_max_abs(tree: Any, dtype: Any) -> jax.Array:
    terms = [jnp.max(jnp.abs(x)).astype(dtype) for x in jax.tree.leaves(tree) if x.size]
    return jnp.max(jnp.stack(terms)) if terms else jnp.zeros((), dtype)


def _axpy(a: jax.Array, x: Any, y: Any) -> Any:
    """``y + a·x`` leaf by leaf in each leaf's dtype."""
    return jax.tree.map(lambda xi, yi: yi + a.astype(v.real_dtype(xi.dtype)) * xi, x, y)


def _check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    if integer:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        return
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool) or not np.all(np.isfinite(value)) or np.any(np.asarray(value) < 0):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")


# ----------------------------------------------------------------------------- solver


def proximal_gradient(
    fun: Callable[..., jax.Array],
    init_params: Any,
    *args: Any,
    prox: str | Callable = "l1",
    strength: Any = 1.0,
    mask: Any = None,
    l1_ratio: Any = 0.5,
    group_axis: int | tuple[int, ...] = -1,
    learning_rate: Any = None,
    acceleration: bool = True,
    restart: str | None = "gradient",
    tol: float = 1e-6,
    max_iter: int = 1000,
    init_step: float = 1.0,
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

    The step ``η`` is ``learning_rate`` when given (use ``1/L`` for an ``L``-smooth
    ``f``); otherwise a backtracking line search halves a trial step until
    ``f(x⁺) <= f(y) + ⟨∇f(y), x⁺ − y⟩ + ‖x⁺ − y‖²/(2η)``. The first trial is
    ``init_step``, later ones the last accepted step: the step never grows (as in
    Beck & Teboulle 2009), so ``init_step`` should be at least ``1/L``; it ends
    above ``1/(2L)``.

    Stopping: after iteration ``k`` the error is the sup-norm of the gradient
    mapping, ``max_i |x_{k+1} − y_k|_i / η`` (zero exactly at a minimizer; it has
    the units of ``∇f``); the loop stops when it is ``<= tol`` or after
    ``max_iter`` iterations (or when it is NaN). Written with
    ``jax.lax.while_loop``: jittable and vmappable (over ``args``, ``strength``,
    ``init_params``); under ``vmap`` every lane runs until the slowest has stopped,
    but a lane that has converged no longer changes.

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
      init_params: a pytree of float arrays (the starting point).
      *args: data passed to ``fun`` (differentiable).
      prox: ``"l1"``, ``"l2"``, ``"elastic_net"``, ``"group_lasso"`` or a tree-level
        prox function ``(tree, t) -> tree`` (``jaxreg.prox_l1`` ... are recognized);
        ``R`` is the matching jaxreg penalty, e.g. ``λ‖w‖₁`` or ``(λ/2)‖w‖²``.
      strength: ``λ >= 0``, a number or a prefix pytree of numbers (no schedules).
      mask: as everywhere in jaxreg: which leaves are penalized.
      l1_ratio: for ``"elastic_net"``.
      group_axis: for ``"group_lasso"``.
      learning_rate: fixed step ``η > 0``; ``None`` selects the line search.
      acceleration: FISTA (True) or ISTA (False).
      restart: ``"gradient"``, ``"function"`` or ``None`` (plain FISTA).
      tol: tolerance on the sup-norm of the gradient mapping.
      max_iter: iteration cap.
      init_step: first trial step of the line search.
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
      O'Donoghue & Candès, *Adaptive restart for accelerated gradient schemes*, 2015.
    """
    if not callable(fun):
        raise ValueError(f"`fun` must be a callable f(params, *args), got {type(fun).__name__}.")
    tree_prox, penalty = _resolve_prox(prox, l1_ratio, group_axis)
    v.check_strength(strength, allow_schedule=False)
    v.check_mask_spec(mask)
    if restart not in _RESTARTS:
        raise ValueError(f"`restart` must be one of {_RESTARTS}, got {restart!r}.")
    if restart == "function" and penalty is None:
        raise ValueError(
            '`restart="function"` needs the objective, unknown for a custom `prox`; '
            'use restart="gradient".'
        )
    if learning_rate is not None:
        _check_positive("learning_rate", learning_rate)
    _check_positive("tol", tol)
    _check_positive("init_step", init_step)
    _check_positive("max_iter", max_iter, integer=True)
    _check_positive("max_backtracks", max_backtracks, integer=True)
    leaves = jax.tree.leaves(init_params)
    if not leaves or not all(v.is_float_leaf(x) for x in leaves):
        raise ValueError("`init_params` must be a non-empty pytree of float arrays.")
    dtype = v.promote(*[v.accumulation_dtype(x.dtype) for x in leaves])
    strengths = v.strength_tree(strength, init_params)
    masks = mask

    def smooth(x, data):
        return jnp.asarray(fun(x, *data)).astype(dtype)

    def objective(x, data, strs):
        value = smooth(x, data)
        if penalty is not None:
            value = value + penalty(x, strs, masks).astype(dtype)
        return value

    def prox_step(y, g, eta, strs):
        return tree_prox(_axpy(-eta, g, y), _scaled_strength(strs, eta), masks)

    def solve(x0, data, strs):
        value_and_grad = jax.value_and_grad(smooth)
        eta0 = jnp.asarray(init_step if learning_rate is None else learning_rate, dtype)

        def step(y, eta_prev):
            fy, g = value_and_grad(y, data)
            if learning_rate is not None:
                eta = eta_prev
                x_new = prox_step(y, g, eta, strs)
                f_new = smooth(x_new, data) if restart == "function" else fy
                return x_new, f_new, eta
            slack = 10 * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(fy), 1)

            def sufficient(x_new, f_new, eta):
                d = jax.tree.map(lambda a, b: a - b, x_new, y)
                model = fy + _tree_vdot(g, d, dtype) + _tree_vdot(d, d, dtype) / (2 * eta)
                return f_new <= model + slack

            def ls_cond(c):
                x_new, f_new, eta, n = c
                return (~sufficient(x_new, f_new, eta)) & (n < max_backtracks)

            def ls_body(c):
                _, _, eta, n = c
                eta = eta / 2
                x_new = prox_step(y, g, eta, strs)
                return x_new, smooth(x_new, data), eta, n + 1

            eta = eta_prev  # non-increasing (Beck & Teboulle 2009)
            x_new = prox_step(y, g, eta, strs)
            x_new, f_new, eta, _ = jax.lax.while_loop(
                ls_cond, ls_body, (x_new, smooth(x_new, data), eta, jnp.zeros((), jnp.int32))
            )
            return x_new, f_new, eta

        def cond(state):
            k, _, _, _, _, err, _ = state
            return (k < max_iter) & (err > tol)

        def body(state):
            k, x, y, t, eta, _, fx = state
            x_new, f_new, eta = step(y, eta)
            diff = jax.tree.map(lambda a, b: a - b, x_new, y)
            err = _tree_max_abs(diff, dtype) / eta
            if not acceleration:
                return k + 1, x_new, x_new, t, eta, err, fx
            dx = jax.tree.map(lambda a, b: a - b, x_new, x)
            if restart == "gradient":
                reset = _tree_vdot(diff, dx, dtype) < 0  # ⟨y − x⁺, x⁺ − x⟩ > 0
                f_keep = fx
            elif restart == "function":
                f_keep = f_new + penalty(x_new, strs, masks).astype(dtype)
                reset = f_keep > fx
            else:
                reset = jnp.zeros((), bool)
                f_keep = fx
            t = jnp.where(reset, jnp.ones_like(t), t)
            t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
            y_new = _axpy((t - 1) / t_new, dx, x_new)
            return k + 1, x_new, y_new, t_new, eta, err, f_keep

        fx0 = objective(x0, data, strs) if restart == "function" else jnp.zeros((), dtype)
        one = jnp.ones((), dtype)
        state0 = (jnp.zeros((), jnp.int32), x0, x0, one, eta0, jnp.asarray(jnp.inf, dtype), fx0)
        k, x, _, _, eta, err, _ = jax.lax.while_loop(cond, body, state0)
        return x, k, eta, err

    if not implicit_diff:
        x, k, eta, err = solve(init_params, args, strengths)
    else:
        sg = jax.lax.stop_gradient
        x_star, k, eta, err = solve(sg(init_params), sg(args), sg(strengths))

        def fixed_point_residual(x):
            g = jax.grad(smooth)(x, args)
            x_next = prox_step(x, g, eta, strengths)
            return jax.tree.map(lambda a, b: a - b, x_next, x)

        x = jax.lax.custom_root(
            fixed_point_residual, x_star, lambda _, guess: guess, _tangent_solve
        )
    obj = objective(x, args, strengths)
    return ProximalGradientResult(x, k, obj, err <= tol, eta, err)


def _tangent_solve(matvec: Callable, b: Any) -> Any:
    """Solves ``matvec(u) = b``, transposable for reverse mode.

    Up to 1024 unknowns the matrix is formed (one batched ``matvec``) and solved
    densely (LU); beyond that, GMRES.
    """
    flat, unravel = jax.flatten_util.ravel_pytree(b)
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
    del unravel
    return jax.lax.custom_linear_solve(matvec, b, solver, transpose_solve=solver)


# ----------------------------------------------------------------------------- paths


def _max_eigenvalue(gram: jax.Array, iterations: int = 100) -> jax.Array:
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


# ----------------------------------------------------------------------------- working sets

_WS_BLOCK = 16  # Gram columns computed per block (one GEMM X_cᵀ X_c[:, block] / n)
_POLISH_EVERY = 32  # FISTA iterations between two active-set polishing attempts


def _kkt_error(x: jax.Array, c: jax.Array, alpha: jax.Array, eta: jax.Array, r: Any) -> jax.Array:
    """Sup-norm of the gradient mapping ``|prox_{ηαP}(x + ηc) − x| / η``, ``c = −∇f(x)``."""
    step = _prox.elastic_net_shrink(x + eta * c, eta * alpha, r) - x
    return jnp.max(jnp.abs(step), initial=0.0) / eta


def _quad_fista(gram, b, alpha, x, err, k, k_stop, eta, tol, r, acceleration, restart):
    """(Restarted) FISTA on ``½xᵀGx − bᵀx + α(r‖x‖₁ + (1−r)/2‖x‖²)`` from ``x``.

    The iteration of :func:`proximal_gradient` specialised to a quadratic (one
    matrix-vector product per step); runs while ``err > tol`` and ``k < k_stop``.
    """
    t_pen = eta * alpha

    def objective(z):
        pen = r * jnp.sum(jnp.abs(z)) + (1 - r) / 2 * jnp.vdot(z, z)
        return 0.5 * jnp.vdot(z, gram @ z) - jnp.vdot(b, z) + alpha * pen

    def cond(s):
        k, _, _, _, err, _ = s
        return (k < k_stop) & (err > tol)

    def body(s):
        k, x, y, t, _, fx = s
        x_new = _prox.elastic_net_shrink(y - eta * (gram @ y - b), t_pen, r)
        diff = x_new - y
        err = jnp.max(jnp.abs(diff), initial=0.0) / eta
        if not acceleration:
            return k + 1, x_new, x_new, t, err, fx
        dx = x_new - x
        if restart == "gradient":
            reset = jnp.vdot(diff, dx) < 0
        elif restart == "function":
            f_new = objective(x_new)
            reset, fx = f_new > fx, f_new
        else:
            reset = jnp.zeros((), bool)
        t = jnp.where(reset, jnp.ones_like(t), t)
        t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        return k + 1, x_new, x_new + ((t - 1) / t_new) * dx, t_new, err, fx

    fx = objective(x) if restart == "function" else jnp.zeros((), x.dtype)
    one = jnp.ones((), x.dtype)
    k, x, _, _, _, _ = jax.lax.while_loop(cond, body, (k, x, x, one, err, fx))
    return x, k


def _polish(gram: jax.Array, b: jax.Array, alpha: jax.Array, x: jax.Array, r: Any) -> jax.Array:
    """Exact minimizer on the support ``S`` of ``x`` with its signs fixed.

    Solves ``(G_SS + α(1−r)I) x_S = b_S − αr·sign(x_S)`` by Cholesky (rows and
    columns outside ``S`` replaced by the identity); NaN when ``G_SS`` is singular.
    """
    on = x != 0
    eye = jnp.eye(x.shape[0], dtype=x.dtype)
    mat = jnp.where(on[:, None] & on[None, :], gram + (alpha * (1 - r)) * eye, eye)
    rhs = jnp.where(on, b - (alpha * r) * jnp.sign(x), jnp.zeros_like(x))
    chol = jnp.linalg.cholesky(mat)
    z = jax.scipy.linalg.cho_solve((chol, True), rhs)
    return jnp.where(on, z, jnp.zeros_like(z))


def _ws_solve(gram, b, alpha, x, eta, tol, max_iter, r, acceleration, restart):
    """Restarted FISTA on a working set, with an active-set polish every few steps.

    Every ``_POLISH_EVERY`` iterations (and first of all, at the warm start) the
    point is replaced by :func:`_polish` of it when that lowers the KKT error
    (the last step is always such an attempt):
    once FISTA has found the support and the signs, the polish lands on the exact
    minimizer. Returns ``(x, iterations, error)``.
    """

    def error(z):
        return _kkt_error(z, b - gram @ z, alpha, eta, r)

    def cond(s):
        _, err, k, _ = s
        return (err > tol) & (k < max_iter)

    def body(s):
        x, err, k, first = s
        k_stop = jnp.where(first, k, jnp.minimum(k + _POLISH_EVERY, max_iter))
        x, k = _quad_fista(gram, b, alpha, x, err, k, k_stop, eta, tol, r, acceleration, restart)
        err = error(x)
        xp = _polish(gram, b, alpha, x, r)
        ep = error(xp)
        better = ep < err  # False for NaN (singular G_SS)
        return jnp.where(better, xp, x), jnp.where(better, ep, err), k, jnp.zeros((), bool)

    init = (x, error(x), jnp.zeros((), jnp.int32), jnp.ones((), bool))
    x, err, k, _ = jax.lax.while_loop(cond, body, init)
    return x, k, err


class _WorkingSet(NamedTuple):
    """Features in the working set and their Gram rows (static capacity ``C``).

    ``idx[i]`` is the feature in slot ``i`` (``p`` for an empty slot), ``rows`` the
    Gram rows ``G[idx, :]`` (zero for empty slots), ``size`` the slots in use,
    ``member`` a ``(p,)`` mask and ``lipschitz`` ``λ_max(G_WW)``.
    """

    idx: jax.Array
    size: jax.Array
    rows: jax.Array
    member: jax.Array
    lipschitz: jax.Array


def _ws_buckets(p: int, block: int) -> list[int]:
    """Static sub-problem sizes ``block·2^i`` up to the capacity ``⌈p/block⌉·block``."""
    cap = -(-p // block) * block
    sizes = [block]
    while sizes[-1] < cap:
        sizes.append(min(2 * sizes[-1], cap))
    return sizes


def _bucket_index(size: jax.Array, sizes: list[int]) -> jax.Array:
    return jnp.sum(size > jnp.asarray(sizes[:-1], jnp.int32)).astype(jnp.int32)


def _sub_problem(ws: _WorkingSet, b: jax.Array, s: int) -> tuple[jax.Array, jax.Array]:
    """``(G_WW, b_W)`` on the first ``s`` slots (zeros for empty slots)."""
    idx = ws.idx[:s]
    gram = jnp.take(ws.rows[:s], idx, axis=1, mode="fill", fill_value=0)
    return gram, jnp.take(b, idx, mode="fill", fill_value=0)


def _ws_make(xt: jax.Array, b: jax.Array, block: int, sizes: list[int]):
    """Returns ``(empty working set, grow(ws, want, score, max_blocks))``.

    ``grow`` adds every ``want``-ed feature (at most ``max_blocks`` blocks), highest
    ``score`` first, and fills each block with the next best features by ``score``
    (those most likely to enter next); each block costs one GEMM
    ``G[B, :] = X_cᵀ[B]·X_c / n`` (``xt = X_cᵀ``, row-major).
    """
    p, n = xt.shape
    dtype = xt.dtype
    cap = sizes[-1]
    empty = _WorkingSet(
        jnp.full((cap,), p, jnp.int32),
        jnp.zeros((), jnp.int32),
        jnp.zeros((cap, p), dtype),
        jnp.zeros((p,), bool),
        jnp.ones((), dtype),
    )

    def add_block(ws, want, score):
        out = ~ws.member
        top = jnp.max(jnp.where(out, score, 0), initial=0.0)
        norm = jnp.where(top > 0, score / jnp.where(top > 0, top, 1), 0)
        priority = jnp.where(out, norm + jnp.where(want, 2, 0).astype(norm.dtype), -1)
        _, new = jax.lax.top_k(priority, block)
        ok = out[new]  # highest priority first: the valid entries come first
        rows = xt[new] @ xt.T / n  # (block, p)
        rows = jnp.where(ok[:, None], rows, 0)
        return _WorkingSet(
            jax.lax.dynamic_update_slice(
                ws.idx, jnp.where(ok, new, p).astype(jnp.int32), (ws.size,)
            ),
            ws.size + jnp.sum(ok, dtype=jnp.int32),
            jax.lax.dynamic_update_slice(ws.rows, rows, (ws.size, jnp.zeros((), jnp.int32))),
            ws.member.at[new].max(ok),
            ws.lipschitz,
        )

    def lipschitz(ws):
        def branch(s):
            return lambda ws: _max_eigenvalue(_sub_problem(ws, b, s)[0])

        lip = jax.lax.switch(
            _bucket_index(ws.size, sizes), [branch(s) for s in sizes], ws
        )  # fmt: skip
        return ws._replace(lipschitz=jnp.where(lip > 0, lip, jnp.ones_like(lip)))

    def grow(ws, want, score, max_blocks):
        def cond(c):
            ws, i = c
            return jnp.any(want & ~ws.member) & (ws.size < p) & (i < max_blocks)

        def body(c):
            ws, i = c
            return add_block(ws, want, score), i + 1

        size0 = ws.size
        ws, _ = jax.lax.while_loop(cond, body, (ws, jnp.zeros((), jnp.int32)))
        return jax.lax.cond(ws.size > size0, lipschitz, lambda ws: ws, ws)

    return empty, grow


def _lsq_path_working_set(
    xt, b, const, strengths, *, r, method, tol_abs, max_iter, learning_rate, acceleration, restart
):
    """Least-squares (elastic-net) path by strong rules, working sets and polishing.

    Only the Gram rows of features that enter a working set are computed. Per
    strength: (1) sequential strong rule (Tibshirani et al. 2012): features with
    ``|c_j| >= r(2α_k − α_{k−1})`` at the previous solution join the working set;
    (2) the problem restricted to the working set is solved (:func:`_ws_solve`,
    sub-problem padded to a static size bucket); (3) KKT is checked on all
    features and violators join, until there are none. ``method="vmap"`` solves
    all strengths at once on one shared working set grown from the violators.
    Returns ``(coef, iterations, converged, objective)``.
    """
    p = xt.shape[0]
    dtype = xt.dtype
    block = min(p, _WS_BLOCK)
    sizes = _ws_buckets(p, block)
    empty, grow = _ws_make(xt, b, block, sizes)
    many = jnp.iinfo(jnp.int32).max

    def step_of(ws):
        if learning_rate is not None:
            return jnp.asarray(learning_rate, dtype)
        return 1 / ws.lipschitz

    def branch(s):
        def solve(ws, x, alpha, budget):
            gram, bw = _sub_problem(ws, b, s)
            eta = step_of(ws)
            xs, k, _ = _ws_solve(
                gram, bw, alpha, x[:s], eta, tol_abs, budget, r, acceleration, restart
            )
            c = b - xs @ ws.rows[:s]  # −∇f on all features
            return x.at[:s].set(xs), c, k

        return solve

    branches = [branch(s) for s in sizes]

    def full(ws, x):
        return jnp.zeros((p,), dtype).at[ws.idx].set(x, mode="drop")

    def finish(ws, x, c, alpha):
        coef = full(ws, x)
        err = _kkt_error(coef, c, alpha, step_of(ws), r)
        pen = r * jnp.sum(jnp.abs(coef)) + (1 - r) / 2 * jnp.vdot(coef, coef)
        obj = const - 0.5 * jnp.vdot(coef, b + c) + alpha * pen  # ½wᵀGw − bᵀw + const
        return coef, err <= tol_abs, obj

    if method == "sequential":

        def per_strength(carry, alpha):
            ws, x, c, alpha_prev = carry

            def cond(s):
                return s[-1]

            def body(s):
                ws, x, c, k, want, _ = s
                ws = grow(ws, want, jnp.abs(c), many)
                x, c, dk = jax.lax.switch(
                    _bucket_index(ws.size, sizes), branches, ws, x, alpha, max_iter - k
                )  # fmt: skip
                k = k + dk
                viol = (jnp.abs(c) > alpha * r) & ~ws.member  # KKT on all features
                return ws, x, c, k, viol, jnp.any(viol) & (k < max_iter)

            strong = jnp.abs(c) >= r * (2 * alpha - alpha_prev)
            init = (ws, x, c, jnp.zeros((), jnp.int32), strong, jnp.ones((), bool))
            ws, x, c, k, _, _ = jax.lax.while_loop(cond, body, init)
            coef, ok, obj = finish(ws, x, c, alpha)
            return (ws, x, c, alpha), (coef, k, ok, obj)

        carry = (empty, jnp.zeros((sizes[-1],), dtype), b, strengths[0])
        _, (coef, iters, ok, obj) = jax.lax.scan(per_strength, carry, strengths)
        return coef, iters, ok, obj

    # vmap: all strengths at once on one working set, one block of violators per round
    num = strengths.shape[0]

    def cond(s):
        return s[-1]

    def body(s):
        ws, xs, _, ks, _ = s
        xs, cs, dk = jax.lax.switch(
            _bucket_index(ws.size, sizes),
            [jax.vmap(br, in_axes=(None, 0, 0, 0)) for br in branches],
            ws, xs, strengths, max_iter - ks,
        )  # fmt: skip
        ks = ks + dk
        viol = (jnp.abs(cs) > (strengths * r)[:, None]) & ~ws.member[None, :]
        viol = viol & (ks < max_iter)[:, None]
        ratio = jnp.abs(cs) / jnp.where(strengths > 0, strengths * r, 1)[:, None]
        ws = grow(ws, jnp.any(viol, axis=0), jnp.max(ratio, axis=0), 1)
        return ws, xs, cs, ks, jnp.any(viol)

    top = jnp.abs(b)
    init = (
        grow(empty, top >= jnp.max(top), top, 1),  # the first block: largest |Xᵀy|
        jnp.zeros((num, sizes[-1]), dtype),
        jnp.zeros((num, p), dtype),
        jnp.zeros((num,), jnp.int32),
        jnp.ones((), bool),
    )
    ws, xs, cs, ks, _ = jax.lax.while_loop(cond, body, init)
    coef, ok, obj = jax.vmap(lambda x, c, a: finish(ws, x, c, a))(xs, cs, strengths)
    return coef, ks, ok, obj


def regularization_path(
    X: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    *,
    loss: str = "squared",
    l1_ratio: float = 1.0,
    strengths: jax.typing.ArrayLike | None = None,
    n_strengths: int = 100,
    eps: float = 1e-3,
    fit_intercept: bool = True,
    method: str = "sequential",
    tol: float = 1e-9,
    max_iter: int = 10_000,
    learning_rate: Any = None,
    acceleration: bool = True,
    restart: str | None = "gradient",
    working_set: bool = True,
) -> PathResult:
    r"""Solutions of an L1 / elastic-net penalized regression over a grid of strengths.

    Objective (scikit-learn's ``lasso_path`` / ``enet_path`` normalization):
    ``loss(w, b) + α·(r‖w‖₁ + (1−r)/2‖w‖²)``, ``r = l1_ratio``, where ``loss`` is
    ``(1/2n)‖y − Xw − b‖²`` (``"squared"``) or the mean log-loss
    ``(1/n)Σ log(1 + e^{z_i}) − y_i z_i``, ``z = Xw + b``, ``y ∈ {0, 1}``
    (``"logistic"``; this is scikit-learn's ``LogisticRegression(C)`` with
    ``α = 1/(C·n)``). The intercept ``b`` is never penalized.

    Default grid (as scikit-learn): ``n_strengths`` values log-spaced from ``α_max``
    down to ``eps·α_max``, where ``α_max`` is the smallest strength with an all-zero
    solution: ``max|X_cᵀ y_c|/(n·r)`` for least squares (centred data when
    ``fit_intercept``), and ``max|Xᵀ(y − ȳ)|/(n·r)`` for the logistic loss with an
    intercept (``max|Xᵀ(y − ½)|/(n·r)`` without: scikit-learn's
    ``l1_min_c(X, y, loss="log", fit_intercept=False)`` is ``1/(n·α_max)``).

    Least squares (``working_set=True``, the default) is solved on Gram
    *rows* computed only for the features that enter a working set
    (``G = X_cᵀX_c/n``, ``b = X_cᵀy_c/n``; the loss is ``½wᵀGw − bᵀw + const``):
    sequential strong rules (Tibshirani et al. 2012) propose features, each
    working-set problem is solved by restarted FISTA (step ``1/λ_max(G_WW)``)
    with an active-set polish (the exact minimizer for the current support and
    signs, ``(G_SS + α(1−r)I)w_S = b_S − αr·sign(w_S)``, accepted when it lowers
    the KKT error), and the KKT conditions are checked on all features, any
    violator joining the working set until there is none. Each new block of 16
    features costs one ``16×n×p`` product; the sub-problems are padded to
    static sizes ``16·2^i``, so everything stays jittable. With
    ``working_set=False`` the whole Gram matrix is formed once and every strength
    is solved on it by :func:`jaxreg.proximal_gradient` with step
    ``1/λ_max(G)``. The logistic loss always takes the latter route, on the data,
    with step ``4n/λ_max([X 1]ᵀ[X 1])``. Each strength stops on its own when the
    gradient mapping's sup-norm (over all features) is ``<= tol·α_max``
    (scale-free in ``y``); the polish usually takes it far below that.

    ``method="sequential"``: strengths in the given order inside one
    ``jax.lax.scan``, each warm-started from the previous solution (fast on a
    CPU). ``method="vmap"``: all strengths at once with ``jax.vmap`` from zero
    (one batched program; suits an accelerator; with working sets, all strengths
    share one working set, grown by a block of the worst KKT violators per
    round). Both are jittable in ``X`` and ``y`` (the other arguments are
    static).

    Args:
      X: ``(n, p)`` design matrix.
      y: ``(n,)`` targets (``{0, 1}`` labels for ``"logistic"``).
      loss: ``"squared"`` or ``"logistic"``.
      l1_ratio: ``r ∈ (0, 1]`` (``1`` = Lasso); ``0`` needs explicit ``strengths``.
      strengths: explicit grid ``(K,)``; default as above.
      n_strengths: grid size.
      eps: ratio of the smallest to the largest default strength.
      fit_intercept: fit an unpenalized intercept.
      method: ``"sequential"`` or ``"vmap"``.
      tol: relative tolerance (see above).
      max_iter: iteration cap per strength.
      learning_rate: override the step ``1/L``.
      acceleration, restart: as in :func:`jaxreg.proximal_gradient`.
      working_set: least squares only: strong rules, working sets and the
        active-set polish (default) instead of FISTA on the full Gram matrix.

    Returns:
      A :class:`PathResult` (``coef`` of shape ``(K, p)``).

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> X = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
      >>> y = jnp.array([2.0, 1.0, -2.0, -1.0])
      >>> path = jaxreg.regularization_path(X, y, n_strengths=3, eps=0.25)
      >>> print(jnp.round(path.strengths, 4))
      [1.   0.5  0.25]
      >>> print(jnp.round(path.coef, 4))
      [[0.  0. ]
       [1.  0. ]
       [1.5 0.5]]

    References:
      Friedman, Hastie & Tibshirani, *Regularization paths for generalized linear
      models via coordinate descent*, 2010; Tibshirani et al., *Strong rules for
      discarding predictors in lasso-type problems*, JRSS B, 2012; scikit-learn
      ``lasso_path``.
    """
    if loss not in ("squared", "logistic"):
        raise ValueError(f'`loss` must be "squared" or "logistic", got {loss!r}.')
    if method not in ("sequential", "vmap"):
        raise ValueError(f'`method` must be "sequential" or "vmap", got {method!r}.')
    v.check_l1_ratio(l1_ratio)
    _check_positive("n_strengths", n_strengths, integer=True)
    _check_positive("max_iter", max_iter, integer=True)
    _check_positive("tol", tol)
    if isinstance(eps, bool) or not (0 < float(eps) < 1):
        raise ValueError(f"`eps` must lie in (0, 1), got {eps!r}.")
    X = jnp.asarray(X)
    y = jnp.asarray(y)
    if X.ndim != 2 or y.shape != X.shape[:1]:
        raise ValueError(
            f"`X` must have shape (n, p) and `y` shape (n,); got {X.shape} and {y.shape}."
        )
    dtype = v.accumulation_dtype(v.promote(X.dtype, y.dtype, jnp.float32))
    X = X.astype(dtype)
    y = y.astype(dtype)
    n, p = X.shape

    if loss == "squared":
        x_mean = jnp.mean(X, axis=0) if fit_intercept else jnp.zeros((p,), dtype)
        y_mean = jnp.mean(y) if fit_intercept else jnp.zeros((), dtype)
        yc = y - y_mean
        const = jnp.vdot(yc, yc) / (2 * n)
        if working_set:
            # X_cᵀ stored row-major once (one fused centring + transpose pass): the
            # Gram rows of a block B are then one well-shaped GEMM X_cᵀ[B]·X_c.
            xt = jax.lax.optimization_barrier((X - x_mean[None, :]).T)
            xty = (yc @ X - x_mean * jnp.sum(yc)) / n  # = X_cᵀy_c, read off X itself
            gram = lipschitz = None  # Gram rows computed on demand
        else:
            Xc = X - x_mean[None, :]
            xty = Xc.T @ yc / n
            gram = Xc.T @ Xc / n
            lipschitz = _max_eigenvalue(gram)
        corr = xty

        def fun(params, g, b, c):
            w = params["coef"]
            return 0.5 * jnp.vdot(w, g @ w) - jnp.vdot(b, w) + c

        data = (gram, xty, const)
        init = {"coef": jnp.zeros((p,), dtype)}
        mask = None
    else:
        if not isinstance(y, jax.core.Tracer) and not bool(jnp.all((y == 0) | (y == 1))):
            raise ValueError('`y` must hold 0/1 labels for loss="logistic".')
        init = {"coef": jnp.zeros((p,), dtype)}
        mask = None
        if fit_intercept:
            corr = X.T @ (y - jnp.mean(y)) / n
            aug = jnp.concatenate([X, jnp.ones((n, 1), dtype)], axis=1)
            ybar = jnp.clip(jnp.mean(y), 1e-12, 1 - 1e-12)
            init["intercept"] = jnp.log(ybar) - jnp.log1p(-ybar)  # optimal at w = 0
            mask = {"coef": True, "intercept": False}
        else:
            corr = X.T @ (y - 0.5) / n
            aug = X
        lipschitz = _max_eigenvalue(aug.T @ aug) / (4 * n)

        def fun(params, xs, ys):
            z = xs @ params["coef"]
            if fit_intercept:
                z = z + params["intercept"]
            return jnp.mean(jax.nn.softplus(z) - ys * z)

        data = (X, y)

    alpha_max = jnp.max(jnp.abs(corr)) / max(float(l1_ratio), 1e-300) if l1_ratio else jnp.inf
    if strengths is None:
        if not l1_ratio:
            raise ValueError("`l1_ratio=0` has no finite α_max: pass `strengths` explicitly.")
        # np.logspace(log10(α_max), log10(eps·α_max), K), written to stay jittable.
        exponents = jnp.linspace(0.0, float(np.log10(eps)), n_strengths, dtype=dtype)
        strengths = alpha_max * 10.0**exponents
    else:
        strengths = jnp.asarray(strengths, dtype)
        if strengths.ndim != 1 or strengths.shape[0] < 1:
            raise ValueError("`strengths` must be a non-empty 1-d array.")
        if not isinstance(strengths, jax.core.Tracer) and bool(jnp.any(~(strengths >= 0))):
            raise ValueError("`strengths` must be finite and >= 0.")
    scale = jnp.where(jnp.isfinite(alpha_max) & (alpha_max > 0), alpha_max, 1.0)
    if loss == "squared" and working_set:
        coef, iterations, converged, objective = _lsq_path_working_set(
            xt,
            xty,
            const,
            strengths,
            r=float(l1_ratio),
            method=method,
            tol_abs=tol * scale,
            max_iter=max_iter,
            learning_rate=learning_rate,
            acceleration=acceleration,
            restart=restart,
        )
        intercept = y_mean - coef @ x_mean
        return PathResult(strengths, coef, intercept, iterations, converged, objective)
    step = jnp.asarray(learning_rate, dtype) if learning_rate is not None else 1 / lipschitz
    prox = "l1" if float(l1_ratio) == 1.0 else "elastic_net"

    def solve_one(alpha, x0):
        res = proximal_gradient(
            fun,
            x0,
            *data,
            prox=prox,
            strength=alpha,
            l1_ratio=l1_ratio,
            mask=mask,
            learning_rate=step,
            acceleration=acceleration,
            restart=restart,
            tol=tol * scale,
            max_iter=max_iter,
            implicit_diff=False,
        )
        return res.params, res

    if method == "sequential":

        def scan_body(x0, alpha):
            x, res = solve_one(alpha, x0)
            return x, res

        _, results = jax.lax.scan(scan_body, init, strengths)
    else:
        _, results = jax.vmap(solve_one, in_axes=(0, None))(strengths, init)

    coef = results.params["coef"]
    if loss == "squared":
        intercept = y_mean - coef @ x_mean
    elif fit_intercept:
        intercept = results.params["intercept"]
    else:
        intercept = jnp.zeros(strengths.shape, dtype)
    return PathResult(
        strengths, coef, intercept, results.iterations, results.converged, results.objective
    )


def plot_path(path: PathResult, *, ax: Any = None, feature_names: Any = None, **kwargs: Any) -> Any:
    r"""Plots the coefficient path: one line per feature against ``log α``.

    matplotlib is imported only when this function is called.

    Args:
      path: a :class:`PathResult`.
      ax: a matplotlib ``Axes`` (default: a new figure's).
      feature_names: optional labels (a legend is drawn when given).
      **kwargs: passed to ``ax.plot``.

    Returns:
      The ``Axes``.

    Example:
      >>> import matplotlib; matplotlib.use("Agg")
      >>> import jax.numpy as jnp, jaxreg
      >>> X = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
      >>> path = jaxreg.regularization_path(X, jnp.array([2.0, 1.0, -2.0, -1.0]), n_strengths=5)
      >>> ax = jaxreg.plot_path(path)
      >>> len(ax.get_lines()), ax.get_xscale()
      (2, 'log')
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    strengths = np.asarray(path.strengths)
    coef = np.asarray(path.coef)
    for j in range(coef.shape[1]):
        label = None if feature_names is None else str(feature_names[j])
        ax.plot(strengths, coef[:, j], label=label, **kwargs)
    ax.set_xscale("log")
    if strengths.size > 1 and strengths[0] > strengths[-1]:
        ax.invert_xaxis()
    ax.set_xlabel("strength α")
    ax.set_ylabel("coefficient")
    ax.set_title("Regularization path")
    if feature_names is not None:
        ax.legend()
    return ax
