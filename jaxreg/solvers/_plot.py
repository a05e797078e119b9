"""Plotting a regularization path (matplotlib is imported on call)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxreg.solvers._path import PathResult


def plot_path(path: PathResult, *, ax: Any = None, feature_names: Any = None, **kwargs: Any) -> Any:
    r"""Plots the coefficient path: one line per feature against ``log α``.

    A multinomial path (``coef`` of shape ``(K, p, n_classes)``) gets one line per
    feature and class (class ``k`` is the ``k``-th of ``np.unique(y)``).

    matplotlib is imported only when this function is called.

    Args:
      path: a :class:`PathResult`.
      ax: a matplotlib ``Axes`` (default: a new figure's).
      feature_names: optional labels (a legend is drawn when given).
      **kwargs: passed to ``ax.plot``.

    Returns:
      The ``Axes``.

    Example:
      >>> import matplotlib; matplotlib.use("Agg")
      >>> import jax.numpy as jnp, jaxreg
      >>> X = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
      >>> path = jaxreg.regularization_path(X, jnp.array([2.0, 1.0, -2.0, -1.0]), n_strengths=5)
      >>> ax = jaxreg.plot_path(path)
      >>> len(ax.get_lines()), ax.get_xscale()
      (2, 'log')
      >>> m = jaxreg.regularization_path(X, jnp.array([0, 1, 2, 1]), loss="multinomial",
      ...                                n_strengths=3)
      >>> len(jaxreg.plot_path(m).get_lines())  # 2 features × 3 classes
      6
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    strengths = np.asarray(path.strengths)
    coef = np.asarray(path.coef)
    for j in range(coef.shape[1]):
        if coef.ndim == 2:
            label = None if feature_names is None else str(feature_names[j])
            ax.plot(strengths, coef[:, j], label=label, **kwargs)
            continue
        for k in range(coef.shape[2]):  # multinomial: one line per (feature, class)
            label = None if feature_names is None else f"{feature_names[j]} (class {k})"
            ax.plot(strengths, coef[:, j, k], label=label, **kwargs)
    ax.set_xscale("log")
    if strengths.size > 1 and strengths[0] > strengths[-1]:
        ax.invert_xaxis()
    ax.set_xlabel("strength α")
    ax.set_ylabel("coefficient")
    ax.set_title("Regularization path")
    if feature_names is not None:
        ax.legend()
    return ax
