"""The least-squares working-set path driven from the host, for eager calls.

``regularization_path(X, y)`` called from Python with concrete data (the common
case) runs this driver instead of the single traced program of
:func:`jaxreg.solvers._path._lsq_path_working_set`. The same algorithm (strong
rules, working sets grown by blocks of 16, KKT checks on all features, FISTA on
the working set with an active-set polish) runs in NumPy on the host, on the
*unpadded* working set: only ``G_WW = X_Wᵀ X_W / n`` is formed when ``p > n``
(the correlations with all features come from two products with ``X_c``), the
whole Gram matrix when ``p <= n`` (of the centred design without a centred copy
of ``X``). The polish adds feature-sign corrections (:func:`_polish`), so that most
strengths need no FISTA step at all; its Cholesky factor of ``G_SS`` is updated
along the path rather than formed again (:class:`_Factor`: rows appended as
features enter, ``O(|S|²)`` per new feature instead of ``O(|S|³)`` per polish).
FISTA runs in NumPy up to ``_HOST_MAX`` working-set features and as a compiled
chunk (:func:`_fista_chunk`, one program per size bucket, cached) above.

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


def _solve_support(gram, b, alpha, on, signs, r, factor=None):
    """``(G_SS + α(1−r)I) z = b_S − αr·signs`` on the index set ``on`` by Cholesky;
    None when the matrix is not positive definite (numerically).

    With a :class:`_Factor`, its factor is updated to ``on`` (rows appended; a
    from-scratch factor only from the first feature that left) instead of being
    formed again: the same solution up to rounding.
    """
    if factor is not None:
        return factor.solve(gram, b[on], signs, alpha * r, on, alpha * (1 - r) if r != 1 else 0.0)
    rhs = b[on] - (alpha * r) * signs
    mat = gram[np.ix_(on, on)]
    if r != 1:
        mat[np.diag_indices(on.size)] += alpha * (1 - r)
    try:
        cho = scipy.linalg.cho_factor(mat, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    z = scipy.linalg.cho_solve(cho, rhs, check_finite=False)
    return z if np.all(np.isfinite(z)) else None


class _Factor:
    """The Cholesky factor ``L Lᵀ = G_OO + shift·I`` on an ordered set ``O`` of
    working-set positions, kept from one polish to the next along a path.

    ``O`` lists the features in the order they entered the factor. A new support
    ``S`` keeps the longest prefix of ``O`` inside ``S`` (its factor rows stay
    valid) and appends the rest of ``S``: for a block ``B`` of ``k`` new features,
    ``L_21 = G_BO L_11⁻ᵀ`` (one triangular solve) and ``L_22 = chol(G_BB + shift·I −
    L_21 L_21ᵀ)``, ``O(|S|²k)`` instead of ``O(|S|³)``. Along a Lasso path the support
    mostly grows, so most polishes append a few rows or none; a feature that leaves
    cuts the prefix at its position. Valid while the working set only grows (the
    positions of ``gram`` keep their meaning) and ``shift`` is unchanged (elastic net:
    ``α(1−r)`` changes with the strength, so the factor restarts at each strength).

    The solution is affine in the strength for a fixed support and signs,
    ``z = u − αr·v`` with ``(G_OO + shift·I)[u v] = [b_O sign_O]``: ``u`` and ``v``
    are kept too, so a polish at a new strength on the previous support and signs
    (the first candidate, most of the time) costs ``O(|S|)``.
    """

    def __init__(self, dtype: Any):
        self.order = np.zeros(0, np.intp)
        # L in the leading m×m block (column-major, its lower triangle is what LAPACK
        # reads): rows are appended in place; the capacity doubles when full
        self.buf = np.zeros((_BLOCK, _BLOCK), dtype, order="F")
        self.shift: Any = None
        self.last: Any = None  # (on, signs, b_on, [u v] on `on`) of the last solve
        self.potrf, self.trtrs = scipy.linalg.get_lapack_funcs(("potrf", "trtrs"), (self.buf,))

    def _reset(self) -> None:
        self.order = self.order[:0]
        self.last = None

    def _tri(self, rhs, trans):
        """``L⁻¹ rhs`` (``trans=0``) or ``L⁻ᵀ rhs`` (``trans=1``), on the leading block."""
        m = self.order.size
        out, info = self.trtrs(self.buf[:, :m], rhs, lower=1, trans=trans, lda=self.buf.shape[0])
        return out if info == 0 else None

    def solve(self, gram, b_on, signs, scale, on, shift):
        """``z`` with ``(G_SS + shift·I) z = b_S − scale·signs`` on the sorted index
        set ``on`` (``b_on``, ``signs``: on ``on``), or None when that matrix is not
        (numerically) positive definite."""
        if shift != self.shift:
            self.shift = shift
            self._reset()
        hit = self.last
        if (
            hit is not None
            and np.array_equal(on, hit[0])
            and np.array_equal(signs, hit[1])
            and np.array_equal(b_on, hit[2])
        ):  # the same support, signs and b_S as the last solve: z = u − scale·v
            return self._affine(hit[3], scale)
        inside = np.zeros(gram.shape[0], bool)
        inside[on] = True
        kept = inside[self.order]
        m = int(np.argmin(kept)) if not kept.all() else kept.size
        keep = self.order = self.order[:m]  # rows of a feature that left, and after: cut
        inside[keep] = False
        add = np.flatnonzero(inside)
        if add.size:
            block = gram[np.ix_(add, add)]
            if shift:
                block[np.diag_indices(add.size)] += shift
            end = m + add.size
            if end > self.buf.shape[0]:
                bigger = np.zeros((max(2 * self.buf.shape[0], end),) * 2, self.buf.dtype, "F")
                bigger[:m, :m] = self.buf[:m, :m]
                self.buf = bigger
            if m:
                cross = self._tri(np.asfortranarray(gram[np.ix_(keep, add)]), 0)  # L₁₁⁻¹G_OB
                if cross is None:
                    self._reset()
                    return None
                self.buf[m:end, :m] = cross.T
                block -= cross.T @ cross
            l22, info = self.potrf(block, lower=1, clean=1)
            if info != 0:
                self._reset()
                return None
            self.buf[m:end, m:end] = l22
            self.order = np.concatenate([keep, add])
        pos = np.searchsorted(on, self.order)  # `on` is sorted
        rhs = np.empty((pos.size, 2), self.buf.dtype, order="F")
        rhs[:, 0] = b_on[pos]
        rhs[:, 1] = signs[pos]
        half = self._tri(rhs, 0)
        sol = None if half is None else self._tri(half, 1)
        if sol is None:
            self._reset()
            return None
        uv = np.empty_like(sol)
        uv[pos] = sol
        self.last = (on, signs, b_on, uv)
        return self._affine(uv, scale)

    @staticmethod
    def _affine(uv, scale):
        z = uv[:, 0] - scale * uv[:, 1]
        return z if np.all(np.isfinite(z)) else None


def _polish(
    gram: np.ndarray,
    b: np.ndarray,
    alpha: Any,
    x: np.ndarray,
    r: float,
    err_of,
    factor: _Factor | None = None,
    eta: Any = None,
):
    """Best of a few active-set (Newton) candidates from ``x``, as ``(point, KKT error)``.

    The first candidate is the exact minimizer on the support ``S`` of ``x`` with its
    signs fixed, ``(G_SS + α(1−r)I) x_S = b_S − αr·sign(x_S)``; the next ones
    correct the active set as in feature-sign search (Lee et al. 2007): the
    coordinates whose sign the solve flipped leave, and the working-set features
    violating ``|c_j| <= αr`` join with the sign of ``c_j``. ``(None, inf)`` when
    no candidate is finite. With ``eta``, a candidate's error is
    ``_kkt(z, b − G z, α, η, r)`` from the gradient the join step forms anyway
    (what ``err_of`` computes in :func:`_solve_ws`); ``factor`` (a :class:`_Factor`)
    keeps the Cholesky factor from one call to the next.
    """
    on = np.flatnonzero(x)
    signs = np.sign(x[on])
    best, best_err = None, np.inf
    for _ in range(_POLISH_TRIES):
        if on.size == 0:
            cand = np.zeros_like(x)
        else:
            z = _solve_support(gram, b, alpha, on, signs, r, factor)
            if z is None:
                break
            cand = np.zeros_like(x)
            cand[on] = z
        c = b - gram @ cand
        e = err_of(cand) if eta is None else _kkt(cand, c, alpha, eta, r)
        if e < best_err:
            best, best_err = cand, e
        keep = np.sign(cand[on]) == signs
        violated = np.abs(c) > alpha * r
        violated[on] = False
        join = np.flatnonzero(violated)
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


def _solve_ws(
    gram, b, alpha, x, eta, tol, budget, r, cap, acceleration, restart, factor=None, grad=None
):
    """Working-set sub-problem: FISTA chunks, each followed by a polish.

    The polish (:func:`_polish`, exact minimizers for a corrected support and
    signs) replaces the point when it lowers the KKT error; FISTA's momentum
    carries over between chunks and restarts only when a polish is accepted.
    The chunk length doubles after each rejected polish (fewer host round trips
    on hard sub-problems). Sub-problems of at most ``_HOST_MAX`` features run
    FISTA in NumPy; larger ones run :func:`_fista_chunk`, padded to a size bucket.
    ``grad``, when the caller has it, is ``b − G x`` (saves a product); ``factor``:
    see :func:`_polish`. Returns ``(x, iterations)``.
    """
    dtype = x.dtype

    def err_of(z):
        return _kkt(z, b - gram @ z, alpha, eta, r)

    err = err_of(x) if grad is None else _kkt(x, grad, alpha, eta, r)
    xp, ep = _polish(gram, b, alpha, x, r, err_of, factor, eta)
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
        xp, ep = _polish(gram, b, alpha, x, r, err_of, factor, eta)
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
    tall = n >= p and p <= _FULL_GRAM_MAX
    full = xt = None
    if tall:
        # tall designs (n >= p) form the whole Gram matrix: it costs about what the
        # correlation products of a few strengths cost, and then each KKT check is
        # O(p·|W|). With an intercept, X_cᵀX_c/n = XᵀX/n − x̄x̄ᵀ and X_cᵀy_c = Xᵀy_c
        # (Σ y_c = 0): no centred copy of X, unless a mean dwarfs its feature's spread
        # (|x̄_j| > 3σ_j, where the subtraction would cost digits)
        full = X.T @ X / n
        b = X.T @ yc / n
        if opts.fit_intercept:
            if np.all(x_mean * x_mean <= 0.9 * np.diagonal(full)):
                full -= np.outer(x_mean, x_mean)
            else:
                xc = X - x_mean
                full = xc.T @ xc / n
                b = xc.T @ yc / n
    else:  # wide designs read X_c by feature (row-major X_cᵀ)
        xt = np.ascontiguousarray((X - x_mean if opts.fit_intercept else X).T)
        b = xt @ yc / n
    strengths, tol_abs = grid(b, strengths, tol, opts, dtype)
    max_iter = int(max_iter)
    fixed = np.asarray(learning_rate, dtype)[()] if opts.fixed_step else None
    cap = -(-p // _BLOCK) * _BLOCK if p > _BLOCK else p

    idx = np.zeros(0, np.intp)  # working set, in order of entry
    gbuf = np.zeros((min(p, 4 * _BLOCK),) * 2, dtype)  # G_WW in its leading block
    # X_cᵀ[idx] (wide designs) or the Gram rows G[idx] (tall ones) in its first rows
    xw = np.zeros((min(p, 4 * _BLOCK), p if tall else n), dtype)
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
    factor = _Factor(dtype)  # the polish's Cholesky factor, updated along the path
    with _one_blas_thread():
        for i, alpha in enumerate(strengths):
            want = np.abs(c) >= r * (2 * alpha - alpha_prev)
            k = 0
            while True:
                new = want & ~member
                if new.any():
                    idx, gbuf, xw, gram = _grow(
                        xt if full is None else full, idx, gbuf, xw, member, new, np.abs(c),
                        full is not None,
                    )  # fmt: skip
                    grown = idx.size - x.size
                    x = np.concatenate([x, np.zeros(grown, dtype)])
                    # the previous top eigenvector, zero on the new features: its Rayleigh
                    # quotient is the previous λ_max, a lower bound of the new one
                    pad = np.zeros(grown, dtype) if vec.any() else np.ones(grown, dtype)
                    vec = np.concatenate([vec, pad])
                    lip, vec = _max_eigenvalue(gram, vec)
                eta = fixed if fixed is not None else 1 / lip
                x, dk = _solve_ws(
                    gram, b[idx], alpha, x, eta, tol_abs, max_iter - k, r, cap,
                    opts.acceleration, opts.restart, factor, c[idx],
                )  # fmt: skip
                k += dk
                if full is None:
                    c = b - xt @ (x @ xw[: idx.size]) / n  # two products with X_c: O(np)
                else:
                    c = b - x @ xw[: idx.size]  # the rows G[idx] (G symmetric): O(p·|W|)
                want = (np.abs(c) > alpha * r) & ~member  # KKT on all features
                if not want.any() or k >= max_iter:
                    break
            coef[i, idx] = x
            w, iters[i] = coef[i], k
            ok[i] = _kkt(w, c, alpha, fixed if fixed is not None else 1 / lip, r) <= tol_abs
            pen = r * np.sum(np.abs(w)) + (1 - r) / 2 * (w @ w)
            obj[i] = const - 0.5 * (w @ (b + c)) + alpha * pen
            alpha_prev = alpha
    intercept = (y_mean - coef @ x_mean).astype(dtype)
    return strengths, coef, intercept, iters, ok, obj


def grid(corr, strengths, tol, opts, dtype):
    """The strengths (given, or scikit-learn's grid from ``α_max = max|corr|/r``) and
    the absolute tolerance ``tol·α_max``, as the traced routes form them."""
    r = opts.l1_ratio
    alpha_max = np.max(np.abs(corr)) / max(r, 1e-300) if r else np.inf
    if strengths is None:
        exponents = np.linspace(0.0, np.log10(opts.eps), opts.n_strengths, dtype=dtype)
        strengths = (alpha_max * 10.0**exponents).astype(dtype)
    scale = alpha_max if np.isfinite(alpha_max) and alpha_max > 0 else 1.0
    return np.asarray(strengths, dtype), float(tol) * scale


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


def _grow(source, idx, gbuf, rows, member, new, score, tall):
    """Adds the ``new`` features, highest ``score`` first, filled up to whole blocks
    with the next best features by ``score``; returns ``(idx, gbuf, rows, G_WW)``.

    ``gbuf`` holds ``G_WW`` in its leading ``idx.size`` square and ``rows`` one row
    per working-set feature; both grow by doubling. Wide designs (``source = X_cᵀ``,
    row-major): ``rows`` are ``X_cᵀ[idx]`` and a block ``B`` costs one product
    ``X_Bᵀ X_{W∪B}/n``, so only the working set's Gram matrix is ever formed (the
    correlations with all features come from two products with ``X_c``). Tall
    designs (``tall``, ``source = G``, the whole Gram matrix): ``rows`` are the Gram
    rows ``G[idx]`` (for the correlations ``b − wᵀG[idx]``) and ``G_BW`` is gathered
    from them.
    """
    add = _select(member, new, score)
    s = idx.size
    m = s + add.size
    if m > gbuf.shape[0]:
        size = max(2 * gbuf.shape[0], m)
        bigger = np.zeros((size, size), gbuf.dtype)
        bigger[:s, :s] = gbuf[:s, :s]
        gbuf = bigger
        more = np.zeros((size, rows.shape[1]), rows.dtype)
        more[:s] = rows[:s]
        rows = more
    idx = np.concatenate([idx, add])
    rows[s:m] = source[add]
    if tall:
        block = rows[s:m][:, idx]  # (count, m)
    else:
        block = rows[s:m] @ rows[:m].T / source.shape[1]
    gbuf[s:m, :m] = block
    gbuf[:s, s:m] = block[:, :s].T
    if tall:
        return idx, gbuf, rows, gbuf[:m, :m]  # a view: BLAS reads it with its leading dimension
    return idx, gbuf, rows, np.ascontiguousarray(gbuf[:m, :m])


def _max_eigenvalue(gram: np.ndarray, vec: np.ndarray) -> tuple[float, np.ndarray]:
    """``λ_max`` of the PSD ``gram`` by power iteration from ``vec`` (× 1.05, as
    ``_common.max_eigenvalue``: the Rayleigh quotient approaches it from below).

    ``vec`` is the previous working set's top eigenvector padded with zeros, so
    that a grown working set needs few iterations (a third of those from a padding
    with ones on the Gaussian 5000×500 path); returns ``(λ_max, vector)``.
    """
    vec = vec / np.linalg.norm(vec)
    lam = 0.0
    for _ in range(_POWER_STEPS):
        nxt = gram @ vec
        lam_new = float(vec @ nxt)
        norm = np.sqrt(nxt @ nxt)
        if norm == 0:
            return 1.0, vec
        vec = nxt / norm
        if abs(lam_new - lam) <= 1e-3 * lam_new:
            lam = lam_new
            break
        lam = lam_new
    return (1.05 * lam if lam > 0 else 1.0), vec
