"""Peer table for classification paths (issue 15, rows iv and v): 100 strengths, float64.

Cases (features standardized with ``StandardScaler``, as users do):

- ``bc``: (iv) breast_cancer (569×30) L1 logistic path **without intercept**: the
  only form every peer solves identically (celer's ``pb="logreg"`` fits no
  intercept; liblinear penalizes its intercept). Objective: mean log-loss +
  ``α‖w‖₁``; scikit-learn's ``C = 1/(α·n)``, celer's ``alpha = α·n`` (celer sums the
  log-loss), skglm (``AndersonCD().path``; its ``ProxNewton`` has no ``path``) with the
  ``Logistic`` datafit is the mean (``alpha = α``), labels ±1.
- ``bci``: the same with an (unpenalized) intercept: sklearn saga, skglm, jaxreg.
- ``digits``: (v) digits (1797×64, 10 classes) multinomial L1 path with intercept:
  scikit-learn saga and jaxreg (skglm has no multinomial datafit, celer's
  multiclass logistic is one-vs-rest: a different problem). The multinomial
  coefficients are defined up to a shift per feature row where the L1 penalty is
  flat in it, so agreement is measured on the class-centred coefficients
  ``W − mean_k W`` (the identifiable part).

Grid: ``α_max·logspace(0, −3, 100)``, ``α_max`` the smallest all-zero strength.
Reference: jaxreg's proximal-Newton path at ``tol=1e-13`` (relative KKT error),
cross-checked at a few strengths (grid indices 10, 25, 40: saga converges there;
at the small-α end it does not within 1e5 epochs) against scikit-learn at
``tol=1e-12`` (saga; liblinear as well for ``bc``); the cross-check's max|Δ| is
printed. scikit-learn contenders run with ``max_iter=2000`` per strength. Each
contender runs at the loosest tolerance of its ladder whose whole path agrees
with the reference to ``max|Δcoef| <= 1e-6``.

Warm time: median of interleaved later calls in this process. Cold time (jaxreg):
first call in a fresh Python process (import excluded, compile included), in a
subprocess; for peers the first call of this process (numba compile for skglm).

Run: ``python benchmarks/bench_peers_clf.py [--cases bc,bci,digits] [--reps 3] [--no-cold]``.
celer and skglm are benchmark-only dependencies (``pip install celer skglm``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from bench_peers import cold_time, pick, print_table, warm_times  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import jaxreg  # noqa: E402

TARGET = 1e-6
EPS = 1e-3
K = 100
SLOW = 120.0  # a ladder stops at a tolerance whose call takes longer than this (s)
SK_MAX_ITER = 2000  # scikit-learn epochs per strength in the ladders (saga needs ~4000
# at tol=1e-12 and C=0.1, and does not converge at the small-α end of the grid)


def make_case(name):
    loader = load_digits if name == "digits" else load_breast_cancer
    X, y = loader(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    loss = "multinomial" if name == "digits" else "logistic"
    fit = name != "bc"
    return np.ascontiguousarray(X), y, loss, fit


def alphas_of(X, y, loss, fit):
    n = len(y)
    if loss == "multinomial":
        Y = np.eye(y.max() + 1)[y]
        amax = np.max(np.abs(X.T @ (Y - Y.mean(0)))) / n
    else:
        amax = np.max(np.abs(X.T @ (y - (y.mean() if fit else 0.5)))) / n
    return amax * np.logspace(0, np.log10(EPS), K)


def centred(coef):
    coef = np.asarray(coef)
    return coef - coef.mean(-1, keepdims=True) if coef.ndim == 3 else coef


def sk_runner(X, y, loss, fit, tol, solver, idx=None, max_iter=SK_MAX_ITER):
    """scikit-learn as users run a path: one estimator, warm-started along the grid
    (liblinear ignores ``warm_start``)."""
    al = alphas_of(X, y, loss, fit)
    n = len(y)
    sel = range(K) if idx is None else idx

    def run():
        model = LogisticRegression(
            l1_ratio=1.0, solver=solver, tol=tol, max_iter=max_iter, fit_intercept=fit,
            warm_start=True,
        )  # fmt: skip
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in sel:
                model.set_params(C=1 / (al[k] * n))
                model.fit(X, y)
                out.append(model.coef_.T.copy() if loss == "multinomial" else model.coef_[0])
        return np.array(out)

    return run


def celer_runner(X, y, loss, fit, tol):
    from celer import celer_path

    al = alphas_of(X, y, loss, fit)
    ys = 2.0 * y - 1
    n = len(y)
    return lambda: celer_path(X, ys, "logreg", alphas=al * n, tol=tol, max_epochs=10**6)[1].T


def skglm_runner(X, y, loss, fit, tol):
    from skglm.datafits import Logistic
    from skglm.penalties import L1
    from skglm.solvers import AndersonCD

    al = alphas_of(X, y, loss, fit)
    ys = 2.0 * y - 1

    def run():
        solver = AndersonCD(tol=tol, fit_intercept=fit, max_iter=1000, max_epochs=10**6)
        coefs = np.asarray(solver.path(X, ys, Logistic(), L1(1.0), alphas=al)[1]).T
        return coefs[:, : X.shape[1]]

    return run


def jx_kwargs(loss, fit, tol, method):
    return dict(loss=loss, fit_intercept=fit, tol=tol, method=method, max_iter=100_000, eps=EPS)


def jx_runner(X, y, loss, fit, tol, method):
    Xj = jnp.asarray(X)
    kw = jx_kwargs(loss, fit, tol, method)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(jaxreg.regularization_path(Xj, y, **kw).coef)

    return run


COLD = """
import time, warnings, jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, jaxreg
warnings.simplefilter("ignore")
d = np.load({path!r})
X, y = jnp.asarray(d["X"]), d["y"]
t0 = time.perf_counter()
np.asarray(jaxreg.regularization_path(X, y, **{kw!r}).coef)
print(time.perf_counter() - t0)
"""


def contenders(case, X, y, loss, fit, ladder, jx_ladder):
    """``{name: (key, applies, make(tol), tolerance ladder)}`` for one case."""
    binary = loss == "logistic"
    return {
        "sklearn liblinear": (
            "liblinear", case == "bc",
            lambda t: sk_runner(X, y, loss, fit, t, "liblinear"), ladder),
        "sklearn saga (warm_start)": (
            "saga", True, lambda t: sk_runner(X, y, loss, fit, t, "saga"), ladder),
        "celer celer_path": (
            "celer", case == "bc", lambda t: celer_runner(X, y, loss, fit, t), ladder),
        "skglm AndersonCD.path": (
            "skglm", binary, lambda t: skglm_runner(X, y, loss, fit, t), ladder),
        "jaxreg sequential": (
            "jaxreg", True, lambda t: jx_runner(X, y, loss, fit, t, "sequential"),
            jx_ladder),
        "jaxreg vmap": (
            "jaxreg-vmap", True, lambda t: jx_runner(X, y, loss, fit, t, "vmap"),
            jx_ladder),
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="bc,digits")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--contenders", default="liblinear,saga,celer,skglm,jaxreg,jaxreg-vmap"
    )  # fmt: skip
    parser.add_argument(
        "--check", default="10,25,40", help="grid indices cross-checked (saga converges there)"
    )
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--ladder", default="1e-4,1e-6,1e-8,1e-10,1e-12", help="peers' tols")
    parser.add_argument("--jx-ladder", default="1e-6,1e-7,1e-8,1e-9,1e-10,1e-11,1e-12")
    args = parser.parse_args()
    sk_ladder = [float(t) for t in args.ladder.split(",")]
    jx_ladder = [float(t) for t in args.jx_ladder.split(",")]
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}"
    )
    wanted = args.contenders.split(",")
    check = [int(i) for i in args.check.split(",") if i]
    rows = []
    for case in args.cases.split(","):
        X, y, loss, fit = make_case(case)
        t0 = time.perf_counter()
        ref = centred(jx_runner(X, y, loss, fit, 1e-13, "sequential")())
        print(f"{case} {X.shape}: reference {time.perf_counter() - t0:.1f}s", flush=True)
        for solver in ["saga"] + (["liblinear"] if case == "bc" else []):
            if check:
                t0 = time.perf_counter()
                sk = centred(sk_runner(X, y, loss, fit, 1e-12, solver, check, 10**5)())
                err = np.abs(sk - ref[check]).max()
                print(
                    f"  cross-check sklearn {solver} tol=1e-12 at grid {check}: "
                    f"max|Δ|={err:.1e} ({time.perf_counter() - t0:.1f}s)",
                    flush=True,
                )
        all_c = contenders(case, X, y, loss, fit, sk_ladder, jx_ladder)
        chosen = {}
        for cname, (key, applies, make, lad) in all_c.items():
            if key in wanted and applies:
                chosen[cname] = (key, *pick(cname, make, lad, ref, post=centred, slow=SLOW))
        times = warm_times(chosen, args.reps)
        for cname, (key, tol, _, first, err) in chosen.items():
            cold = first
            if key.startswith("jaxreg") and not args.no_cold:
                method = "vmap" if key == "jaxreg-vmap" else "sequential"
                cold = cold_time(X, y, jx_kwargs(loss, fit, tol, method), template=COLD)
            rows.append((case, cname, tol, err, float(np.median(times[cname])), cold))
            print(rows[-1], f"load {os.getloadavg()[0]:.1f}", flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
