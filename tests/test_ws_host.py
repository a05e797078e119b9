"""The eager (host-driven) least-squares working-set path against the traced program,
scikit-learn's enet_path / lasso_path and the KKT conditions (REFERENCE §3.7, §3.9)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import enet_path, lasso_path

import jaxreg
from jaxreg.solvers import _ws_host


def _toeplitz(n, p, rho=0.9, seed=0):
    """AR(1) columns, corr(X_i, X_j) = rho^|i-j|: the hard correlated design, n < p."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, p))
    X = z.copy()
    for j in range(1, p):
        X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho**2) * z[:, j]
    w = np.zeros(p)
    w[rng.choice(p, 6, replace=False)] = rng.normal(size=6)
    return X, X @ w + 0.5 * rng.normal(size=n) + 1.0


def test_eager_and_jit_give_the_same_path(x64):
    # the traced program compiles one branch per size bucket: keep p small (16, 32)
    l1_ratio = 0.7
    X, y = _toeplitz(20, 32)
    kw = {"l1_ratio": l1_ratio, "n_strengths": 15, "tol": 1e-13, "solver": "fista"}
    eager = jaxreg.regularization_path(X, y, **kw)

    @jax.jit
    def traced(X, y):
        return jaxreg.regularization_path(X, y, **kw)

    jitted = traced(jnp.asarray(X), jnp.asarray(y))
    np.testing.assert_allclose(
        np.asarray(eager.strengths), np.asarray(jitted.strengths), rtol=1e-14
    )
    np.testing.assert_allclose(np.asarray(eager.coef), np.asarray(jitted.coef), rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        np.asarray(eager.intercept), np.asarray(jitted.intercept), rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(
        np.asarray(eager.objective), np.asarray(jitted.objective), rtol=1e-12
    )
    assert bool(eager.converged.all()) and bool(jitted.converged.all())
    # the oracle: scikit-learn on centred data at a tight tolerance
    xc, yc = X - X.mean(0), y - y.mean()
    alphas = np.asarray(eager.strengths)
    _, ref, _ = enet_path(xc, yc, l1_ratio=l1_ratio, alphas=alphas, tol=1e-14, max_iter=10**7)
    np.testing.assert_allclose(np.asarray(eager.coef), ref.T, rtol=0, atol=1e-7)


def test_eager_path_kkt_on_a_correlated_wide_design(x64):
    X, y = _toeplitz(40, 200, seed=3)
    path = jaxreg.regularization_path(X, y, tol=1e-12, n_strengths=25)  # auto: working sets
    xc, yc = X - X.mean(0), y - y.mean()
    alphas, ref, _ = lasso_path(xc, yc, alphas=25, tol=1e-13, max_iter=10**7)
    coef = np.asarray(path.coef)
    np.testing.assert_allclose(np.asarray(path.strengths), alphas, rtol=1e-12)
    np.testing.assert_allclose(coef, ref.T, rtol=0, atol=1e-6)
    assert bool(path.converged.all())
    for a, w in zip(alphas, coef, strict=True):  # KKT (REFERENCE §3.9), gradient in NumPy
        grad = -xc.T @ (yc - xc @ w) / len(y)
        act = w != 0
        np.testing.assert_allclose(grad[act] + a * np.sign(w[act]), 0, atol=1e-9 * alphas[0])
        assert np.all(np.abs(grad[~act]) <= a + 1e-9 * alphas[0])
    np.testing.assert_allclose(
        np.asarray(path.intercept), y.mean() - coef @ X.mean(0), rtol=0, atol=1e-10
    )


def test_compiled_fista_chunks_are_reused_on_the_second_call(x64, monkeypatch):
    # force the compiled sub-solver (normally only for working sets > _HOST_MAX)
    monkeypatch.setattr(_ws_host, "_HOST_MAX", 0)
    X, y = _toeplitz(30, 60, seed=1)
    kw = {"n_strengths": 20, "tol": 1e-12, "solver": "fista", "l1_ratio": 0.8}
    first = jaxreg.regularization_path(X, y, **kw)
    traces = _ws_host._TRACES[0]
    second = jaxreg.regularization_path(X, y * 2.0, **kw)
    assert _ws_host._TRACES[0] == traces  # same shapes and options: nothing traced again
    monkeypatch.setattr(_ws_host, "_HOST_MAX", 1024)
    for data, compiled in ((y, first), (y * 2.0, second)):  # NumPy FISTA: the same answer
        host = jaxreg.regularization_path(X, data, **kw)
        np.testing.assert_allclose(np.asarray(host.coef), np.asarray(compiled.coef), atol=1e-10)


def test_eager_path_float32_and_explicit_strengths():
    X, y = _toeplitz(30, 50, seed=2)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    alphas = np.array([0.5, 0.1, 0.02], np.float32)
    path = jaxreg.regularization_path(X32, y32, strengths=alphas, solver="fista")
    assert path.coef.dtype == jnp.float32 and path.intercept.dtype == jnp.float32
    assert bool(path.converged.all())
    xc, yc = X - X.mean(0), y - y.mean()
    _, ref, _ = lasso_path(xc, yc, alphas=alphas.astype(float), tol=1e-13, max_iter=10**7)
    np.testing.assert_allclose(np.asarray(path.coef, float), ref.T, rtol=0, atol=1e-3)


def test_accelerator_backend_keeps_the_traced_program(x64, monkeypatch):
    # On a GPU/TPU the eager call must not pull the problem onto the host driver.
    X, y = _toeplitz(20, 32)
    calls = []
    real = _ws_host.lsq_path
    monkeypatch.setattr(_ws_host, "lsq_path", lambda *a: calls.append(1) or real(*a))
    host = jaxreg.regularization_path(X, y, n_strengths=5, tol=1e-12)
    assert calls == [1]
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    device = jaxreg.regularization_path(X, y, n_strengths=5, tol=1e-12)
    assert calls == [1]  # not called again
    np.testing.assert_allclose(np.asarray(device.coef), np.asarray(host.coef), atol=1e-9)


def test_vmapped_working_sets_never_pass_nan_as_converged(x64):
    # wide and correlated: polishing on supports larger than n meets singular G_SS
    # (Cholesky NaN). XLA:CPU's max reduction dropped those NaNs from the KKT error
    # inside the vmapped loop, so NaN coefficients came back with converged=True.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 120))
    X = z.copy()
    for j in range(1, 120):
        X[:, j] = 0.9 * X[:, j - 1] + np.sqrt(1 - 0.9**2) * z[:, j]
    w = np.zeros(120)
    w[rng.choice(120, 10, replace=False)] = rng.normal(size=10)
    y = X @ w + 0.5 * rng.normal(size=60)
    kw = {"tol": 1e-10, "n_strengths": 40, "max_iter": 100_000}
    vm = jaxreg.regularization_path(jnp.asarray(X), jnp.asarray(y), method="vmap", **kw)
    coef = np.asarray(vm.coef)
    assert bool(vm.converged.all())
    assert not np.isnan(coef).any()
    xc, yc = X - X.mean(0), y - y.mean()
    _, ref, _ = lasso_path(xc, yc, alphas=np.asarray(vm.strengths), tol=1e-14, max_iter=10**7)
    np.testing.assert_allclose(coef, ref.T, rtol=0, atol=1e-7)


def test_updated_cholesky_factor_solves_as_a_fresh_one():
    # The polish's factor is updated along a path (rows appended, cut at the first
    # feature that leaves, u/v reused for a repeated support): every solve must match
    # a dense solve of (G_SS + shift·I) z = b_S − scale·signs, NumPy as the oracle.
    rng = np.random.default_rng(4)
    A = rng.normal(size=(60, 12))
    A[:, 5] = A[:, 4] + 0.05 * rng.normal(size=60)  # a strongly correlated pair
    gram, b = A.T @ A / 60, A.T @ rng.normal(size=60) / 60
    factor = _ws_host._Factor(np.dtype(np.float64))
    steps = [  # (support, scale, shift): grow, repeat, drop a middle feature, re-enter, ...
        ([0, 3], 0.2, 0.0),
        ([0, 3, 7], 0.2, 0.0),
        ([0, 3, 7], 0.1, 0.0),  # same support and signs, new strength: z = u − scale·v
        ([0, 2, 3, 7, 9], 0.1, 0.0),
        ([0, 2, 7, 9], 0.1, 0.0),  # 3 leaves from the middle of the entry order
        ([0, 2, 3, 4, 5, 7, 9], 0.05, 0.0),  # 3 re-enters with 4 and 5
        ([0, 2, 3, 4, 5, 7, 9], 0.05, 0.0),  # repeated, signs flipped below
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.01, 0.0),  # 0 (the first entered) leaves
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.01, 0.03),  # elastic net: a new shift
        ([2, 4, 5, 6], 0.02, 0.05),
    ]
    for i, (support, scale, shift) in enumerate(steps):
        on = np.array(support)
        signs = np.where(rng.random(on.size) < 0.5, -1.0, 1.0)
        if i == 6:
            signs = -signs
        z = factor.solve(gram, b[on], signs, scale, on, shift)
        mat = gram[np.ix_(on, on)] + shift * np.eye(on.size)
        want = np.linalg.solve(mat, b[on] - scale * signs)
        np.testing.assert_allclose(z, want, rtol=0, atol=1e-10 * np.abs(want).max())
    singular = gram.copy()
    singular[:, 8] = singular[8, :] = singular[:, 9] = singular[9, :] = 0.0  # not PD on 8, 9
    fresh = _ws_host._Factor(np.dtype(np.float64))
    assert fresh.solve(singular, b[[8, 9]], np.ones(2), 0.1, np.array([8, 9]), 0.0) is None
    on = np.array([1, 2])  # usable again after a failure
    z = fresh.solve(singular, b[on], np.ones(2), 0.1, on, 0.0)
    want = np.linalg.solve(singular[np.ix_(on, on)], b[on] - 0.1)
    np.testing.assert_allclose(z, want, rtol=0, atol=1e-12)


def test_finite_data_check_sums_first_but_decides_entry_by_entry():
    # the check sums X once; a sum that overflows (finite entries) or is inf − inf
    # (non-finite ones) must still be decided entry by entry, without a NumPy warning
    from jaxreg.solvers import _common

    _common.check_finite_data("X", np.full((3, 2), 1e308))  # finite: accepted
    for bad, count in (([np.inf, -np.inf, 1.0], 2), ([1e308, 1e308, np.nan], 1)):
        with pytest.raises(ValueError, match=f"`X` must be finite: it holds {count} NaN"):
            _common.check_finite_data("X", np.array(bad))
