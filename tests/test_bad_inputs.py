"""Bad input across the public API fails loudly; documented pass-throughs do not (issue 8).

Policy (README "Bad input and pass-through"):

* every bad argument raises ``ValueError`` whose message names the argument in
  backticks (`` `strength` ``) and states the rule it broke, at the latest on the
  first ``update`` (numbers are checked when a factory is built, schedules at step 0,
  masks and path patterns when they meet the params);
* pass-through, never an error: integer and boolean leaves are left untouched,
  ``None`` leaves stay ``None``, and an empty tree gives an empty update (penalty 0).

Each row of ``BAD`` is ``(api, id, thunk, argument, rule)``: ``thunk()`` must raise a
``ValueError`` whose message contains ``` `argument` ``` and matches ``rule``.
``test_every_public_function_has_a_bad_input_row`` keeps the table in step with
``jaxreg.__all__``.
"""

from __future__ import annotations

import functools
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

P = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
ZEROS = jax.tree.map(jnp.zeros_like, P)


def update(tx, params=P):
    """One update with zero gradients (where mask functions and patterns are applied)."""
    grads = jax.tree.map(jnp.zeros_like, params)
    return tx.update(grads, tx.init(params), params)


def update_without_params(tx):
    return tx.update(ZEROS, tx.init(P))


def neg_schedule(count):
    return -0.1 + 0.0 * count


