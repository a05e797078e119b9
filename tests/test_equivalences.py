"""REFERENCE §3.1–3.3: coupled L2 vs decoupled decay under SGD and Adam; adamw."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg

ETA, LAM = 0.05, 0.1


def train(tx, steps=20, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(32, 5)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(32,)), jnp.float32)
    params = {"w": jnp.asarray(rng.normal(size=(5,)), jnp.float32), "b": jnp.zeros((), jnp.float32)}

    def loss(p):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    state = tx.init(params)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params


def max_diff(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_sgd_coupled_l2_equals_decoupled_decay():
    coupled = train(optax.chain(jaxreg.add_l2_gradient(LAM), optax.sgd(ETA)))
    decoupled = train(optax.chain(optax.sgd(ETA), jaxreg.weight_decay(LAM, learning_rate=ETA)))
    for a, b in zip(jax.tree.leaves(coupled), jax.tree.leaves(decoupled), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_adam_coupled_l2_differs_from_decoupled_decay():
    coupled = train(optax.chain(jaxreg.add_l2_gradient(LAM), optax.adam(ETA)))
    decoupled = train(optax.chain(optax.adam(ETA), jaxreg.weight_decay(LAM, learning_rate=ETA)))
    assert max_diff(coupled, decoupled) > 1e-3


def test_sgd_momentum_coupled_l2_differs_from_decoupled_decay():
    coupled = train(optax.chain(jaxreg.add_l2_gradient(LAM), optax.sgd(ETA, momentum=0.9)))
    decoupled = train(
        optax.chain(optax.sgd(ETA, momentum=0.9), jaxreg.weight_decay(LAM, learning_rate=ETA))
    )
    assert max_diff(coupled, decoupled) > 1e-3


def test_adam_then_weight_decay_equals_optax_adamw():
    ours = train(optax.chain(optax.adam(ETA), jaxreg.weight_decay(LAM, learning_rate=ETA)))
    ref = train(optax.adamw(ETA, weight_decay=LAM))
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    sched = optax.cosine_decay_schedule(ETA, 20)
    ours = train(optax.chain(optax.adam(sched), jaxreg.weight_decay(LAM, learning_rate=sched)))
    ref = train(optax.adamw(sched, weight_decay=LAM))
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_regularized_adam_weight_decay_equals_adamw():
    ours = train(jaxreg.regularized(optax.adam, ETA, weight_decay=LAM))
    ref = train(optax.adamw(ETA, weight_decay=LAM))
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
