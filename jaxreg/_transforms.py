"""Optax gradient transformations = the engine (:mod:`jaxreg._leafwise`) + an operator.

Placement rule:

* gradient side (``add_l2_gradient``): before the preconditioner, after any
  clipping: ``chain(clip, add_l2_gradient(λ), adam(η))`` (torch's coupled
  ``weight_decay``).
* parameter side (``weight_decay``, ``l1_prox``, ``l2_prox``, ``elastic_net_prox``,
  ``group_lasso_prox``): LAST, after the learning rate, told the learning rate.
  They return ``prox(p + u) − p`` so that ``optax.apply_updates(p, u)`` equals
  ``prox_{η_t·λ·R}(p + u)``; exact zeros survive because ``p + (0 − p) == 0``.

Every transform here is one :class:`JaxregTransformation`: an
``optax.GradientTransformationExtraArgs`` that also carries its description (a
tuple of :class:`jaxreg._leafwise.Regularizer`), which :func:`jaxreg.flat` reads
to run it on flat buffers. Masks are resolved per leaf by the engine (no
``optax.masked``): a masked-out leaf comes back bitwise unchanged and the state
is ``EmptyState`` (or :class:`ScheduleState` when a hyper-parameter is a
schedule) whatever the mask or the strengths' values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg import _checks, _dtypes, _kernels, _leafwise, _penalties, prox
from jaxreg._leafwise import Regularizer

__all__ = [
    "JaxregTransformation",
    "ScheduleState",
    "add_l2_gradient",
    "elastic_net_prox",
    "group_lasso_prox",
    "l1_prox",
    "l2_prox",
    "weight_decay",
]


class ScheduleState(NamedTuple):
    """State of a jaxreg transform with a schedule: the number of earlier updates."""

    count: jax.Array  # type: ignore[assignment]  # int32 scalar


class JaxregTransformation(optax.GradientTransformationExtraArgs):
    """A jaxreg transform: optax's ``(init, update)`` plus its own flat translation.

    For optax it is an ordinary :class:`optax.GradientTransformationExtraArgs`.
    ``__jaxreg_flat__(layout)`` returns the same transform written for the flat
    buffers of ``layout`` (see :func:`jaxreg.flat`); jaxreg never looks anything up
    in a side table or in optax's internals to find it.
    """

    def __jaxreg_flat__(self, layout: Any) -> Any:
        return self.__dict__["_flat"](layout)


def jaxreg_transformation(
    init: Callable, update: Callable, flat: Callable[[Any], Any]
) -> JaxregTransformation:
    """Wraps ``(init, update)`` with the function that builds its flat translation."""
    tx = JaxregTransformation(init, update)
    tx.__dict__["_flat"] = flat
    return tx


def _next_params(u: jax.Array, p: jax.Array) -> jax.Array:
    """``p + u`` computed exactly as ``optax.apply_updates`` does, in ``p``'s dtype."""
    wide = _dtypes.promote(p.dtype, u.dtype)
    return (p.astype(wide) + u.astype(wide)).astype(p.dtype)


