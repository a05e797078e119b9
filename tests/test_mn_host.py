"""The eager (host-driven) multinomial proximal-Newton path against the traced program,
scikit-learn (liblinear, saga), the KKT conditions and its routing (REFERENCE §3.7)."""

import warnings

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression

import jaxreg
from jaxreg.solvers import _common, _mn_host

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = (X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)


def _digits(n=300):
    X, y = load_digits(return_X_y=True)
    X, y = X[:n], y[:n]
    keep = X.std(0) > 0
    return (X[:, keep] - X[:, keep].mean(0)) / X[:, keep].std(0), y


def _centred(W):
    return W - W.mean(axis=-1, keepdims=True)  # the identifiable part: a shift per row


@pytest.fixture
def host_calls(monkeypatch):
    calls = []
    real = _mn_host.mn_path

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(_mn_host, "mn_path", spy)
    return calls


@pytest.mark.parametrize(("l1_ratio", "fit"), [(1.0, True), (0.5, False)])
def test_eager_and_jit_give_the_same_path(x64, host_calls, l1_ratio, fit):
    kw = {
        "loss": "multinomial",
        "l1_ratio": l1_ratio,
        "fit_intercept": fit,
        "n_strengths": 8,
        "eps": 1e-2,
        "tol": 1e-12,
    }
    eager = jaxreg.regularization_path(X_IRIS, Y_IRIS, **kw)
    assert host_calls == [1]
    jitted = jax.jit(lambda X: jaxreg.regularization_path(X, Y_IRIS, **kw))(X_IRIS)
    assert host_calls == [1]  # traced: the proximal-gradient program
    np.testing.assert_allclose(
        np.asarray(eager.strengths), np.asarray(jitted.strengths), rtol=1e-14
    )
    np.testing.assert_allclose(
        _centred(np.asarray(eager.coef)), _centred(np.asarray(jitted.coef)), rtol=0, atol=1e-7
    )
    np.testing.assert_allclose(
        np.asarray(eager.intercept), np.asarray(jitted.intercept), rtol=0, atol=1e-7
    )
    np.testing.assert_allclose(
        np.asarray(eager.objective), np.asarray(jitted.objective), rtol=1e-10
    )
    assert bool(eager.converged.all()) and bool(jitted.converged.all())


def _softmax_grad(X, y, W, b):
    Z = X @ W + b
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    R = P - np.eye(W.shape[1])[y]
    return X.T @ R / X.shape[0], R.mean(0)


def test_kkt_on_a_nearly_separable_path(x64):
    # digits: at the small-α end the classes are all but separable (the hard case)
    X, y = _digits()
    path = jaxreg.regularization_path(X, y, loss="multinomial", tol=1e-10, n_strengths=20)
    assert bool(path.converged.all())
    amax = float(path.strengths[0])
    for a, W, b in zip(
        np.asarray(path.strengths), np.asarray(path.coef), np.asarray(path.intercept), strict=True
    ):
        G, gb = _softmax_grad(X, y, W, b)
        np.testing.assert_allclose(gb, 0, atol=1e-9 * amax)  # unpenalized intercepts
        on = W != 0
        np.testing.assert_allclose(G[on], -a * np.sign(W[on]), atol=1e-9 * amax)
        assert np.all(np.abs(G[~on]) <= a * (1 + 1e-9))
        # an L1 optimum leaves a zero in every row (the penalty's minimum along the
        # row shift the loss ignores, with an odd number of classes)
        assert np.all((W == 0).any(axis=1))


def test_two_classes_match_binary_l1_logistic(x64):
    # K = 2 without intercepts: the loss depends on w = W[:, 1] − W[:, 0] only and the
    # L1 optimum splits it with opposite signs, so ‖W‖₁ = ‖w‖₁: the binary L1 logistic
    # problem at the same α (liblinear, C = 1/(α·n))
    X, y = X_IRIS[50:], (Y_IRIS[50:] == 2).astype(int)
    n = X.shape[0]
    path = jaxreg.regularization_path(
        X, y, loss="multinomial", fit_intercept=False, n_strengths=6, eps=0.05, tol=1e-12
    )
    for a, W in zip(np.asarray(path.strengths[1:]), np.asarray(path.coef[1:]), strict=True):
        clf = LogisticRegression(
            C=1 / (a * n), l1_ratio=1.0, solver="liblinear", fit_intercept=False, tol=1e-12,
            max_iter=10**5,
        ).fit(X, y)  # fmt: skip
        np.testing.assert_allclose(W[:, 1] - W[:, 0], clf.coef_[0], atol=2e-6)


def test_float32_input_solved_and_returned_in_float32():
    X32 = X_IRIS.astype(np.float32)
    kw = {"loss": "multinomial", "n_strengths": 10, "eps": 1e-2}
    path = jaxreg.regularization_path(X32, Y_IRIS, **kw)
    assert path.coef.dtype == np.float32 and path.intercept.dtype == np.float32
    assert bool(path.converged.all())
    with jax.enable_x64(True):
        ref = jaxreg.regularization_path(X32.astype(np.float64), Y_IRIS, tol=1e-12, **kw)
    scale = np.abs(np.asarray(ref.coef)).max()
    err = np.abs(_centred(np.asarray(path.coef, float)) - _centred(np.asarray(ref.coef))).max()
    assert err <= 1e-4 * scale


def test_routes_kept_traced(x64, host_calls):
    kw = {"loss": "multinomial", "n_strengths": 3, "eps": 0.1}
    jaxreg.regularization_path(X_IRIS, Y_IRIS, method="vmap", **kw)
    jaxreg.regularization_path(X_IRIS, Y_IRIS, learning_rate=0.1, max_iter=20000, **kw)
    jaxreg.regularization_path(X_IRIS, Y_IRIS, penalty="group_lasso", **kw)
    assert host_calls == []


def test_max_iter_reached_warns(x64):
    X, y = _digits(200)
    with pytest.warns(_common.ConvergenceWarning, match="did not converge within max_iter=1"):
        path = jaxreg.regularization_path(
            X, y, loss="multinomial", n_strengths=5, eps=1e-2, max_iter=1
        )
    assert not bool(path.converged.all())
    assert np.asarray(path.iterations).max() <= 1


def test_bad_labels_and_data_raise():
    with pytest.raises(ValueError, match="`y`"):
        jaxreg.regularization_path(X_IRIS, np.zeros(len(Y_IRIS)), loss="multinomial")
    bad = X_IRIS.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="`X`"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jaxreg.regularization_path(bad, Y_IRIS, loss="multinomial")
