"""proximal_gradient against scikit-learn, closed forms and finite differences (float64)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

import jaxreg

X_DIAB, Y_DIAB = load_diabetes(return_X_y=True)
N = X_DIAB.shape[0]
XC = X_DIAB - X_DIAB.mean(axis=0)
YC = Y_DIAB - Y_DIAB.mean()
L_DIAB = np.linalg.eigvalsh(XC.T @ XC / N)[-1]  # ≈ 0.0091045 (REFERENCE §3.4)


def lsq(w, X, y):
    return 0.5 * jnp.mean((y - X @ w) ** 2)


@functools.cache
def _compiled(items):
    kw = dict(items)
    kw.setdefault("learning_rate", 1 / L_DIAB)
    kw.setdefault("tol", 1e-13)
    kw.setdefault("max_iter", 20_000)

    def run(strength, y):
        return jaxreg.proximal_gradient(
            lsq, jnp.zeros(10), jnp.asarray(XC), y, strength=strength, **kw
        )

    return jax.jit(run)


def solve_lsq(strength, y=None, **kw):
    """Diabetes least squares + penalty; one compiled program per keyword set."""
    fn = _compiled(tuple(sorted(kw.items())))
    return fn(jnp.asarray(strength, float), jnp.asarray(YC) if y is None else y)


def test_lipschitz_constant_is_reference():
    assert L_DIAB == pytest.approx(0.0091045, rel=1e-4)


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.5, 1.0])
def test_lasso_matches_sklearn(x64, alpha):
    ref = Lasso(alpha=alpha, tol=1e-12, max_iter=10**6).fit(X_DIAB, Y_DIAB)
    res = solve_lsq(alpha)
    w = np.asarray(res.params)
    assert bool(res.converged)
    np.testing.assert_allclose(w, ref.coef_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(w != 0, ref.coef_ != 0)
    intercept = Y_DIAB.mean() - X_DIAB.mean(axis=0) @ w
    assert intercept == pytest.approx(ref.intercept_, abs=1e-6)
    primal = 0.5 * np.mean((YC - XC @ w) ** 2) + alpha * np.abs(w).sum()
    assert float(res.objective) == pytest.approx(primal, rel=1e-12)


@pytest.mark.parametrize(("alpha", "l1_ratio"), [(0.1, 0.5), (0.02, 0.2)])
def test_elastic_net_matches_sklearn(x64, alpha, l1_ratio):
    ref = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-12, max_iter=10**6).fit(X_DIAB, Y_DIAB)
    res = solve_lsq(alpha, prox="elastic_net", l1_ratio=l1_ratio)
    w = np.asarray(res.params)
    np.testing.assert_allclose(w, ref.coef_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(w != 0, ref.coef_ != 0)


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_ridge_via_l2(x64, alpha):
    # sklearn Ridge: ‖y − Xw‖² + α‖w‖²  ⇔  (1/2n)‖y − Xw‖² + (α/n)/2·‖w‖² (REFERENCE §3.6).
    ref = Ridge(alpha=alpha).fit(X_DIAB, Y_DIAB)
    res = solve_lsq(alpha / N, prox="l2")
    np.testing.assert_allclose(np.asarray(res.params), ref.coef_, rtol=0, atol=1e-6)


def test_lasso_kkt_and_moreau(x64):
    alpha = 0.1
    w = np.asarray(solve_lsq(alpha).params)
    grad = -XC.T @ (YC - XC @ w) / N
    active = w != 0
    assert active.any() and (~active).any()
    np.testing.assert_allclose(grad[active] + alpha * np.sign(w[active]), 0, atol=1e-9)
    assert np.all(np.abs(grad[~active]) <= alpha + 1e-12)
    vals = np.linspace(-3, 3, 13)
    t = 0.7
    moreau = np.asarray(jaxreg.prox.soft_threshold(jnp.asarray(vals), t)) + t * np.clip(
        vals / t, -1, 1
    )
    np.testing.assert_allclose(moreau, vals, atol=1e-15)


def test_restarted_fista_needs_far_fewer_iterations(x64):
    # REFERENCE §2, diabetes Lasso at α = 0.01: ISTA 9838, FISTA 11547, restarted 409 steps.
    alpha = 0.01
    ref = Lasso(alpha=alpha, tol=1e-12, max_iter=10**6).fit(X_DIAB, Y_DIAB).coef_
    runs = {
        "ista": solve_lsq(alpha, acceleration=False, tol=1e-12),
        "fista": solve_lsq(alpha, restart=None, tol=1e-12),
        "restart": solve_lsq(alpha, restart="gradient", tol=1e-12),
    }
    its = {k: int(r.iterations) for k, r in runs.items()}
    for r in runs.values():
        assert bool(r.converged)
        np.testing.assert_allclose(np.asarray(r.params), ref, rtol=0, atol=1e-7)
    assert its["restart"] < 600
    assert its["ista"] > 10 * its["restart"]
    assert its["fista"] > 5 * its["restart"]


@pytest.mark.parametrize("acceleration", [True, False])
def test_line_search(x64, acceleration):
    alpha = 0.5
    ref = Lasso(alpha=alpha, tol=1e-12, max_iter=10**6).fit(X_DIAB, Y_DIAB).coef_
    res = solve_lsq(alpha, learning_rate=None, init_step=1000.0, acceleration=acceleration)
    assert bool(res.converged)
    # the accepted step satisfies the descent lemma bound: η > 1/(2L) after halving from 1000
    assert 1 / (2 * L_DIAB) < float(res.step_size) <= 1000.0
    np.testing.assert_allclose(np.asarray(res.params), ref, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def breast_cancer_l1():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    C = 0.1
    ref = LogisticRegression(C=C, l1_ratio=1.0, solver="saga", tol=1e-12, max_iter=10**5).fit(X, y)
    return X, y, C, ref


def test_l1_logistic_matches_sklearn(x64, breast_cancer_l1):
    X, y, C, ref = breast_cancer_l1
    n = len(y)

    def logloss(p, X, y):
        z = X @ p["w"] + p["b"]
        return jnp.mean(jax.nn.softplus(z) - y * z)

    init = {"w": jnp.zeros(X.shape[1]), "b": jnp.zeros(())}
    res = jaxreg.proximal_gradient(
        logloss,
        init,
        jnp.asarray(X),
        jnp.asarray(y, jnp.float64),
        strength=1 / (C * n),
        mask={"w": True, "b": False},
        init_step=100.0,
        tol=1e-11,
        max_iter=50_000,
    )
    assert bool(res.converged)
    w = np.asarray(res.params["w"])
    np.testing.assert_allclose(w, ref.coef_[0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(w != 0, ref.coef_[0] != 0)
    assert float(res.params["b"]) == pytest.approx(ref.intercept_[0], abs=1e-6)
    # the same strength through regularization_path (fixed step, intercept unpenalized)
    path = jaxreg.regularization_path(
        X, y, loss="logistic", strengths=[1 / (C * n)], tol=1e-11, max_iter=50_000
    )
    np.testing.assert_allclose(np.asarray(path.coef[0]), ref.coef_[0], rtol=0, atol=1e-6)
    assert float(path.intercept[0]) == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_group_lasso_and_l1_function_closed_forms(x64):
    b = {"k": jnp.array([[3.0, 0.1, -1.0], [4.0, 0.1, 2.0]]), "v": jnp.array([0.3, -2.0])}

    def fun(w, b):
        return 0.5 * sum(jnp.sum((w[k] - b[k]) ** 2) for k in w)

    init = jax.tree.map(jnp.zeros_like, b)
    lam = 0.5
    res = jaxreg.proximal_gradient(
        fun, init, b, prox="group_lasso", strength=lam, learning_rate=0.5, tol=1e-12
    )
    k = np.asarray(b["k"])
    norms = np.linalg.norm(k, axis=0, keepdims=True)
    expected = k * np.maximum(0, 1 - lam * np.sqrt(2) / norms)
    np.testing.assert_allclose(np.asarray(res.params["k"]), expected, atol=1e-10)
    np.testing.assert_allclose(np.asarray(res.params["v"]), np.asarray(b["v"]), atol=1e-10)
    # jaxreg.prox.l1 passed as a function is the "l1" regularizer, objective included
    res = jaxreg.proximal_gradient(
        fun, init, b, prox=jaxreg.prox.l1, strength=lam, tol=1e-12, restart="function"
    )
    np.testing.assert_allclose(
        np.asarray(res.params["v"]), np.sign(b["v"]) * np.maximum(np.abs(b["v"]) - lam, 0)
    )
    sol = jax.tree.map(np.asarray, res.params)
    expected_obj = sum(0.5 * np.sum((sol[k] - b[k]) ** 2) + lam * np.abs(sol[k]).sum() for k in b)
    assert float(res.objective) == pytest.approx(float(expected_obj), rel=1e-12)


def test_custom_prox_nonnegative_least_squares(x64):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(30, 6))
    y = A @ np.array([1.0, -2.0, 0.5, 0.0, -0.1, 3.0]) + 0.1 * rng.normal(size=30)

    def nonneg(tree, t):
        del t
        return jax.tree.map(lambda x: jnp.maximum(x, 0), tree)

    lip = np.linalg.eigvalsh(A.T @ A)[-1]
    res = jaxreg.proximal_gradient(
        lambda w, A, y: 0.5 * jnp.sum((A @ w - y) ** 2),
        jnp.zeros(6),
        jnp.asarray(A),
        jnp.asarray(y),
        prox=nonneg,
        learning_rate=1 / lip,
        tol=1e-10,
        max_iter=10_000,
    )
    expected, _ = scipy.optimize.nnls(A, y)
    np.testing.assert_allclose(np.asarray(res.params), expected, atol=1e-8)


def test_implicit_derivatives_match_active_set_formula_and_finite_differences(x64):
    alpha = 0.1

    def sol(y, a):
        return solve_lsq(a, y).params

    yc = jnp.asarray(YC)
    w = np.asarray(sol(yc, alpha))
    act = np.flatnonzero(w)
    XA = XC[:, act]
    # On the active set: w_A = (X_AᵀX_A)⁻¹(X_Aᵀy − nα·sign(w_A)).
    dw_dy = np.linalg.solve(XA.T @ XA, XA.T)
    dw_da = -N * np.linalg.solve(XA.T @ XA, np.sign(w[act]))
    jac, g = map(np.asarray, jax.jacrev(sol, argnums=(0, 1))(yc, jnp.asarray(alpha)))
    np.testing.assert_allclose(jac[act], dw_dy, atol=1e-9)
    np.testing.assert_allclose(np.delete(jac, act, axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(g[act], dw_da, rtol=1e-8)
    # central finite differences through the solver itself (no derivative code involved)
    h = 1e-4
    fd = (np.asarray(sol(yc, alpha + h)) - np.asarray(sol(yc, alpha - h))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)
    direction = np.sin(np.arange(N))
    fd_y = (
        np.asarray(sol(yc + h * direction, alpha)) - np.asarray(sol(yc - h * direction, alpha))
    ) / (2 * h)
    np.testing.assert_allclose(jac @ direction, fd_y, rtol=1e-5, atol=1e-6)


def test_jit_and_vmap_over_strength(x64):
    alphas = jnp.array([0.01, 0.1, 1.0])
    res = jax.jit(jax.vmap(lambda a: solve_lsq(a)))(alphas)
    for a, w, c in zip(alphas, res.params, res.converged, strict=True):
        ref = Lasso(alpha=float(a), tol=1e-12, max_iter=10**6).fit(X_DIAB, Y_DIAB).coef_
        np.testing.assert_allclose(np.asarray(w), ref, rtol=0, atol=1e-6)
        assert bool(c)
    assert res.iterations.shape == (3,)
    assert len({int(i) for i in res.iterations}) > 1  # each lane stops on its own


def test_float32_keeps_dtype():
    b = jnp.array([3.0, -0.5, 1.5], jnp.float32)
    res = jaxreg.proximal_gradient(
        lambda w, b: 0.5 * jnp.sum((w - b) ** 2),
        jnp.zeros(3, jnp.float32),
        b,
        strength=1.0,
        learning_rate=0.5,
    )
    assert res.params.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(res.params), [2.0, 0.0, 0.5], atol=1e-6)
    assert bool(res.converged)


def test_max_iter_caps_iterations(x64):
    res = solve_lsq(0.01, acceleration=False, tol=0.0, max_iter=7)
    assert int(res.iterations) == 7 and not bool(res.converged)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"prox": "l3"}, "prox"),
        ({"restart": "always"}, "restart"),
        ({"prox": lambda t, s: t, "restart": "function"}, "restart"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"tol": -1.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"strength": -1.0}, "strength"),
        ({"mask": True}, "mask"),
        ({"prox": "elastic_net", "l1_ratio": 2.0}, "l1_ratio"),
    ],
)
def test_bad_arguments_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        jaxreg.proximal_gradient(lambda w: jnp.sum(w**2), jnp.zeros(2), **kwargs)


def test_integer_params_refused():
    with pytest.raises(ValueError, match="init_params"):
        jaxreg.proximal_gradient(lambda w: 0.0, jnp.zeros(2, jnp.int32))


@pytest.mark.parametrize("dense_max", [1024, 0])
def test_implicit_gradient_ridge_closed_form_dense_and_gmres(x64, monkeypatch, dense_max):
    from jaxreg.solvers import _proximal_gradient as _solvers

    monkeypatch.setattr(_solvers, "_DENSE_MAX", dense_max)  # 0: GMRES branch
    rng = np.random.default_rng(0)
    A, y, lam = rng.normal(size=(20, 5)), rng.normal(size=20), 0.3
    step = 1 / np.linalg.eigvalsh(A.T @ A)[-1]

    @jax.jit
    def total(y):
        return jaxreg.proximal_gradient(
            lambda w, A, y: 0.5 * jnp.sum((A @ w - y) ** 2),
            jnp.zeros(5),
            jnp.asarray(A),
            y,
            prox="l2",
            strength=lam,
            learning_rate=step,
            tol=1e-12,
            max_iter=10_000,
        ).params.sum()

    expected = np.linalg.solve(A.T @ A + lam * np.eye(5), A.T).sum(axis=0)
    np.testing.assert_allclose(np.asarray(jax.grad(total)(jnp.asarray(y))), expected, atol=1e-10)
