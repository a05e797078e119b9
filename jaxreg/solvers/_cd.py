"""Cyclic coordinate descent with Anderson extrapolation on a working set (least squares).

The inner solver of ``regularization_path(..., solver="cd")``: the working-set
machinery (strong rules, KKT checks on all features, Gram rows on demand) is the
one of :mod:`jaxreg.solvers._path`; only the sub-problem solver differs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

_EPOCHS = 5  # CD epochs between two extrapolation / polishing attempts (Anderson depth)


def _objective(gram, b, alpha, r, w):
    pen = r * jnp.sum(jnp.abs(w)) + (1 - r) / 2 * jnp.vdot(w, w)
    return 0.5 * jnp.vdot(w, gram @ w) - jnp.vdot(b, w) + alpha * pen


def _epoch(gram, diag, alpha, r, w, q, size):
    """One cyclic pass over the first ``size`` coordinates; ``q = b − Gw`` is kept exact.

    Coordinate ``j``: ``w_j ← S_{αr/G_jj}(w_j + q_j/G_jj) / (1 + α(1−r)/G_jj)``,
    then ``q ← q − G_j·Δw_j`` (one row of ``G``: ``O(s)`` per coordinate).
    """

    def update(j, carry):
        w, q = carry
        gjj = diag[j]
        ok = gjj > 0
        inv = 1 / jnp.where(ok, gjj, 1)
        z = w[j] + q[j] * inv
        thr = alpha * r * inv
        new = jnp.sign(z) * jnp.maximum(jnp.abs(z) - thr, 0) / (1 + alpha * (1 - r) * inv)
        new = jnp.where(ok, new, 0)
        q = q - gram[j] * (new - w[j])
        return w.at[j].set(new), q

    return jax.lax.fori_loop(0, size, update, (w, q))


def _anderson(ws: jax.Array) -> jax.Array:
    """Anderson extrapolation of the iterates ``ws`` (``(K+1, s)``, oldest first).

    ``U = diff(ws)``; ``c = (UUᵀ)⁻¹1 / 1ᵀ(UUᵀ)⁻¹1``; returns ``Σ c_i ws[i+1]``
    (Anderson 1965; Bertrand & Massias 2021). NaN when ``UUᵀ`` is singular.
    """
    u = jnp.diff(ws, axis=0)
    uu = u @ u.T
    uu = uu + 1e-12 * jnp.trace(uu) * jnp.eye(uu.shape[0], dtype=uu.dtype) / uu.shape[0]
    z = jnp.linalg.solve(uu, jnp.ones((uu.shape[0],), uu.dtype))
    coef = z / jnp.sum(z)
    return coef @ ws[1:]


def cd_solve(
    gram: jax.Array,
    b: jax.Array,
    alpha: jax.Array,
    x: jax.Array,
    size: jax.Array,
    tol: jax.Array,
    max_iter: jax.Array,
    r: float,
    error: Callable,
    polish: Callable,
):
    """Coordinate descent on ``½xᵀGx − bᵀx + α(r‖x‖₁ + (1−r)/2‖x‖²)`` from ``x``.

    Rounds of ``_EPOCHS`` cyclic epochs; after each round the Anderson
    extrapolation of the round's iterates replaces the point when it lowers the
    objective (Bertrand & Massias 2021, as in skglm); when the round left the
    support unchanged, the active-set polish (exact minimizer for that support
    and signs) replaces it when it lowers the KKT error ``error(x)``. Stops when
    ``error(x) <= tol`` or after ``max_iter`` epochs.
    Returns ``(x, epochs, error)``.
    """
    diag = jnp.diagonal(gram)

    def cond(s):
        _, err, k = s
        return (err > tol) & (k < max_iter)

    def body(s):
        x, _, k = s
        q = b - gram @ x

        def one(carry, _):
            w, q = carry
            w, q = _epoch(gram, diag, alpha, r, w, q, size)
            return (w, q), w

        (w, q), hist = jax.lax.scan(one, (x, q), None, length=_EPOCHS)
        hist = jnp.concatenate([x[None], hist], axis=0)
        xa = _anderson(hist)
        fa = _objective(gram, b, alpha, r, xa)
        fw = _objective(gram, b, alpha, r, w)
        w = jnp.where(fa < fw, xa, w)  # False for NaN
        err = error(w)
        stable = jnp.all((x != 0) == (w != 0))  # support settled: try the exact answer

        def try_polish(w):
            xp = polish(w)
            ep = error(xp)
            better = ep < err  # False for NaN (singular G_SS)
            return jnp.where(better, xp, w), jnp.where(better, ep, err)

        w, err = jax.lax.cond(stable & (err > tol), try_polish, lambda w: (w, err), w)
        return w, err, k + _EPOCHS

    init = (x, error(x), jnp.zeros((), jnp.int32))
    # the warm start itself may be polished to the answer: try once first
    xp = polish(x)
    ep = error(xp)
    better = ep < init[1]
    init = (jnp.where(better, xp, x), jnp.where(better, ep, init[1]), init[2])
    x, err, k = jax.lax.while_loop(cond, body, init)
    return x, k, err
