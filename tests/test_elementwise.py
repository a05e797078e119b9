"""The elementwise prover behind flat mode (jaxreg._elementwise.prove_elementwise).

Every transform it proves is checked numerically: the parameters are flattened
with ``jnp.concatenate`` per buffer (written here, not taken from jaxreg), the
transform runs on the flat dict and per leaf for three steps, and the two must
agree bitwise. Every transform it refuses must name why.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg._elementwise import prove_elementwise


def _params(seed=0):
    """float32 and bfloat16 buffers, a scalar leaf, a 3-D leaf, nested containers."""
    rng = np.random.default_rng(seed)
    return {
        "dense": {
            "kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=(4,)), jnp.bfloat16),
        },
        "conv": (
            jnp.asarray(rng.normal(size=(2, 3, 2)), jnp.float32),
            jnp.asarray(rng.normal(), jnp.bfloat16),
        ),
        "scale": jnp.asarray(rng.normal(size=(5,)), jnp.bfloat16),
    }


def _skeleton(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _buffers(tree):
    return [str(x.dtype) for x in jax.tree.leaves(tree)]


def _flatten(tree, keys):
    """{key: concatenation of the raveled leaves of that key, in leaf order}."""
    groups = {}
    for x, k in zip(jax.tree.leaves(tree), keys, strict=True):
        groups.setdefault(k, []).append(jnp.ravel(x))
    return {k: jnp.concatenate(v) for k, v in groups.items()}


def _unflatten(flat, like, keys):
    leaves, treedef = jax.tree.flatten(like)
    offset = {k: 0 for k in flat}
    out = []
    for x, k in zip(leaves, keys, strict=True):
        n = x.size
        out.append(flat[k][offset[k] : offset[k] + n].reshape(x.shape))
        offset[k] += n
    return jax.tree.unflatten(treedef, out)


def _grads(params, step, nan_step=None):
    rng = np.random.default_rng(100 + step)

    def one(x):
        g = rng.normal(size=x.shape) * 0.3
        if x.size > 1:
            g.flat[0] = 0.0  # an exact zero gradient too
            if step == nan_step:
                g.flat[1] = np.nan
        return jnp.asarray(g, x.dtype)

    return jax.tree.map(one, params)


def _bits(x):
    x = np.asarray(x)
    return x.view(np.uint16 if x.dtype.itemsize == 2 else np.uint32)


def _assert_same_run(tx, steps=3, nan_step=None, **extra):
    params = _params()
    keys = _buffers(params)
    flat_params = _flatten(params, keys)
    update = jax.jit(tx.update)
    state, flat_state = tx.init(params), tx.init(flat_params)
    for step in range(steps):
        g = _grads(params, step, nan_step)
        u, state = update(g, state, params, **extra)
        fu, flat_state = update(_flatten(g, keys), flat_state, flat_params, **extra)
        for want, got in zip(
            jax.tree.leaves(u), jax.tree.leaves(_unflatten(fu, params, keys)), strict=True
        ):
            assert want.dtype == got.dtype
            np.testing.assert_array_equal(_bits(want), _bits(got), err_msg=f"step {step}")
        params = optax.apply_updates(params, u)
        flat_params = optax.apply_updates(flat_params, fu)
    for want, got in zip(
        jax.tree.leaves(params),
        jax.tree.leaves(_unflatten(flat_params, params, keys)),
        strict=True,
    ):
        np.testing.assert_array_equal(_bits(want), _bits(got))


def _ndim_mask(p):
    return jax.tree.map(lambda x: x.ndim > 1, p)


PROVEN = {
    "adam": lambda: optax.adam(1e-2),
    "adamw": lambda: optax.adamw(1e-2, weight_decay=1e-2),
    "sgd": lambda: optax.sgd(1e-2),
    "sgd_momentum": lambda: optax.sgd(1e-2, momentum=0.9),
    "sgd_nesterov": lambda: optax.sgd(1e-2, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optax.rmsprop(1e-2),
    "adagrad": lambda: optax.adagrad(1e-2),
    "lion": lambda: optax.lion(1e-3),
    "adabelief": lambda: optax.adabelief(1e-2),
    "chain_adam_scale": lambda: optax.chain(optax.adam(1e-2), optax.scale(-1.0)),
    "scale_by_schedule": lambda: optax.scale_by_schedule(optax.linear_schedule(1.0, 0.1, 5)),
    "inject_adam": lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
    "inject_adam_schedule": lambda: optax.inject_hyperparams(optax.adam)(
        learning_rate=optax.cosine_decay_schedule(1e-2, 10)
    ),
    "adam_mu_bf16": lambda: optax.adam(1e-2, mu_dtype=jnp.bfloat16),
    "sign_sgd": lambda: optax.chain(optax.scale_by_sign(), optax.scale(-1e-2)),
    "clip": lambda: optax.chain(optax.clip(0.2), optax.sgd(1e-2)),
    "multi_steps_adam": lambda: optax.MultiSteps(optax.adam(1e-2), every_k_schedule=2),
    "jaxreg_l1_prox": lambda: optax.chain(
        optax.adam(1e-2), jaxreg.l1_prox(0.5, learning_rate=1e-2)
    ),
    "jaxreg_l1_sched": lambda: optax.chain(
        optax.sgd(optax.linear_schedule(0.1, 0.01, 3)),
        jaxreg.l1_prox(0.5, learning_rate=optax.linear_schedule(0.1, 0.01, 3)),
    ),
    "jaxreg_weight_decay": lambda: optax.chain(
        optax.adam(1e-2), jaxreg.weight_decay(0.1, learning_rate=1e-2)
    ),
    "jaxreg_add_l2": lambda: optax.chain(jaxreg.add_l2_gradient(0.1), optax.adam(1e-2)),
    "jaxreg_proximal_adam": lambda: jaxreg.proximal_adam(1e-2, l1=0.5),
    "jaxreg_proximal_sgd": lambda: jaxreg.proximal_sgd(1e-2, l1=0.5, momentum=0.9),
    # FTRL's in-place ordering depends on z' elementwise (jaxreg._kernels.after_elementwise).
    "jaxreg_ftrl": lambda: jaxreg.ftrl(0.1, l1=0.1),
    "jaxreg_proximal_adagrad": lambda: jaxreg.proximal_adagrad(0.1, l1=0.1),
    "radam": lambda: optax.radam(1e-2),
    "rprop": lambda: optax.rprop(1e-2),
}


def _swap_leaves():
    """Hands leaf 'x' the update of leaf 'y' (same shape): not leafwise."""

    def update(u, s, p=None):
        return {"x": u["y"], "y": u["x"]}, s

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _per_leaf_scale():
    """A different constant per leaf: fine per leaf, wrong on a shared buffer."""
    factors = {"dense": {"kernel": 1.0, "bias": 2.0}, "conv": (1.0, 2.0), "scale": 3.0}

    def update(u, s, p=None):
        return jax.tree.map(lambda x, c: x * jnp.asarray(c, x.dtype), u, factors), s

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _cond_on_scalar_leaf():
    def update(u, s, p=None):
        pick = jax.lax.cond(p["conv"][1] > 0, lambda x: x, lambda x: -x, u["scale"])
        return {**u, "scale": pick}, s

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _init_with_mean():
    def init(p):
        return jax.tree.map(lambda x: jnp.full_like(x, jnp.mean(x)), p)

    return optax.GradientTransformation(init, lambda u, s, p=None: (u, s))


def _times_iota():
    def update(u, s, p=None):
        return jax.tree.map(lambda x: x * jnp.arange(x.size, dtype=x.dtype).reshape(x.shape), u), s

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _elementwise_map(fn):
    def update(u, s, p=None):
        return jax.tree.map(fn, u), s

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _custom_vjp_sin():
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    f.defvjp(lambda x: (f(x), x), lambda r, g: (g * jnp.cos(r),))
    return _elementwise_map(f)


PROVEN["custom_jvp_softplus_gelu"] = lambda: _elementwise_map(
    lambda x: jax.nn.softplus(x) - jax.nn.gelu(x) + jax.nn.relu(x)
)
PROVEN["custom_vjp"] = _custom_vjp_sin
PROVEN["where_clip_nan_to_num"] = lambda: _elementwise_map(
    lambda x: jnp.where(jnp.isfinite(x), jnp.clip(x, -0.5, 0.5), 0.0).astype(x.dtype)
)


def _finite_kernel_only():
    """Skips every update when one leaf is not finite: a reduction over part of a buffer."""

    def update(u, s, p=None):
        ok = jnp.all(jnp.isfinite(u["dense"]["kernel"]))
        return jax.tree.map(lambda x: jnp.where(ok, x, jnp.zeros_like(x)), u), s

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


REFUSED = {
    "finite_over_some_leaves": (_finite_kernel_only, "covers some leaves of buffer 'float32'"),
    # A scalar computed from the leaf's shape: every leaf in a buffer would need
    # the same one, and the flat buffer has another shape.
    "divide_by_count": (
        lambda: _elementwise_map(lambda x: x / jnp.sum(jnp.ones_like(x))),
        "computed differently",
    ),
    "divide_by_size_literal": (lambda: _elementwise_map(lambda x: x / x.size), "differently"),
    "adamw_mask_fn": (lambda: optax.adamw(1e-2, mask=_ndim_mask), "on buffer 'float32'"),
    "masked_adam": (
        lambda: optax.masked(
            optax.adam(1e-2),
            {"dense": {"kernel": True, "bias": False}, "conv": (True, False), "scale": True},
        ),
        "not tied to a leaf",
    ),
    "masked_ndim_fn": (lambda: optax.masked(optax.sgd(1e-2), _ndim_mask), "update"),
    "clip_by_global_norm": (
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)),
        "reduce_sum",
    ),
    "clip_by_block_rms": (lambda: optax.clip_by_block_rms(1.0), "reduce_sum"),
    "trust_ratio": (lambda: optax.scale_by_trust_ratio(), "reduce_sum"),
    "lamb": (lambda: optax.lamb(1e-2), "reduce_sum"),
    "lars": (lambda: optax.lars(1e-2), "reduce_sum"),
    "adafactor": (lambda: optax.adafactor(1e-2), "update"),
    "per_leaf_decay_mask": (
        lambda: optax.chain(
            optax.adam(1e-2),
            optax.add_decayed_weights(
                1e-2,
                mask={
                    "dense": {"kernel": True, "bias": False},
                    "conv": (True, True),
                    "scale": True,
                },
            ),
        ),
        "share buffer 'bfloat16'",
    ),
    "per_leaf_constants": (_per_leaf_scale, "computed differently"),
    "group_lasso": (lambda: jaxreg.group_lasso_prox(0.1, learning_rate=1e-2), "reduce_sum"),
    "add_noise": (lambda: optax.add_noise(0.1, 0.5, 0), "not tied to a leaf"),
    "cond_on_leaf": (_cond_on_scalar_leaf, "`cond` chooses a branch"),
    "init_not_elementwise": (_init_with_mean, "init:"),
    "iota": (_times_iota, "update:"),
}


@pytest.mark.parametrize("name", sorted(PROVEN))
def test_proven_and_bitwise_equal(name):
    tx = PROVEN[name]()
    params = _params()
    assert prove_elementwise(tx, _skeleton(params), _buffers(params)) is None
    _assert_same_run(tx)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_reason(name):
    make, fragment = REFUSED[name]
    params = _params()
    reason = prove_elementwise(make(), _skeleton(params), _buffers(params))
    assert isinstance(reason, str) and fragment in reason, reason


def test_cross_leaf_refused():
    skel = {
        "x": jax.ShapeDtypeStruct((3,), jnp.float32),
        "y": jax.ShapeDtypeStruct((3,), jnp.float32),
    }
    reason = prove_elementwise(_swap_leaves(), skel, ["float32", "float32"])
    assert reason is not None and "depends on leaf ['y']" in reason, reason
    # In separate buffers the swap still moves data between leaves: refused.
    assert prove_elementwise(_swap_leaves(), skel, ["a", "b"]) is not None


def test_separate_buffers_allow_per_leaf_constants():
    # With one buffer per leaf, a per-leaf constant is fine per leaf but the
    # flat dict has another structure: the transform cannot run on it.
    params = _params()
    reason = prove_elementwise(_per_leaf_scale(), _skeleton(params), [str(i) for i in range(5)])
    assert reason is not None and "flat buffers" in reason


def test_labels_split_a_dtype():
    params = _params()
    keys = [
        "f32/a",
        "bf16",
        "bf16",
        "f32/b",
        "bf16",
    ]  # leaf order: conv[0], conv[1], bias, kernel, scale
    assert prove_elementwise(optax.adam(1e-2), _skeleton(params), keys) is None


def test_per_leaf_trace_errors_propagate():
    params = _params()
    with pytest.raises(ValueError, match="kernels_only"):
        prove_elementwise(
            jaxreg.proximal_adam(1e-2, l1=0.1, mask=jaxreg.kernels_only()),
            {"w": jax.ShapeDtypeStruct((2,), jnp.float32)},
            ["float32"],
        )
    assert prove_elementwise(optax.adam(1e-2), params, _buffers(params)) is None  # arrays work too


def test_bad_buffer_of_leaf():
    params = _params()
    with pytest.raises(ValueError, match="`buffer_of_leaf`"):
        prove_elementwise(optax.sgd(0.1), _skeleton(params), ["float32"])
    with pytest.raises(ValueError, match="one dtype"):
        prove_elementwise(optax.sgd(0.1), _skeleton(params), ["x"] * 5)


def test_many_leaves_is_fast():
    import time

    skel = {f"l{i}": jax.ShapeDtypeStruct((4, 3), jnp.float32) for i in range(200)}
    start = time.perf_counter()
    assert prove_elementwise(optax.adam(1e-2), skel, ["float32"] * 200) is None
    assert time.perf_counter() - start < 20.0  # generous: the machine is shared


def test_extra_args():
    tx = optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(patience=1, factor=0.5))
    params = _params()
    value = jax.ShapeDtypeStruct((), jnp.float32)
    assert (
        prove_elementwise(tx, _skeleton(params), _buffers(params), extra_args={"value": value})
        is None
    )
    _assert_same_run(tx, steps=4, value=jnp.asarray(1.0, jnp.float32))
    with pytest.raises(TypeError, match="value"):  # the per-leaf step fails the same way
        prove_elementwise(tx, _skeleton(params), _buffers(params))


def test_state_layout_depends_on_tree():
    def init(p):
        return {"per_leaf": jnp.zeros(len(jax.tree.leaves(p)))}

    tx = optax.GradientTransformation(init, lambda u, s, p=None: (u, s))
    params = _params()
    reason = prove_elementwise(tx, _skeleton(params), _buffers(params))
    assert reason is not None and "different structure" in reason


def test_python_float_leaf():
    skel = {"w": jax.ShapeDtypeStruct((3,), jnp.float32), "t": 1.5}
    assert prove_elementwise(optax.adam(1e-2), skel, ["float32", "float32"]) is None


def test_apply_if_finite_all_reduction():
    # "every leaf finite" is an and over leaves: exact on buffers too.
    tx = optax.apply_if_finite(optax.adam(1e-2), max_consecutive_errors=1)
    params = _params()
    assert prove_elementwise(tx, _skeleton(params), _buffers(params)) is None
    _assert_same_run(tx, steps=4, nan_step=1)


def test_permuting_reshape_refused():
    # lax.reshape(x, x.shape, dimensions=(1, 0)) transposes a square leaf.
    def update(u, s, p=None):
        return jax.tree.map(lambda x: jax.lax.reshape(x, x.shape, dimensions=(1, 0)), u), s

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update)
    skel = {"w": jax.ShapeDtypeStruct((3, 3), jnp.float32)}
    reason = prove_elementwise(tx, skel, ["float32"])
    assert reason is not None and "`reshape`" in reason, reason
