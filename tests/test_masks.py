"""Masks and strengths by parameter path (issue 3), on plain pytrees.

Framework models are in test_flax.py and test_equinox.py. Expected values are
NumPy formulas (REFERENCE §2) or explicit per-leaf pytrees, never the code under
test.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import strict

import jaxreg

LR = 0.5


def np_soft(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def tree():
    """linen-like params with a list, a tuple, a None and an int leaf."""
    rng = np.random.default_rng(0)
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    return {
        "Dense_0": {"kernel": f(3, 4), "bias": f(4)},
        "LayerNorm_0": {"scale": f(4), "bias": f(4)},
        "blocks": [{"attn": {"query": {"kernel": f(4, 2, 2)}}}, (f(2), None)],
        "step": jnp.asarray(3, jnp.int32),
    }


PATHS = [
    "Dense_0/bias",
    "Dense_0/kernel",
    "LayerNorm_0/bias",
    "LayerNorm_0/scale",
    "blocks/0/attn/query/kernel",
    "blocks/1/0",
    "step",
]


def sgd_prox(tx_reg, params, grads, *, combinator=False):
    """``apply_updates`` after ``chain(sgd(LR), tx_reg)``, and after ``sgd(LR)`` alone.

    With ``combinator=True`` ``tx_reg`` already contains the optimizer.
    """
    sgd = optax.sgd(LR)
    plain, _ = sgd.update(grads, sgd.init(params), params)
    if combinator:
        u, _ = tx_reg.update(grads, tx_reg.init(params), params)
    else:
        with strict():  # strict promotion around jaxreg's own call only
            u, _ = tx_reg.update(plain, tx_reg.init(params), params)
    return optax.apply_updates(params, u), optax.apply_updates(params, plain)


def grads_like(params, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: (
            jnp.asarray(rng.normal(size=x.shape), x.dtype)
            if jnp.issubdtype(x.dtype, jnp.inexact)
            else jnp.zeros_like(x)
        ),
        params,
    )


def flat(t):
    return dict(zip(jaxreg.param_paths(t), jax.tree.leaves(t), strict=True))


# ----------------------------------------------------------------------------- paths


def test_param_paths_join_keys_attributes_and_indices():
    assert jaxreg.param_paths(tree()) == PATHS
    assert jaxreg.param_paths(jnp.ones(3)) == [""]

    class Box:  # a registered class with attribute keys
        def __init__(self, w):
            self.w = w

    jax.tree_util.register_dataclass(Box, data_fields=["w"], meta_fields=[])
    assert jaxreg.param_paths({"m": Box([jnp.ones(1)])}) == ["m/w/0"]


def test_path_mask_include_exclude_rule():
    p = tree()
    expect_inc = {s: bool(re.search("kernel", s)) for s in PATHS}
    got = flat(jaxreg.path_mask(include="kernel")(p))
    assert got == expect_inc
    got = flat(jaxreg.path_mask(exclude=[r"(^|/)bias$", "scale"])(p))
    assert got == {s: not (s.endswith("bias") or "scale" in s) for s in PATHS}
    got = flat(jaxreg.path_mask(include=["kernel", r"^blocks/"], exclude=[r"query"])(p))
    assert got == {
        s: (("kernel" in s) or s.startswith("blocks/")) and "query" not in s for s in PATHS
    }
    compiled = jaxreg.path_mask(include=re.compile(r"KERNEL", re.IGNORECASE))(p)
    assert flat(compiled) == expect_inc
    assert flat(jaxreg.path_mask()(p)) == dict.fromkeys(PATHS, True)
    # The result is a bool pytree of the params' structure (None kept as a node).
    m = jaxreg.path_mask(include="kernel")(p)
    assert jax.tree.structure(m) == jax.tree.structure(jax.tree.map(lambda _: True, p))


def test_l1_prox_with_path_mask_matches_formula_and_passes_others_bitwise():
    p = tree()
    g = grads_like(p)
    mask = jaxreg.path_mask(include=r"kernel$")
    new, plain = sgd_prox(jaxreg.l1_prox(0.8, learning_rate=LR, mask=mask), p, g)
    for s, x in flat(new).items():
        ref = flat(plain)[s]
        if s.endswith("kernel"):
            np.testing.assert_allclose(x, np_soft(np.asarray(ref), LR * 0.8), rtol=1e-6)
        else:
            assert x.dtype == ref.dtype
            np.testing.assert_array_equal(x, ref)  # bitwise: untouched
    assert np.any(np.asarray(flat(new)["Dense_0/kernel"]) == 0.0)


@pytest.mark.parametrize("arg", ["include", "exclude"])
def test_pattern_matching_nothing_lists_the_paths(arg):
    p = tree()
    mask = jaxreg.path_mask(**{arg: [r"kernel", r"LayerNrom"]})
    tx = optax.chain(optax.sgd(LR), jaxreg.weight_decay(0.1, learning_rate=LR, mask=mask))
    with pytest.raises(ValueError, match=f"`{arg}` pattern 'LayerNrom' matches no") as err:
        tx.init(p)
    for s in PATHS:
        assert s in str(err.value)
    with pytest.raises(ValueError, match="LayerNrom"):
        jaxreg.l2_penalty(p, 1.0, mask=mask)


def test_bad_patterns_name_the_argument():
    with pytest.raises(ValueError, match="`include`"):
        jaxreg.path_mask(include=[3])
    with pytest.raises(ValueError, match=r"`exclude`.*regular expression"):
        jaxreg.path_mask(exclude="(")
    with pytest.raises(ValueError, match="`include`"):
        jaxreg.path_mask(include={"kernel": 1})
    with pytest.raises(ValueError, match="`embeddings`"):
        jaxreg.no_bias_no_norm(embeddings="no")


def test_path_mask_equals_explicit_bool_pytree_in_penalty_and_transform():
    p = tree()
    mask = jaxreg.path_mask(include="kernel")
    explicit = jax.tree.map(lambda _: False, p)
    explicit["Dense_0"]["kernel"] = True
    explicit["blocks"][0]["attn"]["query"]["kernel"] = True
    k1, k2 = p["Dense_0"]["kernel"], p["blocks"][0]["attn"]["query"]["kernel"]
    expect = 0.3 * (np.abs(k1).sum() + np.abs(k2).sum())
    np.testing.assert_allclose(jaxreg.l1_penalty(p, 0.3, mask=mask), expect, rtol=1e-6)
    g = grads_like(p)
    a, _ = sgd_prox(jaxreg.l2_prox(0.4, learning_rate=LR, mask=mask), p, g)
    b, _ = sgd_prox(jaxreg.l2_prox(0.4, learning_rate=LR, mask=explicit), p, g)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_ready_made_masks_on_torch_layout_dict():
    p = {
        "fc": {"weight": jnp.ones((3, 2)), "bias": jnp.zeros(3)},
        "ln": {"weight": jnp.ones(3), "bias": jnp.zeros(3)},  # 1-D weight: a norm scale
        "Embed_0": {"embedding": jnp.ones((4, 3))},
    }
    assert flat(jaxreg.kernels_only()(p)) == {
        "Embed_0/embedding": False,
        "fc/bias": False,
        "fc/weight": True,
        "ln/bias": False,
        "ln/weight": False,
    }
    assert flat(jaxreg.no_bias_no_norm()(p)) == {
        "Embed_0/embedding": True,
        "fc/bias": False,
        "fc/weight": True,
        "ln/bias": False,
        "ln/weight": False,
    }
    with pytest.raises(ValueError, match="selects no parameter"):
        jaxreg.no_bias_no_norm(embeddings=False, exclude="^fc/")(p)
    with pytest.raises(ValueError, match=r"kernels_only.*selects no parameter"):
        jaxreg.kernels_only()({"ln": {"scale": jnp.ones(3)}})
    with pytest.raises(ValueError, match="`exclude` pattern 'hed'"):
        jaxreg.kernels_only(exclude="hed")(p)
    assert (
        flat(jaxreg.kernels_only(exclude=r"^fc/")({**p, "h": {"kernel": jnp.ones((2, 2))}}))[
            "fc/weight"
        ]
        is False
    )


# ----------------------------------------------------------------------------- strengths


def test_path_strengths_in_penalty_match_numpy():
    p = tree()
    s = jaxreg.path_strengths({r"^Dense_0/kernel$": 0.5, r"query": 2.0}, default=0.1)
    expect = 0.0
    for path, x in flat(p).items():
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            continue
        lam = 0.5 if path == "Dense_0/kernel" else 2.0 if "query" in path else 0.1
        expect += lam * np.abs(np.asarray(x, np.float64)).sum()
    np.testing.assert_allclose(jaxreg.l1_penalty(p, s), expect, rtol=1e-6)
    # l2 penalty with default 0.0: only the matched leaves count.
    s0 = jaxreg.path_strengths({r"kernel$": 0.5})
    expect = sum(
        0.5 * 0.5 * (np.asarray(x, np.float64) ** 2).sum()
        for path, x in flat(p).items()
        if path.endswith("kernel")
    )
    np.testing.assert_allclose(jaxreg.l2_penalty(p, s0), expect, rtol=1e-6)


def test_path_strengths_in_l1_prox_match_numpy_and_default_zero_is_bitwise():
    p = tree()
    g = grads_like(p)
    s = jaxreg.path_strengths({r"^Dense_0/kernel$": 0.5, r"query": 2.0})
    new, plain = sgd_prox(jaxreg.l1_prox(s, learning_rate=LR), p, g)
    for path, x in flat(new).items():
        ref = np.asarray(flat(plain)[path])
        if path == "Dense_0/kernel":
            np.testing.assert_allclose(x, np_soft(ref, LR * 0.5), rtol=1e-6)
        elif "query" in path:
            np.testing.assert_allclose(x, np_soft(ref, LR * 2.0), rtol=1e-6)
        else:
            np.testing.assert_array_equal(x, ref)


TRANSFORMS = {
    "add_l2_gradient": lambda s: jaxreg.add_l2_gradient(s),
    "weight_decay": lambda s: jaxreg.weight_decay(s, learning_rate=LR),
    "l1_prox": lambda s: jaxreg.l1_prox(s, learning_rate=LR),
    "l2_prox": lambda s: jaxreg.l2_prox(s, learning_rate=LR),
    "elastic_net_prox": lambda s: jaxreg.elastic_net_prox(s, l1_ratio=0.3, learning_rate=LR),
    "group_lasso_prox": lambda s: jaxreg.group_lasso_prox(s, learning_rate=LR),
    "regularized": lambda s: jaxreg.regularized(optax.sgd, LR, l1=s, weight_decay=s),
}


def explicit_strengths(p):
    """The per-leaf strength pytree that path_strengths below must produce."""
    s = jax.tree.map(lambda _: 0.0, p)
    s["Dense_0"]["kernel"] = 0.3
    s["blocks"][0]["attn"]["query"]["kernel"] = 0.7
    s["LayerNorm_0"]["scale"] = 0.05
    return s


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_path_strengths_accepted_by_every_transform(name):
    p = tree()
    g = grads_like(p)
    ps = jaxreg.path_strengths({r"^Dense_0/kernel$": 0.3, r"query/kernel$": 0.7, "scale": 0.05})
    comb = name == "regularized"
    a, plain = sgd_prox(TRANSFORMS[name](ps), p, g, combinator=comb)
    b, _ = sgd_prox(TRANSFORMS[name](explicit_strengths(p)), p, g, combinator=comb)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    # A leaf left at the default 0.0 is passed through bitwise.
    np.testing.assert_array_equal(a["Dense_0"]["bias"], plain["Dense_0"]["bias"])
    assert not np.array_equal(a["Dense_0"]["kernel"], plain["Dense_0"]["kernel"])


@pytest.mark.parametrize(
    "penalty",
    [jaxreg.l1_penalty, jaxreg.l2_penalty, jaxreg.elastic_net_penalty, jaxreg.group_lasso_penalty],
)
def test_path_strengths_accepted_by_every_penalty(penalty):
    p = tree()
    ps = jaxreg.path_strengths({r"^Dense_0/kernel$": 0.3, r"query/kernel$": 0.7, "scale": 0.05})
    np.testing.assert_allclose(penalty(p, ps), penalty(p, explicit_strengths(p)), rtol=1e-6)


def test_path_strengths_schedule_values_use_the_step_count():
    p = {"w": jnp.array([1.0, -1.0, 0.25]), "b": jnp.array([1.0])}
    sched = optax.linear_schedule(0.1, 0.5, transition_steps=4)
    tx = jaxreg.l1_prox(jaxreg.path_strengths({"w": sched}), learning_rate=1.0)
    state = tx.init(p)
    assert isinstance(state, jaxreg.ScheduleState)  # needs_count saw the schedule
    zeros = jax.tree.map(jnp.zeros_like, p)
    w = np.asarray(p["w"])
    for k in range(3):
        u, state = tx.update(zeros, state, p)
        np.testing.assert_allclose(u["w"] + p["w"], np_soft(w, 0.1 + 0.1 * k), rtol=1e-6)
        np.testing.assert_array_equal(u["b"], zeros["b"])
    with pytest.raises(ValueError, match="schedule"):
        jaxreg.l1_penalty(p, jaxreg.path_strengths({"w": sched}))


def test_path_strengths_errors():
    p = tree()
    both = jaxreg.path_strengths({"kernel": 0.1, "Dense": 0.2})
    with pytest.raises(ValueError, match=r"'Dense_0/kernel' is matched by several"):
        jaxreg.l1_penalty(p, both)
    with pytest.raises(ValueError, match=r"`strength`.*'kernel'"):
        jaxreg.path_strengths({"kernel": -1.0})
    with pytest.raises(ValueError, match="`strength`"):
        jaxreg.path_strengths({"kernel": float("nan")})
    with pytest.raises(ValueError, match=r"`strength`.*default"):
        jaxreg.path_strengths({"kernel": 1.0}, default=-0.1)
    with pytest.raises(ValueError, match="`strength`"):
        jaxreg.path_strengths({"kernel": optax.linear_schedule(-1.0, 0.0, 5)})
    with pytest.raises(ValueError, match="`mapping`"):
        jaxreg.path_strengths([("kernel", 1.0)])
    with pytest.raises(ValueError, match="`strength` pattern 'kernal' matches no"):
        jaxreg.l1_prox(jaxreg.path_strengths({"kernal": 1.0}), learning_rate=LR).update(
            p, optax.EmptyState(), p
        )


def test_path_strengths_is_not_a_schedule_or_pytree():
    s = jaxreg.path_strengths({"kernel": 0.1})
    assert not callable(s)
    assert jax.tree.leaves(s) == [s]
    assert "kernel" in repr(s)
    assert "kernel" in repr(jaxreg.path_mask(include="kernel"))


# ----------------------------------------------------------------------------- jit, inject


def test_jit_does_not_retrace_with_path_mask_and_strengths():
    p = tree()
    g = grads_like(p)
    traces = []
    mask = jaxreg.path_mask(exclude=r"(^|/)bias$")

    def counted(t):
        traces.append(1)
        return mask(t)

    tx = jaxreg.l1_prox(
        jaxreg.path_strengths({"kernel": 0.1}, default=0.01), learning_rate=LR, mask=counted
    )
    state = tx.init(p)
    n0 = len(traces)
    upd = jax.jit(tx.update)
    u1, state = upd(g, state, p)
    n1 = len(traces)
    u2, state = upd(g, state, p)
    assert n1 > n0 and len(traces) == n1  # traced once, not again
    jax.tree.map(np.testing.assert_array_equal, u1, u2)


def test_inject_hyperparams_with_static_mask_equals_plain():
    p = tree()
    g = grads_like(p)
    mask = jaxreg.path_mask(include="kernel")
    inj = optax.inject_hyperparams(jaxreg.l1_prox, static_args=("mask",))(
        strength=0.4, learning_rate=LR, mask=mask
    )
    plain = jaxreg.l1_prox(0.4, learning_rate=LR, mask=mask)
    a, _ = inj.update(g, inj.init(p), p)
    b, _ = plain.update(g, plain.init(p), p)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    # optax's own adamw too (its mask is otherwise silently dropped; optax issue 913).
    adamw = optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
        learning_rate=0.1, weight_decay=0.5, mask=mask
    )
    u, _ = adamw.update(g, adamw.init(p), p)
    ref, _ = optax.adamw(0.1, weight_decay=0.5, mask=mask).update(
        g, optax.adamw(0.1, weight_decay=0.5, mask=mask).init(p), p
    )
    # (rounding differs: inject_hyperparams turns the floats into float32 arrays)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=2e-6), u, ref)


@pytest.mark.parametrize(
    "factory",
    [
        lambda m: optax.inject_hyperparams(jaxreg.l1_prox)(strength=0.4, learning_rate=LR, mask=m),
        lambda m: optax.inject_hyperparams(optax.adamw)(learning_rate=0.1, mask=m),
        lambda m: optax.inject_hyperparams(jaxreg.weight_decay)(
            strength=0.4, learning_rate=LR, mask=m
        ),
    ],
)
def test_inject_hyperparams_without_static_args_fails_loudly(factory):
    p = tree()
    for m in (jaxreg.path_mask(include="kernel"), jaxreg.kernels_only(), jaxreg.no_bias_no_norm()):
        with pytest.raises(ValueError, match=r"`mask`.*static_args=\('mask',\)"):
            factory(m).init(p)
