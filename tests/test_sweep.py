"""strength_sweep: the vmapped sweep equals K separate training runs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

LR = 0.1
STRENGTHS = jnp.array([0.0, 0.01, 0.05])


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.relu(nn.Dense(16)(x)))


def optimizer(strength):
    return optax.chain(optax.sgd(LR), jaxreg.l1_prox(strength, learning_rate=LR))


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 16, 5)).astype(np.float32)  # 12 steps of 16 examples
    labels = (x[..., 0] > 0).astype(np.int32) + (x[..., 1] > 1).astype(np.int32)
    model = MLP()
    variables = model.init(jax.random.key(0), jnp.asarray(x[0]))
    return model, variables, jnp.asarray(x), jnp.asarray(labels)


def train_alone(model, variables, x, labels, strength):
    """Reference: a plain optax loop for one strength (no vmap, no scan)."""
    tx = optimizer(float(strength))
    state = tx.init(variables)

    @jax.jit
    def step(p, s, xb, yb):
        def loss(p):
            logits = model.apply(p, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        value, grads = jax.value_and_grad(loss)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    losses = []
    for xb, yb in zip(x, labels, strict=True):
        variables, state, value = step(variables, state, xb, yb)
        losses.append(float(value))
    return variables, np.array(losses)


def test_sweep_equals_separate_runs(problem):
    model, variables, x, labels = problem
    res = jaxreg.strength_sweep(model, variables, (x, labels), STRENGTHS, optimizer=optimizer)
    assert res.train_loss.shape == (3, 12)
    ex, ey = x.reshape(-1, 5), labels.reshape(-1)
    sparsities = []
    for k, s in enumerate(STRENGTHS):
        params, losses = train_alone(model, variables, x, labels, s)
        got = jax.tree.map(lambda a, k=k: a[k], res.params)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, params
        )
        np.testing.assert_allclose(np.asarray(res.train_loss[k]), losses, rtol=1e-5)
        logits = np.asarray(model.apply(params, ex))
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        loss = -np.mean(logp[np.arange(len(ey)), np.asarray(ey)])
        acc = np.mean(logits.argmax(-1) == np.asarray(ey))
        assert float(res.loss[k]) == pytest.approx(loss, rel=1e-4)
        assert float(res.accuracy[k]) == pytest.approx(acc, abs=1e-6)
        leaves = [np.asarray(a) for a in jax.tree.leaves(params)]
        sparsity = sum((a == 0).sum() for a in leaves) / sum(a.size for a in leaves)
        assert float(res.sparsity[k]) == pytest.approx(sparsity, abs=1e-7)
        sparsities.append(sparsity)
    assert sparsities[0] < sparsities[1] <= sparsities[2]
    np.testing.assert_array_equal(np.asarray(res.strengths), np.asarray(STRENGTHS))


def test_apply_function_eval_data_and_mask(problem):
    model, variables, x, labels = problem
    params = variables["params"]

    def apply(p, inputs):
        return model.apply({"params": p}, inputs)

    def only_kernels(p):
        return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == "kernel", p)

    ex, ey = x[0], labels[0]
    res = jaxreg.strength_sweep(
        apply,
        params,
        (x, labels),
        jnp.array([0.5]),
        optimizer=optimizer,
        eval_data=(ex, ey),
        mask=only_kernels,
    )
    trained = jax.tree.map(lambda a: a[0], res.params)
    kernels = [trained[name]["kernel"] for name in trained]
    expected = sum(int((np.asarray(k) == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert float(res.sparsity[0]) == pytest.approx(expected, abs=1e-7)
    logits = apply(trained, ex)
    assert float(res.accuracy[0]) == pytest.approx(float(jnp.mean(logits.argmax(-1) == ey)))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"strengths": jnp.ones((2, 2))}, "strengths"),
        ({"strengths": jnp.array([-1.0])}, "strength"),
        ({"optimizer": None}, "optimizer"),
        ({"batches": (jnp.ones((2, 3, 5)),)}, "batches"),
        ({"batches": (jnp.ones((2, 3, 5)), jnp.ones((3, 2), jnp.int32))}, "batches"),
        ({"model": 3}, "model"),
        ({"mask": True}, "mask"),
    ],
)
def test_bad_arguments_raise(problem, kwargs, word):
    model, variables, x, labels = problem
    args = {
        "model": model,
        "params": variables,
        "batches": (x, labels),
        "strengths": STRENGTHS,
        "optimizer": optimizer,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        jaxreg.strength_sweep(
            args.pop("model"),
            args.pop("params"),
            args.pop("batches"),
            args.pop("strengths"),
            **args,
        )
