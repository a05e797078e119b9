"""Sharding checks, run by ``tests/test_sharding.py`` in a process of its own.

Run with ``XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu``;
prints one JSON line ``{check: "ok" | error text}``. Importing this module has no
side effect (pytest's ``--doctest-modules`` imports it).

Layouts over a 1-d mesh of 8 devices (axis ``"x"``):

* data-parallel: every parameter replicated (``P()``);
* model-parallel: ``dense/kernel`` (16, 32) split along its output axis, ``dense/bias``
  along its only axis, ``out/kernel`` (32, 8) along its input axis, ``out/bias``
  replicated.

Checks per transform/optimizer and layout: 3 jitted steps equal the single-device
steps (bitwise for elementwise ones, 1e-6 where a reduction crosses devices); the
params and the state come out with the shardings they went in with; elementwise
ones compile to a step without any cross-device collective; a run resumed from a
checkpoint (NumPy save/load, and orbax for one case) is bitwise the uninterrupted
run. Group lasso over a sharded axis gives the NumPy group norms.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")
LAYOUTS = ("data", "model")
# name -> (elementwise: no collective expected and bitwise equality)
TXS = {
    "add_l2_gradient": True,
    "weight_decay": True,
    "l1_prox": True,
    "l2_prox": True,
    "elastic_net_prox": True,
    "group_lasso_prox": False,  # out/kernel's groups are reduced across devices
    "regularized": False,  # clip_by_global_norm: a global reduction
    "proximal_adam": True,
    "proximal_sgd": True,
    "proximal_adagrad": True,
    "ftrl": True,
}
CHECKS = [
    *(
        f"{kind}:{name}:{layout}"
        for name in TXS
        for layout in LAYOUTS
        for kind in ("equal", "sharding")
    ),
    *(f"no_collectives:{name}:{layout}" for name, ew in TXS.items() if ew for layout in LAYOUTS),
    *(f"resume:{name}:model" for name in TXS),
    "resume_orbax:regularized:model",
    "group_norms:sharded_axis",
    "device_count",
]


def _build(name):
    import optax

    import jaxreg

    lr = optax.linear_schedule(0.1, 0.02, 5)  # a schedule: the step count matters
    mask = jaxreg.kernels_only()
    return {
        "add_l2_gradient": lambda: optax.chain(
            jaxreg.add_l2_gradient(1e-2, mask=mask), optax.adam(lr)
        ),
        "weight_decay": lambda: optax.chain(
            optax.adam(lr), jaxreg.weight_decay(0.1, learning_rate=lr, mask=mask)
        ),
        "l1_prox": lambda: optax.chain(optax.adam(lr), jaxreg.l1_prox(0.3, learning_rate=lr)),
        "l2_prox": lambda: optax.chain(optax.sgd(lr), jaxreg.l2_prox(0.5, learning_rate=lr)),
        "elastic_net_prox": lambda: optax.chain(
            optax.sgd(0.1), jaxreg.elastic_net_prox(0.5, l1_ratio=0.3, learning_rate=0.1)
        ),
        "group_lasso_prox": lambda: optax.chain(
            optax.sgd(lr), jaxreg.group_lasso_prox(8.0, learning_rate=lr, mask=mask)
        ),
        "regularized": lambda: jaxreg.regularized(
            optax.adam,
            lr,
            l1=0.1,
            l2=1e-2,
            weight_decay=0.1,
            group_lasso=0.05,
            clip_norm=1.0,
            mask=mask,
        ),
        "proximal_adam": lambda: jaxreg.proximal_adam(lr, l1=0.2, weight_decay=0.1, mask=mask),
        "proximal_sgd": lambda: jaxreg.proximal_sgd(lr, l1=0.2, l2=0.1, momentum=0.9),
        "proximal_adagrad": lambda: jaxreg.proximal_adagrad(lr, l1=0.05, l2=0.1, mask=mask),
        "ftrl": lambda: jaxreg.ftrl(lr, l1=0.05, l2=0.1),
    }[name]()


def main() -> None:
    import jax
    import numpy as np
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxreg

    results: dict[str, str] = {}

    def record(check, fn):
        try:
            fn()
            results[check] = "ok"
        except Exception:
            results[check] = traceback.format_exc()[-3000:]

    mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    rng = np.random.default_rng(0)
    host = {
        "dense": {"kernel": rng.normal(size=(16, 32)), "bias": rng.normal(size=(32,))},
        "out": {"kernel": rng.normal(size=(32, 8)), "bias": rng.normal(size=(8,))},
    }
    host = jax.tree.map(lambda a: a.astype(np.float32), host)
    grads_host = [
        jax.tree.map(lambda a, k=k: (0.3 * (k + 1) * np.sin(a * (k + 2))).astype(np.float32), host)
        for k in range(4)
    ]
    specs = {
        "data": {"dense": {"kernel": P(), "bias": P()}, "out": {"kernel": P(), "bias": P()}},
        "model": {
            "dense": {"kernel": P(None, "x"), "bias": P("x")},
            "out": {"kernel": P("x", None), "bias": P()},
        },
    }
    one = jax.devices()[0]

    def put(tree, layout):
        shard = jax.tree.map(lambda s: NamedSharding(mesh, s), specs[layout])
        return jax.tree.map(jax.device_put, tree, shard)

    def put_single(tree):
        return jax.tree.map(lambda a: jax.device_put(a, one), tree)

    def make_step(tx):
        def step(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return jax.jit(step)

    replicated = NamedSharding(mesh, P())

    def init(tx, params):
        """``tx.init`` with every state leaf placed like its parameter (scalars replicated).

        Outputs of a jitted init that do not depend on the params' values (zeros, step
        counts) get no sharding from them: place them once, as users do with
        ``jax.jit(tx.init, out_shardings=...)``; the step then keeps every sharding.
        """
        by_shape = {tuple(x.shape): x.sharding for x in jax.tree.leaves(params)}
        state = jax.jit(tx.init)(params)
        return jax.tree.map(
            lambda x: jax.device_put(x, by_shape.get(tuple(x.shape), replicated)), state
        )

    def same_sharding(a, b):
        return a.sharding.is_equivalent_to(b.sharding, a.ndim)

    def same(a_tree, b_tree, bitwise):
        for a, b in zip(jax.tree.leaves(a_tree), jax.tree.leaves(b_tree), strict=True):
            if bitwise:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            else:
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)

    record("device_count", lambda: _assert(jax.device_count() == 8, jax.devices()))

    for name, elementwise in TXS.items():
        tx = _build(name)
        step = make_step(tx)
        # single-device reference: 3 steps
        single = put_single(host)
        single_state = jax.device_put(tx.init(single), one)
        for g in grads_host[:3]:
            single, single_state = step(single, single_state, put_single(g))

        for layout in LAYOUTS:
            params = put(host, layout)
            grads = [put(g, layout) for g in grads_host]
            state = init(tx, params)
            traj = [(params, state)]
            compiled = {}

            def run_steps(traj=traj, grads=grads, compiled=compiled, step=step):
                p, s = traj[0]
                compiled["exe"] = step.lower(p, s, grads[0]).compile()
                for g in grads:
                    p, s = compiled["exe"](p, s, g)
                    traj.append((p, s))

            record(f"run:{name}:{layout}", run_steps)
            if len(traj) < 5:
                for kind in ("equal", "sharding", "no_collectives", "resume"):
                    results.setdefault(f"{kind}:{name}:{layout}", results[f"run:{name}:{layout}"])
                continue
            del results[f"run:{name}:{layout}"]

            def equal(traj=traj, name=name, single=single):
                # sharded and single-device runs agree (1e-6: XLA may fuse a division
                # differently on one device; the resumed run below is bitwise)
                same(traj[3][0], single, bitwise=False)
                zeros = any(np.any(np.asarray(x) == 0) for x in jax.tree.leaves(traj[3][0]))
                _assert(zeros or name in ("add_l2_gradient", "weight_decay", "l2_prox"), "no 0")

            def sharding(traj=traj, params=params):
                for p, s in traj[1:]:
                    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(params), strict=True):
                        _assert(same_sharding(a, b), ("params resharded", a.sharding, b.sharding))
                    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(traj[0][1]), strict=True):
                        _assert(same_sharding(a, b), ("state resharded", a.sharding, b.sharding))
                by_shape = {tuple(x.shape): x for x in jax.tree.leaves(params)}
                for x in jax.tree.leaves(traj[-1][1]):
                    if tuple(x.shape) in by_shape:
                        _assert(
                            same_sharding(x, by_shape[tuple(x.shape)]),
                            ("state leaf not sharded like its param", x.shape, x.sharding),
                        )

            record(f"equal:{name}:{layout}", equal)
            record(f"sharding:{name}:{layout}", sharding)

            if elementwise:

                def no_collectives(compiled=compiled):
                    text = compiled["exe"].as_text()
                    found = [c for c in COLLECTIVES if c in text]
                    _assert(not found, f"collectives {found} in the compiled step")

                record(f"no_collectives:{name}:{layout}", no_collectives)

            if layout == "model":

                def resume(traj=traj, grads=grads, compiled=compiled):
                    with tempfile.TemporaryDirectory() as tmp:
                        path = os.path.join(tmp, "ckpt.npz")
                        leaves, treedef = jax.tree.flatten(traj[2])
                        shardings = [x.sharding for x in leaves]
                        np.savez(path, *[np.asarray(x) for x in leaves])
                        loaded = np.load(path)
                        restored = [
                            jax.device_put(loaded[f"arr_{i}"], sh) for i, sh in enumerate(shardings)
                        ]
                    p, s = jax.tree.unflatten(treedef, restored)
                    for g in grads[2:]:
                        p, s = compiled["exe"](p, s, g)
                    same((p, s), traj[4], bitwise=True)
                    for a, b in zip(jax.tree.leaves((p, s)), jax.tree.leaves(traj[4]), strict=True):
                        _assert(same_sharding(a, b), (a.sharding, b.sharding))

                record(f"resume:{name}:model", resume)

    def resume_orbax():
        import orbax.checkpoint as ocp

        tx = _build("regularized")
        step = make_step(tx)
        grads = [put(g, "model") for g in grads_host]
        params = put(host, "model")
        state = init(tx, params)
        straight = (params, state)
        for g in grads:
            straight = step(*straight, g)
        half = (params, state)
        for g in grads[:2]:
            half = step(*half, g)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = ocp.StandardCheckpointer()
            ckpt.save(os.path.join(tmp, "c"), {"p": half[0], "s": half[1]})
            ckpt.wait_until_finished()
            target = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"p": half[0], "s": half[1]})
            restored = ckpt.restore(os.path.join(tmp, "c"), target)
            ckpt.close()
        resumed = (restored["p"], restored["s"])
        for g in grads[2:]:
            resumed = step(*resumed, g)
        same(resumed, straight, bitwise=True)
        for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
            _assert(same_sharding(a, b), (a.sharding, b.sharding))

    record("resume_orbax:regularized:model", resume_orbax)

    def group_norms():
        # out/kernel (32, 8) split along axis 0: default groups (columns) reduce over
        # the sharded axis; group_axis=0 (rows) reduces within each device.
        kernel = host["out"]["kernel"]
        sharded = jax.device_put(kernel, NamedSharding(mesh, P("x", None)))
        t = 0.9
        for group_axis, reduce in ((-1, 0), (0, 1)):
            fn = jax.jit(lambda k, ga=group_axis: jaxreg.prox.group_lasso(k, t, group_axis=ga))
            out = fn(sharded)
            k64 = kernel.astype(np.float64)
            norms = np.sqrt((k64**2).sum(axis=reduce, keepdims=True))
            size = kernel.shape[reduce]
            expected = k64 * np.maximum(0, 1 - t * np.sqrt(size) / norms)
            np.testing.assert_allclose(np.asarray(out), expected, rtol=2e-6, atol=1e-6)
            _assert(same_sharding(out, sharded), out.sharding)
            _assert(
                np.any(np.all(np.asarray(out) == 0, axis=reduce)) or group_axis == 0,
                "expected a zeroed group",
            )
            pen = jax.jit(
                lambda k, ga=group_axis: jaxreg.group_lasso_penalty(k, 1.0, group_axis=ga)
            )
            np.testing.assert_allclose(float(pen(sharded)), np.sqrt(size) * norms.sum(), rtol=1e-6)
            text = fn.lower(sharded).compile().as_text()
            _assert(("all-reduce" in text) == (reduce == 0), "collective where not expected")

    record("group_norms:sharded_axis", group_norms)
    print(json.dumps(results))


def _assert(cond, msg):
    if not cond:
        raise AssertionError(msg)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
