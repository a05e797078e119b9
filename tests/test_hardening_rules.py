"""The accepting side of issue 12's new checks: what must still work.

* a ``None`` in a mask is fine where the params hold ``None`` (a mask made with
  ``jax.tree.map(pred, params)`` keeps the params' ``None`` leaves);
* ``regularized`` recognises schedule-free by its state but accepts it with the
  gradient-side ``l2`` only, and accepts every ordinary optimizer (also wrapped and
  under ``optax.inject_hyperparams`` inside ``jit``);
* a custom ``prox`` that takes ``mask`` gets it; without a mask any custom prox works.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from conftest import nested_tree

import jaxreg


def test_mask_with_none_where_params_are_none():
    tree = nested_tree()
    mask = jax.tree.map(lambda x: x.ndim > 1, tree)
    assert mask["extra"][1] is None
    out = jaxreg.prox.l1(tree, 10.0, mask=mask)
    assert np.all(np.asarray(out["dense"]["kernel"]) == 0)
    np.testing.assert_array_equal(out["dense"]["bias"], tree["dense"]["bias"])
    tx = jaxreg.l1_prox(10.0, learning_rate=1.0, mask=mask)
    grads = jax.tree.map(jnp.zeros_like, tree)
    u, _ = tx.update(grads, tx.init(tree), tree)
    new = optax.apply_updates(tree, u)
    assert np.all(np.asarray(new["dense"]["kernel"]) == 0)


def test_schedule_free_with_gradient_side_l2_is_accepted():
    def wrapped(learning_rate):
        return optax.contrib.schedule_free_sgd(learning_rate)

    tx = jaxreg.regularized(wrapped, 0.1, l2=1e-3)
    p = jnp.ones(3)
    u, _ = tx.update(jnp.ones(3), tx.init(p), p)
    assert np.all(np.isfinite(np.asarray(u)))


def test_ordinary_optimizers_pass_the_probe():
    p = {"w": jnp.array([0.3, -2.0])}
    for factory in (optax.sgd, optax.adam, functools.partial(optax.adamw, weight_decay=0.0)):
        tx = jaxreg.regularized(factory, 0.5, l1=1.0, weight_decay=0.0)
        u, _ = tx.update({"w": jnp.zeros(2)}, tx.init(p), p)
        np.testing.assert_allclose(optax.apply_updates(p, u)["w"], [0.0, -1.5], rtol=1e-6)
    tx = jaxreg.regularized(optax.sgd, 0.5, l1=1.0, optimizer_kwargs={"momentum": 0.9})
    u, _ = tx.update({"w": jnp.zeros(2)}, tx.init(p), p)
    np.testing.assert_allclose(optax.apply_updates(p, u)["w"], [0.0, -1.5], rtol=1e-6)
    injected = optax.inject_hyperparams(functools.partial(jaxreg.regularized, optax.sgd))(
        learning_rate=0.5, l1=1.0
    )
    state = injected.init(p)
    u, _ = jax.jit(injected.update)({"w": jnp.zeros(2)}, state, p)
    np.testing.assert_allclose(optax.apply_updates(p, u)["w"], [0.0, -1.5], rtol=1e-6)


def test_custom_prox_with_mask_keyword_gets_the_mask():
    seen = []

    def my_prox(tree, t, mask=None):
        seen.append(mask)
        return jaxreg.prox.l1(tree, t, mask=mask)

    x0 = {"w": jnp.array([3.0]), "b": jnp.array([3.0])}

    def fun(x):
        return 0.5 * jnp.sum((x["w"] - 1.0) ** 2) + 0.5 * jnp.sum((x["b"] - 1.0) ** 2)

    res = jaxreg.proximal_gradient(
        fun, x0, strength=0.25, prox=my_prox, mask={"w": True, "b": False}
    )
    assert {"w": True, "b": False} in seen
    # argmin 0.5(w-1)^2 + 0.25|w| = 0.75; b unpenalised = 1.
    np.testing.assert_allclose(res.params["w"], [0.75], atol=1e-4)
    np.testing.assert_allclose(res.params["b"], [1.0], atol=1e-4)
