"""Structured pruning of dead units: same outputs, fewer parameters.

Dead units are planted by hand so the expected sizes are known in closed form:

* layer 0 (8 units): unit 1 has a zero incoming column and a non-zero bias
  (folded into the next bias), unit 2 has zero incoming and outgoing weights, unit
  4 has a zero outgoing row (dropped) -> 5 units;
* layer 1 (6 units): unit 0 has a zero incoming column (folded); unit 5's incoming
  column is non-zero only in row 1, which disappears with layer 0's unit 1, so it
  becomes dead in the next sweep (cascade) -> 4 units;
* layer 2 (5 units): unit 2 has a zero outgoing row -> 4 units; the output layer
  (3 units) is never pruned.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxreg

IN = 4
FEATURES = (8, 6, 5, 3)
FEATURES_AFTER = (5, 4, 4, 3)


def _count(in_features, features):
    sizes = (in_features, *features)
    return sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(features)))


def _random_layers(sizes, seed, dtype=np.float64):
    """Kernels (in, out) and biases as NumPy arrays (Flax's initializers are slow to compile
    in float64, and the planted zeros overwrite them anyway)."""
    rng = np.random.default_rng(seed)
    kernels = [
        (rng.normal(size=(a, b)) / np.sqrt(a)).astype(dtype) for a, b in itertools.pairwise(sizes)
    ]
    biases = [(0.1 + 0.3 * rng.normal(size=b)).astype(dtype) for b in sizes[1:]]
    return kernels, biases


def _plant(kernels, biases):
    """Plants the dead units described in the module docstring (in place, NumPy)."""
    k0, k1, _, k3 = kernels
    k0[:, 1] = 0.0
    biases[0][1] = 0.7  # act(0.7) != 0: its constant output must be folded
    k0[:, 2] = 0.0
    k1[2, :] = 0.0
    k1[4, :] = 0.0
    k1[:, 0] = 0.0
    biases[1][0] = 0.4
    k1[:, 5] = 0.0
    k1[1, 5] = 0.9  # cascade: only fed by layer 0's unit 1
    biases[1][5] = 0.2
    k3[2, :] = 0.0


class MLP(nn.Module):
    features: Sequence[int]
    activation: object = nn.relu
    dtype: object = jnp.float64

    @nn.compact
    def __call__(self, x):
        for f in self.features[:-1]:
            x = self.activation(nn.Dense(f, param_dtype=self.dtype, dtype=self.dtype)(x))
        return nn.Dense(self.features[-1], param_dtype=self.dtype, dtype=self.dtype)(x)


@pytest.mark.parametrize("activation", [jax.nn.relu, jax.nn.sigmoid], ids=["relu", "sigmoid"])
def test_prune_linen_mlp_same_outputs(activation):
    with jax.enable_x64(True):
        model = MLP(FEATURES, activation)
        x = jnp.asarray(np.random.default_rng(1).normal(size=(64, IN)))
        shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
        names = list(shapes)
        assert names == ["Dense_0", "Dense_1", "Dense_2", "Dense_3"]
        kernels, biases = _random_layers((IN, *FEATURES), seed=0)
        assert [shapes[n]["kernel"].shape for n in names] == [k.shape for k in kernels]
        _plant(kernels, biases)
        params = {
            "params": {
                n: {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
                for n, k, b in zip(names, kernels, biases, strict=True)
            }
        }
        before = jax.jit(model.apply)(params, x)
        pruned, report = jaxreg.prune_dense(params, activation=activation)
        assert report.features_before == FEATURES
        assert report.features_after == FEATURES_AFTER
        assert report.folded == (1, 2, 0, 0)
        assert report.dropped == (2, 0, 1, 0)
        assert report.params_before == _count(IN, FEATURES) == 147
        assert report.params_after == _count(IN, FEATURES_AFTER) == 84
        n_after = sum(x.size for x in jax.tree.leaves(pruned))
        assert n_after == report.params_after
        after = jax.jit(MLP(report.features_after, activation).apply)(pruned, x)
        assert before.shape == after.shape
        print(f"params {report.params_before} -> {report.params_after}")
        assert float(np.max(np.abs(np.asarray(after) - np.asarray(before)))) <= 1e-6
        # Pruning a pruned network finds nothing more.
        _, again = jaxreg.prune_dense(pruned, activation=activation)
        assert again.features_after == FEATURES_AFTER and again.params_after == 84


def test_prune_linen_float32_and_unwrapped_params():
    model = MLP(FEATURES, dtype=jnp.float32)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(32, IN)), jnp.float32)
    kernels, biases = _random_layers((IN, *FEATURES), seed=3, dtype=np.float32)
    _plant(kernels, biases)
    inner = {f"Dense_{i}": {"kernel": kernels[i], "bias": biases[i]} for i in range(4)}
    pruned, report = jaxreg.prune_dense(inner)  # no "params" wrapper: same layout back
    assert set(pruned) == set(inner)
    assert pruned["Dense_0"]["kernel"].dtype == jnp.float32
    before = jax.jit(model.apply)({"params": inner}, x)
    after = jax.jit(MLP(report.features_after, dtype=jnp.float32).apply)({"params": pruned}, x)
    assert float(np.max(np.abs(np.asarray(after) - np.asarray(before)))) <= 1e-6


class NnxMLP(nnx.Module):
    def __init__(self, sizes, rngs, dtype=jnp.float64):
        self.layers = nnx.List(
            [
                nnx.Linear(
                    a,
                    b,
                    rngs=rngs,
                    param_dtype=dtype,
                    dtype=dtype,
                    kernel_init=nnx.initializers.zeros_init(),
                )
                for a, b in itertools.pairwise(sizes)
            ]
        )

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


def test_prune_nnx_mlp_same_outputs():
    with jax.enable_x64(True):
        model = NnxMLP((IN, *FEATURES), nnx.Rngs(0))
        kernels, biases = _random_layers((IN, *FEATURES), seed=0)
        _plant(kernels, biases)
        for layer, k, b in zip(model.layers, kernels, biases, strict=True):
            layer.kernel.set_value(jnp.asarray(k))
            layer.bias.set_value(jnp.asarray(b))
        x = jnp.asarray(np.random.default_rng(1).normal(size=(64, IN)))
        forward = nnx.jit(lambda m, x: m(x))
        before = forward(model, x)
        pruned, report = jaxreg.prune_dense(model)
        assert report.features_after == FEATURES_AFTER
        assert report.params_before == 147 and report.params_after == 84
        n_after = sum(x.size for x in jax.tree.leaves(nnx.state(pruned, nnx.Param)))
        assert n_after == 84
        assert [layer.out_features for layer in pruned.layers] == list(FEATURES_AFTER)
        assert [layer.in_features for layer in pruned.layers] == [IN, *FEATURES_AFTER[:-1]]
        after = forward(pruned, x)
        assert float(np.max(np.abs(np.asarray(after) - np.asarray(before)))) <= 1e-6
        # The original model is untouched.
        assert [layer.out_features for layer in model.layers] == list(FEATURES)
        np.testing.assert_array_equal(forward(model, x), before)
        # Explicit layer order.
        _, report2 = jaxreg.prune_dense(model, layers=list(model.layers))
        assert report2 == report


def test_prune_dense_errors():
    k = {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}
    with pytest.raises(ValueError, match="`layers`"):
        jaxreg.prune_dense({"Dense_0": k, "LayerNorm_0": {"scale": jnp.ones(3)}})
    with pytest.raises(ValueError, match="`layers`"):
        jaxreg.prune_dense({"Dense_0": k, "Dense_1": k})  # 3 outputs into 2 inputs
    with pytest.raises(ValueError, match="`model`"):
        jaxreg.prune_dense([k, k])
    with pytest.raises(ValueError, match="`activation`"):
        jaxreg.prune_dense({"Dense_0": k}, activation="relu")


def test_no_bias_in_next_layer_keeps_units_it_cannot_fold():
    k0 = np.array([[1.0, 0.0, 0.0]])
    b0 = np.array([0.0, 0.5, 0.0])  # unit 1: relu(0.5) * [2] != 0, unit 2: relu(0) = 0
    k1 = np.array([[1.0], [2.0], [3.0]])
    params = {"a": {"kernel": k0, "bias": b0}, "b": {"kernel": k1}}
    with pytest.raises(ValueError, match="`layers`: cannot tell the call order"):
        jaxreg.prune_dense(params)  # b -> a would chain too: names "a", "b" fix no order
    pruned, report = jaxreg.prune_dense(params, layers=["a", "b"])
    assert report.features_after == (2, 1) and report.folded == (1, 0)
    x = np.array([[0.3], [-1.2], [2.0]])
    before = np.maximum(x @ k0 + b0, 0) @ k1
    k0p, b0p, k1p = (
        np.asarray(pruned[n][k]) for n, k in [("a", "kernel"), ("a", "bias"), ("b", "kernel")]
    )
    after = np.maximum(x @ k0p + b0p, 0) @ k1p
    np.testing.assert_allclose(after, before, atol=1e-12)


# ---- layer order from the data flow (issue 12) --------------------------------------------

WIDTHS = (9, 5, 7, 6, 8, 5, 7, 6, 9, 5, 6)  # 11 hidden layers + an output of 2: 12 Dense
DEAD = {0: [1, 4], 3: [2], 7: [0, 5], 10: [3]}  # layer -> units whose incoming column is 0


def _deep_params(seed=0):
    sizes = (IN, *WIDTHS, 2)
    kernels, biases = _random_layers(sizes, seed)
    for layer, units in DEAD.items():
        for u in units:
            kernels[layer][:, u] = 0.0  # folded into the next bias (relu(b) != 0) or dropped
    return kernels, biases


def test_linen_twelve_dense_layers_after_tree_map():
    """``jax.tree.map`` sorts keys as strings (Dense_0, Dense_1, Dense_10, Dense_11, Dense_2,
    ...); the order must still be the call order."""
    with jax.enable_x64(True):
        features = (*WIDTHS, 2)
        model = MLP(features)
        x = jnp.asarray(np.random.default_rng(5).normal(size=(32, IN)))
        kernels, biases = _deep_params()
        params = {
            "params": {
                f"Dense_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
                for i, (k, b) in enumerate(zip(kernels, biases, strict=True))
            }
        }
        params = jax.tree.map(lambda a: a, params)
        assert list(params["params"])[:3] == ["Dense_0", "Dense_1", "Dense_10"]
        expected = (*(w - len(DEAD.get(i, [])) for i, w in enumerate(WIDTHS)), 2)
        before = model.apply(params, x)
        for kwargs in ({}, {"module": model, "example_input": x}):
            pruned, report = jaxreg.prune_dense(params, **kwargs)
            assert report.features_before == features
            assert report.features_after == expected
            after = MLP(report.features_after).apply(pruned, x)
            assert float(np.max(np.abs(np.asarray(after) - np.asarray(before)))) <= 1e-6


class Named(nn.Module):
    """Custom names: no order can be read from them."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(8, name="zeta", param_dtype=jnp.float64)(x))
        x = nn.relu(nn.Dense(6, name="alpha", param_dtype=jnp.float64)(x))
        return nn.Dense(3, name="mid", param_dtype=jnp.float64)(x)


