"""Flat execution mode: layout round trips and flat step == per-leaf step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

LR = 0.1


def model_tree(seed=0):
    """Mixed float32 / bfloat16 params with kernels, biases, an int leaf and None."""
    rng = np.random.default_rng(seed)

    def arr(shape, dtype=jnp.float32):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {
        "dense1": {"kernel": arr((3, 4)), "bias": arr((4,))},
        "dense2": {"kernel": arr((4, 2), jnp.bfloat16), "bias": arr((2,), jnp.bfloat16)},
        "conv": {"kernel": arr((2, 2, 3, 2)), "scale": arr((2,))},
        "extra": (arr((5,)), None, arr((0,))),
        "step": jnp.asarray(3, jnp.int32),
    }


def grads_like(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: (
            jnp.asarray(0.5 * rng.normal(size=p.shape), p.dtype)
            if jnp.issubdtype(p.dtype, jnp.inexact)
            else jnp.zeros_like(p)
        ),
        params,
    )


def kernels(p):
    return jax.tree.map(lambda x: x.ndim >= 2, p)


def run_per_leaf(tx, params, steps=3, return_state=False):
    """``steps`` updates of the pytree step, in one jitted function."""
    if isinstance(tx, list):
        tx = optax.chain(*tx)
    grads = [grads_like(params, k + 1) for k in range(steps)]

    @jax.jit
    def run(params, grads):
        state = tx.init(params)
        for g in grads:
            u, state = tx.update(g, state, params)
            params = optax.apply_updates(params, u)
        return params, state

    params, state = run(params, grads)
    return (params, state) if return_state else params


def run_flat(tx, params, steps=3, labels=None):
    """The same steps in flat mode (flattening and unflattening inside the jit)."""
    layout = jaxreg.FlatLayout(params, labels=labels)
    ftx = jaxreg.flat(tx, layout)
    grads = [grads_like(params, k + 1) for k in range(steps)]

    @jax.jit
    def run(params, grads):
        flat_params = layout.flatten(params)
        state = ftx.init(flat_params)
        for g in grads:
            u, state = ftx.update(layout.flatten(g), state, flat_params)
            flat_params = optax.apply_updates(flat_params, u)
        return layout.unflatten(flat_params), state

    return run(params, grads)


def assert_trees_equal(a, b, exact=True):
    """Same dtypes and exact zeros; values bitwise, or within a few ulps.

    Two differently compiled XLA programs may contract ``a*b + c`` into an FMA in
    one and not the other, so the last bit of a value can differ.
    """
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        xf, yf = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if exact:
            np.testing.assert_array_equal(xf, yf)
        else:
            np.testing.assert_array_equal(xf == 0, yf == 0)
            rtol = 8e-3 if x.dtype == jnp.bfloat16 else 4e-7 * 8
            np.testing.assert_allclose(xf, yf, rtol=rtol, atol=1e-30)


# ------------------------------------------------------------------ layout


def test_round_trip_bitwise_mixed_dtypes():
    params = model_tree()
    flat, layout = jaxreg.flatten_params(params)
    assert set(flat) == {"float32", "bfloat16", "int32"}
    assert flat["bfloat16"].dtype == jnp.bfloat16 and flat["bfloat16"].shape == (10,)
    assert flat["float32"].shape == (12 + 4 + 24 + 2 + 5,)
    assert layout.num_params == 47 + 10 + 1
    back = layout.unflatten(flat)
    assert_trees_equal(back, params)
    # jit round trip and a layout from shapes only
    layout2 = jaxreg.FlatLayout(
        jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    )
    assert_trees_equal(jax.jit(layout2.unflatten)(layout2.flatten(params)), params)


def test_offsets_follow_leaf_order():
    params = {"a": jnp.arange(3.0), "b": jnp.arange(4.0).reshape(2, 2) + 10}
    flat, _ = jaxreg.flatten_params(params)
    np.testing.assert_array_equal(flat["float32"], [0, 1, 2, 10, 11, 12, 13])


def test_labels_split_buffers_and_lift():
    params = model_tree()
    layout = jaxreg.FlatLayout(params, labels=kernels)
    assert "float32/True" in layout.keys and "float32/False" in layout.keys
    assert_trees_equal(layout.unflatten(layout.flatten(params)), params)
    lifted = layout.lift(kernels, "mask")
    assert lifted["float32/True"] is True and lifted["float32/False"] is False
    with pytest.raises(ValueError, match="mask"):
        jaxreg.FlatLayout(params).lift(kernels, "mask")


def test_errors_name_the_argument():
    params = model_tree()
    flat, layout = jaxreg.flatten_params(params)
    with pytest.raises(ValueError, match="`tree`"):
        layout.flatten({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="`flat`"):
        layout.unflatten({"float32": flat["float32"]})
    with pytest.raises(ValueError, match="`layout`"):
        jaxreg.flat(optax.adam(LR), params)
    ftx = jaxreg.flat(optax.adam(LR), layout)
    with pytest.raises(ValueError, match="`updates`"):
        ftx.update(params, ftx.init(flat), flat)


def test_gradient_through_unflatten_is_the_flat_gradient():
    params = model_tree()
    flat, layout = jaxreg.flatten_params(params)

    def loss(p):
        return sum(
            jnp.sum(jnp.sin(x.astype(jnp.float32)) * (i + 1))
            for i, x in enumerate(jax.tree.leaves(p))
            if jnp.issubdtype(x.dtype, jnp.inexact)
        )

    g_flat = jax.jit(jax.grad(lambda fp: loss(layout.unflatten(fp)), allow_int=True))(flat)
    g_tree = jax.jit(jax.grad(loss, allow_int=True))(params)
    for key in ("float32", "bfloat16"):
        np.testing.assert_array_equal(g_flat[key], layout.flatten(g_tree)[key])


def test_state_round_trip(proven_elementwise):
    params = model_tree()
    tx = optax.adam(LR)
    _, flat_state = run_flat(tx, params)
    _, per_leaf_state = run_per_leaf(tx, params, return_state=True)
    _, layout = jaxreg.flatten_params(params)
    tree_state = layout.unflatten_state(flat_state)
    assert_trees_equal(tree_state[0].mu, per_leaf_state[0].mu)
    assert_trees_equal(tree_state[0].nu, per_leaf_state[0].nu)
    again = layout.flatten_state(tree_state)
    assert jax.tree.structure(again) == jax.tree.structure(flat_state)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(flat_state), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ flat == per-leaf

SCHED = optax.linear_schedule(LR, LR / 4, 3)

CASES = {
    "adam": lambda: optax.adam(LR),
    "adam+l1": lambda: optax.chain(optax.adam(LR), jaxreg.l1_prox(0.05, learning_rate=LR)),
    "adam+l1 mask fn": lambda: optax.chain(
        optax.adam(LR), jaxreg.l1_prox(0.05, learning_rate=LR, mask=kernels)
    ),
    "adam+decay per-leaf strengths": lambda: optax.chain(
        optax.adam(LR),
        jaxreg.weight_decay(
            {"dense1": 0.3, "dense2": 0.0, "conv": 0.1, "extra": 0.3, "step": 1.0},
            learning_rate=LR,
        ),
    ),
    "sgd+l2 grad schedule": lambda: optax.chain(
        jaxreg.add_l2_gradient(optax.linear_schedule(0.5, 0.1, 3)), optax.sgd(LR)
    ),
    "sgd+l2 prox schedules": lambda: optax.chain(
        optax.sgd(SCHED), jaxreg.l2_prox(0.2, learning_rate=SCHED)
    ),
    "sgd+elastic net mask": lambda: optax.chain(
        optax.sgd(LR),
        jaxreg.elastic_net_prox(
            {"dense1": 0.5, "dense2": 2.0, "conv": 0.5, "extra": 0.0, "step": 0.0},
            l1_ratio=0.7,
            learning_rate=LR,
            mask={"dense1": True, "dense2": True, "conv": False, "extra": True, "step": True},
        ),
    ),
    "sgd+group lasso": lambda: optax.chain(
        optax.sgd(LR), jaxreg.group_lasso_prox(1.5, learning_rate=LR)
    ),
    "sgd+group lasso axis0 mask": lambda: optax.chain(
        optax.sgd(LR),
        jaxreg.group_lasso_prox(
            {"dense1": 2.0, "dense2": 1.0, "conv": 0.7, "extra": 1.0, "step": 0.0},
            learning_rate=LR,
            group_axis=0,
            mask={"dense1": True, "dense2": True, "conv": False, "extra": True, "step": True},
        ),
    ),
    "regularized adam schedule": lambda: jaxreg.regularized(
        optax.adam, SCHED, l1=0.02, weight_decay=0.1, l2=0.01, mask=kernels
    ),
    "regularized group": lambda: jaxreg.regularized(optax.sgd, LR, group_lasso=1.0, l1=0.01),
    "list of transforms": lambda: [optax.adam(LR), jaxreg.l1_prox(0.05, learning_rate=LR)],
}


@pytest.mark.parametrize("name", list(CASES))
def test_flat_step_equals_per_leaf_step(name):
    params = model_tree()
    expected = run_per_leaf(CASES[name](), params)
    got, _ = run_flat(CASES[name](), params)
    assert_trees_equal(got, expected, exact=False)
    # something happened: the step moved the parameters
    assert not np.array_equal(got["dense1"]["kernel"], params["dense1"]["kernel"])


def test_group_lasso_zeroes_groups_like_numpy():
    """One SGD step with zero gradient + group prox against a NumPy formula."""
    kernel = np.array([[3.0, 0.1, 1.0], [4.0, 0.1, -1.0]], np.float32)
    bias = np.array([0.3, -0.2, 0.5], np.float32)
    params = {"k": jnp.asarray(kernel), "b": jnp.asarray(bias)}
    tx = optax.chain(optax.sgd(1.0), jaxreg.group_lasso_prox(0.5, learning_rate=1.0))
    flat_p, layout = jaxreg.flatten_params(params)
    ftx = jaxreg.flat(tx, layout)
    g = layout.flatten(jax.tree.map(jnp.zeros_like, params))
    u, _ = ftx.update(g, ftx.init(flat_p), flat_p)
    got = layout.unflatten(optax.apply_updates(flat_p, u))
    norms = np.linalg.norm(kernel, axis=0)
    expected = kernel * np.maximum(0, 1 - 0.5 * np.sqrt(2) / norms)
    np.testing.assert_allclose(got["k"], expected, rtol=1e-6)
    assert np.all(np.asarray(got["k"])[:, 1] == 0)
    np.testing.assert_array_equal(got["b"], bias)


def test_masked_l1_like_numpy():
    """Per-leaf strengths and a mask on a mixed buffer, against the soft-threshold formula."""
    params = {"a": jnp.array([0.3, -2.0]), "b": jnp.array([0.3, 0.05]), "c": jnp.array([1.0])}
    strength = {"a": 1.0, "b": 0.5, "c": 1.0}
    mask = {"a": True, "b": True, "c": False}
    tx = optax.chain(optax.sgd(0.5), jaxreg.l1_prox(strength, learning_rate=0.5, mask=mask))
    flat_p, layout = jaxreg.flatten_params(params)
    ftx = jaxreg.flat(tx, layout)
    g = layout.flatten({"a": jnp.array([0.2, 0.2]), "b": jnp.zeros(2), "c": jnp.ones(1)})
    u, _ = ftx.update(g, ftx.init(flat_p), flat_p)
    got = layout.unflatten(optax.apply_updates(flat_p, u))

    def soft(x, t):
        return np.sign(x) * np.maximum(np.abs(x) - t, 0)

    np.testing.assert_allclose(got["a"], soft(np.array([0.2, -2.1]), 0.5), rtol=1e-6)
    np.testing.assert_allclose(got["b"], soft(np.array([0.3, 0.05]), 0.25), rtol=1e-6)
    np.testing.assert_allclose(got["c"], [0.5], rtol=1e-6)


def test_clip_by_global_norm_equals_up_to_rounding():
    tx = lambda: jaxreg.regularized(optax.adam, LR, l1=0.01, clip_norm=0.5)  # noqa: E731
    params = model_tree()
    del params["step"]  # clip_by_global_norm does not take integer leaves
    got, _ = run_flat(tx(), params)
    expected = run_per_leaf(tx(), params)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        tol = 1e-2 if x.dtype == jnp.bfloat16 else 1e-4
        np.testing.assert_allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), atol=tol)


ISSUE4 = {
    "proximal_adam": lambda m: jaxreg.proximal_adam(LR, l1=0.05, weight_decay=0.1, mask=m),
    "proximal_sgd": lambda m: jaxreg.proximal_sgd(LR, l1=0.05, l2=0.1, momentum=0.9, mask=m),
    "proximal_adagrad": lambda m: jaxreg.proximal_adagrad(LR, l1=0.05, l2=0.1, mask=m),
    "ftrl": lambda m: jaxreg.ftrl(LR, l1=0.05, l2=0.1, mask=m),
}


@pytest.mark.parametrize("labels", [None, kernels], ids=["default-layout", "labels"])
@pytest.mark.parametrize("mask", [None, kernels], ids=["no-mask", "mask-fn"])
@pytest.mark.parametrize("name", list(ISSUE4))
def test_issue4_optimizers_flat(name, mask, labels):
    # The mask is written for the pytree, as users write it, whatever the layout.
    params = model_tree()
    del params["step"]
    expected = run_per_leaf(ISSUE4[name](mask), params)
    got, _ = run_flat(ISSUE4[name](mask), params, labels=labels)
    assert_trees_equal(got, expected, exact=False)


# ------------------------------------------------------------------ state and tracing


def test_state_is_empty_for_uniform_or_labelled_regularizers():
    params = model_tree()
    flat_p, layout = jaxreg.flatten_params(params)
    tx = [optax.adam(LR), jaxreg.l1_prox(0.05, learning_rate=LR)]
    state = jaxreg.flat(tx, layout).init(flat_p)
    assert state[1] == optax.EmptyState()
    assert isinstance(state[0][0], optax.ScaleByAdamState)
    masked = [optax.adam(LR), jaxreg.l1_prox(0.05, learning_rate=LR, mask=kernels)]
    state = jaxreg.flat(masked, layout).init(flat_p)
    assert isinstance(state[1], jaxreg.FlatRegState)
    (ids,) = state[1].ids
    assert ids["float32"].dtype == jnp.uint8
    labelled = jaxreg.FlatLayout(params, labels=kernels)
    state = jaxreg.flat(masked, labelled).init(labelled.flatten(params))
    assert state[1] == optax.EmptyState()
    got, _ = run_flat(masked, params, labels=kernels)
    assert_trees_equal(got, run_per_leaf(masked, params), exact=False)


def test_jit_update_does_not_retrace():
    params = model_tree()
    del params["step"]  # apply_updates turns an int leaf into a weak float
    flat_p, layout = jaxreg.flatten_params(params)
    ftx = jaxreg.flat(jaxreg.regularized(optax.adam, SCHED, l1=0.01, mask=kernels), layout)
    state = ftx.init(flat_p)
    traces = []

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s, g):
        traces.append(1)
        u, s = ftx.update(g, s, p)
        return optax.apply_updates(p, u), s

    g = layout.flatten(grads_like(params, 1))
    flat_p, state = step(flat_p, state, g)
    flat_p, state = step(flat_p, state, g)
    assert len(traces) == 1
    assert int(state[-1].count) == 2
