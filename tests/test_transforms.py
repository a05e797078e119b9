"""Optax transforms against the formulas of REFERENCE §2 and the contract of issue 2."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import nested_tree, np_block, np_soft, strict

import jaxreg

LR = 0.1


# name -> (factory(strength, learning_rate, mask), formula(p, v, t) on NumPy arrays)
PARAM_SIDE = {
    "weight_decay": (
        lambda s, lr, m=None: jaxreg.weight_decay(s, learning_rate=lr, mask=m),
        lambda p, v, t: v - t * p,
    ),
    "l1_prox": (
        lambda s, lr, m=None: jaxreg.l1_prox(s, learning_rate=lr, mask=m),
        lambda p, v, t: np_soft(v, t),
    ),
    "l2_prox": (
        lambda s, lr, m=None: jaxreg.l2_prox(s, learning_rate=lr, mask=m),
        lambda p, v, t: v / (1 + t),
    ),
    "elastic_net_prox": (
        lambda s, lr, m=None: jaxreg.elastic_net_prox(s, l1_ratio=0.3, learning_rate=lr, mask=m),
        lambda p, v, t: np_soft(v, 0.3 * t) / (1 + 0.7 * t),
    ),
    "group_lasso_prox": (
        lambda s, lr, m=None: jaxreg.group_lasso_prox(s, learning_rate=lr, mask=m),
        lambda p, v, t: np_block(v, t) if v.ndim >= 2 else v,
    ),
}
ALL = {
    **{k: f for k, (f, _) in PARAM_SIDE.items()},
    "add_l2_gradient": lambda s, lr, m=None: jaxreg.add_l2_gradient(s, mask=m),
}


def sgd_step(tx, params, grads):
    """One step of ``chain(sgd(LR), tx)``; returns new params and the raw updates."""
    sgd = optax.sgd(LR)
    updates, _ = sgd.update(grads, sgd.init(params), params)
    with strict():  # strict promotion around jaxreg's own call only
        updates, _ = tx.update(updates, tx.init(params), params)
    return optax.apply_updates(params, updates), updates


def grads_like(tree, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: (
            jnp.asarray(rng.normal(size=x.shape), x.dtype)
            if jnp.issubdtype(x.dtype, jnp.floating)
            else jnp.zeros_like(x)
        ),
        tree,
    )


@pytest.mark.parametrize("name", sorted(PARAM_SIDE))
def test_parameter_side_matches_formula(name):
    factory, formula = PARAM_SIDE[name]
    params, grads = nested_tree(), grads_like(nested_tree())
    new, _ = sgd_step(factory(0.7, LR), params, grads)
    for path in (("dense", "kernel"), ("dense", "bias")):
        p = np.asarray(params[path[0]][path[1]], np.float64)
        g = np.asarray(grads[path[0]][path[1]], np.float64)
        expected = formula(p, p - LR * g, LR * 0.7)
        np.testing.assert_allclose(new[path[0]][path[1]], expected, rtol=2e-5, atol=1e-6)
    # None and integer leaves pass through.
    assert new["extra"][1] is None
    assert int(new["step"]) == 3


@pytest.mark.parametrize("name", ["l1_prox", "elastic_net_prox", "group_lasso_prox"])
def test_exact_zeros_after_apply_updates(name):
    factory, _ = PARAM_SIDE[name]
    params = {"k": jnp.array([[0.05, 3.0], [-0.02, 4.0]], jnp.float32)}
    grads = jax.tree.map(jnp.zeros_like, params)
    new, _ = sgd_step(factory(2.0, LR), params, grads)  # threshold 0.2
    out = np.asarray(new["k"])
    assert out[0, 0] == 0.0 and out[1, 0] == 0.0, out
    assert np.all(out[:, 1] != 0.0)


def test_add_l2_gradient_equals_grad_of_penalty():
    params, grads = nested_tree(), grads_like(nested_tree())
    strength = {"dense": {"kernel": 0.3, "bias": 0.0}, "extra": 1.5, "step": 0.0}
    tx = jaxreg.add_l2_gradient(strength)
    with strict():
        out, _ = tx.update(grads, tx.init(params), params)
    pen_grad = jax.grad(jaxreg.l2_penalty, allow_int=True)(params, strength)
    for a, b, g in zip(
        jax.tree.leaves(out)[:-1],
        jax.tree.leaves(pen_grad)[:-1],
        jax.tree.leaves(grads)[:-1],
        strict=True,
    ):
        np.testing.assert_allclose(a, b + g, rtol=1e-6)
    # literal 0.0 strength: bitwise the incoming gradient, same object.
    assert out["dense"]["bias"] is grads["dense"]["bias"]


@pytest.mark.parametrize("name", sorted(ALL))
def test_masked_out_and_zero_strength_bitwise_unchanged(name):
    params, grads = nested_tree(), grads_like(nested_tree())
    mask = {"dense": {"kernel": True, "bias": False}, "extra": True, "step": False}
    tx = ALL[name](0.5, LR, mask)
    with strict():
        out, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(out["dense"]["bias"], grads["dense"]["bias"])
    assert not np.array_equal(out["dense"]["kernel"], grads["dense"]["kernel"]) or name in (
        "group_lasso_prox",
    )
    strengths = {"dense": 0.0, "extra": 0.5, "step": 0.0}
    tx = ALL[name](strengths, LR)
    with strict():
        out, _ = tx.update(grads, tx.init(params), params)
    assert out["dense"]["kernel"] is grads["dense"]["kernel"]
    assert out["dense"]["bias"] is grads["dense"]["bias"]


def test_mask_function_and_prefix_give_same_result():
    params, grads = nested_tree(), grads_like(nested_tree())
    prefix = {"dense": {"kernel": True, "bias": False}, "extra": False, "step": False}

    def mask_fn(p):
        return jax.tree.map(lambda x: x.ndim == 2, p)

    a, _ = sgd_step(jaxreg.l1_prox(0.5, learning_rate=LR, mask=prefix), params, grads)
    b, _ = sgd_step(jaxreg.l1_prox(0.5, learning_rate=LR, mask=mask_fn), params, grads)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
@pytest.mark.parametrize("name", sorted(ALL))
def test_dtype_preserved(name, dtype):
    params = {"w": jnp.linspace(-1, 1, 8, dtype=dtype).reshape(2, 4)}
    grads = {"w": jnp.full((2, 4), 0.5, dtype)}
    tx = ALL[name](0.5, LR)
    with strict():
        updates, _ = tx.update(grads, tx.init(params), params)
    assert updates["w"].dtype == dtype
    assert optax.apply_updates(params, updates)["w"].dtype == dtype


def test_float64(x64):
    params = {"w": jnp.array([1e-9, 0.5, -2.0], jnp.float64)}
    grads = {"w": jnp.zeros(3, jnp.float64)}
    new, updates = sgd_step(jaxreg.l1_prox(1e-9, learning_rate=1.0), params, grads)
    assert updates["w"].dtype == jnp.float64
    np.testing.assert_array_equal(new["w"], [0.0, 0.5 - 1e-9, -2.0 + 1e-9])


@pytest.mark.parametrize("name", sorted(ALL))
def test_jit_does_not_retrace(name):
    params, grads = nested_tree(), grads_like(nested_tree())
    for tree in (params, grads):
        tree.pop("step")  # optax.adam itself retraces on integer leaves
    tx = optax.chain(optax.adam(LR), ALL[name](0.5, LR))
    state = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(3):
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert update._cache_size() == 1


@pytest.mark.parametrize("name", sorted(PARAM_SIDE))
def test_schedules_evaluated_at_count(name):
    factory, formula = PARAM_SIDE[name]
    lr = optax.linear_schedule(0.2, 0.05, 3)
    strength = optax.linear_schedule(1.0, 2.0, 3)
    tx = optax.chain(optax.sgd(lr), factory(strength, lr))
    params = {"k": jnp.asarray(np.random.default_rng(3).normal(size=(3, 2)), jnp.float32)}
    grads = {"k": jnp.full((3, 2), 0.3, jnp.float32)}
    state = tx.init(params)
    p = np.asarray(params["k"], np.float64)
    for count in range(3):
        with strict():
            updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        eta, lam = float(lr(count)), float(strength(count))
        p = formula(p, p - eta * 0.3, eta * lam)
        np.testing.assert_allclose(params["k"], p, rtol=2e-5, atol=1e-6)


def test_stateless_transforms_have_empty_state():
    params = nested_tree()
    for name, factory in ALL.items():
        state = factory(0.5, LR).init(params)
        assert jax.tree.leaves(state) == [], name
    state = jaxreg.l1_prox(optax.constant_schedule(0.1), learning_rate=LR).init(params)
    assert isinstance(state, jaxreg.ScheduleState) and int(state.count) == 0


@pytest.mark.parametrize("name", sorted(PARAM_SIDE))
def test_inject_hyperparams(name):
    factory, formula = PARAM_SIDE[name]

    def make(strength, learning_rate):
        return optax.chain(optax.sgd(learning_rate), factory(strength, learning_rate))

    tx = optax.inject_hyperparams(make)(strength=0.5, learning_rate=LR)
    params = {"k": jnp.asarray(np.random.default_rng(4).normal(size=(3, 2)), jnp.float32)}
    grads = {"k": jnp.full((3, 2), 0.3, jnp.float32)}
    state = tx.init(params)
    state.hyperparams["strength"] = jnp.asarray(2.0)
    update = jax.jit(tx.update)
    updates, state = update(grads, state, params)
    p = np.asarray(params["k"], np.float64)
    expected = formula(p, p - LR * 0.3, LR * 2.0)
    np.testing.assert_allclose(
        optax.apply_updates(params, updates)["k"], expected, rtol=2e-5, atol=1e-6
    )


def test_multisteps_accumulates_then_applies_prox():
    tx = optax.MultiSteps(
        optax.chain(optax.sgd(LR), jaxreg.l1_prox(1.0, learning_rate=LR)), every_k_schedule=2
    )
    params = {"w": jnp.array([0.05, 1.0, -2.0], jnp.float32)}
    state = tx.init(params)
    g1, g2 = {"w": jnp.array([0.1, 0.2, 0.3])}, {"w": jnp.array([0.3, 0.0, -0.1])}
    u1, state = tx.update(g1, state, params)
    p1 = optax.apply_updates(params, u1)
    np.testing.assert_array_equal(p1["w"], params["w"])  # nothing applied yet
    u2, state = tx.update(g2, state, p1)
    p2 = optax.apply_updates(p1, u2)
    v = np.array([0.05, 1.0, -2.0]) - LR * np.array([0.2, 0.1, 0.1])
    np.testing.assert_allclose(p2["w"], np_soft(v, LR * 1.0), rtol=1e-6, atol=1e-7)
    assert float(p2["w"][0]) == 0.0


def test_update_without_params_raises():
    for _name, factory in ALL.items():
        tx = factory(0.5, LR)
        with pytest.raises(ValueError, match="params"):
            tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


BAD = [
    (lambda: jaxreg.l1_prox(-1.0, learning_rate=0.1), "strength"),
    (lambda: jaxreg.l1_prox(float("nan"), learning_rate=0.1), "strength"),
    (lambda: jaxreg.l2_prox(float("inf"), learning_rate=0.1), "strength"),
    (lambda: jaxreg.weight_decay(0.1, learning_rate=-0.1), "learning_rate"),
    (lambda: jaxreg.weight_decay(0.1, learning_rate=float("nan")), "learning_rate"),
    (lambda: jaxreg.l1_prox(0.1, learning_rate=float("inf")), "learning_rate"),
    (lambda: jaxreg.add_l2_gradient(-0.5), "strength"),
    (lambda: jaxreg.add_l2_gradient({"a": 1.0, "b": -1.0}), "strength"),
    (lambda: jaxreg.elastic_net_prox(0.1, l1_ratio=1.5, learning_rate=0.1), "l1_ratio"),
    (lambda: jaxreg.elastic_net_prox(0.1, l1_ratio=-0.1, learning_rate=0.1), "l1_ratio"),
    (lambda: jaxreg.elastic_net_penalty(jnp.ones(2), l1_ratio=2.0), "l1_ratio"),
    (lambda: jaxreg.l1_prox(0.1, learning_rate=0.1, mask=False), "mask"),
    (lambda: jaxreg.l1_prox(0.1, learning_rate=0.1, mask=True), "mask"),
    (lambda: jaxreg.l1_prox(0.1, learning_rate=0.1, mask=jnp.ones(2, bool)), "mask"),
    (lambda: jaxreg.l1_prox(0.1, learning_rate=0.1, mask={"w": 1}), "mask"),
    (lambda: jaxreg.l1_penalty(jnp.ones(2), -1.0), "strength"),
    (lambda: jaxreg.l1_prox(lambda c: -0.1 + 0.0 * c, learning_rate=0.1), "strength"),
    (
        lambda: jaxreg.l1_prox(0.1, learning_rate=optax.linear_schedule(-1.0, 1.0, 10)),
        "learning_rate",
    ),
    (lambda: jaxreg.group_lasso_penalty(jnp.ones((2, 2)), group_axis=2), "group_axis"),
    (lambda: jaxreg.group_lasso_prox(0.1, learning_rate=0.1, group_axis="rows"), "group_axis"),
    (lambda: jaxreg.regularized(optax.adam, 0.1, l1=-1.0), "l1"),
    (lambda: jaxreg.regularized(optax.adam, -0.1), "learning_rate"),
    (lambda: jaxreg.l1_prox(True, learning_rate=0.1), "strength"),
]


@pytest.mark.parametrize("build,name", BAD)
def test_bad_input_names_the_argument(build, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        build()


def test_mask_structure_mismatch_raises_at_update():
    tx = jaxreg.l1_prox(0.1, learning_rate=0.1, mask={"a": True, "b": False})
    params = {"a": jnp.ones(2), "c": jnp.ones(2)}
    with pytest.raises(ValueError, match="`mask`"):
        tx.update(
            params,
            tx.init(params)
            if False
            else optax.masked(jaxreg.l1_prox(0.1, learning_rate=0.1), {"a": True, "c": True}).init(
                params
            ),
            params,
        )


def test_mask_function_returning_non_bool_raises():
    tx = jaxreg.l1_prox(0.1, learning_rate=0.1, mask=lambda p: jax.tree.map(lambda x: x, p))
    params = {"a": jnp.ones(2)}
    with pytest.raises(ValueError, match="`mask`"):
        tx.init(params)


def test_strength_tree_mismatch_raises():
    tx = jaxreg.l1_prox({"a": 0.1, "zzz": 0.2}, learning_rate=0.1)
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="`strength`"):
        tx.update(params, tx.init(params), params)


def test_inject_hyperparams_mask_function_fails_loudly_unless_static():
    def mask_fn(p):
        return jax.tree.map(lambda x: x.ndim > 1, p)

    params = {"k": jnp.ones((2, 2)), "b": jnp.ones(2)}
    bad = optax.inject_hyperparams(jaxreg.l1_prox)(0.1, learning_rate=0.1, mask=mask_fn)
    with pytest.raises(ValueError, match="static_args"):
        bad.init(params)
    good = optax.inject_hyperparams(jaxreg.l1_prox, static_args=("mask",))(
        0.1, learning_rate=0.1, mask=mask_fn
    )
    updates, _ = good.update(jax.tree.map(jnp.zeros_like, params), good.init(params), params)
    np.testing.assert_array_equal(updates["b"], 0.0)
    np.testing.assert_allclose(updates["k"], -0.01, rtol=1e-6)


def test_regularized_equals_explicit_chain():
    params, grads = nested_tree(), grads_like(nested_tree())
    mask = {"dense": {"kernel": True, "bias": False}, "extra": True, "step": False}
    a = jaxreg.regularized(
        optax.adam, LR, l1=0.01, l2=0.1, weight_decay=0.05, mask=mask, optimizer_kwargs={"b1": 0.8}
    )
    b = optax.chain(
        jaxreg.add_l2_gradient(0.1, mask=mask),
        optax.adam(LR, b1=0.8),
        jaxreg.weight_decay(0.05, learning_rate=LR, mask=mask),
        jaxreg.l1_prox(0.01, learning_rate=LR, mask=mask),
    )
    sa, sb, pa, pb = a.init(params), b.init(params), params, params
    for _ in range(3):
        ua, sa = a.update(grads, sa, pa)
        ub, sb = b.update(grads, sb, pb)
        pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_array_equal(x, y)


def test_regularized_under_inject_hyperparams_single_learning_rate():
    params = {"w": jnp.array([0.05, 1.0, -2.0], jnp.float32)}
    tx = optax.inject_hyperparams(functools.partial(jaxreg.regularized, optax.sgd))(
        learning_rate=0.5, l1=0.2
    )
    state = tx.init(params)
    state.hyperparams["learning_rate"] = jnp.asarray(0.25)
    updates, _ = jax.jit(tx.update)({"w": jnp.zeros(3)}, state, params)
    # one η drives both the SGD step and the prox threshold: t = 0.25 · 0.2
    np.testing.assert_allclose(
        optax.apply_updates(params, updates)["w"],
        np_soft(np.array([0.05, 1.0, -2.0]), 0.05),
        rtol=1e-6,
    )


def test_regularized_with_clipping_and_group_lasso():
    params = {"k": jnp.array([[0.01, 3.0], [0.01, 4.0]], jnp.float32)}
    grads = {"k": jnp.array([[0.0, 30.0], [0.0, 40.0]], jnp.float32)}
    tx = jaxreg.regularized(optax.sgd, 0.1, group_lasso=0.5, clip_norm=1.0)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    v = np.array([[0.01, 3.0 - 0.1 * 0.6], [0.01, 4.0 - 0.1 * 0.8]])
    np.testing.assert_allclose(new["k"], np_block(v, 0.05), rtol=1e-6)
    assert np.all(np.asarray(new["k"][:, 0]) == 0.0)
