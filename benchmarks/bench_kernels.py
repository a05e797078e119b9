"""Issue 13: `group_lasso_prox` and `ftrl` against `optax.adam`, before and after.

"before" rows re-create the formulas of the previous implementation inline (the
group lasso as one independent ``prox(p + u) - p`` per leaf with the plain
``√Σx²`` norm; FTRL with ``n'`` shared by ``z`` and ``quad`` behind an optimization
barrier), so before/after/adam run interleaved in ONE process: compare within a table.
Each row: jitted, donated step (update + ``optax.apply_updates``), median ms, ratio to
``optax.adam``, XLA temp bytes (``memory_analysis``), HLO copies, minor page faults
per step, compile seconds, and "passes": XLA's own estimate of the bytes the compiled
step reads and writes (``cost_analysis()["bytes accessed"]``) over the bytes of the
parameters, i.e. how many times the step streams an array of the parameters' size
(``optax.adam``: 10). Unlike the wall-clock ratio it is the same on every run.

Usage::

    python benchmarks/bench_kernels.py                       # 1M/10 and 10M/10
    python benchmarks/bench_kernels.py --cases 1000000:500 --rounds 5
    python benchmarks/bench_kernels.py --only compile --compile-leaves 500
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _steps import bench_steps, donated_step, ftrl_formula, leafwise, tree

import jaxreg

LR, LAM = 1e-3, 1e-4


def _group_before(u, p):
    """The previous `chain(adam, group_lasso_prox)` leaf update (t = LR*LAM)."""
    x = p + u
    norm = jnp.sqrt(jnp.sum(x * x, axis=0, keepdims=True))
    safe = jnp.where(norm == 0, jnp.ones_like(norm), norm)
    level = jnp.float32(LR * LAM) * jnp.sqrt(jnp.float32(x.shape[0]))
    scale = jnp.where(norm == 0, jnp.zeros_like(norm), jnp.maximum(1 - level / safe, 0))
    return x * scale - p


def bench_compile(n_leaves, reps):
    """Compile time (lower + compile) of the jitted donated step, ``reps`` interleaved."""
    p = tree(n_leaves * 2000, n_leaves, 0, cols=20)
    txs = {
        "optax.adam": optax.adam(LR),
        "optax.adamw": optax.adamw(LR, weight_decay=LAM),
        "adam + l1_prox": optax.chain(optax.adam(LR), jaxreg.l1_prox(LAM, learning_rate=LR)),
        "adam + weight_decay": optax.chain(
            optax.adam(LR), jaxreg.weight_decay(LAM, learning_rate=LR)
        ),
        "regularized(adam, l1)": jaxreg.regularized(optax.adam, LR, l1=LAM),
        "adam + group_lasso_prox (after)": optax.chain(
            optax.adam(LR), jaxreg.group_lasso_prox(LAM, learning_rate=LR)
        ),
        "adam + group lasso (before)": optax.chain(optax.adam(LR), leafwise(_group_before)),
        "jaxreg.ftrl (after)": jaxreg.ftrl(LR, l1=LAM, l2=LAM),
        "ftrl (before)": ftrl_formula(LR, LAM),
    }
    times = {k: [] for k in txs}
    names = list(txs)
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            tx = txs[name]
            t0 = time.perf_counter()
            donated_step(tx).lower(p, tx.init(p), p).compile()
            times[name].append(time.perf_counter() - t0)
    base = float(np.median(times["optax.adam"]))
    print(f"\n### compile time, {n_leaves} leaves of (100, 20), median of {reps}")
    print("| step | compile s | vs adam |")
    print("| --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {np.median(ts):.2f} | {np.median(ts) / base:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["group", "ftrl"])
    parser.add_argument("--cases", nargs="*", default=["1000000:10", "10000000:10"])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compile-leaves", type=int, default=500)
    parser.add_argument("--compile-reps", type=int, default=3)
    args = parser.parse_args()
    print(
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC jax {jax.__version__} "
        f"optax {optax.__version__} {jax.devices()[0].platform} ({platform.machine()})"
    )
    if "compile" in args.only:
        bench_compile(args.compile_leaves, args.compile_reps)
    for case in args.cases:
        n, leaves = map(int, case.split(":"))
        if "group" in args.only:
            print("\n### adam + group_lasso_prox")
            txs = {
                "optax.adam": optax.adam(LR),
                "adam + group_lasso_prox (after)": optax.chain(
                    optax.adam(LR), jaxreg.group_lasso_prox(LAM, learning_rate=LR)
                ),
                "adam + group lasso (before)": optax.chain(optax.adam(LR), leafwise(_group_before)),
            }
            if leaves >= 100:
                # optax.chain is opaque to the flat mode: the whole chain runs per leaf on
                # views of the buffers; `regularized` describes itself as its pieces, so
                # Adam runs on the buffers and only the group prox on views.
                txs["flat adam + group_lasso_prox"] = txs["adam + group_lasso_prox (after)"]
                txs["flat regularized(adam, group_lasso)"] = jaxreg.regularized(
                    optax.adam, LR, group_lasso=LAM
                )
                txs["flat optax.adam"] = optax.adam(LR)
            flat = [k for k in txs if k.startswith("flat")]
            bench_steps(txs, n, leaves, args.rounds, args.steps, flat=flat)
        if "ftrl" in args.only:
            print("\n### ftrl(l1, l2)")
            txs = {
                "optax.adam": optax.adam(LR),
                "jaxreg.ftrl (after)": jaxreg.ftrl(LR, l1=LAM, l2=LAM),
                "ftrl (before)": ftrl_formula(LR, LAM),
            }
            bench_steps(txs, n, leaves, args.rounds, args.steps)


if __name__ == "__main__":
    main()
