"""jaxreg: L1 and L2 regularization, first-class in JAX and Optax.

Penalties (pure functions for a loss), prox operators (pure pytree maps), Optax
gradient transformations built on them, and ready-made chains.
"""

from jaxreg._combinators import regularized
from jaxreg._penalties import (
    elastic_net_penalty,
    group_lasso_penalty,
    l1_penalty,
    l2_penalty,
)
from jaxreg._prox import (
    block_soft_threshold,
    projection_l1_ball,
    projection_l2_ball,
    prox_elastic_net,
    prox_group_lasso,
    prox_l1,
    prox_l2,
    soft_threshold,
)
from jaxreg._transforms import (
    ScheduleState,
    add_l2_gradient,
    elastic_net_prox,
    group_lasso_prox,
    l1_prox,
    l2_prox,
    weight_decay,
)

# -- issue 3 imports (masks by path) --
from jaxreg._masks import (
    kernels_only,
    no_bias_no_norm,
    param_paths,
    path_mask,
    path_strengths,
)

# -- issue 4 imports (optimizers, analysis, pruning) --
from jaxreg._analysis import LeafSparsity, sparsity, sparsity_report
from jaxreg._optimizers import (
    FtrlState,
    ProximalAdagradState,
    ftrl,
    proximal_adagrad,
    proximal_adam,
    proximal_sgd,
)
from jaxreg._pruning import PruneReport, prune_dense

# -- issue 5 imports (solvers, paths, sweeps) --
from jaxreg._solvers import (
    PathResult,
    ProximalGradientResult,
    plot_path,
    proximal_gradient,
    regularization_path,
)
from jaxreg._sweep import SweepResult, strength_sweep

# -- issue 7 imports (flat mode) --
from jaxreg._flat import FlatLayout, FlatRegState, flat, flatten_params

__version__ = "0.1.0"

__all__ = [
    "ScheduleState",
    "add_l2_gradient",
    "block_soft_threshold",
    "elastic_net_penalty",
    "elastic_net_prox",
    "group_lasso_penalty",
    "group_lasso_prox",
    "l1_penalty",
    "l1_prox",
    "l2_penalty",
    "l2_prox",
    "projection_l1_ball",
    "projection_l2_ball",
    "prox_elastic_net",
    "prox_group_lasso",
    "prox_l1",
    "prox_l2",
    "regularized",
    "soft_threshold",
    "weight_decay",
    # -- issue 3 names --
    "kernels_only",
    "no_bias_no_norm",
    "param_paths",
    "path_mask",
    "path_strengths",
    # -- issue 4 names --
    "FtrlState",
    "LeafSparsity",
    "ProximalAdagradState",
    "PruneReport",
    "ftrl",
    "proximal_adagrad",
    "proximal_adam",
    "proximal_sgd",
    "prune_dense",
    "sparsity",
    "sparsity_report",
    # -- issue 5 names --
    "PathResult",
    "ProximalGradientResult",
    "SweepResult",
    "plot_path",
    "proximal_gradient",
    "regularization_path",
    "strength_sweep",
    # -- issue 7 names --
    "FlatLayout",
    "FlatRegState",
    "flat",
    "flatten_params",
]
