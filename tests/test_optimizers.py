"""jaxreg's proximal optimizers against NumPy re-implementations of their formulas.

Each optimizer runs >= 50 steps on a small least-squares problem (gradients depend
on the params, so whole trajectories are compared) in float32; the reference runs
the formula in float64 NumPy. Exact zeros must fall on the same coordinates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import np_soft

import jaxreg

STEPS = 60


def _problem(dim=12, n=30, seed=0, complex_=False):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, dim)) / np.sqrt(n)
    w_true = np.where(rng.random(dim) < 0.4, rng.normal(size=dim) * 2, 0.0)
    if complex_:
        a = a + 1j * rng.normal(size=(n, dim)) / np.sqrt(n)
        w_true = w_true * (1 + 0.5j)
    b = a @ w_true + 0.05 * rng.normal(size=n)
    p0 = rng.normal(size=dim) * 0.5
    return a, b, p0


def _grad_np(a, b, p):
    """Conjugate gradient of ½‖a p − b‖² (optax's convention for complex params)."""
    return a.conj().T @ (a @ p - b)


def _grad_jax(a, b):
    a32 = jnp.asarray(a, jnp.complex64 if np.iscomplexobj(a) else jnp.float32)
    b32 = jnp.asarray(b, a32.dtype)

    def grad(p):
        return a32.conj().T @ (a32 @ p - b32)

    return grad


def _run_jax(tx, a, b, p0, steps=STEPS):
    grad = _grad_jax(a, b)
    dtype = jnp.complex64 if np.iscomplexobj(a) else jnp.float32
    p = jnp.asarray(p0, dtype)

    @jax.jit
    def run(p):
        def body(_, carry):
            p, s = carry
            u, s = tx.update(grad(p), s, p)
            return optax.apply_updates(p, u), s

        return jax.lax.fori_loop(0, steps, body, (p, tx.init(p)))[0]

    return np.asarray(run(p))


def _assert_matches(got, want, *, rtol=2e-4, atol=2e-5):
    np.testing.assert_array_equal(got == 0, want == 0, err_msg="exact zeros differ")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert 0 < np.sum(want == 0) < want.size, "the test needs both zeros and non-zeros"


# ----------------------------------------------------------------- proximal adam


def _adam_np(a, b, p, steps, lr, l1, wd, b1=0.9, b2=0.999, eps=1e-8):
    m = np.zeros_like(p)
    v = np.zeros(p.shape)
    for k in range(steps):
        g = _grad_np(a, b, p)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * np.abs(g) ** 2
        t = k + 1
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        d = np.sqrt(v_hat) + eps
        eta = lr(k) if callable(lr) else lr
        lam = l1(k) if callable(l1) else l1
        z = p - eta * m_hat / d - eta * wd * p
        p = np_soft(z, eta * lam / d)
    return p


@pytest.mark.parametrize(
    ("lr", "l1", "wd"),
    [
        (0.05, 0.3, 0.0),
        (0.05, 0.3, 0.1),
        (optax.exponential_decay(0.08, 10, 0.7), optax.linear_schedule(0.0, 0.5, 40), 0.05),
    ],
    ids=["l1", "l1+wd", "schedules"],
)
def test_proximal_adam_matches_numpy(lr, l1, wd):
    a, b, p0 = _problem()
    got = _run_jax(jaxreg.proximal_adam(lr, l1=l1, weight_decay=wd), a, b, p0)
    lr_np = (lambda k: float(lr(k))) if callable(lr) else lr
    l1_np = (lambda k: float(l1(k))) if callable(l1) else l1
    _assert_matches(got, _adam_np(a, b, p0, STEPS, lr_np, l1_np, wd))


def test_proximal_adam_complex_modulus_rule():
    a, b, p0 = _problem(complex_=True)
    p0 = p0 * (1 - 0.3j)
    got = _run_jax(jaxreg.proximal_adam(0.05, l1=0.4), a, b, p0)
    _assert_matches(got, _adam_np(a, b, p0, STEPS, 0.05, 0.4, 0.0))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_proximal_adam_without_penalty_is_optax_adam_bitwise(dtype):
    params = {"w": jnp.array([0.5, -1.0, 2.0], dtype), "b": (jnp.ones((2, 2), dtype), None)}
    grads = jax.tree.map(lambda x: (0.3 * x + 0.1).astype(dtype), params)
    ours, ref = jaxreg.proximal_adam(0.1), optax.adam(0.1)
    s1, s2 = ours.init(params), ref.init(params)
    update1, update2 = jax.jit(ours.update), jax.jit(ref.update)
    for _ in range(3):
        u1, s1 = update1(grads, s1, params)
        u2, s2 = update2(grads, s2, params)
        for x, y in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
            assert x.dtype == y.dtype == dtype
            np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


def test_proximal_adam_state_is_exactly_adams():
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones(3)}
    state = jaxreg.proximal_adam(1e-3, l1=1e-2, weight_decay=1e-2).init(params)
    assert isinstance(state, optax.ScaleByAdamState)
    assert state._fields == ("count", "mu", "nu")
    adam_state = optax.adam(1e-3).init(params)[0]
    assert jax.tree.structure(state) == jax.tree.structure(adam_state)
    n_state = sum(x.size for x in jax.tree.leaves(state))
    assert n_state == 2 * sum(x.size for x in jax.tree.leaves(params)) + 1


