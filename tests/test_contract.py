"""The contract battery optax runs on its own optimizers (``optax/_src/alias_test.py``).

Run over every jaxreg optimizer, each with its regularizers switched on (small
strengths, so the parabola and Rosenbrock minimizers move by < 1e-3):

* converges on a parabola and on Rosenbrock, float32 and complex64, 10 000 steps,
  optax's tolerance (rtol = atol = 3e-2); ``optax.tree.map_params`` works;
* no retrace / recompile on the second jitted update;
* accepts extra keyword args in ``update``;
* works under ``optax.inject_hyperparams`` (same updates and inner state);
* updates keep the gradients' dtype (bfloat16, float32);
* state shapes, dtypes and shardings are stable across updates (f16 … c128), checked
  with ``lax.cond`` as optax does;
* works inside ``optax.MultiSteps`` (the first mini-step gives zero updates).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

OPTIMIZERS = [
    ("proximal_adam", {"learning_rate": 0.1, "l1": 1e-3, "weight_decay": 1e-4}),
    ("proximal_sgd", {"learning_rate": 1e-3, "l1": 1e-3, "l2": 1e-3, "momentum": 0.9}),
    ("proximal_adagrad", {"learning_rate": 1.0, "l1": 1e-3, "l2": 1e-3}),
    (
        "ftrl",
        {"learning_rate": 1.0, "l1": 1e-3, "l2": 1e-3, "l2_shrinkage": 1e-4, "beta": 0.1},
    ),
    # The same optimizers with no regularizer: the literal-0 defaults must give the
    # state tree the injected arrays give (issue 11).
    ("proximal_adam", {"learning_rate": 0.1}),
    ("proximal_sgd", {"learning_rate": 1e-3, "momentum": 0.9}),
    ("proximal_adagrad", {"learning_rate": 1.0}),
    ("ftrl", {"learning_rate": 1.0}),
]
IDS = [
    name + ("" if "l1" in kwargs else "-noreg" + str(len(kwargs))) for name, kwargs in OPTIMIZERS
]


def _abs_sq(x):
    return jnp.real(jnp.conj(x) * x)


def _parabola(dtype):
    initial = jnp.array([-1.0, 10.0, 1.0], dtype=dtype)
    final = jnp.array([1.0, -1.0, 1.0], dtype=dtype)
    if jnp.iscomplexobj(initial):
        final = final * (1 + 1j)

    def objective(params):
        return jnp.sum(_abs_sq(params - final))

    return initial, final, objective


def _rosenbrock(dtype):
    a, b = 1.0, 100.0
    if jnp.issubdtype(dtype, jnp.complexfloating):
        a = a * (1 + 1j)
    initial = jnp.array([0.0, 0.0], dtype=dtype)
    final = jnp.array([a, a**2], dtype=dtype)

    def objective(params):
        return _abs_sq(a - params[0]) + b * _abs_sq(params[1] - params[0] ** 2)

    return initial, final, objective


def _make(name, kwargs):
    return getattr(jaxreg, name)(**kwargs)


@pytest.mark.parametrize("target", [_parabola, _rosenbrock], ids=["parabola", "rosenbrock"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64], ids=["f32", "c64"])
@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_optimization(name, kwargs, target, dtype):
    opt = _make(name, kwargs)
    initial, final, objective = target(dtype)
    traces = []

    def step(params, state):
        traces.append(None)
        grads = jax.tree.map(jnp.conj, jax.grad(objective)(params))
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    jit_step = jax.jit(step)
    params, state = initial, opt.init(initial)
    state = optax.tree.map_params(opt, lambda x: x, state)
    params, state = jit_step(params, state)
    params, state = jit_step(params, state)
    assert len(traces) == 1, f"{name} retraces on the second update"

    def body(_, carry):
        return step(*carry)

    params, state = jax.jit(lambda c: jax.lax.fori_loop(0, 10_000 - 2, body, c))((params, state))
    np.testing.assert_allclose(params, final, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_no_recompile_on_second_update(name, kwargs):
    opt = _make(name, kwargs)
    params = {"w": jnp.array([0.5, -2.0, 0.0]), "b": (jnp.ones((2, 2)), None)}
    grads = jax.tree.map(lambda x: 0.1 * x + 0.3, params)
    update = jax.jit(opt.update)
    state = opt.init(params)
    _, state = update(grads, state, params)
    size = update._cache_size()
    _, state = update(grads, state, params)
    assert update._cache_size() == size == 1


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_accepts_extra_args(name, kwargs):
    opt = _make(name, kwargs)
    initial, _, objective = _rosenbrock(jnp.float32)

    @jax.jit
    def step(params, state):
        grads = jax.grad(objective)(params)
        updates, state = opt.update(
            grads, state, params, unexpected_extra_args_your_optimizer_doesnt_expect=1
        )
        return optax.apply_updates(params, updates), state

    params, state = initial, opt.init(initial)
    for _ in range(2):
        params, state = step(params, state)
    assert np.all(np.isfinite(params))


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_inject_hyperparams(name, kwargs):
    factory = getattr(jaxreg, name)
    opt = factory(**kwargs)
    opt_inject = optax.inject_hyperparams(factory)(**kwargs)
    params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
    grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]
    update, update_inject = jax.jit(opt.update), jax.jit(opt_inject.update)
    state = jax.jit(opt.init)(params)
    state_inject = jax.jit(opt_inject.init)(params)
    for _ in range(3):  # several steps so that the prox and the moments matter
        updates, state = update(grads, state, params)
        updates_i, state_inject = update_inject(grads, state_inject, params)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-7),
            updates_i,
            updates,
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
            state_inject.inner_state,
            state,
        )
        params = optax.apply_updates(params, updates)
    assert jax.tree.structure(state_inject.inner_state) == jax.tree.structure(state)
    # The injected hyper-parameters are really used: changing l1 changes the updates.
    if "l1" not in state_inject.hyperparams:
        return
    state_inject.hyperparams["l1"] = jnp.asarray(0.5, jnp.float32)
    changed, _ = update_inject(grads, state_inject, params)
    unchanged, _ = update(grads, state, params)
    assert not np.allclose(changed[0], unchanged[0])


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_preserve_dtype(name, kwargs, dtype):
    opt = _make(name, kwargs)
    params = jnp.array([1.0, 2.0], dtype=dtype)
    grads = jax.grad(lambda x: jnp.sum(x**2))(params)
    state = jax.jit(opt.init)(params)
    updates, new_state = jax.jit(opt.update)(grads, state, params)
    assert updates.dtype == grads.dtype == jnp.dtype(dtype)
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)


STABILITY_DTYPES = [
    jnp.float16,
    jnp.bfloat16,
    jnp.float32,
    jnp.float64,
    jnp.complex64,
    jnp.complex128,
]


@pytest.mark.parametrize("dtype", STABILITY_DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_state_shape_dtype_shard_stability(name, kwargs, dtype):
    with jax.enable_x64(dtype in (jnp.float64, jnp.complex128)):
        opt = _make(name, kwargs)
        initial, _, objective = _parabola(dtype)

        @jax.jit
        def step(params, state):
            grads = jax.tree.map(jnp.conj, jax.grad(objective)(params))
            # lax.cond needs both branches to agree in shapes and dtypes.
            cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
            updates, state = jax.lax.cond(
                cond, lambda: opt.update(grads, state, params), lambda: (params, state)
            )
            return optax.apply_updates(params, updates), state

        params, state = initial, opt.init(initial)
        leaves0, treedef0 = jax.tree.flatten(state)
        for _ in range(2):
            params, new_state = step(params, state)
            assert params.dtype == dtype
            leaves1, treedef1 = jax.tree.flatten(new_state)
            assert treedef1 == treedef0
            for a, b in zip(leaves0, leaves1, strict=True):
                assert (a.shape, a.dtype) == (b.shape, b.dtype)
                assert a.sharding.is_equivalent_to(b.sharding, a.ndim)
            state = new_state


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_gradient_accumulation(name, kwargs, dtype):
    opt = optax.MultiSteps(_make(name, kwargs), every_k_schedule=4)
    params = jnp.array([1.0, 2.0], dtype=dtype)
    grads = jax.grad(lambda x: jnp.sum(x**2))(params)
    update = jax.jit(opt.update)
    state = opt.init(params)
    updates, state = update(grads, state, params)
    np.testing.assert_array_equal(updates, jnp.zeros_like(grads))
    assert updates.dtype == params.dtype
    # After k = 4 mini-steps the inner optimizer takes one real step.
    for _ in range(3):
        updates, state = update(grads, state, params)
    assert np.any(np.asarray(updates, np.float32) != 0)