def test_linen_custom_names_need_a_trace_or_layers():
    with jax.enable_x64(True):
        model = Named()
        x = jnp.asarray(np.random.default_rng(6).normal(size=(16, IN)))
        params = model.init(jax.random.key(0), x)
        kernel = np.array(params["params"]["zeta"]["kernel"])
        kernel[:, [2, 5]] = 0.0
        params["params"]["zeta"]["kernel"] = jnp.asarray(kernel)
        with pytest.raises(ValueError, match="`layers`: cannot tell the call order"):
            jaxreg.prune_dense(params)
        with pytest.raises(ValueError, match="`example_input`"):
            jaxreg.prune_dense(params, module=model)
        _, report = jaxreg.prune_dense(params, module=model, example_input=x)
        assert report.features_after == (6, 6, 3)
        _, explicit = jaxreg.prune_dense(params, layers=["zeta", "alpha", "mid"])
        assert explicit == report
        with pytest.raises(ValueError, match=r"`layers`.*disagrees"):
            jaxreg.prune_dense(
                params, layers=["alpha", "zeta", "mid"], module=model, example_input=x
            )


class Scrambled(nnx.Module):
    """Attributes sort as alpha, mid, zeta; the call order is zeta, alpha, mid."""

    def __init__(self, rngs, dtype=jnp.float64):
        kw = {"rngs": rngs, "param_dtype": dtype, "dtype": dtype}
        self.zeta = nnx.Linear(IN, 8, **kw)
        self.alpha = nnx.Linear(8, 6, **kw)
        self.mid = nnx.Linear(6, 3, **kw)

    def __call__(self, x):
        return self.mid(jax.nn.relu(self.alpha(jax.nn.relu(self.zeta(x)))))