def test_proximal_adam_mask_trains_masked_out_leaves_with_plain_adam():
    a, b, p0 = _problem()
    params = {"w": jnp.asarray(p0, jnp.float32), "b": jnp.asarray(p0[:4] + 1.0, jnp.float32)}
    grads = {
        "w": jnp.asarray(_grad_np(a, b, p0), jnp.float32),
        "b": jnp.array([0.3, -0.2, 0.0, 1.0]),
    }
    tx = jaxreg.proximal_adam(0.1, l1=100.0, weight_decay=0.5, mask={"w": True, "b": False})
    ref = optax.adam(0.1)
    s, sr = tx.init(params), ref.init(params)
    update, update_ref = jax.jit(tx.update), jax.jit(ref.update)
    for _ in range(3):
        u, s = update(grads, s, params)
        ur, sr = update_ref(grads, sr, params)
        # Trained by plain Adam: not frozen, not decayed (same arithmetic; XLA may round the
        # shared bias correction differently in the two jitted programs, so allow 1 ulp).
        np.testing.assert_allclose(u["b"], ur["b"], rtol=2e-7, atol=0)
        assert np.any(np.asarray(u["b"]) != 0)
        params = optax.apply_updates(params, u)
    assert np.all(np.asarray(params["w"]) == 0)  # the huge l1 zeroes the regularized leaf
    # A mask function sees the params.
    tx_fn = jaxreg.proximal_adam(0.1, l1=5.0, mask=lambda p: {"w": True, "b": False})
    tx_tree = jaxreg.proximal_adam(0.1, l1=5.0, mask={"w": True, "b": False})
    u_fn, _ = jax.jit(tx_fn.update)(grads, tx_fn.init(params), params)
    u_tree, _ = jax.jit(tx_tree.update)(grads, tx_tree.init(params), params)
    assert np.any(np.asarray(u_fn["w"]) != np.asarray(u_fn["b"][0]))
    jax.tree.map(np.testing.assert_array_equal, u_fn, u_tree)


def test_proximal_adam_exact_zeros_bf16_and_requires_params():
    p = jnp.array([0.01, 3.0], jnp.bfloat16)
    tx = jaxreg.proximal_adam(0.1, l1=1.0)
    u, _ = jax.jit(tx.update)(jnp.array([0.1, 1.0], jnp.bfloat16), tx.init(p), p)
    new = optax.apply_updates(p, u)
    assert new.dtype == jnp.bfloat16 and new[0] == 0 and new[1] != 0
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.array([0.1, 1.0], jnp.bfloat16), tx.init(p))


