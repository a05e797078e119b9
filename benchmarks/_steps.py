"""Shared pieces of the optimizer-step benchmarks (bench_kernels.py, bench_hotspots.py).

A step is what a user jits: ``update`` + ``optax.apply_updates``, params and state
donated. :func:`bench_steps` compiles each, then times them interleaved round by round
(names rotated each round; medians), and prints one table with the ratio to the first
row, XLA's temp bytes, HLO copies, minor page faults per step, compile seconds and
"passes" (:func:`passes`).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg


def tree(n_params: int, n_leaves: int, seed: int, scale: float = 1.0, cols: int = 200) -> dict:
    """``n_leaves`` float32 leaves of shape ``(n_params / n_leaves / cols, cols)``."""
    keys = jax.random.split(jax.random.key(seed), n_leaves)
    shape = (max(n_params // n_leaves // cols, 1), cols)
    return {
        f"w{i:03d}": scale * jax.random.normal(k, shape, jnp.float32) for i, k in enumerate(keys)
    }


def leafwise(fn: Callable) -> optax.GradientTransformation:
    """A stateless transform applying ``fn(update, param)`` leaf by leaf."""
    return optax.GradientTransformation(
        lambda p: optax.EmptyState(), lambda u, s, p=None: (jax.tree.map(fn, u, p), s)
    )


def ftrl_formula(
    lr: float, lam: float, *, use_sqrt: bool = True, barrier: bool = True
) -> optax.GradientTransformation:
    """FTRL's per-leaf formula (l1 = l2 = ``lam``, lr_power = -0.5, accumulators from 0.1)
    as a bare transform: with ``barrier``, ``n'`` shared by ``z`` and ``quad`` behind an
    optimization barrier (jaxreg.ftrl before issue 13); ``use_sqrt=False`` drops the
    square roots (a diagnostic)."""

    def power(x):
        return jnp.sqrt(x) if use_sqrt else x

    def init(params):
        return (
            jax.tree.map(lambda x: jnp.full_like(x, 0.1), params),
            jax.tree.map(jnp.zeros_like, params),
        )

    def leaf(g, n, z, p):
        n_new = n + g * g
        z_new = z + g - (power(n_new) - power(n)) / lr * p
        n_q = jax.lax.optimization_barrier(n_new) if barrier else n_new
        quad = power(n_q) / lr + 2 * lam
        w = -jnp.sign(z_new) * jnp.maximum(jnp.abs(z_new) - lam, 0) / quad
        return w - p, n_new, z_new

    def update(g, state, params=None):
        out = jax.tree.map(leaf, g, state[0], state[1], params)
        is_triple = lambda x: isinstance(x, tuple)  # noqa: E731
        parts = [jax.tree.map(lambda t, i=i: t[i], out, is_leaf=is_triple) for i in range(3)]
        return parts[0], (parts[1], parts[2])

    return optax.GradientTransformation(init, update)


def donated_step(tx: optax.GradientTransformation) -> Callable:
    """The jitted step ``(params, state, grads) -> (params, state)``, params and state donated."""

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return jax.jit(step, donate_argnums=(0, 1))


def passes(compiled: jax.stages.Compiled, params: object) -> float:
    """XLA's estimate of the bytes ``compiled`` reads and writes (``cost_analysis()``),
    in units of the parameters' bytes: how many times the step streams an array of the
    parameters' size (``optax.adam``: 10). The same on every run, unlike a time; an
    estimate (fusions that slice a buffer are counted with the whole buffer)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    size = sum(x.nbytes for x in jax.tree.leaves(params))
    return float(cost["bytes accessed"]) / size


def bench_steps(
    txs: dict,
    n_params: int,
    n_leaves: int,
    rounds: int,
    steps: int,
    flat: Iterable[str] = (),
) -> None:
    """Times each ``txs[name]`` step; names in ``flat`` run under :func:`jaxreg.flat`."""
    flat = set(flat)
    grads0 = tree(n_params, n_leaves, 1, 1e-2)
    live, info = {}, {}
    for name, tx in txs.items():
        p, grads = tree(n_params, n_leaves, 0), grads0
        if name in flat:
            layout = jaxreg.FlatLayout(p)
            p, grads = layout.flatten(p), layout.flatten(grads0)
            tx = jaxreg.flat(tx, layout)
        fn = donated_step(tx)
        s = tx.init(p)
        t0 = time.perf_counter()
        compiled = fn.lower(p, s, grads).compile()
        ctime = time.perf_counter() - t0
        info[name] = (
            compiled.memory_analysis().temp_size_in_bytes,
            compiled.as_text().count(" copy("),
            ctime,
            passes(compiled, p),
        )
        p, s = fn(p, s, grads)
        jax.block_until_ready(p)
        live[name] = [fn, p, s, grads, [], []]
    names = list(live)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, p, s, g, times, faults = live[name]
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for _ in range(steps):
                p, s = fn(p, s, g)
            jax.block_until_ready(p)
            times.append((time.perf_counter() - t0) / steps)
            faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / steps)
            live[name][1], live[name][2] = p, s
    base = float(np.median(live[names[0]][4]))
    print(f"\n{n_params:,} params / {n_leaves} leaves, median of {rounds} rounds x {steps} steps")
    print(f"| step | ms | vs {names[0]} | passes | temp MB | copies | faults/step | compile s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, row in live.items():
        med = float(np.median(row[4]))
        temp, copies, ctime, npass = info[name]
        print(
            f"| {name} | {med * 1e3:.2f} | {med / base:.2f}x | {npass:.1f} | {temp / 1e6:.1f} "
            f"| {copies} | {np.median(row[5]):.0f} | {ctime:.2f} |"
        )
