"""Numerics: NaN/inf propagate, float16 does not overflow, zero groups, complex (issue 8).

* NaN or inf in a gradient or a parameter comes out non-finite (NaN stays NaN) from
  every prox operator, transform and optimizer, also with a threshold large enough
  to zero every finite coordinate: never a silent 0.
* float16 penalties accumulate in float32 (no overflow at |w| = 100 over 1000
  entries); the group prox takes its norms in float32 (no overflow at 300, no
  underflow to a zeroed group at 1e-4).
* The group prox, its penalty and their derivatives are finite at a zero group in
  bfloat16, float16, float32, float64, complex64 and complex128.
* Complex parameters follow the modulus rule (``|z|``, ``z·max(0, 1 − t/|z|)``) in
  penalties, prox operators, transforms and optimizers; expected values in NumPy.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import np_block, np_soft

import jaxreg

BIG = 1e3  # a strength that zeroes every finite coordinate below


# ---- NaN / inf through the prox operators -------------------------------------------
LEAF_PROX = {
    "soft_threshold": lambda x, t: jaxreg.prox.soft_threshold(x, t),
    "prox_l1": lambda x, t: jaxreg.prox.l1(x, t),
    "prox_l2": lambda x, t: jaxreg.prox.l2(x, t),
    "prox_elastic_net": lambda x, t: jaxreg.prox.elastic_net(x, t, l1_ratio=0.5),
    "block_soft_threshold": lambda x, t: jaxreg.prox.block_soft_threshold(x, t),
    "prox_group_lasso": lambda x, t: jaxreg.prox.group_lasso(x, t),
}
GROUPED = {"block_soft_threshold", "prox_group_lasso"}


@pytest.mark.parametrize("name", sorted(LEAF_PROX))
def test_prox_propagates_nan_and_inf(name):
    # columns are the groups: column 0 holds a NaN, column 1 a +inf, column 2 is finite
    x = jnp.array([[np.nan, np.inf, 0.5], [0.1, 0.2, -0.5]], jnp.float32)
    out = np.asarray(LEAF_PROX[name](x, BIG))
    assert np.isnan(out[0, 0])
    assert not np.isfinite(out[0, 1])
    if name not in GROUPED:
        assert out[0, 1] == np.inf
        neg = np.asarray(LEAF_PROX[name](-x, BIG))
        assert neg[0, 1] == -np.inf and np.isnan(neg[0, 0])
    if name == "prox_l2":  # the finite column is shrunk, not thresholded
        np.testing.assert_allclose(out[:, 2], np.array([0.5, -0.5]) / (1 + BIG), rtol=1e-6)
    else:
        np.testing.assert_array_equal(out[:, 2], 0.0)  # the finite column is thresholded


# ---- NaN / inf through transforms and optimizers ------------------------------------
def _after_sgd(reg):
    return optax.chain(optax.sgd(0.1), reg)


STEPS = {
    "add_l2_gradient": lambda: optax.chain(jaxreg.add_l2_gradient(BIG), optax.sgd(0.1)),
    "weight_decay": lambda: _after_sgd(jaxreg.weight_decay(0.5, learning_rate=0.1)),
    "l1_prox": lambda: _after_sgd(jaxreg.l1_prox(BIG, learning_rate=0.1)),
    "l2_prox": lambda: _after_sgd(jaxreg.l2_prox(BIG, learning_rate=0.1)),
    "elastic_net_prox": lambda: _after_sgd(
        jaxreg.elastic_net_prox(BIG, l1_ratio=0.5, learning_rate=0.1)
    ),
    "group_lasso_prox": lambda: _after_sgd(jaxreg.group_lasso_prox(BIG, learning_rate=0.1)),
    "regularized": lambda: jaxreg.regularized(
        optax.adam, 0.1, l1=BIG, l2=1.0, weight_decay=0.5, group_lasso=BIG
    ),
    "proximal_adam": lambda: jaxreg.proximal_adam(0.1, l1=BIG, weight_decay=0.5),
    "proximal_sgd": lambda: jaxreg.proximal_sgd(0.1, l1=BIG, l2=1.0, momentum=0.9),
    "proximal_adagrad": lambda: jaxreg.proximal_adagrad(0.1, l1=BIG, l2=1.0),
    "ftrl": lambda: jaxreg.ftrl(0.1, l1=BIG, l2=1.0),
}


def _step(tx, params, grads):
    updates, _ = tx.update(grads, tx.init(params), params)
    return np.asarray(optax.apply_updates(params, updates)["w"])


@pytest.mark.parametrize("where", ["grad", "param"])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_transforms_and_optimizers_propagate_nan_and_inf(name, bad, where):
    w = jnp.array([[0.5, 0.1], [0.2, -0.3]], jnp.float32)
    g = jnp.full_like(w, 0.01)
    if where == "grad":
        g = g.at[0, 0].set(bad)
    else:
        w = w.at[0, 0].set(bad)
    new = _step(STEPS[name](), {"w": w}, {"w": g})
    assert not np.isfinite(new[0, 0]), new
    if np.isnan(bad):
        assert np.isnan(new[0, 0]), new


# ---- float16 / bfloat16 accumulation -------------------------------------------------
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_penalties_do_not_overflow(dtype):
    w = jnp.full((100, 10), 100.0, dtype)  # Σw² = 1e7 and Σ|w| = 1e5 overflow float16
    w64 = np.full((100, 10), 100.0)
    expected = {
        jaxreg.l1_penalty: np.abs(w64).sum(),
        jaxreg.l2_penalty: 0.5 * (w64**2).sum(),
        jaxreg.elastic_net_penalty: 0.5 * np.abs(w64).sum() + 0.25 * (w64**2).sum(),
        jaxreg.group_lasso_penalty: np.sqrt(100) * np.sqrt((w64**2).sum(axis=0)).sum(),
    }
    for fn, value in expected.items():
        out = fn(w, 1.0)
        assert out.dtype == jnp.float32, fn.__name__
        np.testing.assert_allclose(float(out), value, rtol=1e-6, err_msg=fn.__name__)
        grad = jax.grad(fn)(w, 1.0)
        assert grad.dtype == dtype and bool(jnp.all(jnp.isfinite(grad))), fn.__name__


def test_bfloat16_penalty_sums_in_float32():
    # a bfloat16 running sum of ones stops at 256; float32 accumulation gets 4096
    assert float(jaxreg.l1_penalty(jnp.ones(4096, jnp.bfloat16))) == 4096.0


@pytest.mark.parametrize("value", [300.0, 1e-4], ids=["large", "tiny"])
def test_float16_group_prox_norm_neither_overflows_nor_underflows(value):
    t = 1.0 if value > 1 else 1e-5
    x = jnp.full((4, 3), value, jnp.float16)
    x64 = np.full((4, 3), np.float64(np.float16(value)))
    norm = np.sqrt((x64**2).sum(axis=0))
    expected = (x64 * np.maximum(0, 1 - t * 2 / norm)).astype(np.float16)
    out = jaxreg.prox.block_soft_threshold(x, t)
    assert out.dtype == jnp.float16
    np.testing.assert_array_equal(np.asarray(out), expected)
    tx = _after_sgd(jaxreg.group_lasso_prox(t, learning_rate=1.0))
    new = _step(tx, {"w": x}, {"w": jnp.zeros_like(x)})
    np.testing.assert_array_equal(new, expected)


# ---- zero groups in every float dtype ------------------------------------------------
DTYPES = ["bfloat16", "float16", "float32", "float64", "complex64", "complex128"]


def grad_at_zero(x):
    return jax.grad(lambda a: jaxreg.group_lasso_penalty(a, 1.0))(x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_prox_and_penalty_finite_at_zero_group(dtype, x64):
    del x64
    z = jnp.zeros((3, 2), dtype)
    tiny = jnp.full((3, 2), 1e-30 if "16" not in dtype else 1e-7, dtype)  # squares underflow
    for x in (z, tiny):
        out = jaxreg.prox.block_soft_threshold(x, 0.5)
        assert out.dtype == x.dtype and bool(jnp.all(jnp.isfinite(out)))
        np.testing.assert_array_equal(np.asarray(out.astype(jnp.complex128)), 0)
        # derivative of the prox at a zero group, along a direction: finite
        _, tangent = jax.jvp(
            lambda a: jaxreg.prox.block_soft_threshold(a, 0.5), (x,), (jnp.ones_like(x),)
        )
        assert bool(jnp.all(jnp.isfinite(tangent)))
        grad = grad_at_zero(x)
        assert grad.dtype == x.dtype and bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_array_equal(np.asarray(grad_at_zero(z).astype(jnp.complex128)), 0)
    tx = _after_sgd(jaxreg.group_lasso_prox(1.0, learning_rate=1.0))
    updates, _ = tx.update({"w": z}, tx.init({"w": z}), {"w": z})
    assert updates["w"].dtype == z.dtype and bool(jnp.all(updates["w"] == 0))


# ---- complex parameters: the modulus rule --------------------------------------------
RNG = np.random.default_rng(0)
Z = (RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4))).astype(np.complex64)
Z[0, 0] = 0  # an exact zero entry


def test_complex_penalties_use_the_modulus():
    z = Z.astype(np.complex128)
    a = np.abs(z)
    np.testing.assert_allclose(float(jaxreg.l1_penalty(Z, 0.3)), 0.3 * a.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(jaxreg.l2_penalty(Z, 0.3)), 0.15 * (a**2).sum(), rtol=1e-6)
    en = 0.3 * (0.25 * a.sum() + 0.375 * (a**2).sum())
    np.testing.assert_allclose(float(jaxreg.elastic_net_penalty(Z, 0.3, l1_ratio=0.25)), en, 1e-6)
    gl = 0.3 * np.sqrt(3) * np.sqrt((a**2).sum(axis=0)).sum()
    np.testing.assert_allclose(float(jaxreg.group_lasso_penalty(Z, 0.3)), gl, rtol=1e-6)


def test_complex_prox_operators_follow_the_modulus_rule():
    t = 0.8
    cases = {
        "soft_threshold": (jaxreg.prox.soft_threshold(Z, t), np_soft(Z, t)),
        "prox_l1": (jaxreg.prox.l1(Z, t), np_soft(Z, t)),
        "prox_l2": (jaxreg.prox.l2(Z, t), Z / (1 + t)),
        "prox_elastic_net": (
            jaxreg.prox.elastic_net(Z, t, l1_ratio=0.5),
            np_soft(Z, 0.4) / 1.4,
        ),
        "block_soft_threshold": (jaxreg.prox.block_soft_threshold(Z, t), np_block(Z, t)),
        "prox_group_lasso": (jaxreg.prox.group_lasso(Z, t), np_block(Z, t)),
    }
    for name, (out, expected) in cases.items():
        assert out.dtype == jnp.complex64, name
        np.testing.assert_allclose(np.asarray(out), expected, rtol=2e-6, atol=1e-7, err_msg=name)
        # the phase is kept: out = c·z with c real in [0, 1]
        nz = np.abs(Z) > 0
        c = np.asarray(out)[nz] / Z[nz]
        assert np.all(np.abs(c.imag) < 1e-6) and np.all((c.real > -1e-6) & (c.real <= 1 + 1e-6))
    assert np.any(np.asarray(cases["soft_threshold"][0]) == 0)  # the threshold bites


def test_complex_transforms_follow_the_modulus_rule():
    g = (0.1 * (1 - 1j) * np.ones((3, 4))).astype(np.complex64)
    v = (Z - 0.5 * g).astype(np.complex128)  # sgd(0.5) step
    eta, lam = 0.5, 1.2
    cases = {
        "l1_prox": (jaxreg.l1_prox(lam, learning_rate=eta), np_soft(v, eta * lam)),
        "l2_prox": (jaxreg.l2_prox(lam, learning_rate=eta), v / (1 + eta * lam)),
        "elastic_net_prox": (
            jaxreg.elastic_net_prox(lam, l1_ratio=0.5, learning_rate=eta),
            np_soft(v, eta * lam * 0.5) / (1 + eta * lam * 0.5),
        ),
        "group_lasso_prox": (
            jaxreg.group_lasso_prox(lam, learning_rate=eta),
            np_block(v, eta * lam),
        ),
        "weight_decay": (jaxreg.weight_decay(lam, learning_rate=eta), v - eta * lam * Z),
    }
    for name, (reg, expected) in cases.items():
        new = _step(optax.chain(optax.sgd(0.5), reg), {"w": jnp.asarray(Z)}, {"w": g})
        assert new.dtype == np.complex64, name
        np.testing.assert_allclose(new, expected, rtol=2e-6, atol=1e-7, err_msg=name)


def test_complex_add_l2_gradient_is_optax_convention_gradient():
    # optax descends along conj(jax.grad f) for complex params: add_l2_gradient adds λ·w
    z = jnp.asarray(Z)
    tx = jaxreg.add_l2_gradient(0.7)
    updates, _ = tx.update(jnp.zeros_like(z), tx.init(z), z)
    expected = jnp.conj(jax.grad(functools.partial(jaxreg.l2_penalty, strength=0.7))(z))
    np.testing.assert_allclose(np.asarray(updates), np.asarray(expected), rtol=1e-6)


def test_complex_optimizers_follow_the_modulus_rule():
    g = (0.3 * (1 + 2j) * np.ones((3, 4))).astype(np.complex64)
    z = Z.astype(np.complex128)
    eta, lam = 0.5, 0.4
    # proximal_sgd: sgd step, then modulus soft threshold and shrink
    new = _step(jaxreg.proximal_sgd(eta, l1=lam, l2=0.5), {"w": jnp.asarray(Z)}, {"w": g})
    expected = np_soft(z - eta * g, eta * lam) / (1 + eta * 0.5)
    np.testing.assert_allclose(new, expected, rtol=2e-6, atol=1e-7)
    # proximal_adam, first step: m̂ = g, v̂ = |g|², d = |g| + eps, threshold η·λ/d
    new = _step(jaxreg.proximal_adam(eta, l1=lam), {"w": jnp.asarray(Z)}, {"w": g})
    d = np.abs(g) + 1e-8
    expected = np_soft(z - eta * g / d, eta * lam / d)
    # optax forms 1 − b2 = 1 − 0.999 in float32 (relative error 1.3e-5 in v̂)
    np.testing.assert_allclose(new, expected, rtol=3e-5, atol=1e-6)
    # proximal_adagrad (TF kernel): a = η/√(acc0 + |g|²), v = w − a·g, modulus threshold a·l1
    new = _step(jaxreg.proximal_adagrad(eta, l1=lam), {"w": jnp.asarray(Z)}, {"w": g})
    a = eta / np.sqrt(0.1 + np.abs(g) ** 2)
    expected = np_soft(z - a * g, a * lam)
    np.testing.assert_allclose(new, expected, rtol=2e-6, atol=1e-6)