def test_honest_comparison_prox_adam_vs_penalty_in_loss():
    """proximal_adam zeroes the complement of the true support; Adam + L1 in the loss: none."""
    rng = np.random.default_rng(0)
    n, d, k, lam = 200, 50, 5, 0.1
    x = rng.normal(size=(n, d)).astype(np.float32)
    w_true = np.zeros(d, np.float32)
    support = rng.choice(d, k, replace=False)
    w_true[support] = rng.choice([-1, 1], k) * rng.uniform(1, 2, k)
    y = x @ w_true + 0.1 * rng.normal(size=n).astype(np.float32)
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss(w):
        return 0.5 * jnp.mean((x @ w - y) ** 2)

    def run(tx, objective, steps=2000):
        def body(_, carry):
            w, s = carry
            u, s = tx.update(jax.grad(objective)(w), s, w)
            return optax.apply_updates(w, u), s

        w0 = jnp.zeros(d)
        return np.asarray(
            jax.jit(lambda: jax.lax.fori_loop(0, steps, body, (w0, tx.init(w0)))[0])()
        )

    w_prox = run(jaxreg.proximal_adam(0.01, l1=lam), loss)
    w_adam = run(optax.adam(0.01), lambda w: loss(w) + jaxreg.l1_penalty(w, lam))
    assert np.mean(w_prox == 0) >= 0.8
    assert np.all(w_prox[support] != 0)
    assert set(np.flatnonzero(w_prox)) == set(support)
    assert np.sum(w_adam == 0) == 0
    # Both solve the same Lasso: the oracle (scikit-learn) has the same support.
    from sklearn.linear_model import Lasso

    ref = Lasso(alpha=lam, fit_intercept=False, tol=1e-10, max_iter=100_000)
    ref.fit(np.asarray(x, np.float64), np.asarray(y, np.float64))
    assert set(np.flatnonzero(ref.coef_)) == set(support)
    np.testing.assert_allclose(w_prox, ref.coef_, atol=2e-2)


# ------------------------------------------------------------------ proximal sgd


def _sgd_np(a, b, p, steps, lr, l1, l2, momentum=None, nesterov=False):
    trace = np.zeros_like(p)
    for _ in range(steps):
        g = _grad_np(a, b, p)
        if momentum is not None:
            trace = g + momentum * trace
            g = g + momentum * trace if nesterov else trace
        v = p - lr * g
        p = np_soft(v, lr * l1) / (1 + lr * l2)
    return p


@pytest.mark.parametrize(
    ("l1", "l2", "momentum", "nesterov"),
    [
        (0.3, 0.0, None, False),
        (0.3, 0.5, 0.9, False),
        (0.3, 0.5, 0.8, True),
        (0.0, 0.5, None, False),
    ],
)
def test_proximal_sgd_matches_numpy(l1, l2, momentum, nesterov):
    a, b, p0 = _problem()
    tx = jaxreg.proximal_sgd(0.2, l1=l1, l2=l2, momentum=momentum, nesterov=nesterov)
    got = _run_jax(tx, a, b, p0)
    want = _sgd_np(a, b, p0, STEPS, 0.2, l1, l2, momentum, nesterov)
    if l1 == 0:
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
        assert np.all(want != 0)
    else:
        _assert_matches(got, want)


def test_proximal_sgd_mask_and_plain_sgd():
    params = {"w": jnp.array([0.05, -2.0]), "b": jnp.array([0.05, -2.0])}
    grads = {"w": jnp.array([0.1, 0.2]), "b": jnp.array([0.1, 0.2])}
    tx = jaxreg.proximal_sgd(0.5, l1=1.0, l2=1.0, momentum=0.9, mask={"w": True, "b": False})
    ref = optax.sgd(0.5, momentum=0.9)
    u, _ = tx.update(grads, tx.init(params), params)
    ur, _ = ref.update(grads, ref.init(params), params)
    np.testing.assert_array_equal(u["b"], ur["b"])
    new = optax.apply_updates(params, u)
    np.testing.assert_allclose(new["w"], [0.0, np_soft(-2.1, 0.5) / 1.5], rtol=1e-6)
    assert new["w"][0] == 0
    # No penalty: exactly optax.sgd's updates; the state is (sgd's, the prox's) whatever
    # the strengths' values.
    plain = jaxreg.proximal_sgd(0.5)
    u0, s0 = plain.update(grads, plain.init(params), params)
    jax.tree.map(np.testing.assert_array_equal, u0, jax.tree.map(lambda g: -0.5 * g, grads))
    with_l1 = jaxreg.proximal_sgd(0.5, l1=1.0, l2=1.0)
    assert jax.tree.structure(s0) == jax.tree.structure(with_l1.init(params))


