"""Step time, compile time and memory of every jaxreg transform against its optax baseline.

One jitted step = optimizer update + ``optax.apply_updates``, run in a realistic loop
(outputs fed back, parameter and state buffers donated), float32 params in a dict of
``(rows, 200)`` leaves. Variants of one case are timed *interleaved* (one step of
each in turn, order rotated every round) so that machine noise hits them alike;
medians and ratios to the baseline named in each row. Also reported: compile time
(``lower().compile()``), the compiled step's memory (XLA ``memory_analysis()``) and
the optimizer-state bytes of the regularizer alone (0 for stateless transforms).

    python benchmarks/bench_transforms.py --quick --out transforms.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg

LR, LAM = 1e-3, 1e-4
COLS = 200


# ----------------------------------------------------------------------- helpers


def make_tree(n_params: int, n_leaves: int, seed: int = 0, cols: int = COLS) -> dict:
    """``n_leaves`` float32 leaves of shape ``(n_params // n_leaves // cols, cols)``."""
    rows = max(1, n_params // n_leaves // cols)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_leaves)
    return {
        f"w{i:04d}": jax.random.normal(k, (rows, cols), jnp.float32) for i, k in enumerate(keys)
    }


def tree_bytes(tree: Any) -> int:
    return int(sum(x.nbytes for x in jax.tree.leaves(tree) if hasattr(x, "nbytes")))


def copy_tree(tree: Any) -> Any:
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def memory(compiled: Any) -> dict[str, int]:
    """XLA's memory analysis of a compiled step (bytes)."""
    try:
        m = compiled.memory_analysis()
    except Exception:
        return {}
    if m is None:
        return {}
    fields = ("argument", "output", "alias", "temp", "generated_code")
    return {f: int(getattr(m, f"{f}_size_in_bytes", 0)) for f in fields}


class Variant:
    """A jitted donated step with its own parameter/state buffers."""

    def __init__(self, name: str, step: Callable, params: Any, state: Any, grads: Any, **info):
        self.name = name
        self.info = info
        jitted = jax.jit(step, donate_argnums=(0, 1))
        t0 = time.perf_counter()
        self.compiled = jitted.lower(params, state, grads).compile()
        self.compile_s = time.perf_counter() - t0
        self.memory = memory(self.compiled)
        self.carry = (copy_tree(params), copy_tree(state))
        self.grads = grads
        self.times: list[float] = []
        self.step()  # warm-up

    def step(self) -> float:
        t0 = time.perf_counter()
        self.carry = self.compiled(*self.carry, self.grads)
        jax.block_until_ready(self.carry)
        return time.perf_counter() - t0

    def release(self) -> None:
        self.carry = None
        self.compiled = None


def interleave(variants: list[Variant], rounds: int) -> None:
    """One timed step of every variant per round, in a rotated order."""
    for r in range(rounds):
        k = r % len(variants)
        for var in variants[k:] + variants[:k]:
            var.times.append(var.step())


def median_ms(var: Variant) -> float:
    return 1e3 * statistics.median(var.times)


def update_step(tx: optax.GradientTransformation) -> Callable:
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return step


def l1_in_loss_step(lam: float) -> Callable:
    """Adam on ``g + ∇(lam·‖p‖₁)``: the L1 penalty added to the loss."""
    tx = optax.adam(LR)

    def step(p, s, g):
        pen = jax.grad(lambda q: jaxreg.l1_penalty(q, lam))(p)
        u, s = tx.update(jax.tree.map(jnp.add, g, pen), s, p)
        return optax.apply_updates(p, u), s

    return step


def flat_step(ftx: optax.GradientTransformation) -> Callable:
    """The flat-mode optimizer step: flat grads and params in, flat params out."""
    return update_step(ftx)


# ----------------------------------------------------------------------- variants

# name -> (factory of the per-leaf transform, baseline name)
TRANSFORMS: dict[str, tuple[Callable[[], Any], str]] = {
    "optax.adam": (lambda: optax.adam(LR), "optax.adam"),
    "optax.adamw": (lambda: optax.adamw(LR, weight_decay=LAM), "optax.adam"),
    "adam+l1_prox": (
        lambda: optax.chain(optax.adam(LR), jaxreg.l1_prox(LAM, learning_rate=LR)),
        "optax.adam",
    ),
    "adam+weight_decay": (
        lambda: optax.chain(optax.adam(LR), jaxreg.weight_decay(LAM, learning_rate=LR)),
        "optax.adamw",
    ),
    "adam+l2_prox": (
        lambda: optax.chain(optax.adam(LR), jaxreg.l2_prox(LAM, learning_rate=LR)),
        "optax.adam",
    ),
    "adam+elastic_net_prox": (
        lambda: optax.chain(optax.adam(LR), jaxreg.elastic_net_prox(LAM, learning_rate=LR)),
        "optax.adam",
    ),
    "adam+group_lasso_prox": (
        lambda: optax.chain(optax.adam(LR), jaxreg.group_lasso_prox(LAM, learning_rate=LR)),
        "optax.adam",
    ),
    "optax add_decayed_weights+adam": (
        lambda: optax.chain(optax.add_decayed_weights(LAM), optax.adam(LR)),
        "optax.adam",
    ),
    "add_l2_gradient+adam": (
        lambda: optax.chain(jaxreg.add_l2_gradient(LAM), optax.adam(LR)),
        "optax add_decayed_weights+adam",
    ),
    "regularized(adam, l1, wd)": (
        lambda: jaxreg.regularized(optax.adam, LR, l1=LAM, weight_decay=LAM),
        "optax.adamw",
    ),
}

# the regularizer alone, for its state bytes
ALONE: dict[str, Callable[[], Any]] = {
    "l1_prox": lambda: jaxreg.l1_prox(LAM, learning_rate=LR),
    "l2_prox": lambda: jaxreg.l2_prox(LAM, learning_rate=LR),
    "weight_decay": lambda: jaxreg.weight_decay(LAM, learning_rate=LR),
    "elastic_net_prox": lambda: jaxreg.elastic_net_prox(LAM, learning_rate=LR),
    "group_lasso_prox": lambda: jaxreg.group_lasso_prox(LAM, learning_rate=LR),
    "add_l2_gradient": lambda: jaxreg.add_l2_gradient(LAM),
    "l1_prox, masked": lambda: jaxreg.l1_prox(
        LAM, learning_rate=LR, mask=lambda p: jax.tree.map(lambda _: True, p)
    ),
    "l1_prox, schedule": lambda: jaxreg.l1_prox(
        LAM, learning_rate=optax.linear_schedule(LR, 0.0, 100)
    ),
}

QUICK_MANY_LEAVES = ("optax.adam", "optax.adamw", "adam+l1_prox", "adam+weight_decay")


def run_case(
    n_params: int,
    n_leaves: int,
    names: list[str],
    rounds: int,
    flat: bool = True,
    l1_in_loss: bool = True,
) -> dict:
    params = make_tree(n_params, n_leaves)
    grads = jax.tree.map(lambda x: 0.01 * x, make_tree(n_params, n_leaves, seed=1))
    variants = []
    for name in names:
        tx = TRANSFORMS[name][0]()
        variants.append(
            Variant(name, update_step(tx), params, tx.init(params), grads, base=TRANSFORMS[name][1])
        )
    if l1_in_loss:
        variants.append(
            Variant(
                "adam + L1 in the loss",
                l1_in_loss_step(LAM),
                params,
                optax.adam(LR).init(params),
                grads,
                base="optax.adam",
            )
        )
    if flat:
        flat_params, layout = jaxreg.flatten_params(params)
        flat_grads = layout.flatten(grads)
        for name, make in (
            ("flat optax.adam", lambda: optax.adam(LR)),
            (
                "flat adam+l1_prox",
                lambda: optax.chain(optax.adam(LR), jaxreg.l1_prox(LAM, learning_rate=LR)),
            ),
            (
                "flat adam+weight_decay",
                lambda: optax.chain(optax.adam(LR), jaxreg.weight_decay(LAM, learning_rate=LR)),
            ),
        ):
            ftx = jaxreg.flat(make(), layout)
            variants.append(
                Variant(
                    name,
                    flat_step(ftx),
                    flat_params,
                    ftx.init(flat_params),
                    flat_grads,
                    base="optax.adam",
                )
            )
    interleave(variants, rounds)
    by_name = {var.name: var for var in variants}
    rows = []
    for var in variants:
        base = by_name.get(var.info["base"])
        ref = by_name["optax.adam"]
        rows.append(
            {
                "name": var.name,
                "median_ms": median_ms(var),
                "min_ms": 1e3 * min(var.times),
                "baseline": var.info["base"] if base is not None else None,
                "ratio_to_baseline": median_ms(var) / median_ms(base) if base else None,
                "ratio_to_adam": median_ms(var) / median_ms(ref),
                "compile_s": var.compile_s,
                "compile_ratio_to_adam": var.compile_s / ref.compile_s,
                "memory": var.memory,
                "times_ms": [1e3 * t for t in var.times],
            }
        )
    for var in variants:
        var.release()
    return {"n_params": n_params, "n_leaves": n_leaves, "rounds": rounds, "rows": rows}


def state_bytes_alone(params: Any) -> dict[str, int]:
    return {name: tree_bytes(make().init(params)) for name, make in ALONE.items()}


def print_case(case: dict) -> None:
    print(
        f"\n{case['n_params']:,} params / {case['n_leaves']} leaves "
        f"({case['rounds']} interleaved rounds, donated loop)"
    )
    print(
        f"  {'variant':34s} {'median ms':>10s} {'x base':>7s} {'x adam':>7s} "
        f"{'compile s':>9s} {'x adam':>6s} {'temp MB':>8s}  baseline"
    )
    for r in case["rows"]:
        rb = f"{r['ratio_to_baseline']:.3f}" if r["ratio_to_baseline"] else "-"
        temp = r["memory"].get("temp", 0) / 1e6
        print(
            f"  {r['name']:34s} {r['median_ms']:10.2f} {rb:>7s} {r['ratio_to_adam']:7.3f} "
            f"{r['compile_s']:9.2f} {r['compile_ratio_to_adam']:6.2f} {temp:8.1f}  "
            f"{r['baseline'] or ''}"
        )


def run(quick: bool = True) -> dict:
    """All cases; ``quick`` keeps the 10M/500 case to the main transforms."""
    dev = jax.devices()[0]
    scale = 1 if quick else 3
    everything = list(TRANSFORMS)
    cases = [
        (1_000_000, 10, everything, 30 * scale),
        (10_000_000, 10, everything, 12 * scale),
        (10_000_000, 500, list(QUICK_MANY_LEAVES) if quick else everything, 12 * scale),
    ]
    out = {
        "device": f"{dev.platform}:{dev.device_kind}",
        "jax": jax.__version__,
        "optax": optax.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "cases": [],
    }
    for n, leaves, names, rounds in cases:
        case = run_case(n, leaves, names, rounds, l1_in_loss=not quick or leaves <= 10)
        print_case(case)
        out["cases"].append(case)
    out["state_bytes_alone"] = state_bytes_alone(make_tree(1_000_000, 10))
    print("\nstate bytes of the regularizer alone (1M params):")
    for name, b in out["state_bytes_alone"].items():
        print(f"  {name:22s} {b:>8d}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="default: fewer rounds and variants")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--out", default=None, help="write JSON results here")
    args = parser.parse_args()
    res = run(quick=not args.full)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
