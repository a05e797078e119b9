"""The least-squares working-set path driven from the host, for eager calls.

``regularization_path(X, y)`` called from Python with concrete data (the common
case) runs this driver instead of the single traced program of
:func:`jaxreg.solvers._path._lsq_path_working_set`. The same algorithm (strong
rules, working sets grown by blocks of 16, KKT checks on all features, FISTA on
the working set with an active-set polish) runs in NumPy on the host, on the
*unpadded* working set: only ``G_WW = X_Wᵀ X_W / n`` is formed when ``p > n``
(the correlations with all features come from two products with ``X_c``), the
whole Gram matrix when ``p <= n``. The polish adds feature-sign corrections
(:func:`_polish`), so that most strengths need no FISTA step at all. FISTA runs in
NumPy up to ``_HOST_MAX`` working-set features and as a compiled chunk
(:func:`_fista_chunk`, one program per size bucket, cached) above.

Why: the traced program compiles one branch per size bucket, each with its FISTA
and polish loops (0.8 s each, 33 s cold at ``p = 1000``), and its polish factors
the padded matrix. This driver compiles nothing for typical problems. Both routes
solve the same problem to the same tolerance (tested to agree to 1e-10); calls
under ``jit`` or ``vmap`` (tracers) keep the traced program.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg  # a dependency of jax

try:  # optional (scikit-learn's dependency): small LAPACK calls run best on one thread
    import threadpoolctl
except ImportError:  # pragma: no cover
    threadpoolctl = None
_CONTROLLER: list[Any] = []  # one threadpoolctl.ThreadpoolController, made on first use

_BLOCK = 16  # features per working-set block (each block: one GEMM X_cᵀ[B]·X_c / n)
_BUCKET_FACTOR = 2  # compiled sub-problem sizes: _BLOCK · _BUCKET_FACTOR^i
_CHUNK = 32  # FISTA steps before the first polishing attempt (then doubled, up to _MAX_CHUNK)
_MAX_CHUNK = 1024
_HOST_MAX = 1024  # sub-problems up to this size run FISTA in NumPy (nothing to compile)
_POWER_STEPS = 100  # at most, power iteration for λ_max(G_WW)
_POLISH_TRIES = 4  # active-set candidates per polishing attempt
_FULL_GRAM_MAX = 4096  # tall designs up to this many features form the whole Gram matrix
_TRACES = [0]  # how often _fista_chunk was traced (a compile-cache check for tests)


@functools.partial(jax.jit, static_argnames=("r", "acceleration", "restart"))
def _fista_chunk(gram, b, alpha, x, y, t, k, k_stop, eta, tol, *, r, acceleration, restart):
    """Up to ``k_stop − k`` FISTA steps on ``½xᵀGx − bᵀx + α(r‖x‖₁ + (1−r)/2‖x‖²)``."""
    from jaxreg.solvers._path import _quad_fista

    _TRACES[0] += 1
    err = jnp.full((), jnp.inf, x.dtype)
    return _quad_fista(gram, b, alpha, x, y, t, err, k, k_stop, eta, tol, r, acceleration, restart)


def _shrink(v: np.ndarray, t: Any, r: float) -> np.ndarray:
    """``S_{t·r}(v) / (1 + t·(1 − r))`` (NumPy twin of ``prox._elastic_net_shrink``)."""
    return np.sign(v) * np.maximum(np.abs(v) - t * r, 0) / (1 + t * (1 - r))


def _kkt(x: np.ndarray, c: np.ndarray, alpha: Any, eta: Any, r: float) -> float:
    """Sup-norm of the gradient mapping ``|prox_{ηαP}(x + ηc) − x| / η``, ``c = −∇f(x)``."""
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(_shrink(x + eta * c, eta * alpha, r) - x)) / eta)


def _solve_support(gram, b, alpha, on, signs, r):
    """``(G_SS + α(1−r)I) z = b_S − αr·signs`` on the index set ``on`` by Cholesky;
    None when the matrix is not positive definite (numerically)."""
    mat = gram[np.ix_(on, on)]
    if r != 1:
        mat[np.diag_indices(on.size)] += alpha * (1 - r)
    try:
        factor = scipy.linalg.cho_factor(mat, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    z = scipy.linalg.cho_solve(factor, b[on] - (alpha * r) * signs, check_finite=False)
    return z if np.all(np.isfinite(z)) else None


def _polish(gram: np.ndarray, b: np.ndarray, alpha: Any, x: np.ndarray, r: float, err_of):
    """Best of a few active-set (Newton) candidates from ``x``, as ``(point, KKT error)``.

    The first candidate is the exact minimizer on the support ``S`` of ``x`` with its
    signs fixed, ``(G_SS + α(1−r)I) x_S = b_S − αr·sign(x_S)``; the next ones
    correct the active set as in feature-sign search (Lee et al. 2007): the
    coordinates whose sign the solve flipped leave, and the working-set features
    violating ``|c_j| <= αr`` join with the sign of ``c_j``. ``(None, inf)`` when
    no candidate is finite.
    """
    on = np.flatnonzero(x)
    signs = np.sign(x[on])
    best, best_err = None, np.inf
    for _ in range(_POLISH_TRIES):
        if on.size == 0:
            cand = np.zeros_like(x)
        else:
            z = _solve_support(gram, b, alpha, on, signs, r)
            if z is None:
                break
            cand = np.zeros_like(x)
            cand[on] = z
        e = err_of(cand)
        if e < best_err:
            best, best_err = cand, e
        keep = np.sign(cand[on]) == signs
        c = b - gram @ cand
        out = np.ones(x.size, bool)
        out[on] = False
        join = np.flatnonzero(out & (np.abs(c) > alpha * r))
        if keep.all() and join.size == 0:
            break
        on = np.concatenate([on[keep], join])
        signs = np.concatenate([signs[keep], np.sign(c[join])])
        order = np.argsort(on)
        on, signs = on[order], signs[order]
    return best, best_err


def _fista_np(gram, b, alpha, x, y, t, k, k_stop, eta, tol, r, acceleration, restart):
    """NumPy twin of ``_path._quad_fista`` (small sub-problems: nothing to compile)."""
    t_pen = eta * alpha

    def objective(z):
        pen = r * np.sum(np.abs(z)) + (1 - r) / 2 * (z @ z)
        return 0.5 * (z @ (gram @ z)) - b @ z + alpha * pen

    fx = objective(x) if restart == "function" else 0.0
    err = np.inf
    while k < k_stop and err > tol:
        x_new = _shrink(y - eta * (gram @ y - b), t_pen, r)
        diff = x_new - y
        err = np.max(np.abs(diff), initial=0.0) / eta
        k += 1
        if not acceleration:
            x = y = x_new
            continue
        dx = x_new - x
        reset = False
        if restart == "gradient":
            reset = diff @ dx < 0
        elif restart == "function":
            f_new = objective(x_new)
            reset, fx = f_new > fx, f_new
        if reset:
            t = np.ones_like(t)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        x, y, t = x_new, x_new + ((t - 1) / t_new) * dx, t_new
    return x, y, t, k


def _bucket(size: int, cap: int) -> int:
    s = _BLOCK
    while s < size:
        s *= _BUCKET_FACTOR
    return min(s, cap)


def _solve_ws(gram, b, alpha, x, eta, tol, budget, r, cap, acceleration, restart):
    """Working-set sub-problem: FISTA chunks, each followed by a polish.

    The polish (:func:`_polish`, exact minimizers for a corrected support and
    signs) replaces the point when it lowers the KKT error; FISTA's momentum
    carries over between chunks and restarts only when a polish is accepted.
    The chunk length doubles after each rejected polish (fewer host round trips
    on hard sub-problems). Sub-problems of at most ``_HOST_MAX`` features run
    FISTA in NumPy; larger ones run :func:`_fista_chunk`, padded to a size bucket.
    Returns ``(x, iterations)``.
    """
    dtype = x.dtype

    def err_of(z):
        return _kkt(z, b - gram @ z, alpha, eta, r)

    err = err_of(x)
    xp, ep = _polish(gram, b, alpha, x, r, err_of)
    if ep < err:
        x, err = xp, ep
    k = 0
    if err <= tol or budget <= 0:
        return x, k
    s = x.size
    size = _bucket(s, cap)
    host = s <= _HOST_MAX
    if not host:
        gram_p = np.zeros((size, size), dtype)
        gram_p[:s, :s] = gram
        b_p = np.zeros(size, dtype)
        b_p[:s] = b
        gram_d, b_d = jnp.asarray(gram_p), jnp.asarray(b_p)
        scalars = [np.asarray(v, dtype) for v in (alpha, eta, tol)]
    y, t = x, np.ones((), dtype)
    chunk = _CHUNK
    while err > tol and k < budget:
        k_stop = min(k + chunk, budget)
        if host:
            x, y, t, k = _fista_np(
                gram, b, alpha, x, y, t, k, k_stop, eta, tol, r, acceleration, restart
            )
        else:
            x_p = np.zeros(size, dtype)
            x_p[:s] = x
            y_p = np.zeros(size, dtype)
            y_p[:s] = y
            out = _fista_chunk(
                gram_d, b_d, scalars[0], x_p, y_p, t, np.int32(k), np.int32(k_stop),
                scalars[1], scalars[2], r=r, acceleration=acceleration, restart=restart,
            )  # fmt: skip
            x_d, y_d, t_d, k_d = jax.device_get(out)
            x, y, t, k = x_d[:s], y_d[:s], t_d, int(k_d)
        err = err_of(x)
        xp, ep = _polish(gram, b, alpha, x, r, err_of)
        if ep < err:
            x, y, t, err = xp, xp, np.ones((), dtype), ep
        else:
            chunk = min(2 * chunk, _MAX_CHUNK)
    return x, k


def lsq_path(X, y, strengths, tol, max_iter, learning_rate, opts):
    """Sequential least-squares working-set path on concrete data (see module doc).

    Same problem, grid, tolerance and outputs as the traced route of
    ``_path._path_impl``: returns ``(strengths, coef, intercept, iterations,
    converged, objective)`` as NumPy arrays. The setup's large products (``X_cᵀy``,
    the whole Gram matrix of a tall design) use every BLAS thread; the path's small
    BLAS/LAPACK calls (Gram blocks, Cholesky factors of at most a few hundred rows)
    run on one thread when ``threadpoolctl`` is installed: threads gain nothing at
    these sizes, and on a busy machine OpenBLAS's threads waiting for one another
    made them 10-30× slower (measured on the 2-core container, load 4).
    """
    return _lsq_path(X, y, strengths, tol, max_iter, learning_rate, opts)


def _one_blas_thread() -> Any:
    """A context in which BLAS/LAPACK run on one thread (if ``threadpoolctl`` is here)."""
    if threadpoolctl is None:
        return contextlib.nullcontext()
    if not _CONTROLLER:  # finding the loaded BLAS libraries costs milliseconds: once
        _CONTROLLER.append(threadpoolctl.ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _lsq_path(X, y, strengths, tol, max_iter, learning_rate, opts):
    dtype = np.dtype(X.dtype)
    X = np.asarray(X)
    y = np.asarray(y)
    n, p = X.shape
    r = opts.l1_ratio
    if opts.fit_intercept:
        x_mean, y_mean = X.mean(axis=0), y.mean()
    else:
        x_mean, y_mean = np.zeros(p, dtype), np.zeros((), dtype)
    yc = y - y_mean
    const = yc @ yc / (2 * n)
    xc = X - x_mean if opts.fit_intercept else X
    tall = n >= p and p <= _FULL_GRAM_MAX
    # wide designs read X_c by feature (row-major X_cᵀ); tall ones only form its Gram
    xt = xc.T if tall else np.ascontiguousarray(xc.T)
    b = xt @ yc / n
    alpha_max = np.max(np.abs(b)) / max(r, 1e-300) if r else np.inf
    if strengths is None:
        exponents = np.linspace(0.0, np.log10(opts.eps), opts.n_strengths, dtype=dtype)
        strengths = (alpha_max * 10.0**exponents).astype(dtype)
    strengths = np.asarray(strengths, dtype)
    scale = alpha_max if np.isfinite(alpha_max) and alpha_max > 0 else 1.0
    tol_abs = float(tol) * scale
    max_iter = int(max_iter)
    fixed = np.asarray(learning_rate, dtype)[()] if opts.fixed_step else None
    cap = -(-p // _BLOCK) * _BLOCK if p > _BLOCK else p

    idx = np.zeros(0, np.intp)  # working set, in order of entry
    gbuf = np.zeros((min(p, 4 * _BLOCK),) * 2, dtype)  # G_WW in its leading block
    xw = np.zeros((min(p, 4 * _BLOCK), n), dtype)  # X_cᵀ[idx] in its first rows
    # tall designs (n >= p): the whole Gram matrix costs about what the correlation
    # products of a few strengths cost, and then each KKT check is O(p·|W|)
    full = xt @ xc / n if tall else None
    member = np.zeros(p, bool)
    gram = np.zeros((0, 0), dtype)
    lip = 1.0
    vec = np.zeros(0, dtype)  # top eigenvector of G_WW (power iteration)
    x = np.zeros(0, dtype)
    c = b.copy()  # −∇f at the current point, all features
    num = strengths.shape[0]
    coef = np.zeros((num, p), dtype)
    iters = np.zeros(num, np.int32)
    ok = np.zeros(num, bool)
    obj = np.zeros(num, dtype)
    alpha_prev = strengths[0]
    with _one_blas_thread():
        for i, alpha in enumerate(strengths):
            want = np.abs(c) >= r * (2 * alpha - alpha_prev)
            k = 0
            while True:
                new = want & ~member
                if new.any():
                    if full is None:
                        idx, gbuf, xw, gram = _grow(xt, idx, gbuf, xw, member, new, np.abs(c))
                    else:
                        idx = np.concatenate([idx, _select(member, new, np.abs(c))])
                        gram = full[np.ix_(idx, idx)]
                    grown = idx.size - x.size
                    x = np.concatenate([x, np.zeros(grown, dtype)])
                    vec = np.concatenate([vec, np.ones(grown, dtype)])
                    lip, vec = _max_eigenvalue(gram, vec)
                eta = fixed if fixed is not None else 1 / lip
                x, dk = _solve_ws(
                    gram, b[idx], alpha, x, eta, tol_abs, max_iter - k, r, cap,
                    opts.acceleration, opts.restart,
                )  # fmt: skip
                k += dk
                if full is None:
                    c = b - xt @ (x @ xw[: idx.size]) / n  # two products with X_c: O(np)
                else:
                    w_full = np.zeros(p, dtype)
                    w_full[idx] = x
                    c = b - full @ w_full  # G symmetric: no copy of the rows G[idx]
                want = (np.abs(c) > alpha * r) & ~member  # KKT on all features
                if not want.any() or k >= max_iter:
                    break
            w = np.zeros(p, dtype)
            w[idx] = x
            coef[i], iters[i] = w, k
            ok[i] = _kkt(w, c, alpha, fixed if fixed is not None else 1 / lip, r) <= tol_abs
            pen = r * np.sum(np.abs(w)) + (1 - r) / 2 * (w @ w)
            obj[i] = const - 0.5 * (w @ (b + c)) + alpha * pen
            alpha_prev = alpha
    intercept = (y_mean - coef @ x_mean).astype(dtype)
    return strengths, coef, intercept, iters, ok, obj


def _select(member, new, score):
    """The features to add: every ``new`` one, highest ``score`` first, then the next
    best outside features by ``score`` up to a whole number of blocks (those most
    likely to enter next); marks them in ``member``."""
    out = ~member
    top = np.max(score[out], initial=0.0)
    norm = score / top if top > 0 else np.zeros_like(score)
    priority = np.where(out, norm + 2 * new, -1.0)
    count = min(-(-int(new.sum()) // _BLOCK) * _BLOCK, int(out.sum()))
    add = np.argsort(-priority, kind="stable")[:count]
    member[add] = True
    return add


def _grow(xt, idx, gbuf, xw, member, new, score):
    """Adds the ``new`` features, highest ``score`` first, filled up to whole blocks
    with the next best features by ``score``; returns ``(idx, gbuf, xw, G_WW)``.

    ``gbuf`` holds ``G_WW = X_Wᵀ X_W / n`` in its leading ``idx.size`` square and
    ``xw`` the rows ``X_cᵀ[idx]``; both grow by doubling. A block ``B`` costs one
    product ``X_Bᵀ X_{W∪B}``: only the working set's Gram matrix is ever formed
    (the correlations with all features come from two products with ``X_c``).
    """
    n = xt.shape[1]
    add = _select(member, new, score)
    count = add.size
    s = idx.size
    m = s + count
    if m > gbuf.shape[0]:
        size = max(2 * gbuf.shape[0], m)
        bigger = np.zeros((size, size), gbuf.dtype)
        bigger[:s, :s] = gbuf[:s, :s]
        gbuf = bigger
        rows = np.zeros((size, n), xw.dtype)
        rows[:s] = xw[:s]
        xw = rows
    idx = np.concatenate([idx, add])
    xw[s:m] = xt[add]
    block = xw[s:m] @ xw[:m].T / n  # (count, m)
    gbuf[s:m, :m] = block
    gbuf[:s, s:m] = block[:, :s].T
    return idx, gbuf, xw, np.ascontiguousarray(gbuf[:m, :m])


def _max_eigenvalue(gram: np.ndarray, vec: np.ndarray) -> tuple[float, np.ndarray]:
    """``λ_max`` of the PSD ``gram`` by power iteration from ``vec`` (× 1.05, as
    ``_common.max_eigenvalue``: the Rayleigh quotient approaches it from below).

    ``vec`` is the previous working set's top eigenvector padded with ones, so
    that a grown working set needs few iterations; returns ``(λ_max, vector)``.
    """
    vec = vec / np.linalg.norm(vec)
    lam = 0.0
    for _ in range(_POWER_STEPS):
        nxt = gram @ vec
        lam_new = float(vec @ nxt)
        norm = np.linalg.norm(nxt)
        if norm == 0:
            return 1.0, vec
        vec = nxt / norm
        if abs(lam_new - lam) <= 1e-3 * lam_new:
            lam = lam_new
            break
        lam = lam_new
    return (1.05 * lam if lam > 0 else 1.0), vec
