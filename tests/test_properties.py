"""Property-based tests of every prox operator (issue 8).

For ``x = prox_{t·R}(v)`` and each operator (leaf and pytree forms):

* optimality: ``(v − x)/t ∈ ∂R(x)`` (the subgradient inclusion, checked per
  coordinate or per group);
* non-expansiveness: ``‖prox(a) − prox(b)‖ <= ‖a − b‖``;
* Moreau: ``v = prox_{tR}(v) + t·prox_{R*/t}(v/t)``, with ``prox_{R*/t}`` written in
  closed form here (for a norm ``R`` it is the projection onto the dual-norm ball:
  ``clip(·, −1, 1)`` for L1, the ball of radius ``√|g|`` per group; REFERENCE §3.9);
* exact zeros below the threshold; sign preservation (``x = c·v``, ``c ∈ [0, 1]``
  coordinate- or group-wise); identity at zero strength; jit equals eager.

Shapes are fixed and every function is jitted once at import, so hypothesis draws
values only and nothing recompiles per example. Values are float32; tolerances are
a few ulps of the data's scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import jaxreg

SHAPE = (4, 6)  # groups (default group_axis=-1): the 6 columns, |g| = 4
GROUP = SHAPE[0]
EXAMPLES = settings(deadline=None, max_examples=25, derandomize=True)
TOL = 2e-5  # absolute, for |v| <= 10 in float32

values = arrays(
    np.float32,
    SHAPE,
    elements=st.floats(-10, 10, width=32, allow_subnormal=False),
)
thresholds = st.floats(0.0, 5.0, width=32)
positive_thresholds = st.floats(0.0625, 5.0, width=32)
ratios = st.floats(0.0, 1.0, width=32)


# ---- the operators: f(v, t, r) with r = l1_ratio (ignored unless elastic net) --------
def _en_leaf(v, t, r):
    import jaxreg.prox as _prox

    return _prox._elastic_net_shrink(v, jnp.asarray(t, v.dtype), r)


OPS = {
    "soft_threshold": ("l1", lambda v, t, r: jaxreg.prox.soft_threshold(v, t)),
    "prox_l1": ("l1", lambda v, t, r: jaxreg.prox.l1({"w": v}, t)["w"]),
    "prox_l2": ("l2", lambda v, t, r: jaxreg.prox.l2({"w": v}, t)["w"]),
    "elastic_net_shrink": ("en", _en_leaf),
    "prox_elastic_net": (
        "en",
        lambda v, t, r: jaxreg.prox.elastic_net({"w": v}, t, l1_ratio=r)["w"],
    ),
    "block_soft_threshold": ("group", lambda v, t, r: jaxreg.prox.block_soft_threshold(v, t)),
    "prox_group_lasso": ("group", lambda v, t, r: jaxreg.prox.group_lasso({"w": v}, t)["w"]),
}
JITTED = {name: jax.jit(fn) for name, (_, fn) in OPS.items()}
NAMES = sorted(OPS)


def run(name, v, t, r=0.5):
    return np.asarray(JITTED[name](v, np.float32(t), np.float32(r)))


def group_norms(a):
    """Norm of each group (column), as a row to broadcast against ``a``."""
    return np.sqrt(np.sum(np.asarray(a, np.float64) ** 2, axis=0, keepdims=True))


# ---- optimality ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(v=values, t=positive_thresholds, r=ratios)
def test_optimality_condition(name, v, t, r):
    kind = OPS[name][0]
    x = run(name, v, t, r).astype(np.float64)
    v64, t64, r64 = v.astype(np.float64), float(np.float32(t)), float(np.float32(r))
    g = (v64 - x) / t64  # must be a subgradient of R at x
    tol = TOL / t64 + 1e-5
    if kind == "l1":
        nz = x != 0
        np.testing.assert_allclose(g[nz], np.sign(x[nz]), atol=tol)
        assert np.all(np.abs(g[~nz]) <= 1 + tol)
    elif kind == "l2":
        assert np.all(np.abs(g - x) <= tol * (1 + np.abs(x)))
    elif kind == "en":
        nz = x != 0
        np.testing.assert_allclose(g[nz], r64 * np.sign(x[nz]) + (1 - r64) * x[nz], atol=4 * tol)
        assert np.all(np.abs(g[~nz]) <= r64 + tol)
    else:
        norms = group_norms(x)
        nz = norms[0] > 0
        expected = np.sqrt(GROUP) * x[:, nz] / norms[:, nz]
        np.testing.assert_allclose(g[:, nz], expected, atol=4 * tol)
        assert np.all(group_norms(g[:, ~nz]) <= np.sqrt(GROUP) + 4 * tol)


# ---- non-expansiveness ---------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(a=values, b=values, t=thresholds, r=ratios)
def test_non_expansive(name, a, b, t, r):
    pa, pb = run(name, a, t, r).astype(np.float64), run(name, b, t, r).astype(np.float64)
    lhs = np.linalg.norm(pa - pb)
    rhs = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64))
    assert lhs <= rhs + 1e-5 * (1 + rhs)


# ---- Moreau decomposition ------------------------------------------------------------
def dual_prox(kind, y, t, r):
    """``prox_{R*/t}(y)`` in closed form (NumPy, float64), not from the code under test."""
    if kind == "l1":  # R* = indicator of the L∞ unit ball: projection = clip
        return np.clip(y, -1.0, 1.0)
    if kind == "l2":  # R = R* = ½‖·‖²: prox_{R*/t}(y) = y / (1 + 1/t)
        return y / (1 + 1 / t)
    if kind == "en":  # R*(z) = Σ (|z| − r)₊² / (2(1 − r)); minimise (1/t)R*(z) + ½(z − y)²
        a = np.abs(y)
        s = np.maximum(a - r, 0.0) * t * (1 - r) / (1 + t * (1 - r))
        return np.where(a <= r, y, np.sign(y) * (r + s))
    # group: R* = indicator of {‖z_g‖ <= √|g| for every g}: project each group
    norms = group_norms(y)
    radius = np.sqrt(GROUP)
    return y * np.minimum(1.0, radius / np.where(norms == 0, 1.0, norms))


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(v=values, t=positive_thresholds, r=ratios)
def test_moreau_identity(name, v, t, r):
    kind = OPS[name][0]
    t64, r64 = float(np.float32(t)), float(np.float32(r))
    v64 = v.astype(np.float64)
    x = run(name, v, t, r).astype(np.float64)
    np.testing.assert_allclose(x + t64 * dual_prox(kind, v64 / t64, t64, r64), v64, atol=4 * TOL)


def test_moreau_closed_forms_are_consistent():
    """The NumPy dual prox at r = 1 and r = 0 reduces to the L1 and L2 ones."""
    y = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(dual_prox("en", y, 0.7, 1.0), dual_prox("l1", y, 0.7, 1.0))
    np.testing.assert_allclose(dual_prox("en", y, 0.7, 0.0), dual_prox("l2", y, 0.7, 0.0))


# ---- exact zeros, sign preservation, zero strength, jit == eager ---------------------
@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(v=values, t=thresholds, r=ratios)
def test_exact_zeros_below_threshold(name, v, t, r):
    kind = OPS[name][0]
    t32, r32 = np.float32(t), np.float32(r)
    x = run(name, v, t, r)
    if kind == "l1":
        below = np.abs(v) <= t32
    elif kind == "en":
        below = np.abs(v) <= np.float32(t32 * r32)
    elif kind == "l2":  # never creates zeros (beyond float32 underflow of v/(1 + t))
        assert np.all(x[v == 0] == 0)
        assert np.all(x[np.abs(v) > 1e-30 * (1 + t32)] != 0)
        return
    else:
        level = t32 * np.sqrt(np.float32(GROUP))
        below = np.broadcast_to(group_norms(v) <= level * (1 - 1e-6), v.shape)
    assert np.all(x[below] == 0.0)


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(v=values, t=thresholds, r=ratios)
def test_sign_preserved_and_magnitude_shrunk(name, v, t, r):
    kind = OPS[name][0]
    x = run(name, v, t, r)
    assert np.all((np.sign(x) == np.sign(v)) | (x == 0))
    assert np.all(np.abs(x) <= np.abs(v))
    if kind == "group":  # one factor c ∈ [0, 1] per group: x_g = c·v_g
        big = np.abs(v) > 1e-30  # float32 flushes the product of tiny entries to zero
        ratio = np.where(big, x / np.where(big, v, 1), np.nan)
        filled = np.where(big, ratio, 0.0)
        top = np.max(np.where(big, filled, -np.inf), axis=0)
        low = np.min(np.where(big, filled, np.inf), axis=0)
        spread = np.where(np.any(big, axis=0), top - low, 0.0)
        assert np.all(spread <= 1e-5)


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(v=values, r=ratios)
def test_identity_at_zero_strength(name, v, r):
    np.testing.assert_array_equal(run(name, v, 0.0, r), v)


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(v=values, t=thresholds, r=ratios)
def test_jit_equals_eager(name, v, t, r):
    eager = np.asarray(OPS[name][1](jnp.asarray(v), np.float32(t), np.float32(r)))
    jitted = run(name, v, t, r)
    np.testing.assert_array_equal(jitted == 0, eager == 0)
    # XLA fuses the jitted group norm differently: a few ulps apart, never a new zero.
    np.testing.assert_allclose(jitted, eager, rtol=2e-6, atol=0)


def test_no_recompilation_per_example():
    """Every operator compiled once for the fixed shapes above, whatever the draws."""
    for name, fn in JITTED.items():
        for t in (0.0, 0.5, 3.0):
            fn(np.ones(SHAPE, np.float32), np.float32(t), np.float32(0.5))
        assert fn._cache_size() == 1, name
