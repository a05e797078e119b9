"""The engine's speed targets (issue 11), measured in ONE interleaved group.

1. Elementwise chains at 10M params / 10 leaves, per-leaf, each vs ``optax.adam``
   (target <= 1.02x): adam + l1_prox, adam + weight_decay, proximal_adam(l1, wd),
   regularized(adam, l1, wd, mask).
2. The flat 500-leaf step, built as for the pytree (mask function, default layout),
   vs the 10-leaf ``optax.adam`` step (target <= 1.15x): masked ``regularized`` and
   masked ``proximal_adam``. ``regularized`` holds ``optax.adam`` (an opaque
   transform): with the stub ``jaxreg._elementwise.prove_elementwise`` it runs per
   leaf on views; "proven" rows patch the proof in, as the real prover will give.

    python benchmarks/bench_engine.py [--rounds 12] [--out engine.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_transforms as bt

import jaxreg
import jaxreg._elementwise

LR, LAM = bt.LR, bt.LAM


def kernels_every_other(p):
    leaves, treedef = jax.tree.flatten(p)
    return jax.tree.unflatten(treedef, [i % 2 == 0 for i in range(len(leaves))])


CHAINS = {
    "adam+l1_prox": lambda m: optax.chain(optax.adam(LR), jaxreg.l1_prox(LAM, learning_rate=LR)),
    "adam+weight_decay": lambda m: optax.chain(
        optax.adam(LR), jaxreg.weight_decay(LAM, learning_rate=LR)
    ),
    "proximal_adam(l1, wd)": lambda m: jaxreg.proximal_adam(LR, l1=LAM, weight_decay=LAM),
    "regularized(adam, l1, wd, mask)": lambda m: jaxreg.regularized(
        optax.adam, LR, l1=LAM, weight_decay=LAM, mask=m
    ),
}
FLAT = {
    "regularized(adam, l1, wd, mask)": CHAINS["regularized(adam, l1, wd, mask)"],
    "proximal_adam(l1, wd, mask)": lambda m: jaxreg.proximal_adam(
        LR, l1=LAM, weight_decay=LAM, mask=m
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--skip-views", action="store_true", help="skip the stub (views-mode) regularized row"
    )
    args = parser.parse_args()
    n = args.n
    ten = bt.make_tree(n, 10)
    ten_g = jax.tree.map(lambda x: 0.01 * x, bt.make_tree(n, 10, seed=1))
    five = bt.make_tree(n, 500)
    five_g = jax.tree.map(lambda x: 0.01 * x, bt.make_tree(n, 500, seed=1))
    m = kernels_every_other
    variants = []
    adam = optax.adam(LR)
    variants.append(
        bt.Variant("per-leaf@10 optax.adam", bt.update_step(adam), ten, adam.init(ten), ten_g)
    )
    for name, make in CHAINS.items():
        tx = make(m)
        variants.append(
            bt.Variant(f"per-leaf@10 {name}", bt.update_step(tx), ten, tx.init(ten), ten_g)
        )
    layout = jaxreg.FlatLayout(five)
    fp, fg = layout.flatten(five), layout.flatten(five_g)
    stub = jaxreg._elementwise.prove_elementwise
    for proven in (False, True):
        if proven:  # what the real prover answers for optax.adam
            jaxreg._elementwise.prove_elementwise = lambda tx, sk, bl: None
        for name, make in FLAT.items():
            if proven and "regularized" not in name:
                continue  # proximal_adam holds no opaque piece
            if not proven and "regularized" in name and args.skip_views:
                continue
            ftx = jaxreg.flat(make(m), layout)
            label = f"flat@500 {name}" + (" [adam proven]" if proven else "")
            variants.append(bt.Variant(label, bt.update_step(ftx), fp, ftx.init(fp), fg))
    jaxreg._elementwise.prove_elementwise = stub
    bt.interleave(variants, args.rounds)
    med = {v.name: bt.median_ms(v) for v in variants}
    base = med["per-leaf@10 optax.adam"]
    print(f"machine: {os.cpu_count()} CPUs, jax {jax.__version__}, backend {jax.default_backend()}")
    for v in variants:
        print(
            f"  {v.name:58s} {med[v.name]:8.2f} ms  x{med[v.name] / base:.3f}  "
            f"compile {v.compile_s:6.2f} s"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {"median_ms": med, "ratio_to_adam@10": {k: x / base for k, x in med.items()}},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
