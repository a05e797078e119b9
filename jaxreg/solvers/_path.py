"""Regularization paths: least squares (working sets, coordinate descent) and logistic."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from jaxreg import _checks, _dtypes
from jaxreg import prox as prox_ops
from jaxreg.solvers import _cd, _mn_host, _newton, _ws_host
from jaxreg.solvers import _common as c
from jaxreg.solvers import _proximal_gradient as _pg
from jaxreg.solvers._common import sup_norm as _sup_norm


class PathResult(NamedTuple):
    """Coefficients along a regularization path (:func:`jaxreg.regularization_path`).

    Attributes:
      strengths: the grid, shape ``(K,)``, in decreasing order when it is the default.
      coef: coefficients, shape ``(K, n_features)`` (row ``k`` solves strength ``k``;
        scikit-learn's ``lasso_path`` returns the transpose); ``(K, n_features,
        n_classes)`` for ``loss="multinomial"`` (``coef[k]`` is the transpose of
        scikit-learn's ``LogisticRegression.coef_``).
      intercept: shape ``(K,)`` (``(K, n_classes)`` for ``"multinomial"``, defined
        up to a constant per row), zeros when ``fit_intercept=False``.
      iterations: solver iterations per strength, shape ``(K,)`` (FISTA steps;
        polishing steps are not counted, so a warm start that the polish
        solves at once reports 0; proximal Newton steps on the logistic route).
      converged: per strength, shape ``(K,)``.
      objective: the objective per strength (scikit-learn's normalization), ``(K,)``.
    """

    strengths: jax.Array
    coef: jax.Array
    intercept: jax.Array
    iterations: jax.Array
    converged: jax.Array
    objective: jax.Array


# ----------------------------------------------------------------------------- working sets

_WS_BLOCK = 16  # Gram columns computed per block (one GEMM X_cᵀ X_c[:, block] / n)
_POLISH_EVERY = 32  # FISTA iterations between two active-set polishing attempts


def _kkt_error(x: jax.Array, c: jax.Array, alpha: jax.Array, eta: jax.Array, r: Any) -> jax.Array:
    """Sup-norm of the gradient mapping ``|prox_{ηαP}(x + ηc) − x| / η``, ``c = −∇f(x)``."""
    step = prox_ops._elastic_net_shrink(x + eta * c, eta * alpha, r) - x
    return _sup_norm(step) / eta  # a NaN in x or c reaches `step`: NaN, not 0


def _quad_fista(gram, b, alpha, x, y, t, err, k, k_stop, eta, tol, r, acceleration, restart):
    """(Restarted) FISTA on ``½xᵀGx − bᵀx + α(r‖x‖₁ + (1−r)/2‖x‖²)`` from ``(x, y, t)``.

    The iteration of :func:`jaxreg.proximal_gradient` specialised to a quadratic
    (one matrix-vector product per step); runs while ``err > tol`` and
    ``k < k_stop``. The momentum state ``(y, t)`` is returned so that a caller
    that pauses the loop (to polish) resumes it where it stopped.
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
        x_new = prox_ops._elastic_net_shrink(y - eta * (gram @ y - b), t_pen, r)
        diff = x_new - y
        err = _sup_norm(diff) / eta
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
    k, x, y, t, _, _ = jax.lax.while_loop(cond, body, (k, x, y, t, err, fx))
    return x, y, t, k


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
    (the last step is always such an attempt): once FISTA has found the support
    and the signs, the polish lands on the exact minimizer. FISTA's momentum
    ``(y, t)`` carries over between the chunks; it restarts only when a polish is
    accepted (the point jumped). Returns ``(x, iterations, error)``.
    """

    def error(z):
        return _kkt_error(z, b - gram @ z, alpha, eta, r)

    def cond(s):
        _, _, _, err, k, _ = s
        return (err > tol) & (k < max_iter)

    def body(s):
        x, y, t, err, k, first = s
        k_stop = jnp.where(first, k, jnp.minimum(k + _POLISH_EVERY, max_iter))
        x, y, t, k = _quad_fista(
            gram, b, alpha, x, y, t, err, k, k_stop, eta, tol, r, acceleration, restart
        )
        err = error(x)
        xp = _polish(gram, b, alpha, x, r)
        ep = error(xp)
        better = ep < err  # False for NaN (singular G_SS)
        x = jnp.where(better, xp, x)
        y = jnp.where(better, xp, y)
        t = jnp.where(better, jnp.ones_like(t), t)
        return x, y, t, jnp.where(better, ep, err), k, jnp.zeros((), bool)

    one = jnp.ones((), x.dtype)
    init = (x, x, one, error(x), jnp.zeros((), jnp.int32), jnp.ones((), bool))
    x, _, _, err, k, _ = jax.lax.while_loop(cond, body, init)
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
            return lambda ws: c.max_eigenvalue(_sub_problem(ws, b, s)[0])

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
    xt,
    b,
    const,
    strengths,
    *,
    r,
    method,
    tol_abs,
    max_iter,
    learning_rate,
    acceleration,
    restart,
    inner="fista",
):
    """Least-squares (elastic-net) path by strong rules, working sets and polishing.

    Only the Gram rows of features that enter a working set are computed. Per
    strength: (1) sequential strong rule (Tibshirani et al. 2012): features with
    ``|c_j| >= r(2α_k − α_{k−1})`` at the previous solution join the working set;
    (2) the problem restricted to the working set is solved (:func:`_ws_solve`,
    sub-problem padded to a static size bucket); (3) KKT is checked on all
    features and violators join, until there are none. ``method="vmap"`` solves
    all strengths at once on one shared working set grown from the violators
    (all of them after each round: one block per round took minutes at p = 300).
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
            if inner == "cd":

                def error(z):
                    return _kkt_error(z, bw - gram @ z, alpha, eta, r)

                xs, k, _ = _cd.cd_solve(
                    gram, bw, alpha, x[:s], jnp.minimum(ws.size, s), tol_abs, budget, r,
                    error, lambda z: _polish(gram, bw, alpha, z, r),
                )  # fmt: skip
            else:
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
        ws = grow(ws, jnp.any(viol, axis=0), jnp.max(ratio, axis=0), many)
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


class _PathOptions(NamedTuple):
    loss: str
    l1_ratio: float
    n_strengths: int
    eps: float
    fit_intercept: bool
    method: str
    fixed_step: bool
    acceleration: bool
    restart: str | None
    solver: str
    penalty: str = "l1"
    groups: Any = None  # None or (ids tuple, sizes tuple)
    sparse: bool = False
    newton: bool = False  # logistic L1 / elastic net by proximal Newton (_newton.py)


_SOLVERS = ("auto", "cd", "fista", "full")
_DEFAULT_TOL = 1e-9
_ADAPTIVE = True


def _solve_each(
    strengths,
    init,
    data,
    step,
    tol_abs,
    max_iter,
    opts,
    dtype,
    *,
    fun,
    prox,
    mask,
    adaptive=False,
    **prox_opts,
):
    """One proximal-gradient solve per strength, warm-started in sequence or vmapped
    (``opts.method``): fixed step ``step``, or (``adaptive``) a line search that starts
    from ``step`` and may grow it; ``prox_opts``: ``l1_ratio``, ``group_axis``, ``groups``."""
    pg_opts = _pg._Options(
        fun=fun,
        prox=prox,
        mask=_pg._mask_key(mask),
        fixed_step=not adaptive,
        acceleration=opts.acceleration,
        restart=opts.restart,
        max_backtracks=30,
        implicit_diff=False,
        **prox_opts,
    )
    init_step = jnp.asarray(step if adaptive else -1.0, dtype)

    def solve_one(alpha, x0):
        strs = jax.tree.map(lambda _: alpha, x0)
        res, _ = _pg._solve(x0, data, strs, step, tol_abs, max_iter, init_step, opts=pg_opts)
        return res.params, res

    if opts.method == "sequential":
        _, results = jax.lax.scan(lambda x0, a: solve_one(a, x0), init, strengths)
    else:
        _, results = jax.vmap(solve_one, in_axes=(0, None))(strengths, init)
    return results


def regularization_path(
    X: Any,  # array-like, scipy.sparse matrix or jax.experimental.sparse.BCOO
    y: jax.typing.ArrayLike,
    *,
    loss: str = "squared",
    l1_ratio: float = 1.0,
    strengths: jax.typing.ArrayLike | None = None,
    n_strengths: int = 100,
    eps: float = 1e-3,
    fit_intercept: bool = True,
    method: str = "sequential",
    tol: float | None = None,
    max_iter: int = 10_000,
    learning_rate: Any = None,
    acceleration: bool = True,
    restart: str | None = "gradient",
    working_set: bool = True,
    solver: str = "auto",
    penalty: str = "l1",
    groups: Any = None,
) -> PathResult:
    r"""Solutions of an L1 / elastic-net penalized regression over a grid of strengths.

    Objective (scikit-learn's ``lasso_path`` / ``enet_path`` normalization):
    ``loss(w, b) + α·(r‖w‖₁ + (1−r)/2‖w‖²)``, ``r = l1_ratio``, where ``loss`` is
    ``(1/2n)‖y − Xw − b‖²`` (``"squared"``) or the mean log-loss
    ``(1/n)Σ log(1 + e^{z_i}) − y_i z_i``, ``z = Xw + b``, ``y ∈ {0, 1}``
    (``"logistic"``; this is scikit-learn's ``LogisticRegression(C)`` with
    ``α = 1/(C·n)``). The intercept ``b`` is never penalized.

    ``loss="multinomial"``: ``y`` holds class labels (``K = len(np.unique(y))``
    classes, in sorted order), ``W`` has shape ``(p, K)`` and the loss is the mean
    softmax cross-entropy ``(1/n)Σ_i logsumexp(z_i) − z_{i,y_i}``, ``z = XW + b``
    (scikit-learn's multinomial ``LogisticRegression(C, l1_ratio)`` with
    ``α = 1/(C·n)``); ``α_max = max|Xᵀ(Y − Ȳ)|/(n·r)``, ``Y`` one-hot.

    ``penalty="group_lasso"``: ``α·Σ_g √|g|·‖w_g‖₂`` (``l1_ratio`` must be 1).
    For ``"squared"`` and ``"logistic"`` the groups are given by ``groups`` (an int:
    consecutive groups of that size; a list of group sizes; or a list of index
    lists partitioning the features), and ``α_max = max_g ‖X_gᵀ(y − ȳ)‖/(n√|g|)``
    (least squares on centred data). For ``"multinomial"`` each feature's row of
    class weights ``W_j`` is a group (weight ``√K``; ``groups`` must be None): a
    feature leaves all classes at once.

    Sparse designs: ``X`` may be a ``scipy.sparse`` matrix (converted to
    ``jax.experimental.sparse.BCOO``) or a BCOO, for ``loss="squared"``; it is
    never densified (only ``X·w`` and ``Xᵀ·v`` products; the centring of
    ``fit_intercept`` acts on those products).

    Group lasso, ``"multinomial"`` and sparse ``X`` are solved on the data (not a
    Gram matrix) by :func:`jaxreg.proximal_gradient`'s iteration, warm-started
    along the path, with step ``1/L``, ``L`` a power-iteration estimate (× 1.05)
    of ``λ_max`` of the loss's curvature bound (``X_cᵀX_c/n``; ``AᵀA/(4n)``;
    ``AᵀA/(2n)`` for the multinomial loss, Böhning's bound; ``A = [X 1]``). For
    the multinomial L1 / elastic-net path that step only starts a backtracking
    line search (sufficient decrease of the quadratic model) that grows the step
    by 1.1× after each accepted one: the local curvature is often far below
    Böhning's bound (7.7× fewer iterations on scikit-learn's digits). An eager
    multinomial L1 / elastic-net call (concrete data, dense ``X``,
    ``method="sequential"``, ``solver="auto"``, no ``learning_rate``, CPU
    backend) runs proximal Newton from a host-side driver instead (in float64,
    results in ``X``'s dtype): per strength, a working set (support, strong-rule
    candidates, KKT violators), the Hessian
    ``H_(jk),(lm) = Σ_i x_ij x_il (p_ik δ_km − p_ik p_im)/n`` on it with the
    intercepts eliminated by their Schur complement, the quadratic model solved
    by the active-set polish (FISTA as the fallback), an Armijo line search, the
    Hessian kept while its steps cut the KKT error 4×; ``iterations`` counts
    Newton steps and each strength stops when the minimum-norm subgradient is
    ``<= tol·α_max`` (digits, 100 strengths: about 2 s, nothing compiled).

    Logistic L1 / elastic-net path (``loss="logistic"``, ``solver="auto"``,
    ``method="sequential"``, no ``learning_rate``, ``p + 1 <= 1024``): proximal
    Newton (Lee, Sun & Saunders 2014; the method of glmnet, newGLMNET and
    skglm's ``ProxNewton``). Each step
    forms the Hessian ``Aᵀdiag(s(1−s))A/n`` (``s`` the fitted probabilities),
    solves the penalized quadratic model by restarted FISTA with an active-set
    polish (the exact minimizer for the current support and signs), and
    backtracks on the true objective (Armijo). The Hessian is kept while the
    steps it gives cut the KKT error at least 4× (it is recomputed otherwise), so
    along a warm-started path most steps cost one gradient. Each strength stops
    when the minimum-norm subgradient's sup-norm (the KKT error) is
    ``<= tol·α_max``. ``solver="full"`` takes the proximal-gradient route instead.

    Default grid (as scikit-learn): ``n_strengths`` values log-spaced from ``α_max``
    down to ``eps·α_max``, where ``α_max`` is the smallest strength with an all-zero
    solution: ``max|X_cᵀ y_c|/(n·r)`` for least squares (centred data when
    ``fit_intercept``), and ``max|Xᵀ(y − ȳ)|/(n·r)`` for the logistic loss with an
    intercept (``max|Xᵀ(y − ½)|/(n·r)`` without: scikit-learn's
    ``l1_min_c(X, y, loss="log", fit_intercept=False)`` is ``1/(n·α_max)``).

    Least squares, ``solver="fista"`` (what ``"auto"`` picks on eager sequential
    calls, and under ``jit`` when ``p > n``; traced with ``p <= n`` it picks
    ``"full"``, below): Gram *rows* computed only for the features that
    enter a working set (``G = X_cᵀX_c/n``, ``b = X_cᵀy_c/n``; the loss is
    ``½wᵀGw − bᵀw + const``): sequential strong rules (Tibshirani et al. 2012)
    propose features, each working-set problem is solved by restarted FISTA
    (step ``1/λ_max(G_WW)``) with an active-set polish (the exact minimizer for
    the current support and signs, ``(G_SS + α(1−r)I)w_S = b_S − αr·sign(w_S)``,
    accepted when it lowers the KKT error), and the KKT conditions are checked on
    all features, any violator joining the working set until there is none. Each
    new block of 16 features costs one ``16×n×p`` product; the sub-problems are
    padded to static sizes ``16·2^i``, so everything stays jittable.
    An eager call (concrete ``X``, ``y``, ``method="sequential"``) runs the same
    algorithm from a host-side driver: strong rules, KKT checks and the polish
    run in NumPy on the unpadded working set (only its Gram matrix
    ``X_Wᵀ X_W/n`` is formed when ``p > n``, the whole ``G`` when ``p <= n``);
    the polish also tries the active-set corrections of feature-sign search
    (Lee et al. 2007: coordinates whose sign the solve flips leave, working-set
    violators join), and FISTA runs in NumPy up to 1024 features (a compiled,
    padded loop above). Nothing is compiled for typical
    problems, so the first call costs about what later calls cost; the answers
    agree with the traced program to the tolerance (tested to ``1e-10``). The
    host driver serves the CPU backend; on a GPU or TPU every call runs the traced
    program on the device.
    ``solver="full"`` (or ``working_set=False``) forms the whole Gram matrix
    once and solves every strength on it by :func:`jaxreg.proximal_gradient`
    with step ``1/λ_max(G)``. The logistic loss takes proximal Newton (below)
    or, with ``solver="full"``, a ``learning_rate``, more than 1023 features or
    ``method="vmap"``, the latter route on the data, with step
    ``4n/λ_max([X 1]ᵀ[X 1])``. Each strength stops on its
    own when the gradient mapping's sup-norm (over all features) is
    ``<= tol·α_max`` (scale-free in ``y``).

    Tolerance: ``tol=None`` means ``1e-9``, raised to what the dtype resolves,
    ``64·eps`` (``7.6e-6`` in float32); an explicit ``tol`` below that is raised
    too, and an eager call says so with a :class:`jaxreg.ConvergenceWarning`. An
    eager call whose strengths do not all converge within ``max_iter`` warns,
    listing them (under ``jit`` read ``converged``).

    ``method="sequential"``: strengths in the given order inside one
    ``jax.lax.scan``, each warm-started from the previous solution (fast on a
    CPU). ``method="vmap"``: all strengths at once with ``jax.vmap`` from zero
    (one batched program; suits an accelerator; with working sets, all strengths
    share one working set, which every KKT violator of any strength joins after
    each round, in blocks of 16).

    Compilation: eager calls run one compiled program cached on the static
    options (``loss``, ``l1_ratio``, ``n_strengths``, ``eps``, ``method``, ...)
    and the shapes of ``X``, ``y`` and ``strengths``: a second call with the same
    shapes and options runs without compiling, also with new data, ``tol``,
    ``max_iter`` or ``learning_rate``. The function stays jittable in ``X``,
    ``y`` and ``strengths`` (under ``jit`` or ``vmap`` the single traced program
    runs, also for least squares). Scripts that run again and again can keep
    compiled programs across processes with JAX's persistent compilation cache
    (``jax.config.update("jax_compilation_cache_dir", "/some/dir")``).

    Data: ``X`` and ``y`` must be finite, ``X`` non-empty, and ``y`` hold 0/1
    labels for the logistic loss; an eager call raises ``ValueError`` otherwise,
    and under ``jit`` every output that depends on them is NaN.

    Args:
      X: ``(n, p)`` design matrix (dense, ``scipy.sparse`` or BCOO).
      y: ``(n,)`` targets (``{0, 1}`` labels for ``"logistic"``, class labels for
        ``"multinomial"``; these must be concrete, they fix the shape).
      loss: ``"squared"``, ``"logistic"`` or ``"multinomial"``.
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
      working_set: least squares: ``False`` is ``solver="full"``.
      solver: least squares: ``"auto"`` (``"fista"`` on an eager sequential
        call on the CPU; under ``jit``/``vmap``, ``"full"`` when ``p <= n``, else
        ``"fista"``), ``"fista"`` (working sets, see above), ``"cd"`` or
        ``"full"``. ``"cd"`` uses the same working sets with cyclic coordinate
        descent as the sub-problem solver (rounds of 5 epochs, each followed by
        an Anderson extrapolation accepted when it lowers the objective, and the
        active-set polish once the support is stable; Friedman et al. 2010,
        Bertrand & Massias 2021). It is correct but, as written with ``lax``
        loops (one loop step per coordinate), slower than ``"fista"`` on a CPU
        today; ``iterations`` then counts epochs. Group lasso, multinomial and
        sparse ``X`` take only ``"auto"`` / ``"full"`` (the data route above).
        Logistic: ``"auto"`` is proximal Newton, ``"full"`` proximal gradient.
      penalty: ``"l1"`` (L1 / elastic net by ``l1_ratio``) or ``"group_lasso"``.
      groups: the feature groups of ``penalty="group_lasso"`` (see above).

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

      Group lasso (groups ``{0, 1}`` and ``{2}``), multinomial, and a sparse design:

      >>> X3 = jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [0.0, -1.5, -2.0]])
      >>> y3 = jnp.array([2.0, 1.0, -2.0, -1.0])
      >>> g = jaxreg.regularization_path(X3, y3, penalty="group_lasso", groups=[2, 1],
      ...                                n_strengths=3, eps=0.01)
      >>> import numpy as np
      >>> print(np.round(np.asarray(g.coef, np.float64), 2) + 0.0)
      [[ 0.    0.    0.  ]
       [ 1.58  0.71  0.  ]
       [ 1.31  1.49 -0.6 ]]
      >>> m = jaxreg.regularization_path(X3, jnp.array([0, 1, 2, 1]), loss="multinomial",
      ...                                n_strengths=3)
      >>> m.coef.shape, m.intercept.shape
      ((3, 3, 3), (3, 3))
      >>> import scipy.sparse
      >>> s = jaxreg.regularization_path(scipy.sparse.csr_matrix(X), y, n_strengths=3, eps=0.25)
      >>> print(jnp.round(s.coef, 4))
      [[0.  0. ]
       [1.  0. ]
       [1.5 0.5]]

    References:
      Friedman, Hastie & Tibshirani, *Regularization paths for generalized linear
      models via coordinate descent*, 2010; Lee, Battle, Raina & Ng, *Efficient
      sparse coding algorithms*, NeurIPS 2007 (feature-sign search); Lee, Sun &
      Saunders, *Proximal Newton-type methods for minimizing composite functions*,
      SIAM J. Optim., 2014; Yuan & Lin, *Model selection and estimation in
      regression with grouped variables*, JRSS B, 2006; Böhning,
      *Multinomial logistic regression algorithm*, AISM, 1992; Tibshirani et al., *Strong rules for
      discarding predictors in lasso-type problems*, JRSS B, 2012; scikit-learn
      ``lasso_path``.
    """
    if loss not in _LOSSES:
        raise ValueError(f"`loss` must be one of {_LOSSES}, got {loss!r}.")
    if penalty not in ("l1", "group_lasso"):
        raise ValueError(f'`penalty` must be "l1" or "group_lasso", got {penalty!r}.')
    if method not in ("sequential", "vmap"):
        raise ValueError(f'`method` must be "sequential" or "vmap", got {method!r}.')
    if solver not in _SOLVERS:
        raise ValueError(f"`solver` must be one of {_SOLVERS}, got {solver!r}.")
    if restart not in ("gradient", "function", None):
        raise ValueError(f'`restart` must be "gradient", "function" or None, got {restart!r}.')
    _checks.check_l1_ratio(l1_ratio)
    if isinstance(l1_ratio, jax.core.Tracer):
        raise ValueError("`l1_ratio` must be a concrete number (it selects the program).")
    l1_ratio = float(l1_ratio)
    c.check_positive("n_strengths", n_strengths, integer=True)
    c.check_positive("max_iter", max_iter, integer=True)
    if tol is not None:
        c.check_positive("tol", tol)
    if learning_rate is not None:
        c.check_positive("learning_rate", learning_rate, zero=False)
    if isinstance(eps, bool) or not (0 < float(eps) < 1):
        raise ValueError(f"`eps` must lie in (0, 1), got {eps!r}.")
    X, is_sparse = _as_bcoo(X)
    shape_x, shape_y = tuple(X.shape), np.shape(y)
    if len(shape_x) != 2 or shape_y != shape_x[:1]:
        raise ValueError(
            f"`X` must have shape (n, p) and `y` shape (n,); got {shape_x} and {shape_y}."
        )
    if 0 in shape_x:
        raise ValueError(f"`X` must be non-empty (n >= 1 samples, p >= 1 features); got {shape_x}.")
    n_classes, group_key = _check_extra(X, y, loss, penalty, groups, l1_ratio, solver, is_sparse)
    if strengths is None and not l1_ratio:
        raise ValueError("`l1_ratio=0` has no finite α_max: pass `strengths` explicitly.")
    if strengths is not None:
        if np.ndim(strengths) != 1 or np.shape(strengths)[0] < 1:
            raise ValueError("`strengths` must be a non-empty 1-d array.")
        if c.is_concrete(strengths) and not np.all(np.asarray(strengths, float) >= 0):
            raise ValueError("`strengths` must be finite and >= 0.")
        if c.is_concrete(strengths) and not np.all(np.isfinite(np.asarray(strengths, float))):
            raise ValueError("`strengths` must be finite and >= 0.")
    c.check_finite_data("X", X.data if is_sparse else X)
    c.check_finite_data("y", y)
    if loss == "logistic" and c.is_concrete(y):
        yy = np.asarray(y)
        if not np.all((yy == 0) | (yy == 1)):
            raise ValueError('`y` must hold 0/1 labels for loss="logistic".')
    X_host = None
    if not is_sparse:
        c.warn_float64_downcast("X", X)
        if isinstance(X, np.ndarray):  # the host route reads it as is: no copy into JAX
            X_host = X  # (a ShapeDtypeStruct carries its shape and JAX dtype until then)
            X = jax.ShapeDtypeStruct(X.shape, jax.dtypes.canonicalize_dtype(X.dtype))
        else:
            X = jnp.asarray(X)
    c.warn_float64_downcast("y", y)
    if loss == "multinomial":
        y = _one_hot(y, n_classes, X.dtype)
    y = jnp.asarray(y)
    dtype = _dtypes.accumulation_dtype(_dtypes.promote(X.dtype, y.dtype, jnp.float32))
    floor = c.resolution(dtype)
    tol_req = _DEFAULT_TOL if tol is None else tol
    solver_in = solver
    if solver == "auto":
        host = loss == "squared" and method == "sequential" and penalty == "l1"
        cpu = jax.default_backend() == "cpu"
        if host and cpu and not is_sparse and c.is_concrete(X, y, strengths):
            solver = "fista"  # eager: the host-driven working sets, fastest at every shape
        else:  # traced, tall: the p×p Gram is cheap and FISTA on it is fast
            solver = "full" if X.shape[1] <= X.shape[0] else "fista"
    if not working_set:
        solver = "full"
    opts = _PathOptions(
        loss=loss,
        l1_ratio=l1_ratio,
        n_strengths=int(n_strengths),
        eps=float(eps),
        fit_intercept=bool(fit_intercept),
        method=method,
        fixed_step=learning_rate is not None,
        acceleration=bool(acceleration),
        restart=restart,
        solver=solver,
        penalty=penalty,
        groups=group_key,
        sparse=is_sparse,
        newton=(
            loss != "squared"
            and penalty == "l1"
            and not is_sparse
            and learning_rate is None
            and solver_in == "auto"
            and method == "sequential"  # from zero (vmap) the Newton steps can stall
            and loss == "logistic"
            and _newton.use_newton(int(X.shape[1]), fit_intercept)
        ),
    )
    lr = jnp.asarray(1.0 if learning_rate is None else learning_rate).astype(dtype)
    rest = (
        y.astype(dtype),
        None if strengths is None else jnp.asarray(strengths).astype(dtype),
        jnp.maximum(jnp.asarray(tol_req).astype(dtype), floor),
        jnp.asarray(min(max_iter, np.iinfo(np.int32).max), jnp.int32),
        lr,
    )
    mn_host = _mn_host_route(opts) and solver_in == "auto"
    host = (_host_route(opts) or mn_host) and c.is_concrete(X, rest)
    x_arg: Any
    if host and X_host is not None and X_host.dtype == dtype:  # no round trip through JAX
        x_arg = X_host
    elif X_host is not None:
        x_arg = jnp.asarray(X_host, dtype)
    else:
        x_arg = X.astype(dtype)  # BCOO.astype casts its data
    args = (x_arg, *rest)
    if host:
        if mn_host:
            out = _mn_host.mn_path(*args[:5], opts)
        else:
            out = _ws_host.lsq_path(*args, opts)
        result = PathResult(*map(jnp.asarray, out))
    else:
        result = _path_jit(*args, opts=opts)
    if c.is_concrete(result.converged):
        if tol is not None and tol < floor:
            warnings.warn(
                f"tol={tol:g} is below what {np.dtype(dtype).name} resolves; the path was "
                f"solved to tol={floor:.3g} (64·eps) instead: use float64 "
                "(jax_enable_x64) for a tighter solve.",
                c.ConvergenceWarning,
                stacklevel=2,
            )
        bad = ~np.asarray(result.converged)
        if bad.any():
            alphas = np.asarray(result.strengths)[bad]
            shown = ", ".join(f"{a:.4g}" for a in alphas[:10])
            more = f" and {bad.sum() - 10} more" if bad.sum() > 10 else ""
            warnings.warn(
                f"regularization_path: {int(bad.sum())} of {bad.size} strengths did not "
                f"converge within max_iter={max_iter} (strengths {shown}{more}); raise "
                "max_iter or tol.",
                c.ConvergenceWarning,
                stacklevel=2,
            )
    return result


def _host_route(opts: _PathOptions) -> bool:
    """Eager least-squares working-set paths run the host-driven driver (`_ws_host`).

    On the CPU backend only: on a GPU or TPU the traced program keeps the work (and
    the data) on the device, the full-batch route the accelerator is for.
    """
    return (
        jax.default_backend() == "cpu"
        and opts.loss == "squared"
        and opts.solver == "fista"
        and opts.method == "sequential"
        and opts.penalty == "l1"
        and not opts.sparse
    )


def _mn_host_route(opts: _PathOptions) -> bool:
    """Eager multinomial L1 / elastic-net paths run the host-driven proximal Newton
    driver (`_mn_host`): sequential, dense, no fixed `learning_rate`, CPU backend."""
    return (
        jax.default_backend() == "cpu"
        and opts.loss == "multinomial"
        and opts.penalty == "l1"
        and opts.method == "sequential"
        and not opts.fixed_step
        and not opts.sparse
    )


def _path_impl(X, y, strengths, tol, max_iter, lr, *, opts):
    if opts.sparse or opts.penalty == "group_lasso" or opts.loss == "multinomial":
        return _path_data(X, y, strengths, tol, max_iter, lr, opts=opts)
    loss, l1_ratio, fit_intercept = opts.loss, opts.l1_ratio, opts.fit_intercept
    dtype = X.dtype
    n, p = X.shape
    bad = ~jnp.all(jnp.isfinite(X)) | ~jnp.all(jnp.isfinite(y))
    if loss == "logistic":
        bad = bad | ~jnp.all((y == 0) | (y == 1))
    if strengths is not None:
        bad_s = ~(strengths >= 0) | ~jnp.isfinite(strengths)
    X = jnp.where(bad, jnp.zeros_like(X), X)  # bad data: run a trivial problem, report NaN
    y = jnp.where(bad, jnp.zeros_like(y), y)
    learning_rate = lr if opts.fixed_step else None

    if loss == "squared":
        x_mean = jnp.mean(X, axis=0) if fit_intercept else jnp.zeros((p,), dtype)
        y_mean = jnp.mean(y) if fit_intercept else jnp.zeros((), dtype)
        yc = y - y_mean
        const = jnp.vdot(yc, yc) / (2 * n)
        if opts.solver in ("fista", "cd"):
            # X_cᵀ stored row-major once (one fused centring + transpose pass): the
            # Gram rows of a block B are then one well-shaped GEMM X_cᵀ[B]·X_c.
            xt = jax.lax.optimization_barrier((X - x_mean[None, :]).T)
            xty = (yc @ X - x_mean * jnp.sum(yc)) / n  # = X_cᵀy_c, read off X itself
            gram = lipschitz = None  # Gram rows computed on demand
        else:
            Xc = X - x_mean[None, :]
            xty = Xc.T @ yc / n
            gram = Xc.T @ Xc / n
            lipschitz = c.max_eigenvalue(gram)
        corr = xty

        def fun(params, g, b, cst):
            w = params["coef"]
            return 0.5 * jnp.vdot(w, g @ w) - jnp.vdot(b, w) + cst

        data: tuple[Any, ...] = (gram, xty, const)
        init = {"coef": jnp.zeros((p,), dtype)}
        mask = None
    else:
        init = {"coef": jnp.zeros((p,), dtype)}
        mask = None
        if fit_intercept:
            corr = X.T @ (y - jnp.mean(y)) / n
            aug = jnp.concatenate([X, jnp.ones((n, 1), dtype)], axis=1)
            tiny = jnp.finfo(dtype).eps
            ybar = jnp.clip(jnp.mean(y), tiny, 1 - tiny)  # finite when one class only
            init["intercept"] = jnp.log(ybar) - jnp.log1p(-ybar)  # optimal at w = 0
            mask = {"coef": True, "intercept": False}
        else:
            corr = X.T @ (y - 0.5) / n
            aug = X
        lipschitz = c.max_eigenvalue(aug.T @ aug) / (4 * n)

        def fun(params, xs, ys):  # type: ignore[misc]
            z = xs @ params["coef"]
            if fit_intercept:
                z = z + params["intercept"]
            return jnp.mean(jax.nn.softplus(z) - ys * z)

        data = (X, y)

    alpha_max = jnp.max(jnp.abs(corr)) / max(l1_ratio, 1e-300) if l1_ratio else jnp.inf
    if strengths is None:
        # np.logspace(log10(α_max), log10(eps·α_max), K), written to stay jittable.
        exponents = jnp.linspace(0.0, float(np.log10(opts.eps)), opts.n_strengths, dtype=dtype)
        strengths = alpha_max * 10.0**exponents
        bad_s = jnp.zeros(strengths.shape, bool)
    strengths_in = strengths
    strengths = jnp.where(bad_s, jnp.zeros_like(strengths), strengths)
    scale = jnp.where(jnp.isfinite(alpha_max) & (alpha_max > 0), alpha_max, 1.0)

    def nan_out(coef, intercept, iterations, converged, objective):
        row = (bad | bad_s)[:, None]
        coef = jnp.where(row, jnp.nan, coef)
        intercept = jnp.where(row[:, 0], jnp.nan, intercept)
        objective = jnp.where(row[:, 0], jnp.nan, objective)
        converged = converged & ~row[:, 0]
        return PathResult(strengths_in, coef, intercept, iterations, converged, objective)

    if loss == "squared" and opts.solver in ("fista", "cd"):
        coef, iterations, converged, objective = _lsq_path_working_set(
            xt,
            xty,
            const,
            strengths,
            r=l1_ratio,
            method=opts.method,
            tol_abs=tol * scale,
            max_iter=max_iter,
            learning_rate=learning_rate,
            acceleration=opts.acceleration,
            restart=opts.restart,
            inner=opts.solver,
        )
        intercept = y_mean - coef @ x_mean
        return nan_out(coef, intercept, iterations, converged, objective)
    if opts.newton:  # logistic: proximal Newton on [X 1]
        v0 = init["coef"][:, None]
        if fit_intercept:
            v0 = jnp.concatenate([v0, jnp.reshape(init["intercept"], (1, 1))])
        vs, iterations, converged, objective = _newton.newton_path(
            aug, y, strengths, tol * scale, max_iter, r=l1_ratio,
            fit=fit_intercept, x0=v0, method=opts.method,
        )  # fmt: skip
        coef = vs[:, :p, 0]
        intercept = vs[:, p, 0] if fit_intercept else jnp.zeros(strengths.shape, dtype)
        return nan_out(coef, intercept, iterations, converged, objective)
    step = learning_rate if learning_rate is not None else 1 / lipschitz  # type: ignore[operator]
    prox = "l1" if l1_ratio == 1.0 else "elastic_net"

    results = _solve_each(
        strengths,
        init,
        data,
        step,
        tol * scale,
        max_iter,
        opts,
        dtype,
        fun=fun,
        prox=prox,
        mask=mask,
        l1_ratio=l1_ratio,
        group_axis=-1,
        groups=None,
    )

    coef = results.params["coef"]
    if loss == "squared":
        intercept = y_mean - coef @ x_mean
    elif fit_intercept:
        intercept = results.params["intercept"]
    else:
        intercept = jnp.zeros(strengths.shape, dtype)
    return nan_out(coef, intercept, results.iterations, results.converged, results.objective)


# ------------------------------------------------------ group lasso, multinomial, sparse X

_LOSSES = ("squared", "logistic", "multinomial")


def _as_bcoo(X: Any) -> tuple[Any, bool]:
    """``(X, True)`` as a BCOO for ``scipy.sparse`` / BCOO input (never densified)."""
    if isinstance(X, jsparse.BCOO):
        return X, True
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy ships with jax
        return X, False
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"`X` must have shape (n, p); got {X.shape}.")
        coo = sp.coo_matrix(X)
        coo.sum_duplicates()
        return jsparse.BCOO.from_scipy_sparse(coo), True
    return X, False


def _check_extra(X, y, loss, penalty, groups, l1_ratio, solver, is_sparse):
    """Checks of the data-route options; returns ``(classes or None, groups key or None)``."""
    data_route = is_sparse or penalty == "group_lasso" or loss == "multinomial"
    if data_route and solver not in ("auto", "full"):
        raise ValueError(
            f"`solver={solver!r}` is for dense L1/elastic-net least squares; sparse `X`, "
            'penalty="group_lasso" and loss="multinomial" are solved by proximal gradient '
            'on the data: leave `solver="auto"`.'
        )
    if is_sparse and loss != "squared":
        raise ValueError(f'sparse `X` is supported for loss="squared" only, got loss={loss!r}.')
    if penalty == "group_lasso" and l1_ratio != 1.0:
        raise ValueError(f'`l1_ratio` must be 1 with penalty="group_lasso", got {l1_ratio!r}.')
    group_key = None
    if groups is not None:
        if penalty != "group_lasso":
            raise ValueError(f'`groups` is for penalty="group_lasso", got penalty={penalty!r}.')
        if loss == "multinomial":
            raise ValueError(
                '`groups` must be None for loss="multinomial": the groups are the rows of '
                "the (n_features, n_classes) coefficients (one group per feature)."
            )
        ids, sizes = c.group_ids(groups, int(X.shape[1]))
        group_key = (tuple(int(i) for i in ids), tuple(int(k) for k in sizes))
    elif penalty == "group_lasso" and loss != "multinomial":
        raise ValueError(
            '`groups` is required with penalty="group_lasso" (an int, group sizes or index '
            "lists partitioning the features)."
        )
    classes = None
    if loss == "multinomial":
        if not c.is_concrete(y):
            raise ValueError(
                '`y` must be concrete for loss="multinomial" (its classes fix the shape of '
                "the coefficients); jit over `X` only."
            )
        classes = np.unique(np.asarray(y))
        if classes.size < 2:
            raise ValueError(
                f'`y` must hold at least 2 classes for loss="multinomial", got {classes.size}.'
            )
    return classes, group_key


def _one_hot(y: Any, classes: np.ndarray, dtype: Any) -> jax.Array:
    codes = np.searchsorted(classes, np.asarray(y))
    return jnp.asarray(np.eye(classes.size)[codes]).astype(_dtypes.promote(dtype, jnp.float32))


def _operator_max_eig(matvec: Any, dim: int, dtype: Any, iterations: int = 100) -> jax.Array:
    """``λ_max`` of a PSD operator given by ``matvec``: power iteration × 1.05."""
    start = jax.random.normal(jax.random.key(0), (dim,), dtype)

    def body(_, vec):
        nxt = matvec(vec)
        return nxt / jnp.maximum(jnp.linalg.norm(nxt), jnp.finfo(dtype).tiny)

    vec = jax.lax.fori_loop(0, iterations, body, start / jnp.linalg.norm(start))
    lip = 1.05 * jnp.vdot(vec, matvec(vec))
    return jnp.where(lip > 0, lip, jnp.ones_like(lip))


def _path_data(X, y, strengths, tol, max_iter, lr, *, opts):
    """Group lasso, multinomial and sparse-``X`` paths: FISTA on the data, step ``1/L``.

    The data enter only through ``X @ w`` and ``Xᵀ @ v`` (BCOO products when ``X``
    is sparse; the centring of least squares is applied to those products, never to
    ``X``). ``L`` is a power-iteration estimate (× 1.05) of ``λ_max`` of the loss's
    Hessian bound: ``X_cᵀX_c/n`` (squared), ``AᵀA/(4n)`` (logistic) and ``AᵀA/(2n)``
    (multinomial, Böhning's bound), ``A = [X 1]`` with an intercept.
    """
    loss, r, fit = opts.loss, opts.l1_ratio, opts.fit_intercept
    dtype = y.dtype
    n, p = X.shape
    xdata = X.data if opts.sparse else X
    bad = ~jnp.all(jnp.isfinite(xdata)) | ~jnp.all(jnp.isfinite(y))
    if loss == "logistic":
        bad = bad | ~jnp.all((y == 0) | (y == 1))
    xdata = jnp.where(bad, jnp.zeros_like(xdata), xdata)
    if opts.sparse:
        X = jsparse.BCOO((xdata, X.indices), shape=X.shape)
    else:
        X = xdata
    y = jnp.where(bad, jnp.zeros_like(y), y)
    if strengths is not None:
        bad_s = ~(strengths >= 0) | ~jnp.isfinite(strengths)
    ones = jnp.ones((n,), dtype)
    x_mean = (X.T @ ones) / n if fit else jnp.zeros((p,), dtype)
    mask: Any = None
    if loss == "squared":
        y_mean = jnp.mean(y) if fit else jnp.zeros((), dtype)
        yc = y - y_mean

        def xc_dot(w, X, x_mean):  # X_c w without forming X_c
            return X @ w - jnp.vdot(x_mean, w)

        def fun(params, X, yc, x_mean):
            res = yc - xc_dot(params["coef"], X, x_mean)
            return jnp.vdot(res, res) / (2 * n)

        data: tuple[Any, ...] = (X, yc, x_mean)
        corr = (X.T @ yc) / n - x_mean * (jnp.sum(yc) / n)  # X_cᵀ y_c / n
        init: dict[str, Any] = {"coef": jnp.zeros((p,), dtype)}
        lip = _operator_max_eig(
            lambda v: (X.T @ xc_dot(v, X, x_mean) - x_mean * jnp.sum(xc_dot(v, X, x_mean))) / n,
            p,
            dtype,
        )
    else:
        k_out = () if loss == "logistic" else (y.shape[1],)
        y_bar = jnp.mean(y, axis=0)
        if fit:
            tiny = jnp.finfo(dtype).eps
            freq = jnp.clip(y_bar, tiny, 1 - tiny)
            if loss == "logistic":
                b0 = jnp.log(freq) - jnp.log1p(-freq)  # optimal at w = 0
            else:
                b0 = jnp.log(freq) - jnp.mean(jnp.log(freq))
            corr = X.T @ (y - y_bar[None] if k_out else y - y_bar) / n
        else:
            corr = X.T @ (y - (0.5 if loss == "logistic" else 1.0 / y.shape[1])) / n

        def fun(params, X, y):  # type: ignore[misc]
            z = X @ params["coef"]
            if fit:
                z = z + (params["intercept"][None] if k_out else params["intercept"])
            if loss == "logistic":
                return jnp.mean(jax.nn.softplus(z) - y * z)
            return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.sum(y * z, axis=1))

        data = (X, y)
        init = {"coef": jnp.zeros((p, *k_out), dtype)}
        if fit:
            init["intercept"] = b0
            mask = {"coef": True, "intercept": False}

        def aug_normal(v):  # AᵀA v, A = [X 1] (or X)
            z = X @ v[:p] + (v[p] if fit else 0)
            out = X.T @ z
            return jnp.concatenate([out, jnp.sum(z)[None]]) if fit else out

        curvature = 4.0 if loss == "logistic" else 2.0
        lip = _operator_max_eig(aug_normal, p + int(fit), dtype) / (curvature * n)

    if opts.penalty == "group_lasso":
        if opts.groups is None:  # multinomial: one group per feature row, weight √K
            norms = jnp.linalg.norm(corr, axis=1) / np.sqrt(corr.shape[1])
        else:
            ids = jnp.asarray(opts.groups[0], jnp.int32)
            weights = jnp.sqrt(jnp.asarray(opts.groups[1], dtype))
            norms = c.group_norms(corr, ids, weights.shape[0]) / weights
        alpha_max: Any = jnp.max(norms)
        prox = "group_lasso"
    else:
        alpha_max = jnp.max(jnp.abs(corr)) / max(r, 1e-300) if r else jnp.inf
        prox = "l1" if r == 1.0 else "elastic_net"
    if strengths is None:
        exponents = jnp.linspace(0.0, float(np.log10(opts.eps)), opts.n_strengths, dtype=dtype)
        strengths = alpha_max * 10.0**exponents
        bad_s = jnp.zeros(strengths.shape, bool)
    strengths_in = strengths
    strengths = jnp.where(bad_s, jnp.zeros_like(strengths), strengths)
    scale = jnp.where(jnp.isfinite(alpha_max) & (alpha_max > 0), alpha_max, 1.0)
    num = strengths.shape[0]
    row = bad | bad_s

    def nan_rows(a):
        return jnp.where(row.reshape((num,) + (1,) * (a.ndim - 1)), jnp.nan, a)

    step = lr if opts.fixed_step else 1 / lip
    res = _solve_each(
        strengths,
        init,
        data,
        step,
        tol * scale,
        max_iter,
        opts,
        dtype,
        fun=fun,
        prox=prox,
        mask=mask,
        l1_ratio=r,
        group_axis=0,  # (p, K) multinomial coefficients: a feature's row is a group
        groups=opts.groups,
        adaptive=_ADAPTIVE
        and loss == "multinomial"
        and prox != "group_lasso"
        and not opts.fixed_step,
    )
    coef = res.params["coef"]
    if loss == "squared":
        intercept = y_mean - coef @ x_mean
    elif fit:
        intercept = res.params["intercept"]
    else:
        intercept = jnp.zeros((num, *init["coef"].shape[1:]), dtype)
    return PathResult(
        strengths_in,
        nan_rows(coef),
        nan_rows(intercept),
        res.iterations,
        res.converged & ~row,
        nan_rows(res.objective),
    )


_path_jit = jax.jit(_path_impl, static_argnames=("opts",))