# -------------------------------------------------------------- proximal adagrad


def _adagrad_np(a, b, p, steps, lr, l1, l2, init=0.1):
    accum = np.full(p.shape, init)
    for _ in range(steps):
        g = _grad_np(a, b, p)
        accum = accum + np.abs(g) ** 2
        step = lr / np.sqrt(accum)
        v = p - step * g
        p = np_soft(v, step * l1) / (1 + step * l2)
    return p


@pytest.mark.parametrize(("l1", "l2", "init"), [(0.3, 0.0, 0.1), (0.3, 0.4, 0.5)])
def test_proximal_adagrad_matches_tf_kernel(l1, l2, init):
    a, b, p0 = _problem()
    tx = jaxreg.proximal_adagrad(0.5, l1=l1, l2=l2, initial_accumulator_value=init)
    _assert_matches(_run_jax(tx, a, b, p0), _adagrad_np(a, b, p0, STEPS, 0.5, l1, l2, init))


def test_proximal_adagrad_complex_and_mask():
    a, b, p0 = _problem(complex_=True)
    got = _run_jax(jaxreg.proximal_adagrad(0.5, l1=0.3), a, b, p0 + 0j)
    _assert_matches(got, _adagrad_np(a, b, p0 + 0j, STEPS, 0.5, 0.3, 0.0))
    # Masked-out: plain Adagrad w − a·g with a = lr/√accum.
    params = {"w": jnp.array([0.2, 3.0]), "b": jnp.array([0.2, 3.0])}
    grads = {"w": jnp.array([1.0, 1.0]), "b": jnp.array([1.0, 1.0])}
    tx = jaxreg.proximal_adagrad(
        1.0, l1=0.5, initial_accumulator_value=3.0, mask={"w": True, "b": False}
    )
    new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
    np.testing.assert_allclose(new["b"], [-0.3, 2.5], rtol=1e-6)
    np.testing.assert_allclose(new["w"], [-0.05, 2.25], rtol=1e-5)


# -------------------------------------------------------------------------- ftrl


def _ftrl_np(a, b, p, steps, lr, l1, l2, shrink, beta, lr_power=-0.5, init=0.1):
    """Keras 3 ``Ftrl.update_step``, literally (real parameters)."""
    n = np.full(p.shape, init)
    z = np.zeros_like(p)
    for _ in range(steps):
        g = _grad_np(a, b, p)
        l2_reg = l2 + beta / (2.0 * lr)
        g_s = g + 2 * shrink * p
        n_new = n + g**2
        z = z + g_s - (n_new ** (-lr_power) - n ** (-lr_power)) / lr * p
        quad = n_new ** (-lr_power) / lr + 2 * l2_reg
        p = (np.clip(z, -l1, l1) - z) / quad
        n = n_new
    return p


@pytest.mark.parametrize(
    ("l1", "l2", "shrink", "beta", "lr_power", "init"),
    [
        (0.5, 0.0, 0.0, 0.0, -0.5, 0.1),
        (3.0, 0.2, 0.1, 0.5, -0.5, 0.1),
        (3.0, 0.1, 0.0, 1.0, -0.3, 0.0),
    ],
)
def test_ftrl_matches_keras(l1, l2, shrink, beta, lr_power, init):
    a, b, p0 = _problem()
    tx = jaxreg.ftrl(
        0.5,
        l1=l1,
        l2=l2,
        l2_shrinkage=shrink,
        beta=beta,
        lr_power=lr_power,
        initial_accumulator_value=init,
    )
    want = _ftrl_np(a, b, p0, STEPS, 0.5, l1, l2, shrink, beta, lr_power, init)
    _assert_matches(_run_jax(tx, a, b, p0), want)