def test_nnx_call_order_differs_from_attribute_order():
    with jax.enable_x64(True):
        model = Scrambled(nnx.Rngs(0))
        assert [p for p, m in nnx.iter_modules(model) if isinstance(m, nnx.Linear)] == [
            ("alpha",),
            ("mid",),
            ("zeta",),
        ]
        k = np.array(model.zeta.kernel.get_value())
        k[:, [0, 3, 7]] = 0.0
        model.zeta.kernel.set_value(jnp.asarray(k))
        k = np.array(model.alpha.kernel.get_value())
        k[:, 1] = 0.0
        model.alpha.kernel.set_value(jnp.asarray(k))
        x = jnp.asarray(np.random.default_rng(7).normal(size=(16, IN)))
        before = model(x)
        with pytest.raises(ValueError, match="`layers`: cannot tell the call order"):
            jaxreg.prune_dense(model)
        pruned, report = jaxreg.prune_dense(model, example_input=x)
        assert report.features_after == (5, 5, 3)
        assert (pruned.zeta.out_features, pruned.alpha.out_features) == (5, 5)
        assert float(np.max(np.abs(np.asarray(pruned(x)) - np.asarray(before)))) <= 1e-6
        _, explicit = jaxreg.prune_dense(model, layers=[model.zeta, model.alpha, model.mid])
        assert explicit == report
        assert model.zeta.out_features == 8  # the original is untouched
        assert type(model.zeta) is nnx.Linear


