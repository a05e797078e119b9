"""Shared test helpers: strict promotion, small pytrees, and the NumPy oracles.

Oracles are written once here, from the formulas in REFERENCE.md §2, never from
the code under test.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np


@contextlib.contextmanager
def strict():
    """Strict dtype promotion around jaxreg's own calls (optax itself is not strict)."""
    with jax.numpy_dtype_promotion("strict"):
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


def np_soft(v, t):
    """Soft threshold ``sign(v)·max(|v| − t, 0)``; the modulus rule for complex ``v``."""
    v = np.asarray(v)
    if np.iscomplexobj(v):
        a = np.abs(v)
        return v * np.where(a == 0, 0, np.maximum(0, 1 - t / np.where(a == 0, 1, a)))
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def np_block(v, t, axis=-1):
    """Group soft threshold ``v_g·max(0, 1 − t·√|g|/‖v_g‖)``, groups indexed by ``axis``."""
    v = np.asarray(v)
    axes = tuple(i for i in range(v.ndim) if i != axis % v.ndim)
    size = np.prod([v.shape[a] for a in axes])
    n = np.sqrt(np.sum(np.abs(v) ** 2, axis=axes, keepdims=True))
    scale = np.where(n > 0, np.maximum(0, 1 - t * np.sqrt(size) / np.where(n > 0, n, 1)), 0)
    return v * scale