def _prox_update(leaf_prox: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Turns a leaf prox into a parameter-side update ``prox(p + u, *t) − p``."""

    def leaf_update(u, p, *t):
        return leaf_prox(_next_params(u, p), *t) - p

    return leaf_update


def _l2_gradient(u, p, t):
    return u + (t.astype(p.dtype) * p).astype(u.dtype)


def _decay(u, p, t):
    # η·λ >= 1 removes the whole weight (p_new = u); beyond it the explicit step would
    # flip the weight's sign and grow it, so the factor is capped at 1.
    t = jnp.minimum(t, jnp.ones((), t.dtype))
    wide = _dtypes.promote(p.dtype, u.dtype)
    return (u.astype(wide) - (t.astype(p.dtype) * p).astype(wide)).astype(p.dtype)


def _l1_l2(x, t1, t2):
    return prox._shrink(prox.soft_threshold(x, t1), t2)


def leaf_update(reg: Regularizer) -> Callable[..., jax.Array]:
    """The operator of a description: ``(u, p, *thresholds) -> new update``."""
    if reg.kind == "l2_gradient":
        return _l2_gradient
    if reg.kind == "decay":
        return _decay
    if reg.kind == "l1":
        return _prox_update(prox.soft_threshold)
    if reg.kind == "l2":
        return _prox_update(prox._shrink)
    if reg.kind == "elastic_net":
        return _prox_update(lambda x, t: prox._elastic_net_shrink(x, t, reg.l1_ratio))
    if reg.kind == "group_lasso":
        # Sequenced: inside _kernels.one_leaf_at_a_time the leaves run one after the
        # other, so the step's temp (p + u) is one leaf, not all of them.
        axis = reg.group_axis
        return _kernels.sequenced(lambda u, p, t: _kernels.group_lasso_update(u, p, t, axis))
    if reg.kind == "l1_l2":
        return _prox_update(_l1_l2)
    raise ValueError(f"unknown regularizer kind {reg.kind!r}")


def check_regularizer(reg: Regularizer) -> None:
    """The factory-time checks of a description (one number checker for all)."""
    _checks.check_strength(reg.strength)
    if reg.parameter_side:
        _checks.check_number("learning_rate", reg.learning_rate)
    if reg.kind == "l1_l2":
        _checks.check_number("l1", reg.strength)
        _checks.check_number("l2", reg.l2)
    _checks.check_mask_spec(reg.mask)


def make_transform(regs: Regularizer | Sequence[Regularizer]) -> JaxregTransformation:
    """The transform of one or more descriptions, applied in order, leaf by leaf.

    ``u ← leaf_update(u, p, t)`` per active leaf (see
    :func:`jaxreg._leafwise.leaf_rules`), with ``t`` formed by
    :func:`jaxreg._leafwise.threshold`. The state is empty unless a hyper-parameter
    is a schedule (then one step count).
    """
    regs = (regs,) if isinstance(regs, Regularizer) else tuple(regs)
    for reg in regs:
        check_regularizer(reg)
    stateful = any(reg.stateful for reg in regs)
    updates_of = [leaf_update(reg) for reg in regs]

    def init_fn(params):
        for reg in regs:  # resolves masks and strengths now, so bad ones fail at init
            _leafwise.leaf_rules(reg, params)
        if stateful:
            return ScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _checks.require_params(params)
        count = state.count if stateful else None
        for reg, fn in zip(regs, updates_of, strict=True):
            updates = _leafwise.apply_rules(reg, fn, updates, params, count)
        if stateful:
            return updates, ScheduleState(count=optax.safe_increment(count))
        return updates, state

    if any(reg.kind == "group_lasso" for reg in regs):
        update_fn = _kernels.one_leaf_at_a_time(update_fn)

    def flat(layout):
        from jaxreg import _flat

        return _flat.FlatRegularizers(regs, layout)

    return jaxreg_transformation(init_fn, update_fn, flat)


def add_l2_gradient(strength: Any = 1e-4, *, mask: Any = None) -> optax.GradientTransformation:
    r"""Coupled L2 on the gradient side: ``u ← u + strength·w``.

    This is ``jax.grad`` of :func:`jaxreg.l2_penalty` added to the gradient, what
    torch's ``SGD/Adam(weight_decay=λ)`` do. Place it BEFORE the preconditioner (and
    after any clipping): ``optax.chain(optax.clip_by_global_norm(1.0),
    jaxreg.add_l2_gradient(1e-4), optax.adam(1e-3))``. Under SGD it equals
    :func:`jaxreg.weight_decay` told the learning rate; under Adam it does not
    (Loshchilov & Hutter 2019).

    Args:
      strength: ``λ >= 0``: number, optax schedule, prefix pytree of numbers or
        :func:`jaxreg.path_strengths`.
      mask: ``None``, a pytree of Python bools (True = regularize), or a function
        ``params -> such a pytree``.

    Returns:
      A :class:`JaxregTransformation` (an optax transform); updates keep their dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(jaxreg.add_l2_gradient(0.1), optax.sgd(1.0))
      >>> p = jnp.array([1.0, -2.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(u)
      [-0.1  0.2]

    References:
      Loshchilov & Hutter, *Decoupled weight decay regularization*, ICLR 2019.
    """

    return make_transform(Regularizer("l2_gradient", strength, mask))


def weight_decay(
    strength: Any = 1e-4, *, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""Decoupled weight decay, AdamW's form: ``p_new = p + u − η_t·λ·p``.

    Parameter side: chain it LAST, after the learning rate. ``chain(optax.adam(η),
    weight_decay(λ, learning_rate=η))`` equals ``optax.adamw(η, weight_decay=λ)``.
    For decay that does not follow the learning rate (the AdamW paper; optax
    issues 292/364) pass ``learning_rate=1.0`` and a small ``strength`` (or a
    multiplier schedule). ``η_t·λ`` is capped at 1: a larger factor would flip the
    weight's sign and grow it, so ``η_t·λ >= 1`` removes the whole weight
    (``p_new = u``; exact zeros stay zero, also when ``η·λ`` overflows the dtype).

    Args:
      strength: ``λ >= 0``: number, schedule, prefix pytree or path strengths.
      learning_rate: ``η``: the same float or optax schedule the optimizer uses,
        evaluated at ``count`` (the number of earlier updates).
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      An :class:`optax.GradientTransformation`; updates have the params' dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(0.1), jaxreg.weight_decay(0.5, learning_rate=0.1))
      >>> p = jnp.array([1.0, -2.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0.95 -1.9 ]

    References:
      Loshchilov & Hutter, *Decoupled weight decay regularization*, ICLR 2019.
    """

    return make_transform(Regularizer("decay", strength, mask, learning_rate))


def l1_prox(
    strength: Any = 1e-4, *, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""L1 proximal step: ``p_new = S_{η_t·λ}(p + u) = sign(v)·max(|v| − η_t·λ, 0)``.

    Parameter side: chain it LAST, told the learning rate:
    ``optax.chain(optax.adam(η), jaxreg.l1_prox(λ, learning_rate=η))``. Coordinates
    shrunk to zero are exactly ``0.0`` after ``optax.apply_updates``. With
    ``optax.sgd(1/L)`` in front this is ISTA for ``f + λ‖·‖₁``.

    Args:
      strength: ``λ >= 0``: number, schedule, prefix pytree or path strengths.
      learning_rate: ``η``: float or optax schedule (the optimizer's own).
      mask: ``None``, a pytree of Python bools, or a function returning one.

    Returns:
      An :class:`optax.GradientTransformation`; updates have the params' dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(0.5), jaxreg.l1_prox(1.0, learning_rate=0.5))
      >>> p = jnp.array([0.3, -2.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0.  -1.5]

    References:
      Beck & Teboulle, *A fast iterative shrinkage-thresholding algorithm*, 2009.
    """
    return make_transform(Regularizer("l1", strength, mask, learning_rate))


def l2_prox(
    strength: Any = 1e-4, *, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""Implicit L2 step: ``p_new = (p + u) / (1 + η_t·λ)``, the prox of ``(η_t·λ/2)‖·‖²``.

    Parameter side: chain it LAST, told the learning rate.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(0.5), jaxreg.l2_prox(2.0, learning_rate=0.5))
      >>> p = jnp.array([1.0, -4.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0.5 -2. ]

    References:
      Parikh & Boyd, *Proximal algorithms*, 2014.
    """
    return make_transform(Regularizer("l2", strength, mask, learning_rate))


def elastic_net_prox(
    strength: Any = 1e-4, *, l1_ratio: Any = 0.5, learning_rate: Any, mask: Any = None
) -> optax.GradientTransformation:
    r"""Elastic-net prox: ``p_new = S_{t·r}(p + u) / (1 + t·(1 − r))``, ``t = η_t·λ``.

    With ``optax.sgd(1/L)`` in front this is ISTA for scikit-learn's
    ``ElasticNet(alpha=λ, l1_ratio=r)``.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(
      ...     optax.sgd(1.0), jaxreg.elastic_net_prox(1.0, l1_ratio=0.5, learning_rate=1.0))
      >>> p = jnp.array([3.0, 0.2])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [1.6666667 0.       ]

    References:
      Zou & Hastie, 2005.
    """
    _checks.check_l1_ratio(l1_ratio)
    return make_transform(
        Regularizer("elastic_net", strength, mask, learning_rate, l1_ratio=l1_ratio)
    )


def group_lasso_prox(
    strength: Any = 1e-4,
    *,
    learning_rate: Any,
    mask: Any = None,
    group_axis: int | tuple[int, ...] = -1,
) -> optax.GradientTransformation:
    r"""Group-lasso prox: per group ``v_g·max(0, 1 − η_t·λ·√|g| / ‖v_g‖₂)``, ``v = p + u``.

    Groups as in :func:`jaxreg.group_lasso_penalty` (default: one output unit of a
    Flax kernel; ``group_axis=0`` for equinox/torch ``(out, in)`` weights). Leaves
    with ``ndim < 2`` pass through unchanged. Whole groups become exactly zero
    (dead units that :func:`jaxreg.prune_dense` can remove).

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxreg
      >>> tx = optax.chain(optax.sgd(1.0), jaxreg.group_lasso_prox(0.5, learning_rate=1.0))
      >>> p = {"kernel": jnp.array([[3.0, 0.1], [4.0, 0.1]]), "bias": jnp.ones(2)}
      >>> u, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p)
      >>> print(optax.apply_updates(p, u)["kernel"])
      [[2.575736  0.       ]
       [3.4343147 0.       ]]

    References:
      Yuan & Lin, 2006; Wen et al., 2016.
    """
    _penalties.check_group_axis(group_axis)
    return make_transform(
        Regularizer("group_lasso", strength, mask, learning_rate, group_axis=group_axis)
    )
