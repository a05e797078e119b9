"""Group-lasso, multinomial and sparse-design paths against KKT, scikit-learn and dense runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from jax.experimental import sparse as jsparse
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import jaxreg

RNG = np.random.default_rng(0)
N, P = 40, 9
X_LS = RNG.normal(size=(N, P)) + 0.3
Y_LS = X_LS[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.1 * RNG.normal(size=N) + 1.0
SIZES = [2, 3, 4]  # groups {0,1}, {2,3,4}, {5,...,8}


def _ids(sizes):
    return np.repeat(np.arange(len(sizes)), sizes)


def _group_kkt(grad, w, alpha, ids, weights, atol):
    """Group-lasso KKT (REFERENCE: subgradient of α Σ_g √|g| ‖w_g‖) checked with NumPy."""
    for g, wt in enumerate(weights):
        sel = ids == g
        wg, gg = w[sel], grad[sel]
        norm = np.linalg.norm(wg)
        if norm > 0:
            np.testing.assert_allclose(gg + alpha * wt * wg / norm, 0, atol=atol)
        else:
            assert np.linalg.norm(gg) <= alpha * wt + atol


# ---------------------------------------------------------------- 1. group lasso, least squares


@pytest.mark.parametrize(
    "groups", [SIZES, 3, [[5, 6, 7, 8], [0, 1], [2, 3, 4]]], ids=["sizes", "int", "index-lists"]
)
def test_group_lasso_path_kkt_and_alpha_max(x64, groups):
    path = jaxreg.regularization_path(
        X_LS, Y_LS, penalty="group_lasso", groups=groups, n_strengths=8, eps=1e-2, tol=1e-12
    )
    if isinstance(groups, int):
        ids = _ids([groups] * (P // groups))
    elif all(isinstance(g, int) for g in groups):
        ids = _ids(groups)
    else:
        ids = np.empty(P, int)
        for g, idx in enumerate(groups):
            ids[idx] = g
    weights = np.sqrt(np.bincount(ids))
    xc, yc = X_LS - X_LS.mean(0), Y_LS - Y_LS.mean()
    corr = xc.T @ yc / N
    alpha_max = max(np.linalg.norm(corr[ids == g]) / w for g, w in enumerate(weights))
    assert float(path.strengths[0]) == pytest.approx(alpha_max, rel=1e-12)
    assert bool(path.converged.all())
    # zero at α_max up to rounding (the leading group sits exactly on its threshold)
    np.testing.assert_allclose(np.asarray(path.coef[0]), 0.0, atol=1e-12)
    assert np.any(np.abs(np.asarray(path.coef[1])) > 1e-6)
    for a, w, b in zip(
        np.asarray(path.strengths), np.asarray(path.coef), np.asarray(path.intercept), strict=True
    ):
        grad = -xc.T @ (yc - xc @ w) / N
        _group_kkt(grad, w, a, ids, weights, atol=1e-6)
        np.testing.assert_allclose(b, Y_LS.mean() - X_LS.mean(0) @ w, atol=1e-10)
        obj = np.sum((Y_LS - X_LS @ w - b) ** 2) / (2 * N)
        obj += a * sum(wt * np.linalg.norm(w[ids == g]) for g, wt in enumerate(weights))
        assert float(path.objective[list(np.asarray(path.strengths)).index(a)]) == pytest.approx(
            obj, rel=1e-9
        )


def test_group_lasso_path_equals_proximal_gradient(x64):
    path = jaxreg.regularization_path(
        X_LS, Y_LS, penalty="group_lasso", groups=SIZES, n_strengths=8, eps=1e-2, tol=1e-12
    )  # the program of test_group_lasso_path_kkt_and_alpha_max[sizes], from the cache
    xc, yc = X_LS - X_LS.mean(0), Y_LS - Y_LS.mean()

    def fun(w, xc, yc):
        r = yc - xc @ w
        return jnp.vdot(r, r) / (2 * N)

    for k in (2, 6):
        res = jaxreg.proximal_gradient(
            fun,
            jnp.zeros(P),
            xc,
            yc,
            prox="group_lasso",
            groups=SIZES,
            strength=path.strengths[k],
            tol=1e-12,
            max_iter=100_000,
        )
        np.testing.assert_allclose(np.asarray(path.coef[k]), np.asarray(res.params), atol=1e-8)


def test_group_lasso_argument_errors():
    with pytest.raises(ValueError, match="`groups` is required"):
        jaxreg.regularization_path(X_LS, Y_LS, penalty="group_lasso")
    with pytest.raises(ValueError, match="`groups` is for penalty"):
        jaxreg.regularization_path(X_LS, Y_LS, groups=3)
    with pytest.raises(ValueError, match="`groups` must be"):
        jaxreg.regularization_path(X_LS, Y_LS, penalty="group_lasso", groups=[2, 2])
    with pytest.raises(ValueError, match="`l1_ratio` must be 1"):
        jaxreg.regularization_path(X_LS, Y_LS, penalty="group_lasso", groups=3, l1_ratio=0.5)
    with pytest.raises(ValueError, match="`solver="):
        jaxreg.regularization_path(X_LS, Y_LS, penalty="group_lasso", groups=3, solver="cd")
    with pytest.raises(ValueError, match="`penalty` must be"):
        jaxreg.regularization_path(X_LS, Y_LS, penalty="l2")


# ---------------------------------------------------------------- 2. multinomial logistic

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = (X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)
N_IRIS = X_IRIS.shape[0]


@pytest.fixture(scope="module")
def multinomial_paths():
    with jax.enable_x64(True):
        out = {}
        for r in (1.0, 0.5):
            out[r] = jaxreg.regularization_path(
                X_IRIS, Y_IRIS, loss="multinomial", l1_ratio=r, n_strengths=6, eps=1e-2, tol=1e-12
            )
        return out


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_multinomial_path_matches_sklearn_saga(x64, multinomial_paths, l1_ratio):
    path = multinomial_paths[l1_ratio]
    assert path.coef.shape == (6, 4, 3) and path.intercept.shape == (6, 3)
    assert bool(path.converged.all())
    np.testing.assert_allclose(np.asarray(path.coef[0]), 0.0, atol=1e-12)  # α_max: zero
    for k in (2, 4):
        alpha = float(path.strengths[k])
        clf = LogisticRegression(
            C=1 / (alpha * N_IRIS), l1_ratio=l1_ratio, solver="saga", tol=1e-12, max_iter=10**5
        ).fit(X_IRIS, Y_IRIS)
        np.testing.assert_allclose(np.asarray(path.coef[k]), clf.coef_.T, atol=1e-7)
        b = np.asarray(path.intercept[k])  # softmax intercepts: defined up to a constant
        np.testing.assert_allclose(b - b.mean(), clf.intercept_ - clf.intercept_.mean(), atol=1e-7)


def test_multinomial_group_lasso_rows_kkt(x64):
    path = jaxreg.regularization_path(
        X_IRIS, Y_IRIS, loss="multinomial", penalty="group_lasso", n_strengths=6, eps=1e-2,
        tol=1e-12,
    )  # fmt: skip
    assert bool(path.converged.all())
    onehot = np.eye(3)[Y_IRIS]
    grad0 = X_IRIS.T @ (onehot.mean(0) - onehot) / N_IRIS
    alpha_max = np.max(np.linalg.norm(grad0, axis=1)) / np.sqrt(3)
    assert float(path.strengths[0]) == pytest.approx(alpha_max, rel=1e-12)
    ids = np.repeat(np.arange(4), 3)
    weights = np.full(4, np.sqrt(3))
    for a, w, b in zip(
        np.asarray(path.strengths), np.asarray(path.coef), np.asarray(path.intercept), strict=True
    ):
        z = X_IRIS @ w + b
        prob = np.exp(z - z.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        grad = X_IRIS.T @ (prob - onehot) / N_IRIS
        np.testing.assert_allclose((prob - onehot).mean(0), 0, atol=1e-7)  # intercept
        _group_kkt(grad.ravel(), w.ravel(), a, ids, weights, atol=1e-6)
    assert np.any(np.all(np.asarray(path.coef[2]) == 0, axis=1))  # whole rows drop out


def test_multinomial_argument_errors():
    with pytest.raises(ValueError, match="at least 2 classes"):
        jaxreg.regularization_path(X_IRIS, np.zeros(N_IRIS), loss="multinomial")
    with pytest.raises(ValueError, match="`groups` must be None"):
        jaxreg.regularization_path(
            X_IRIS, Y_IRIS, loss="multinomial", penalty="group_lasso", groups=2
        )
    with pytest.raises(ValueError, match="`loss` must be one of"):
        jaxreg.regularization_path(X_IRIS, Y_IRIS, loss="hinge")


# ---------------------------------------------------------------- 3. sparse designs

A_SP = sp.random(N, P, density=0.3, random_state=1, format="csr")  # X_LS's shape: cache hits
B_SP = A_SP @ RNG.normal(size=P) + 0.1 * RNG.normal(size=N)
A_DENSE = A_SP.toarray()  # the dense oracle, built before any test forbids densifying


@pytest.fixture
def no_densify(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("densified")

    monkeypatch.setattr(jsparse.BCOO, "todense", boom)
    monkeypatch.setattr(jsparse, "bcoo_todense", boom)
    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.coo_array):
        monkeypatch.setattr(cls, "toarray", boom)
        monkeypatch.setattr(cls, "todense", boom)


@pytest.mark.parametrize("kind", ["scipy", "bcoo"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sparse_path_equals_dense(x64, kind, fit_intercept, no_densify):
    dense = jaxreg.regularization_path(
        A_DENSE, B_SP, n_strengths=8, fit_intercept=fit_intercept, tol=1e-13
    )
    X = A_SP if kind == "scipy" else jsparse.BCOO.from_scipy_sparse(A_SP)  # float64
    path = jaxreg.regularization_path(
        X, B_SP, n_strengths=8, fit_intercept=fit_intercept, tol=1e-13
    )
    assert bool(path.converged.all())
    np.testing.assert_allclose(np.asarray(path.strengths), np.asarray(dense.strengths), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(path.coef), np.asarray(dense.coef), atol=1e-8)
    np.testing.assert_allclose(np.asarray(path.intercept), np.asarray(dense.intercept), atol=1e-8)
    np.testing.assert_allclose(np.asarray(path.objective), np.asarray(dense.objective), rtol=1e-9)


def test_sparse_group_lasso_equals_dense(x64, no_densify):
    kw = {"penalty": "group_lasso", "groups": SIZES, "n_strengths": 8, "eps": 1e-2, "tol": 1e-13}
    sparse_path = jaxreg.regularization_path(A_SP, B_SP, **kw)
    dense_path = jaxreg.regularization_path(A_DENSE, B_SP, **kw)
    assert bool(sparse_path.converged.all())
    np.testing.assert_allclose(np.asarray(sparse_path.coef), np.asarray(dense_path.coef), atol=1e-8)


def test_sparse_errors():
    bad = A_SP.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="`X` must be finite"):
        jaxreg.regularization_path(bad, B_SP)
    with pytest.raises(ValueError, match='loss="squared" only'):
        jaxreg.regularization_path(A_SP, (B_SP > 0).astype(float), loss="logistic")
    with pytest.raises(ValueError, match="`solver="):
        jaxreg.regularization_path(A_SP, B_SP, solver="fista")


# ---------------------------------------------------------------- binary logistic, jit, vmap

Y_BIN = (X_LS[:, 0] - X_LS[:, 2] + 0.5 * RNG.normal(size=N) > 0.3).astype(float)


def test_logistic_group_lasso_path_kkt(x64):
    path = jaxreg.regularization_path(
        X_LS, Y_BIN, loss="logistic", penalty="group_lasso", groups=SIZES, n_strengths=5,
        eps=0.05, tol=1e-12,
    )  # fmt: skip
    assert bool(path.converged.all())
    ids, weights = _ids(SIZES), np.sqrt(SIZES)
    grad0 = X_LS.T @ (Y_BIN.mean() - Y_BIN) / N
    alpha_max = max(np.linalg.norm(grad0[ids == g]) / w for g, w in enumerate(weights))
    assert float(path.strengths[0]) == pytest.approx(alpha_max, rel=1e-12)
    for a, w, b in zip(
        np.asarray(path.strengths), np.asarray(path.coef), np.asarray(path.intercept), strict=True
    ):
        prob = 1 / (1 + np.exp(-(X_LS @ w + b)))
        assert abs(np.mean(prob - Y_BIN)) < 1e-7  # unpenalized intercept
        _group_kkt(X_LS.T @ (prob - Y_BIN) / N, w, a, ids, weights, atol=1e-6)


def test_vmap_and_jit_nan_on_bad_data(x64):
    kw = {"penalty": "group_lasso", "groups": SIZES, "n_strengths": 8, "eps": 1e-2, "tol": 1e-12}
    seq = jaxreg.regularization_path(X_LS, Y_LS, **kw)
    vm = jaxreg.regularization_path(X_LS, Y_LS, method="vmap", **kw)
    np.testing.assert_allclose(np.asarray(vm.coef), np.asarray(seq.coef), atol=1e-8)

    @jax.jit
    def coef(X):
        return jaxreg.regularization_path(X, Y_IRIS, loss="multinomial", n_strengths=3).coef

    bad = X_IRIS.copy()
    bad[0, 0] = np.nan
    assert np.all(np.isnan(np.asarray(coef(bad))))
    assert np.all(np.isfinite(np.asarray(coef(X_IRIS))))
    bad_sparse = A_SP.copy()
    bad_sparse.data[0] = np.inf
    out = jax.jit(lambda X: jaxreg.regularization_path(X, B_SP, n_strengths=3).coef)(
        jsparse.BCOO.from_scipy_sparse(bad_sparse)
    )
    assert np.all(np.isnan(np.asarray(out)))
