"""Hyper-parameters that go bad at run time (issue 12), for every transform and optimizer.

The rule (jaxreg._leafwise): a strength or learning rate that is negative or NaN at
run time gives NaN in the affected leaves (never anti-regularization); a learning
rate of 0 is "no step"; ``η·λ`` never overflows into ``0·inf``; an error raised by a
schedule when it is checked propagates.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

LR = 0.1
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float64]

# name -> factory(strength, learning_rate, **kw) as a whole optimizer step
TRANSFORMS = {
    "add_l2_gradient": lambda s, lr, **k: optax.chain(
        jaxreg.add_l2_gradient(s, **k), optax.sgd(lr)
    ),
    "weight_decay": lambda s, lr, **k: optax.chain(
        optax.sgd(lr), jaxreg.weight_decay(s, learning_rate=lr, **k)
    ),
    "l1_prox": lambda s, lr, **k: optax.chain(
        optax.sgd(lr), jaxreg.l1_prox(s, learning_rate=lr, **k)
    ),
    "l2_prox": lambda s, lr, **k: optax.chain(
        optax.sgd(lr), jaxreg.l2_prox(s, learning_rate=lr, **k)
    ),
    "elastic_net_prox": lambda s, lr, **k: optax.chain(
        optax.sgd(lr), jaxreg.elastic_net_prox(s, learning_rate=lr, **k)
    ),
    "group_lasso_prox": lambda s, lr, **k: optax.chain(
        optax.sgd(lr), jaxreg.group_lasso_prox(s, learning_rate=lr, **k)
    ),
    "regularized": lambda s, lr, **k: jaxreg.regularized(optax.sgd, lr, l1=s, **k),
}
OPTIMIZERS = {
    "proximal_adam": lambda s, lr, **k: jaxreg.proximal_adam(lr, l1=s, weight_decay=s, **k),
    "proximal_sgd": lambda s, lr, **k: jaxreg.proximal_sgd(lr, l1=s, l2=s, **k),
    "proximal_adagrad": lambda s, lr, **k: jaxreg.proximal_adagrad(lr, l1=s, l2=s, **k),
    "ftrl": lambda s, lr, **k: jaxreg.ftrl(lr, l1=s, l2=s, **k),
}
ALL = {**TRANSFORMS, **OPTIMIZERS}


def tree(dtype):
    return {
        "k": jnp.asarray([[0.5, -1.0], [0.0, 2.0]], dtype),
        "b": jnp.asarray([0.3, -0.2], dtype),
    }


def mask(p):
    return {"k": True, "b": False}


def step(tx, p, g, steps=1):
    state = tx.init(p)
    for _ in range(steps):
        u, state = tx.update(g, state, p)
        p = optax.apply_updates(p, u)
    return p


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", list(ALL))
def test_negative_or_nan_strength_at_run_time_gives_nan_in_affected_leaves(name, dtype, x64):
    p = tree(dtype)
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.1), p)
    for bad in (-0.5, float("nan")):
        # A traced strength under jit: not checkable when the factory is built.
        @jax.jit
        def run(s, p=p, g=g):
            return step(ALL[name](s, LR, mask=mask), p, g)

        out = run(jnp.asarray(bad, jnp.float32))
        assert np.all(np.isnan(np.asarray(out["k"], np.float32))), (name, bad)
        # masked-out leaves are not affected
        assert np.all(np.isfinite(np.asarray(out["b"], np.float32))), (name, bad)


@pytest.mark.parametrize("name", [n for n in ALL if n != "add_l2_gradient"])
def test_negative_learning_rate_at_run_time_gives_nan(name):
    # (add_l2_gradient takes no learning rate: there it belongs to optax.sgd.)
    p = tree(jnp.float32)
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.1), p)
    out = jax.jit(lambda lr: step(ALL[name](0.05, lr), p, g))(jnp.asarray(-0.1))
    assert np.all(np.isnan(np.asarray(out["k"]))), name


@pytest.mark.parametrize("name", list(ALL))
def test_injected_negative_strength_under_jit_gives_nan(name):
    factory = ALL[name]
    tx = optax.inject_hyperparams(lambda s: factory(s, LR))(s=0.05)
    p = tree(jnp.float32)
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.1), p)
    state = tx.init(p)
    state.hyperparams["s"] = jnp.asarray(-0.05)
    u, _ = jax.jit(tx.update)(g, state, p)
    assert np.all(np.isnan(np.asarray(u["k"]))), name


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", list(ALL))
def test_learning_rate_zero_is_no_step(name, dtype, x64):
    # A schedule that reaches 0 after two steps (cosine decay), then stays there.
    sched = optax.cosine_decay_schedule(LR, 2)
    p = tree(dtype)
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.3), p)
    tx = ALL[name](0.05, sched)
    state = tx.init(p)
    for k in range(5):
        u, state = tx.update(g, state, p)
        for leaf in jax.tree.leaves(u):
            arr = np.asarray(leaf, np.float64)
            assert np.all(np.isfinite(arr)), (name, k)
            if k >= 2:
                np.testing.assert_array_equal(arr, 0)
        p = optax.apply_updates(p, u)


def test_ftrl_cosine_schedule_to_zero_stays_finite():
    # The reproduction: every parameter used to become NaN once lr hit 0.
    tx = jaxreg.ftrl(optax.cosine_decay_schedule(0.1, 5), l1=0.01)
    p = jnp.asarray([0.5, -1.0, 0.0])
    state = tx.init(p)
    for _ in range(8):
        u, state = jax.jit(tx.update)(jnp.asarray([0.1, -0.2, 0.3]), state, p)
        p = optax.apply_updates(p, u)
    assert np.all(np.isfinite(np.asarray(p)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", [n for n in ALL if n not in ("add_l2_gradient", "ftrl")])
def test_overflowing_eta_lambda_shrinks_to_zero_without_nan(name, dtype):
    # weight_decay(1e39, learning_rate=0.1) on float32: η·λ overflows the dtype.
    p = {"k": jnp.asarray([[0.0, 1.0], [-2.0, 0.0]], dtype), "b": jnp.asarray([0.0, 3.0], dtype)}
    g = jax.tree.map(jnp.zeros_like, p)
    out = step(ALL[name](1e39, LR), p, g)
    for key in ("k",) + (() if name == "group_lasso_prox" else ("b",)):
        arr = np.asarray(out[key], np.float64)
        assert np.all(np.isfinite(arr)), (name, key)
        np.testing.assert_allclose(arr, 0, atol=1e-30)


def test_weight_decay_huge_strength_keeps_exact_zeros():
    p = jnp.asarray([0.0, 1.5, -2.0], jnp.float32)
    tx = optax.chain(optax.sgd(0.1), jaxreg.weight_decay(1e39, learning_rate=0.1))
    u, _ = tx.update(jnp.zeros(3), tx.init(p), p)
    np.testing.assert_array_equal(optax.apply_updates(p, u), [0.0, 0.0, 0.0])


def _raises_at_zero(count):
    raise RuntimeError("schedule failed")


@pytest.mark.parametrize(
    "build",
    [
        lambda: jaxreg.l1_prox(0.1, learning_rate=_raises_at_zero),
        lambda: jaxreg.l1_prox(_raises_at_zero, learning_rate=0.1),
        lambda: jaxreg.add_l2_gradient(_raises_at_zero),
        lambda: jaxreg.regularized(optax.adam, _raises_at_zero, l1=0.1),
        lambda: jaxreg.proximal_adam(_raises_at_zero),
        lambda: jaxreg.proximal_sgd(0.1, l1=_raises_at_zero),
        lambda: jaxreg.proximal_adagrad(_raises_at_zero),
        lambda: jaxreg.ftrl(_raises_at_zero),
    ],
)
def test_schedule_raising_at_step_zero_is_not_swallowed(build):
    with pytest.raises(RuntimeError, match="schedule failed"):
        build()


def test_pure_soft_threshold_with_traced_negative_threshold_is_nan():
    x = jnp.asarray([-2.0, 0.5, 3.0])
    out = jax.jit(jaxreg.prox.soft_threshold)(x, jnp.asarray(-1.0))
    assert np.all(np.isnan(np.asarray(out)))
    np.testing.assert_array_equal(jaxreg.prox.soft_threshold(x, 1.0), [-1.0, 0.0, 2.0])


def test_python_float_leaves_are_float_leaves():
    assert float(jaxreg.l1_penalty([0.5, -1.0], 1.0)) == 1.5
    params = {"a": 0.5, "b": jnp.asarray([0.3])}
    tx = optax.chain(optax.sgd(0.5), jaxreg.l1_prox(1.0, learning_rate=0.5))
    u, _ = tx.update({"a": 0.0, "b": jnp.zeros(1)}, tx.init(params), params)
    new = optax.apply_updates(params, u)
    assert float(new["a"]) == 0.0 and float(new["b"][0]) == 0.0
    # int, bool and None still pass through
    params = {"n": 3, "flag": True, "none": None, "w": jnp.ones(1)}
    u, _ = jaxreg.l1_prox(1.0, learning_rate=0.5).update(params, optax.EmptyState(), params)
    assert u["n"] is params["n"] and u["flag"] is params["flag"] and u["none"] is None


def test_literal_zero_learning_rate_python_number_is_no_step():
    p = tree(jnp.float32)
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.3), p)
    for name, factory in ALL.items():
        if name == "ftrl":  # ftrl refuses lr = 0 when built (it is "> 0")
            continue
        out = step(factory(0.05, 0.0), p, g)
        jax.tree.map(np.testing.assert_array_equal, out, p)
