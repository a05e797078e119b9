"""Flat execution mode vs the per-leaf pytree step, optimizer alone and end to end.

1. Optimizer step (update + apply_updates, donated loop) at 10M params with 10 and
   500 leaves: per-leaf pytree vs :func:`jaxreg.flat` on one buffer (default
   layout, and a layout split by the mask with ``labels=``).
2. Full training step (forward + backward + update) of a small MLP, a transformer
   block and (``--full``) a stack of 8 blocks: per-leaf vs flat (params held flat,
   presented to the model with ``layout.unflatten`` inside the jitted step).

    python benchmarks/bench_flat.py --quick --out flat.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_transforms as bt

import jaxreg

LR, LAM = bt.LR, bt.LAM


def kernels(p: Any) -> Any:
    """Regularize matrices only (not biases or layer-norm scales)."""
    return jax.tree.map(lambda x: x.ndim >= 2, p)


def every_other(p: Any) -> Any:
    """A mask that alternates along the leaves (the worst case for the flat mode)."""
    leaves, treedef = jax.tree.flatten(p)
    return jax.tree.unflatten(treedef, [i % 2 == 0 for i in range(len(leaves))])


OPTIMIZERS: dict[str, Callable[[Callable | None], Any]] = {
    "optax.adam": lambda mask: optax.adam(LR),
    "adam+l1_prox": lambda mask: optax.chain(optax.adam(LR), jaxreg.l1_prox(LAM, learning_rate=LR)),
    "regularized(adam, l1, wd, mask)": lambda mask: jaxreg.regularized(
        optax.adam, LR, l1=LAM, weight_decay=LAM, mask=mask
    ),
}


# ------------------------------------------------------------------ optimizer alone


def optimizer_case(n_params: int, n_leaves: int, rounds: int, per_leaf: list[str]) -> dict:
    params = bt.make_tree(n_params, n_leaves)
    grads = jax.tree.map(lambda x: 0.01 * x, bt.make_tree(n_params, n_leaves, seed=1))
    mask = every_other
    variants = []
    for name in per_leaf:
        tx = OPTIMIZERS[name](mask)
        variants.append(
            bt.Variant(f"per-leaf {name}", bt.update_step(tx), params, tx.init(params), grads)
        )
    layouts = {
        "flat": jaxreg.FlatLayout(params),
        "flat labels=mask": jaxreg.FlatLayout(params, labels=mask),
    }
    for lname, layout in layouts.items():
        fp, fg = layout.flatten(params), layout.flatten(grads)
        for name, make in OPTIMIZERS.items():
            if lname != "flat" and "mask" not in name:
                continue  # labels only matter with a mask
            ftx = jaxreg.flat(make(mask), layout)
            variants.append(
                bt.Variant(f"{lname} {name}", bt.update_step(ftx), fp, ftx.init(fp), fg)
            )
    bt.interleave(variants, rounds)
    rows = [
        {
            "name": v.name,
            "median_ms": bt.median_ms(v),
            "min_ms": 1e3 * min(v.times),
            "compile_s": v.compile_s,
            "memory": v.memory,
            "times_ms": [1e3 * t for t in v.times],
        }
        for v in variants
    ]
    for v in variants:
        v.release()
    return {"n_params": n_params, "n_leaves": n_leaves, "rounds": rounds, "rows": rows}


def target_case(n_params: int, rounds: int) -> dict:
    """The leaf-count target measured in ONE interleaved group (no drift between groups).

    Per-leaf steps on a 10-leaf tree and flat steps on a 500-leaf tree (default layout
    and ``labels=mask``) take turns, so ``flat@500 / per-leaf@10`` compares
    measurements taken at the same moments.
    """
    ten = bt.make_tree(n_params, 10)
    ten_g = jax.tree.map(lambda x: 0.01 * x, bt.make_tree(n_params, 10, seed=1))
    five = bt.make_tree(n_params, 500)
    five_g = jax.tree.map(lambda x: 0.01 * x, bt.make_tree(n_params, 500, seed=1))
    mask = every_other
    variants = []
    for name, make in OPTIMIZERS.items():
        tx = make(mask)
        variants.append(
            bt.Variant(f"per-leaf@10 {name}", bt.update_step(tx), ten, tx.init(ten), ten_g)
        )
        for lname, labels in (("flat@500", None), ("flat@500 labels=mask", mask)):
            if labels is not None and "mask" not in name:
                continue
            layout = jaxreg.FlatLayout(five, labels=labels)
            fp, fg = layout.flatten(five), layout.flatten(five_g)
            ftx = jaxreg.flat(make(mask), layout)
            variants.append(
                bt.Variant(f"{lname} {name}", bt.update_step(ftx), fp, ftx.init(fp), fg)
            )
    bt.interleave(variants, rounds)
    med = {v.name: bt.median_ms(v) for v in variants}
    for v in variants:
        v.release()
    ratios = {}
    for name in OPTIMIZERS:
        base = med[f"per-leaf@10 {name}"]
        for lname in ("flat@500", "flat@500 labels=mask"):
            if f"{lname} {name}" in med:
                ratios[f"{lname} {name}"] = med[f"{lname} {name}"] / base
    return {"n_params": n_params, "rounds": rounds, "median_ms": med, "ratios": ratios}


# ------------------------------------------------------------------ models


def dense(key, n_in, n_out):
    return {
        "kernel": jax.random.normal(key, (n_in, n_out), jnp.float32) / math.sqrt(n_in),
        "bias": jnp.zeros((n_out,), jnp.float32),
    }


def mlp_init(key, sizes=(784, 1024, 1024, 1024, 10)):
    keys = jax.random.split(key, len(sizes) - 1)
    pairs = zip(keys, sizes[:-1], sizes[1:], strict=True)
    return {f"layer{i}": dense(k, a, b) for i, (k, a, b) in enumerate(pairs)}


def mlp_loss(params, batch):
    x, y = batch
    n = len(params)
    for i in range(n):
        layer = params[f"layer{i}"]
        x = x @ layer["kernel"] + layer["bias"]
        if i < n - 1:
            x = jax.nn.relu(x)
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(x) * y, axis=-1))


def block_init(key, d=512, ff=2048):
    k = jax.random.split(key, 6)
    ln = lambda: {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))}  # noqa: E731
    return {
        "ln1": ln(),
        "q": dense(k[0], d, d),
        "k": dense(k[1], d, d),
        "v": dense(k[2], d, d),
        "o": dense(k[3], d, d),
        "ln2": ln(),
        "ff1": dense(k[4], d, ff),
        "ff2": dense(k[5], ff, d),
    }


def layer_norm(x, p):
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.var(x, -1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-6) * p["scale"] + p["bias"]


def block_apply(p, x, heads=8):
    b, t, d = x.shape
    h = layer_norm(x, p["ln1"])

    def proj(name):
        y = h @ p[name]["kernel"] + p[name]["bias"]
        return y.reshape(b, t, heads, d // heads)

    q, k, v = proj("q"), proj("k"), proj("v")
    att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // heads)
    att = jax.nn.softmax(att + jnp.triu(jnp.full((t, t), -1e9), 1), axis=-1)
    y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
    x = x + y @ p["o"]["kernel"] + p["o"]["bias"]
    h = layer_norm(x, p["ln2"])
    h = jax.nn.gelu(h @ p["ff1"]["kernel"] + p["ff1"]["bias"])
    return x + h @ p["ff2"]["kernel"] + p["ff2"]["bias"]


def blocks_loss(params, batch):
    x, target = batch
    for i in range(len(params)):
        x = block_apply(params[f"block{i}"], x)
    return jnp.mean((x - target) ** 2)


def model(name: str):
    key = jax.random.PRNGKey(0)
    kx, ky = jax.random.split(jax.random.PRNGKey(1))
    if name == "mlp":
        params = mlp_init(key)
        x = jax.random.normal(kx, (128, 784))
        y = jax.nn.one_hot(jax.random.randint(ky, (128,), 0, 10), 10)
        return params, mlp_loss, (x, y)
    n_blocks, d, ff, seq, batch = (
        (1, 256, 1024, 64, 8) if name == "block" else (8, 256, 1024, 64, 8)
    )
    keys = jax.random.split(key, n_blocks)
    params = {f"block{i}": block_init(k, d, ff) for i, k in enumerate(keys)}
    x = jax.random.normal(kx, (batch, seq, d))
    return params, blocks_loss, (x, jax.random.normal(ky, (batch, seq, d)))


def flat_variant(name, layout, tx, loss_fn, params, batch):
    """The flat training step (grad through ``layout.unflatten``, ``jaxreg.flat(tx)``)."""
    ftx = jaxreg.flat(tx, layout)

    def flat_step(fp, s, batch):
        g = jax.grad(lambda q: loss_fn(layout.unflatten(q), batch))(fp)
        u, s = ftx.update(g, s, fp)
        return optax.apply_updates(fp, u), s

    fp = layout.flatten(params)
    return bt.Variant(name, flat_step, fp, ftx.init(fp), batch)


def train_case(name: str, rounds: int) -> dict:
    params, loss_fn, batch = model(name)
    tx_make = OPTIMIZERS["regularized(adam, l1, wd, mask)"]
    tx = tx_make(kernels)

    def per_leaf(p, s, batch):
        g = jax.grad(loss_fn)(p, batch)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    variants = [bt.Variant("per-leaf", per_leaf, params, tx.init(params), batch)]
    for lname, labels in (("flat", None), ("flat labels=mask", kernels)):
        layout = jaxreg.FlatLayout(params, labels=labels)
        variants.append(flat_variant(lname, layout, tx_make(kernels), loss_fn, params, batch))
    bt.interleave(variants, rounds)
    n = sum(x.size for x in jax.tree.leaves(params))
    rows = [
        {
            "name": v.name,
            "median_ms": bt.median_ms(v),
            "min_ms": 1e3 * min(v.times),
            "ratio_to_per_leaf": bt.median_ms(v) / bt.median_ms(variants[0]),
            "compile_s": v.compile_s,
            "memory": v.memory,
        }
        for v in variants
    ]
    for v in variants:
        v.release()
    return {
        "model": name,
        "n_params": int(n),
        "n_leaves": len(jax.tree.leaves(params)),
        "rows": rows,
    }


def run(quick: bool = True) -> dict:
    dev = jax.devices()[0]
    out = {"device": f"{dev.platform}:{dev.device_kind}", "date": time.strftime("%Y-%m-%d")}
    scale = 1 if quick else 3
    out["optimizer"] = [
        optimizer_case(10_000_000, 10, 12 * scale, list(OPTIMIZERS)),
        optimizer_case(10_000_000, 500, 12 * scale, [] if quick else list(OPTIMIZERS)),
    ]
    for case in out["optimizer"]:
        print(f"\noptimizer step, {case['n_params']:,} params / {case['n_leaves']} leaves")
        for r in case["rows"]:
            print(f"  {r['name']:42s} {r['median_ms']:9.2f} ms  compile {r['compile_s']:6.2f} s")
    ten, five = ({r["name"]: r["median_ms"] for r in c["rows"]} for c in out["optimizer"])
    summary = {}
    for name in OPTIMIZERS:
        if f"flat {name}" in five and f"per-leaf {name}" in ten:
            summary[name] = {
                "flat@500 / per-leaf@10": five[f"flat {name}"] / ten[f"per-leaf {name}"],
                "flat@500 / flat@10": five[f"flat {name}"] / ten[f"flat {name}"],
            }
            if f"per-leaf {name}" in five:
                summary[name]["per-leaf@500 / per-leaf@10"] = (
                    five[f"per-leaf {name}"] / ten[f"per-leaf {name}"]
                )
    out["leaf_count_ratios"] = summary
    print("\n500-leaf step / 10-leaf step, across two interleaved groups (drift included):")
    for name, ratios in summary.items():
        print(f"  {name:34s} " + "  ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    target = target_case(10_000_000, 16 * scale)
    out["leaf_count_target"] = target
    print(
        "\nsame interleaved group: flat step at 500 leaves / per-leaf step at 10 leaves "
        "(target <= 1.15):"
    )
    for name, ms in target["median_ms"].items():
        ratio = target["ratios"].get(name)
        print(f"  {name:48s} {ms:8.2f} ms" + (f"  x{ratio:.3f}" if ratio else ""))
    out["training"] = []
    for name in ("mlp", "block") if quick else ("mlp", "block", "8 blocks"):
        case = train_case(name, 10 * scale)
        out["training"].append(case)
        print(
            f"\ntraining step (fwd+bwd+regularized adam), {name}: "
            f"{case['n_params']:,} params / {case['n_leaves']} leaves"
        )
        for r in case["rows"]:
            print(
                f"  {r['name']:20s} {r['median_ms']:9.2f} ms  x{r['ratio_to_per_leaf']:.3f}"
                f"  compile {r['compile_s']:6.2f} s"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    res = run(quick=not args.full)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
