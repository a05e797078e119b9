"""Leaf kinds and edge values in the pure operators (issue 12).

Rules checked here (expected values from closed forms or NumPy, never from jaxreg):

* integer, bool and ``None`` leaves pass through the pytree operators unchanged and
  do not enter a norm (projections included); the float results do not depend on
  their presence;
* a bare integer or bool array given to an array operator (``soft_threshold``,
  ``block_soft_threshold``) is refused with a ValueError naming ``x``;
* a Python float is a float leaf (penalties, prox operators, projections, sparsity);
* ``projection_l1_ball(x, 0)`` is exactly 0 (not NaN); ``projection_l2_ball`` norms do
  not underflow/overflow; a schedule ``radius`` is a ValueError naming ``radius``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import strict

import jaxreg


def np_soft(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def np_project_l1(v, z):
    """Duchi et al. 2008 as written in REFERENCE §2 (float64)."""
    v = np.asarray(v, np.float64)
    if np.abs(v).sum() <= z:
        return v
    if z == 0:  # the ball is {0}
        return np.zeros_like(v)
    mu = np.sort(np.abs(v))[::-1]
    cs = np.cumsum(mu)
    j = np.arange(1, len(v) + 1)
    rho = np.max(np.nonzero(mu - (cs - z) / j > 0)[0]) + 1
    return np_soft(v, (cs[rho - 1] - z) / rho)


def np_project_l2(v, z):
    v = np.asarray(v, np.float64)
    n = np.sqrt(np.sum(v**2))
    return v if n <= z else v * (z / n)


W = np.array([[0.5, -2.0, 0.25], [3.0, -0.1, 1.0]], np.float32)
B = np.array([-0.75, 0.3], np.float32)
FLAT = np.concatenate([W.ravel(), B])


def _tree(with_int=True):
    tree = {"w": jnp.asarray(W), "b": jnp.asarray(B), "none": None}
    if with_int:
        tree["count"] = jnp.asarray([7, -9], jnp.int32)
        tree["flag"] = jnp.asarray(True)
    return tree


PROJECTIONS = {
    "l1": (jaxreg.prox.projection_l1_ball, np_project_l1),
    "l2": (jaxreg.prox.projection_l2_ball, np_project_l2),
}


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
@pytest.mark.parametrize("radius", [0.0, 0.5, 3.0, 100.0])
def test_projection_int_leaves_pass_through_and_do_not_count(kind, radius):
    project, oracle = PROJECTIONS[kind]
    with strict():
        out = project(_tree(), radius)
        plain = project(_tree(with_int=False), radius)
    expected = oracle(FLAT, radius)
    got = np.concatenate([np.ravel(out["w"]), np.ravel(out["b"])])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.any(np.isnan(got))
    assert out["count"].dtype == jnp.int32 and out["flag"].dtype == jnp.bool_
    np.testing.assert_array_equal(out["count"], [7, -9])
    assert bool(out["flag"]) and out["none"] is None
    assert out["w"].dtype == jnp.float32
    for name in ("w", "b"):  # an int leaf changes nothing in the float results
        np.testing.assert_array_equal(out[name], plain[name])
    if radius == 0.0:
        assert np.all(got == 0.0)


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
def test_projection_radius_zero_of_zero_tree_and_dtypes(kind):
    project, oracle = PROJECTIONS[kind]
    zero = {"a": jnp.zeros(3, jnp.bfloat16), "b": jnp.zeros((), jnp.float32)}
    out = project(zero, 0.0)
    assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float32
    assert np.all(np.asarray(out["a"], np.float32) == 0) and float(out["b"]) == 0.0
    with jax.enable_x64(True):
        x = jnp.asarray(FLAT, jnp.float64)
        got = project(x, 1.5)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, oracle(FLAT, 1.5), rtol=1e-12, atol=1e-14)


def test_projection_jit_and_traced_radius():
    for kind, (project, oracle) in PROJECTIONS.items():
        got = jax.jit(project)(jnp.asarray(FLAT), jnp.float32(0.0))
        assert np.all(np.asarray(got) == 0.0), kind
        got = jax.jit(project)(jnp.asarray(FLAT), jnp.float32(2.0))
        np.testing.assert_allclose(got, oracle(FLAT, 2.0), rtol=1e-5, atol=1e-6)


def test_projection_l2_norm_is_scaled():
    tiny = jnp.full(4, 1e-30, jnp.float32)  # squares underflow in float32
    np.testing.assert_allclose(
        jaxreg.prox.projection_l2_ball(tiny, 1e-30), np.full(4, 0.5e-30), rtol=1e-5
    )
    huge = jnp.full(4, 3e38, jnp.float32)  # squares overflow in float32
    np.testing.assert_allclose(
        jaxreg.prox.projection_l2_ball(huge, 2.0), np.full(4, 1.0), rtol=1e-5
    )


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
def test_projection_nan_stays_nan(kind):
    project, _ = PROJECTIONS[kind]
    out = project({"a": jnp.asarray([np.nan, 1.0]), "n": 3}, 0.5)
    assert np.isnan(np.asarray(out["a"])[0]) and out["n"] == 3


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
def test_projection_python_float_leaves(kind):
    project, oracle = PROJECTIONS[kind]
    out = project([3.0, -4.0, 5], 1.0)
    np.testing.assert_allclose([float(out[0]), float(out[1])], oracle([3.0, -4.0], 1.0), rtol=1e-6)
    assert out[2] == 5 and isinstance(out[2], int)


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
@pytest.mark.parametrize(
    "radius",
    [optax.constant_schedule(1.0), lambda c: 1.0, jnp.ones(2), -1.0, float("nan"), True],
    ids=["optax-schedule", "lambda", "vector", "negative", "nan", "bool"],
)
def test_projection_bad_radius(kind, radius):
    project, _ = PROJECTIONS[kind]
    with pytest.raises(ValueError, match="`radius`"):
        project(jnp.ones(3), radius)


@pytest.mark.parametrize(
    "op",
    [
        lambda x: jaxreg.prox.soft_threshold(x, 1.0),
        lambda x: jaxreg.prox.block_soft_threshold(x.reshape(2, 2), 1.0),
    ],
    ids=["soft_threshold", "block_soft_threshold"],
)
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
def test_array_ops_refuse_integer_arrays(op, dtype):
    with pytest.raises(ValueError, match=r"`x`.*float"):
        op(jnp.ones(4, dtype))


def test_tree_prox_passes_integer_leaves():
    tree = {"w": jnp.asarray([2.0, -0.5]), "n": jnp.asarray([5, -5]), "k": 4, "flag": True}
    for prox in (jaxreg.prox.l1, jaxreg.prox.l2, jaxreg.prox.elastic_net, jaxreg.prox.group_lasso):
        out = prox(tree, 1.0)
        assert out["n"] is tree["n"] and out["k"] == 4 and out["flag"] is True


def test_python_float_leaves_are_float_leaves():
    assert float(jaxreg.l1_penalty([0.5, -1.0], 1.0)) == 1.5
    assert float(jaxreg.l2_penalty([0.5, -1.0], 2.0)) == 1.25  # (2/2)(0.25 + 1)
    assert float(jaxreg.elastic_net_penalty([2.0], 1.0, l1_ratio=0.5)) == 2.0  # .5*2 + .25*4
    # Python ints and bools pass through (no contribution), floats count.
    assert float(jaxreg.l1_penalty({"a": 3, "b": True, "c": -2.0}, 1.0)) == 2.0
    assert float(jaxreg.l1_penalty({"a": 0.5, "b": -1.0}, 1.0, mask={"a": True, "b": False})) == 0.5
    out = jaxreg.prox.l1({"a": 0.5, "b": -1.0, "n": 2}, 0.6)
    np.testing.assert_allclose([float(out["a"]), float(out["b"])], [0.0, -0.4], rtol=1e-6)
    assert out["n"] == 2
    np.testing.assert_allclose(float(jaxreg.prox.l2(2.0, 1.0)), 1.0)
    assert float(jaxreg.sparsity([0.0, 1.0, jnp.zeros(2), 7])) == 0.75
    rep = jaxreg.sparsity_report({"x": 0.0, "n": 1})
    assert int(rep["x"].zeros) == 1 and int(rep["x"].size) == 1 and rep["n"] is None


def test_projections_of_complex_leaves_use_the_modulus():
    z = np.array([3 + 4j, 0.6 - 0.8j, 0.0], np.complex64)  # moduli 5, 1, 0
    out2 = np.asarray(jaxreg.prox.projection_l2_ball(jnp.asarray(z), 1.0))
    np.testing.assert_allclose(out2, z / np.sqrt(26.0), rtol=1e-5)
    # L1 ball of radius 2 on the moduli (5, 1, 0): theta = 3 keeps modulus 2 on the first.
    out1 = np.asarray(jaxreg.prox.projection_l1_ball(jnp.asarray(z), 2.0))
    np.testing.assert_allclose(out1, [z[0] * 2 / 5, 0.0, 0.0], rtol=1e-5, atol=1e-6)
    assert out1.dtype == np.complex64 and out2.dtype == np.complex64
