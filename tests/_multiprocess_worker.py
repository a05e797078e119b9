"""One process of the multi-process check, run by ``tests/test_multiprocess.py``.

Usage: ``python _multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR CKPT_DIR``
with ``JAX_PLATFORMS=cpu`` and ``XLA_FLAGS=--xla_force_host_platform_device_count=D``.
With ``NUM_PROCESSES > 1`` it joins ``jax.distributed.initialize`` on
``127.0.0.1:PORT`` (loopback only, gloo CPU collectives); with 1 it is the
single-process reference. Importing this module has no side effect.

Each process trains a small MLP whose parameters are sharded over a 1-d mesh of
every device of every process (``dense/kernel`` split along its outputs,
``out/kernel`` along its inputs, the batch split too) with ``jaxreg.regularized``
(adam + clip + weight decay + L1, kernels only) and ``jaxreg.proximal_adam``. After 3
steps it saves params and optimizer state with orbax (every process writes its
shards), runs 2 more steps, restores the checkpoint into the same shardings, runs the
same 2 steps again and checks the two runs agree bitwise and keep their shardings.
Process 0 writes the gathered final params and state to ``OUT_DIR/final.npz``; every
process writes ``OUT_DIR/result_<id>.json`` (``{check: "ok" | error}``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

STEPS = 5
SAVE_AT = 3
NAMES = ("regularized", "proximal_adam")
CHECKS = [
    *(f"{kind}:{name}" for name in NAMES for kind in ("train", "sharding", "restore", "sparse")),
    "devices",
]


def _host_data():
    import numpy as np

    rng = np.random.default_rng(0)
    params = {
        "dense": {
            "kernel": (rng.normal(size=(8, 16)) / np.sqrt(8)).astype(np.float32),
            "bias": np.zeros(16, np.float32),
        },
        "out": {
            "kernel": (rng.normal(size=(16, 4)) / 4).astype(np.float32),
            "bias": np.zeros(4, np.float32),
        },
    }
    x = rng.normal(size=(STEPS, 16, 8)).astype(np.float32)
    w = rng.normal(size=(8, 4)).astype(np.float32) * (rng.random((8, 1)) < 0.5)
    y = (x @ w).astype(np.float32)
    return params, x, y


def _optimizer(name):
    import optax

    import jaxreg

    mask = jaxreg.kernels_only()
    if name == "regularized":
        return jaxreg.regularized(
            optax.adam, 3e-2, l1=3e-2, weight_decay=1e-3, mask=mask, clip_norm=1.0
        )
    return jaxreg.proximal_adam(3e-2, l1=3e-2, mask=mask)


def main(argv):
    pid, nproc, port, out_dir, ckpt_dir = int(argv[1]), int(argv[2]), argv[3], argv[4], argv[5]
    import jax

    if nproc > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{port}",
            num_processes=nproc,
            process_id=pid,
            initialization_timeout=60,
        )
    import jax.numpy as jnp
    import numpy as np
    import optax
    import orbax.checkpoint as ocp
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    results = {}
    mesh = jax.make_mesh((jax.device_count(),), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    specs = {
        "dense": {"kernel": P(None, "x"), "bias": P("x")},
        "out": {"kernel": P("x", None), "bias": P()},
    }
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    batch_sharding = NamedSharding(mesh, P("x", None))
    replicated = NamedSharding(mesh, P())

    def put(x, sharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    host, xs, ys = _host_data()

    def loss_fn(p, x, y):
        h = jax.nn.relu(x @ p["dense"]["kernel"] + p["dense"]["bias"])
        return jnp.mean((h @ p["out"]["kernel"] + p["out"]["bias"] - y) ** 2)

    def record(name, fn):
        try:
            fn()
            results[name] = "ok"
        except Exception:  # reported to the test, which fails on it
            results[name] = traceback.format_exc()[-2000:]

    def devices():
        want = 4
        if jax.device_count() != want or jax.process_count() != nproc:
            raise AssertionError((jax.device_count(), jax.process_count(), nproc))

    record("devices", devices)
    gathered = {}
    for name in NAMES:
        tx = _optimizer(name)
        state_shardings = optax.tree_map_params(
            tx,
            lambda _, s: s,
            jax.eval_shape(tx.init, host),
            shardings,
            transform_non_params=lambda _: replicated,
        )

        @jax.jit
        def step(p, s, x, y, tx=tx):
            grads = jax.grad(loss_fn)(p, x, y)
            updates, s = tx.update(grads, s, p)
            return optax.apply_updates(p, updates), s

        params = jax.tree.map(put, host, shardings)
        state = jax.jit(tx.init, out_shardings=state_shardings)(params)
        batches = [(put(xs[i], batch_sharding), put(ys[i], batch_sharding)) for i in range(STEPS)]
        run = {}

        def train(name=name, params=params, state=state, batches=batches, step=step, run=run):
            p, s = params, state
            for i, (x, y) in enumerate(batches):
                if i == SAVE_AT:
                    run["saved"] = (p, s)
                p, s = step(p, s, x, y)
            run["final"] = (p, s)

        record(f"train:{name}", train)
        if "final" not in run:
            continue

        def sharding(run=run, params=params, state=state):
            for a, b in zip(
                jax.tree.leaves(run["final"]), jax.tree.leaves((params, state)), strict=True
            ):
                if not a.sharding.is_equivalent_to(b.sharding, a.ndim):
                    raise AssertionError(("resharded", a.shape, a.sharding, b.sharding))

        record(f"sharding:{name}", sharding)

        def restore(name=name, run=run, batches=batches, step=step):
            path = os.path.join(os.path.abspath(ckpt_dir), name)
            tree = {"p": run["saved"][0], "s": run["saved"][1]}
            ckpt = ocp.StandardCheckpointer()
            ckpt.save(path, tree)
            ckpt.wait_until_finished()
            target = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
            restored = ckpt.restore(path, target)
            ckpt.close()
            p, s = restored["p"], restored["s"]
            for x, y in batches[SAVE_AT:]:
                p, s = step(p, s, x, y)
            for a, b in zip(jax.tree.leaves((p, s)), jax.tree.leaves(run["final"]), strict=True):
                if not a.sharding.is_equivalent_to(b.sharding, a.ndim):
                    raise AssertionError(("restored resharded", a.sharding, b.sharding))
                for sa, sb in zip(a.addressable_shards, b.addressable_shards, strict=True):
                    if not np.array_equal(np.asarray(sa.data), np.asarray(sb.data)):
                        raise AssertionError(f"restored run differs at {a.shape}")

        record(f"restore:{name}", restore)
        full = multihost_utils.process_allgather(run["final"], tiled=True)
        gathered[name] = full

        def sparse(full=full):
            kernels = [full[0]["dense"]["kernel"], full[0]["out"]["kernel"]]
            if not any(np.any(np.asarray(k) == 0) for k in kernels):
                raise AssertionError("the L1 prox produced no exact zero")

        record(f"sparse:{name}", sparse)

    if pid == 0:
        arrays = {}
        for name, tree in gathered.items():
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                arrays[f"{name}{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
        np.savez(os.path.join(out_dir, "final.npz"), **arrays)
    with open(os.path.join(out_dir, f"result_{pid}.json"), "w") as f:
        json.dump(results, f)
    if nproc > 1:
        multihost_utils.sync_global_devices("jaxreg-multiprocess-done")
        jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