class Twice(nnx.Module):
    def __init__(self, rngs):
        self.inp = nnx.Linear(IN, 6, rngs=rngs)
        self.hidden = nnx.Linear(6, 6, rngs=rngs)
        self.out = nnx.Linear(6, 2, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.inp(x))
        x = jax.nn.relu(self.hidden(x))
        x = jax.nn.relu(self.hidden(x))
        return self.out(x)


class Residual(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(IN, 6, rngs=rngs), nnx.Linear(6, 6, rngs=rngs)])
        self.head = nnx.List([nnx.Linear(6, 2, rngs=rngs)])

    def __call__(self, x):
        h = jax.nn.relu(self.layers[0](x))
        return self.head[0](jax.nn.relu(self.layers[1](h)) + h)


def test_nnx_ambiguous_models_are_refused():
    x = jnp.asarray(np.random.default_rng(8).normal(size=(4, IN)), jnp.float32)
    with pytest.raises(ValueError, match="`model`: layer 'hidden' is called 2 times"):
        jaxreg.prune_dense(Twice(nnx.Rngs(0)), example_input=x)
    with pytest.raises(ValueError, match="`layers`: cannot tell the call order"):
        jaxreg.prune_dense(Twice(nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"not a plain chain|not `activation`"):
        jaxreg.prune_dense(Residual(nnx.Rngs(0)), example_input=x)
    with pytest.raises(ValueError, match="`layers`: cannot tell"):  # two lists: no order
        jaxreg.prune_dense(Residual(nnx.Rngs(0)))
    with pytest.raises(ValueError, match="`module`"):
        jaxreg.prune_dense(Twice(nnx.Rngs(0)), module=MLP((2,)))


def test_trace_checks_the_activation():
    model = MLP((5, 2), activation=jax.nn.sigmoid, dtype=jnp.float32)
    x = jnp.asarray(np.random.default_rng(9).normal(size=(4, IN)), jnp.float32)
    params = model.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="`activation`"):
        jaxreg.prune_dense(params, module=model, example_input=x)  # relu assumed
    _, report = jaxreg.prune_dense(params, module=model, example_input=x, activation=jax.nn.sigmoid)
    assert report.features_after == (5, 2)


class Wrapper(nn.Module):
    """The MLP is a submodule: its Dense layers live at ``mlp/Dense_i``."""

    @nn.compact
    def __call__(self, x):
        return MLP((6, 5, 2), dtype=jnp.float32, name="mlp")(x)


def test_linen_nested_module_traced():
    model = Wrapper()
    x = jnp.asarray(np.random.default_rng(10).normal(size=(8, IN)), jnp.float32)
    params = model.init(jax.random.key(0), x)
    k = np.array(params["params"]["mlp"]["Dense_1"]["kernel"])
    k[:, [0, 4]] = 0.0
    params["params"]["mlp"]["Dense_1"]["kernel"] = jnp.asarray(k)
    pruned, report = jaxreg.prune_dense(params, module=model, example_input=x)
    assert report.features_after == (6, 3, 2)
    after = MLP(report.features_after, dtype=jnp.float32).apply(
        {"params": pruned["params"]["mlp"]}, x
    )
    before = model.apply(params, x)
    assert float(np.max(np.abs(np.asarray(after) - np.asarray(before)))) <= 1e-6
