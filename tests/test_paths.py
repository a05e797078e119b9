"""regularization_path against scikit-learn's lasso_path / enet_path, KKT, plotting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import enet_path, lasso_path
from sklearn.preprocessing import StandardScaler
from sklearn.svm import l1_min_c

import jaxreg

X_DIAB, Y_DIAB = load_diabetes(return_X_y=True)
N = X_DIAB.shape[0]


@pytest.fixture(scope="module")
def sk_path():
    yc = Y_DIAB - Y_DIAB.mean()
    alphas, coefs, _ = lasso_path(X_DIAB, yc, tol=1e-12, max_iter=10**6)
    return alphas, coefs.T  # (100, 10)


@pytest.mark.parametrize("method", ["sequential", "vmap"])
def test_path_matches_lasso_path_at_all_100_alphas(x64, sk_path, method):
    alphas, coefs = sk_path
    path = jaxreg.regularization_path(X_DIAB, Y_DIAB, method=method, tol=1e-12)
    assert path.strengths.shape == (100,) and path.coef.shape == (100, 10)
    assert float(path.strengths[0]) == pytest.approx(2.148044, abs=1e-6)  # REFERENCE §3.7
    np.testing.assert_allclose(np.asarray(path.strengths), alphas, rtol=1e-12)
    coef = np.asarray(path.coef)
    np.testing.assert_allclose(coef, coefs, rtol=0, atol=1e-6)
    big = np.abs(coefs) > 1e-6  # the support, wherever it is not ambiguous at 1e-6
    np.testing.assert_array_equal((coef != 0)[big], True)
    assert bool(path.converged.all())
    # KKT (REFERENCE §3.9) at every alpha, gradient computed here with NumPy
    xc, yc = X_DIAB - X_DIAB.mean(0), Y_DIAB - Y_DIAB.mean()
    for a, w in zip(alphas, coef, strict=True):
        grad = -xc.T @ (yc - xc @ w) / N
        act = w != 0
        np.testing.assert_allclose(grad[act] + a * np.sign(w[act]), 0, atol=1e-8)
        assert np.all(np.abs(grad[~act]) <= a * (1 + 1e-8))
    # intercept as sklearn's Lasso computes it
    np.testing.assert_allclose(
        np.asarray(path.intercept), Y_DIAB.mean() - coefs @ X_DIAB.mean(0), atol=1e-6
    )
    # the objective in lasso_path's normalization
    obj = 0.5 * np.mean((yc[None] - coef @ xc.T) ** 2, axis=1) + alphas * np.abs(coef).sum(1)
    np.testing.assert_allclose(np.asarray(path.objective), obj, rtol=1e-10)


def test_uncentred_data_with_and_without_intercept(x64):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) + 3.0
    y = X @ np.array([1.0, 0.0, -2.0, 0.0, 0.5]) + 4.0 + 0.1 * rng.normal(size=60)
    xc, yc = X - X.mean(0), y - y.mean()
    alphas, coefs, _ = lasso_path(xc, yc, alphas=10, tol=1e-12, max_iter=10**6)
    path = jaxreg.regularization_path(X, y, n_strengths=10, tol=1e-12)
    np.testing.assert_allclose(np.asarray(path.coef), coefs.T, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(path.intercept), y.mean() - coefs.T @ X.mean(0), atol=1e-6
    )
    alphas, coefs, _ = lasso_path(X, y, alphas=10, tol=1e-12, max_iter=10**6)
    path = jaxreg.regularization_path(X, y, n_strengths=10, tol=1e-12, fit_intercept=False)
    np.testing.assert_allclose(np.asarray(path.strengths), alphas, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(path.coef), coefs.T, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(path.intercept), 0.0)


def test_enet_path(x64):
    yc = Y_DIAB - Y_DIAB.mean()
    alphas, coefs, _ = enet_path(X_DIAB, yc, l1_ratio=0.5, alphas=8, tol=1e-12, max_iter=10**6)
    path = jaxreg.regularization_path(X_DIAB, Y_DIAB, l1_ratio=0.5, n_strengths=8, tol=1e-12)
    np.testing.assert_allclose(np.asarray(path.strengths), alphas, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(path.coef), coefs.T, atol=1e-6)


def test_logistic_alpha_max(x64):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :8]
    n = len(y)
    # without an intercept, α_max = 1/(n·C_min) with scikit-learn's l1_min_c
    c_min = l1_min_c(X, y, loss="log", fit_intercept=False)
    no_b = jaxreg.regularization_path(
        X, y, loss="logistic", fit_intercept=False, n_strengths=3, tol=1e-10
    )
    assert float(no_b.strengths[0]) == pytest.approx(1 / (n * c_min), rel=1e-12)
    # with an unpenalized intercept: max|Xᵀ(y − ȳ)|/n; zero above it, nonzero below
    amax = np.max(np.abs(X.T @ (y - y.mean()))) / n
    path = jaxreg.regularization_path(X, y, loss="logistic", n_strengths=2, eps=0.99, tol=1e-10)
    assert float(path.strengths[0]) == pytest.approx(amax, rel=1e-12)
    coef = np.asarray(path.coef)
    # zero at α_max (up to rounding: the gradient sits exactly at α there), not below
    assert np.abs(coef[0]).max() < 1e-12 and np.abs(coef[1]).max() > 1e-3
    assert float(path.intercept[0]) == pytest.approx(np.log(y.mean() / (1 - y.mean())), 1e-10)


def test_jit_float32():
    path = jax.jit(lambda X, y: jaxreg.regularization_path(X, y, n_strengths=5, tol=1e-5))(
        jnp.asarray(X_DIAB, jnp.float32), jnp.asarray(Y_DIAB, jnp.float32)
    )
    assert path.coef.dtype == jnp.float32
    _, coefs, _ = lasso_path(X_DIAB, Y_DIAB - Y_DIAB.mean(), alphas=5, tol=1e-12, max_iter=10**6)
    np.testing.assert_allclose(np.asarray(path.coef), coefs.T, rtol=0, atol=2.0)  # float32


def test_plot_path():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = jaxreg.PathResult(
        strengths=jnp.array([1.0, 0.5, 0.1]),
        coef=jnp.array([[0.0, 0.0], [0.2, 0.0], [0.7, -0.3]]),
        intercept=jnp.zeros(3),
        iterations=jnp.ones(3, jnp.int32),
        converged=jnp.ones(3, bool),
        objective=jnp.zeros(3),
    )
    ax = jaxreg.plot_path(path, feature_names=["a", "b"])
    lines = ax.get_lines()
    assert len(lines) == 2 and ax.get_xscale() == "log"
    np.testing.assert_allclose(lines[0].get_xdata(), [1.0, 0.5, 0.1])
    np.testing.assert_allclose(lines[1].get_ydata(), [0.0, 0.0, -0.3])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    plt.close("all")


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"loss": "hinge"}, "loss"),
        ({"method": "parallel"}, "method"),
        ({"l1_ratio": 0.0}, "l1_ratio"),
        ({"l1_ratio": 1.5}, "l1_ratio"),
        ({"eps": 2.0}, "eps"),
        ({"n_strengths": 0}, "n_strengths"),
        ({"strengths": [[1.0]]}, "strengths"),
        ({"strengths": [-1.0]}, "strengths"),
        ({"loss": "logistic"}, "0/1"),
    ],
)
def test_bad_arguments_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        jaxreg.regularization_path(X_DIAB[:20], Y_DIAB[:20], **kwargs)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="`X`"):
        jaxreg.regularization_path(X_DIAB[:20], Y_DIAB[:10])


def _synthetic(n, p, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + rng.normal(size=p)  # uncentred columns
    coef = np.zeros(p)
    coef[:6] = rng.normal(size=6) * 5
    return X, X @ coef + rng.normal(size=n)


@pytest.mark.parametrize("method", ["sequential", "vmap"])
@pytest.mark.parametrize(("n", "p"), [(80, 40), (20, 30)])  # 3 size buckets; p > n
def test_working_set_path_matches_lasso_path_synthetic(x64, method, n, p):
    X, y = _synthetic(n, p, seed=p)
    xc, yc = X - X.mean(0), y - y.mean()
    alphas, coefs, _ = lasso_path(xc, yc, tol=1e-13, max_iter=10**7)
    coefs = coefs.T
    path = jaxreg.regularization_path(X, y, method=method, tol=1e-10, solver="fista")
    coef = np.asarray(path.coef)
    np.testing.assert_allclose(np.asarray(path.strengths), alphas, rtol=1e-12)
    np.testing.assert_allclose(coef, coefs, rtol=0, atol=1e-6)
    big = np.abs(coefs) > 1e-6
    np.testing.assert_array_equal((coef != 0)[big], True)
    if n > p:  # unique solutions: the same support exactly
        np.testing.assert_array_equal(coef != 0, np.abs(coefs) > 1e-9)
    assert bool(path.converged.all())
    for a, w in zip(alphas, coef, strict=True):  # KKT on every feature (REFERENCE §3.9)
        grad = -xc.T @ (yc - xc @ w) / n
        act = w != 0
        np.testing.assert_allclose(grad[act] + a * np.sign(w[act]), 0, atol=1e-8 * alphas[0])
        assert np.all(np.abs(grad[~act]) <= a + 1e-8 * alphas[0])
    obj = 0.5 * np.mean((yc[None] - coef @ xc.T) ** 2, axis=1) + alphas * np.abs(coef).sum(1)
    np.testing.assert_allclose(np.asarray(path.objective), obj, rtol=1e-9)


def test_working_set_agrees_with_full_gram_route(x64):
    X, y = _synthetic(60, 20, seed=1)
    kw = {"n_strengths": 12, "tol": 1e-11, "l1_ratio": 0.7}
    ws = jaxreg.regularization_path(X, y, solver="fista", **kw)
    full = jaxreg.regularization_path(X, y, working_set=False, **kw)
    _, ref, _ = enet_path(X - X.mean(0), y - y.mean(), l1_ratio=0.7, alphas=12, tol=1e-13)
    np.testing.assert_allclose(np.asarray(ws.coef), ref.T, atol=1e-7)
    np.testing.assert_allclose(np.asarray(full.coef), ref.T, atol=1e-7)
    np.testing.assert_allclose(np.asarray(ws.intercept), np.asarray(full.intercept), atol=1e-7)
    # the polish cuts the FISTA steps (a strength it solves from the warm start takes 0)
    assert int(ws.iterations.sum()) < int(full.iterations.sum())
    assert int(ws.iterations.min()) == 0 < int(full.iterations.min())
