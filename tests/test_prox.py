"""Prox operators against their formulas (REFERENCE §2), NumPy re-implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import nested_tree, np_block, np_soft, strict

import jaxreg


def np_project_l1(v, z):
    """Duchi et al. 2008, as written in REFERENCE §2."""
    if np.abs(v).sum() <= z:
        return v
    mu = np.sort(np.abs(v))[::-1]
    cs = np.cumsum(mu)
    j = np.arange(1, len(v) + 1)
    rho = np.max(np.nonzero(mu - (cs - z) / j > 0)[0]) + 1
    theta = (cs[rho - 1] - z) / rho
    return np_soft(v, theta)


V = np.array([-3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 2.0, 7.0], np.float32)


@pytest.mark.parametrize("t", [0.0, 0.5, 1.0, 10.0])
def test_soft_threshold(t):
    with strict():
        out = jaxreg.prox.soft_threshold(jnp.asarray(V), t)
    np.testing.assert_allclose(out, np_soft(V, t), rtol=1e-6)
    assert np.all(np.asarray(out)[np.abs(V) <= t] == 0.0)


def test_tree_prox_operators_match_formulas():
    tree = nested_tree()
    k = np.asarray(tree["dense"]["kernel"])
    with strict():
        out_l1 = jaxreg.prox.l1(tree, 0.4)
        out_l2 = jaxreg.prox.l2(tree, 0.4)
        out_en = jaxreg.prox.elastic_net(tree, 0.4, l1_ratio=0.3)
        out_gl = jaxreg.prox.group_lasso(tree, 0.4)
    np.testing.assert_allclose(out_l1["dense"]["kernel"], np_soft(k, 0.4), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out_l2["dense"]["kernel"], k / 1.4, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        out_en["dense"]["kernel"], np_soft(k, 0.4 * 0.3) / (1 + 0.4 * 0.7), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(out_gl["dense"]["kernel"], np_block(k, 0.4), rtol=1e-5, atol=1e-7)
    # 1-D leaves are not grouped; the integer leaf and None pass through.
    np.testing.assert_array_equal(out_gl["dense"]["bias"], tree["dense"]["bias"])
    assert out_l1["extra"][1] is None
    assert out_l1["step"] is tree["step"]


def test_prox_mask_and_per_leaf_strength():
    tree = nested_tree()
    out = jaxreg.prox.l1(
        tree,
        {"dense": 1.0, "extra": 0.0, "step": 1.0},
        mask={"dense": {"kernel": False, "bias": True}, "extra": True, "step": True},
    )
    assert out["dense"]["kernel"] is tree["dense"]["kernel"]
    assert out["extra"][0] is tree["extra"][0]
    np.testing.assert_allclose(
        out["dense"]["bias"], np_soft(np.asarray(tree["dense"]["bias"]), 1.0), rtol=1e-6
    )


@pytest.mark.parametrize("axis", [0, -1, (0, 1)])
def test_block_soft_threshold_axes(axis):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 5)).astype(np.float32)
    x[:, 1, :] = 0.01
    out = jaxreg.prox.block_soft_threshold(jnp.asarray(x), 0.3, group_axis=axis)
    if isinstance(axis, tuple):
        n = np.sqrt(np.sum(x**2, axis=2, keepdims=True))
        expected = x * np.where(n > 0, np.maximum(0, 1 - 0.3 * np.sqrt(5) / n), 0)
    else:
        expected = np_block(x, 0.3, axis)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def test_block_soft_threshold_finite_derivative_at_zero():
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
        x = jnp.zeros((3, 2), dtype)
        jac = jax.jacobian(lambda x: jaxreg.prox.block_soft_threshold(x, 0.1).astype(jnp.float32))(
            x.astype(jnp.float32)
        )
        assert np.all(np.isfinite(jac))
        out = jaxreg.prox.block_soft_threshold(x, jnp.asarray(0.1))
        assert out.dtype == dtype and np.all(np.asarray(out, np.float32) == 0)


def test_nan_and_inf_propagate():
    x = jnp.array([jnp.nan, jnp.inf, -jnp.inf, 0.1], jnp.float32)
    out = jaxreg.prox.soft_threshold(x, 0.5)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf and out[3] == 0
    k = jnp.array([[jnp.nan, 1.0], [1.0, 1.0]], jnp.float32)
    out = jaxreg.prox.block_soft_threshold(k, 0.1)
    assert np.all(np.isnan(out[:, 0])), "a NaN group must stay NaN, not become 0"
    en = jaxreg.prox.elastic_net(x, 0.5, l1_ratio=0.5)
    assert np.isnan(en[0]) and np.isinf(en[1])
    assert np.isnan(jaxreg.prox.l2(x, 0.5)[0])


def test_complex_modulus_rule():
    z = jnp.array([3 + 4j, 0.1 + 0.1j, 0j], jnp.complex64)
    out = jaxreg.prox.soft_threshold(z, 1.0)
    np.testing.assert_allclose(out, [(3 + 4j) * (1 - 1 / 5), 0, 0], rtol=1e-6)
    assert out.dtype == jnp.complex64


@pytest.mark.parametrize("radius", [0.5, 2.0, 100.0])
def test_projections_match_duchi_and_l2(radius):
    v = np.array([0.8, -1.5, 0.1, 2.2, -0.3], np.float32)
    np.testing.assert_allclose(
        jaxreg.prox.projection_l1_ball(jnp.asarray(v), radius),
        np_project_l1(v, radius),
        rtol=1e-5,
        atol=1e-6,
    )
    n = np.linalg.norm(v)
    expected = v if n <= radius else v * radius / n
    np.testing.assert_allclose(
        jaxreg.prox.projection_l2_ball(jnp.asarray(v), radius), expected, rtol=1e-6
    )


def test_moreau_identity():
    t = 0.7
    v = jnp.asarray(V)
    np.testing.assert_allclose(
        jaxreg.prox.soft_threshold(v, t) + t * jnp.clip(v / t, -1, 1), v, rtol=1e-6
    )
