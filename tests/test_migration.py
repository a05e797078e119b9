"""The migration guides' claims, checked against the other libraries' documented formulas.

(The Lasso path at all 100 alphas is checked in tests/test_paths.py; the implicit
derivative's closed form in docs/migration/jaxopt.md, run by tests/test_docs.py.)

jaxopt, Keras and PyTorch are not installed: their algorithms are written out in NumPy from
their documentation (the formulas are quoted in docs/migration/*.md). scikit-learn is
installed and is run as the oracle, at tight tolerances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg


def _grad(fun, w):
    return np.asarray(jax.grad(fun)(jnp.asarray(w, jnp.float32)), np.float64)


def _quadratic():
    a = np.asarray(jax.random.normal(jax.random.key(0), (32, 4)), np.float64)
    b = a @ np.arange(4.0)
    return lambda w: 0.5 * jnp.mean((jnp.asarray(a, w.dtype) @ w - jnp.asarray(b, w.dtype)) ** 2)


def _run(tx, fun, w0, steps):
    params = {"w": jnp.asarray(w0, jnp.float32)}
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update({"w": jax.grad(fun)(params["w"])}, state, params)
        params = optax.apply_updates(params, updates)
    return np.asarray(params["w"], np.float64)


# ------------------------------------------------------------------------------ Keras


def test_keras_l2_has_no_half():
    w = {"k": jnp.array([[1.0, -2.0], [0.5, 3.0]])}
    l2 = 0.01  # keras.regularizers.L2(0.01): 0.01·Σw², gradient 0.02·w
    assert np.isclose(jaxreg.l2_penalty(w, strength=2 * l2), l2 * np.sum(np.square(w["k"])))
    grad = jax.grad(lambda p: jaxreg.l2_penalty(p, strength=2 * l2))(w)["k"]
    np.testing.assert_allclose(grad, 2 * l2 * w["k"], rtol=1e-6)


@pytest.mark.parametrize(("l1", "l2"), [(0.01, 0.02), (0.0, 0.01), (0.01, 0.0), (1e-4, 1e-3)])
def test_keras_l1l2_conversion(l1, l2):
    w = {"k": jnp.array([[1.0, -2.0, 0.0], [0.5, 3.0, -0.25]])}
    lam = l1 + 2 * l2
    expected = l1 * np.sum(np.abs(w["k"])) + l2 * np.sum(np.square(w["k"]))
    value = jaxreg.elastic_net_penalty(w, lam, l1_ratio=l1 / lam)
    assert np.isclose(value, expected, rtol=1e-6)


def test_keras_per_layer_regularizers_by_path():
    rng = np.random.default_rng(0)
    params = {
        f"Dense_{i}": {
            "kernel": jnp.asarray(rng.normal(size=(3, 3)), jnp.float32),
            "bias": jnp.ones(3),
        }
        for i in range(2)
    }
    reg = jaxreg.l1_penalty(params, jaxreg.path_strengths({r"Dense_0/kernel$": 1e-2})) + (
        jaxreg.l2_penalty(params, jaxreg.path_strengths({r"Dense_1/kernel$": 2e-3}))
    )
    k0, k1 = (np.asarray(params[f"Dense_{i}"]["kernel"], np.float64) for i in range(2))
    assert np.isclose(reg, 1e-2 * np.abs(k0).sum() + 1e-3 * np.square(k1).sum(), rtol=1e-6)


# ------------------------------------------------------------------------------ PyTorch


@pytest.mark.parametrize("nesterov", [False, True])
def test_torch_sgd_momentum_weight_decay(nesterov):
    fun, lr, mu, wd = _quadratic(), 0.1, 0.9, 1e-2
    w, buf = np.ones(4), None  # torch.optim.SGD, dampening 0
    for _ in range(8):
        g = _grad(fun, w) + wd * w
        buf = g if buf is None else mu * buf + g
        w = w - lr * ((g + mu * buf) if nesterov else buf)
    tx = jaxreg.regularized(
        optax.sgd, lr, l2=wd, optimizer_kwargs={"momentum": mu, "nesterov": nesterov}
    )
    np.testing.assert_allclose(_run(tx, fun, np.ones(4), 8), w, rtol=2e-5)


def _torch_adam(fun, w, steps, lr, wd, decoupled, schedule=None):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        eta = lr if schedule is None else schedule(t - 1)
        g = _grad(fun, w)
        if decoupled:
            w = w * (1 - eta * wd)  # AdamW
        else:
            g = g + wd * w  # Adam(weight_decay)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        w = w - eta * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w


def test_torch_adam_weight_decay_is_coupled_l2():
    fun = _quadratic()
    expected = _torch_adam(fun, np.ones(4), 10, 1e-2, 0.1, decoupled=False)
    tx = optax.chain(jaxreg.add_l2_gradient(0.1), optax.adam(1e-2))
    np.testing.assert_allclose(_run(tx, fun, np.ones(4), 10), expected, rtol=1e-5)


def test_torch_adamw_with_step_lr():
    fun = _quadratic()
    # StepLR(step_size=3, gamma=0.5), stepped every optimizer step
    schedule = optax.exponential_decay(1e-2, transition_steps=3, decay_rate=0.5, staircase=True)

    def torch_lr(t):
        return 1e-2 * 0.5 ** (t // 3)

    for t in range(10):
        assert np.isclose(schedule(t), torch_lr(t))
    expected = _torch_adam(fun, np.ones(4), 10, None, 0.1, decoupled=True, schedule=torch_lr)
    tx = jaxreg.regularized(optax.adam, schedule, weight_decay=0.1)
    np.testing.assert_allclose(_run(tx, fun, np.ones(4), 10), expected, rtol=1e-5)


def test_torch_cosine_annealing():
    schedule = optax.cosine_decay_schedule(1e-3, 100)
    for t in (0, 1, 37, 50, 99, 100):
        assert np.isclose(schedule(t), 1e-3 * (1 + np.cos(np.pi * t / 100)) / 2)


# ------------------------------------------------------------------------------ jaxopt


def _one_prox(tx_factory, x, scaling):
    """``apply_updates(x, u)`` for a zero gradient: the prox at ``x`` with step ``scaling``."""
    tx = optax.chain(optax.sgd(scaling), tx_factory(scaling))
    params = {"x": jnp.asarray(x)}
    updates, _ = tx.update({"x": jnp.zeros_like(params["x"])}, tx.init(params), params)
    return np.asarray(optax.apply_updates(params, updates)["x"])


X_PROX = np.array([[1.5, -0.2, 0.0], [-3.0, 0.7, 0.05]], np.float32)


@pytest.mark.parametrize("scaling", [0.5, 1.0])
def test_jaxopt_prox_lasso(scaling):
    lam = 0.3  # jaxopt.prox.prox_lasso(x, l1reg, scaling)
    expected = np.sign(X_PROX) * np.maximum(np.abs(X_PROX) - lam * scaling, 0)
    got = _one_prox(lambda s: jaxreg.l1_prox(lam, learning_rate=s), X_PROX, scaling)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("scaling", [0.5, 1.0])
def test_jaxopt_prox_elastic_net(scaling):
    lam, gamma = 0.3, 2.0  # prox of scaling·λ·(‖y‖₁ + γ/2‖y‖²)
    soft = np.sign(X_PROX) * np.maximum(np.abs(X_PROX) - scaling * lam, 0)
    expected = soft / (1 + scaling * lam * gamma)
    got = _one_prox(
        lambda s: jaxreg.elastic_net_prox(
            lam * (1 + gamma), l1_ratio=1 / (1 + gamma), learning_rate=s
        ),
        X_PROX,
        scaling,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("scaling", [0.5, 1.0])
def test_jaxopt_prox_group_lasso_per_group(scaling):
    lam = 0.8  # jaxopt's prox_group_lasso on ONE group: x·max(0, 1 − scaling·λ/‖x‖)
    expected = np.stack(
        [col * max(0.0, 1 - scaling * lam / np.linalg.norm(col)) for col in X_PROX.T], axis=1
    )
    size = X_PROX.shape[0]  # default groups: columns (entries sharing the last index)
    got = _one_prox(
        lambda s: jaxreg.group_lasso_prox(lam / np.sqrt(size), learning_rate=s), X_PROX, scaling
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def diabetes64():
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return x, y


# ------------------------------------------------------------------------------ scikit-learn


@pytest.mark.parametrize("alpha", [0.01, 0.1, 1.0])
def test_sklearn_lasso(x64, diabetes64, alpha):
    from sklearn.linear_model import Lasso

    x, y = diabetes64
    xc, yc = x - x.mean(0), y - y.mean()

    def f(w):
        return 0.5 * jnp.mean((jnp.asarray(yc) - jnp.asarray(xc) @ w) ** 2)

    step = 1 / np.linalg.eigvalsh(xc.T @ xc / len(y)).max()
    res = jaxreg.proximal_gradient(
        f, jnp.zeros(10), prox="l1", strength=alpha, learning_rate=step, tol=1e-12, max_iter=10**5
    )
    ref = Lasso(alpha=alpha, tol=1e-12, max_iter=10**6).fit(x, y)
    assert bool(res.converged)
    np.testing.assert_allclose(res.params, ref.coef_, atol=1e-6)
    assert np.array_equal(np.asarray(res.params) == 0, ref.coef_ == 0)
    assert np.isclose(y.mean() - x.mean(0) @ np.asarray(res.params), ref.intercept_)


def test_sklearn_elastic_net_and_ridge(x64, diabetes64):
    from sklearn.linear_model import ElasticNet

    x, y = diabetes64
    xc, yc = x - x.mean(0), y - y.mean()
    n = len(y)

    def f(w):
        return 0.5 * jnp.mean((jnp.asarray(yc) - jnp.asarray(xc) @ w) ** 2)

    step = 1 / np.linalg.eigvalsh(xc.T @ xc / n).max()
    enet = jaxreg.proximal_gradient(
        f,
        jnp.zeros(10),
        prox="elastic_net",
        strength=0.01,
        l1_ratio=0.7,
        learning_rate=step,
        tol=1e-12,
        max_iter=10**5,
    )
    ref = ElasticNet(alpha=0.01, l1_ratio=0.7, tol=1e-12, max_iter=10**6).fit(x, y)
    np.testing.assert_allclose(enet.params, ref.coef_, atol=1e-6)
    ridge = jaxreg.proximal_gradient(
        f,
        jnp.zeros(10),
        prox="l2",
        strength=10.0 / n,
        learning_rate=step,
        tol=1e-12,
        max_iter=10**5,
    )
    closed = np.linalg.solve(xc.T @ xc + 10.0 * np.eye(10), xc.T @ yc)  # Ridge(alpha=10)
    np.testing.assert_allclose(ridge.params, closed, atol=1e-6)


def test_sklearn_l1_logistic_regression(x64):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    c = 0.1
    ref = LogisticRegression(C=c, l1_ratio=1.0, solver="saga", tol=1e-12, max_iter=10**5)
    ref.fit(x, y)

    def f(p):
        z = jnp.asarray(x) @ p["w"] + p["b"]
        return jnp.mean(jnp.logaddexp(0.0, z) - jnp.asarray(y) * z)

    res = jaxreg.proximal_gradient(
        f,
        {"w": jnp.zeros(30), "b": jnp.zeros(())},
        prox="l1",
        strength=1 / (c * len(y)),
        mask={"w": True, "b": False},
        tol=1e-12,
        max_iter=10**5,
    )
    assert bool(res.converged)
    np.testing.assert_allclose(res.params["w"], ref.coef_[0], atol=1e-6)
    np.testing.assert_allclose(res.params["b"], ref.intercept_[0], atol=1e-6)
    assert np.array_equal(np.asarray(res.params["w"]) == 0, ref.coef_[0] == 0)


# ------------------------------------------------------------------------------ optax.adamw


def test_optax_adamw_mask():
    rng = np.random.default_rng(0)
    params = {
        "dense": {
            "kernel": jnp.asarray(rng.normal(size=(8, 4)), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=4), jnp.float32),
        }
    }
    grads = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), params)
    theirs = optax.adamw(
        1e-2, weight_decay=0.1, mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p)
    )
    ours = jaxreg.regularized(optax.adam, 1e-2, weight_decay=0.1, mask=jaxreg.kernels_only())
    adam = optax.adam(1e-2)
    u1, _ = theirs.update(grads, theirs.init(params), params)
    u2, _ = ours.update(grads, ours.init(params), params)
    u3, _ = adam.update(grads, adam.init(params), params)
    assert jnp.array_equal(u2["dense"]["bias"], u3["dense"]["bias"])  # masked: bitwise Adam
    p1, p2 = optax.apply_updates(params, u1), optax.apply_updates(params, u2)
    gap = jnp.abs(p1["dense"]["kernel"] - p2["dense"]["kernel"])
    assert float(jnp.max(gap)) <= 2 * float(jnp.finfo(jnp.float32).eps) * float(
        jnp.max(jnp.abs(params["dense"]["kernel"]))
    )


def test_inject_hyperparams_adamw_with_a_jaxreg_mask_raises():
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
    tx = optax.inject_hyperparams(optax.adamw)(
        learning_rate=1e-3, weight_decay=1e-2, mask=jaxreg.kernels_only()
    )
    with pytest.raises(ValueError, match="static_args"):
        tx.init(params)
