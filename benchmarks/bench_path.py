"""Time to a full 100-alpha Lasso path at 1e-6 agreement: jaxreg vs scikit-learn.

For each problem (diabetes 442×10; synthetic 5000×500 from ``make_regression`` with
unit-norm columns) a reference path is computed with scikit-learn's ``lasso_path`` at
``tol=1e-13``. Each contender then runs at the loosest tolerance of a ladder whose
path agrees with the reference to ``max|Δcoef| <= 1e-6`` at all 100 alphas, and is
timed: interleaved repetitions, medians. jaxreg's compile time (first call minus the
median run) is reported separately: a user compiles once for many paths. jaxreg runs
with working sets (the default: strong rules, Gram rows on demand, active-set polish)
and, for comparison, on the full Gram matrix (``working_set=False``).

Run: ``python benchmarks/bench_path.py [--reps 7] [--problems diabetes,synthetic]``.
Float64 throughout (``jax_enable_x64``).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_diabetes, make_regression  # noqa: E402
from sklearn.linear_model import lasso_path  # noqa: E402

import jaxreg  # noqa: E402

TARGET = 1e-6


def problems(names):
    out = {}
    if "diabetes" in names:
        X, y = load_diabetes(return_X_y=True)
        out["diabetes 442×10"] = (X, y - y.mean())
    if "synthetic" in names:
        X, y = make_regression(
            n_samples=5000, n_features=500, n_informative=50, noise=1.0, random_state=0
        )
        X = X - X.mean(0)
        X /= np.linalg.norm(X, axis=0)
        out["synthetic 5000×500"] = (X, y - y.mean())
    return out


def sk_runner(X, y, tol):
    return lambda: lasso_path(X, y, tol=tol, max_iter=10**6)[1].T


def jx_runner(X, y, tol, method, working_set=True):
    fn = jax.jit(
        lambda X, y: (
            jaxreg.regularization_path(
                X,
                y,
                fit_intercept=False,
                method=method,
                tol=tol,
                max_iter=100_000,
                working_set=working_set,
            ).coef
        )
    )
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    return lambda: fn(Xj, yj).block_until_ready()


def pick(name, make, ladder, ref):
    """Loosest tolerance whose path is within TARGET; returns (tol, runner, first_s, err)."""
    for tol in ladder:
        run = make(tol)
        t0 = time.perf_counter()
        coef = np.asarray(run())
        first = time.perf_counter() - t0
        err = float(np.abs(coef - ref).max())
        if err <= TARGET:
            return tol, run, first, err
        print(f"  {name}: tol={tol:g} gives max|Δ|={err:.1e} > {TARGET:g}")
    return tol, run, first, err


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--problems", default="diabetes,synthetic")
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, jax {jax.__version__}, "
        f"backend {jax.default_backend()}, {time.strftime('%Y-%m-%d')}"
    )
    rows = []
    for pname, (X, y) in problems(args.problems.split(",")).items():
        ref = lasso_path(X, y, tol=1e-13, max_iter=10**7)[1].T
        contenders = {
            "sklearn lasso_path": (
                lambda t, X=X, y=y: sk_runner(X, y, t),
                [1e-4, 1e-6, 1e-8, 1e-10, 1e-11, 1e-12],
            ),
            "jaxreg sequential (scan, warm start)": (
                lambda t, X=X, y=y: jx_runner(X, y, t, "sequential"),
                [1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13],
            ),
            "jaxreg vmap (all alphas at once)": (
                lambda t, X=X, y=y: jx_runner(X, y, t, "vmap"),
                [1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13],
            ),
            "jaxreg sequential, full Gram (working_set=False)": (
                lambda t, X=X, y=y: jx_runner(X, y, t, "sequential", False),
                [1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13],
            ),
        }
        chosen = {}
        for cname, (make, ladder) in contenders.items():
            chosen[cname] = pick(cname, make, ladder, ref)
        times = {c: [] for c in chosen}
        for _ in range(args.reps):  # interleaved repetitions
            for cname, (_, run, _, _) in chosen.items():
                t0 = time.perf_counter()
                run()
                times[cname].append(time.perf_counter() - t0)
        for cname, (tol, _, first, err) in chosen.items():
            med = float(np.median(times[cname]))
            compile_s = max(first - med, 0.0) if cname.startswith("jaxreg") else float("nan")
            rows.append((pname, cname, tol, err, med, compile_s))
    print()
    print("| problem | method | tol | max abs diff vs reference | median time (s) | compile (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for pname, cname, tol, err, med, comp in rows:
        comp_s = "–" if np.isnan(comp) else f"{comp:.2f}"
        print(f"| {pname} | {cname} | {tol:g} | {err:.1e} | {med:.4f} | {comp_s} |")


if __name__ == "__main__":
    main()
