"""Hotspots: why `adam + group_lasso_prox` and `ftrl` cost more than `optax.adam`.

Three measurements, each interleaved round by round (medians; compare within one run):

1. ``reduce``: the group sums of squares of a float32 ``(rows, 200)`` array over axis 0
   (groups = columns, the Flax-kernel case) written six ways, in isolation, with the
   number of HLO ``reduce`` ops and YNNPACK fusions each compiles to.
2. ``group``: the jitted, donated step ``optax.adam`` vs ``chain(adam, group_lasso_prox)``
   vs a diagnostic chain that materializes ``p + u`` exactly like the prox but skips the
   reduction (``norm`` taken from the first row: wrong on purpose, timing only).
3. ``ftrl``: the same step for ``optax.adam`` vs ``jaxreg.ftrl`` vs diagnostic variants
   of FTRL's formula (without the optimization barrier; with ``n ** 0.5`` replaced by
   ``n``, i.e. no square roots).

For every step it also reports the XLA temp bytes and the minor page faults per step
(``getrusage``): a temp buffer above glibc's 32 MB mmap ceiling is mapped fresh on
every call, and each first touch of a 4 KB page faults.

Usage::

    python benchmarks/bench_hotspots.py                    # all three, 1M/10 and 10M/10
    python benchmarks/bench_hotspots.py --only reduce --rounds 9
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
from _steps import bench_steps, ftrl_formula, leafwise

import jaxreg

LR, LAM = 1e-3, 1e-4


def _median(xs):
    return float(np.median(np.asarray(xs)))


def _interleave(fns: dict, rounds: int, reps: int) -> dict:
    """``fns[name]() -> array`` run ``reps`` times per round, names rotated per round."""
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            for _ in range(reps):
                y = fns[k]()
            jax.block_until_ready(y)
            times[k].append((time.perf_counter() - t0) / reps)
    return times


# ----------------------------------------------------------------------------- reduce
REDUCTIONS = {
    "jnp.sum(v*v, axis=0) (jaxreg)": lambda x: jnp.sum(x * x, axis=0),
    "einsum('ij,ij->j')": lambda x: jnp.einsum("ij,ij->j", x, x),
    "lax.reduce(v*v, add, (0,))": lambda x: jax.lax.reduce(x * x, np.float32(0), jax.lax.add, (0,)),
    "two-stage (rows/25, 25, 200)": lambda x: jnp.sum(
        jnp.sum((x * x).reshape(-1, 25, x.shape[1]), axis=1), axis=0
    ),
    "ones @ (v*v) (gemv)": lambda x: jnp.ones((x.shape[0],), x.dtype) @ (x * x),
    "dot_general(ones, v*v)": lambda x: jax.lax.dot_general(
        jnp.ones((1, x.shape[0]), x.dtype), x * x, (((1,), (0,)), ((), ()))
    )[0],
}


def bench_reduce(rounds: int) -> None:
    for rows in (5000, 50000):
        x = jax.random.normal(jax.random.key(0), (rows, 200), jnp.float32)
        ref = np.sum(np.asarray(x, np.float64) ** 2, axis=0)
        fns, info = {}, {}
        for name, f in REDUCTIONS.items():
            jf = jax.jit(f)
            txt = jf.lower(x).compile().as_text()
            err = float(np.max(np.abs(np.asarray(jf(x)) - ref) / ref))
            info[name] = (txt.count(" reduce("), txt.count("__ynn_fusion"), txt.count(" dot("), err)
            fns[name] = lambda jf=jf, x=x: jf(x)
        times = _interleave(fns, rounds, 10 if rows == 5000 else 2)
        print(f"\n### Group sums of squares, float32 ({rows}, 200), axis 0 (median of {rounds})")
        print("| formulation | ms | HLO reduce / ynn fusions / dot | max rel. error |")
        print("| --- | --- | --- | --- |")
        for name in fns:
            r, y, d, e = info[name]
            print(f"| {name} | {_median(times[name]) * 1e3:.3f} | {r} / {y} / {d} | {e:.1e} |")


# ------------------------------------------------------------------------------ steps
def _materialize_only(u, p):
    """Diagnostic: ``p + u`` materialized and scaled like the prox, no reduction."""
    v = p + u
    head = jnp.abs(v[:1])  # stands in for the group norm: timing only
    safe = jnp.where(head == 0, jnp.ones_like(head), head)
    return v * jnp.maximum(1 - LR * LAM / safe, 0) - p


def bench_group(cases, rounds: int, steps: int) -> None:
    txs = {
        "optax.adam": optax.adam(LR),
        "adam + group_lasso_prox": optax.chain(
            optax.adam(LR), jaxreg.group_lasso_prox(LAM, learning_rate=LR)
        ),
        "adam + materialize p+u, no reduce (diag.)": optax.chain(
            optax.adam(LR), leafwise(_materialize_only)
        ),
    }
    print("\n### adam + group_lasso_prox (groups = columns)")
    for n, leaves in cases:
        bench_steps(txs, n, leaves, rounds, steps)


def bench_ftrl(cases, rounds: int, steps: int) -> None:
    txs = {
        "optax.adam": optax.adam(LR),
        "jaxreg.ftrl(l1, l2)": jaxreg.ftrl(LR, l1=LAM, l2=LAM),
        "ftrl formula, no barrier (diag.)": ftrl_formula(LR, LAM, use_sqrt=True, barrier=False),
        "ftrl formula, no sqrt (diag.)": ftrl_formula(LR, LAM, use_sqrt=False, barrier=True),
    }
    print("\n### ftrl")
    for n, leaves in cases:
        bench_steps(txs, n, leaves, rounds, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["reduce", "group", "ftrl"])
    parser.add_argument("--cases", nargs="*", default=["1000000:10", "10000000:10"])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    dev = jax.devices()[0]
    print(
        f"# {datetime.date.today()} jax {jax.__version__} optax {optax.__version__} "
        f"device {dev.platform} ({platform.machine()})"
    )
    cases = [tuple(map(int, c.split(":"))) for c in args.cases]
    if "reduce" in args.only:
        bench_reduce(args.rounds)
    if "group" in args.only:
        bench_group(cases, args.rounds, args.steps)
    if "ftrl" in args.only:
        bench_ftrl(cases, args.rounds, args.steps)


if __name__ == "__main__":
    main()
