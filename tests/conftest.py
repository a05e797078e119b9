"""Shared test configuration.

Rank promotion raises everywhere (a silent broadcast is a bug). Strict dtype
promotion is scoped with :func:`strict` around jaxreg's own calls, because
optax.adam, adamw and MultiSteps themselves fail under global strict promotion.
"""

import jax
import pytest

# Re-exported for test modules that still import them from conftest (test_masks,
# test_analysis); new code imports tests/_helpers.py.
from _helpers import float_leaves, nested_tree, strict  # noqa: F401

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Runs a test with float64 enabled, restoring the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def proven_elementwise(monkeypatch):
    """Stands in for the real ``prove_elementwise`` on the optax optimizers a test uses.

    ``jaxreg._elementwise`` is a stub on this branch (it proves nothing, so every
    opaque transform runs per leaf on views). A test of the fast path patches it to
    say "proven" for transforms it knows to be elementwise.
    """
    import jaxreg._elementwise

    monkeypatch.setattr(jaxreg._elementwise, "prove_elementwise", lambda tx, sk, bl: None)
