"""Convex solvers: proximal gradient, regularization paths, plotting.

Private modules behind this package; the public names are re-exported at the top
level of :mod:`jaxreg` (``jaxreg.proximal_gradient``, ``jaxreg.regularization_path``,
``jaxreg.plot_path``, ``jaxreg.PathResult``, ``jaxreg.ProximalGradientResult``,
``jaxreg.ConvergenceWarning``).
"""

from jaxreg.solvers._common import ConvergenceWarning
from jaxreg.solvers._path import PathResult, regularization_path
from jaxreg.solvers._plot import plot_path
from jaxreg.solvers._proximal_gradient import ProximalGradientResult, proximal_gradient

__all__ = [
    "ConvergenceWarning",
    "PathResult",
    "ProximalGradientResult",
    "plot_path",
    "proximal_gradient",
    "regularization_path",
]
