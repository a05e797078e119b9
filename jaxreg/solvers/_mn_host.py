"""Multinomial logistic paths driven from the host: proximal Newton on working sets.

``regularization_path(X, y, loss="multinomial")`` called from Python with concrete
data (L1 or elastic net, dense ``X``, ``method="sequential"``, no
``learning_rate``, CPU backend) runs this driver instead of the traced
proximal-gradient program. Per strength, warm-started from the previous one:

1. the working set: the support, the strong-rule candidates
   ``|∇_jk f| >= r(2α − α_prev)`` and every KKT violator (grown, never shrunk,
   within a strength);
2. a proximal Newton step on it (Lee, Sun & Saunders 2014; the scheme of glmnet
   and newGLMNET): the Hessian of the data loss on the working set,
   ``H_(jk),(lm) = (1/n) Σ_i x_ij x_il (p_ik δ_km − p_ik p_im)``, the unpenalized
   intercepts eliminated by their Schur complement (``H_bb`` is singular along
   the all-ones vector, the shift softmax ignores: its pseudo-inverse solves in
   the complement, where the gradient lies), and the L1 / elastic-net quadratic
   model solved by :func:`jaxreg.solvers._ws_host._solve_ws` (active-set polish,
   FISTA as the fallback);
3. a backtracking (Armijo) line search on the true objective.

The Hessian is reused while the steps it gives cut the KKT error at least
``1/_LAZY``-fold with a full step ("lazy" Hessian, as in :mod:`._newton`); it is
formed anew when the working set grows. The working set is ordered by class, so
the class-diagonal part ``X_Sᵀ diag(p_k) X_S`` is one product per class block and
the rank part one symmetric rank-n update.

The driver computes in float64 (a float32 input's results are returned in
float32): the line search and the KKT test then resolve what the data allows.
Why a host driver: the traced route compiled for seconds and then needed
thousands of proximal-gradient steps at the small-α end, where the problem is
nearly separable and badly conditioned (digits: 21 s warm, 28 s cold; here about
2 s, with nothing to compile; benchmarks/README.md, issue 15).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg  # a dependency of jax

from jaxreg.solvers import _ws_host

_LAZY = 0.25  # keep the Hessian while each full step cuts the KKT error at least 4-fold
_ARMIJO = 1e-4
_BACKTRACKS = 30
_INNER_MAX = 100_000  # FISTA steps per quadratic model (the polish solves most alone)


def _softmax_loss(X, W, b, Y):
    """``(P, mean cross-entropy)`` at ``Z = XW + b``."""
    Z = X @ W
    Z += b
    top = Z.max(axis=1, keepdims=True)
    E = np.exp(Z - top)
    tot = E.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(tot[:, 0]) + top[:, 0] - np.einsum("ik,ik->i", Y, Z))
    return E / tot, float(loss)


def _penalty(w: np.ndarray, alpha: float, r: float) -> float:
    return alpha * (r * float(np.abs(w).sum()) + (1 - r) / 2 * float(np.vdot(w, w)))


def _kkt(W, G, gb, alpha, r):
    """Sup-norm of the minimum-norm subgradient (intercept gradients included)."""
    lam = alpha * r
    Gf = G + alpha * (1 - r) * W
    on = np.where(W != 0, np.abs(Gf + lam * np.sign(W)), np.maximum(np.abs(Gf) - lam, 0))
    return max(float(on.max(initial=0.0)), float(np.abs(gb).max(initial=0.0)))


def _gradients(X, P, Y, fit):
    """``(∇_W, ∇_b)`` of the mean cross-entropy (``∇_b = 0`` without an intercept)."""
    R = P - Y
    gb = R.mean(axis=0) if fit else np.zeros(R.shape[1])
    return X.T @ R / X.shape[0], gb


def _hessian(XF, P, ja, ka, K):
    """Blocks of the data loss's Hessian on the working set ``(ja, ka)`` (features,
    classes; sorted by class): ``(H_ww, H_wb, H_bb)``."""
    n = XF.shape[0]
    Hbb = (np.diag(P.sum(axis=0)) - P.T @ P) / n
    if ja.size == 0:
        return np.zeros((0, 0)), np.zeros((0, K)), Hbb
    V = XF[:, ja]  # Fortran order: a column gather
    U = np.asfortranarray(V * P[:, ka])
    gemm_t = scipy.linalg.blas.get_blas_funcs("syrk", (U,))
    H = gemm_t(-1.0, U, trans=1, lower=0)  # −UᵀU, upper triangle
    bounds = np.searchsorted(ka, np.arange(K + 1))
    for k in range(K):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            H[lo:hi, lo:hi] += V[:, lo:hi].T @ U[:, lo:hi]  # Σ_i x_ij x_il p_ik
    H = np.triu(H) + np.triu(H, 1).T
    H /= n
    Hwb = -(U.T @ P)
    Hwb[np.arange(ja.size), ka] += U.sum(axis=0)
    Hwb /= n
    return H, Hwb, Hbb


def mn_path(X, Y, strengths, tol, max_iter, opts):
    """Sequential multinomial L1 / elastic-net path on concrete data (module doc).

    ``Y``: one-hot ``(n, K)``. Same problem, grid and outputs as the traced route
    (``_path._path_data``): returns ``(strengths, coef (S, p, K), intercept (S, K),
    iterations, converged, objective)`` as NumPy arrays in ``X``'s dtype;
    ``iterations`` counts Newton steps, ``converged`` is the minimum-norm
    subgradient ``<= tol·α_max``.
    """
    with _ws_host._one_blas_thread():
        return _mn_path(X, Y, strengths, tol, max_iter, opts)


def _mn_path(X, Y, strengths, tol, max_iter, opts):
    out_dtype = np.dtype(X.dtype)
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    n, p = X.shape
    K = Y.shape[1]
    r, fit = float(opts.l1_ratio), bool(opts.fit_intercept)
    y_bar = Y.mean(axis=0)
    if fit:
        tiny = np.finfo(out_dtype).eps  # as the traced route
        log_freq = np.log(np.clip(y_bar, tiny, 1 - tiny))
        b = log_freq - log_freq.mean()
        corr = X.T @ (Y - y_bar) / n
    else:
        b = np.zeros(K)
        corr = X.T @ (Y - 1.0 / K) / n
    strengths, tol_abs = _ws_host.grid(corr, strengths, tol, opts, out_dtype)
    max_iter = int(max_iter)
    XF = np.asfortranarray(X)

    num = strengths.shape[0]
    coef = np.zeros((num, p, K))
    intercept = np.zeros((num, K))
    iters = np.zeros(num, np.int32)
    ok = np.zeros(num, bool)
    obj = np.zeros(num)
    W = np.zeros((p, K))
    P, loss = _softmax_loss(X, W, b, Y)
    alpha_prev = float(strengths[0])
    cache: dict[str, Any] = {}
    G, gb = _gradients(X, P, Y, fit)  # kept up to date with W, b (no α in them)
    for i, alpha in enumerate(strengths.astype(np.float64)):
        err = _kkt(W, G, gb, alpha, r)
        ws = (W != 0) | (np.abs(G) >= r * (2 * alpha - alpha_prev))
        refresh, k = True, 0
        while err > tol_abs and k < max_iter:
            grown = ws | (np.abs(G + alpha * (1 - r) * W) > alpha * r)
            refresh = refresh or grown.sum() != ws.sum()  # a new Hessian on a grown set
            ws = grown
            ka, ja = np.nonzero(ws.T)  # class-major: same-class blocks contiguous
            flat = ja * K + ka
            fresh = refresh
            if refresh:
                cache = _model(XF, P, ja, ka, K, fit)
            S, Hwb, Hbp = cache["S"], cache["Hwb"], cache["Hbp"]
            gw = G.reshape(-1)[flat]
            h = gw - Hwb @ (Hbp @ gb) if fit else gw
            w = W.reshape(-1)[flat]
            xs, _ = _ws_host._solve_ws(
                S, S @ w - h, alpha, w.copy(), 1 / cache["lip"],
                max(0.1 * tol_abs, 1e-3 * err), _INNER_MAX, r, -(-flat.size // 16) * 16,
                True, "gradient",
            )  # fmt: skip
            dw = xs - w
            db = -Hbp @ (gb + Hwb.T @ dw) if fit else np.zeros(K)
            f0 = loss + _penalty(w, alpha, r)
            delta = gw @ dw + gb @ db + _penalty(xs, alpha, r) - _penalty(w, alpha, r)
            slack = 10 * np.finfo(np.float64).eps * max(abs(f0), 1.0)
            t, accepted = 1.0, False
            for _ in range(_BACKTRACKS):
                Wn = W.copy()
                Wn.reshape(-1)[flat] = w + t * dw
                bn = b + t * db
                Pn, ln = _softmax_loss(X, Wn, bn, Y)
                if ln + _penalty(Wn, alpha, r) <= f0 + _ARMIJO * t * delta + slack:
                    accepted = True
                    break
                t /= 2
            if not accepted:
                if fresh:  # no decrease with a fresh Hessian: rounding, stop here
                    break
                refresh = True  # a stale Hessian's direction: form it anew, retry
                continue
            W, b, P, loss = Wn, bn - bn.mean(), Pn, ln
            G, gb = _gradients(X, P, Y, fit)
            err_new = _kkt(W, G, gb, alpha, r)
            refresh = not (err_new <= _LAZY * err) or t < 1
            err = err_new
            k += 1
        coef[i], intercept[i], iters[i] = W, b, k
        ok[i] = err <= tol_abs
        obj[i] = loss + _penalty(W, alpha, r)
        alpha_prev = alpha
    cast = [a.astype(out_dtype) for a in (coef, intercept, obj)]
    return strengths, cast[0], cast[1], iters, ok, cast[2]


def _model(XF, P, ja, ka, K, fit):
    """The quadratic model's matrix on the working set: ``S`` (the Hessian, intercepts
    eliminated by their Schur complement when ``fit``), ``H_wb``, ``H_bb⁺`` and
    ``λ_max(S)`` (FISTA's step)."""
    H, Hwb, Hbb = _hessian(XF, P, ja, ka, K)
    if fit:
        # H_bb⁺ = (H_bb + 11ᵀ/K)⁻¹ − 11ᵀ/K: 1 spans H_bb's null space exactly, where a
        # pseudo-inverse's cut-off could take a rounding-sized eigenvalue for a real one
        ones = np.full((K, K), 1.0 / K)
        Hbp = np.linalg.inv(Hbb + ones) - ones
        S = H - (Hwb @ Hbp) @ Hwb.T
    else:
        Hbp = np.zeros((K, K))
        Hwb = np.zeros((ja.size, K))
        S = H
    S = (S + S.T) / 2
    diag = S.diagonal()
    S[np.diag_indices_from(S)] += 1e-10 * max(float(diag.max(initial=0.0)), 1e-300)
    lip, _ = _ws_host._max_eigenvalue(S, np.ones(ja.size))
    return {"S": S, "Hwb": Hwb, "Hbp": Hbp, "lip": lip}
