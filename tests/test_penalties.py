"""Penalties against closed forms (NumPy), masks, per-leaf strengths, gradients at 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import nested_tree, strict

import jaxreg


def np_leaves(tree):
    return {
        "kernel": np.asarray(tree["dense"]["kernel"], np.float64),
        "bias": np.asarray(tree["dense"]["bias"], np.float64),
        "extra": np.asarray(tree["extra"][0], np.float64),
    }


def np_group(w, axis=-1):
    axes = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    size = np.prod([w.shape[a] for a in axes])
    return np.sqrt(size) * np.sum(np.sqrt(np.sum(w**2, axis=axes)))


def test_closed_forms_on_nested_tree():
    tree = nested_tree()
    leaves = np_leaves(tree)
    l1 = sum(np.abs(w).sum() for w in leaves.values())
    l2 = sum((w**2).sum() for w in leaves.values())
    with strict():
        np.testing.assert_allclose(jaxreg.l1_penalty(tree, 0.3), 0.3 * l1, rtol=1e-6)
        np.testing.assert_allclose(jaxreg.l2_penalty(tree, 0.3), 0.15 * l2, rtol=1e-6)
        np.testing.assert_allclose(
            jaxreg.elastic_net_penalty(tree, 0.3, l1_ratio=0.2),
            0.3 * (0.2 * l1 + 0.8 / 2 * l2),
            rtol=1e-6,
        )
        # Only the (3, 4) kernel is grouped; 1-D leaves are not.
        np.testing.assert_allclose(
            jaxreg.group_lasso_penalty(tree, 0.3), 0.3 * np_group(leaves["kernel"]), rtol=1e-6
        )
        np.testing.assert_allclose(
            jaxreg.group_lasso_penalty(tree, 0.3, group_axis=0),
            0.3 * np_group(leaves["kernel"], axis=0),
            rtol=1e-6,
        )


def test_default_strength_is_one():
    w = jnp.array([1.0, -2.0])
    assert float(jaxreg.l1_penalty(w)) == 3.0
    assert float(jaxreg.l2_penalty(w)) == 2.5


def test_masks_prefix_and_function():
    tree = nested_tree()
    leaves = np_leaves(tree)
    prefix = {"dense": {"kernel": True, "bias": False}, "extra": False, "step": False}
    expected = np.abs(leaves["kernel"]).sum()
    with strict():
        np.testing.assert_allclose(jaxreg.l1_penalty(tree, mask=prefix), expected, rtol=1e-6)

        def mask_fn(p):
            return jax.tree.map(lambda x: x.ndim == 2, p)

        np.testing.assert_allclose(jaxreg.l1_penalty(tree, mask=mask_fn), expected, rtol=1e-6)


def test_per_leaf_strengths_prefix_tree():
    tree = nested_tree()
    leaves = np_leaves(tree)
    strength = {"dense": {"kernel": 2.0, "bias": 0.0}, "extra": 0.5, "step": 1.0}
    expected = 2.0 * (leaves["kernel"] ** 2).sum() / 2 + 0.5 * (leaves["extra"] ** 2).sum() / 2
    with strict():
        np.testing.assert_allclose(jaxreg.l2_penalty(tree, strength), expected, rtol=1e-6)


def test_gradient_is_minimum_norm_subgradient_at_zero():
    w = jnp.array([0.0, 2.0, -3.0, 0.0])
    g = jax.grad(jaxreg.l1_penalty)(w, 0.5)
    np.testing.assert_array_equal(g, [0.0, 0.5, -0.5, 0.0])
    # jax's own abs would give 1 at 0: the custom rule is what makes it 0.
    assert float(jax.grad(jnp.abs)(0.0)) == 1.0
    kernel = jnp.array([[0.0, 3.0], [0.0, 4.0]])
    gk = jax.grad(jaxreg.group_lasso_penalty)(kernel, 1.0)
    assert np.all(np.isfinite(gk))
    np.testing.assert_allclose(gk[:, 0], 0.0)
    np.testing.assert_allclose(gk[:, 1], np.sqrt(2) * np.array([3.0, 4.0]) / 5.0, rtol=1e-6)
    ge = jax.grad(jaxreg.elastic_net_penalty)(w, 1.0, l1_ratio=0.5)
    np.testing.assert_allclose(ge, [0.0, 0.5 + 1.0, -0.5 - 1.5, 0.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_accumulates_in_float32(dtype):
    w = jnp.full((64,), 300.0, dtype)  # 300² · 64 overflows float16
    with strict():
        value = jaxreg.l2_penalty(w, 1.0)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, 0.5 * 64 * 300.0**2, rtol=1e-2)


def test_float64_penalty_is_float64(x64):
    w = jnp.array([1e-9, 2.0], jnp.float64)
    with strict():
        value = jaxreg.l1_penalty(w, 1.0)
    assert value.dtype == jnp.float64
    assert float(value) == 2.0 + 1e-9


def test_complex_uses_modulus():
    z = jnp.array([3 + 4j, -1j], jnp.complex64)
    with strict():
        np.testing.assert_allclose(jaxreg.l1_penalty(z, 1.0), 6.0, rtol=1e-6)
        np.testing.assert_allclose(jaxreg.l2_penalty(z, 1.0), 0.5 * 26.0, rtol=1e-6)


def test_integer_and_empty_trees():
    assert float(jaxreg.l1_penalty({"n": jnp.arange(3)})) == 0.0
    assert float(jaxreg.l2_penalty({})) == 0.0


def test_penalty_inside_jit_and_grad_of_loss():
    tree = nested_tree()

    def loss(p):
        return jaxreg.l2_penalty(p, 0.1) + jaxreg.l1_penalty(p, 0.01)

    g = jax.jit(jax.grad(loss, allow_int=True))(tree)
    k = tree["dense"]["kernel"]
    np.testing.assert_allclose(g["dense"]["kernel"], 0.1 * k + 0.01 * jnp.sign(k), rtol=1e-6)
