"""The solver as a product (issue 15): compile once, adaptive step, loud data errors, warnings,
coordinate descent, explicit groups; plus the solver items of issue 12."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso, enet_path, lasso_path

import jaxreg
from jaxreg.solvers import _path, _proximal_gradient

X_DIAB, Y_DIAB = load_diabetes(return_X_y=True)
N = X_DIAB.shape[0]


def lsq(w, X, y):
    return 0.5 * jnp.mean((y - X @ w) ** 2)


# ---------------------------------------------------------------- compile once per shape


def test_path_second_call_reuses_program(x64):
    # the traced program (solver="full"; the default eager least-squares route runs
    # on the host and compiles nothing: tests/test_ws_host.py)
    X, y = X_DIAB[:100], Y_DIAB[:100]
    jaxreg.regularization_path(X, y, n_strengths=7, solver="full")
    size = _path._path_jit._cache_size()
    # new data, tol, max_iter and learning-rate-free options: no new program
    jaxreg.regularization_path(
        X + 1.0, y * 2, n_strengths=7, tol=1e-7, max_iter=5000, solver="full"
    )
    assert _path._path_jit._cache_size() == size
    jaxreg.regularization_path(X, y, n_strengths=8, solver="full")  # a new static option
    assert _path._path_jit._cache_size() == size + 1


def test_proximal_gradient_second_call_reuses_program(x64):
    X, y = jnp.asarray(X_DIAB), jnp.asarray(Y_DIAB - Y_DIAB.mean())
    jaxreg.proximal_gradient(lsq, jnp.zeros(10), X, y, strength=0.5, tol=1e-8)
    size = _proximal_gradient._solve_jit._cache_size()
    jaxreg.proximal_gradient(lsq, jnp.ones(10), X, y * 2, strength=1.0, tol=1e-9, max_iter=999)
    assert _proximal_gradient._solve_jit._cache_size() == size


def test_still_jittable_and_vmappable_from_outside(x64):
    X, y = jnp.asarray(X_DIAB), jnp.asarray(Y_DIAB - Y_DIAB.mean())
    f = jax.jit(jax.vmap(lambda a: jaxreg.proximal_gradient(lsq, jnp.zeros(10), X, y, strength=a)))
    res = f(jnp.array([0.1, 1.0]))
    for a, w in zip([0.1, 1.0], res.params, strict=True):
        ref = Lasso(alpha=a, tol=1e-12, max_iter=10**6).fit(X_DIAB, Y_DIAB).coef_
        np.testing.assert_allclose(np.asarray(w), ref, atol=1e-3)


# ---------------------------------------------------------------- adaptive step, tolerances


def test_readme_example_converges_by_default(x64):
    # The README call: default line search (no learning_rate, no init_step), tol=1e-10.
    X, y = jnp.asarray(X_DIAB), jnp.asarray(Y_DIAB - Y_DIAB.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = jaxreg.proximal_gradient(lsq, jnp.zeros(10), X, y, prox="l1", strength=0.1, tol=1e-10)
    assert bool(res.converged) and int(res.iterations) < 1000
    ref = Lasso(alpha=0.1, tol=1e-12, max_iter=10**6).fit(X_DIAB, Y_DIAB).coef_
    np.testing.assert_allclose(np.asarray(res.params), ref, atol=1e-6)
    # the step grew past the initial estimate towards 1/L ≈ 110 (REFERENCE §3.4)
    assert float(res.step_size) > 50


def test_eager_max_iter_warns(x64):
    X, y = jnp.asarray(X_DIAB), jnp.asarray(Y_DIAB - Y_DIAB.mean())
    with pytest.warns(jaxreg.ConvergenceWarning, match="max_iter=3"):
        res = jaxreg.proximal_gradient(lsq, jnp.zeros(10), X, y, strength=0.01, max_iter=3)
    assert not bool(res.converged)
    with pytest.warns(jaxreg.ConvergenceWarning, match=r"of 5 strengths did not converge"):
        # full-Gram FISTA (the working-set route's active-set polish solves diabetes
        # exactly with no FISTA step at all, so max_iter=1 does not stop it)
        path = jaxreg.regularization_path(X_DIAB, Y_DIAB, n_strengths=5, max_iter=1, solver="full")
    assert not bool(path.converged.all())


def test_float32_path_converges_to_what_float32_resolves():
    X = jnp.asarray(X_DIAB, jnp.float32)
    y = jnp.asarray(Y_DIAB, jnp.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = jaxreg.regularization_path(X, y)  # default tol: no warning, all converged
    assert bool(path.converged.all())
    _, ref, _ = lasso_path(X_DIAB, Y_DIAB - Y_DIAB.mean(), tol=1e-12, max_iter=10**6)
    # 64·eps(float32)·α_max on the gradient mapping; diabetes is ill-conditioned
    # (λ_min(XᵀX/n) ≈ 1e-5), so coefficients of size ~800 agree to ~1 (as test_paths)
    np.testing.assert_allclose(np.asarray(path.coef), ref.T, atol=2.0)
    with pytest.warns(jaxreg.ConvergenceWarning, match="below what float32 resolves"):
        jaxreg.regularization_path(X, y, n_strengths=3, tol=1e-12)


def test_float32_proximal_gradient_stops_at_floor_and_says_so():
    X = jnp.asarray(X_DIAB, jnp.float32)
    y = jnp.asarray(Y_DIAB - Y_DIAB.mean(), jnp.float32)
    with pytest.warns(jaxreg.ConvergenceWarning, match="below what float32 resolves"):
        res = jaxreg.proximal_gradient(lsq, jnp.zeros(10), X, y, strength=0.1, tol=1e-12)
    assert bool(res.converged) and float(res.error) > 1e-12


def test_float64_numpy_without_x64_warns():
    with pytest.warns(UserWarning, match="jax_enable_x64"):
        jaxreg.regularization_path(X_DIAB, Y_DIAB, n_strengths=2)


# ---------------------------------------------------------------- data errors


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_data_raise_eagerly_and_give_nan_under_jit(x64, loss, where, bad):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = (rng.normal(size=30) > 0).astype(float)
    if where == "X":
        X[3, 1] = bad
    else:
        y[5] = bad
    with pytest.raises(ValueError, match=f"`{where}` must be finite"):
        jaxreg.regularization_path(X, y, loss=loss, n_strengths=3)
    path = jax.jit(lambda X, y: jaxreg.regularization_path(X, y, loss=loss, n_strengths=3))(X, y)
    assert np.all(np.isnan(np.asarray(path.coef)))
    assert np.all(np.isnan(np.asarray(path.intercept)))
    assert not bool(path.converged.any())


def test_labels_outside_domain(x64):
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.where(np.arange(20) % 2, 1.0, -1.0)
    with pytest.raises(ValueError, match="`y` must hold 0/1"):
        jaxreg.regularization_path(X, y, loss="logistic")
    path = jax.jit(lambda X, y: jaxreg.regularization_path(X, y, loss="logistic", n_strengths=2))(
        X, y
    )
    assert np.all(np.isnan(np.asarray(path.coef)))


@pytest.mark.parametrize("shape", [(0, 3), (5, 0)])
def test_empty_design_raises(shape):
    X = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match="`X` must be non-empty"):
        jaxreg.regularization_path(X, np.zeros(shape[0], np.float32))


def test_float32_logistic_single_class_intercept_finite():
    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = np.ones(40, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxreg.ConvergenceWarning)
        path = jaxreg.regularization_path(X, y, loss="logistic", strengths=[0.1], max_iter=50)
    assert np.all(np.isfinite(np.asarray(path.intercept)))
    assert np.all(np.asarray(path.coef) == 0)


# ---------------------------------------------------------------- issue 12 solver items


def test_complex_params_refused():
    with pytest.raises(ValueError, match="`init_params` must be real"):
        jaxreg.proximal_gradient(lambda w: jnp.sum(jnp.abs(w) ** 2), jnp.zeros(2, jnp.complex64))


@pytest.mark.parametrize("name", ["learning_rate", "init_step"])
def test_zero_step_refused(name):
    with pytest.raises(ValueError, match=f"`{name}` must be a finite number > 0"):
        jaxreg.proximal_gradient(lambda w: jnp.sum(w**2), jnp.zeros(2), **{name: 0.0})


def test_traced_negative_or_nan_strength_gives_nan_never_anti_regularizes():
    b = jnp.array([3.0, -0.5, 1.5])

    def solve(s, lr):
        fun = lambda w, b: 0.5 * jnp.sum((w - b) ** 2)  # noqa: E731
        return jaxreg.proximal_gradient(fun, jnp.zeros(3), b, strength=s, learning_rate=lr).params

    f = jax.jit(solve)
    np.testing.assert_allclose(np.asarray(f(1.0, 1.0)), [2.0, 0.0, 0.5])
    for s, lr in [(-1.0, 1.0), (np.nan, 1.0), (1.0, -1.0), (1.0, np.nan)]:
        assert np.all(np.isnan(np.asarray(f(s, lr)))), (s, lr)
    np.testing.assert_array_equal(np.asarray(f(1.0, 0.0)), 0.0)  # lr 0: no step, not NaN


# ---------------------------------------------------------------- group lasso with groups=


def test_group_lasso_on_a_vector_needs_groups():
    with pytest.raises(ValueError, match="`groups` is required"):
        jaxreg.proximal_gradient(lambda w: jnp.sum(w**2), jnp.zeros(4), prox="group_lasso")
    with pytest.raises(ValueError, match="`groups`"):
        jaxreg.proximal_gradient(
            lambda w: jnp.sum(w**2), jnp.zeros(4), prox="group_lasso", groups=[1, 2]
        )
    with pytest.raises(ValueError, match="`groups`"):
        jaxreg.proximal_gradient(
            lambda w: jnp.sum(w**2), jnp.zeros(4), prox="group_lasso", groups=[[0, 1], [1, 2, 3]]
        )


@pytest.mark.parametrize("groups", [[3, 2, 5], [[0, 1, 2], [3, 4], [5, 6, 7, 8, 9]], "perm"])
def test_group_lasso_least_squares_kkt(x64, groups):
    X = X_DIAB - X_DIAB.mean(0)
    y = Y_DIAB - Y_DIAB.mean()
    if groups == "perm":  # index lists, not contiguous
        groups = [[9, 0, 4], [1, 8], [2, 3, 5, 6, 7]]
    lam = 1.4  # between the groups' ‖∇_g f(0)‖/√|g| (1.0 to 1.56): some zero, some not
    res = jaxreg.proximal_gradient(
        lsq, jnp.zeros(10), jnp.asarray(X), jnp.asarray(y), prox="group_lasso",
        strength=lam, groups=groups, tol=1e-10, max_iter=20_000,
    )  # fmt: skip
    assert bool(res.converged)
    w = np.asarray(res.params)
    grad = -X.T @ (y - X @ w) / N  # NumPy, not the code under test
    if isinstance(groups[0], int):
        idx = np.split(np.arange(10), np.cumsum(groups)[:-1])
    else:
        idx = [np.asarray(g) for g in groups]
    zero_groups = 0
    for g in idx:
        thr = lam * np.sqrt(len(g))
        norm = np.linalg.norm(w[g])
        if norm == 0:
            zero_groups += 1
            assert np.linalg.norm(grad[g]) <= thr * (1 + 1e-8)
        else:
            np.testing.assert_allclose(grad[g] + thr * w[g] / norm, 0, atol=1e-7)
    assert 0 < zero_groups < len(idx)
    penalty = sum(lam * np.sqrt(len(g)) * np.linalg.norm(w[g]) for g in idx)
    expected = 0.5 * np.mean((y - X @ w) ** 2) + penalty
    assert float(res.objective) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- coordinate descent paths


def _synthetic(n, p, seed, rho=0.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, p))
    X = z.copy()
    for j in range(1, p):  # AR(1) columns: Toeplitz correlation rho^|i-j|
        X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho**2) * z[:, j]
    X = X + rng.normal(size=p)  # uncentred
    coef = np.zeros(p)
    coef[rng.choice(p, 6, replace=False)] = rng.normal(size=6) * 5
    return X, X @ coef + rng.normal(size=n)


@pytest.mark.parametrize(
    ("n", "p", "rho", "l1_ratio", "method"),
    [
        (60, 30, 0.0, 1.0, "sequential"),
        (30, 80, 0.9, 1.0, "vmap"),
        (30, 80, 0.9, 0.7, "sequential"),
    ],
)
def test_cd_path_matches_sklearn(x64, n, p, rho, l1_ratio, method):
    X, y = _synthetic(n, p, seed=p, rho=rho)
    xc, yc = X - X.mean(0), y - y.mean()
    alphas, ref, _ = enet_path(xc, yc, l1_ratio=l1_ratio, alphas=30, tol=1e-14, max_iter=10**7)
    ref = ref.T
    path = jaxreg.regularization_path(
        X, y, l1_ratio=l1_ratio, n_strengths=30, solver="cd", method=method, tol=1e-10
    )
    np.testing.assert_allclose(np.asarray(path.strengths), alphas, rtol=1e-12)
    coef = np.asarray(path.coef)
    np.testing.assert_allclose(coef, ref, rtol=0, atol=1e-6)
    assert bool(path.converged.all())
    for a, w in zip(alphas, coef, strict=True):  # KKT on every feature (REFERENCE §3.9)
        grad = -xc.T @ (yc - xc @ w) / n + a * (1 - l1_ratio) * w
        act = w != 0
        thr = a * l1_ratio
        np.testing.assert_allclose(grad[act] + thr * np.sign(w[act]), 0, atol=1e-8 * alphas[0])
        assert np.all(np.abs(grad[~act]) <= thr + 1e-8 * alphas[0])
    np.testing.assert_allclose(np.asarray(path.intercept), y.mean() - ref @ X.mean(0), atol=1e-6)


def test_non_array_args_and_python_float_leaf(x64):
    # a string in `args` (not cacheable: solved eagerly) and a Python-float leaf (a float leaf)
    def fun(w, b, kind):
        assert kind == "sq"
        return 0.5 * jnp.sum((w["a"] - b) ** 2) + 0.5 * (w["c"] - 1.0) ** 2

    b = jnp.array([3.0, -0.5, 1.5])
    res = jaxreg.proximal_gradient(
        fun, {"a": jnp.zeros(3), "c": 0.0}, b, "sq", strength=1.0, mask={"a": True, "c": False},
        tol=1e-10,
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(res.params["a"]), [2.0, 0.0, 0.5], atol=1e-9)
    assert float(res.params["c"]) == pytest.approx(1.0, abs=1e-9)
