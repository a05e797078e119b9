"""External oracle (REFERENCE §3.4–3.5): ISTA as chain(sgd(1/L), l1_prox) vs scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet, Lasso

import jaxreg


@pytest.fixture(scope="module")
def diabetes():
    x, y = load_diabetes(return_X_y=True)
    xc, yc = x - x.mean(0), y - y.mean()
    lip = float(np.linalg.eigvalsh(xc.T @ xc / len(y)).max())
    return x, y, xc, yc, lip


def ista(tx, xc, yc, steps):
    with jax.enable_x64(True):
        X, Y = jnp.asarray(xc), jnp.asarray(yc)
        n = X.shape[0]

        def loss(w):
            r = Y - X @ w
            return 0.5 * jnp.dot(r, r) / n

        w0 = jnp.zeros(X.shape[1], jnp.float64)

        def body(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(loss)(w), state, w)
            return (optax.apply_updates(w, updates), state), None

        (w, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))((w0, tx.init(w0)))
        assert w.dtype == jnp.float64
        return np.asarray(w)


@pytest.mark.parametrize("alpha,nnz", [(0.01, 10), (0.1, 7), (1.0, 3)])
def test_ista_reproduces_sklearn_lasso(diabetes, alpha, nnz):
    x, y, xc, yc, lip = diabetes
    assert abs(lip - 0.0091045) < 1e-6
    ref = Lasso(alpha=alpha, tol=1e-12, max_iter=10**6).fit(x, y)
    tx = optax.chain(optax.sgd(1 / lip), jaxreg.l1_prox(alpha, learning_rate=1 / lip))
    w = ista(tx, xc, yc, 10_000)
    np.testing.assert_allclose(w, ref.coef_, atol=1e-6, rtol=0)
    assert np.array_equal(w != 0, ref.coef_ != 0)
    assert int(np.sum(w != 0)) == nnz
    np.testing.assert_allclose(y.mean() - x.mean(0) @ w, ref.intercept_, atol=1e-5)


@pytest.mark.parametrize("alpha,l1_ratio", [(0.1, 0.5), (0.5, 0.8)])
def test_ista_reproduces_sklearn_elastic_net(diabetes, alpha, l1_ratio):
    x, y, xc, yc, lip = diabetes
    ref = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-12, max_iter=10**6).fit(x, y)
    tx = optax.chain(
        optax.sgd(1 / lip),
        jaxreg.elastic_net_prox(alpha, l1_ratio=l1_ratio, learning_rate=1 / lip),
    )
    w = ista(tx, xc, yc, 10_000)
    np.testing.assert_allclose(w, ref.coef_, atol=1e-6, rtol=0)
    assert np.array_equal(w != 0, ref.coef_ != 0)
