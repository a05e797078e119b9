"""TEMPORARY compatibility shim: split into _checks, _leafwise and _dtypes.

Only modules owned by other helpers still import this; the lead deletes it at merge
after updating their imports (see the engine report for the name map).
"""

from jaxreg._checks import (  # noqa: F401
    MASK_RULE,
    check_l1_ratio,
    check_mask_spec,
    check_prefix,
    check_scalar,
    check_strength,
    is_schedule,
    needs_count,
    require_params,
)
from jaxreg._checks import check_mask_leaves as _check_mask_leaves  # noqa: F401
from jaxreg._checks import check_number as check_scalar_or_schedule  # noqa: F401
from jaxreg._dtypes import accumulation_dtype, promote, real_dtype, scalar_as  # noqa: F401
from jaxreg._leafwise import (  # noqa: F401
    broadcast_prefix,
    evaluate,
    is_float_leaf,
    is_literal_zero,
    is_regularized,
    mask_tree,
    per_leaf_settings,
    resolve_mask,
    strength_tree,
)
