"""Peer table for the solver (issue 15): 100-strength paths, agreement 1e-6, float64.

Cases: (i) Gaussian 5000×500, (ii) Gaussian 500×5000, (iii) Toeplitz ρ = 0.9
200×1000 (least-squares Lasso paths); (iv) breast_cancer L1 logistic path;
(v) digits multinomial (reported as unsupported by jaxreg's path for now).
Contenders, called as users call them: scikit-learn (``lasso_path``), celer
(``celer_path``), skglm (``AndersonCD().path``), jaxreg ``regularization_path``
(the default ``solver="auto"``, ``"cd"``, ``"fista"`` and ``"full"``; sequential and
vmap). Each runs at the loosest
tolerance of its ladder whose path agrees with the reference (scikit-learn at
``tol=1e-13``, or celer at 1e-14 with ``--ref celer``) to ``max|Δcoef| <= 1e-6``.

Warm time: median of interleaved later calls in this process. Cold time (jaxreg):
the first call in a fresh Python process (import excluded, compile included),
measured in a subprocess. celer/skglm are benchmark-only dependencies
(``pip install celer skglm``), never test dependencies.

Run: ``python benchmarks/bench_peers.py [--cases toeplitz,gauss] [--reps 3] [--no-cold]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import lasso_path  # noqa: E402

import jaxreg  # noqa: E402

TARGET = 1e-6
EPS = 1e-3
K = 100


def make_case(name):
    rng = np.random.default_rng(0)
    if name == "gauss":
        X = rng.normal(size=(5000, 500))
        w = np.zeros(500)
        w[:50] = rng.normal(size=50)
    elif name == "wide":
        X = rng.normal(size=(500, 5000))
        w = np.zeros(5000)
        w[:50] = rng.normal(size=50)
    elif name == "toeplitz":
        n, p, rho = 200, 1000, 0.9
        z = rng.normal(size=(n, p))
        X = z.copy()
        for j in range(1, p):  # AR(1) columns: corr(X_i, X_j) = rho^|i-j|
            X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho**2) * z[:, j]
        w = np.zeros(p)
        w[rng.choice(p, 20, replace=False)] = rng.normal(size=20)
    else:
        raise ValueError(name)
    y = X @ w + 0.5 * rng.normal(size=X.shape[0])
    X = X - X.mean(0)
    return np.ascontiguousarray(X), y - y.mean()


def alphas_of(X, y):
    amax = np.max(np.abs(X.T @ y)) / len(y)
    return amax * np.logspace(0, np.log10(EPS), K)


def sk_runner(X, y, tol):
    al = alphas_of(X, y)
    return lambda: lasso_path(X, y, alphas=al, tol=tol, max_iter=10**6)[1].T


def celer_runner(X, y, tol):
    from celer import celer_path

    al = alphas_of(X, y)
    return lambda: celer_path(X, y, "lasso", alphas=al, tol=tol, max_epochs=10**6)[1].T


def skglm_runner(X, y, tol):
    from skglm.datafits import Quadratic
    from skglm.penalties import L1
    from skglm.solvers import AndersonCD

    al = alphas_of(X, y)

    def run():
        solver = AndersonCD(tol=tol, fit_intercept=False, max_iter=1000, max_epochs=10**6)
        return np.asarray(solver.path(X, y, Quadratic(), L1(1.0), alphas=al)[1]).T

    return run


def jx_kwargs(tol, solver, method):
    return dict(
        fit_intercept=False, tol=tol, solver=solver, method=method, max_iter=100_000, eps=EPS
    )


def jx_runner(X, y, tol, solver, method):
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    kw = jx_kwargs(tol, solver, method)
    return lambda: np.asarray(jaxreg.regularization_path(Xj, yj, **kw).coef)


COLD = """
import time, warnings, jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, jaxreg
warnings.simplefilter("ignore")
d = np.load({path!r})
X, y = jnp.asarray(d["X"]), jnp.asarray(d["y"])
t0 = time.perf_counter()
np.asarray(jaxreg.regularization_path(X, y, **{kw!r}).coef)
print(time.perf_counter() - t0)
"""


def cold_time(X, y, kw, template=COLD):
    """Seconds of the first ``regularization_path(X, y, **kw)`` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, X=X, y=y)
        out = subprocess.run(
            [sys.executable, "-c", template.format(path=path, kw=kw)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    return float(out.stdout.strip().splitlines()[-1])


def pick(name, make, ladder, ref, post=np.asarray, slow=float("inf")):
    """Loosest tolerance within TARGET (or the first whose call takes over ``slow``
    seconds): (tol, runner, first-call seconds, max|Δ|); ``post`` maps a result to the
    coefficients compared with ``ref``."""
    for tol in ladder:
        run = make(tol)
        t0 = time.perf_counter()
        coef = post(run())
        first = time.perf_counter() - t0
        err = float(np.abs(coef - ref).max())
        print(f"  {name}: tol={tol:g} max|Δ|={err:.1e} first call {first:.2f}s", flush=True)
        if err <= TARGET or first > slow:
            return tol, run, first, err
    return tol, run, first, err


def warm_times(chosen, reps):
    """``{name: [seconds]}``: every chosen runner once per round, ``reps`` rounds."""
    times = {c: [] for c in chosen}
    for _ in range(reps):  # interleaved
        for cname, (_, _, run, _, _) in chosen.items():
            t0 = time.perf_counter()
            run()
            times[cname].append(time.perf_counter() - t0)
    return times


def print_table(rows):
    print()
    print("| case | solver | tol | max abs diff | warm median (s) | cold first call (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case, cname, tol, err, warm, cold in rows:
        print(f"| {case} | {cname} | {tol:g} | {err:.1e} | {warm:.3f} | {cold:.2f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="gauss,wide,toeplitz")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--contenders", default="sklearn,celer,skglm,auto,fista-vmap")
    parser.add_argument("--ref", default="sklearn", choices=["sklearn", "celer"])
    parser.add_argument("--no-cold", action="store_true")
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}"
    )
    wanted = args.contenders.split(",")
    rows = []
    for case in args.cases.split(","):
        X, y = make_case(case)
        t0 = time.perf_counter()
        if args.ref == "celer":
            ref = celer_runner(X, y, 1e-14)()
        else:
            ref = sk_runner(X, y, 1e-13)()
        print(
            f"{case} {X.shape}: reference ({args.ref}) {time.perf_counter() - t0:.1f}s", flush=True
        )
        jx_ladder = [1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11]
        all_c = {
            "sklearn lasso_path": ("sklearn", sk_runner, [1e-6, 1e-8, 1e-10, 1e-11, 1e-12]),
            "celer celer_path": ("celer", celer_runner, [1e-6, 1e-8, 1e-10, 1e-12]),
            "skglm AndersonCD.path": ("skglm", skglm_runner, [1e-6, 1e-8, 1e-10, 1e-12]),
            "jaxreg cd sequential": (
                "cd", lambda X, y, t: jx_runner(X, y, t, "cd", "sequential"), jx_ladder),
            "jaxreg cd vmap": ("cd-vmap", lambda X, y, t: jx_runner(X, y, t, "cd", "vmap"),
                               jx_ladder),
            "jaxreg full Gram sequential": (
                "full", lambda X, y, t: jx_runner(X, y, t, "full", "sequential"), jx_ladder),
            "jaxreg fista sequential": (
                "fista", lambda X, y, t: jx_runner(X, y, t, "fista", "sequential"), jx_ladder),
            "jaxreg default (auto) sequential": (
                "auto", lambda X, y, t: jx_runner(X, y, t, "auto", "sequential"), jx_ladder),
            "jaxreg fista vmap": (
                "fista-vmap", lambda X, y, t: jx_runner(X, y, t, "fista", "vmap"), jx_ladder),
            "jaxreg default (auto) vmap": (
                "auto-vmap", lambda X, y, t: jx_runner(X, y, t, "auto", "vmap"), jx_ladder),
        }  # fmt: skip
        chosen = {}
        for cname, (key, make, ladder) in all_c.items():
            if key in wanted:
                chosen[cname] = (
                    key,
                    *pick(cname, lambda t, m=make, X=X, y=y: m(X, y, t), ladder, ref),
                )
        times = warm_times(chosen, args.reps)
        for cname, (key, tol, _, first, err) in chosen.items():
            cold = first
            if cname.startswith("jaxreg") and not args.no_cold:
                solver, _, method = key.partition("-")
                method = method or "sequential"
                cold = cold_time(X, y, jx_kwargs(tol, solver, method))
            rows.append((case, cname, tol, err, float(np.median(times[cname])), cold))
            print(rows[-1], flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
