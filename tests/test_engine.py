"""One engine: every mode gives the per-leaf answer, or refuses (issues 11 and 12).

The matrix: every transform and optimizer × {no mask, bool pytree, mask function,
``path_mask``, ``kernels_only``, ``path_strengths``, scheduled strength} × {per-leaf,
flat with the default layout, flat with ``labels=``} × {plain,
``inject_hyperparams``, ``MultiSteps``}. Expected values are the per-leaf step
(itself tested against closed forms in test_transforms / test_optimizers); a flat
step equals it (pass-through leaves bitwise, the rest to a few ulps) or the
configuration raises ``ValueError`` when it is built.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

LR = 0.1
S = 0.05


def params_tree():
    """A tiny flax-like tree: kernels, biases, a norm scale, a bf16 head, int, None."""
    rng = np.random.default_rng(0)

    def arr(shape, dtype=jnp.float32):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {
        "Dense_0": {"kernel": arr((3, 4)), "bias": arr((4,))},
        "LayerNorm_0": {"scale": arr((4,)), "bias": arr((4,))},
        "Dense_1": {"kernel": arr((4, 2), jnp.bfloat16), "bias": arr((2,), jnp.bfloat16)},
        "step": jnp.asarray(3, jnp.int32),
        "none": None,
    }


def grads_like(params, seed):
    rng = np.random.default_rng(seed)

    def one(p):
        if not jnp.issubdtype(p.dtype, jnp.inexact):
            return jnp.zeros_like(p)
        return jnp.asarray(0.5 * rng.normal(size=p.shape), p.dtype)

    return jax.tree.map(one, params)


def kernels(p):
    return jax.tree.map(lambda x: x.ndim >= 2, p)


BOOL_MASK = {
    "Dense_0": {"kernel": True, "bias": False},
    "LayerNorm_0": False,
    "Dense_1": {"kernel": True, "bias": True},
    "step": False,
    "none": False,
}

# variant -> (strength, mask)
VARIANTS = {
    "no-mask": lambda: (S, None),
    "bool-pytree": lambda: (S, BOOL_MASK),
    "mask-fn": lambda: (S, kernels),
    "path_mask": lambda: (S, jaxreg.path_mask(include=("Dense_1",), exclude=("bias",))),
    "kernels_only": lambda: (S, jaxreg.kernels_only()),
    "path_strengths": lambda: (jaxreg.path_strengths({"kernel": S, "scale": 0.02}), None),
    "schedule": lambda: (optax.linear_schedule(S, S / 5, 3), None),
}

# name -> (factory, kwargs(strength), names of the strength arguments)
PIECES = {
    "add_l2_gradient": (jaxreg.add_l2_gradient, lambda s: {"strength": s}),
    "weight_decay": (jaxreg.weight_decay, lambda s: {"strength": s, "learning_rate": LR}),
    "l1_prox": (jaxreg.l1_prox, lambda s: {"strength": s, "learning_rate": LR}),
    "l2_prox": (jaxreg.l2_prox, lambda s: {"strength": s, "learning_rate": LR}),
    "elastic_net_prox": (
        jaxreg.elastic_net_prox,
        lambda s: {"strength": s, "learning_rate": LR, "l1_ratio": 0.5},
    ),
    "group_lasso_prox": (jaxreg.group_lasso_prox, lambda s: {"strength": s, "learning_rate": LR}),
    "regularized": (
        functools.partial(jaxreg.regularized, optax.adam),
        lambda s: {"learning_rate": LR, "l1": s, "l2": s, "weight_decay": s, "group_lasso": s},
    ),
    "proximal_adam": (
        jaxreg.proximal_adam,
        lambda s: {"learning_rate": LR, "l1": s, "weight_decay": s},
    ),
    "proximal_sgd": (
        jaxreg.proximal_sgd,
        lambda s: {"learning_rate": LR, "l1": s, "l2": s, "momentum": 0.9},
    ),
    "proximal_adagrad": (
        jaxreg.proximal_adagrad,
        lambda s: {"learning_rate": LR, "l1": s, "l2": s},
    ),
    "ftrl": (jaxreg.ftrl, lambda s: {"learning_rate": LR, "l1": s, "l2": s}),
}
OPTIMIZERS = ("proximal_adam", "proximal_sgd", "proximal_adagrad", "ftrl")
STRENGTH_ARGS = ("strength", "l1", "l2", "weight_decay", "group_lasso")


def build(name, variant, wrapper):
    factory, kwargs_of = PIECES[name]
    strength, mask = VARIANTS[variant]()
    kwargs = kwargs_of(strength)
    if mask is not None:
        kwargs["mask"] = mask
    if wrapper == "inject":
        static = ["mask"] + (["group_axis"] if name in ("group_lasso_prox", "regularized") else [])
        if variant == "path_strengths":
            static += [k for k in kwargs if k in STRENGTH_ARGS]
        return optax.inject_hyperparams(factory, static_args=tuple(static))(**kwargs)
    tx = factory(**kwargs)
    if wrapper == "multisteps":
        return optax.MultiSteps(tx, every_k_schedule=2)
    return tx


def _maybe_jit(fn, tx):
    # Eager is fastest for these tiny trees, except around MultiSteps' lax.cond, which
    # would compile on every eager call: jit those runs once.
    return jax.jit(fn) if isinstance(tx, optax.MultiSteps) else fn


def run_per_leaf(tx, params, steps=3):
    grads = [grads_like(params, k + 1) for k in range(steps)]

    def run(params, grads):
        state = tx.init(params)
        for g in grads:
            u, state = tx.update(g, state, params)
            params = optax.apply_updates(params, u)
        return params

    return _maybe_jit(run, tx)(params, grads)


def run_flat(tx, params, labels=None, steps=3):
    layout = jaxreg.FlatLayout(params, labels=labels)
    ftx = jaxreg.flat(tx, layout)
    grads = [layout.flatten(grads_like(params, k + 1)) for k in range(steps)]

    def run(flat_params, grads):
        state = ftx.init(flat_params)
        for g in grads:
            u, state = ftx.update(g, state, flat_params)
            flat_params = optax.apply_updates(flat_params, u)
        return flat_params

    return layout.unflatten(_maybe_jit(run, tx)(layout.flatten(params), grads))


def assert_same(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        np.testing.assert_array_equal(x64 == 0, y64 == 0)  # exact zeros agree
        rtol = 1e-2 if x.dtype == jnp.bfloat16 else 2e-6
        np.testing.assert_allclose(x64, y64, rtol=rtol, atol=1e-7)


_REFERENCE = {}


def reference(name, variant, wrapper):
    key = (name, variant, wrapper)
    if key not in _REFERENCE:
        _REFERENCE[key] = run_per_leaf(build(name, variant, wrapper), params_tree())
    return _REFERENCE[key]


# Inside inject_hyperparams / MultiSteps a jaxreg piece is opaque to flat: it runs per
# leaf on views (whatever the mask), so two variants and one layout cover that path;
# the plain pieces translate themselves and get the whole matrix.
MATRIX = [
    (name, variant, layout, wrapper)
    for name in PIECES
    for variant in VARIANTS
    for layout in ("default", "labels")
    for wrapper in ("plain", "inject", "multisteps")
    if wrapper == "plain" or (variant in ("mask-fn", "schedule") and layout == "default")
]


@pytest.mark.parametrize(("name", "variant", "layout", "wrapper"), MATRIX)
def test_flat_equals_per_leaf_or_raises(name, variant, layout, wrapper):
    if name in OPTIMIZERS and variant == "path_strengths":
        # The optimizers take scalar (or scheduled) strengths: refused when built.
        with pytest.raises(ValueError, match="`l1`"):
            build(name, variant, wrapper)
        return
    want = reference(name, variant, wrapper)
    labels = kernels if layout == "labels" else None
    got = run_flat(build(name, variant, wrapper), params_tree(), labels=labels)
    assert_same(got, want)


@pytest.mark.parametrize("name", ["l1_prox", "weight_decay", "group_lasso_prox"])
def test_masked_out_leaves_are_bitwise_pass_through_in_both_modes(name):
    params = params_tree()
    tx = build(name, "mask-fn", "plain")
    g = grads_like(params, 1)
    u, state = tx.update(g, tx.init(params), params)
    assert state == optax.EmptyState()  # no MaskedState: the engine resolves the mask
    assert u["Dense_0"]["bias"] is g["Dense_0"]["bias"]
    layout = jaxreg.FlatLayout(params, labels=kernels)
    ftx = jaxreg.flat(tx, layout)
    fp = layout.flatten(params)
    fu, _ = ftx.update(layout.flatten(g), ftx.init(fp), fp)
    out = layout.unflatten(fu)
    np.testing.assert_array_equal(out["Dense_0"]["bias"], g["Dense_0"]["bias"])


# ----------------------------------------------------------- state structure


@pytest.mark.parametrize("name", list(PIECES))
def test_literal_zero_and_injected_array_give_the_same_state_tree(name):
    params = params_tree()
    factory, kwargs_of = PIECES[name]
    literal = factory(**kwargs_of(0.0))
    static = ("group_axis",) if name == "group_lasso_prox" else ()
    injected = optax.inject_hyperparams(factory, static_args=static)(**kwargs_of(0.0))
    s_lit, s_inj = literal.init(params), injected.init(params).inner_state
    assert jax.tree.structure(s_lit) == jax.tree.structure(s_inj)
    # ... and the literal 0 still passes every leaf through bitwise (transforms).
    if name not in OPTIMIZERS and name != "regularized":
        g = grads_like(params, 1)
        u, _ = literal.update(g, s_lit, params)
        for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g), strict=True):
            assert a is b


def test_jaxreg_objects_carry_their_description_in_their_type():
    for name in PIECES:
        factory, kwargs_of = PIECES[name]
        tx = factory(**kwargs_of(S))
        assert isinstance(tx, optax.GradientTransformationExtraArgs)
        assert hasattr(type(tx), "__jaxreg_flat__")


def test_no_side_registry_and_no_private_optax():
    import pathlib

    root = pathlib.Path(jaxreg.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        for banned in ("WeakKeyDictionary", "getclosurevars", "__qualname__", "optax._src"):
            assert banned not in text, f"{path.name} uses {banned}"


# ------------------------------------------------------ flat state and layouts


def test_checkpoint_of_flat_state_restored_under_a_changed_mask_recomputes():
    params = params_tree()
    layout = jaxreg.FlatLayout(params)
    fp = layout.flatten(params)
    mask_a = kernels
    mask_b = jaxreg.path_mask(include=("bias",))
    tx_a = jaxreg.flat(jaxreg.proximal_adam(LR, l1=1.0, mask=mask_a), layout)
    tx_b = jaxreg.flat(jaxreg.proximal_adam(LR, l1=1.0, mask=mask_b), layout)
    state_a = tx_a.init(fp)
    g = layout.flatten(grads_like(params, 1))
    _, state_a = jax.jit(tx_a.update)(g, state_a, fp)
    # "Checkpoint": to host and back, then continue with mask B.
    restored = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), state_a)
    got, _ = jax.jit(tx_b.update)(g, restored, fp)
    fresh_b = jaxreg.proximal_adam(LR, l1=1.0, mask=mask_b)
    tree_state = layout.unflatten_state(restored.inner)
    want, _ = fresh_b.update(layout.unflatten(g), tree_state, layout.unflatten(fp))
    assert_same(layout.unflatten(got), want)
    # The same with a jaxreg transform in a list (FlatRegState).
    la = [optax.sgd(LR), jaxreg.l1_prox(1.0, learning_rate=LR, mask=mask_a)]
    lb = [optax.sgd(LR), jaxreg.l1_prox(1.0, learning_rate=LR, mask=mask_b)]
    fa, fb = jaxreg.flat(la, layout), jaxreg.flat(lb, layout)
    _, sa = fa.update(g, fa.init(fp), fp)
    got, _ = fb.update(g, jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), sa), fp)
    want, _ = optax.chain(*lb).update(layout.unflatten(g), optax.chain(*lb).init(params), params)
    assert_same(layout.unflatten(got), want)


def test_flat_state_of_another_structure_is_refused():
    params = params_tree()
    layout = jaxreg.FlatLayout(params)
    fp = layout.flatten(params)
    plain = jaxreg.flat([jaxreg.l1_prox(1.0, learning_rate=LR)], layout)
    masked = jaxreg.flat([jaxreg.l1_prox(1.0, learning_rate=LR, mask=kernels)], layout)
    with pytest.raises(ValueError, match="`state`"):
        masked.update(layout.flatten(params), plain.init(fp), fp)


def test_flatten_params_never_aliases_the_callers_arrays():
    w = jnp.arange(4.0)
    flat_params, _ = jaxreg.flatten_params({"w": w})
    assert flat_params["float32"] is not w
    flat_params["float32"].delete()  # what a donating step does
    np.testing.assert_array_equal(w, np.arange(4.0))


def test_flatten_state_with_a_scalar_param_keeps_adams_count(proven_elementwise):
    p = jnp.asarray(1.5, jnp.float32)
    layout = jaxreg.FlatLayout(p)
    state = optax.adam(LR).init(p)
    flat_state = layout.flatten_state(state)
    assert flat_state[0].count.shape == ()  # not packed into a buffer
    assert isinstance(flat_state[0].mu, dict)
    again = layout.unflatten_state(flat_state)
    assert jax.tree.structure(again) == jax.tree.structure(state)
    ftx = jaxreg.flat(optax.adam(LR), layout)
    fp = layout.flatten(p)
    u, _ = ftx.update(layout.flatten(jnp.asarray(0.5)), flat_state, fp)
    np.testing.assert_allclose(u["float32"], [-LR], rtol=1e-5)
