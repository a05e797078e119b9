"""TEMPORARY compatibility shim: the operators live in the public ``jaxreg.prox``.

Only modules owned by other helpers still import this; the lead deletes it at merge.
"""

from jaxreg.prox import (  # noqa: F401
    block_soft_threshold,
    elastic_net_shrink,
    map_prox,
    projection_l1_ball,
    projection_l2_ball,
    shrink,
    soft_threshold,
)
from jaxreg.prox import elastic_net as prox_elastic_net  # noqa: F401
from jaxreg.prox import group_lasso as prox_group_lasso  # noqa: F401
from jaxreg.prox import l1 as prox_l1  # noqa: F401
from jaxreg.prox import l2 as prox_l2  # noqa: F401