def kernel_mask_fn(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


INJECT_HINT = r"static_args"
FINITE = r"finite and >= 0"
UNIT = r"\[0, 1\]"
BALL = r"bool"  # the mask rule mentions Python bools
PREFIX = r"prefix"
NO_PARAMS = r"not passing `params`"

TRANSFORMS = {
    "l1_prox": lambda s, **k: jaxreg.l1_prox(s, learning_rate=k.pop("learning_rate", 0.1), **k),
    "l2_prox": lambda s, **k: jaxreg.l2_prox(s, learning_rate=k.pop("learning_rate", 0.1), **k),
    "weight_decay": lambda s, **k: jaxreg.weight_decay(
        s, learning_rate=k.pop("learning_rate", 0.1), **k
    ),
    "elastic_net_prox": lambda s, **k: jaxreg.elastic_net_prox(
        s, learning_rate=k.pop("learning_rate", 0.1), **k
    ),
    "group_lasso_prox": lambda s, **k: jaxreg.group_lasso_prox(
        s, learning_rate=k.pop("learning_rate", 0.1), **k
    ),
}
OPTIMIZERS = {
    "proximal_adam": lambda **k: jaxreg.proximal_adam(k.pop("learning_rate", 0.1), **k),
    "proximal_sgd": lambda **k: jaxreg.proximal_sgd(k.pop("learning_rate", 0.1), **k),
    "proximal_adagrad": lambda **k: jaxreg.proximal_adagrad(k.pop("learning_rate", 0.1), **k),
    "ftrl": lambda **k: jaxreg.ftrl(k.pop("learning_rate", 0.1), **k),
}

BAD: list[tuple] = []


def bad(api, case_id, thunk, argument, rule):
    BAD.append(pytest.param(api, thunk, argument, rule, id=f"{api}-{case_id}"))


# ---- strengths and learning rates of every transform ---------------------------------
for _name, _make in TRANSFORMS.items():
    bad(_name, "negative-strength", functools.partial(_make, -1.0), "strength", FINITE)
    bad(_name, "nan-strength", functools.partial(_make, float("nan")), "strength", FINITE)
    bad(
        _name,
        "inf-learning_rate",
        lambda m=_make: m(0.1, learning_rate=np.inf),
        "learning_rate",
        FINITE,
    )
bad(
    "add_l2_gradient",
    "negative-strength",
    lambda: jaxreg.add_l2_gradient(-1e-4),
    "strength",
    FINITE,
)
bad(
    "add_l2_gradient",
    "inf-strength",
    lambda: jaxreg.add_l2_gradient(float("inf")),
    "strength",
    FINITE,
)
bad(
    "l1_prox",
    "negative-learning_rate",
    lambda: jaxreg.l1_prox(0.1, learning_rate=-0.1),
    "learning_rate",
    FINITE,
)
bad(
    "l1_prox",
    "None-learning_rate",
    lambda: jaxreg.l1_prox(0.1, learning_rate=None),
    "learning_rate",
    r"number, an array scalar or an optax schedule",
)
bad(
    "l1_prox",
    "str-strength",
    lambda: jaxreg.l1_prox("0.1", learning_rate=0.1),
    "strength",
    r"number, an array scalar or an optax schedule",
)
bad(
    "l1_prox",
    "bool-strength",
    lambda: jaxreg.l1_prox(True, learning_rate=0.1),
    "strength",
    r"real number .*got the bool",
)
bad(
    "l1_prox",
    "complex-strength",
    lambda: jaxreg.l1_prox(1j, learning_rate=0.1),
    "strength",
    r"real number",
)
bad(
    "l2_prox",
    "bool-array-strength",
    lambda: jaxreg.l2_prox(jnp.array(True), learning_rate=0.1),
    "strength",
    r"real number",
)
bad(
    "l1_prox",
    "vector-strength",
    lambda: update(jaxreg.l1_prox(jnp.array([0.1, 0.2]), learning_rate=0.1)),
    "strength",
    r"must be a scalar",
)
bad(
    "weight_decay",
    "vector-learning_rate",
    lambda: jaxreg.weight_decay(0.1, learning_rate=jnp.array([0.1, 0.2])),
    "learning_rate",
    r"must be a scalar",
)
bad(
    "l1_prox",
    "schedule-negative-at-step-0",
    lambda: jaxreg.l1_prox(optax.linear_schedule(-0.1, 0.1, 10), learning_rate=0.1),
    "strength",
    r"finite and >= 0.*at step 0",
)
bad(
    "weight_decay",
    "lr-schedule-negative-at-step-0",
    lambda: jaxreg.weight_decay(0.1, learning_rate=neg_schedule),
    "learning_rate",
    r"at step 0",
)
bad(
    "l1_prox",
    "schedule-nan-at-step-0",
    lambda: jaxreg.l1_prox(lambda c: jnp.nan, learning_rate=0.1),
    "strength",
    r"finite and >= 0",
)
bad(
    "l2_prox",
    "negative-strength-in-prefix-tree",
    lambda: jaxreg.l2_prox({"w": 0.1, "b": -0.1}, learning_rate=0.1),
    "strength",
    FINITE,
)
bad(
    "l1_prox",
    "strength-tree-of-wrong-structure",
    lambda: update(jaxreg.l1_prox({"w": 0.1, "c": 0.1}, learning_rate=0.1)),
    "strength",
    PREFIX,
)
bad(
    "l1_penalty",
    "empty-strength-tree",
    lambda: jaxreg.l1_penalty(P, {}),
    "strength",
    r"non-empty pytree",
)
bad(
    "l1_penalty",
    "None-strength",
    lambda: jaxreg.l1_penalty(P, None),
    "strength",
    r"non-negative number",
)
bad(
    "l1_penalty",
    "negative-array-strength",
    lambda: jaxreg.l1_penalty(P, jnp.array(-1.0)),
    "strength",
    FINITE,
)
bad(
    "l1_penalty",
    "vector-strength",
    lambda: jaxreg.l1_penalty(P, jnp.array([0.1, 0.2, 0.3])),
    "strength",
    r"must be a scalar",
)
bad(
    "l2_penalty",
    "schedule-strength",
    lambda: jaxreg.l2_penalty(P, optax.constant_schedule(0.1)),
    "strength",
    r"schedule needs a step count",
)
bad(
    "group_lasso_penalty",
    "negative-np-strength",
    lambda: jaxreg.group_lasso_penalty(P, np.float32(-1)),
    "strength",
    FINITE,
)
bad(
    "prox_l1",
    "schedule-strength",
    lambda: jaxreg.prox.l1(P, optax.constant_schedule(0.1)),
    "strength",
    r"schedule needs a step count",
)
bad("prox_l2", "nan-strength", lambda: jaxreg.prox.l2(P, float("nan")), "strength", FINITE)
bad(
    "soft_threshold",
    "vector-threshold-of-wrong-shape",
    lambda: jaxreg.prox.l1(P, jnp.array([1.0, 2.0])),
    "strength",
    r"must be a scalar",
)

# ---- l1_ratio ------------------------------------------------------------------------
bad(
    "elastic_net_prox",
    "l1_ratio-above-1",
    lambda: jaxreg.elastic_net_prox(0.1, l1_ratio=1.5, learning_rate=0.1),
    "l1_ratio",
    UNIT,
)
bad(
    "elastic_net_penalty",
    "l1_ratio-below-0",
    lambda: jaxreg.elastic_net_penalty(P, 0.1, l1_ratio=-0.5),
    "l1_ratio",
    UNIT,
)
bad(
    "prox_elastic_net",
    "l1_ratio-nan",
    lambda: jaxreg.prox.elastic_net(P, 0.1, l1_ratio=float("nan")),
    "l1_ratio",
    UNIT,
)
bad(
    "prox_elastic_net",
    "l1_ratio-str",
    lambda: jaxreg.prox.elastic_net(P, 0.1, l1_ratio="0.5"),
    "l1_ratio",
    UNIT,
)
bad(
    "elastic_net_prox",
    "l1_ratio-schedule",
    lambda: jaxreg.elastic_net_prox(0.1, l1_ratio=optax.constant_schedule(0.5), learning_rate=0.1),
    "l1_ratio",
    UNIT,
)
bad(
    "elastic_net_prox",
    "l1_ratio-vector",
    lambda: jaxreg.elastic_net_prox(0.1, l1_ratio=jnp.array([0.5, 0.2]), learning_rate=0.1),
    "l1_ratio",
    r"must be a scalar",
)

# ---- masks ---------------------------------------------------------------------------
bad(
    "l1_prox",
    "mask-bare-False",
    lambda: jaxreg.l1_prox(0.1, learning_rate=0.1, mask=False),
    "mask",
    r"bare bool.*set the strength to 0\.0",
)
bad(
    "add_l2_gradient",
    "mask-array",
    lambda: jaxreg.add_l2_gradient(0.1, mask=jnp.array([True])),
    "mask",
    r"got an array",
)
bad(
    "weight_decay",
    "mask-int-leaves",
    lambda: jaxreg.weight_decay(0.1, learning_rate=0.1, mask={"w": 1, "b": 0}),
    "mask",
    BALL,
)
bad(
    "l1_penalty",
    "mask-None-leaf",
    lambda: jaxreg.l1_penalty(P, 0.1, mask={"w": True, "b": None}),
    "mask",
    PREFIX,
)
bad(
    "l1_prox",
    "mask-wrong-structure",
    lambda: update(jaxreg.l1_prox(0.1, learning_rate=0.1, mask={"w": True, "c": False})),
    "mask",
    PREFIX,
)
bad(
    "l2_prox",
    "mask-fn-returns-floats",
    lambda: update(
        jaxreg.l2_prox(0.1, learning_rate=0.1, mask=lambda p: jax.tree.map(lambda _: 1.0, p))
    ),
    "mask",
    r"leaf of type float",
)
bad(
    "l1_penalty",
    "mask-fn-returns-array",
    lambda: jaxreg.l1_penalty(P, 0.1, mask=lambda p: jnp.array(True)),
    "mask",
    r"returned an array",
)
bad(
    "prox_group_lasso",
    "mask-fn-wrong-structure",
    lambda: jaxreg.prox.group_lasso(P, 0.1, mask=lambda p: {"x": True}),
    "mask",
    PREFIX,
)
bad(
    "l1_prox",
    "inject_hyperparams-calls-mask-fn",
    lambda: update(
        optax.inject_hyperparams(jaxreg.l1_prox)(0.1, learning_rate=0.1, mask=kernel_mask_fn)
    ),
    "mask",
    INJECT_HINT,
)
bad(
    "path_mask",
    "inject_hyperparams-calls-path_mask",
    lambda: update(
        optax.inject_hyperparams(jaxreg.elastic_net_prox)(
            0.1, learning_rate=0.1, mask=jaxreg.path_mask(include="w")
        )
    ),
    "mask",
    INJECT_HINT,
)
bad("sparsity", "mask-bare-bool", lambda: jaxreg.sparsity(P, mask=False), "mask", r"bare bool")
bad(
    "regularized",
    "mask-bare-bool-without-regularizer",
    lambda: jaxreg.regularized(optax.adam, 0.1, mask=True),
    "mask",
    r"bare bool",
)

# ---- path patterns -------------------------------------------------------------------
bad(
    "path_mask",
    "include-matches-nothing",
    lambda: jaxreg.l1_penalty(P, 0.1, mask=jaxreg.path_mask(include="kernel")),
    "include",
    r"matches no parameter",
)
bad(
    "path_mask",
    "exclude-matches-nothing",
    lambda: update(jaxreg.l1_prox(0.1, learning_rate=0.1, mask=jaxreg.path_mask(exclude="bais"))),
    "exclude",
    r"matches no parameter",
)
bad(
    "path_mask",
    "invalid-regex",
    lambda: jaxreg.path_mask(include="(["),
    "include",
    r"not a valid regular expression",
)
bad(
    "path_mask",
    "int-pattern",
    lambda: jaxreg.path_mask(include=3),
    "include",
    r"regular expression",
)
bad(
    "path_strengths",
    "pattern-matches-nothing",
    lambda: jaxreg.l1_penalty(P, jaxreg.path_strengths({"kernel": 0.1})),
    "strength",
    r"matches no parameter",
)
bad(
    "path_strengths",
    "negative-strength",
    lambda: jaxreg.path_strengths({"w": -0.1}),
    "strength",
    FINITE,
)
bad(
    "path_strengths",
    "overlapping-patterns",
    lambda: jaxreg.l1_penalty(P, jaxreg.path_strengths({"w": 0.1, "[wb]": 0.2})),
    "strength",
    r"several patterns",
)
bad(
    "path_strengths",
    "negative-default",
    lambda: jaxreg.path_strengths({"w": 0.1}, default=-1.0),
    "default",
    FINITE,
)
bad(
    "path_strengths",
    "not-a-mapping",
    lambda: jaxreg.path_strengths([("w", 0.1)]),
    "mapping",
    r"dict",
)
bad(
    "path_strengths",
    "schedule-in-a-penalty",
    lambda: jaxreg.l1_penalty(P, jaxreg.path_strengths({"w": optax.constant_schedule(0.1)})),
    "strength",
    r"only accepted by transforms",
)
bad(
    "kernels_only",
    "selects-nothing",
    # ("w"/"b" of P are Haiku's kernel/bias names: a tree with no kernel at all.)
    lambda: jaxreg.l1_penalty({"bias": P["b"], "scale": P["b"]}, 0.1, mask=jaxreg.kernels_only()),
    "mask",
    r"selects no parameter",
)
bad(
    "no_bias_no_norm",
    "embeddings-not-bool",
    lambda: jaxreg.no_bias_no_norm(embeddings="yes"),
    "embeddings",
    r"True or False",
)

# ---- group axes ----------------------------------------------------------------------
bad(
    "group_lasso_penalty",
    "axis-out-of-range",
    lambda: jaxreg.group_lasso_penalty(P, 0.1, group_axis=5),
    "group_axis",
    r"\[-ndim, ndim\)",
)
bad(
    "group_lasso_prox",
    "axis-float",
    lambda: jaxreg.group_lasso_prox(0.1, learning_rate=0.1, group_axis=1.0),
    "group_axis",
    r"int or a non-empty tuple",
)
bad(
    "prox_group_lasso",
    "axis-names-every-axis",
    lambda: jaxreg.prox.group_lasso(P, 0.1, group_axis=(0, 1)),
    "group_axis",
    r"names every axis",
)
bad(
    "prox_group_lasso",
    "axis-repeated",
    lambda: jaxreg.prox.group_lasso(P, 0.1, group_axis=(0, 0)),
    "group_axis",
    r"repeats an axis",
)
bad(
    "prox_group_lasso",
    "axis-empty-tuple",
    lambda: jaxreg.prox.group_lasso(P, 0.1, group_axis=()),
    "group_axis",
    r"non-empty tuple",
)
bad(
    "block_soft_threshold",
    "axis-bool",
    lambda: jaxreg.prox.block_soft_threshold(P["w"], 0.1, group_axis=True),
    "group_axis",
    r"int or a non-empty tuple",
)
bad(
    "group_lasso_prox",
    "axis-out-of-range-at-update",
    lambda: update(jaxreg.group_lasso_prox(0.1, learning_rate=0.1, group_axis=3)),
    "group_axis",
    r"\[-ndim, ndim\)",
)
bad(
    "group_lasso_prox",
    "inject_hyperparams-makes-axis-an-array",
    lambda: update(
        optax.inject_hyperparams(jaxreg.group_lasso_prox)(0.1, learning_rate=0.1, group_axis=0)
    ),
    "group_axis",
    r"static_args",
)
bad(
    "regularized",
    "group_axis-str",
    lambda: jaxreg.regularized(optax.adam, 0.1, group_axis="x"),
    "group_axis",
    r"int or a non-empty tuple",
)
bad(
    "sparsity_report",
    "axis-out-of-range",
    lambda: jaxreg.sparsity_report(P, group_axis=7),
    "group_axis",
    r"\[-ndim, ndim\)",
)

# ---- missing params ------------------------------------------------------------------
for _name, _make in TRANSFORMS.items():
    bad(_name, "missing-params", lambda m=_make: update_without_params(m(0.1)), "params", NO_PARAMS)
bad(
    "add_l2_gradient",
    "missing-params",
    lambda: update_without_params(jaxreg.add_l2_gradient(0.1)),
    "params",
    NO_PARAMS,
)
bad(
    "regularized",
    "missing-params",
    lambda: update_without_params(jaxreg.regularized(optax.sgd, 0.1, l1=0.1)),
    "params",
    NO_PARAMS,
)
for _name, _make in OPTIMIZERS.items():
    bad(
        _name,
        "missing-params",
        lambda m=_make: update_without_params(m(l1=0.1)),
        "params",
        NO_PARAMS,
    )

# ---- optimizers' own hyper-parameters ------------------------------------------------
for _name, _make in OPTIMIZERS.items():
    bad(_name, "negative-l1", lambda m=_make: m(l1=-0.1), "l1", FINITE)
    bad(_name, "mask-bare-True", lambda m=_make: m(l1=0.1, mask=True), "mask", r"bare bool")
    bad(
        _name,
        "inject_hyperparams-calls-mask-fn",
        lambda n=_name: update(
            optax.inject_hyperparams(getattr(jaxreg, n))(0.1, l1=0.1, mask=kernel_mask_fn)
        ),
        "mask",
        INJECT_HINT,
    )
bad("proximal_adam", "b1-is-1", lambda: jaxreg.proximal_adam(0.1, b1=1.0), "b1", r"\[0, 1\)")
bad("proximal_adam", "b2-negative", lambda: jaxreg.proximal_adam(0.1, b2=-0.1), "b2", r"\[0, 1\)")
bad("proximal_adam", "eps-nan", lambda: jaxreg.proximal_adam(0.1, eps=float("nan")), "eps", FINITE)
bad(
    "proximal_adam",
    "negative-learning_rate",
    lambda: jaxreg.proximal_adam(-1e-3),
    "learning_rate",
    FINITE,
)
bad(
    "proximal_sgd",
    "momentum-above-1",
    lambda: jaxreg.proximal_sgd(0.1, momentum=1.5),
    "momentum",
    r"\[0, 1\)",
)
bad(
    "proximal_sgd",
    "nesterov-str",
    lambda: jaxreg.proximal_sgd(0.1, nesterov="yes"),
    "nesterov",
    r"must be a bool",
)
bad(
    "proximal_adagrad",
    "zero-initial-accumulator",
    lambda: jaxreg.proximal_adagrad(0.1, initial_accumulator_value=0.0),
    "initial_accumulator_value",
    r"> 0",
)
bad("proximal_adagrad", "negative-l2", lambda: jaxreg.proximal_adagrad(0.1, l2=-1.0), "l2", FINITE)
bad("ftrl", "zero-learning_rate", lambda: jaxreg.ftrl(0.0), "learning_rate", r"> 0")
bad("ftrl", "positive-lr_power", lambda: jaxreg.ftrl(0.1, lr_power=0.5), "lr_power", r"<= 0")
bad("ftrl", "negative-beta", lambda: jaxreg.ftrl(0.1, beta=-1.0), "beta", FINITE)
bad(
    "ftrl",
    "negative-l2_shrinkage",
    lambda: jaxreg.ftrl(0.1, l2_shrinkage=-1.0),
    "l2_shrinkage",
    FINITE,
)

# ---- combinator, projections, flat mode, solvers, analysis ---------------------------
bad(
    "regularized",
    "optimizer-not-callable",
    lambda: jaxreg.regularized("adam", 0.1),
    "optimizer",
    r"optimizer factory",
)
bad(
    "regularized", "negative-l1", lambda: jaxreg.regularized(optax.adam, 0.1, l1=-1.0), "l1", FINITE
)
bad(
    "regularized",
    "negative-clip_norm",
    lambda: jaxreg.regularized(optax.adam, 0.1, clip_norm=-1.0),
    "clip_norm",
    FINITE,
)
bad(
    "regularized",
    "negative-learning_rate",
    lambda: jaxreg.regularized(optax.adam, -0.1),
    "learning_rate",
    FINITE,
)
bad(
    "regularized",
    "prox-after-schedule_free",
    lambda: jaxreg.regularized(optax.contrib.schedule_free_adamw, 1e-3, l1=1e-4),
    "optimizer",
    r"z sequence",
)
bad(
    "projection_l1_ball",
    "negative-radius",
    lambda: jaxreg.prox.projection_l1_ball(P, -1.0),
    "radius",
    FINITE,
)
bad(
    "projection_l2_ball",
    "nan-radius",
    lambda: jaxreg.prox.projection_l2_ball(P, float("nan")),
    "radius",
    FINITE,
)
bad(
    "flat",
    "layout-not-a-layout",
    lambda: jaxreg.flat(optax.sgd(0.1), "layout"),
    "layout",
    r"FlatLayout",
)
bad(
    "flat",
    "tx-not-a-transform",
    lambda: jaxreg.flat(3, jaxreg.flatten_params(P)[1]),
    "tx",
    r"GradientTransformation",
)
bad(
    "flatten_params",
    "labels-wrong-structure",
    lambda: jaxreg.flatten_params(P, labels={"w": "a"}),
    "labels",
    PREFIX,
)
bad(
    "proximal_gradient",
    "fun-not-callable",
    lambda: jaxreg.proximal_gradient(3, P),
    "fun",
    r"callable",
)
bad(
    "regularization_path",
    "unknown-loss",
    lambda: jaxreg.regularization_path(np.ones((4, 2)), np.ones(4), loss="hinge"),
    "loss",
    r"squared.*logistic",
)
bad(
    "strength_sweep",
    "optimizer-not-callable",
    lambda: jaxreg.strength_sweep(lambda p, x: x, P, None, [0.1], optimizer=3),
    "optimizer",
    r"strength -> optax",
)
bad(
    "strength_sweep",
    "negative-strengths",
    lambda: jaxreg.strength_sweep(
        lambda p, x: x, P, None, jnp.array([0.1, -0.1]), optimizer=jaxreg.add_l2_gradient
    ),
    "strength",
    FINITE,
)
bad("prune_dense", "not-dense-params", lambda: jaxreg.prune_dense(P), "layers", r"Dense")


@pytest.mark.parametrize(("api", "thunk", "argument", "rule"), BAD)
def test_bad_input_raises_value_error_naming_argument_and_rule(api, thunk, argument, rule):
    del api
    with pytest.raises(ValueError) as err:
        thunk()
    message = str(err.value)
    assert f"`{argument}`" in message, message
    assert re.search(rule, message, re.DOTALL), message


def test_table_has_at_least_30_rows():
    assert len(BAD) >= 30


# Public names that take no user argument worth a bad-input row: classes (state and
# result containers, checked by their factories) and plotting.
NO_ROW = {"plot_path", "param_paths"}


def test_every_public_function_has_a_bad_input_row():
    covered = {p.values[0] for p in BAD}
    functions = {
        name
        for name in jaxreg.__all__
        if inspect.isfunction(getattr(jaxreg, name)) and name not in NO_ROW
    }
    missing = sorted(functions - covered)
    assert not missing, f"add bad-input rows for {missing}"


# ---- pass-through -------------------------------------------------------------------


def int_bool_tree():
    return {
        "w": jnp.array([0.05, -2.0], jnp.float32),
        "count": jnp.array([3, -4], jnp.int32),
        "flag": jnp.array([True, False]),
        "none": None,
    }


ALL_TRANSFORMS = {
    **{name: functools.partial(make, 1.0) for name, make in TRANSFORMS.items()},
    "add_l2_gradient": lambda: jaxreg.add_l2_gradient(1.0),
    "regularized": lambda: jaxreg.regularized(
        optax.sgd, 0.1, l1=1.0, l2=1.0, weight_decay=1.0, group_lasso=1.0, clip_norm=1.0
    ),
}
ALL_OPTIMIZERS = {name: functools.partial(make, l1=1.0) for name, make in OPTIMIZERS.items()}
# regularized's own optimizer (here sgd) decides what an int leaf's update is, so it is
# checked like an optimizer: the int params come back unchanged.
ALL_OPTIMIZERS["regularized"] = lambda: jaxreg.regularized(
    optax.sgd, 0.1, l1=1.0, l2=1.0, weight_decay=1.0, group_lasso=1.0
)


@pytest.mark.parametrize("name", sorted(set(ALL_TRANSFORMS) - {"regularized"}))
def test_transform_leaves_int_and_bool_leaves_untouched(name):
    params = int_bool_tree()
    grads = {**params, "w": jnp.array([0.1, 0.1])}  # int/bool "gradients": their own values
    tx = ALL_TRANSFORMS[name]()
    updates, _ = tx.update(grads, tx.init(params), params)
    for key in ("count", "flag"):
        assert updates[key].dtype == grads[key].dtype
        np.testing.assert_array_equal(updates[key], grads[key])
    assert updates["none"] is None
    assert updates["w"].dtype == jnp.float32
    if name == "group_lasso_prox":  # a 1-d leaf is not grouped: bitwise pass-through
        np.testing.assert_array_equal(updates["w"], grads["w"])
    else:
        assert not np.array_equal(updates["w"], grads["w"])


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_optimizer_leaves_int_and_bool_params_untouched(name):
    params = {k: x for k, x in int_bool_tree().items() if k != "flag"}
    grads = jax.tree.map(jnp.zeros_like, params)
    grads["w"] = jnp.array([0.1, 0.1])
    tx = ALL_OPTIMIZERS[name]()
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    assert new["count"].dtype == jnp.int32
    np.testing.assert_array_equal(new["count"], params["count"])
    assert new["none"] is None
    assert np.all(np.isfinite(np.asarray(new["w"])))


@pytest.mark.parametrize("name", sorted({**ALL_TRANSFORMS, **ALL_OPTIMIZERS}))
@pytest.mark.parametrize("empty", [{}, (), []], ids=["dict", "tuple", "list"])
def test_empty_tree_gives_empty_update(name, empty):
    tx = {**ALL_TRANSFORMS, **ALL_OPTIMIZERS}[name]()
    updates, _ = tx.update(empty, tx.init(empty), empty)
    assert updates == empty


@pytest.mark.parametrize(
    "fn",
    [jaxreg.l1_penalty, jaxreg.l2_penalty, jaxreg.elastic_net_penalty, jaxreg.group_lasso_penalty],
    ids=lambda f: f.__name__,
)
def test_penalty_of_empty_or_integer_tree_is_zero(fn):
    for tree in ({}, {"count": jnp.arange(3), "flag": jnp.array([True]), "none": None}):
        value = fn(tree, 1.0)
        assert value.dtype == jnp.float32 and float(value) == 0.0


@pytest.mark.parametrize(
    "fn",
    [jaxreg.prox.l1, jaxreg.prox.l2, jaxreg.prox.elastic_net, jaxreg.prox.group_lasso],
    ids=lambda f: f.__name__,
)
def test_prox_of_empty_or_integer_tree_is_unchanged(fn):
    assert fn({}, 1.0) == {}
    tree = {"count": jnp.arange(3), "flag": jnp.array([True]), "none": None}
    out = fn(tree, 1.0)
    assert out["none"] is None
    for key in ("count", "flag"):
        assert out[key].dtype == tree[key].dtype
        np.testing.assert_array_equal(out[key], tree[key])


# ---- issue 12 (hardening): rows added by the harden branch ---------------------------
# Appended after the parametrized test on purpose: pytest reads BAD at collection time,
# when the whole module has run, so these rows are part of the table.


def _sweep_with_eval(eval_data):
    x = jnp.ones((2, 4, 3))
    labels = jnp.zeros((2, 4), jnp.int32)

    def apply(p, inputs):
        return inputs @ p["w"]

    params = {"w": jnp.ones((3, 2))}
    return jaxreg.strength_sweep(
        apply,
        params,
        (x, labels),
        jnp.array([0.0, 0.1]),
        optimizer=lambda s: optax.chain(optax.sgd(0.1), jaxreg.l1_prox(s, learning_rate=0.1)),
        eval_data=eval_data,
    )


def _wrapped_schedule_free(learning_rate):
    return optax.contrib.schedule_free_adamw(learning_rate)


def _prox_without_mask(tree, t):
    return jaxreg.prox.l1(tree, t)


bad(
    "regularized",
    "clip_norm-schedule",
    lambda: jaxreg.regularized(optax.adam, 0.1, clip_norm=optax.constant_schedule(1.0)),
    "clip_norm",
    r"no schedule",
)
bad(
    "regularized",
    "optimizer_kwargs-learning_rate",
    lambda: jaxreg.regularized(optax.sgd, 0.1, optimizer_kwargs={"learning_rate": 0.2}),
    "optimizer_kwargs",
    r"must not contain 'learning_rate'",
)
bad(
    "regularized",
    "optimizer_kwargs-not-dict",
    lambda: jaxreg.regularized(optax.sgd, 0.1, optimizer_kwargs=[("momentum", 0.9)]),
    "optimizer_kwargs",
    r"dict",
)
bad(
    "regularized",
    "factory-returns-None",
    lambda: jaxreg.regularized(lambda lr: None, 0.1, l1=0.1),
    "optimizer",
    r"returns an optax.GradientTransformation.*NoneType",
)
bad(
    "regularized",
    "factory-returns-function",
    lambda: jaxreg.regularized(lambda lr: lambda p: p, 0.1),
    "optimizer",
    r"returns an optax.GradientTransformation.*function",
)
bad(
    "regularized",
    "factory-bad-call",
    lambda: jaxreg.regularized(lambda: optax.sgd(0.1), 0.1),
    "optimizer",
    r"optimizer\(learning_rate",
)
bad(
    "regularized",
    "wrapped-schedule_free",
    lambda: jaxreg.regularized(_wrapped_schedule_free, 1e-3, weight_decay=1e-4),
    "optimizer",
    r"ScheduleFreeState",
)
bad(
    "regularized",
    "inject_hyperparams-schedule_free",
    lambda: jaxreg.regularized(
        optax.inject_hyperparams(optax.contrib.schedule_free_sgd), 1e-3, group_lasso=1e-4
    ),
    "optimizer",
    r"schedule-free|z sequence",
)
bad(
    "projection_l1_ball",
    "schedule-radius",
    lambda: jaxreg.prox.projection_l1_ball(P, optax.constant_schedule(1.0)),
    "radius",
    r"schedule",
)
bad(
    "projection_l2_ball",
    "vector-radius",
    lambda: jaxreg.prox.projection_l2_ball(P, jnp.ones(2)),
    "radius",
    r"scalar",
)
bad(
    "soft_threshold",
    "int-array",
    lambda: jaxreg.prox.soft_threshold(jnp.arange(3), 1.0),
    "x",
    r"float or complex",
)
bad(
    "block_soft_threshold",
    "bool-array",
    lambda: jaxreg.prox.block_soft_threshold(jnp.ones((2, 2), bool), 1.0),
    "x",
    r"float or complex",
)
bad(
    "l1_prox",
    "mask-None-over-array",
    lambda: update(jaxreg.l1_prox(0.1, learning_rate=0.1, mask={"w": True, "b": None})),
    "mask",
    r"None at \['b'\]",
)
bad(
    "l1_penalty",
    "mask-None-over-array",
    lambda: jaxreg.l1_penalty(P, 0.1, mask={"w": None, "b": True}),
    "mask",
    r"Use False",
)
bad(
    "proximal_adam",
    "mask-None-over-array",
    lambda: update(jaxreg.proximal_adam(0.1, l1=0.1, mask={"w": True, "b": None})),
    "mask",
    r"None at",
)
bad(
    "sparsity",
    "mask-None-over-array",
    lambda: jaxreg.sparsity(P, mask={"w": True, "b": None}),
    "mask",
    r"None at",
)
bad(
    "strength_sweep",
    "eval_data-not-a-pair",
    lambda: _sweep_with_eval(jnp.ones((4, 3))),
    "eval_data",
    r"pair",
)
bad(
    "strength_sweep",
    "eval_data-lengths-differ",
    lambda: _sweep_with_eval((jnp.ones((4, 3)), jnp.zeros(3, jnp.int32))),
    "eval_data",
    r"leading",
)
bad(
    "strength_sweep",
    "eval_data-stacked-like-batches",
    lambda: _sweep_with_eval((jnp.ones((2, 4, 3)), jnp.zeros((2, 4), jnp.int32))),
    "eval_data",
    r"one training batch",
)
bad(
    "strength_sweep",
    "eval_data-float-labels",
    lambda: _sweep_with_eval((jnp.ones((4, 3)), jnp.zeros(4))),
    "eval_data",
    r"integer",
)
bad(
    "proximal_gradient",
    "custom-prox-with-mask",
    lambda: jaxreg.proximal_gradient(
        lambda w: jnp.sum((w["w"] - 1.0) ** 2) + jnp.sum(w["b"] ** 2),
        P,
        strength=0.1,
        prox=_prox_without_mask,
        mask={"w": True, "b": False},
    ),
    "mask",
    r"custom `prox`",
)
bad(
    "prune_dense",
    "names-fix-no-order",
    lambda: jaxreg.prune_dense(
        {"a": {"kernel": jnp.ones((2, 2))}, "b": {"kernel": jnp.ones((2, 2))}}
    ),
    "layers",
    r"cannot tell the call order",
)
bad(
    "prune_dense",
    "module-without-example_input",
    lambda: jaxreg.prune_dense({"Dense_0": {"kernel": jnp.ones((2, 2))}}, module=object()),
    "example_input",
    r"needed",
)
bad(
    "strength_sweep",
    "optimizer-returns-None",
    lambda: jaxreg.strength_sweep(
        lambda p, x: x @ p["w"],
        {"w": jnp.ones((3, 2))},
        (jnp.ones((2, 4, 3)), jnp.zeros((2, 4), jnp.int32)),
        jnp.array([0.0, 0.1]),
        optimizer=lambda s: None,
    ),
    "optimizer",
    r"returned NoneType",
)
