"""Issue 13 kernels: copy-free FTRL, sequenced group lasso, scaled group norms.

Oracles: closed forms in float64 NumPy (block soft threshold), the Keras ``Ftrl``
update written out in NumPy, and XLA's own memory analysis of the compiled step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg import _kernels


def _bst_oracle(x, t, axis=0):
    """Block soft threshold in float64, groups = entries sharing the other index."""
    x64 = np.asarray(x, np.float64)
    size = x64.shape[axis]
    norm = np.sqrt(np.sum(x64 * x64, axis=axis, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm == 0, 0.0, np.maximum(0.0, 1 - t * np.sqrt(size) / norm))
    return x64 * scale


def _step(tx):
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return jax.jit(step, donate_argnums=(0, 1))


# ------------------------------------------------------------------------------ after
@pytest.mark.parametrize("dep", [jnp.array([1.0, 2.0]), jnp.array([jnp.nan]), jnp.zeros((0,))])
def test_after_returns_x_bitwise(dep):
    x = jnp.array([1.5, -0.0, jnp.inf, jnp.nan])
    out = jax.jit(_kernels.after)(x, dep)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))
    assert np.signbit(np.asarray(out)[1])


# ------------------------------------------------------------------------------- ftrl
def _keras_ftrl(p, grads, lr, l1, l2, n0=0.1):
    """keras.optimizers.Ftrl (lr_power=-0.5, beta=0, no shrinkage) in float64."""
    w = np.asarray(p, np.float64)
    n = np.full_like(w, n0)
    z = np.zeros_like(w)
    for g in grads:
        g = np.asarray(g, np.float64)
        n_new = n + g * g
        z = z + g - (np.sqrt(n_new) - np.sqrt(n)) / lr * w
        quad = np.sqrt(n_new) / lr + 2 * l2
        w = (np.clip(z, -l1, l1) - z) / quad
        n = n_new
    return w, n, z


def test_ftrl_matches_keras_and_needs_no_copy():
    keys = jax.random.split(jax.random.key(0), 4)
    p = {"a": jax.random.normal(keys[0], (60, 30)), "b": jax.random.normal(keys[1], (17,))}
    tx = jaxreg.ftrl(0.5, l1=0.05, l2=0.01)
    step = _step(tx)
    grads = [jax.tree.map(lambda x, i=i: jnp.sin(x * (i + 1)), p) for i in range(3)]
    compiled = step.lower(p, tx.init(p), grads[0]).compile()
    # The accumulator is updated in place: no copy of the old one, no temp buffer.
    assert compiled.memory_analysis().temp_size_in_bytes == 0
    assert " copy(" not in compiled.as_text()
    q, s = jax.tree.map(jnp.copy, p), tx.init(p)
    for g in grads:
        q, s = step(q, s, g)
    for k in p:
        w, n, z = _keras_ftrl(p[k], [g[k] for g in grads], 0.5, 0.05, 0.01)
        np.testing.assert_allclose(np.asarray(q[k]), w, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(s.accum[k]), n, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(s.linear[k]), z, rtol=2e-5, atol=1e-6)


# ------------------------------------------------------------------------ group lasso
def test_group_lasso_step_temp_is_not_the_params_size():
    # Three 4.4 MB leaves: p + u is materialized for one or two leaves at a time
    # (leaves are sequenced), never for all of them.
    p = {f"w{i}": jnp.zeros((1100, 1000), jnp.float32) for i in range(3)}
    tx = optax.chain(optax.adam(1e-3), jaxreg.group_lasso_prox(1e-4, learning_rate=1e-3))
    compiled = _step(tx).lower(p, tx.init(p), p).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp <= 2 * 1100 * 1000 * 4 + 65536, temp


def test_group_lasso_groups_of_one_entry_compile_linearly():
    # Leaves of shape (1, c) with group_axis=-1: every group has one entry, so there is
    # no reduction and the scale is elementwise. Sequencing such leaves made XLA fuse
    # every earlier leaf's scale into each later leaf's update: at 100 leaves of (1, 200)
    # the step compiled in 110 s with 99 copies and 31x Adam's bytes (was 2 s / 10x).
    def compiled(n_leaves):
        p = {f"w{i:02d}": jnp.full((1, 16), 0.5 + i, jnp.float32) for i in range(n_leaves)}
        tx = optax.chain(optax.adam(1e-3), jaxreg.group_lasso_prox(1e-4, learning_rate=1e-3))
        return _step(tx).lower(p, tx.init(p), p).compile().as_text()

    few, many = compiled(6), compiled(24)
    assert " copy(" not in many
    # 4x the leaves: about 4x the program (quadratic growth gave ~16x).
    assert len(many) < 6 * len(few), (len(few), len(many))


def test_group_lasso_chain_matches_oracle_and_retraces_cleanly():
    keys = jax.random.split(jax.random.key(1), 3)
    p = {"k": jax.random.normal(keys[0], (40, 6)), "m": jax.random.normal(keys[1], (8, 5))}
    g = {"k": jax.random.normal(keys[2], (40, 6)), "m": jnp.ones((8, 5))}
    t = 0.9
    tx = optax.chain(optax.sgd(0.5), jaxreg.group_lasso_prox(t / 0.5, learning_rate=0.5))
    # Eager, jitted, and jitted again on other shapes: no tracer leaks between calls.
    eager, _ = tx.update(g, tx.init(p), p)
    jitted, _ = jax.jit(tx.update)(g, tx.init(p), p)
    small = jax.tree.map(lambda x: x[:4], p)
    jax.jit(tx.update)(jax.tree.map(lambda x: x[:4], g), tx.init(small), small)
    for out in (eager, jitted):
        new = optax.apply_updates(p, out)
        for k in p:
            v = np.asarray(p[k], np.float64) - 0.5 * np.asarray(g[k], np.float64)
            np.testing.assert_allclose(np.asarray(new[k]), _bst_oracle(v, t), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("magnitude", "t"),
    [
        (1e-22, 1e-24),  # squares underflow in float32; the group is far above the level
        (1e-22, 0.0),  # level 0: identity, even where every square underflows
        (3e19, 1e18),  # squares overflow in float32; the level is large too
        (3e19, 1e-3),  # overflow with a small level: factor 1 to rounding
        (1.0, 0.1),  # normal
    ],
)
def test_block_soft_threshold_extreme_magnitudes(magnitude, t):
    base = np.array([[3.0, 0.1, -2.0], [4.0, -0.2, 1.0], [0.0, 0.3, 2.0]], np.float32)
    x = jnp.asarray(base * np.float32(magnitude))
    out = np.asarray(jaxreg.prox.block_soft_threshold(x, t, group_axis=-1), np.float64)
    ref = _bst_oracle(np.asarray(x), t) if t else np.asarray(x, np.float64)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=0)


def test_block_soft_threshold_nan_group_stays_nan_and_grad_finite_at_zero():
    x = jnp.array([[jnp.nan, 0.0], [1.0, 0.0]])
    out = np.asarray(jaxreg.prox.block_soft_threshold(x, 0.1, group_axis=-1))
    assert np.all(np.isnan(out[:, 0])) and np.all(out[:, 1] == 0)
    grad = jax.grad(lambda y: jnp.sum(jaxreg.prox.block_soft_threshold(y, 0.1, group_axis=-1)))
    assert np.all(np.isfinite(np.asarray(grad(jnp.zeros((3, 2))))))


def test_normal_inputs_bitwise_unscaled_norm():
    # For levels in [2^-40, 2^40] the norm is the plain sum of squares, bit for bit.
    x = jax.random.normal(jax.random.key(3), (50, 7))
    level = jnp.float32(0.3)
    plain = jnp.sqrt(jnp.sum(x * x, axis=0, keepdims=True))
    np.testing.assert_array_equal(np.asarray(_kernels.group_norm(x, level, (0,))), plain)
