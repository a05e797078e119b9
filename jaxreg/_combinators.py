"""Ready-made chains that take the learning rate once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxreg import _checks, _leafwise, _penalties, _transforms
from jaxreg._leafwise import Regularizer

__all__ = ["regularized"]


def _check_not_schedule_free(optimizer: Any, **strengths: Any) -> None:
    """Refuses a parameter-side piece after an ``optax.contrib.schedule_free*`` optimizer.

    Schedule-free keeps the sequence ``z`` in its state and returns updates of the
    interpolation ``y``; a prox chained after it thresholds ``y`` (and so shifts the
    averaged ``x``) while ``z`` never sees the regularizer.
    """
    func = optimizer
    while hasattr(func, "func"):  # functools.partial
        func = func.func
    if not getattr(func, "__name__", "").startswith("schedule_free"):
        return
    active = [name for name, value in strengths.items() if not _leafwise.is_literal_zero(value)]
    if active:
        raise ValueError(
            f"`optimizer`: {active[0]}= (a parameter-side prox/decay) cannot follow "
            f"optax.contrib.{func.__name__}: it would act on the interpolated params y, "
            "not on schedule-free's z sequence. Use l2= (gradient side, evaluated at y "
            "as in the schedule-free paper), the optimizer's own weight_decay, or a "
            "penalty in the loss."
        )


def _is_schedule_free_state(state: Any) -> bool:
    """Whether an optimizer state holds an ``optax.contrib.ScheduleFreeState``."""
    sf = optax.contrib.ScheduleFreeState
    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, sf))
    return any(isinstance(x, sf) for x in leaves)


def _check_optimizer_and_options(
    optimizer: Any,
    learning_rate: Any,
    clip_norm: Any,
    optimizer_kwargs: Any,
    parameter_side: dict[str, Any],
) -> None:
    """Checks of :func:`regularized` (issue 12): options, what the factory returns, and
    schedule-free detected from the optimizer's state (not only from its name).
    """
    if clip_norm is not None and _checks.is_schedule(clip_norm):
        raise ValueError(
            "`clip_norm` must be a number (optax.clip_by_global_norm takes no schedule), "
            "got a schedule."
        )
    if clip_norm is not None:
        _checks.check_scalar("clip_norm", clip_norm)
    if optimizer_kwargs is not None:
        if not isinstance(optimizer_kwargs, dict):
            raise ValueError(
                "`optimizer_kwargs` must be a dict of keyword arguments for `optimizer`, got "
                f"{type(optimizer_kwargs).__name__}."
            )
        for key in optimizer_kwargs:
            if key in ("learning_rate", "lr"):
                raise ValueError(
                    f"`optimizer_kwargs` must not contain {key!r}: the learning rate is "
                    "`regularized`'s own `learning_rate`, shared by the optimizer and the "
                    "prox (two values would make them disagree on the step size)."
                )
    if not callable(optimizer):
        return  # the existing check below names `optimizer`
    _checks.check_number("learning_rate", learning_rate)
    try:
        inner = optimizer(learning_rate, **(optimizer_kwargs or {}))
    except TypeError as err:
        raise ValueError(
            f"`optimizer` must be an optax optimizer factory called as "
            f"optimizer(learning_rate, **optimizer_kwargs); calling it failed: {err}"
        ) from None
    if not isinstance(inner, optax.GradientTransformation):
        raise ValueError(
            "`optimizer` must be a factory that returns an optax.GradientTransformation "
            f"(such as optax.adam); optimizer(learning_rate) returned {type(inner).__name__}."
        )
    active = [n for n, value in parameter_side.items() if not _leafwise.is_literal_zero(value)]
    if not active:
        return
    try:  # schedule-free is recognised by its state (wrapped factories included)
        probe = inner.init(jnp.zeros((1,), jnp.float32))
    except Exception:  # an optimizer that cannot init the probe: the name check only
        return
    if _is_schedule_free_state(probe):
        raise ValueError(
            f"`optimizer`: {active[0]}= (a parameter-side prox/decay) cannot follow a "
            "schedule-free optimizer (its state is an optax.contrib.ScheduleFreeState): it "
            "would act on the interpolated params y, not on schedule-free's z sequence. Use "
            "l2= (gradient side), the optimizer's own weight_decay, or a penalty in the loss."
        )


def regularized(
    optimizer: Callable[..., optax.GradientTransformation],
    learning_rate: Any,
    *,
    l1: Any = 0.0,
    l2: Any = 0.0,
    weight_decay: Any = 0.0,
    group_lasso: Any = 0.0,
    group_axis: int | tuple[int, ...] | None = None,
    mask: Any = None,
    clip_norm: float | None = None,
    optimizer_kwargs: dict[str, Any] | None = None,
) -> optax.GradientTransformation:
    r"""``optimizer(learning_rate)`` with regularizers placed by the placement rule.

    Builds, with one ``learning_rate`` shared by every piece so the optimizer and
    the prox can never disagree on ``η``::

        chain(clip_by_global_norm(clip_norm)?,      # if clip_norm is given
              add_l2_gradient(l2),                  # gradient side: coupled L2
              optimizer(learning_rate, **optimizer_kwargs),
              [weight_decay(weight_decay, learning_rate),   # parameter side, last,
               l1_prox(l1, learning_rate),                  # one transform applying
               group_lasso_prox(group_lasso, learning_rate)])  # these in order

    A regularizer whose strength is a literal ``0.0`` passes every leaf through
    bitwise; the state's structure does not depend on the strengths' values (a
    literal ``0.0`` and an injected array give the same state tree): it is the
    tuple ``(clip state?, gradient-side state, optimizer state, parameter-side
    state)``. ``l1`` together with ``weight_decay`` gives
    ``p_new = S_{η·l1}(p + u − η·wd·p)``.

    Works under :func:`optax.inject_hyperparams` with one injectable learning
    rate: bind the optimizer first, and mark a mask function static::

        tx = optax.inject_hyperparams(
            functools.partial(jaxreg.regularized, optax.adam), static_args=("mask",)
        )(learning_rate=1e-3, l1=1e-4, weight_decay=1e-4, mask=mask_fn)

    Args:
      optimizer: an optax optimizer factory taking the learning rate first
        (``optax.adam``, ``optax.sgd``, ...).
      learning_rate: float or optax schedule.
      l1: L1 prox strength (parameter side).
      l2: coupled L2 strength (gradient side, ``u += l2·w``).
      weight_decay: decoupled decay strength (parameter side, AdamW's form).
      group_lasso: group-lasso prox strength (parameter side).
      group_axis: group axis for ``group_lasso`` (``None`` means ``-1``; under
        ``optax.inject_hyperparams`` an int must be listed in ``static_args``).
      mask: applies to every regularizer (``None``, bool pytree or function).
      clip_norm: if given, gradients are clipped to this global norm first (a
        number: ``optax.clip_by_global_norm`` takes no schedule).
      optimizer_kwargs: extra keyword arguments for ``optimizer`` (a dict, so that
        ``optax.inject_hyperparams`` can bind this signature); never
        ``learning_rate``.

    Raises:
      ValueError: on a bad argument, naming it; when ``optimizer(learning_rate)``
        does not return an ``optax.GradientTransformation``; and when a
        parameter-side piece (``l1``, ``weight_decay``, ``group_lasso``) would follow
        a schedule-free optimizer, recognised by its name (``schedule_free*``) or by
        its state: a ``ScheduleFreeState`` found in ``init`` of a one-element probe.
        A wrapper whose state hides it (or whose ``init`` fails on the probe) is not
        recognised.

    Returns:
      An :class:`optax.GradientTransformation`.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = jaxreg.regularized(optax.sgd, 0.5, l1=1.0)
      >>> p = jnp.array([0.3, -2.0])
      >>> u, _ = tx.update(jnp.zeros(2), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0.  -1.5]
    """
    _check_optimizer_and_options(
        optimizer,
        learning_rate,
        clip_norm,
        optimizer_kwargs,
        {"l1": l1, "weight_decay": weight_decay, "group_lasso": group_lasso},
    )
    if not callable(optimizer):
        raise ValueError(
            "`optimizer` must be an optax optimizer factory such as optax.adam, got "
            f"{type(optimizer).__name__}."
        )
    _checks.check_number("learning_rate", learning_rate)
    for name, value in (
        ("l1", l1),
        ("l2", l2),
        ("weight_decay", weight_decay),
        ("group_lasso", group_lasso),
    ):
        _checks.check_strength(value, name=name)
    if clip_norm is not None:
        _checks.check_number("clip_norm", clip_norm, schedule=False)
    _checks.check_mask_spec(mask)
    if group_axis is not None:
        _penalties.check_group_axis(group_axis)
    _check_not_schedule_free(optimizer, l1=l1, weight_decay=weight_decay, group_lasso=group_lasso)
    pieces: list[optax.GradientTransformation] = []
    if clip_norm is not None:
        pieces.append(optax.clip_by_global_norm(clip_norm))
    pieces.append(_transforms.make_transform(Regularizer("l2_gradient", l2, mask)))
    pieces.append(optimizer(learning_rate, **(optimizer_kwargs or {})))
    pieces.append(
        _transforms.make_transform(
            (
                Regularizer("decay", weight_decay, mask, learning_rate),
                Regularizer("l1", l1, mask, learning_rate),
                Regularizer(
                    "group_lasso",
                    group_lasso,
                    mask,
                    learning_rate,
                    group_axis=-1 if group_axis is None else group_axis,
                ),
            )
        )
    )
    chained = optax.chain(*pieces)

    def flat(layout):
        from jaxreg import _flat

        return _flat.translate(list(pieces), layout)

    return _transforms.jaxreg_transformation(chained.init, chained.update, flat)
