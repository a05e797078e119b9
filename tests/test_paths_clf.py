"""Logistic paths by proximal Newton: scikit-learn saga and NumPy KKT conditions."""

import warnings

import jax
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import jaxreg

RNG = np.random.default_rng(3)
X_SMALL = RNG.normal(size=(60, 8)) + 0.2
X_SMALL[:, 1] = X_SMALL[:, 0] + 0.1 * RNG.normal(size=60)  # correlated pair
Y_SMALL = (X_SMALL[:, 0] - 0.5 * X_SMALL[:, 2] + 0.5 * RNG.normal(size=60) > 0).astype(float)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _assert_kkt(X, y, coef, intercept, alpha, r, fit, atol):
    """REFERENCE §3.9 for mean log-loss + α(r‖w‖₁ + (1−r)/2‖w‖²), intercept free."""
    n = len(y)
    z = X @ coef + (intercept if fit else 0.0)
    res = _sigmoid(z) - y
    grad = X.T @ res / n + alpha * (1 - r) * coef
    on = coef != 0
    np.testing.assert_allclose(grad[on] + alpha * r * np.sign(coef[on]), 0, atol=atol)
    assert np.all(np.abs(grad[~on]) <= alpha * r + atol)
    if fit:
        assert abs(res.mean()) <= atol


CS = [0.1, 0.03]  # saga at tol=1e-12 converges here (REFERENCE §3.8); at C=1 it does not


@pytest.fixture(scope="module")
def breast_cancer_saga():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    refs = [
        LogisticRegression(C=c, l1_ratio=1.0, solver="saga", tol=1e-12, max_iter=10**5).fit(X, y)
        for c in CS
    ]
    return X, y, refs


@pytest.mark.parametrize("method", ["sequential", "vmap"])
def test_breast_cancer_logistic_path_matches_saga(x64, breast_cancer_saga, method):
    X, y, refs = breast_cancer_saga
    n = len(y)
    path = jaxreg.regularization_path(
        X, y, loss="logistic", strengths=[1 / (c * n) for c in CS], tol=1e-12, method=method
    )
    assert bool(path.converged.all())
    for k, ref in enumerate(refs):
        np.testing.assert_allclose(np.asarray(path.coef[k]), ref.coef_[0], atol=1e-6)
        np.testing.assert_allclose(float(path.intercept[k]), ref.intercept_[0], atol=1e-6)
        assert set(np.flatnonzero(np.asarray(path.coef[k]))) == set(np.flatnonzero(ref.coef_[0]))


@pytest.mark.parametrize(("fit", "l1_ratio"), [(True, 1.0), (True, 0.5), (False, 1.0)])
def test_logistic_path_kkt(x64, fit, l1_ratio):
    path = jaxreg.regularization_path(
        X_SMALL, Y_SMALL, loss="logistic", l1_ratio=l1_ratio, fit_intercept=fit,
        n_strengths=8, eps=1e-3, tol=1e-12,
    )  # fmt: skip
    assert bool(path.converged.all())
    np.testing.assert_array_equal(np.asarray(path.coef[0]), 0.0)  # α_max: all zero
    for k in range(8):
        _assert_kkt(
            X_SMALL, Y_SMALL, np.asarray(path.coef[k]), float(path.intercept[k]),
            float(path.strengths[k]), l1_ratio, fit, atol=1e-9,
        )  # fmt: skip


def test_logistic_newton_agrees_with_proximal_gradient_route(x64):
    # solver="full": the fixed-step FISTA route on the data (an independent solver)
    kw = dict(loss="logistic", n_strengths=6, eps=1e-2, tol=1e-12, max_iter=200_000)
    newton = jaxreg.regularization_path(X_SMALL, Y_SMALL, **kw)
    fista = jaxreg.regularization_path(X_SMALL, Y_SMALL, solver="full", **kw)
    np.testing.assert_allclose(np.asarray(newton.coef), np.asarray(fista.coef), atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(newton.objective), np.asarray(fista.objective), rtol=1e-12
    )


def test_logistic_float32_converges_quietly():
    X, y = X_SMALL.astype(np.float32), Y_SMALL.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = jaxreg.regularization_path(X, y, loss="logistic", n_strengths=5, eps=1e-2)
    assert path.coef.dtype == np.float32 and bool(path.converged.all())
    with jax.enable_x64(True):
        ref = jaxreg.regularization_path(
            X_SMALL, Y_SMALL, loss="logistic", n_strengths=5, eps=1e-2, tol=1e-12
        )  # fmt: skip
    np.testing.assert_allclose(np.asarray(path.coef), np.asarray(ref.coef), atol=1e-3)


def test_logistic_newton_max_iter_warns(x64):
    with pytest.warns(jaxreg.ConvergenceWarning, match="did not converge"):
        path = jaxreg.regularization_path(
            X_SMALL, Y_SMALL, loss="logistic", n_strengths=4, max_iter=1, tol=1e-12
        )  # fmt: skip
    assert not bool(path.converged.all())
    assert int(np.max(path.iterations)) <= 1
