"""Sparsity metrics against NumPy counts and norms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import nested_tree

import jaxreg


def _sparse_tree():
    tree = nested_tree()
    k = np.array(tree["dense"]["kernel"])  # (3, 4)
    k[:, 1] = 0.0  # one dead output unit
    k[0, 3] = 0.0
    tree["dense"]["kernel"] = jnp.asarray(k)
    tree["dense"]["bias"] = tree["dense"]["bias"].at[0].set(0.0)
    tree["extra"] = (jnp.array([0.0, 0.0], jnp.bfloat16), None)
    tree["cplx"] = jnp.array([0j, 1 + 1j, 0j], jnp.complex64)
    return tree


def _np_float_leaves(tree, mask=None):
    leaves = jax.tree.leaves(tree)
    keep = [True] * len(leaves) if mask is None else jax.tree.leaves(mask)
    return [
        np.asarray(x)
        for x, m in zip(leaves, keep, strict=True)
        if m and jnp.issubdtype(x.dtype, jnp.inexact)
    ]


def test_sparsity_counts_exact_zeros_of_float_leaves():
    tree = _sparse_tree()
    leaves = _np_float_leaves(tree)
    want = sum(np.sum(x == 0) for x in leaves) / sum(x.size for x in leaves)
    assert want == pytest.approx(9 / 21)
    got = jaxreg.sparsity(tree)
    assert got.dtype == jnp.float32 and got.shape == ()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jaxreg.sparsity)(tree), want, rtol=1e-6)


def test_sparsity_mask_tree_and_function():
    tree = _sparse_tree()
    mask = {"dense": {"kernel": True, "bias": False}, "extra": False, "step": False, "cplx": True}
    want = (3 + 1 + 2) / (12 + 3)
    np.testing.assert_allclose(jaxreg.sparsity(tree, mask=mask), want, rtol=1e-6)
    np.testing.assert_allclose(jaxreg.sparsity(tree, mask=lambda p: mask), want, rtol=1e-6)
    assert float(jaxreg.sparsity({"i": jnp.arange(3)})) == 0.0
    with pytest.raises(ValueError, match="`mask`"):
        jaxreg.sparsity(tree, mask=True)


@pytest.mark.parametrize("jit", [False, True])
def test_sparsity_report_matches_numpy(jit):
    tree = _sparse_tree()
    report_fn = jax.jit(jaxreg.sparsity_report) if jit else jaxreg.sparsity_report
    rep = report_fn(tree)
    k = np.asarray(tree["dense"]["kernel"])
    r = rep["dense"]["kernel"]
    assert isinstance(r, jaxreg.LeafSparsity)
    assert int(r.size) == 12 and int(r.zeros) == np.sum(k == 0) == 4
    np.testing.assert_allclose(r.fraction, 4 / 12, rtol=1e-6)
    np.testing.assert_allclose(r.l1, np.sum(np.abs(k)), rtol=1e-6)
    np.testing.assert_allclose(r.l2, np.linalg.norm(k), rtol=1e-6)
    assert int(r.units) == 4 and int(r.dead_units) == 1
    b = rep["dense"]["bias"]
    assert int(b.units) == 0 and int(b.dead_units) == 0 and int(b.zeros) == 1
    c = rep["cplx"]
    np.testing.assert_allclose(c.l1, np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(c.l2, np.sqrt(2), rtol=1e-6)
    assert int(rep["extra"][0].zeros) == 2 and rep["extra"][0].l1.dtype == jnp.float32
    assert rep["step"] is None and rep["extra"][1] is None


def test_sparsity_report_group_axis_and_mask():
    w = np.ones((2, 3, 4), np.float32)
    w[:, 1, :] = 0.0  # head 1 (axis 1) dead
    w[:, :, 2] = 0.0  # output feature 2 (last axis) dead
    params = {"attn": jnp.asarray(w), "bias": jnp.zeros(4)}
    rep = jaxreg.sparsity_report(params)
    assert int(rep["attn"].units) == 4 and int(rep["attn"].dead_units) == 1
    rep = jaxreg.sparsity_report(params, group_axis=1)
    assert int(rep["attn"].units) == 3 and int(rep["attn"].dead_units) == 1
    rep = jaxreg.sparsity_report(params, group_axis=(1, 2))
    dead = np.all(w == 0, axis=0)
    assert int(rep["attn"].units) == 12 and int(rep["attn"].dead_units) == np.sum(dead) == 6
    rep = jaxreg.sparsity_report(params, mask={"attn": False, "bias": True})
    assert rep["attn"] is None and int(rep["bias"].zeros) == 4
    with pytest.raises(ValueError, match="`group_axis`"):
        jaxreg.sparsity_report(params, group_axis="last")
    with pytest.raises(ValueError, match="`group_axis`"):
        jaxreg.sparsity_report(params, group_axis=5)


def test_report_sees_dead_units_made_by_group_lasso_inside_a_jitted_step():
    """Logged every step under jit: one compilation, counts follow the training."""
    import optax

    params = {"kernel": jnp.array([[3.0, 0.1, 2.0], [4.0, 0.1, -0.05]]), "bias": jnp.ones(3)}
    tx = optax.chain(optax.sgd(1.0), jaxreg.group_lasso_prox(0.5, learning_rate=1.0))

    @jax.jit
    def step(p, s):
        u, s = tx.update(jax.tree.map(jnp.zeros_like, p), s, p)
        p = optax.apply_updates(p, u)
        return p, s, jaxreg.sparsity_report(p), jaxreg.sparsity(p)

    p, s, rep, frac = step(params, tx.init(params))
    k = np.asarray(p["kernel"])
    assert int(rep["kernel"].dead_units) == np.sum(np.all(k == 0, axis=0)) == 1
    np.testing.assert_allclose(frac, np.sum(k == 0) / 9, rtol=1e-6)
    p, s, rep, _ = step(p, s)
    assert int(rep["kernel"].dead_units) == np.sum(np.all(np.asarray(p["kernel"]) == 0, axis=0))
    assert step._cache_size() == 1
