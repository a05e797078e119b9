"""Shared test configuration.

Rank promotion raises everywhere (a silent broadcast is a bug). Strict dtype
promotion is scoped with :func:`strict` around jaxreg's own calls, because
optax.adam, adamw and MultiSteps themselves fail under global strict promotion.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@contextlib.contextmanager
def strict():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def x64():
    """Runs a test with float64 enabled, restoring the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


def nested_tree(dtype=jnp.float32, seed=0):
    """A small nested dict/tuple pytree with a None leaf and an integer leaf."""
    rng = np.random.default_rng(seed)
    return {
        "dense": {
            "kernel": jnp.asarray(rng.normal(size=(3, 4)), dtype),
            "bias": jnp.asarray(rng.normal(size=(4,)), dtype),
        },
        "extra": (jnp.asarray(rng.normal(size=(2,)), dtype), None),
        "step": jnp.asarray(3, jnp.int32),
    }


def float_leaves(tree):
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]


@pytest.fixture
def proven_elementwise(monkeypatch):
    """Stands in for the real ``prove_elementwise`` on the optax optimizers a test uses.

    ``jaxreg._elementwise`` is a stub on this branch (it proves nothing, so every
    opaque transform runs per leaf on views). A test of the fast path patches it to
    say "proven" for transforms it knows to be elementwise.
    """
    import jaxreg._elementwise

    monkeypatch.setattr(jaxreg._elementwise, "prove_elementwise", lambda tx, sk, bl: None)
