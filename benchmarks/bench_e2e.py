"""Issue 13: the full training step (forward + backward + update), per-leaf vs flat.

Models (float32, CPU-sized):

* ``tf24``: a 24-block pre-LN transformer, d=64, ff=256, 4 heads, seq 32, batch 8,
  no biases on q/k/v/o (290 leaves, 1.2M params);
* ``mlp100``: a 100-layer MLP, width 128, batch 64 (200 leaves, 1.7M params);
* ``mlp8``: the 784-1024-1024-1024-10 MLP of ``bench_flat.py``, batch 128 (8 leaves);
* ``block``: one transformer block, d=256, ff=1024, seq 64, batch 8 (16 leaves).

Optimizer everywhere: ``jaxreg.regularized(optax.adam, 1e-3, l1=1e-4,
mask=jaxreg.kernels_only())``. Variants of one model run interleaved (one jitted,
donated step of each per round, order rotated; medians):

* ``per-leaf``: ``jax.grad`` on the params pytree, the optimizer on the pytree;
* ``flat``: params held as ``jaxreg.flatten_params`` buffers, presented to the model with
  ``layout.unflatten`` inside the step, the optimizer wrapped in ``jaxreg.flat``;
* ``flat labels=mask``: the same with ``labels=mask`` (regularized leaves apart);
* ``flat kernels apart``: every kernel in its own buffer (``labels`` = its path), the
  small leaves (biases, norms) in one buffer: the matmul operands are whole buffers.

Also reported: compile time, XLA temp bytes and the number of HLO ``copy`` ops of the
compiled step.

    python benchmarks/bench_e2e.py                      # all four models
    python benchmarks/bench_e2e.py --models mlp8 block --rounds 9
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_flat as bf
import bench_transforms as bt

import jaxreg

LR, LAM = 1e-3, 1e-4


def _dense(key, n_in, n_out, bias=True):
    p = {"kernel": jax.random.normal(key, (n_in, n_out), jnp.float32) / math.sqrt(n_in)}
    if bias:
        p["bias"] = jnp.zeros((n_out,), jnp.float32)
    return p


def _ln(d):
    return {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))}


def tf_init(key, n_blocks=24, d=64, ff=256):
    blocks = {}
    for i, k in enumerate(jax.random.split(key, n_blocks)):
        ks = jax.random.split(k, 6)
        blocks[f"block{i:02d}"] = {
            "ln1": _ln(d),
            "q": _dense(ks[0], d, d, False),
            "k": _dense(ks[1], d, d, False),
            "v": _dense(ks[2], d, d, False),
            "o": _dense(ks[3], d, d, False),
            "ln2": _ln(d),
            "ff1": _dense(ks[4], d, ff),
            "ff2": _dense(ks[5], ff, d),
        }
    return {"blocks": blocks, "ln_f": _ln(d)}


def tf_block(p, x, heads=4):
    b, t, d = x.shape
    h = bf.layer_norm(x, p["ln1"])

    def proj(name):
        return (h @ p[name]["kernel"]).reshape(b, t, heads, d // heads)

    q, k, v = proj("q"), proj("k"), proj("v")
    att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // heads)
    att = jax.nn.softmax(att + jnp.triu(jnp.full((t, t), -1e9), 1), axis=-1)
    y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
    x = x + y @ p["o"]["kernel"]
    h = bf.layer_norm(x, p["ln2"])
    h = jax.nn.gelu(h @ p["ff1"]["kernel"] + p["ff1"]["bias"])
    return x + h @ p["ff2"]["kernel"] + p["ff2"]["bias"]


def tf_loss(params, batch):
    x, target = batch
    for name in sorted(params["blocks"]):
        x = tf_block(params["blocks"][name], x)
    return jnp.mean((bf.layer_norm(x, params["ln_f"]) - target) ** 2)


def mlp_init(key, depth=100, width=128):
    keys = jax.random.split(key, depth)
    return {f"layer{i:03d}": _dense(k, width, width) for i, k in enumerate(keys)}


def mlp_loss(params, batch):
    x, y = batch
    names = sorted(params)
    for i, name in enumerate(names):
        x = x @ params[name]["kernel"] + params[name]["bias"]
        if i < len(names) - 1:
            x = jax.nn.relu(x)
    return jnp.mean((x - y) ** 2)


def model(name):
    key, kx, ky = jax.random.split(jax.random.key(0), 3)
    if name == "tf24":
        x = jax.random.normal(kx, (8, 32, 64))
        return tf_init(key), tf_loss, (x, jax.random.normal(ky, (8, 32, 64)))
    if name == "mlp100":
        x = jax.random.normal(kx, (64, 128))
        return mlp_init(key), mlp_loss, (x, jax.random.normal(ky, (64, 128)))
    return bf.model({"mlp8": "mlp", "block": "block"}[name])


def kernel_labels(params):
    """Each kernel its own buffer (label = its path), everything else in one."""

    def label(path, leaf):
        name = jax.tree_util.keystr(path)
        return name if name.endswith("['kernel']") else "rest"

    return jax.tree_util.tree_map_with_path(label, params)


def train_case(name, rounds):
    params, loss_fn, batch = model(name)
    mask = jaxreg.kernels_only()

    def make():
        return jaxreg.regularized(optax.adam, LR, l1=LAM, mask=mask)

    tx = make()

    def per_leaf(p, s, batch):
        g = jax.grad(loss_fn)(p, batch)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    variants = [bt.Variant("per-leaf", per_leaf, params, tx.init(params), batch)]
    for lname, labels in (
        ("flat", None),
        ("flat labels=mask", mask),
        ("flat kernels apart", kernel_labels),
    ):
        layout = jaxreg.FlatLayout(params, labels=labels)
        variants.append(bf.flat_variant(lname, layout, make(), loss_fn, params, batch))
    copies = {v.name: v.compiled.as_text().count(" copy(") for v in variants}
    bt.interleave(variants, rounds)
    n = sum(x.size for x in jax.tree.leaves(params))
    leaves = len(jax.tree.leaves(params))
    print(f"\n### {name}: {n:,} params, {leaves} leaves (median of {rounds} rounds)")
    print("| variant | ms | vs per-leaf | compile s | temp MB | HLO copies |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = bt.median_ms(variants[0])
    for v in variants:
        ms = bt.median_ms(v)
        print(
            f"| {v.name} | {ms:.2f} | {ms / base:.2f}x | {v.compile_s:.2f} "
            f"| {v.memory.get('temp', 0) / 1e6:.2f} | {copies[v.name]} |"
        )
    for v in variants:
        v.release()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["mlp8", "block", "mlp100", "tf24"])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    print(
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC jax {jax.__version__} "
        f"optax {optax.__version__} {jax.devices()[0].platform} ({platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for name in args.models:
        train_case(name, args.rounds)


if __name__ == "__main__":
    main()
