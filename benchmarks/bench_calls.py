"""Cold (fresh process, first call, compile included) and warm (later calls) user calls.

``regularization_path(X, y)`` and ``proximal_gradient(fun, ...)`` called eagerly from
Python as a user would, float64, on diabetes (442×10), make_regression 5000×500, and the
peer table's (ii) Gaussian 500×5000 and (iii) Toeplitz ρ = 0.9 200×1000 designs
(``bench_peers.make_case``; all defaults, so the intercept is fitted).
Run: ``python benchmarks/bench_calls.py [--reps 5]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SNIPPET = r"""
import sys, time, warnings
t_import = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np
from sklearn.datasets import load_diabetes, make_regression
import jaxreg
warnings.simplefilter("ignore")
X1, y1 = load_diabetes(return_X_y=True)
X2, y2 = make_regression(n_samples=5000, n_features=500, n_informative=50, noise=1.0,
                         random_state=0)
sys.path.insert(0, {bench_dir!r})
from bench_peers import make_case
X3, y3 = make_case("wide")
X4, y4 = make_case("toeplitz")
fun = lambda w, X, y: 0.5 * jnp.mean((y - X @ w) ** 2)
Xd, yd = jnp.asarray(X1 - X1.mean(0)), jnp.asarray(y1 - y1.mean())
cases = {
    "regularization_path diabetes": lambda: jaxreg.regularization_path(X1, y1).coef,
    "regularization_path 5000x500": lambda: jaxreg.regularization_path(X2, y2).coef,
    "regularization_path (ii) 500x5000": lambda: jaxreg.regularization_path(X3, y3).coef,
    "regularization_path (iii) Toeplitz 200x1000": lambda: jaxreg.regularization_path(X4, y4).coef,
    "proximal_gradient diabetes (README call)": lambda: jaxreg.proximal_gradient(
        fun, jnp.zeros(10), Xd, yd, prox="l1", strength=0.1, tol=1e-10).params,
}
for name, call in cases.items():
    t0 = time.perf_counter(); np.asarray(call()); cold = time.perf_counter() - t0
    warm = []
    for _ in range({reps}):
        t0 = time.perf_counter(); np.asarray(call()); warm.append(time.perf_counter() - t0)
    print(f"| {name} | {cold:.2f} | {np.median(warm) * 1e3:.1f} |")
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}")
    print("| call | cold: first call in a fresh process (s) | warm: median later call (ms) |")
    print("| --- | --- | --- |")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SNIPPET.replace("{reps}", str(args.reps)).replace(
                "{bench_dir!r}", repr(os.path.dirname(os.path.abspath(__file__)))
            ),
        ],
        capture_output=True,
        text=True,
    )
    print(out.stdout, out.stderr[-2000:], sep="")


if __name__ == "__main__":
    main()
