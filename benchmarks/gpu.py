"""One-shot GPU benchmark: regularized Adam at 256M params with 8, 100 and 1000 leaves.

For each leaf count, times (donated loop, interleaved rounds, medians):

* ``optax.adam``, ``optax.adamw``, ``adam + jaxreg.l1_prox``, ``adam + jaxreg.weight_decay``
  on the params pytree (per-leaf execution);
* the same through :func:`jaxreg.flat` on one flat buffer (the flat mode's optimizer
  step: flat grads and params in, flat params and state out);

and prints beside each figure the bytes-moved floor: an Adam step reads p, g, m, v
and writes p, m, v (7 arrays of 4·N bytes), divided by the bandwidth of a device
copy of one such array measured in the same run (and, if given, a nominal peak).
Targets (issue 7, H200): regularized Adam at 256M/1000 leaves ≤ 2.5 ms; torch's fused
multi-tensor AdamW takes 4.7 ms; floor ≈ 1.75 ms.

Runs in a few minutes on one GPU (per-leaf 1000-leaf steps compile in ~10-60 s
each). On a CPU, check it works with a small size:

    python benchmarks/gpu.py                       # 256M params on the default device
    python benchmarks/gpu.py --size 2000000 --leaves 8 100 --rounds 3   # CPU smoke test (seconds)
    python benchmarks/gpu.py --out gpu.json --peak-gbs 4800
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import jaxreg

LR, LAM = 1e-3, 1e-4


def tree(n: int, leaves: int, seed: int) -> dict:
    size = n // leaves
    keys = jax.random.split(jax.random.PRNGKey(seed), leaves)
    return {
        f"w{i:04d}": 0.1 * jax.random.normal(k, (size,), jnp.float32) for i, k in enumerate(keys)
    }


def copy_bandwidth(n: int, rounds: int) -> float:
    """GB/s of ``y = x * c`` over one n-float32 array (reads 4n, writes 4n bytes)."""
    x = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda x: x * 1.0000001, donate_argnums=0)
    x = f(x)
    x.block_until_ready()
    ts = []
    for _ in range(max(rounds, 5)):
        t0 = time.perf_counter()
        x = f(x)
        x.block_until_ready()
        ts.append(time.perf_counter() - t0)
    return 8 * n / statistics.median(ts) / 1e9


TXS = {
    "optax.adam": lambda: optax.adam(LR),
    "optax.adamw": lambda: optax.adamw(LR, weight_decay=LAM),
    "adam+l1_prox": lambda: optax.chain(optax.adam(LR), jaxreg.l1_prox(LAM, learning_rate=LR)),
    "adam+weight_decay": lambda: optax.chain(
        optax.adam(LR), jaxreg.weight_decay(LAM, learning_rate=LR)
    ),
}


def step_fn(tx):
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return jax.jit(step, donate_argnums=(0, 1))


def bench_leaves(n: int, leaves: int, rounds: int, all_per_leaf: bool, floor_ms: float) -> list:
    params, grads = tree(n, leaves, 0), tree(n, leaves, 1)
    layout = jaxreg.FlatLayout(params)
    variants = []  # (name, compiled, carry, grads, compile_s)
    for flat in (False, True):
        for name, make in TXS.items():
            if not (flat or all_per_leaf or name in ("optax.adam", "adam+l1_prox")):
                continue  # per-leaf steps with many leaves compile slowly
            if flat:
                tx = jaxreg.flat(make(), layout)
                p, g = layout.flatten(params), layout.flatten(grads)
                label = f"flat {name}"
            else:
                tx, p, g, label = make(), jax.tree.map(jnp.copy, params), grads, name
            s = tx.init(p)
            t0 = time.perf_counter()
            c = step_fn(tx).lower(p, s, g).compile()
            tc = time.perf_counter() - t0
            carry = c(p, s, g)
            jax.block_until_ready(carry)
            variants.append([label, c, carry, g, tc, []])
    for r in range(rounds):
        k = r % len(variants)
        for var in variants[k:] + variants[:k]:
            t0 = time.perf_counter()
            var[2] = var[1](*var[2], var[3])
            jax.block_until_ready(var[2])
            var[5].append(time.perf_counter() - t0)
    rows = []
    for label, _, _, _, tc, ts in variants:
        med = 1e3 * statistics.median(ts)
        rows.append(
            {
                "name": label,
                "median_ms": med,
                "min_ms": 1e3 * min(ts),
                "floor_ms": floor_ms,
                "x_floor": med / floor_ms,
                "compile_s": tc,
            }
        )
    variants.clear()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 * 2**20, help="number of params")
    parser.add_argument("--leaves", type=int, nargs="+", default=[8, 100, 1000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--all-per-leaf-up-to",
        type=int,
        default=100,
        help="above this many leaves, time per-leaf only optax.adam and adam+l1_prox",
    )
    parser.add_argument("--peak-gbs", type=float, default=None, help="nominal bandwidth, GB/s")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    dev = jax.devices()[0]
    n = args.size
    gbs = copy_bandwidth(n, args.rounds)
    bytes_moved = 7 * 4 * n
    floor_ms = bytes_moved / (gbs * 1e9) * 1e3
    print(
        f"device {dev.platform}:{dev.device_kind}  params {n:,}  copy {gbs:.0f} GB/s  "
        f"adam step moves {bytes_moved / 1e9:.2f} GB -> floor {floor_ms:.3f} ms at copy speed"
        + (
            f", {bytes_moved / (args.peak_gbs * 1e9) * 1e3:.3f} ms at {args.peak_gbs:.0f} GB/s"
            if args.peak_gbs
            else ""
        )
    )
    out = {
        "device": f"{dev.platform}:{dev.device_kind}",
        "date": time.strftime("%Y-%m-%d"),
        "n_params": n,
        "copy_gbs": gbs,
        "bytes_moved": bytes_moved,
        "floor_ms": floor_ms,
        "cases": {},
    }
    for leaves in args.leaves:
        t0 = time.perf_counter()
        rows = bench_leaves(n, leaves, args.rounds, leaves <= args.all_per_leaf_up_to, floor_ms)
        out["cases"][leaves] = rows
        print(f"\n{leaves} leaves ({time.perf_counter() - t0:.0f} s)")
        head = ("variant", "median ms", "floor ms", "x floor", "compile s")
        print("  {:28s} {:>10s} {:>9s} {:>8s} {:>9s}".format(*head))
        for r in rows:
            print(
                f"  {r['name']:28s} {r['median_ms']:10.3f} {r['floor_ms']:9.3f} "
                f"{r['x_floor']:8.2f} {r['compile_s']:9.2f}"
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
