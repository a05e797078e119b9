"""Proximal Newton paths for the logistic loss (dense, small problems).

The route ``regularization_path(loss="logistic")`` takes by default (sequential,
L1 / elastic net, no ``learning_rate``) when the coefficients (intercept included)
number at most ``NEWTON_MAX_DIM``: the
Hessian of the data loss is formed densely, and each Newton step solves the
L1-penalized quadratic model by FISTA with an active-set polish (the exact
minimizer of the model on the current support and signs), followed by a
backtracking line search on the true objective (Lee, Sun & Saunders 2014; the
scheme of glmnet, newGLMNET and skglm's ``ProxNewton``). The Hessian is reused
while the steps it gives cut the KKT error fast enough ("lazy" Hessian, Doikov,
Chayti & Jaggi 2023), so along a warm-started path most steps cost one gradient.

The multinomial loss has its own proximal Newton driver on working sets, run from
the host (:mod:`._mn_host`); traced multinomial calls keep the proximal-gradient
route (a dense Newton step on all 650 coefficients of digits, singular along a
shift of all classes of one row, was slower than FISTA there).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxreg import prox
from jaxreg.solvers import _common

NEWTON_MAX_DIM = 1024  # largest p + fit_intercept whose Hessian is formed densely
_POLISH_EVERY = 16  # inner FISTA steps between two polish attempts
_INNER_MAX = 2000  # inner FISTA steps per Newton step
_LAZY = 0.25  # keep the Hessian while each step cuts the KKT error at least this much
_ARMIJO = 1e-4
_BACKTRACKS = 30


def _min_norm_subgrad(x: jax.Array, g: jax.Array, lam: jax.Array) -> jax.Array:
    """Sup-norm of the minimum-norm subgradient of ``f + Σ λ_i|x_i|`` (the KKT error)."""
    on = jnp.where(x != 0, jnp.abs(g + lam * jnp.sign(x)), jnp.maximum(jnp.abs(g) - lam, 0))
    return _common.sup_norm(on)


def _polish(hess: jax.Array, c: jax.Array, lam: jax.Array, x: jax.Array) -> jax.Array:
    """Minimizer of ``½xᵀHx − cᵀx + Σλ|x|`` on the support of ``x`` (unpenalized
    coordinates always in it) with the signs of ``x`` fixed; NaN if ``H_SS`` is singular."""
    on = (x != 0) | (lam == 0)
    eye = jnp.eye(x.shape[0], dtype=x.dtype)
    mat = jnp.where(on[:, None] & on[None, :], hess, eye)
    rhs = jnp.where(on, c - lam * jnp.sign(x), 0)
    chol = jnp.linalg.cholesky(mat)
    z = jax.scipy.linalg.cho_solve((chol, True), rhs)
    return jnp.where(on, z, 0)


def _quad_solve(hess, lip, c, lam, x, tol):
    """Restarted FISTA (step ``1/lip``) on ``½xᵀHx − cᵀx + Σλ|x|`` with a polish every
    ``_POLISH_EVERY`` steps, until the KKT error is ``<= tol``."""
    eta = 1 / lip

    def error(z):
        return _min_norm_subgrad(z, hess @ z - c, lam)

    def fista(x, y, t, k_stop, k):
        def cond(s):
            return s[-1] < k_stop

        def body(s):
            x, y, t, k = s
            x_new = prox.soft_threshold(y - eta * (hess @ y - c), eta * lam)
            dx = x_new - x
            reset = jnp.vdot(x_new - y, dx) < 0  # gradient restart
            t = jnp.where(reset, jnp.ones_like(t), t)
            t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
            return x_new, x_new + ((t - 1) / t_new) * dx, t_new, k + 1

        return jax.lax.while_loop(cond, body, (x, y, t, k))

    def cond(s):
        _, _, _, err, k = s
        return (err > tol) & (k < _INNER_MAX)

    def body(s):
        x, y, t, err, k = s
        x, y, t, k = fista(x, y, t, jnp.minimum(k + _POLISH_EVERY, _INNER_MAX), k)
        err = error(x)
        xp = _polish(hess, c, lam, x)
        ep = error(xp)
        better = ep < err  # False for NaN
        x = jnp.where(better, xp, x)
        y = jnp.where(better, xp, y)
        t = jnp.where(better, jnp.ones_like(t), t)
        return x, y, t, jnp.where(better, ep, err), k

    one = jnp.ones((), x.dtype)
    init = (x, x, one, error(x), jnp.zeros((), jnp.int32))
    x, _, _, _, _ = jax.lax.while_loop(cond, body, init)
    return x


def _max_eig(hess: jax.Array) -> jax.Array:
    """``λ_max`` of the Hessian (:func:`~jaxreg.solvers._common.max_eigenvalue`), at
    least its largest diagonal entry, and 1 for a zero Hessian."""
    lip = jnp.maximum(_common.max_eigenvalue(hess), jnp.max(jnp.diag(hess)))
    return jnp.where(lip > 0, lip, jnp.ones_like(lip))


def newton_path(A, Y, strengths, tol_abs, max_iter, *, r, fit, x0, method):
    """Proximal Newton path. ``A``: ``(n, q)`` design (a column of ones last when ``fit``);
    ``Y``: ``(n,)`` 0/1 labels; ``x0``: ``(q, 1)`` start.
    Returns ``(V (S, q, 1), iterations, converged, objective)``."""
    n, q = A.shape
    dtype = A.dtype
    kk = 1
    d = q
    omega = jnp.ones((q, kk), dtype)
    if fit:
        omega = omega.at[-1].set(0)
    omega = omega.reshape(-1)
    tiny = jnp.finfo(dtype).eps

    def data_loss(x):
        z = A @ x.reshape(q, kk)
        return jnp.mean(jax.nn.softplus(z[:, 0]) - Y * z[:, 0])

    def smooth(x, alpha):  # data loss + the ridge part of the elastic net
        return data_loss(x) + alpha * (1 - r) / 2 * jnp.vdot(omega * x, x)

    def objective(x, alpha):
        return smooth(x, alpha) + alpha * r * jnp.sum(omega * jnp.abs(x))

    def hessian(x, alpha):
        z = A @ x.reshape(q, kk)
        s = jax.nn.sigmoid(z[:, 0])
        h = (A * (s * (1 - s))[:, None]).T @ A / n
        h = h + jnp.diag(alpha * (1 - r) * omega)
        scale = jnp.maximum(jnp.max(jnp.diag(h)), tiny)
        h = h + 1e-10 * scale * jnp.eye(d, dtype=dtype)
        return h, _max_eig(h)

    vg = jax.value_and_grad(smooth)

    def solve(alpha, x, hess, lip, refresh):
        lam = alpha * r * omega
        f, g = vg(x, alpha)
        err = _min_norm_subgrad(x, g, lam)

        def cond(s):
            _, _, _, _, _, err, k, _, stop = s
            return (err > tol_abs) & (k < max_iter) & ~stop

        def body(s):
            x, f, g, hess, lip, err, k, refresh, _ = s
            fresh = refresh
            hess, lip = jax.lax.cond(
                refresh, lambda: hessian(x, alpha), lambda: (hess, lip)
            )  # fmt: skip
            c = hess @ x - g
            xh = _quad_solve(hess, lip, c, lam, x, jnp.maximum(0.1 * tol_abs, 1e-3 * err))
            dx = xh - x
            pen = jnp.sum(lam * jnp.abs(x))
            delta = jnp.vdot(g, dx) + jnp.sum(lam * jnp.abs(xh)) - pen
            fx = f + pen
            slack = 10 * tiny * jnp.maximum(jnp.abs(fx), 1)

            def ls_cond(cr):
                t, fn, _, m = cr
                return (fn > fx + _ARMIJO * t * delta + slack) & (m < _BACKTRACKS)

            def ls_body(cr):
                t, _, _, m = cr
                t = t / 2
                xn = x + t * dx
                return t, objective(xn, alpha), xn, m + 1

            two = jnp.full((), 2, dtype)  # the first pass of the loop tries t = 1
            inf = jnp.full((), jnp.inf, dtype)
            t, _, xn, m = jax.lax.while_loop(
                ls_cond, ls_body, (two, inf, x, jnp.full((), -1, jnp.int32))
            )
            ok = m < _BACKTRACKS
            xn = jnp.where(ok, xn, x)
            fn, gn = vg(xn, alpha)
            en = _min_norm_subgrad(xn, gn, lam)
            # a step that does not cut the error well enough asks for a fresh Hessian;
            # no decrease of the objective with a fresh one: stop (rounding)
            stuck = fresh & ~ok
            refresh = ~(en <= _LAZY * err) | (t < 1)
            return xn, fn, gn, hess, lip, en, k + 1, refresh, stuck

        init = (x, f, g, hess, lip, err, jnp.zeros((), jnp.int32), refresh, jnp.zeros((), bool))
        x, f, g, hess, lip, err, k, refresh, _ = jax.lax.while_loop(cond, body, init)
        return x, hess, lip, refresh, (x, k, err <= tol_abs, objective(x, alpha))

    x0 = x0.reshape(-1).astype(dtype)
    h0, l0 = jnp.zeros((d, d), dtype), jnp.ones((), dtype)  # computed at the first step
    yes = jnp.ones((), bool)
    if method == "sequential":

        def step(carry, alpha):
            x, hess, lip, refresh = carry
            x, hess, lip, refresh, out = solve(alpha, x, hess, lip, refresh)
            return (x, hess, lip, refresh), out

        _, (xs, ks, ok, obj) = jax.lax.scan(step, (x0, h0, l0, yes), strengths)
    else:
        xs, ks, ok, obj = jax.vmap(lambda a: solve(a, x0, h0, l0, yes)[-1])(strengths)
    return xs.reshape(-1, q, kk), ks, ok, obj


def use_newton(p: int, fit: bool) -> bool:
    """Whether a logistic path with ``p`` features takes this route (dense Hessian)."""
    return p + int(fit) <= NEWTON_MAX_DIM


__all__: list[Any] = []
