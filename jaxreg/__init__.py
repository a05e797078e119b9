"""jaxreg: L1 and L2 regularization, first-class in JAX and Optax.

Penalties (pure functions for a loss), prox operators (pure pytree maps, in the
public module :mod:`jaxreg.prox`), Optax gradient transformations built on them,
and ready-made chains.
"""

from jaxreg import prox
from jaxreg._analysis import LeafSparsity, sparsity, sparsity_report
from jaxreg._combinators import regularized
from jaxreg._flat import FlatLayout, FlatRegState, flat, flatten_params
from jaxreg._masks import (
    kernels_only,
    no_bias_no_norm,
    param_paths,
    path_mask,
    path_strengths,
)
from jaxreg._optimizers import (
    FtrlState,
    ProximalAdagradState,
    ftrl,
    proximal_adagrad,
    proximal_adam,
    proximal_sgd,
)
from jaxreg._penalties import (
    elastic_net_penalty,
    group_lasso_penalty,
    l1_penalty,
    l2_penalty,
)
from jaxreg._pruning import PruneReport, prune_dense
from jaxreg._sweep import SweepResult, strength_sweep
from jaxreg._transforms import (
    ScheduleState,
    add_l2_gradient,
    elastic_net_prox,
    group_lasso_prox,
    l1_prox,
    l2_prox,
    weight_decay,
)
from jaxreg.solvers import (
    ConvergenceWarning,
    PathResult,
    ProximalGradientResult,
    plot_path,
    proximal_gradient,
    regularization_path,
)

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "FlatLayout",
    "FlatRegState",
    "FtrlState",
    "LeafSparsity",
    "PathResult",
    "ProximalAdagradState",
    "ProximalGradientResult",
    "PruneReport",
    "ScheduleState",
    "SweepResult",
    "add_l2_gradient",
    "elastic_net_penalty",
    "elastic_net_prox",
    "flat",
    "flatten_params",
    "ftrl",
    "group_lasso_penalty",
    "group_lasso_prox",
    "kernels_only",
    "l1_penalty",
    "l1_prox",
    "l2_penalty",
    "l2_prox",
    "no_bias_no_norm",
    "param_paths",
    "path_mask",
    "path_strengths",
    "plot_path",
    "prox",
    "proximal_adagrad",
    "proximal_adam",
    "proximal_gradient",
    "proximal_sgd",
    "prune_dense",
    "regularization_path",
    "regularized",
    "sparsity",
    "sparsity_report",
    "strength_sweep",
    "weight_decay",
]