def test_ftrl_nan_propagates_and_zeros_are_exact():
    p = jnp.array([0.5, 0.5, 0.5])
    tx = jaxreg.ftrl(1.0, l1=0.1)
    # coordinate 0: |z| <= l1 -> exactly 0; 1: NaN gradient -> NaN; 2: large -> non-zero.
    s = tx.init(p)
    sigma = (np.sqrt(0.1 + 0.01) - np.sqrt(0.1)) / 1.0
    g0 = 0.1
    assert abs(g0 - sigma * 0.5) <= 0.1
    u, s = tx.update(jnp.array([g0, jnp.nan, 3.0]), s, p)
    new = optax.apply_updates(p, u)
    assert new[0] == 0 and np.isnan(new[1]) and new[2] != 0 and np.isfinite(new[2])
    assert np.isnan(s.linear[1]) and not np.isnan(s.linear[2])


def test_ftrl_mask_runs_unregularized_ftrl():
    a, b, p0 = _problem()
    params = {"w": jnp.asarray(p0, jnp.float32), "b": jnp.asarray(p0, jnp.float32)}
    tx = jaxreg.ftrl(0.5, l1=3.0, l2=0.2, l2_shrinkage=0.1, beta=0.5, mask={"w": True, "b": False})
    grad = _grad_jax(a, b)

    @jax.jit
    def run(params):
        def body(_, carry):
            p, s = carry
            u, s = tx.update(jax.tree.map(grad, p), s, p)
            return optax.apply_updates(p, u), s

        return jax.lax.fori_loop(0, STEPS, body, (params, tx.init(params)))[0]

    got = run(params)
    _assert_matches(np.asarray(got["w"]), _ftrl_np(a, b, p0, STEPS, 0.5, 3.0, 0.2, 0.1, 0.5))
    want_b = _ftrl_np(a, b, p0, STEPS, 0.5, 0.0, 0.0, 0.0, 0.5)
    np.testing.assert_allclose(got["b"], want_b, rtol=2e-4, atol=2e-5)


# -------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("factory", "kwargs", "name"),
    [
        (jaxreg.proximal_adam, {"learning_rate": -1.0}, "learning_rate"),
        (jaxreg.proximal_adam, {"learning_rate": 0.1, "l1": -1.0}, "l1"),
        (
            jaxreg.proximal_adam,
            {"learning_rate": 0.1, "weight_decay": float("nan")},
            "weight_decay",
        ),
        (jaxreg.proximal_adam, {"learning_rate": 0.1, "b1": 1.0}, "b1"),
        (jaxreg.proximal_adam, {"learning_rate": 0.1, "b2": -0.1}, "b2"),
        (jaxreg.proximal_adam, {"learning_rate": 0.1, "eps": -1e-8}, "eps"),
        (jaxreg.proximal_adam, {"learning_rate": 0.1, "mask": True}, "mask"),
        (jaxreg.proximal_sgd, {"learning_rate": float("inf")}, "learning_rate"),
        (jaxreg.proximal_sgd, {"learning_rate": 0.1, "l2": -1.0}, "l2"),
        (jaxreg.proximal_sgd, {"learning_rate": 0.1, "momentum": 1.5}, "momentum"),
        (jaxreg.proximal_sgd, {"learning_rate": 0.1, "nesterov": "yes"}, "nesterov"),
        (jaxreg.proximal_adagrad, {"learning_rate": 0.1, "l1": -1.0}, "l1"),
        (
            jaxreg.proximal_adagrad,
            {"learning_rate": 0.1, "initial_accumulator_value": 0.0},
            "initial_accumulator_value",
        ),
        (jaxreg.ftrl, {"learning_rate": 0.0}, "learning_rate"),
        (jaxreg.ftrl, {"learning_rate": lambda c: -1.0}, "learning_rate"),
        (jaxreg.ftrl, {"learning_rate": 0.1, "l2_shrinkage": -1.0}, "l2_shrinkage"),
        (jaxreg.ftrl, {"learning_rate": 0.1, "beta": -1.0}, "beta"),
        (jaxreg.ftrl, {"learning_rate": 0.1, "lr_power": 0.5}, "lr_power"),
        (jaxreg.ftrl, {"learning_rate": 0.1, "lr_power": float("-inf")}, "lr_power"),
        (
            jaxreg.ftrl,
            {"learning_rate": 0.1, "initial_accumulator_value": -0.1},
            "initial_accumulator_value",
        ),
        (jaxreg.ftrl, {"learning_rate": 0.1, "beta": lambda c: 0.1}, "beta"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        factory(**kwargs)
