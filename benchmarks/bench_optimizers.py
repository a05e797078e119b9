"""Step time of jaxreg's proximal optimizers vs optax.adam, and their state memory.

One jitted training-step update (optimizer update + ``optax.apply_updates``, params
and state donated, outputs fed back) over a pytree of float32 leaves. All
optimizers run in the same process, interleaved round by round (so machine noise
hits them alike); the reported figure is the median over rounds of the per-step
time, and the ratio to ``optax.adam`` of the same run.

Also checks that ``proximal_adam`` keeps exactly Adam's state (``count``, ``mu``,
``nu``: the same bytes as ``optax.adam``).

Usage::

    python benchmarks/bench_optimizers.py                 # 1M/10 and 10M/10
    python benchmarks/bench_optimizers.py 1000000:10 --rounds 15 --steps 10
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

import jaxreg

LR, LAM = 1e-3, 1e-4


def make_tree(n_params: int, n_leaves: int, seed: int) -> dict:
    keys = jax.random.split(jax.random.key(seed), n_leaves)
    size = n_params // n_leaves
    return {f"w{i:03d}": jax.random.normal(k, (size,), jnp.float32) for i, k in enumerate(keys)}


def optimizers() -> dict[str, optax.GradientTransformation]:
    return {
        "optax.adam": optax.adam(LR),
        "proximal_adam(l1, wd)": jaxreg.proximal_adam(LR, l1=LAM, weight_decay=LAM),
        "adam + l1_prox (chain)": optax.chain(
            optax.adam(LR), jaxreg.l1_prox(LAM, learning_rate=LR)
        ),
        "optax.sgd(momentum)": optax.sgd(LR, momentum=0.9),
        "proximal_sgd(l1, l2, momentum)": jaxreg.proximal_sgd(LR, l1=LAM, l2=LAM, momentum=0.9),
        "proximal_adagrad(l1, l2)": jaxreg.proximal_adagrad(LR, l1=LAM, l2=LAM),
        "ftrl(l1, l2)": jaxreg.ftrl(LR, l1=LAM, l2=LAM),
    }


def state_bytes(state) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def check_state_memory(params) -> str:
    ours = jaxreg.proximal_adam(LR, l1=LAM, weight_decay=LAM).init(params)
    ref = optax.adam(LR).init(params)
    assert isinstance(ours, optax.ScaleByAdamState) and ours._fields == ("count", "mu", "nu")
    assert jax.tree.structure(ours) == jax.tree.structure(ref[0])
    assert state_bytes(ours) == state_bytes(ref), (state_bytes(ours), state_bytes(ref))
    return (
        f"proximal_adam state: ScaleByAdamState(count, mu, nu), {state_bytes(ours) / 1e6:.1f} MB"
        f" = optax.adam's {state_bytes(ref) / 1e6:.1f} MB"
    )


def bench(n_params: int, n_leaves: int, rounds: int, steps: int) -> list[tuple[str, float, float]]:
    grads = jax.tree.map(lambda x: 1e-2 * x, make_tree(n_params, n_leaves, 1))
    txs = optimizers()
    live = {}
    for name, tx in txs.items():

        def step(p, s, g, tx=tx):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        fn = jax.jit(step, donate_argnums=(0, 1))
        p = make_tree(n_params, n_leaves, 0)
        s = tx.init(p)
        t0 = time.perf_counter()
        p, s = fn(p, s, grads)
        jax.block_until_ready(p)
        live[name] = [fn, p, s, time.perf_counter() - t0, []]
    for _ in range(rounds):
        for name in txs:  # interleaved: every optimizer once per round
            fn, p, s, _, times = live[name]
            t0 = time.perf_counter()
            for _ in range(steps):
                p, s = fn(p, s, grads)
            jax.block_until_ready(p)
            times.append((time.perf_counter() - t0) / steps)
            live[name][1], live[name][2] = p, s
    base = float(np.median(live["optax.adam"][4]))
    return [
        (name, float(np.median(v[4])), float(np.median(v[4])) / base) for name, v in live.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=["1000000:10", "10000000:10"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    dev = jax.devices()[0]
    print(
        f"# {datetime.date.today()} jax {jax.__version__} optax {optax.__version__} "
        f"device {dev.platform}:{dev.device_kind} ({platform.machine()})"
    )
    print(check_state_memory(make_tree(1_000_000, 10, 0)))
    for case in args.cases:
        n, leaves = map(int, case.split(":"))
        print(f"\n{n:,} params / {leaves} leaves (median of {args.rounds} rounds x {args.steps})")
        print("| optimizer | ms/step | vs optax.adam |\n| --- | --- | --- |")
        for name, t, ratio in bench(n, leaves, args.rounds, args.steps):
            print(f"| {name} | {t * 1e3:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
