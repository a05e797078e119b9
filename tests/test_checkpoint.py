"""Optimizer state of every jaxreg transform through orbax and flax.serialization (issue 3).

Training resumed from a checkpoint must give bitwise the parameters (and state)
of training that was never interrupted, with a learning-rate schedule in the
chain so the step count in the state matters.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization

import jaxreg

ocp = pytest.importorskip("orbax.checkpoint")

SCHED = optax.linear_schedule(0.1, 0.02, transition_steps=5)
DECAY = optax.linear_schedule(0.05, 0.2, transition_steps=5)  # a strength schedule too
MASK = jaxreg.no_bias_no_norm()
STRENGTHS = jaxreg.path_strengths({r"kernel$": 0.05, r"scale$": 0.01})


def _chain_last(reg):
    return optax.chain(optax.adam(SCHED), reg)


FACTORIES = {
    "add_l2_gradient": lambda: optax.chain(
        jaxreg.add_l2_gradient(DECAY, mask=MASK), optax.adam(SCHED)
    ),
    "weight_decay": lambda: _chain_last(jaxreg.weight_decay(DECAY, learning_rate=SCHED, mask=MASK)),
    "l1_prox": lambda: _chain_last(jaxreg.l1_prox(STRENGTHS, learning_rate=SCHED)),
    "l2_prox": lambda: _chain_last(jaxreg.l2_prox(DECAY, learning_rate=SCHED, mask=MASK)),
    "elastic_net_prox": lambda: _chain_last(
        jaxreg.elastic_net_prox(0.05, l1_ratio=0.5, learning_rate=SCHED, mask=MASK)
    ),
    "group_lasso_prox": lambda: _chain_last(
        jaxreg.group_lasso_prox(0.05, learning_rate=SCHED, mask=jaxreg.kernels_only())
    ),
    "regularized": lambda: jaxreg.regularized(
        optax.adam,
        SCHED,
        l1=0.02,
        l2=0.01,
        weight_decay=0.05,
        group_lasso=0.01,
        mask=MASK,
        clip_norm=1.0,
    ),
}
# The ready-made optimizers of issue 4, where present.
for _name, _make in {
    "proximal_adam": lambda: jaxreg.proximal_adam(SCHED, l1=0.02, weight_decay=0.01, mask=MASK),
    "proximal_sgd": lambda: jaxreg.proximal_sgd(SCHED, l1=0.02, l2=0.01, momentum=0.9),
    "proximal_adagrad": lambda: jaxreg.proximal_adagrad(SCHED, l1=0.02, l2=0.01, mask=MASK),
    "ftrl": lambda: jaxreg.ftrl(SCHED, l1=0.02, l2=0.01),
}.items():
    if hasattr(jaxreg, _name):
        FACTORIES[_name] = _make


def problem():
    rng = np.random.default_rng(0)
    params = {
        "Dense_0": {
            "kernel": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
        },
        "LayerNorm_0": {"scale": jnp.ones(3, jnp.float32)},
    }
    x = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)

    def loss(p):
        d = p["Dense_0"]
        scale = p["LayerNorm_0"]["scale"][None, :]
        return jnp.mean(((x @ d["kernel"] + d["bias"][None, :]) * scale - y) ** 2)

    return params, loss


def assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(x, y)


def orbax_roundtrip(tree, target, path):
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(path, tree)
    ckpt.wait_until_finished()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = ckpt.restore(path, abstract)
    ckpt.close()
    return restored


def flax_bytes_roundtrip(tree, target, path):
    del path
    return serialization.from_bytes(target, serialization.to_bytes(tree))


def flax_state_dict_roundtrip(tree, target, path):
    del path
    return serialization.from_state_dict(target, serialization.to_state_dict(tree))


SERIALIZERS = {
    "orbax": orbax_roundtrip,
    "flax_bytes": flax_bytes_roundtrip,
    "flax_state_dict": flax_state_dict_roundtrip,
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_resume_from_checkpoint_is_bitwise_identical(name, tmp_path):
    params, loss = problem()
    tx = FACTORIES[name]()

    @jax.jit
    def step(p, s):
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    # Uninterrupted: 6 steps.
    p, s = params, tx.init(params)
    for _ in range(6):
        p, s = step(p, s)
    p_full, s_full = p, s
    # Interrupted after 3 steps, saved, restored into a fresh target, resumed.
    p, s = params, tx.init(params)
    for _ in range(3):
        p, s = step(p, s)
    assert any(jnp.issubdtype(x.dtype, jnp.integer) for x in jax.tree.leaves(s))  # a count
    fresh = (params, tx.init(params))
    for sname, roundtrip in SERIALIZERS.items():
        restored = roundtrip((p, s), fresh, tmp_path / sname)
        assert_same(restored, (p, s))
        rp, rs = restored
        for _ in range(3):
            rp, rs = step(rp, rs)
        assert_same(rp, p_full)
        assert_same(rs, s_full)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(p_full), jax.tree.leaves(params), strict=True)
    )
